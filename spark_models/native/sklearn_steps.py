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

import warnings
from typing import Any, Callable, Sequence

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_models.exceptions import NotSupportedError
from spark_models.native.expressions import lit_double

Compiled = tuple[list[Column], "list[str] | None"]
_INF = float("inf")


def _cls(step: Any) -> str:
    return type(step).__name__


def _refuse(step: Any, where: str, reason: str) -> NotSupportedError:
    place = f"{where} > " if where else ""
    return NotSupportedError(f"{place}{_cls(step)}: cannot compile to a Spark expression: {reason}")


def _label(where: str, step: Any) -> str:
    return f"{where} > {_cls(step)}" if where else _cls(step)


def _fail(message_prefix: str, value: Column) -> Column:
    """``raise_error`` with ``message_prefix`` followed by the offending value."""
    shown = F.coalesce(value.cast("string"), F.lit("None"))
    return F.raise_error(F.concat(F.lit(message_prefix), shown))


def _num(column: Column) -> Column:
    """A double Column with null → NaN (what sklearn receives for a Spark null)."""
    return F.coalesce(column.cast("double"), lit_double(float("nan")))


def _checked(column: Column, name: str, where: str, *, allow_nan: bool) -> Column:
    """``_num(column)``, failing the query where sklearn's input validation raises."""
    x = _num(column)
    bad = F.abs(x) == F.lit(_INF)
    what = "infinity"
    if not allow_nan:
        bad, what = bad | F.isnan(x), "NaN or infinity"
    prefix = f"{where}: input contains {what} in column '{name}': "
    return F.when(bad, _fail(prefix, x)).otherwise(x)


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


# ----------------------------------------------------------------------------- encoders
def _is_missing_value(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _probe(step: Any, j: int, values: list[Any]) -> np.ndarray:
    """``step.transform`` of rows varying only feature ``j`` (the others at a fitted category)."""
    import pandas as pd

    cats = step.categories_
    columns = {}
    for k, cat in enumerate(cats):
        numeric = cat.dtype.kind in "iufb"
        col = values if k == j else [cat[0]] * len(values)
        columns[k] = np.asarray(col, dtype=float if numeric else object)
    frame = pd.DataFrame(columns)
    fitted = getattr(step, "feature_names_in_", None)
    if fitted is not None:
        frame.columns = list(fitted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = step.transform(frame)
    out = out.toarray() if hasattr(out, "toarray") else np.asarray(out, dtype=float)
    return out


def _unknown_sentinel(cat: np.ndarray) -> Any:
    if cat.dtype.kind in "iufb":
        finite = cat[np.isfinite(cat.astype(float))]
        return float(np.max(finite)) + 1.0 if len(finite) else 0.0
    known = {v for v in cat if isinstance(v, str)}
    sentinel = "\x00unknown"
    while sentinel in known:
        sentinel += "\x00"
    return sentinel


def _category_code(x: Column, known: list[Any], numeric: bool) -> Column:
    """Index of ``x`` in ``known`` (null when not found) via a literal map; for numbers
    ``-0.0`` is folded into ``0.0`` (``+ 0.0``) and NaN is matched with ``isnan``."""
    pairs = [(v, i) for i, v in enumerate(known) if not (numeric and np.isnan(v))]
    if numeric:
        pairs = [(v + 0.0, i) for v, i in pairs]
        key = x + lit_double(0.0)
    else:
        key = x
    code = F.lit(None).cast("int")
    if pairs:
        table = F.create_map(*[t for v, i in pairs
                               for t in ((lit_double(v) if numeric else F.lit(v)), F.lit(i))])
        code = F.try_element_at(table, key)
    nan_at = [i for i, v in enumerate(known) if numeric and np.isnan(v)]
    if nan_at:
        code = F.when(F.isnan(x), F.lit(nan_at[0])).otherwise(code)
    return code


def _encode_feature(step, j: int, column: Column, name: str, where: str) -> list[Column]:
    """The output Columns of feature ``j`` of a fitted One-Hot/Ordinal encoder."""
    cat = step.categories_[j]
    numeric = cat.dtype.kind in "iufb"
    if not numeric and not all(isinstance(v, str) or _is_missing_value(v) for v in cat):
        raise _refuse(step, where, f"categories of column '{name}' mix strings and numbers")
    raises = step.handle_unknown == "error"
    if numeric:
        x = _checked(column, name, where, allow_nan=True)
        known = [float(v) for v in cat]
        probes = known + ([] if raises else [_unknown_sentinel(cat)])
    else:
        x = column
        known = [v for v in cat if isinstance(v, str)]
        has_none = any(v is None for v in cat)
        probes = known + ([None] if has_none or not raises else []) + (
            [] if raises else [_unknown_sentinel(cat)])
    table = _probe(step, j, probes)
    start = int(np.sum(_output_counts(step)[:j]))
    table = table[:, start:start + _output_counts(step)[j]]
    code = _category_code(x, known, numeric)
    n = len(known)
    if not numeric:
        null_code = F.lit(n) if len(probes) > n and (probes[n] is None) else None
        if null_code is not None:
            code = F.when(x.isNull(), null_code).otherwise(code)
    unknown = F.lit(len(probes) - 1) if not raises else _fail(
        f"{where}: {_cls(step)} found an unknown category in column '{name}': ", x).cast("int")
    code = F.coalesce(code, unknown)
    return [F.get(F.array(*[lit_double(float(v)) for v in table[:, k]]), code)
            for k in range(table.shape[1])]


def _output_counts(step: Any) -> list[int]:
    if _cls(step) == "OrdinalEncoder":
        return [1] * len(step.categories_)
    return [int(n) for n in step._compute_n_features_outs()]


def _encoder(step, features, names, where):
    if step.handle_unknown not in ("error", "ignore", "infrequent_if_exist", "warn",
                                   "use_encoded_value"):
        raise _refuse(step, where, f"handle_unknown={step.handle_unknown!r}")
    outs: list[Column] = []
    for j, c in enumerate(features):
        outs += _encode_feature(step, j, c, names[j], where)
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
