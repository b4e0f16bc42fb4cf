"""params.yaml -> Params: defaults, and every bad value named by dotted key and value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.helpers import FIXTURE_PARAMS

from mlops_template.config import (
    Params,
    ParamsError,
    flatten,
    load_params,
    params_as_dict,
    parse_params,
)


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    return yaml.safe_load(FIXTURE_PARAMS.read_text())


def with_value(document: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    node = changed
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return changed


def test_fixture_params_are_valid_and_every_key_is_a_field(shipped: dict[str, Any]) -> None:
    # `shipped`: the template's defaults, frozen in tests/fixtures/params.yaml (the
    # project's own params.yaml is checked by tests/project/, whatever a fork put in it).
    params = parse_params(shipped)
    assert params.train.model == "random_forest"
    assert params.data.builtin == "breast_cancer"
    # every key of the file is a field (nothing silently ignored); fields added since
    # are optional
    assert set(flatten(shipped)) <= set(flatten(params_as_dict(params)))

    # an empty file is valid too: every field has a default
    # (the gate's rule maps, metric -> value, are free-form: compared by section)
    def fields(document: dict[str, Any]) -> set[str]:
        rule_maps = ("gate.min.", "gate.max.", "gate.baseline.")
        return {
            next((m[:-1] for m in rule_maps if key.startswith(m)), key) for key in flatten(document)
        }

    assert fields(params_as_dict(parse_params({}))) == fields(params_as_dict(params))


# (dotted key, bad value, words the message must contain besides the key and value)
BAD_VALUES: list[tuple[str, Any, str]] = [
    ("train.random_forest.n_estimators", -3, "greater than 0"),
    ("train.random_forest.n_estimators", "100", "integer"),
    ("train.random_forest.n_estimators", 1.5, "integer"),
    ("train.model", "catboost", "one of"),
    ("train.lightgbm.num_leaves", 0, "at least 2"),
    ("train.lightgbm.num_leaves", 200_000, "at most 131072"),
    ("train.lightgbm.max_depth", 0, "greater than 0"),
    ("train.lightgbm.subsample", 0, "greater than 0"),
    ("train.lightgbm.class_weight", "balanced_subsample", "balanced"),
    ("train.lightgbm.num_leave", 31, "did you mean 'num_leaves'"),
    ("train.xgboost.learning_rate", 1.5, "at most 1"),
    ("train.xgboost.max_depth", 0, "greater than 0"),
    ("train.xgboost.reg_lambda", -1.0, "at least 0"),
    ("train.xgboost.max_bin", 1, "at least 2"),
    ("train.xgboost.class_weight", "balanced", "unknown key"),
    ("train.onnx_value_tolerance", 0, "greater than 0"),
    ("train.baseline_max_rows", 0, "greater than 0"),
    ("train.baseline_max_rows", 1.5, "integer"),
    ("train.random_forest.n_estimator", 100, "did you mean 'n_estimators'"),  # typo
    ("trian", {"model": "random_forest"}, "did you mean 'train'"),  # typo of a section
    ("train.seed", -1, "at least 0"),
    ("train.random_forest.max_depth", 0, "greater than 0"),
    ("train.random_forest.max_features", "all", "sqrt"),
    ("train.logistic_regression.C", 0, "greater than 0"),
    ("train.logistic_regression.class_weight", "auto", "balanced"),
    ("train.hist_gradient_boosting.early_stopping", "yes", "true or false"),
    ("train.hist_gradient_boosting.learning_rate", float("nan"), "finite"),
    ("train.onnx_probability_tolerance", 0.5, "at most"),
    ("split.test_size", 1.5, "less than 1"),
    ("split.test_size", 0, "greater than 0"),
    ("validate.max_missing_fraction", 2, "at most 1"),
    ("validate.leakage_max_score", 1.0, "less than 1"),
    ("validate.min_rows", 0, "greater than 0"),
    ("validate.max_test_copy_fraction", 1.5, "at most 1"),
    ("validate.max_test_copy_fraction", "1%", "number"),
    ("validate.regression_min_distinct", 0, "greater than 0"),
    ("validate.regression_min_distinct_fraction", -0.1, "at least 0"),
    ("validate.id_like_min_distinct_fraction", 1.0, "less than 1"),
    ("data.datetime_features", "parts", "not supported yet"),
    ("data.datetime_features", "keep", "must be 'drop'"),
    ("evaluate.importance_repeats", 0, "greater than 0"),
    ("data.source", "../secret.csv", "data/external"),
    ("data.source", "data/external/table.txt", ".csv"),
    ("data.source", "sklearn:mnist", "breast_cancer"),
    ("data.target", "", "empty"),
    ("data.id_columns", "customer_id", "list"),
    ("data.id_columns", ["target"], "target column"),
    ("data.drop_columns", ["target"], "target column"),
    ("gate.baseline.linear.roc_auc", 1.5, "between -1 and 1"),
    ("gate.baseline.majority.roc_auc", "0.05", "number"),
]


def test_unknown_baseline_is_named(shipped: dict[str, Any]) -> None:
    with pytest.raises(ParamsError) as raised:
        parse_params(with_value(shipped, "gate.baseline.random.roc_auc", 0.05))
    assert raised.value.problems == [
        "gate.baseline.random: 'random' must be one of 'majority', 'mean' or 'linear'"
    ]


@pytest.mark.parametrize(
    ("key", "value", "words"), BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES]
)
def test_bad_value_is_named_by_dotted_key_and_value(
    shipped: dict[str, Any], key: str, value: Any, words: str
) -> None:
    with pytest.raises(ParamsError) as raised:
        parse_params(with_value(shipped, key, value))
    problems = raised.value.problems
    assert len(problems) == 1, problems
    message = problems[0]
    assert message.startswith(f"{key}: "), message
    assert repr(value) in message, message
    assert words in message, message


def test_several_problems_are_reported_together(shipped: dict[str, Any]) -> None:
    document = with_value(shipped, "split.seed", -5)
    document = with_value(document, "train.model", "svm")
    with pytest.raises(ParamsError) as raised:
        parse_params(document)
    keys = sorted(p.split(":", 1)[0] for p in raised.value.problems)
    assert keys == ["split.seed", "train.model"]
    assert "split.seed: -5" in str(raised.value)


def test_a_union_reports_one_line_per_key(shipped: dict[str, Any]) -> None:
    with pytest.raises(ParamsError) as raised:
        parse_params(with_value(shipped, "train.random_forest.max_features", 1.5))
    [message] = raised.value.problems
    assert message.startswith("train.random_forest.max_features: 1.5 ")
    assert "sqrt" in message and "less than 1" in message


def test_unknown_key_without_a_close_match_lists_the_known_keys(shipped: dict[str, Any]) -> None:
    with pytest.raises(ParamsError) as raised:
        parse_params(with_value(shipped, "split.zzz", 3))
    [message] = raised.value.problems
    assert message.startswith("split.zzz: unknown key (value 3;")
    assert "test_size" in message and "seed" in message


def test_document_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ParamsError, match=r"<root>: \[1, 2\] must be a mapping"):
        parse_params([1, 2])
    with pytest.raises(ParamsError, match=r"train: 5 must be a mapping"):
        parse_params({"train": 5})


def test_load_params_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "params.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(broken)
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  model: logistic_regression\n")
    assert load_params(good).train.model == "logistic_regression"


def test_params_are_frozen() -> None:
    params = Params()
    with pytest.raises(ValueError):
        params.train.seed = 1  # type: ignore[misc]


def test_estimator_params_follow_the_model_name() -> None:
    params = parse_params({"train": {"model": "hist_gradient_boosting"}})
    assert params.train.estimator_params is params.train.hist_gradient_boosting
    assert params.validation is params.validate_


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1], "e": {}}


def test_builtin_and_file_sources() -> None:
    assert parse_params({"data": {"source": "sklearn:iris"}}).data.builtin == "iris"
    user = parse_params({"data": {"source": "data/external/churn.parquet"}})
    assert user.data.builtin is None
