"""YOUR MODEL AND YOUR FEATURES: the one module a fork edits to change them.

The train stage builds ``Pipeline([*feature_steps(...), ("preprocess", ...), ("model",
build_estimator(...))])``, converts it to ONNX and checks that ONNX predicts like
sklearn. Serving, evaluation and the drift monitor run that ONNX model, so whatever you
put here is applied identically everywhere, and the serving API keeps taking the raw
input columns of data/schema.json.

What to edit:

- `build_estimator`: return any sklearn classifier that skl2onnx can convert (the three
  built-in choices below are examples, picked by `train.model` in params.yaml). Keep its
  hyperparameters in params.yaml (`params` is the validated `train` section).
- `scale_numeric`: whether numeric columns are standardised before your estimator
  (linear models, SVMs, k-NN: yes; tree models: no, see features.build_preprocessor).
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


def build_estimator(params: TrainParams) -> Any:
    """The classifier, last step of the Pipeline (the built-in choices of train.model)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    hp = params.estimator_params.model_dump()
    if params.model == "logistic_regression":
        return LogisticRegression(random_state=params.seed, **hp)
    if params.model == "random_forest":
        return RandomForestClassifier(random_state=params.seed, n_jobs=1, **hp)
    return HistGradientBoostingClassifier(random_state=params.seed, **hp)


def scale_numeric(params: TrainParams) -> bool:
    """Standardise numeric columns for the estimator (only the linear model wants it)."""
    return params.model == "logistic_regression"


def feature_steps(params: TrainParams, schema: dict[str, Any]) -> list[tuple[str, Any]]:
    """(name, transformer) steps run on the raw input columns before the preprocessor;
    `schema` is data/schema.json (feature names and kinds). None by default."""
    return []
