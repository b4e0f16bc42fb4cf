"""Train an sklearn Pipeline, convert it to ONNX, check parity, save both formats.

Models travel as skops (sklearn, loaded with an explicit type allow-list, never pickle)
and ONNX (what the serving API runs). Both files are byte-for-byte reproducible: same
code, data and params give the same hashes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_template.config import TrainParams
from mlops_template.features import (
    build_preprocessor,
    categorical_features,
    feature_frame,
    is_regression,
    numeric_features,
    onnx_inputs,
    target_labels,
)

ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}
# Types a skops model file of this template may contain. Anything else in a file is
# refused: loading must not construct arbitrary objects. The template's own feature
# blocks (derived_features.BLOCKS) are trusted by exact name, not by a module prefix.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.", "scipy.sparse.")
# The built-in LightGBM and XGBoost choices (train.model), by exact name: their sklearn
# wrappers and boosters (a booster is restored from its own model text / buffer by the
# library's loader, not by constructing arbitrary objects).
TRUSTED_TYPES = (
    "collections.OrderedDict",  # LightGBM's booster keeps its parameters in one
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "mlops_template.boosting.LabelledXGBClassifier",
    "mlops_template.features.column_median",  # the numeric imputer's strategy
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBRegressor",
)
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class ModelError(RuntimeError):
    """The model could not be built, converted or loaded safely."""


def build_estimator(params: TrainParams) -> Any:
    """The estimator `user_model.build_estimator` returns (the fork's one place)."""
    from mlops_template import user_model

    return user_model.build_estimator(params)


# The Pipeline's own step names; feature steps must use others.
RESERVED_STEPS = ("preprocess", "model")


def build_pipeline(schema: dict[str, Any], params: TrainParams) -> Any:
    """[*user_model.feature_steps, preprocess, model]: feature steps work on the raw
    input columns and append the columns they declare (`added_columns`), which the
    preprocessor selects along with the schema's numeric features."""
    from sklearn.pipeline import Pipeline

    from mlops_template import user_model

    steps = list(user_model.feature_steps(params, schema))
    derived: list[str] = []
    for step in steps:
        if not (isinstance(step, tuple) and len(step) == 2 and isinstance(step[0], str)):
            raise ModelError(
                f"user_model.feature_steps: {step!r} is not a (name, transformer) pair"
            )
        name, transformer = step
        if name in RESERVED_STEPS:
            raise ModelError(
                f"user_model.feature_steps: step name {name!r} is reserved "
                f"({', '.join(RESERVED_STEPS)}); rename it"
            )
        added = getattr(transformer, "added_columns", None)
        if added is None:
            raise ModelError(
                f"user_model.feature_steps: step {name!r} ({type(transformer).__name__}) does "
                "not declare `added_columns` (the numeric columns it appends, which the "
                "preprocessor selects); use a block of mlops_template.derived_features or add it"
            )
        derived += list(added)
    taken = set(numeric_features(schema) + categorical_features(schema))
    clashes = sorted({c for c in derived if c in taken or derived.count(c) > 1})
    if clashes:
        raise ModelError(
            f"user_model.feature_steps: added column(s) {clashes} clash with an input column "
            "or another step's column; give each a new name"
        )
    preprocess = build_preprocessor(
        schema,
        scale=user_model.scale_numeric(params),
        derived=derived,
        ordinal=user_model.ordinal_categories(params),
        float32=numeric_dtype(params) == np.float32,
    )
    # a fork's one-argument build_estimator keeps working for classification
    if is_regression(schema):
        estimator = user_model.build_estimator(params, task="regression")
        if not _is_regressor(estimator):
            raise ModelError(
                f"user_model.build_estimator returned {type(estimator).__name__} for a "
                "regression target (data.task); return a regressor"
            )
    else:
        estimator = user_model.build_estimator(params)
    pipeline = Pipeline([*steps, ("preprocess", preprocess), ("model", estimator)])
    if numeric_dtype(params) == np.float32:
        # recorded for whoever scores it with sklearn (model_numeric_dtype); skops keeps it
        pipeline.numeric_dtype_ = "float32"
    return pipeline


def model_numeric_dtype(pipeline: Any) -> Any:
    """The numeric dtype a pipeline of build_pipeline takes: float32 when it was built for
    float32 input (user_model.float32_input; recorded as `numeric_dtype_`), else float64.
    Fed float64, a model trained on float32 values can score differently (a value between
    a threshold and its float32 rounding)."""
    return np.float32 if getattr(pipeline, "numeric_dtype_", None) == "float32" else np.float64


def _is_regressor(estimator: Any) -> bool:
    from sklearn.base import is_regressor

    return bool(is_regressor(estimator))


def numeric_dtype(params: TrainParams) -> Any:
    """The model's numeric input dtype: float32 when user_model.float32_input says so (a
    fork's user_model without that switch: float64). Pass it to feature_frame for the
    rows the pipeline is fitted on (build_pipeline records it on the pipeline)."""
    from mlops_template import user_model

    switch = getattr(user_model, "float32_input", None)
    return np.float32 if switch is not None and switch(params) else np.float64


def fit_pipeline(train: pd.DataFrame, schema: dict[str, Any], params: TrainParams) -> Any:
    pipeline = build_pipeline(schema, params)
    pipeline.fit(feature_frame(train, schema, numeric_dtype(params)), target_labels(train, schema))
    return pipeline


def fit_in_steps(
    pipeline: Any,
    features: Callable[[], pd.DataFrame],
    labels: np.ndarray,
    release: Callable[[], None] = lambda: None,
) -> Any:
    """`pipeline.fit(features(), labels)`, one step at a time (as Pipeline.fit does), so
    that each step's input is freed once the step has transformed it: the input table is
    not kept alive through the estimator's fit (1e6 rows: ~120 MB of a train stage that
    must stay within 3x the data, bench/pipeline.py). `features` makes the input table;
    the caller keeps no reference to it. `release` runs after `features` and after each
    step, once the step's input is dropped: the train stage hands the freed memory back
    to the OS there (data.release_arrow_memory; 1e6 rows: the raw rows' ~170 MB, which
    Arrow's pool would otherwise keep through the fit)."""
    inputs = features()
    release()
    *transformers, (_, estimator) = pipeline.steps
    for _, step in transformers:
        if step is not None and step != "passthrough":
            inputs = step.fit_transform(inputs, labels)
            release()
    estimator.fit(inputs, labels)
    return pipeline


def to_onnx(pipeline: Any, schema: dict[str, Any]) -> bytes:
    """The fitted pipeline as ONNX. A step skl2onnx has no converter for is a ModelError
    naming the step (checked before converting); any other conversion failure is a
    ModelError listing the steps, with skl2onnx's message."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    from mlops_template.derived_features import register_onnx_converters

    register_onnx_converters()
    register_boosting_converters(pipeline)
    unconvertible = list(_without_converter(pipeline))
    if unconvertible:
        path, cls = unconvertible[0]
        raise ModelError(
            f"cannot export the model to ONNX: pipeline step {path!r} "
            f"({cls.__module__}.{cls.__qualname__}) has no skl2onnx converter. Serving runs "
            "the ONNX model, so every step must convert: in src/mlops_template/user_model.py "
            "pick an estimator skl2onnx supports (skl2onnx.supported_converters()), build "
            "features from mlops_template.derived_features, or register a converter for it "
            "(skl2onnx.update_registered_converter)."
        )
    types = [(n, FloatTensorType([None, 1])) for n in numeric_features(schema)]
    types += [(n, StringTensorType([None, 1])) for n in categorical_features(schema)]
    try:
        # zipmap (probabilities as a list of maps) is a classifier option; off: a tensor
        options = {} if is_regression(schema) else {id(pipeline.steps[-1][1]): {"zipmap": False}}
        model = convert_sklearn(
            pipeline, initial_types=types, options=options, target_opset=ONNX_OPSET
        )
    except Exception as exc:
        steps = ", ".join(f"{n} ({type(s).__name__})" for n, s in pipeline.steps)
        raise ModelError(
            f"cannot export the model to ONNX (pipeline steps: {steps}): "
            f"{type(exc).__name__}: {exc}. Change the step in src/mlops_template/user_model.py "
            "or its converter."
        ) from exc
    return _reproducible(model, schema)


# Classifier options the converters accept (skl2onnx's "Convert a pipeline with a
# LightGBM classifier" example); to_onnx sets zipmap=False (probabilities as a tensor).
CLASSIFIER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}


def float32_threshold(threshold: float) -> float:
    """The largest float32 <= `threshold`: for a float32 x, `x <= threshold` (LightGBM's
    double comparison) holds exactly when `x <= float32_threshold(threshold)` (the ONNX
    tree ensemble's float32 one). Rounding to the nearest float32 instead, as onnxmltools
    does, moves a threshold that lies halfway between two float32 values (a midpoint of
    two float32 training values often does) up onto the upper one: a row with exactly
    that value then goes left in ONNX and right in LightGBM (sklearn:wine, 6e-3)."""
    rounded = np.float32(threshold)
    if float(rounded) > threshold:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


def _round_thresholds_down(node: dict[str, Any]) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        if "split_feature" not in current:
            continue
        threshold = current.get("threshold")
        if current.get("decision_type") == "<=" and isinstance(threshold, (int, float)):
            current["threshold"] = float32_threshold(float(threshold))
        stack += [current["left_child"], current["right_child"]]


def convert_lightgbm_float32(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' LightGBM converter, with each numeric threshold rounded down to
    float32 (float32_threshold) instead of to the nearest float32: the ONNX model takes
    float32 inputs, and LightGBM is trained on float32 values (user_model.float32_input),
    so both compare the same values the same way."""
    from onnxmltools.convert.lightgbm.operator_converters import LightGbm

    original = LightGbm.dump_booster_model

    def dump(*args: Any, **kwargs: Any) -> Any:
        model, info = original(*args, **kwargs)
        for tree in model.get("tree_info", []):
            _round_thresholds_down(tree["tree_structure"])
        return model, info

    LightGbm.dump_booster_model = dump
    try:
        LightGbm.convert_lightgbm(scope, operator, container)
    finally:
        LightGbm.dump_booster_model = original


def register_boosting_converters(pipeline: Any = None) -> list[str]:
    """Teach skl2onnx LightGBM's and XGBoost's estimators, with onnxmltools' converters
    (trees become ai.onnx.ml TreeEnsemble nodes). Only for the libraries the pipeline's
    estimator comes from (None: both), so a pipeline without them imports neither. The
    names of the registered classes are returned."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    module = "" if pipeline is None else type(pipeline.steps[-1][1]).__module__
    registered: list[str] = []
    if pipeline is None or module.startswith("lightgbm"):
        from lightgbm import LGBMClassifier, LGBMRegressor

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm_float32,
            options=CLASSIFIER_OPTIONS,
        )
        # skl2onnx's docs ("Convert a pipeline with a LightGBM regressor"): the ONNX tree
        # ensemble adds the trees' outputs in float32, so its difference from LightGBM's
        # double sum grows with the number of trees. Measured ~1e-6 relative with 200
        # trees, ~3e-6 with 2,000 (sklearn:diabetes), far inside onnx_value_tolerance,
        # which fails the stage beyond it; onnxmltools' `split` option (partial sums in
        # double) is not used.
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm_float32,
        )
        registered += ["LGBMClassifier", "LGBMRegressor"]
    if pipeline is None or module.startswith(("xgboost", "mlops_template.boosting")):
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBRegressor

        from mlops_template.boosting import LabelledXGBClassifier

        update_registered_converter(
            LabelledXGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=CLASSIFIER_OPTIONS,
        )
        update_registered_converter(
            XGBRegressor,
            "XGBoostXGBRegressor",
            calculate_linear_regressor_output_shapes,
            convert_xgboost,
        )
        registered += ["LabelledXGBClassifier", "XGBRegressor"]
    return registered


def _without_converter(step: Any, path: str = "") -> Any:
    """(dotted step path, class) of each step, at any depth, skl2onnx cannot convert."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    children: list[tuple[str, Any]] = []
    if isinstance(step, Pipeline):
        children = list(step.steps)
    elif isinstance(step, FeatureUnion):
        children = list(step.transformer_list)
    elif isinstance(step, ColumnTransformer):
        fitted = getattr(step, "transformers_", step.transformers)
        children = [(name, t) for name, t, _ in fitted]
    elif type(step) not in sklearn_operator_name_map:
        yield path, type(step)
        return
    for name, child in children:
        if isinstance(child, str):  # "drop" / "passthrough"
            continue
        yield from _without_converter(child, f"{path}.{name}" if path else name)


def _reproducible(model: Any, schema: dict[str, Any]) -> bytes:
    """Fix what skl2onnx leaves to chance, and record what serving needs to know."""
    # skl2onnx names the graph with a random UUID and lists the opset domains in set
    # order, which depends on the process's string-hash seed: fix both.
    model.graph.name = "model"
    imports = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in imports:
        model.opset_import.add(domain=domain, version=version)
    del model.metadata_props[:]
    for key, value in sorted(onnx_metadata(schema).items()):
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString(deterministic=True)


def onnx_metadata(schema: dict[str, Any]) -> dict[str, str]:
    """Stored in the ONNX file: the class order of the probability columns, the inputs."""
    meta = {
        "features": json.dumps([f["name"] for f in schema["features"]]),
        "target": str(schema["target"]),
        "task": str(schema["task"]),
    }
    if not is_regression(schema):
        meta["classes"] = json.dumps(list(schema["classes"]))
    return meta


def onnx_task(session: Any) -> str:
    """The task recorded in the ONNX metadata (binary, multiclass or regression)."""
    return str(session.get_modelmeta().custom_metadata_map.get("task", ""))


def onnx_classes(session: Any) -> list[str]:
    """The class labels, in the order of the probability columns (from the metadata)."""
    meta = session.get_modelmeta().custom_metadata_map
    if "classes" not in meta:
        raise ModelError("the ONNX model has no 'classes' metadata (not built by this template)")
    return [str(c) for c in json.loads(meta["classes"])]


def onnx_session(model: bytes | Path, threads: int = 1, spinning: bool = True) -> Any:
    """An onnxruntime session on the CPU. `spinning=False`: the intra-op pool's threads
    sleep between calls instead of spinning (batch scoring, whose own thread needs the
    CPU meanwhile)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One intra-op thread: onnxruntime's default pool spins after each call and costs
    # throughput on small CPUs (see ../shared/reference/serving.md).
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def onnx_predict(
    session: Any, features: pd.DataFrame, schema: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    # skl2onnx sanitises input names ("mean radius" -> "mean_radius"); inputs keep the
    # order of the initial types, which is the order onnx_inputs produces.
    names = [i.name for i in session.get_inputs()]
    feeds = dict(zip(names, onnx_inputs(features, schema).values(), strict=True))
    labels, probabilities = session.run(None, feeds)
    proba = np.asarray(probabilities, dtype=np.float64)
    # float32 rows sum to 1 only within ~1e-7; renormalise so metrics see probabilities.
    proba /= proba.sum(axis=1, keepdims=True)
    return np.asarray(labels).astype(str), proba


def onnx_predict_values(session: Any, features: pd.DataFrame, schema: dict[str, Any]) -> np.ndarray:
    """A regression model's predicted values (float64, one per row)."""
    names = [i.name for i in session.get_inputs()]
    feeds = dict(zip(names, onnx_inputs(features, schema).values(), strict=True))
    (values,) = session.run(None, feeds)
    return np.asarray(values, dtype=np.float64).reshape(-1)


# The parity checks and the baselines score test rows this many at a time: their model
# inputs and sklearn's intermediate arrays stay small (1e6 synthetic rows: the 250k test
# rows at once cost ~80 MB of the train stage's peak, issue 11).
SCORE_CHUNK_ROWS = 50_000


def feature_chunks(
    frame: pd.DataFrame, schema: dict[str, Any], numeric_dtype: Any = np.float64
) -> Iterator[pd.DataFrame]:
    """The model inputs of FRAME's rows (feature_frame), SCORE_CHUNK_ROWS rows at a time;
    an empty frame gives one empty part."""
    for start in range(0, max(len(frame), 1), SCORE_CHUNK_ROWS):
        yield feature_frame(frame.iloc[start : start + SCORE_CHUNK_ROWS], schema, numeric_dtype)


@dataclass(frozen=True)
class ValueParity:
    """sklearn vs ONNX predicted values: |d| <= tolerance * max(1, |y_sklearn|) per row."""

    rows: int
    mismatches: int
    max_abs_difference: float
    max_scaled_difference: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.mismatches == 0


def check_value_parity(
    pipeline: Any,
    onnx_model: bytes,
    frame: pd.DataFrame,
    schema: dict[str, Any],
    tolerance: float,
) -> ValueParity:
    """A regressor's predictions, sklearn vs ONNX, on the same rows (sklearn's numeric
    input in the dtype the pipeline was trained on, model_numeric_dtype), scored
    SCORE_CHUNK_ROWS rows at a time."""
    if not len(frame):
        return ValueParity(0, 0, 0.0, 0.0, tolerance)
    session = onnx_session(onnx_model)
    mismatches, max_diff, max_scaled = 0, 0.0, 0.0
    for features in feature_chunks(frame, schema, model_numeric_dtype(pipeline)):
        onnx_values = onnx_predict_values(session, features, schema)
        sk_values = np.asarray(pipeline.predict(features), dtype=np.float64).reshape(-1)
        diff = np.abs(onnx_values - sk_values)
        scaled = diff / np.maximum(1.0, np.abs(sk_values))
        mismatches += int(np.sum(~(scaled <= tolerance)))  # NaN counts as a mismatch
        max_diff = float(np.maximum(max_diff, np.max(diff)))
        max_scaled = float(np.maximum(max_scaled, np.max(scaled)))
    return ValueParity(len(frame), mismatches, max_diff, max_scaled, tolerance)


@dataclass(frozen=True)
class Parity:
    rows: int
    label_mismatches: int
    max_probability_difference: float
    tolerance: float
    # rows where sklearn's two most probable classes are within `tolerance` of each other
    # (e.g. 50 of 100 trees each way): float32 rounding may pick either label there, so
    # they are not counted as label mismatches
    ties: int = 0

    @property
    def passed(self) -> bool:
        return self.label_mismatches == 0 and self.max_probability_difference <= self.tolerance


def check_parity(
    pipeline: Any,
    onnx_model: bytes,
    frame: pd.DataFrame,
    schema: dict[str, Any],
    tolerance: float,
) -> Parity:
    """sklearn vs ONNX on the same rows: labels must match (except on ties within the
    tolerance), probabilities within the tolerance. sklearn's numeric input is in the
    dtype the pipeline was trained on (model_numeric_dtype); ONNX takes float32. Scored
    SCORE_CHUNK_ROWS rows at a time (peak memory: 250k test rows of 20 features)."""
    if not len(frame):
        return Parity(0, 0, 0.0, tolerance, 0)
    session = onnx_session(onnx_model)
    mismatches, ties, max_diff = 0, 0, 0.0
    for features in feature_chunks(frame, schema, model_numeric_dtype(pipeline)):
        onnx_labels, onnx_proba = onnx_predict(session, features, schema)
        sk_labels = np.asarray(pipeline.predict(features)).astype(str)
        sk_proba = pipeline.predict_proba(features)
        max_diff = max(max_diff, float(np.max(np.abs(onnx_proba - sk_proba))))
        top_two = np.sort(sk_proba, axis=1)[:, -2:]
        tie = (top_two[:, 1] - top_two[:, 0]) <= tolerance
        mismatches += int(np.sum((onnx_labels != sk_labels) & ~tie))
        ties += int(tie.sum())
    return Parity(len(frame), mismatches, max_diff, tolerance, ties)


# Rows of the test set re-scored with missing values by `missing_value_probes`.
MISSING_PROBE_ROWS = 20


def missing_value_probes(
    frame: pd.DataFrame, schema: dict[str, Any], rows: int = MISSING_PROBE_ROWS
) -> pd.DataFrame:
    """The first `rows` rows of `frame` once per feature with that feature missing, and
    once with every feature missing. The serving API accepts a null in any feature, also
    in one that had no missing value in training: the ONNX graph must impute each one as
    sklearn does (NaN for numeric, None for categorical)."""
    head = frame.iloc[:rows]
    names = [f["name"] for f in schema["features"]]
    numeric = set(numeric_features(schema))
    parts = []
    for missing in [[name] for name in names] + [names]:
        part = head.copy()
        for name in missing:
            part[name] = np.nan if name in numeric else None
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


_SKOPS_ID = re.compile(r'"__id__": (\d+)|"(\d+)\.npy"|"([0-9a-f-]{36})\.bin"')


def skops_bytes(pipeline: Any) -> bytes:
    """skops serialisation made byte-for-byte reproducible across processes.

    skops identifies objects (the ``__id__`` fields) and names array files by their
    `id()`, a memory address that differs in every process, names byte-array files
    (XGBoost's booster) by a random UUID, and stamps zip entries with the current time.
    Ids are renumbered in order of first appearance (a bijection, so shared references
    stay shared), array and byte files renamed to match, and timestamps fixed.
    """
    import skops.io as sio

    raw = zipfile.ZipFile(io.BytesIO(sio.dumps(pipeline)))
    numbering: dict[str, int] = {}
    renamed: dict[str, str] = {}  # file in skops' archive -> file in ours

    def renumber(match: re.Match[str]) -> str:
        if match.group(3):
            new_name = renamed.setdefault(f"{match.group(3)}.bin", f"{len(renamed)}.bin")
            return f'"{new_name}"'
        old = match.group(1) or match.group(2)
        new = numbering.setdefault(old, len(numbering))
        if match.group(1):
            return f'"__id__": {new}'
        return '"' + renamed.setdefault(f"{old}.npy", f"{new}.npy") + '"'

    schema_text = _SKOPS_ID.sub(renumber, raw.read("schema.json").decode())
    entries = [("schema.json", schema_text.encode())]
    files = [i.filename for i in raw.infolist() if i.filename != "schema.json"]
    order = list(renamed)
    for old_name in sorted(files, key=order.index):
        entries.append((renamed[old_name], raw.read(old_name)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, data in entries:
            info = zipfile.ZipInfo(name, FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, data)
    return out.getvalue()


def load_skops(path: Path) -> Any:
    """Load a skops model, trusting only sklearn/numpy types, the template's feature
    blocks and the built-in LightGBM/XGBoost types (TRUSTED_TYPES; no arbitrary objects)."""
    import skops.io as sio

    from mlops_template.derived_features import BLOCKS

    trusted_types = {f"{cls.__module__}.{cls.__qualname__}" for cls in BLOCKS}
    trusted_types.update(TRUSTED_TYPES)
    data = path.read_bytes()
    untrusted = sio.get_untrusted_types(data=data)
    refused = [
        t for t in untrusted if not t.startswith(TRUSTED_PREFIXES) and t not in trusted_types
    ]
    if refused:
        raise ModelError(f"{path}: refusing to load types outside the allow-list: {refused}")
    return sio.loads(data, trusted=untrusted)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parity_record(parity: Parity | ValueParity) -> dict[str, Any]:
    if isinstance(parity, ValueParity):
        return {
            "rows": parity.rows,
            "mismatches": parity.mismatches,
            "max_abs_difference": parity.max_abs_difference,
            "max_scaled_difference": parity.max_scaled_difference,
            "tolerance": parity.tolerance,
        }
    return {
        "rows": parity.rows,
        "ties": parity.ties,
        "label_mismatches": parity.label_mismatches,
        "max_probability_difference": parity.max_probability_difference,
        "tolerance": parity.tolerance,
    }


# The estimator class each built-in `train.model` stands for (user_model's examples).
BUILTIN_ESTIMATORS = {
    "logistic_regression": "LogisticRegression",
    "random_forest": "RandomForestClassifier",
    "hist_gradient_boosting": "HistGradientBoostingClassifier",
    "lightgbm": "LGBMClassifier",
    "xgboost": "LabelledXGBClassifier",
}
# ... and for a regression target (user_model.build_regressor)
BUILTIN_REGRESSORS = {
    "ridge": "Ridge",
    "random_forest": "RandomForestRegressor",
    "hist_gradient_boosting": "HistGradientBoostingRegressor",
    "lightgbm": "LGBMRegressor",
    "xgboost": "XGBRegressor",
}


def custom_steps_record(pipeline: Any, params: TrainParams) -> dict[str, Any]:
    """What user_model.py changed, for train_info.json: the estimator when it is not the
    built-in one `train.model` names, and the feature steps with the columns they add.
    Empty for the built-in pipeline (whose record stays as it always was)."""
    *features, (_, estimator) = [s for s in pipeline.steps if s[0] != "preprocess"]
    record: dict[str, Any] = {}
    builtins = BUILTIN_REGRESSORS if _is_regressor(estimator) else BUILTIN_ESTIMATORS
    builtin = builtins.get(params.model)  # none: user_model's own for this task
    if type(estimator).__name__ != builtin:
        record["estimator"] = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
    if features:
        record["feature_steps"] = [
            {
                "name": name,
                "class": f"{type(step).__module__}.{type(step).__qualname__}",
                "adds": list(step.added_columns),
            }
            for name, step in features
        ]
    return record


def train_info(
    params: TrainParams,
    parity: Parity | ValueParity,
    skops_model: bytes,
    onnx_model: bytes,
    rows: int,
    missing_parity: Parity | ValueParity | None = None,
    pipeline: Any = None,
) -> dict[str, Any]:
    """What the train stage records; `missing_parity`: parity on `missing_value_probes`;
    `pipeline`: the fitted pipeline, whose user_model.py changes are recorded."""
    info: dict[str, Any] = {
        "model": params.model,
        "hyperparameters": params.estimator_params.model_dump(),
        "seed": params.seed,
        "train_rows": rows,
        "parity": _parity_record(parity),
    }
    if pipeline is not None:
        info.update(custom_steps_record(pipeline, params))
    if missing_parity is not None:
        info["parity_with_missing_values"] = _parity_record(missing_parity)
    info["sha256"] = {"model.skops": sha256(skops_model), "model.onnx": sha256(onnx_model)}
    return info
