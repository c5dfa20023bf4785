"""Compile linear models to pure Spark ``Column`` expressions (no Python worker at scoring).

Supported: scikit-learn ``LinearRegression``, ``Ridge``, ``Lasso``, ``ElasticNet``,
``LogisticRegression`` (binary and multinomial), ``LinearSVC``; Spark ML
``LinearRegressionModel`` and ``LogisticRegressionModel`` (binary and multinomial).

``compile_linear(model, input_columns, output=...)`` returns one Column:

- ``"predict"``: regression → double (``array<double>`` for multi-target); classifiers → the
  class label (sklearn: the ``classes_`` value; Spark ML: the label index as double).
- ``"predict_proba"``: ``array<double>`` in class order (classifiers with probabilities).
- ``"raw"``: the decision function — double for one score, ``array<double>`` for several
  (Spark ML: ``rawPrediction``, i.e. ``[-m, m]`` for a binary model).

Nulls: a null in any input gives a null result. NaN/inf inputs give what numpy gives
(every term is kept, so ``NaN * 0`` stays NaN; a NaN binary score predicts the negative class,
a NaN multiclass score wins argmax as numpy's ``argmax`` does).

Multinomial probabilities: up to ``classes**3 * (features + 1) <= DIRECT_SOFTMAX_LIMIT`` the
softmax is written out directly (code-generated); wider models bind the scores once with
higher-order functions so the tree stays linear in size (interpreted, ~2.5x slower per row).
Spark ML multinomial ``predict`` is the argmax of the probabilities, as ``transform`` does; a row
with some but not all probabilities NaN (inf inputs) may pick a different class than Spark ML's
``Vector.argmax``, which skips NaN.

For Spark ML models the features are either the columns a ``VectorAssembler`` assembled, or
the vector column itself (one Column, or use ``expressions.vector_elements``).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_models.exceptions import InvalidArgumentError, NotSupportedError
from spark_models.native import expressions as E

_log = logging.getLogger(__name__)

OUTPUTS = ("predict", "predict_proba", "raw")
SKLEARN_REGRESSORS = {"LinearRegression", "Ridge", "Lasso", "ElasticNet"}
SKLEARN_CLASSIFIERS = {"LogisticRegression", "LinearSVC"}
SPARK_MODELS = {"LinearRegressionModel", "LogisticRegressionModel"}


def _name(model: Any) -> str:
    return type(model).__name__


def _refuse(model: Any, reason: str) -> NotSupportedError:
    return NotSupportedError(f"cannot compile {_name(model)} to a Spark expression: {reason}")


def _is_spark_ml(model: Any) -> bool:
    return type(model).__module__.startswith("pyspark.ml")


def compile_linear(model: Any, input_columns: Sequence[Column | str], *, output: str = "predict") -> Column:
    """A Column computing ``output`` of the fitted linear ``model`` from ``input_columns``."""
    if output not in OUTPUTS:
        raise InvalidArgumentError(f"output must be one of {OUTPUTS}, not {output!r}")
    columns = [F.col(c) if isinstance(c, str) else c for c in input_columns]
    if not columns:
        raise InvalidArgumentError("input_columns is empty")
    name = _name(model)
    if _is_spark_ml(model) and name in SPARK_MODELS:
        return _compile_spark(model, columns, output)
    if type(model).__module__.startswith("sklearn.") and name in SKLEARN_REGRESSORS | SKLEARN_CLASSIFIERS:
        return _compile_sklearn(model, columns, output)
    raise _refuse(model, "only " + ", ".join(sorted(SKLEARN_REGRESSORS | SKLEARN_CLASSIFIERS | SPARK_MODELS))
                  + " are compiled")


# ---------------------------------------------------------------- scikit-learn


def _sklearn_params(model: Any, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(coef as 2-D [n_scores, n_features], intercept as 1-D [n_scores]) in float64."""
    if not hasattr(model, "coef_"):
        raise _refuse(model, "it is not fitted (no coef_)")
    coef = np.asarray(model.coef_)
    if not np.issubdtype(coef.dtype, np.floating) or hasattr(coef, "toarray"):
        raise _refuse(model, f"coef_ has unsupported type {type(model.coef_).__name__}/{coef.dtype}")
    if coef.dtype != np.float64:
        raise _refuse(model, f"coef_ is {coef.dtype}; only float64 models compile exactly")
    coef2 = coef.reshape(1, -1) if coef.ndim == 1 else coef
    if coef2.shape[1] != n_columns:
        raise InvalidArgumentError(
            f"{_name(model)} has {coef2.shape[1]} features but {n_columns} input columns were given")
    intercept = np.broadcast_to(np.asarray(model.intercept_, dtype=np.float64), (coef2.shape[0],))
    return coef2, intercept


def _array(columns: Sequence[Column], values: Sequence[Column]) -> Column:
    """``array<double>`` of ``values``, null (not an array of nulls) when an input is null."""
    return E.null_if_any(columns, E.double_array(values))


# Direct softmax trees grow as classes**3 * features; past this, bind with higher-order functions
# (interpreted rather than code-generated: ~2.5x slower per row, but the tree stays linear).
DIRECT_SOFTMAX_LIMIT = 2000


def _softmax_direct(scores: Sequence[Column], n_features: int) -> bool:
    return len(scores) ** 3 * (n_features + 1) <= DIRECT_SOFTMAX_LIMIT


def _proba_array(columns: Sequence[Column], scores: Sequence[Column]) -> Column:
    if _softmax_direct(scores, len(columns)):
        return _array(columns, E.softmax(scores))
    return E.null_if_any(columns, E.softmax_array(scores))


def _scores(columns: Sequence[Column], coef: np.ndarray, intercept: np.ndarray) -> list[Column]:
    return [E.dot(columns, coef[k], intercept[k]) for k in range(coef.shape[0])]


def _compile_sklearn(model: Any, columns: list[Column], output: str) -> Column:
    coef, intercept = _sklearn_params(model, len(columns))
    scores = _scores(columns, coef, intercept)
    one = np.asarray(model.coef_).ndim == 1
    if _name(model) in SKLEARN_REGRESSORS:
        if output == "predict_proba":
            raise _refuse(model, "a regressor has no predict_proba")
        return scores[0] if one else _array(columns, scores)
    classes = list(np.asarray(model.classes_))
    binary = len(classes) <= 2
    if output == "raw":
        return scores[0] if binary else _array(columns, scores)
    if output == "predict":
        if binary:
            return E.pick_label(classes, E.positive_index(scores[0]))
        return E.null_if_any(columns, E.pick_label(classes, E.argmax_index(scores)))
    if _name(model) == "LinearSVC":
        raise _refuse(model, "LinearSVC has no predict_proba")
    return _sklearn_logistic_proba(model, columns, scores, binary)


def _sklearn_logistic_proba(model: Any, columns: list[Column], scores: list[Column], binary: bool) -> Column:
    """sklearn 1.x: binary → [1 - expit(z), expit(z)]; multiclass → softmax(z)."""
    multi_class = getattr(model, "multi_class", "deprecated")
    if not binary and multi_class == "ovr":
        raise _refuse(model, "multi_class='ovr' probabilities are not compiled")
    if binary:
        p = E.sigmoid(scores[0])
        return _array(columns, [E.lit_double(1.0) - p, p])
    return _proba_array(columns, scores)


# ---------------------------------------------------------------- Spark ML


def _spark_columns(model: Any, columns: list[Column]) -> list[Column]:
    n = int(model.numFeatures)
    if len(columns) == 1 and n != 1:
        return E.vector_elements(columns[0], n)
    if len(columns) != n:
        raise InvalidArgumentError(
            f"{_name(model)} has {n} features but {len(columns)} input columns were given "
            "(pass the VectorAssembler's input columns or the one vector column)")
    return columns


def _dense(values: Any) -> np.ndarray:
    return np.asarray(values.toArray(), dtype=np.float64)


def _compile_spark(model: Any, columns: list[Column], output: str) -> Column:
    columns = _spark_columns(model, columns)
    if _name(model) == "LinearRegressionModel":
        if output == "predict_proba":
            raise _refuse(model, "a regressor has no probabilities")
        return E.dot(columns, _dense(model.coefficients), float(model.intercept))
    if model.numClasses == 2 and not _spark_is_multinomial(model):
        return _spark_binary(model, columns, output)
    coef = _dense(model.coefficientMatrix)
    intercept = _dense(model.interceptVector)
    scores = _scores(columns, coef, intercept)
    if output == "raw":
        return _array(columns, scores)
    if output == "predict_proba":
        return _proba_array(columns, scores)
    if model.isDefined("thresholds"):
        raise _refuse(model, "per-class thresholds are not compiled")
    # Spark predicts the argmax of the probabilities (first maximum), not of the margins.
    if _softmax_direct(scores, len(columns)):
        index = E.argmax_index(E.softmax(scores))
    else:
        index = E.array_argmax(E.softmax_array(scores))
    return E.null_if_any(columns, index.cast("double"))


def _spark_is_multinomial(model: Any) -> bool:
    return int(model.coefficientMatrix.numRows) > 1


def _spark_binary(model: Any, columns: list[Column], output: str) -> Column:
    """Binary Spark LR: raw = [-m, m]; p0 = 1 / (1 + exp(m)), p1 = 1 - p0; predict = p1 > t."""
    margin = E.dot(columns, _dense(model.coefficients), float(model.intercept))
    if output == "raw":
        return _array(columns, [-margin, margin])
    negative = E.sigmoid(-margin)
    score = E.lit_double(1.0) - negative
    if output == "predict_proba":
        return _array(columns, [negative, score])
    threshold = float(model.getThreshold())
    # Spark compares the positive probability with the threshold; NaN > t is false in the JVM.
    above = F.nanvl(score, E.lit_double(-1.0)) > E.lit_double(threshold)
    return above.cast("double")
