"""``OneHotEncoder`` and ``OrdinalEncoder`` as Spark Columns: each feature's category → output table
is read off the fitted encoder itself (its own ``transform`` of the known categories, ``None`` and
one made-up unknown value), so every ``drop``/``handle_unknown``/infrequent setting matches."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_models.native.expressions import lit_double
from spark_models.native.sklearn_checks import _checked, _cls, _fail, _is_missing_value, _refuse


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

