""".github/actions/setup-cml under act: release lookup, digest check, install, token sent.

The action runs for real in a one-step probe workflow; only api.github.com and
github.com are replaced, by the loopback server of tests/workflows/downloads.py
(SETUP_CML_TEST_API_URL / SETUP_CML_TEST_BASE_URL, honoured for http://127.0.0.1 only).
It answers "get a release by tag" with the asset's digest, serves the `cml` recorder as
the asset, and records each request's Authorization header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from tests.workflows.act import ActResult, GitRepo, World, lost_step_output, make_repo, push_event
from tests.workflows.downloads import CML_RELEASE, RECORDER, UNSET, downloads

pytestmark = pytest.mark.slow

PROBE = """name: setup-cml probe
on: push
permissions: {}
jobs:
  probe:
    runs-on: ubuntu-latest
    timeout-minutes: 5
    steps:
      - name: Check out (a local action is read from the checkout, on GitHub as here)
        uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
        with:
          persist-credentials: false
      - name: Set up CML
        uses: ./.github/actions/setup-cml
      - name: Use cml
        run: |
          command -v cml
          sha256sum "$(command -v cml)"
"""
SETUP = "Set up CML"
USE = "Use cml"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("github"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    repo = make_repo(tmp_path_factory.mktemp("repo") / "probe", "acme/probe")
    repo.commit("setup-cml probe", {".github/workflows/probe.yaml": PROBE})
    return repo


def probe(world: World, repo: GitRepo, **env: str) -> ActResult:
    return world.act(repo, "push", push_event(repo), "probe.yaml", env=env)


def cml_requests() -> list[dict[str, str]]:
    server = downloads()
    return server.requests_for(server.cml_path)


def release_requests() -> list[dict[str, str]]:
    return downloads().requests_for(CML_RELEASE)


@pytest.fixture
def github_digest() -> Iterator[None]:
    """Lets a test change what the release API says the asset's digest is."""
    yield
    downloads().cml_digest = UNSET


RECORDER_SHA = hashlib.sha256(RECORDER.read_bytes()).hexdigest()


def test_the_asset_matching_githubs_digest_lands_on_path_and_the_token_was_sent(
    world: World, repo: GitRepo
) -> None:
    before_release, before_asset = len(release_requests()), len(cml_requests())
    result = probe(world, repo)
    assert result.succeeded, result
    assert result.step_succeeded(USE), result
    assert f"{RECORDER_SHA}  " in result.output  # the cml on PATH is the served file
    assert "setup-cml-v0.20.5/cml" in result.output  # installed by the action, not found
    assert f"GitHub's digest: {RECORDER_SHA}; pinned: not recorded" in result.output
    (lookup,) = release_requests()[before_release:]
    (download,) = cml_requests()[before_asset:]
    assert lookup["authorization"] == download["authorization"] == "Bearer test-token"


def test_a_download_that_is_not_the_digested_asset_fails_and_installs_nothing(
    world: World, repo: GitRepo, github_digest: None
) -> None:
    downloads().cml_digest = "sha256:" + "0" * 64
    before = len(cml_requests())
    result = probe(world, repo)
    assert result.returncode != 0, result
    assert result.step_failed(SETUP), result
    assert "CML checksum mismatch" in result.output and "does not have sha256 000" in result.output
    assert not result.step_ran(USE)
    assert len(cml_requests()) == before + 1  # it did download, then refused


def test_a_pinned_checksum_that_github_contradicts_fails_before_downloading(
    world: World, repo: GitRepo
) -> None:
    before = len(cml_requests())
    result = probe(world, repo, SETUP_CML_TEST_SHA256="1" * 64)
    assert result.returncode != 0, result
    assert result.step_failed(SETUP), result
    assert f"GitHub's digest of cml-linux-x64 v0.20.5 is {RECORDER_SHA}" in result.output
    assert not result.step_ran(USE)
    assert len(cml_requests()) == before


def test_a_pinned_checksum_that_agrees_installs(world: World, repo: GitRepo) -> None:
    result = probe(world, repo, SETUP_CML_TEST_SHA256=RECORDER_SHA)
    assert result.succeeded, result
    assert f"GitHub's digest: {RECORDER_SHA}; pinned: {RECORDER_SHA}" in result.output


def test_without_a_digest_or_a_pin_it_fails_closed_before_downloading(
    world: World, repo: GitRepo, github_digest: None
) -> None:
    """An asset GitHub never hashed (`digest: null`) and CML_SHA256 not recorded."""
    downloads().cml_digest = None
    before = len(cml_requests())
    result = probe(world, repo)
    assert result.returncode != 0, result
    assert result.step_failed(SETUP), result
    assert "CML checksum unknown" in result.output
    assert not result.step_ran(USE)
    assert len(cml_requests()) == before


def test_without_a_digest_a_pinned_checksum_is_enough(
    world: World, repo: GitRepo, github_digest: None
) -> None:
    downloads().cml_digest = None
    result = probe(world, repo, SETUP_CML_TEST_SHA256=RECORDER_SHA)
    assert result.succeeded, result
    assert f"GitHub's digest: none; pinned: {RECORDER_SHA}" in result.output


def test_a_refused_release_lookup_fails_with_githubs_answer(world: World, repo: GitRepo) -> None:
    result = world.act(
        repo, "push", push_event(repo), "probe.yaml", secrets={"GITHUB_TOKEN": "expired-token-xyz"}
    )
    assert result.returncode != 0, result
    assert result.step_failed(SETUP), result
    assert "answered 401" in result.output and "Bad credentials" in result.output
    # the harness's detector of act's lost step output (act.LOST_OUTPUT_RETRIES) reads
    # this log without the step's lines as lost. (Whether it reads the log itself as kept
    # is up to act: on a loaded machine act may print the step's output after its failure
    # line, and the detector then asks for another attempt, which is harmless.)
    assert lost_step_output("\n".join(x for x in result.output.splitlines() if "::error" not in x))
    assert not result.step_ran(USE)


def test_the_test_override_is_refused_for_anything_but_loopback(
    world: World, repo: GitRepo
) -> None:
    result = probe(world, repo, SETUP_CML_TEST_BASE_URL="https://example.com/cml/download")
    assert result.returncode != 0, result
    assert result.step_failed(SETUP), result
    assert "must both be http://127.0.0.1:PORT/" in result.output
    assert not result.step_ran(USE)
