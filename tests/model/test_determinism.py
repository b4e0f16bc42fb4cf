"""Same code, data and params -> byte-identical model files and identical metrics, across
separate processes (new memory addresses, another string-hash seed)."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest
from tests.helpers import FIXTURE_PARAMS, run

OUTPUTS = ["models/model.skops", "models/model.onnx", "models/train_info.json", "eval/metrics.json"]


def digests(project: Path) -> dict[str, str]:
    return {rel: hashlib.sha256((project / rel).read_bytes()).hexdigest() for rel in OUTPUTS}


@pytest.mark.slow
def test_train_and_evaluate_are_byte_identical_across_processes(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(FIXTURE_PARAMS, project / "params.yaml")
    stage = [sys.executable, "-m", "mlops_template"]
    for command in ("ingest", "validate", "split"):
        run([*stage, command], project)
    results = []
    for hash_seed in ("1", "2"):
        for command in ("train", "evaluate"):
            run([*stage, command], project, PYTHONHASHSEED=hash_seed)
        results.append(digests(project))
    assert results[0] == results[1]
