"""Small builders of pure Spark ``Column`` expressions (no Python UDF, no Arrow).

Trees are kept shallow: sums are pairwise (depth log2 n), labels are looked up in a literal
array by index, argmax is one ``greatest`` over ``struct(score, -index)``.

Nulls: arithmetic propagates null, so any null input gives a null result. NaN follows IEEE
arithmetic as numpy does; the places where Spark's ordering differs from numpy's (Spark ranks
NaN above every number) are handled where they matter (``positive_index``).
"""

from __future__ import annotations

from functools import reduce
from typing import Any, Sequence

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F


def lit_double(value: float) -> Column:
    """A DoubleType literal holding exactly ``value``."""
    return F.lit(float(value)).cast("double")


def lit_value(value: Any) -> Column:
    """A literal of a numpy/python scalar (class labels): ints stay ints, strings strings."""
    if isinstance(value, np.generic):
        value = value.item()
    return F.lit(value)


def pairwise_sum(terms: Sequence[Column]) -> Column:
    """Sum of ``terms`` as a balanced tree (shallow, unlike a left-deep chain)."""
    if not terms:
        raise ValueError("pairwise_sum of no terms")
    level = list(terms)
    while len(level) > 1:
        paired = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def dot(columns: Sequence[Column], coefficients: Sequence[float], intercept: float = 0.0) -> Column:
    """``sum(x_i * c_i) + intercept``; every term is kept (so NaN*0 and inf*0 give NaN as numpy)."""
    if len(columns) != len(coefficients):
        raise ValueError(f"{len(columns)} columns but {len(coefficients)} coefficients")
    terms = [col.cast("double") * lit_double(c) for col, c in zip(columns, coefficients)]
    return pairwise_sum(terms) + lit_double(intercept)


def sigmoid(z: Column) -> Column:
    """``1 / (1 + exp(-z))`` — the form numpy/scipy ``expit`` uses; never divides by < 1."""
    return lit_double(1.0) / (lit_double(1.0) + F.exp(-z))


def softmax(scores: Sequence[Column]) -> list[Column]:
    """Softmax with the max-subtraction trick, as ``sklearn.utils.extmath.softmax``."""
    top = F.greatest(*scores) if len(scores) > 1 else scores[0]
    exps = [F.exp(s - top) for s in scores]
    total = reduce(lambda a, b: a + b, exps)  # numpy sums a short row left to right
    return [e / total for e in exps]


def let(value: Column, body) -> Column:
    """``body(v)`` with ``v`` bound once to ``value`` (a one-element ``transform``), so a large
    subexpression used several times is not copied into the tree."""
    return F.get(F.transform(F.array(value), body), 0)


def softmax_array(scores: Sequence[Column]) -> Column:
    """``array<double>`` softmax whose tree grows as O(scores), not O(scores**3).

    The same arithmetic as :func:`softmax` (max subtracted, left-to-right sum, division), written
    with higher-order functions (interpreted, not code-generated) so wide models stay small.
    """
    def normalise(z: Column) -> Column:
        top = F.array_max(z)
        return let(F.transform(z, lambda x: F.exp(x - top)),
                   lambda e: let(F.aggregate(e, lit_double(0.0), lambda acc, x: acc + x),
                                 lambda total: F.transform(e, lambda x: x / total)))

    return let(F.array(*[s.cast("double") for s in scores]), normalise)


def array_argmax(values: Column) -> Column:
    """0-based index of the first maximum of an array (NaN ranks highest, as Spark orders it)."""
    return let(values, lambda v: (F.array_position(v, F.array_max(v)) - 1).cast("int"))


def argmax_index(scores: Sequence[Column]) -> Column:
    """Index of the first maximum (numpy ``argmax``: ties → first; the first NaN wins).

    Spark orders NaN above every number and ``greatest`` of ``struct(score, -i)`` breaks ties
    toward the smaller ``i``, which is exactly numpy's rule. Callers gate nulls themselves.
    """
    if len(scores) == 1:
        return F.lit(0)
    best = F.greatest(*[F.struct(s.alias("s"), F.lit(-i).alias("i")) for i, s in enumerate(scores)])
    return -best.getField("i")


def positive_index(z: Column) -> Column:
    """1 where ``z > 0`` in numpy's sense (NaN → 0), 0 otherwise, null for null."""
    return (F.nanvl(z, lit_double(0.0)) > lit_double(0.0)).cast("int")


def any_null(columns: Sequence[Column]) -> Column:
    """True when any of ``columns`` is null (a balanced OR tree)."""
    level = [c.isNull() for c in columns]
    while len(level) > 1:
        paired = [level[i] | level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def null_if_any(columns: Sequence[Column], value: Column) -> Column:
    """``value``, or null when any of ``columns`` is null."""
    return F.when(~any_null(columns), value)


def pick_label(labels: Sequence[Any], index: Column) -> Column:
    """``labels[index]`` from a literal array; ``get`` so a null index gives null (plain
    indexing fails on a null index under ANSI codegen in Spark 4)."""
    return F.get(F.array(*[lit_value(v) for v in labels]), index)


def double_array(values: Sequence[Column]) -> Column:
    """An ``array<double>`` of ``values``."""
    return F.array(*[v.cast("double") for v in values])


def vector_elements(vector: Column | str, size: int) -> list[Column]:
    """The ``size`` elements of a Spark ML vector column, as double Columns."""
    from pyspark.ml.functions import vector_to_array

    column = F.col(vector) if isinstance(vector, str) else vector
    array = vector_to_array(column, "float64")
    return [array.getItem(i) for i in range(size)]


def expression_size(column: Column) -> int:
    """A rough size of ``column``'s expression (characters of its string form)."""
    return len(str(column))
