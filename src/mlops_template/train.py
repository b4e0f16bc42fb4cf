"""Train an sklearn Pipeline, convert it to ONNX, check parity, save both formats.

Models travel as skops (sklearn, loaded with an explicit type allow-list, never pickle)
and ONNX (what the serving API runs). Both files are byte-for-byte reproducible: same
code, data and params give the same hashes.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
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
    numeric_features,
    onnx_inputs,
    target_labels,
)

ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}
# Types a skops model file of this template may contain. Anything else in a file is
# refused: loading must not construct arbitrary objects.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.", "scipy.sparse.")
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class ModelError(RuntimeError):
    """The model could not be built, converted or loaded safely."""


def build_estimator(params: TrainParams) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    hp = params.estimator_params.model_dump()
    if params.model == "logistic_regression":
        return LogisticRegression(random_state=params.seed, **hp)
    if params.model == "random_forest":
        return RandomForestClassifier(random_state=params.seed, n_jobs=1, **hp)
    return HistGradientBoostingClassifier(random_state=params.seed, **hp)


def build_pipeline(schema: dict[str, Any], params: TrainParams) -> Any:
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [("preprocess", build_preprocessor(schema)), ("model", build_estimator(params))]
    )


def fit_pipeline(train: pd.DataFrame, schema: dict[str, Any], params: TrainParams) -> Any:
    pipeline = build_pipeline(schema, params)
    pipeline.fit(feature_frame(train, schema), target_labels(train, schema))
    return pipeline


def to_onnx(pipeline: Any, schema: dict[str, Any]) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [(n, FloatTensorType([None, 1])) for n in numeric_features(schema)]
    types += [(n, StringTensorType([None, 1])) for n in categorical_features(schema)]
    model = convert_sklearn(
        pipeline,
        initial_types=types,
        options={id(pipeline.steps[-1][1]): {"zipmap": False}},
        target_opset=ONNX_OPSET,
    )
    # skl2onnx names the graph with a random UUID; a fixed name keeps the file reproducible.
    model.graph.name = "model"
    return model.SerializeToString()


def onnx_session(model: bytes | Path, threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One intra-op thread: onnxruntime's default pool spins after each call and costs
    # throughput on small CPUs (see ../shared/reference/serving.md).
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
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


@dataclass(frozen=True)
class Parity:
    rows: int
    label_mismatches: int
    max_probability_difference: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.label_mismatches == 0 and self.max_probability_difference <= self.tolerance


def check_parity(
    pipeline: Any, onnx_model: bytes, frame: pd.DataFrame, schema: dict[str, Any], tolerance: float
) -> Parity:
    """sklearn vs ONNX on the same rows: labels must match, probabilities within tolerance."""
    features = feature_frame(frame, schema)
    onnx_labels, onnx_proba = onnx_predict(onnx_session(onnx_model), features, schema)
    sk_labels = np.asarray(pipeline.predict(features)).astype(str)
    sk_proba = pipeline.predict_proba(features)
    diff = float(np.max(np.abs(onnx_proba - sk_proba))) if len(features) else 0.0
    return Parity(len(features), int(np.sum(onnx_labels != sk_labels)), diff, tolerance)


def skops_bytes(pipeline: Any) -> bytes:
    """skops serialisation made reproducible: skops names array files after object ids
    and stamps the current time; rename them by order and fix the timestamp."""
    import skops.io as sio

    raw = zipfile.ZipFile(io.BytesIO(sio.dumps(pipeline)))
    schema_text = raw.read("schema.json").decode()
    arrays = [i.filename for i in raw.infolist() if i.filename != "schema.json"]
    arrays.sort(key=lambda name: schema_text.find(name))
    renames = {old: f"{index:05d}.npy" for index, old in enumerate(arrays)}
    for old, new in renames.items():
        schema_text = schema_text.replace(f'"{old}"', f'"{new}"')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        target.writestr(zipfile.ZipInfo("schema.json", FIXED_ZIP_TIME), schema_text)
        for old, new in sorted(renames.items(), key=lambda item: item[1]):
            info = zipfile.ZipInfo(new, FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, raw.read(old))
    return out.getvalue()


def load_skops(path: Path) -> Any:
    """Load a skops model, trusting only sklearn/numpy types (no arbitrary objects)."""
    import skops.io as sio

    data = path.read_bytes()
    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ModelError(f"{path}: refusing to load types outside the allow-list: {refused}")
    return sio.loads(data, trusted=untrusted)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def train_info(
    params: TrainParams, parity: Parity, skops_model: bytes, onnx_model: bytes, rows: int
) -> dict[str, Any]:
    return {
        "model": params.model,
        "hyperparameters": params.estimator_params.model_dump(),
        "seed": params.seed,
        "train_rows": rows,
        "parity": {
            "rows": parity.rows,
            "label_mismatches": parity.label_mismatches,
            "max_probability_difference": parity.max_probability_difference,
            "tolerance": parity.tolerance,
        },
        "sha256": {"model.skops": sha256(skops_model), "model.onnx": sha256(onnx_model)},
    }
