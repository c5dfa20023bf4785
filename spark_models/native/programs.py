"""What a model compiles to: a :class:`Program` turns the model's input Columns into its output Column.

A program is built on the driver from the loaded model object (scikit-learn estimator or
``Pipeline``, xgboost/lightgbm booster, Spark ML ``PipelineModel``); every unsupported part raises
:class:`~spark_models.exceptions.NotSupportedError` naming it, before any Column is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_models.exceptions import NotSupportedError
from spark_models.native import spark_trees, tree_sources
from spark_models.native.linear import SKLEARN_CLASSIFIERS, SKLEARN_REGRESSORS, compile_linear
from spark_models.native.tree_expressions import compile_trees, node_count

Bound = Mapping[str, Column]
_SPARK_LINEAR = {"LinearRegressionModel", "LogisticRegressionModel"}
_SPARK_TREES = set(spark_trees._SPARK)


@dataclass
class Program:
    """``column(bound)`` builds the output Column from ``inputs`` (model input name → Column).

    ``parts`` names what was compiled, in order; ``tree_nodes`` counts the split nodes the
    expression holds (what its size and speed depend on)."""

    inputs: list[str]
    build: Callable[[Bound], Column]
    parts: list[str] = field(default_factory=list)
    tree_nodes: int = 0

    def column(self, bound: Bound) -> Column:
        return self.build(bound)


def _estimator(model: Any, output: str, where: str, ensemble: Any = None) -> tuple[Callable[[list[Column]], Column], int]:
    """(features → output Column, tree split nodes) for a final linear or tree model
    (``ensemble``: its trees, when already extracted)."""
    name = type(model).__name__
    if name in SKLEARN_REGRESSORS | SKLEARN_CLASSIFIERS | _SPARK_LINEAR:
        compile_linear(model, [F.lit(0.0)] * _width(model), output=output)  # checks parameters now
        return (lambda features: compile_linear(model, features, output=output)), 0
    try:
        ensemble = ensemble if ensemble is not None else tree_sources.from_model(model)
    except NotSupportedError as e:
        raise NotSupportedError(f"{where}{name}: {e}") from None
    if output == "predict_proba" and ensemble.classes is None:
        raise NotSupportedError(f"{where}{name} has no predict_proba")
    return (lambda features: compile_trees(ensemble, features, output=output)), node_count(ensemble)


def _width(model: Any) -> int:
    if hasattr(model, "n_features_in_"):
        return int(model.n_features_in_)
    return int(model.numFeatures)


# ---- scikit-learn ------------------------------------------------------------------------------

def sklearn_program(model: Any, input_names: Sequence[str] | None, *, output: str = "predict") -> Program:
    """A scikit-learn estimator or ``Pipeline`` whose transformers compile and whose final step is a
    supported linear or tree model; ``output`` is its ``predict_fn`` (``predict``/``predict_proba``)."""
    from spark_models.native.sklearn_steps import compile_transform, split_pipeline

    if output not in ("predict", "predict_proba"):
        raise NotSupportedError(f"predict_fn={output!r} (only predict and predict_proba compile)")
    steps, final = split_pipeline(model)
    names = _sklearn_inputs(steps[0][1] if steps else final, input_names)
    scorer, nodes = _estimator(final, output, "the final step " if steps else "")
    # Check the transformers now, on plain references, so unsupported steps fail before scoring.
    _transform(steps, [F.col(f"`{n}`") for n in names], names, compile_transform)

    linear = type(final).__name__ in SKLEARN_REGRESSORS | SKLEARN_CLASSIFIERS

    def build(bound: Bound) -> Column:
        features, final_names = _transform(steps, [bound[n] for n in names], names, compile_transform)
        if linear:  # scikit-learn's linear models refuse NaN; so does the expression, naming the column
            features = _refuse_missing(features, final_names, type(final).__name__)
        return scorer(features)

    parts = [f"{n} ({type(s).__name__})" for n, s in steps] + [type(final).__name__]
    return Program(names, build, parts, nodes)


def _refuse_missing(features: list[Column], names: list[str] | None, estimator: str) -> list[Column]:
    out = []
    for i, x in enumerate(features):
        label = names[i] if names and i < len(names) else f"feature {i}"
        error = F.raise_error(F.lit(f"{estimator} input contains NaN or null in column {label!r} "
                                    "(scikit-learn refuses missing values)")).cast("double")
        # nanvl and coalesce evaluate their second argument only when needed, and x appears once
        # (a repeated reference would copy a preprocessed feature's whole expression)
        out.append(F.coalesce(F.nanvl(x.cast("double"), error), error))
    return out


def _transform(steps, features, names, compile_transform):
    current_names: list[str] | None = list(names)
    for name, step in steps:
        features, current_names = compile_transform(step, features, current_names, where=f"Pipeline step {name!r}")
    return features, current_names


def _sklearn_inputs(first: Any, input_names: Sequence[str] | None) -> list[str]:
    fitted = getattr(first, "feature_names_in_", None)
    if fitted is not None:
        return [str(n) for n in fitted]
    if input_names:
        width = getattr(first, "n_features_in_", len(input_names))
        if width != len(input_names):
            raise NotSupportedError(f"{type(first).__name__} was fitted on {width} features but the signature "
                                    f"has {len(input_names)} inputs")
        return list(input_names)
    raise NotSupportedError(f"{type(first).__name__} has no feature names and the model has no signature: "
                            "the inputs cannot be bound by name")


# ---- xgboost / lightgbm boosters -----------------------------------------------------------------

def booster_program(model: Any, input_names: Sequence[str] | None, *, output: str = "predict") -> Program:
    """An xgboost or lightgbm model, scored as its pyfunc scores it (labels for classifiers,
    the transformed output for boosters); ``output`` is its ``predict_fn``."""
    if output not in ("predict", "predict_proba"):
        raise NotSupportedError(f"predict_fn={output!r} (only predict and predict_proba compile)")
    ensemble = tree_sources.from_model(model)
    if output == "predict_proba" and ensemble.classes is None:
        raise NotSupportedError(f"{type(model).__name__} has no predict_proba")
    names = _booster_feature_names(model) or list(input_names or [])
    if len(names) != ensemble.n_features:
        raise NotSupportedError(f"{type(model).__name__} reads {ensemble.n_features} features but "
                                f"{len(names)} input names are known (save it with feature names or a signature)")
    return Program(names, lambda bound: compile_trees(ensemble, [bound[n] for n in names], output=output),
                   [type(model).__name__], node_count(ensemble))


def _booster_feature_names(model: Any) -> list[str] | None:
    if hasattr(model, "get_booster"):
        names = model.get_booster().feature_names
    elif hasattr(model, "booster_"):
        names = model.booster_.feature_name()
    elif hasattr(model, "feature_name"):
        names = model.feature_name()
    else:
        names = getattr(model, "feature_names", None)
    if not names or _default_names(names):
        return None  # positional names: bind by the signature's order instead
    return [str(n) for n in names]


def _default_names(names: Sequence[str]) -> bool:
    return all(str(n) in (f"f{i}", f"Column_{i}") for i, n in enumerate(names))


# ---- Spark ML ----------------------------------------------------------------------------------

def spark_program(model: Any, input_names: Sequence[str], *, outputs: Sequence[str] = ("prediction",)) -> Program:
    """A Spark ML ``PipelineModel`` (or one model) whose stages all compile; ``outputs`` are the
    columns the pyfunc returns (one → that column; several → a struct of them)."""
    from spark_models.native.spark_stages import compile_stage, is_transformer_supported

    stages = list(getattr(model, "stages", [model]))
    for i, stage in enumerate(stages):
        name = type(stage).__name__
        if not (is_transformer_supported(stage) or name in _SPARK_LINEAR or name in _SPARK_TREES):
            raise NotSupportedError(f"pipeline stage {i} ({name}) does not compile to a Spark expression")
    scorers = {i: _model_stage_scorers(s, f"pipeline stage {i} ({type(s).__name__}): ")
               for i, s in enumerate(stages) if not is_transformer_supported(s)}
    nodes = sum(n for per_stage in scorers.values() for _, n in per_stage.values())
    names = list(input_names)

    def build(bound: Bound) -> Column:
        env: dict[str, Any] = {n: bound[n] for n in names}
        for i, stage in enumerate(stages):
            where = f"pipeline stage {i} ({type(stage).__name__})"
            if is_transformer_supported(stage):
                compile_stage(stage, env, where=where)
            else:
                _spark_model_stage(stage, env, where, scorers[i])
        missing = [o for o in outputs if o not in env]
        if missing:
            raise NotSupportedError(f"the pipeline produces no column(s) {missing}")
        if len(outputs) == 1:
            return env[outputs[0]]
        return F.struct(*[_as_column(env[o]).alias(o) for o in outputs])

    build(_placeholders(names))  # every stage checked now, before any scoring
    return Program(names, build, [type(s).__name__ for s in stages], nodes)


def _placeholders(names: Sequence[str]) -> dict[str, Column]:
    return {n: F.col("`" + n.replace("`", "``") + "`") for n in names}


def _as_column(value: Any) -> Column:
    return F.array(*[v.cast("double") for v in value]) if isinstance(value, list) else value


def _model_stage_scorers(stage: Any, where: str) -> dict[str, tuple[Callable, int]]:
    """Output column → (scorer, tree nodes) of a Spark ML linear or tree model stage."""
    outputs = [("predictionCol", "predict"), ("probabilityCol", "predict_proba"), ("rawPredictionCol", "raw")]
    classifier = stage.hasParam("probabilityCol")
    scorers, nodes = {}, None
    trees = tree_sources.from_model(stage) if type(stage).__name__ in _SPARK_TREES else None
    for param, output in outputs[:3 if classifier else 1]:
        column = stage.getOrDefault(param)
        if column:
            scorer, n = _estimator(stage, output, where, trees)
            scorers[column] = (scorer, n if nodes is None else 0)  # the same trees, counted once
            nodes = n
    return scorers


def _spark_model_stage(stage: Any, env: dict[str, Any], where: str, scorers: dict[str, tuple[Callable, int]]) -> None:
    """A Spark ML linear or tree model: its prediction, probability and raw prediction columns."""
    features = env.get(stage.getFeaturesCol())
    if features is None:
        raise NotSupportedError(f"{where}: its features column {stage.getFeaturesCol()!r} is not produced earlier")
    features = features if isinstance(features, list) else [features]
    for column, (scorer, _) in scorers.items():
        env[column] = scorer(features)
