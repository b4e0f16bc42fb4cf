"""A fork changes a hyperparameter in params.yaml on day one: its `make test` stays green
(tests/pipeline/fork.py runs it as on a fresh machine, without uv on PATH)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.pipeline.fork import make_test_stays_green_after

pytestmark = pytest.mark.slow


def test_make_test_stays_green_after_a_hyperparameter_change(tmp_path: Path) -> None:
    make_test_stays_green_after("hyperparameter", tmp_path)
