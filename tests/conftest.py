"""Fixtures shared by all tiers. Expensive things (a reproduced pipeline) are built once
per session and shared read-only; a test that changes a project makes its own copy."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import copy_template, run


@pytest.fixture(scope="session")
def dvc_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DVC cache for the session's projects: stages seen once restore from run-cache."""
    return tmp_path_factory.mktemp("dvc-cache")


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory, dvc_cache: Path) -> Path:
    """The template, copied and reproduced once on the default data. Do not modify."""
    project = copy_template(tmp_path_factory.mktemp("built") / "project", dvc_cache=dvc_cache)
    run(["dvc", "repro"], project)
    return project


@pytest.fixture
def fresh_project(tmp_path: Path, dvc_cache: Path) -> Path:
    """A writable copy of the template sharing the session's DVC cache."""
    return copy_template(tmp_path / "project", dvc_cache=dvc_cache)


@pytest.fixture(scope="session")
def breast_cancer() -> pd.DataFrame:
    from mlops_template.data import load_builtin

    return load_builtin("breast_cancer")


def mixed_dataset(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Numeric + categorical columns, missing values, three classes, a learnable signal."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.uniform(0, 10, size=rows)
    color = rng.choice(["red", "green", "blue"], size=rows)
    size = rng.choice(["S", "M", "L", "XL"], size=rows)
    score = x1 + 0.3 * x2 + np.where(color == "red", 1.5, 0) + rng.normal(scale=0.5, size=rows)
    label = np.select([score < 1.2, score < 2.8], ["low", "mid"], "high")
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(rows),
            "x1": x1,
            "x2": x2,
            "color": color,
            "size": size,
            "label": label,
        }
    )
    frame.loc[rng.choice(rows, rows // 20, replace=False), "x2"] = np.nan
    frame.loc[rng.choice(rows, rows // 25, replace=False), "color"] = None
    return frame


def mixed_regression_dataset(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """`mixed_dataset`'s columns with a numeric target: a noisy price from x1, x2, color."""
    import numpy as np

    frame = mixed_dataset(rows, seed)
    rng = np.random.default_rng(seed + 1000)
    x2 = frame["x2"].fillna(5.0)
    signal = 3 * frame["x1"] + 0.8 * x2 + np.where(frame["color"] == "red", 4.0, 0.0)
    price = 50 + signal + rng.normal(scale=1.5, size=rows)
    return frame.assign(label=price.round(2))


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    return mixed_dataset()
