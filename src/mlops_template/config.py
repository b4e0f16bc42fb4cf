"""`params.yaml` -> one typed, validated `Params` object.

Everything tunable lives in `params.yaml`; this module is the only reader. A bad value
fails before any work with a message that names the dotted key and the value, e.g.
``train.random_forest.n_estimators: -3 must be greater than 0``. Unknown keys (typos) are
errors too, with a suggestion when one is close.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from mlops_template import paths

# logistic_regression is for a classification target, ridge for a regression one; the
# others pick the classifier or the regressor of their family from the target.
ModelName = Literal[
    "logistic_regression",
    "ridge",
    "random_forest",
    "hist_gradient_boosting",
    "lightgbm",
    "xgboost",
]
MetricName = Literal[
    "accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss",
    "rmse", "mae", "r2", "mape",  # regression (lower is better, except r2)
]  # fmt: skip
# Metrics bounded to [0, 1] (floors and baseline margins are checked against that).
UNIT_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc")
# Reference models fitted by the train stage (eval/baseline.json) the gate can be relative
# to: majority (classification), mean (regression), linear (either task).
BaselineName = Literal["majority", "mean", "linear"]
BUILTIN_DATASETS = ("breast_cancer", "wine", "iris", "diabetes")
BUILTIN_PREFIX = "sklearn:"
DATA_SUFFIXES = (".csv", ".parquet", ".pq")

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
OpenFraction = Annotated[float, Field(gt=0.0, lt=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class ParamsError(ValueError):
    """A bad `params.yaml`: every message names the dotted key and the offending value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid params.yaml:\n  " + "\n  ".join(problems))


class Section(BaseModel):
    # strict: "3" is not an int and "yes" is not a bool; extra keys are typos.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class DataParams(Section):
    # "sklearn:<name>" for a dataset that ships inside scikit-learn (offline), or a
    # CSV/Parquet file under data/external/ (the directory DVC watches for the ingest stage).
    source: str = "sklearn:breast_cancer"
    target: Annotated[str, Field(min_length=1)] = "target"
    id_columns: list[Annotated[str, Field(min_length=1)]] = []
    drop_columns: list[Annotated[str, Field(min_length=1)]] = []
    # Date columns (text that parses as dates, or Parquet timestamps) are recognised by
    # validation and kept out of the features: "drop" is the only action so far. Date
    # parts (year, month, ...) would have to be computed identically by the ONNX model,
    # the serving API and the drift monitor, which do not exist yet.
    datetime_features: str = "drop"
    # What the model predicts: a class (classification) or a number (regression). "auto"
    # infers it from the target (validate.infer_task: a numeric target with many distinct
    # values is a quantity) and the validate stage logs which task it chose and why.
    task: Literal["auto", "classification", "regression"] = "auto"

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value.startswith(BUILTIN_PREFIX):
            name = value.removeprefix(BUILTIN_PREFIX)
            if name not in BUILTIN_DATASETS:
                raise ValueError(f"names no built-in dataset; use one of {list(BUILTIN_DATASETS)}")
            return value
        path = PurePosixPath(value)
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise ValueError(f"must be 'sklearn:<name>' or a file ending in {DATA_SUFFIXES}")
        if path.is_absolute() or ".." in path.parts or path.parts[:2] != ("data", "external"):
            raise ValueError(
                "must lie under data/external/ (the folder DVC tracks as the ingest dependency)"
            )
        return value

    @field_validator("id_columns", "drop_columns")
    @classmethod
    def _not_target(cls, value: list[str], info: ValidationInfo) -> list[str]:
        target = info.data.get("target")
        if target in value:
            raise ValueError(f"lists the target column {target!r}, which must stay a label")
        return value

    @field_validator("datetime_features")
    @classmethod
    def _datetime_features(cls, value: str) -> str:
        if value == "parts":
            raise ValueError(
                "is not supported yet (date parts would have to be computed alike by the "
                "ONNX model, the serving API and the drift monitor); use 'drop'"
            )
        if value != "drop":
            raise ValueError("must be 'drop' (date columns are kept out of the features)")
        return value

    @property
    def builtin(self) -> str | None:
        if self.source.startswith(BUILTIN_PREFIX):
            return self.source.removeprefix(BUILTIN_PREFIX)
        return None


class ValidateParams(Section):
    min_rows: PositiveInt = 20
    max_missing_fraction: Fraction = 0.3
    # Whole-table duplicate rows above this share are a warning, not a failure: in
    # low-dimensional data identical rows are legitimate (Titanic, Arrests: ~45 %).
    max_duplicate_fraction: Fraction = 0.05
    # What fails instead: test rows that are exact copies (features and target) of
    # training rows *and* carry a value no other row has, i.e. copies that chance cannot
    # explain (see validate.count_test_copies). At most this share of the test rows.
    max_test_copy_fraction: Fraction = 0.01
    # A feature that alone predicts the target with balanced accuracy at or above this is
    # treated as leakage (it equals, or trivially encodes, the label).
    leakage_max_score: OpenFraction = 0.995
    # Object columns where at least this share of values parse as numbers are meant to be
    # numeric: the rest are typos ("n/a", "1,5") and fail validation instead of silently
    # turning the column into a categorical.
    numeric_parse_min_fraction: OpenFraction = 0.9
    max_categorical_levels: PositiveInt = 200
    # A numeric target with more distinct values than this, which are also more than
    # regression_min_distinct_fraction of the rows, is a quantity: data.task: auto infers
    # regression for it (data.task: classification refuses it).
    regression_min_distinct: PositiveInt = 20
    regression_min_distinct_fraction: Fraction = 0.05
    # An integer feature with at least this share of distinct values that is also
    # contiguous, sorted or named like an id is reported as a likely row identifier.
    id_like_min_distinct_fraction: OpenFraction = 0.95


class SplitParams(Section):
    test_size: OpenFraction = 0.25
    seed: Seed = 42


class LogisticRegressionParams(Section):
    C: Annotated[float, Field(gt=0)] = 1.0
    max_iter: PositiveInt = 1000
    class_weight: Literal["balanced"] | None = None


class RidgeParams(Section):
    # sklearn.linear_model.Ridge (regression targets only): the L2 penalty's strength
    alpha: Annotated[float, Field(gt=0)] = 1.0


class RandomForestParams(Section):
    n_estimators: PositiveInt = 100
    max_depth: PositiveInt | None = None
    min_samples_leaf: PositiveInt = 1
    max_features: Literal["sqrt", "log2"] | OpenFraction | None = "sqrt"
    class_weight: Literal["balanced", "balanced_subsample"] | None = None


class HistGradientBoostingParams(Section):
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    max_iter: PositiveInt = 200
    max_depth: PositiveInt | None = None
    max_leaf_nodes: Annotated[int, Field(ge=2)] = 31
    l2_regularization: Annotated[float, Field(ge=0)] = 0.0
    early_stopping: bool = False


class LightGBMParams(Section):
    # lightgbm.LGBMClassifier / LGBMRegressor (user_model.py); threads, seed and the
    # determinism switches are fixed there, not here.
    n_estimators: PositiveInt = 200
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    num_leaves: Annotated[int, Field(ge=2, le=131072)] = 31
    max_depth: PositiveInt | None = None  # null: no limit (LightGBM's -1)
    min_child_samples: PositiveInt = 20
    # row bagging (every iteration) below 1.0, seeded by train.seed
    subsample: Annotated[float, Field(gt=0, le=1)] = 1.0
    colsample_bytree: Annotated[float, Field(gt=0, le=1)] = 1.0
    reg_lambda: Annotated[float, Field(ge=0)] = 0.0
    class_weight: Literal["balanced"] | None = None


class XGBoostParams(Section):
    # xgboost.XGBClassifier / XGBRegressor with tree_method "hist" (user_model.py).
    # XGBoost has no class weights (its scale_pos_weight is binary-only): none here.
    n_estimators: PositiveInt = 200
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    max_depth: PositiveInt = 6
    min_child_weight: Annotated[float, Field(ge=0)] = 1.0
    subsample: Annotated[float, Field(gt=0, le=1)] = 1.0
    colsample_bytree: Annotated[float, Field(gt=0, le=1)] = 1.0
    reg_lambda: Annotated[float, Field(ge=0)] = 1.0
    max_bin: Annotated[int, Field(ge=2)] = 256


class TrainParams(Section):
    # hist_gradient_boosting scales: 300k x 30 rows in minutes and under 2 GB, where the
    # random forest takes half an hour and ~10 GB (bench/models.py).
    model: ModelName = "hist_gradient_boosting"
    seed: Seed = 42
    # Labels must match between sklearn and ONNX (except on rows whose two top classes
    # are within this tolerance: ties) and probabilities (float32 in ONNX) within this
    # absolute tolerance, on every test row, else the train stage fails.
    onnx_probability_tolerance: Annotated[float, Field(gt=0, le=0.1)] = 1e-3
    # Regression: predicted values (float32 in ONNX) must agree with sklearn's within this
    # tolerance, relative to the value and absolute below 1 (|d| <= tol * max(1, |y|)),
    # on every test row, else the train stage fails.
    onnx_value_tolerance: Annotated[float, Field(gt=0, le=0.1)] = 1e-3
    # The gate's baselines (eval/baseline.json) are fitted on a seeded sample (train.seed)
    # of at most this many train rows (None: all of them): the linear baseline on 100k
    # rows scores within ~2e-4 roc_auc of one on 750k, and the train stage reads only the
    # sampled rows (peak memory, bench/pipeline.py).
    baseline_max_rows: PositiveInt | None = 100_000
    logistic_regression: LogisticRegressionParams = LogisticRegressionParams()
    ridge: RidgeParams = RidgeParams()
    random_forest: RandomForestParams = RandomForestParams()
    hist_gradient_boosting: HistGradientBoostingParams = HistGradientBoostingParams()
    lightgbm: LightGBMParams = LightGBMParams()
    xgboost: XGBoostParams = XGBoostParams()

    @property
    def estimator_params(self) -> Section:
        return getattr(self, self.model)


class EvaluateParams(Section):
    importance_repeats: PositiveInt = 5
    # Permutation importance runs on a seeded sample of at most this many test rows
    # (the metrics always use every test row).
    importance_max_rows: PositiveInt = 20_000
    seed: Seed = 0


class CompareParams(Section):
    bootstrap_resamples: Annotated[int, Field(ge=100, le=100_000)] = 1000
    confidence: OpenFraction = 0.95
    seed: Seed = 7
    metrics: list[MetricName] = ["roc_auc", "balanced_accuracy", "f1_macro", "accuracy", "log_loss"]


class GateParams(Section):
    # enforce: a failed gate fails the PR check / refuses promotion; warn: report only.
    mode: Literal["enforce", "warn"] = "enforce"
    # Floors relative to the baselines the pipeline fits on the same train rows and scores
    # on the same test rows (fitted by the train stage): the candidate must beat each listed
    # baseline by at least the margin (a negative margin: may trail it by at most that
    # much). They fit any dataset on day one, unlike absolute floors.
    baseline: dict[BaselineName, dict[MetricName, float]] = {
        "majority": {"roc_auc": 0.05, "balanced_accuracy": 0.05},
        "linear": {"roc_auc": -0.05, "balanced_accuracy": -0.05},
    }
    # Absolute floors the candidate must meet (for log_loss: a ceiling); none by default.
    min: dict[MetricName, float] = {}
    # Largest drop allowed versus the base model. Judged on the bootstrap interval of the
    # difference: the gate fails when the whole interval lies beyond the allowed drop, i.e.
    # the regression is both real (not noise) and larger than tolerated.
    max_regression: dict[MetricName, Annotated[float, Field(ge=0)]] = {
        "roc_auc": 0.01,
        "balanced_accuracy": 0.02,
    }


class RegistryParams(Section):
    model_name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")] = "model"
    bump: Literal["major", "minor", "patch"] = "minor"


class ServeParams(Section):
    max_rows: PositiveInt = 1000
    onnx_threads: PositiveInt = 1
    # A category value the training data never had: "accept" scores it (a linear model's
    # one-hot encoder ignores it; a tree model's ordinal encoder gives it a code below the
    # known ones, features.UNKNOWN_CATEGORY_CODE) and lists it in the response's
    # `unknown_categories`, so the drift monitor can count it; "reject" answers 422.
    unknown_categories: Literal["accept", "reject"] = "accept"
    # Requests with a larger body are refused with 413 before they are parsed.
    max_body_mb: Annotated[float, Field(gt=0, le=1024)] = 32.0


class PerformanceParams(Section):
    """`monitor performance`: live metrics from delayed labels vs the test set's."""

    # Windows of the log, aligned to the epoch (24: calendar days, UTC).
    window_hours: Annotated[float, Field(gt=0, le=24 * 366)] = 24
    # A window with fewer labelled predictions gets no verdict (its interval is too wide).
    min_labels: PositiveInt = 200
    # Largest drop of a live metric below the version's test-set value. As in the gate,
    # judged on the bootstrap interval: the alarm needs the whole interval beyond it (a
    # real drop, larger than allowed). Rules on the other task's metrics are not used.
    max_drop: dict[MetricName, Annotated[float, Field(ge=0)]] = {
        "roc_auc": 0.05,
        "balanced_accuracy": 0.05,
        "r2": 0.1,
    }
    confidence: OpenFraction = 0.95
    bootstrap_resamples: Annotated[int, Field(ge=50, le=100_000)] = 200
    seed: Seed = 11


class MonitorParams(Section):
    min_rows: PositiveInt = 200
    bins: Annotated[int, Field(ge=2, le=100)] = 10
    psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    p_value: OpenFraction = 0.01
    # Many features are tested at once: correct the p-values for it (holm: step-down,
    # uniformly better than bonferroni; none: each feature on its own, more false alarms).
    correction: Literal["holm", "bonferroni", "none"] = "holm"
    max_out_of_schema_fraction: Fraction = 0.05
    # Distribution plots in the report: the most drifted columns first.
    max_plots: Annotated[int, Field(ge=0, le=100)] = 8
    performance: PerformanceParams = PerformanceParams()


SweepValue = bool | int | float | str | None


class SweepParams(Section):
    """`make sweep`: a grid or random search over train.* keys, run as DVC experiments.
    No stage of dvc.yaml depends on this section: editing it reruns nothing."""

    method: Literal["grid", "random"] = "grid"
    # random: how many distinct points of the grid to try (at most the grid's size).
    trials: PositiveInt = 10
    seed: Seed = 0
    # The metric of eval/metrics.json that ranks the trials; its direction follows from
    # the name (evaluate.HIGHER_IS_BETTER: log_loss, rmse, mae, mape: lower is better).
    metric: MetricName = "roc_auc"
    # Dotted train.* key -> the values to try, e.g. train.random_forest.n_estimators:
    # [100, 300]. Each key and value is checked against the train section's own rules.
    space: dict[str, Annotated[list[SweepValue], Field(min_length=1)]] = {}


class Params(Section):
    data: DataParams = DataParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    split: SplitParams = SplitParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    compare: CompareParams = CompareParams()
    gate: GateParams = GateParams()
    registry: RegistryParams = RegistryParams()
    serve: ServeParams = ServeParams()
    monitor: MonitorParams = MonitorParams()
    sweep: SweepParams = SweepParams()

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    @property
    def validation(self) -> ValidateParams:
        return self.validate_


_PHRASES = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping of keys",
    "literal_error": "must be one of {expected}",
    "string_pattern_mismatch": "must match {pattern}",
    "string_too_short": "must not be empty",
    "too_short": "must list at least {min_length} value",
    "none_required": "must be null",
    "finite_number": "must be a finite number",
}


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Params
    for part in loc[:-1]:
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [f.alias or n for n, f in model.model_fields.items()]


def _describe(error: Any) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    # Union members add their type names to loc; keep only the path into the document.
    loc = tuple(p for p in loc if p not in ("function-after", "literal", "constrained-float"))
    key = ".".join(str(p) for p in loc) or "<root>"
    value = error.get("input")
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_keys(loc)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return f"{key}: unknown key (value {shown}; {hint})"
    ctx = error.get("ctx") or {}
    phrase = _PHRASES.get(kind)
    if phrase:
        try:
            message = phrase.format(**ctx)
        except (KeyError, IndexError):
            message = error["msg"]
    elif kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
    return f"{key}: {value!r} {message}"


def _dedupe(problems: list[str]) -> list[str]:
    # A union type (e.g. "sqrt" | fraction) reports once per member: merge them into one
    # line per key, "key: value must be A, or must be B".
    merged: dict[str, str] = {}
    for problem in problems:
        key = problem.split(":", 1)[0]
        if key not in merged:
            merged[key] = problem
        else:
            first_value_end = merged[key].find(" must ")
            tail = problem[problem.find(" must ") + 1 :] if " must " in problem else ""
            if first_value_end > 0 and tail and tail not in merged[key]:
                merged[key] = f"{merged[key]}, or {tail}"
    return list(merged.values())


def parse_params(raw: Any) -> Params:
    """Validate an already-parsed YAML document."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError([f"<root>: {raw!r} must be a mapping of sections"])
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_dedupe([_describe(e) for e in exc.errors()])) from None
    _check_cross_section(params)
    _check_sweep(params)
    return params


def _check_cross_section(params: Params) -> None:
    problems = []
    for section, values in (
        ("gate.min", params.gate.min),
        ("gate.max_regression", params.gate.max_regression),
    ):
        for metric, value in values.items():
            if not math.isfinite(value):
                problems.append(f"{section}.{metric}: {value!r} must be a finite number")
    for baseline, margins in params.gate.baseline.items():
        for metric, value in margins.items():
            key = f"gate.baseline.{baseline}.{metric}"
            if not math.isfinite(value):
                problems.append(f"{key}: {value!r} must be a finite number")
            elif metric in (*UNIT_METRICS, "r2") and not -1 <= value <= 1:
                problems.append(f"{key}: {value!r} must be between -1 and 1")
    for metric, value in params.gate.min.items():
        if metric in UNIT_METRICS and not 0 <= value <= 1:
            problems.append(f"gate.min.{metric}: {value!r} must be between 0 and 1")
        elif metric == "r2" and value > 1:
            problems.append(f"gate.min.{metric}: {value!r} must be at most 1")
        elif metric in ("rmse", "mae", "mape") and value < 0:
            problems.append(f"gate.min.{metric}: {value!r} must be at least 0 (a ceiling)")
    if problems:
        raise ParamsError(problems)


def _check_sweep(params: Params) -> None:
    """Each sweep.space key must be a value of the train section and each of its values
    one that section accepts there: checked by validating the params with the value in
    place, so a trial cannot fail on a value params.yaml itself would refuse."""
    problems = []
    document = params_as_dict(params)
    train_keys = [k for k in flatten(document) if k.startswith("train.")]
    for key, values in params.sweep.space.items():
        label = f"sweep.space.{key}"
        parts = key.split(".")
        if parts[0] != "train":
            problems.append(
                f"{label}: {values!r} only train.* keys can be swept (the trials share "
                "this commit's data, split and evaluation)"
            )
            continue
        node: Any = document
        for part in parts:
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            close = difflib.get_close_matches(key, train_keys, n=1)
            hint = (
                f"did you mean {close[0]!r}?" if close else "train.* keys: " + ", ".join(train_keys)
            )
            problems.append(f"{label}: unknown key (values {values!r}; {hint})")
            continue
        if isinstance(node, dict):
            problems.append(f"{label}: names a section, not a value (sweep one of its keys)")
            continue
        seen: list[tuple[type, Any]] = []
        for value in values:
            if (type(value), value) in seen:
                problems.append(f"{label}: {value!r} is listed twice")
            seen.append((type(value), value))
            trial = _with_value(document, parts, value)
            try:
                Params.model_validate(trial)
            except ValidationError as exc:
                problems += [
                    f"sweep.space.{p}" for p in _dedupe([_describe(e) for e in exc.errors()])
                ]
    if problems:
        raise ParamsError(problems)


_MISSING = object()


def _with_value(document: dict[str, Any], parts: list[str], value: Any) -> dict[str, Any]:
    """A copy of `document` with the dotted key `parts` set to `value` (the rest shared)."""
    head, *rest = parts
    return {**document, head: _with_value(document[head], rest, value) if rest else value}


def load_params(path: Path = paths.PARAMS) -> Params:
    """Read and validate `params.yaml` (the only place the pipeline reads it)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError([f"{path}: file not found"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError([f"{path}: not valid YAML ({exc})"]) from None
    return parse_params(raw)


def params_as_dict(params: Params) -> dict[str, Any]:
    """The params as plain data with the YAML key names (for reports and model cards)."""
    return params.model_dump(mode="json", by_alias=True)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: how params are diffed and shown."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
