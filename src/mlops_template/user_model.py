"""YOUR MODEL AND YOUR FEATURES: the one module a fork edits to change them.

The train stage builds ``Pipeline([*feature_steps(...), ("preprocess", ...), ("model",
build_estimator(...))])``, converts it to ONNX and checks that ONNX predicts like
sklearn. Serving, evaluation and the drift monitor run that ONNX model, so whatever you
put here is applied identically everywhere, and the serving API keeps taking the raw
input columns of data/schema.json.

What to edit:

- `build_estimator`: return any sklearn classifier (a regressor when `task` is
  "regression", see data.task) that skl2onnx can convert (the built-in choices
  below are examples, picked by `train.model` in params.yaml: logistic_regression
  (classification) or ridge (regression), random_forest, hist_gradient_boosting,
  lightgbm, xgboost; LightGBM and XGBoost convert
  with onnxmltools' converters, registered by train.register_boosting_converters). Keep
  its hyperparameters in params.yaml (`params` is the validated `train` section).
- `scale_numeric`: whether numeric columns are standardised before your estimator
  (linear models, SVMs, k-NN: yes; tree models: no, see features.build_preprocessor).
- `ordinal_categories`: whether each categorical column reaches your estimator as one
  column of codes (tree models) rather than one-hot columns (linear models need those),
  see features.build_preprocessor.
- `float32_input`: whether the numeric columns reach your estimator in float32 rather
  than float64 (the tree-boosting models: the ONNX model compares float32 values with its
  thresholds, so the model is trained on those values), see features.feature_frame.
- `feature_steps`: new columns computed from the raw columns, e.g. a ratio. Use the
  blocks of mlops_template.derived_features (Ratio, Product, Difference); they convert to
  ONNX. Steps run in order on the raw table and each appends numeric columns (declared
  in its `added_columns`), which the preprocessor then imputes (and scales) like any
  numeric feature.

Example (a ratio feature and a different estimator)::

    from sklearn.ensemble import ExtraTreesClassifier
    from mlops_template.derived_features import Ratio

    def build_estimator(params):
        # train.model: random_forest in params.yaml; reuses train.random_forest's settings
        hp = params.random_forest.model_dump()
        return ExtraTreesClassifier(random_state=params.seed, n_jobs=1, **hp)

    def feature_steps(params, schema):
        return [("area_per_radius", Ratio("mean_area", "mean_radius", name="area_per_radius"))]

If skl2onnx cannot convert something you return, the train stage stops with an error
naming the step and nothing is written. Edit this file and `dvc repro` retrains (dvc.yaml
lists it as a dependency of the train stage).
"""

from __future__ import annotations

from typing import Any

from mlops_template.config import TrainParams


def build_estimator(params: TrainParams, task: str = "classification") -> Any:
    """The estimator, last step of the Pipeline (the built-in choices of train.model).

    `task` is the schema's: the train stage passes task="regression" when the target is
    a number (data.task), and a regressor must be returned then."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from mlops_template.train import ModelError

    hp = params.estimator_params.model_dump()
    if task == "regression":
        return build_regressor(params)
    if params.model == "ridge":
        raise ModelError(
            "train.model: 'ridge' is a regressor, and the target is a classification one; "
            "use logistic_regression (train.logistic_regression) for a linear classifier"
        )
    if params.model == "logistic_regression":
        return LogisticRegression(random_state=params.seed, **hp)
    if params.model == "random_forest":
        return RandomForestClassifier(random_state=params.seed, n_jobs=1, **hp)
    if params.model == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(**lightgbm_settings(params, hp))
    if params.model == "xgboost":
        from mlops_template.boosting import LabelledXGBClassifier

        # xgboost wants labels 0..K-1: this subclass encodes and decodes the template's
        return LabelledXGBClassifier(**xgboost_settings(params, hp))
    return HistGradientBoostingClassifier(random_state=params.seed, **hp)


def lightgbm_settings(params: TrainParams, hp: dict[str, Any]) -> dict[str, Any]:
    """train.lightgbm plus what makes a LightGBM fit reproducible: one thread, the seed,
    deterministic=True with row-wise histograms (no timing-based choice between row- and
    column-wise), and no log lines on stdout."""
    settings = dict(hp)
    if settings["max_depth"] is None:
        settings["max_depth"] = -1  # LightGBM's "no limit"
    # bagging is on only when rows are subsampled, and then every iteration
    settings["subsample_freq"] = 1 if settings["subsample"] < 1 else 0
    return settings | {
        "random_state": params.seed,
        "n_jobs": 1,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }


def xgboost_settings(params: TrainParams, hp: dict[str, Any]) -> dict[str, Any]:
    """train.xgboost plus one thread, the seed and the CPU histogram method."""
    return dict(hp) | {
        "random_state": params.seed,
        "n_jobs": 1,
        "tree_method": "hist",
        "verbosity": 0,
    }


def build_regressor(params: TrainParams) -> Any:
    """The built-in regressors: train.model names the family and its settings."""
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import Ridge

    from mlops_template.train import ModelError

    hp = params.estimator_params.model_dump()
    if hp.pop("class_weight", None) is not None:
        raise ModelError(
            f"train.{params.model}.class_weight: {params.estimator_params.class_weight!r} "
            "applies to classification only; set it to null for a regression target"
        )
    if params.model == "logistic_regression":
        raise ModelError(
            "train.model: 'logistic_regression' is a classifier, and the target is a "
            "regression one; use ridge (train.ridge.alpha) for a linear regressor"
        )
    if params.model == "ridge":
        return Ridge(random_state=params.seed, **hp)
    if params.model == "random_forest":
        return RandomForestRegressor(random_state=params.seed, n_jobs=1, **hp)
    if params.model == "lightgbm":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(**lightgbm_settings(params, hp))
    if params.model == "xgboost":
        from xgboost import XGBRegressor

        return XGBRegressor(**xgboost_settings(params, hp))
    return HistGradientBoostingRegressor(random_state=params.seed, **hp)


def scale_numeric(params: TrainParams) -> bool:
    """Standardise numeric columns for the estimator (only the linear model wants it)."""
    return params.model in {"logistic_regression", "ridge"}


def ordinal_categories(params: TrainParams) -> bool:
    """Categorical columns as one column of codes each (features.build_preprocessor):
    tree models split on codes, and their input stays one column per feature; the linear
    models get one-hot columns."""
    return not scale_numeric(params)


# The estimators trained on float32 numeric input (float32_input).
FLOAT32_MODELS = frozenset({"hist_gradient_boosting", "lightgbm", "xgboost"})


def float32_input(params: TrainParams) -> bool:
    """Numeric columns (and ordinal codes) as float32 for the estimator, in training and
    on the sklearn side of the train stage's ONNX parity check. The ONNX model computes
    in float32: a float64 value between a tree's threshold and that threshold rounded to
    float32 goes one way in sklearn and the other in ONNX (LightGBM keeps its thresholds
    in double: 1e6 synthetic rows failed the parity check by 6.5e-3). Trained on float32
    values, the thresholds lie between float32 values and both sides agree; also half the
    memory of the model's input. Measured equal or better for these models (HGB and
    XGBoost: same metrics at 1e6 rows; LightGBM: the parity failure gone)."""
    return params.model in FLOAT32_MODELS


def feature_steps(params: TrainParams, schema: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, transformer) steps run on the raw input columns before the preprocessor;
    `schema` is data/schema.json (feature names and kinds). None by default."""
    return []
