"""Shared pieces of the scikit-learn step compilers: names for errors, and sklearn's input checks
(null → NaN; ±inf, and NaN where sklearn refuses it, fail the query naming the column and value)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_models.exceptions import NotSupportedError
from spark_models.native.expressions import lit_double

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


def _is_missing_value(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))
