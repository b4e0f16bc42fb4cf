"""The sweep's pure core: which trials, validated how, ranked in which order.

Results are read from tests/fixtures/dvc_exp_show.json: a real `dvc exp show --json` (DVC
3.67) of a copy of the template after a queued sweep over
train.random_forest.n_estimators, trimmed (params: the train section only; deps and outs
dropped). It holds three successful trials (sweep-1..3), one failed one (sweep-4,
n_estimators -5, which carries its parent's metrics), one still queued (sweep-5), two
plain `dvc exp run` experiments (no executor) and one named sweep-bad."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.helpers import FIXTURE_PARAMS, FIXTURES, TEMPLATE_ROOT

from mlops_template.config import ParamsError, SweepParams, parse_params
from mlops_template.sweep import (
    SweepError,
    SweepRow,
    best,
    format_table,
    grid,
    keys_without_effect,
    override_args,
    rank,
    rank_experiments,
    report,
    sweep_rows,
    trial_names,
    trials,
)

EXP_SHOW = FIXTURES / "dvc_exp_show.json"
KEY = "train.random_forest.n_estimators"


@pytest.fixture(scope="module")
def shown() -> list[dict[str, Any]]:
    return json.loads(EXP_SHOW.read_text())


@pytest.fixture(scope="module")
def fixture_params() -> dict[str, Any]:
    return yaml.safe_load(FIXTURE_PARAMS.read_text())


def with_sweep(document: dict[str, Any], **sweep: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed["sweep"] = sweep
    return changed


def recorded(shown: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """What DVC recorded for experiment `name` (params, metrics), read directly."""
    for experiment in shown[1]["experiments"]:
        if experiment["name"] == name:
            return experiment["revs"][0]["data"]
    raise AssertionError(name)


def roc_auc(shown: list[dict[str, Any]], name: str) -> float:
    return recorded(shown, name)["metrics"]["eval/metrics.json"]["data"]["roc_auc"]


# ------------------------------------------------------------------ trials


def test_grid_is_the_cartesian_product_in_stable_order() -> None:
    space = {"train.a": [1, 2], "train.b": ["x", "y", "z"]}
    points = grid(space)
    assert points == [
        {"train.a": 1, "train.b": "x"},
        {"train.a": 1, "train.b": "y"},
        {"train.a": 1, "train.b": "z"},
        {"train.a": 2, "train.b": "x"},
        {"train.a": 2, "train.b": "y"},
        {"train.a": 2, "train.b": "z"},
    ]
    assert grid(space) == points  # no hidden state
    sweep = SweepParams(method="grid", space=space)
    assert trials(sweep) == points


def test_random_is_a_seeded_reproducible_sample_without_replacement() -> None:
    space = {"train.a": list(range(6)), "train.b": list(range(5))}  # 30 points
    first = trials(SweepParams(method="random", trials=7, seed=3, space=space))
    again = trials(SweepParams(method="random", trials=7, seed=3, space=space))
    other = trials(SweepParams(method="random", trials=7, seed=4, space=space))
    assert first == again
    assert first != other
    assert len(first) == 7
    assert len({tuple(t.items()) for t in first}) == 7  # distinct
    whole = grid(space)
    assert all(t in whole for t in first)
    assert [whole.index(t) for t in first] == sorted(whole.index(t) for t in first)


def test_random_is_capped_at_the_grid_size() -> None:
    space = {"train.a": [1, 2], "train.b": [3, 4]}
    points = trials(SweepParams(method="random", trials=50, seed=0, space=space))
    assert points == grid(space)


def test_an_empty_space_is_refused_by_name() -> None:
    with pytest.raises(SweepError, match=r"sweep\.space is empty"):
        trials(SweepParams())


def test_override_args_are_read_back_by_dvc_as_the_same_values(tmp_path: Path) -> None:
    # DVC applies -S overrides with its Hydra parser: the values must come back typed
    from dvc.utils.hydra import apply_overrides

    trial = {
        "train.random_forest.n_estimators": 7,
        "train.random_forest.max_depth": None,
        "train.random_forest.max_features": "1.0",  # a string that looks like a number
        "train.logistic_regression.C": 0.5,
        "train.hist_gradient_boosting.early_stopping": True,
        "train.model": "logistic_regression",
    }
    args = override_args(trial)
    assert args[::2] == ["-S"] * len(trial)
    target = tmp_path / "params.yaml"
    target.write_text(FIXTURE_PARAMS.read_text())
    apply_overrides(str(target), args[1::2])
    written = yaml.safe_load(target.read_text())
    for dotted, value in trial.items():
        node = written
        for part in dotted.split("."):
            node = node[part]
        assert node == value and type(node) is type(value), dotted


def test_trial_names_continue_after_existing_sweep_names() -> None:
    assert trial_names(2, []) == ["sweep-1", "sweep-2"]
    assert trial_names(2, ["sweep-3", "sweep-bad", "gummy-vara", "sweep-1"]) == [
        "sweep-4",
        "sweep-5",
    ]


def test_keys_of_another_estimator_are_flagged() -> None:
    space = {KEY: [10], "train.seed": [1, 2]}
    assert keys_without_effect(space, "hist_gradient_boosting") == [KEY]
    assert keys_without_effect(space, "random_forest") == []
    assert keys_without_effect({**space, "train.model": ["random_forest"]}, "x") == []
    # every built-in section counts, the boosting libraries' and ridge's too
    boosted = {"train.lightgbm.num_leaves": [15], "train.ridge.alpha": [0.1]}
    assert keys_without_effect(boosted, "xgboost") == list(boosted)
    assert keys_without_effect(boosted, "lightgbm") == ["train.ridge.alpha"]


# ------------------------------------------------------------------ validation


def test_a_valid_sweep_section_parses(fixture_params: dict[str, Any]) -> None:
    params = parse_params(
        with_sweep(
            fixture_params,
            method="random",
            trials=3,
            metric="log_loss",
            space={KEY: [10, 20], "train.random_forest.max_depth": [None, 4]},
        )
    )
    assert params.sweep.space[KEY] == [10, 20]
    assert params.sweep.metric == "log_loss"


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"train.random_forest.n_estimator": [10]}, "sweep.space.train.random_forest.n_estimator: unknown key"),
        ({"train.random_forest.n_estimator": [10]}, "did you mean 'train.random_forest.n_estimators'"),
        ({"split.seed": [1, 2]}, "sweep.space.split.seed: [1, 2] only train.* keys"),
        ({"train.random_forest": [1]}, "sweep.space.train.random_forest: names a section"),
        ({KEY: [10, -3]}, f"sweep.space.{KEY}: -3 must be greater than 0"),
        ({KEY: [10, "20"]}, f"sweep.space.{KEY}: '20' must be an integer"),
        ({KEY: [1.5]}, f"sweep.space.{KEY}: 1.5 must be an integer"),
        ({"train.model": ["catboost"]}, "sweep.space.train.model: 'catboost' must be one of"),
        ({"train.random_forest.max_features": ["all"]}, "sweep.space.train.random_forest.max_features: 'all'"),
        ({KEY: []}, f"sweep.space.{KEY}: [] must list at least 1 value"),
        ({KEY: 10}, f"sweep.space.{KEY}: 10 must be a list"),
        ({KEY: [10, 10]}, f"sweep.space.{KEY}: 10 is listed twice"),
    ],
)  # fmt: skip
def test_bad_space_is_named_by_dotted_key_and_value(
    fixture_params: dict[str, Any], space: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ParamsError) as caught:
        parse_params(with_sweep(fixture_params, space=space))
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("method", "bayes", "sweep.method: 'bayes' must be one of"),
        ("trials", 0, "sweep.trials: 0 must be greater than 0"),
        ("metric", "auc", "sweep.metric: 'auc' must be one of"),
        ("seed", -1, "sweep.seed: -1 must be at least 0"),
        ("spaces", {}, "sweep.spaces: unknown key"),
    ],
)
def test_bad_sweep_settings_are_named(
    fixture_params: dict[str, Any], key: str, value: Any, expected: str
) -> None:
    with pytest.raises(ParamsError) as caught:
        parse_params(with_sweep(fixture_params, **{key: value}))
    assert any(problem.startswith(expected) for problem in caught.value.problems), (
        caught.value.problems
    )


def test_no_stage_depends_on_the_sweep_section() -> None:
    # editing sweep: must rerun nothing: no stage lists it (or the whole params file)
    stages = yaml.safe_load((TEMPLATE_ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for entry in stage.get("params", []):
            keys = list(entry) if isinstance(entry, dict) else [entry]
            for key in keys:
                assert key != "sweep" and not str(key).startswith("sweep."), (name, key)
                assert not str(key).endswith(".yaml"), (name, key)


# ------------------------------------------------------------------ results


def test_rows_are_the_sweep_experiments_with_their_recorded_params(
    shown: list[dict[str, Any]],
) -> None:
    rows = sweep_rows(shown, [KEY])
    assert [r.name for r in rows] == ["sweep-1", "sweep-2", "sweep-3", "sweep-4", "sweep-5"]
    assert {r.name: r.state for r in rows} == {
        "sweep-1": "success",
        "sweep-2": "success",
        "sweep-3": "success",
        "sweep-4": "failed",
        "sweep-5": "queued",
    }
    for row in rows:
        expected = recorded(shown, row.name)["params"]["params.yaml"]["data"]
        assert row.params == {KEY: expected["train"]["random_forest"]["n_estimators"]}
    assert rows[0].metrics["roc_auc"] == roc_auc(shown, "sweep-1")


def test_higher_is_better_metric_ranks_descending(shown: list[dict[str, Any]]) -> None:
    rows = rank_experiments(shown, "roc_auc", [KEY])
    ranked = [r for r in rows if r.rank is not None]
    assert [r.rank for r in ranked] == [1, 2, 3]
    values = [roc_auc(shown, r.name) for r in ranked]
    assert values == sorted(values, reverse=True)
    assert values[0] > values[-1]
    assert best(rows).name == ranked[0].name


def test_lower_is_better_metric_ranks_ascending(shown: list[dict[str, Any]]) -> None:
    rows = rank_experiments(shown, "log_loss", [KEY])
    ranked = [r for r in rows if r.rank is not None]

    def log_loss(name: str) -> float:
        return recorded(shown, name)["metrics"]["eval/metrics.json"]["data"]["log_loss"]

    values = [log_loss(r.name) for r in ranked]
    assert values == sorted(values)
    assert values[0] < values[-1]


def test_failed_and_pending_trials_are_listed_unranked_without_metrics(
    shown: list[dict[str, Any]],
) -> None:
    rows = rank_experiments(shown, "roc_auc", [KEY])
    failed = next(r for r in rows if r.name == "sweep-4")
    # DVC records the parent's metrics for a failed experiment; they must not rank it
    assert recorded(shown, "sweep-4")["metrics"]["eval/metrics.json"]["data"]["roc_auc"] > max(
        roc_auc(shown, n) for n in ("sweep-1", "sweep-2", "sweep-3")
    )
    assert failed.rank is None and failed.metrics == {} and failed.state == "failed"
    queued = next(r for r in rows if r.name == "sweep-5")
    assert queued.rank is None and queued.state == "queued"
    assert [r.name for r in rows[-2:]] == ["sweep-4", "sweep-5"]
    assert best(rows).name != "sweep-4"


def test_an_experiment_without_executor_state_is_judged_by_its_error() -> None:
    rev = {"rev": "a", "name": "sweep-1", "error": {"msg": "Experiment run failed"}, "data": {}}
    shown = [
        {"rev": "workspace", "name": None, "data": {}, "experiments": None},
        {"rev": "b", "name": "main", "data": {}, "experiments": [{"name": "sweep-1", "executor": None, "revs": [rev]}]},
    ]  # fmt: skip
    assert sweep_rows(shown, [])[0].state == "failed"


def test_best_refuses_when_no_trial_succeeded() -> None:
    rows = [SweepRow("sweep-1", "failed", {KEY: 5}), SweepRow("sweep-2", "queued", {KEY: 6})]
    with pytest.raises(SweepError, match=r"no successful trial.*sweep-1: failed"):
        best(rank(rows, "roc_auc"))


def test_a_metric_no_trial_recorded_is_refused_by_name() -> None:
    rows = [SweepRow("sweep-1", "success", {}, {"rmse": 3.0})]
    with pytest.raises(SweepError, match=r"sweep\.metric: 'roc_auc' is not in .*rmse"):
        rank(rows, "roc_auc")


def test_ties_keep_trial_order() -> None:
    rows = [SweepRow(f"sweep-{i}", "success", {}, {"rmse": 1.0}) for i in (1, 2, 3)]
    assert [r.name for r in rank(rows, "rmse")] == ["sweep-1", "sweep-2", "sweep-3"]


def test_table_lists_rank_name_params_and_headline_metrics(shown: list[dict[str, Any]]) -> None:
    rows = rank_experiments(shown, "roc_auc", [KEY])
    table = format_table(rows, "roc_auc", [KEY])
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == [
        "rank",
        "experiment",
        "state",
        KEY,
        "roc_auc ↑",
        "accuracy ↑",
        "balanced_accuracy ↑",
        "f1_macro ↑",
        "log_loss ↓",
    ]
    assert lines[1] == "|" + "---|" * len(header)
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert len(body) == len(rows)
    first = body[0]
    assert first[:3] == ["1", rows[0].name, "success"]
    assert first[3] == str(rows[0].params[KEY])
    assert first[4] == f"{roc_auc(shown, rows[0].name):.4f}"
    failed = next(cells for cells in body if cells[1] == "sweep-4")
    assert failed[0] == "-" and failed[2] == "failed" and failed[3] == "-5"
    assert set(failed[4:]) == {"-"}


def test_regression_table_shows_regression_metrics_only() -> None:
    rows = rank(
        [
            SweepRow("sweep-1", "success", {"train.seed": 1}, {"rmse": 3.0, "mae": 2.0, "r2": 0.5}),
            SweepRow("sweep-2", "success", {"train.seed": None}, {"rmse": 2.0, "mae": 2.5, "r2": 0.6}),
        ],
        "rmse",
    )  # fmt: skip
    table = format_table(rows, "rmse", ["train.seed"])
    assert (
        table.splitlines()[0]
        == "| rank | experiment | state | train.seed | rmse ↓ | mae ↓ | r2 ↑ |"
    )
    assert table.splitlines()[2] == "| 1 | sweep-2 | success | null | 2.0000 | 2.5000 | 0.6000 |"


def test_report_names_failed_trials_and_how_to_apply(shown: list[dict[str, Any]]) -> None:
    rows = rank_experiments(shown, "roc_auc", [KEY])
    text = report(rows, "roc_auc", [KEY], "main (ffecead)")
    assert text.startswith("# Hyperparameter sweep on main (ffecead)\n")
    assert "5 trials: 3 ranked by roc_auc (higher is better), 1 failed (sweep-4" in text
    assert f"Apply the best ({best(rows).name}): `make sweep-apply`" in text
    assert format_table(rows, "roc_auc", [KEY]) in text
