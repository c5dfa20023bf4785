"""Compile fitted scikit-learn preprocessing steps to pure Spark ``Column`` expressions.

``compile_transform(step, features, names, where=...)`` turns one fitted transformer into the
Columns of its ``transform`` output (in sklearn's column order) and their names
(``get_feature_names_out()`` when the step has it, else ``None``). ``split_pipeline`` flattens
nested ``Pipeline`` objects into their transformer steps and the final estimator.

Supported: ``Pipeline`` (of transformers), ``ColumnTransformer`` (any column selection — the
fitted input indices are used; ``remainder`` drop/passthrough/transformer; 'drop'/'passthrough'
entries), ``StandardScaler``, ``MinMaxScaler`` (``clip``), ``MaxAbsScaler`` (``clip``),
``RobustScaler``, ``SimpleImputer`` (all strategies, NaN/number/string/None ``missing_values``,
``add_indicator``, ``keep_empty_features``), ``OneHotEncoder`` and ``OrdinalEncoder`` (every
``drop``/``handle_unknown``/infrequent-category setting: the category → output table is read off
the fitted encoder itself), ``KBinsDiscretizer`` (ordinal and one-hot), ``Binarizer``,
``FunctionTransformer(func=None)``. Anything else raises ``NotSupportedError`` naming the step.

Exactness: the arithmetic is sklearn's, in sklearn's order (``(x - mean_) / scale_``,
``x * scale_ + min_``, ``x / scale_``, ``(x - center_) / scale_``), so results are bitwise equal.

Nulls and bad values: a null numeric input is NaN (as sklearn receives it after the UDF
conversion); NaN passes through scalers and encoders as in sklearn; where sklearn raises at
transform time (±inf anywhere, NaN in ``Binarizer``/``KBinsDiscretizer``/validating
``FunctionTransformer``/number-``missing_values`` imputers, unknown categories with
``handle_unknown='error'``) the query fails with ``raise_error`` naming the step, the column and
the value. A null string reaches encoders as ``None``: it matches a fitted ``None`` category,
else it is an unknown category (sklearn does the same). Columns passed through unchanged keep
their type inside a pipeline; at the top level numeric pass-throughs are cast to double.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_models.native.expressions import lit_double
from spark_models.native.sklearn_checks import _checked, _cls, _is_missing_value, _label, _num, _refuse
from spark_models.native.sklearn_encoders import _encoder

Compiled = tuple[list[Column], "list[str] | None"]


def _feature_names(step: Any, names: Sequence[str] | None, n: int) -> list[str]:
    if names is not None:
        return list(names)
    fitted = getattr(step, "feature_names_in_", None)
    return [str(v) for v in fitted] if fitted is not None else [f"x{j}" for j in range(n)]


def _names_out(step: Any, names: Sequence[str] | None) -> list[str] | None:
    """``step.get_feature_names_out`` (given the input names when known), else ``None``."""
    getter = getattr(step, "get_feature_names_out", None)
    if getter is None:
        return None
    for args in ((list(names),) if names is not None else ()) + ((),):
        try:
            return [str(v) for v in getter(*args)]
        except Exception:  # noqa: BLE001 - any failure just means "no names"
            continue
    return None


# ----------------------------------------------------------------------------- scalers
def _affine(step: Any, features: list[Column], names: list[str], where: str,
            ops: Callable[[int, Column], Column]) -> list[Column]:
    return [ops(j, _checked(c, names[j], where, allow_nan=True)) for j, c in enumerate(features)]


def _clip(x: Column, low: float, high: float) -> Column:
    """``np.clip`` (NaN stays NaN; Spark's least/greatest would rank NaN highest)."""
    clipped = F.least(F.greatest(x, lit_double(low)), lit_double(high))
    return F.when(F.isnan(x), x).otherwise(clipped)


def _center_scale(features, names, where, center, scale) -> list[Column]:
    """``(x - center) / scale``, each part skipped when ``None`` (sklearn's in-place order)."""
    def op(j: int, x: Column) -> Column:
        if center is not None:
            x = x - lit_double(center[j])
        return x / lit_double(scale[j]) if scale is not None else x
    return [op(j, _checked(c, names[j], where, allow_nan=True)) for j, c in enumerate(features)]


def _standard(step, features, names, where):
    return _center_scale(features, names, where, step.mean_ if step.with_mean else None,
                         step.scale_)


def _robust(step, features, names, where):
    return _center_scale(features, names, where,
                         step.center_ if step.with_centering else None,
                         step.scale_ if step.with_scaling else None)


def _minmax(step, features, names, where):
    low, high = step.feature_range

    def op(j: int, x: Column) -> Column:
        x = x * lit_double(step.scale_[j]) + lit_double(step.min_[j])
        return _clip(x, low, high) if step.clip else x
    return _affine(step, features, names, where, op)


def _maxabs(step, features, names, where):
    def op(j: int, x: Column) -> Column:
        x = x / lit_double(step.scale_[j])
        return _clip(x, -1.0, 1.0) if getattr(step, "clip", False) else x
    return _affine(step, features, names, where, op)


def _binarizer(step, features, names, where):
    t = lit_double(step.threshold)
    return [F.when(_checked(c, names[j], where, allow_nan=False) > t, lit_double(1.0))
            .otherwise(lit_double(0.0)) for j, c in enumerate(features)]


def _function(step, features, names, where):
    if step.func is not None:
        raise _refuse(step, where, "only func=None (identity) is supported, not a custom func")
    if step.validate:
        return [_checked(c, names[j], where, allow_nan=False) for j, c in enumerate(features)]
    return list(features)


def _kbins(step, features, names, where):
    if step.dtype not in (None, np.float64):
        raise _refuse(step, where, f"dtype={step.dtype!r} (only float64) is supported")
    outs: list[Column] = []
    for j, c in enumerate(features):
        x = _checked(c, names[j], where, allow_nan=False)
        inner = step.bin_edges_[j][1:-1]
        code: Column = lit_double(float(len(inner)))
        for k in range(len(inner) - 1, -1, -1):  # searchsorted(inner, x, side="right")
            code = F.when(x < lit_double(inner[k]), lit_double(float(k))).otherwise(code)
        if step.encode == "ordinal":
            outs.append(code)
        else:
            outs += [F.when(code == lit_double(float(k)), lit_double(1.0)).otherwise(lit_double(0.0))
                     for k in range(int(step.n_bins_[j]))]
    return outs


# ----------------------------------------------------------------------------- imputer
def _missing(x: Column, missing: Any, is_text: bool) -> Column:
    """sklearn's ``_get_mask``: which values count as missing."""
    if missing is None:
        return x.isNull()
    if isinstance(missing, float) and np.isnan(missing):
        return F.lit(False) if is_text else F.isnan(x)
    return x.eqNullSafe(F.lit(missing)) if is_text else (x == lit_double(float(missing)))


def _imputer(step, features, names, where):
    stats = step.statistics_
    fit_dtype = getattr(step, "_fit_dtype", None)
    is_text = (fit_dtype.kind == "O") if fit_dtype is not None else (
        any(isinstance(v, str) for v in stats))
    mv = step.missing_values
    if mv is not None and not isinstance(mv, (int, float, str)):
        raise _refuse(step, where, f"missing_values={mv!r}")
    nan_mv = isinstance(mv, float) and np.isnan(mv)
    if is_text:
        xs = list(features)
    else:
        xs = [_checked(c, names[j], where, allow_nan=nan_mv) for j, c in enumerate(features)]
    masks = [_missing(x, mv, is_text) for x in xs]
    outs = []
    for j, x in enumerate(xs):
        value = stats[j]
        empty = _is_missing_value(value)
        if empty and not step.keep_empty_features:
            continue
        fill = F.lit(value) if is_text else lit_double(0.0 if empty else float(value))
        outs.append(F.when(masks[j], fill).otherwise(x))
    indicator = getattr(step, "indicator_", None)
    if step.add_indicator and indicator is not None:
        outs += [masks[j].cast("double") for j in indicator.features_]
    return outs


# ----------------------------------------------------------------------------- composites
def _column_transformer(step, features, names, where):
    indices = step._transformer_to_input_indices
    outs: list[Column] = []
    for name, trans, _columns in step.transformers_:
        picked = [int(i) for i in indices.get(name, [])]
        if _is_drop(trans) or not picked:
            continue
        sub_where = f"{where} > ColumnTransformer '{name}'" if where else (
            f"ColumnTransformer '{name}'")
        sub_features = [features[i] for i in picked]
        if trans == "passthrough":
            outs += sub_features
            continue
        sub_cols, _ = _compile(trans, sub_features, [names[i] for i in picked], sub_where)
        expected = step.output_indices_[name]
        if len(sub_cols) != expected.stop - expected.start:
            raise _refuse(trans, sub_where, f"compiled {len(sub_cols)} outputs, sklearn has "
                                            f"{expected.stop - expected.start}")
        outs += sub_cols
    return outs


def _is_drop(trans: Any) -> bool:
    return isinstance(trans, str) and trans == "drop"


def _pipeline(step, features, names, where):
    cols: list[Column] = list(features)
    current: list[str] | None = list(names)
    where = f"{where} > " if where else ""
    for name, sub in step.steps:
        if not _is_passthrough(sub) and not hasattr(sub, "transform"):
            raise _refuse(sub, f"{where}Pipeline step '{name}'",
                          "is not a transformer (split off the final estimator first)")
    for name, sub in step.steps:
        if _is_passthrough(sub):
            continue
        cols, current = _compile(sub, cols, current, f"{where}Pipeline step '{name}'")
    return cols


_HANDLERS: dict[str, Callable[..., list[Column]]] = {
    "StandardScaler": _standard,
    "MinMaxScaler": _minmax,
    "MaxAbsScaler": _maxabs,
    "RobustScaler": _robust,
    "Binarizer": _binarizer,
    "FunctionTransformer": _function,
    "KBinsDiscretizer": _kbins,
    "SimpleImputer": _imputer,
    "OneHotEncoder": _encoder,
    "OrdinalEncoder": _encoder,
    "ColumnTransformer": _column_transformer,
    "Pipeline": _pipeline,
}


def _compile(step: Any, features: list[Column], names: list[str] | None, where: str) -> Compiled:
    """Compile one step; pass-through Columns come back as the very objects given."""
    handler = _HANDLERS.get(_cls(step))
    if handler is None or not type(step).__module__.startswith("sklearn."):
        raise _refuse(step, where, "this transformer class is not supported")
    n_in = getattr(step, "n_features_in_", None)
    if n_in is not None and n_in != len(features):
        raise _refuse(step, where, f"fitted on {n_in} features but given {len(features)}")
    full_names = _feature_names(step, names, len(features))
    composite = _cls(step) in ("Pipeline", "ColumnTransformer")
    outs = handler(step, list(features), full_names, where if composite else _label(where, step))
    return outs, _names_out(step, names if names is not None else None)


def compile_transform(step: Any, features: list[Column], names: list[str] | None, *,
                      where: str = "") -> Compiled:
    """The output Columns of ``step.transform`` (doubles, sklearn's column order) and their
    names (``get_feature_names_out()`` when available, else ``None``).

    ``features`` holds one Column per fitted input feature in fitting order; ``names`` their
    ``feature_names_in_`` when known; ``where`` is the step's path for error messages.
    Raises ``NotSupportedError`` naming the step and the parameter it cannot compile.
    """
    outs, out_names = _compile(step, list(features), None if names is None else list(names),
                               where)
    given = {id(c) for c in features}
    return [_num(c) if id(c) in given else c for c in outs], out_names


def split_pipeline(model: Any) -> tuple[list[tuple[str, Any]], Any]:
    """``(transformer steps, final estimator)`` of a Pipeline, nested Pipelines flattened.

    Names of nested steps are joined with ``__`` (sklearn's parameter naming); 'passthrough'
    and ``None`` steps are dropped; the final estimator is the last step of the flattened
    pipeline (``None`` when it is 'passthrough'/``None``). A non-Pipeline model gives
    ``([], model)``.
    """
    if _cls(model) != "Pipeline":
        return [], model
    flat: list[tuple[str, Any]] = []
    _flatten(model, "", flat)
    *steps, (_, final) = flat
    return [(n, s) for n, s in steps if not _is_passthrough(s)], (
        None if _is_passthrough(final) else final)


def _is_passthrough(step: Any) -> bool:
    return step is None or (isinstance(step, str) and step == "passthrough")


def _flatten(pipeline: Any, prefix: str, out: list[tuple[str, Any]]) -> None:
    for name, sub in pipeline.steps:
        if _cls(sub) == "Pipeline":
            _flatten(sub, f"{prefix}{name}__", out)
        else:
            out.append((f"{prefix}{name}", sub))
