"""batch-predict.yaml under act: a dispatched run scores a CSV committed to the repository
with the version in prod (registry tags; `predict --stage prod` restores its model from
the DVC cache in a worktree of its commit and checks it against the sha256 its
registration recorded) and uploads the predictions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from tests.helpers import run
from tests.workflows.act import ActResult, GitRepo, World, dispatch_event, make_repo

from mlops_template.data import load_builtin
from mlops_template.registry import registration_message

pytestmark = pytest.mark.slow

REPO = "acme/mlops-demo"
ROWS = "data/scoring/customers.csv"
SCORED = 120


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, dvc_cache: Path, built_project: Path) -> GitRepo:
    repo = make_repo(tmp_path_factory.mktemp("repo") / "mlops-demo", REPO)
    run(["dvc", "cache", "dir", str(dvc_cache)], repo.path)  # committed: act copies it
    rows = load_builtin("breast_cancer").drop(columns=["target"]).head(SCORED)
    (repo.path / ROWS).parent.mkdir(parents=True, exist_ok=True)
    rows.rename_axis("customer_id").reset_index().to_csv(repo.path / ROWS, index=False)
    repo.commit("rows to score and the shared DVC cache")
    # register this commit's model and put it in prod, as `make register` and `make
    # promote` would: the tags record its sha256, which `predict --stage prod` checks.
    # The template on its default data builds the same model bytes as built_project.
    sha = hashlib.sha256((built_project / "models" / "model.onnx").read_bytes()).hexdigest()
    message = registration_message("model", "v1.0.0", {"roc_auc": 0.99}, {"model.onnx": sha}, None)
    repo.git("tag", "-a", "model@v1.0.0", "-m", message)
    repo.git("tag", "-a", "model#prod#1", "-m", "Assign prod to model v1.0.0")
    (repo.path / ".env").write_text("UV_LINK_MODE=hardlink\n")
    (repo.path / ".git" / "info" / "exclude").write_text(".env\n")
    return repo


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, repo: GitRepo) -> ActResult:
    world = World(tmp_path_factory.mktemp("github"))
    event = dispatch_event(
        repo, "batch-predict.yaml", input=ROWS, output="scored.csv", stage="prod"
    )
    return world.act(repo, "workflow_dispatch", event, "batch-predict.yaml")


def test_the_rows_are_scored_with_the_prod_model_and_uploaded(
    repo: GitRepo, scored: ActResult
) -> None:
    assert scored.succeeded, scored
    assert "v1.0.0 (model@v1.0.0, commit" in scored.output  # predict --stage prod
    assert "(sha256" in scored.output and "as registered)" in scored.output
    artifact = scored.artifact("batch-predictions")
    output = pd.read_csv(artifact / "scored.csv")
    assert len(output) == SCORED
    assert output["request_id"].str.startswith("batch-").all()
    assert (
        output.groupby("request_id")["row"].apply(lambda r: r.tolist() == list(range(len(r)))).all()
    )
    assert set(output["prediction"]) <= {"benign", "malignant"}
    assert "120 rows scored of 120 with model v1.0.0 (0 refused" in scored.output
