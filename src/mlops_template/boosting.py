"""LightGBM and XGBoost as sklearn pipeline steps (train.model: lightgbm | xgboost).

Training side only (the `train` dependency group): serving runs the ONNX model and never
imports this module. train.register_boosting_converters teaches skl2onnx to convert these
estimators with onnxmltools' converters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xgboost import XGBClassifier


class LabelledXGBClassifier(XGBClassifier):
    """XGBClassifier for any class labels (this template's are strings, see
    features.target_labels): xgboost only accepts 0..K-1, so labels are encoded in `fit`
    and decoded in `predict`. `classes_` are the labels themselves, in sorted order (the
    order of the probability columns, as for sklearn's classifiers), which is also what
    onnxmltools' converter writes into the ONNX model as its class labels."""

    def fit(self, X: Any, y: Any, **kwargs: Any) -> LabelledXGBClassifier:
        self.__dict__.pop("labels_", None)  # refit: xgboost checks codes against 0..K-1
        labels, codes = np.unique(np.asarray(y), return_inverse=True)
        super().fit(X, codes, **kwargs)
        self.labels_ = labels
        return self

    @property
    def classes_(self) -> np.ndarray:
        labels = self.__dict__.get("labels_")
        return np.arange(self.n_classes_) if labels is None else labels

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        return self.classes_[np.asarray(super().predict(X, **kwargs), dtype=np.int64)]
