"""Compile fitted Spark ML feature stages to pure Spark ``Column`` expressions.

``compile_stage(stage, env, where=...)`` adds the stage's output column(s) to ``env``, a dict
from column name to a scalar Column, or to the list of element Columns of a vector column
(vector outputs are such lists). An input missing from ``env`` is read as ``F.col(name)``
(vector inputs of known size through ``vector_to_array``). ``is_transformer_supported(stage)``
says whether a stage (class and parameters) can be compiled.

Supported: ``VectorAssembler``, ``StandardScalerModel``, ``MinMaxScalerModel``,
``MaxAbsScalerModel``, ``ImputerModel``, ``StringIndexerModel``, ``OneHotEncoderModel``,
``Bucketizer``, ``Binarizer``, ``IndexToString`` (with ``labels`` set), and a
``PipelineModel`` of those. Everything else (model stages, ``SQLTransformer``, any
``handleInvalid='skip'``: an expression cannot drop rows) raises ``NotSupportedError``.

Exactness: each stage's arithmetic is Spark's own: StandardScaler ``(x - mean) * (1 / std)``
(``1/std`` precomputed, 0 for a zero std), MinMaxScaler ``(x - min) * (scale / range) + min``
(constant features → the middle of the range, NaN kept), MaxAbsScaler ``x * (1 / maxAbs)`` (a zero maxAbs → factor 1),
Bucketizer's binary search (the last bucket includes the upper edge; ``-0.0`` sorts below
``0.0`` as in Java), IndexToString's ``cast(index as int)``.

Nulls, NaN and invalid values follow each stage's ``transform``: VectorAssembler 'error' fails
on a null or NaN scalar and on a null vector, 'keep' turns them into NaN; StringIndexer treats a
null as invalid; OneHotEncoder/Bucketizer/StandardScaler pass a null through as null (a null
vector is a list of null elements); Binarizer maps a null scalar to 0.0; Imputer replaces null
and ``missingValue`` and rounds the surrogate to an integer/float input's type as Spark's cast
back does. Where Spark raises, the query fails with ``raise_error`` naming the stage, the column
and the value.

Known differences: a null vector gives null elements where Spark's StandardScaler UDF fails;
StandardScaler/MaxAbsScaler models with a NaN/infinite scale factor are refused (Spark would
leave the zeros of a sparse vector unscaled, so its result depends on the storage). An Imputer's
surrogates are collected from ``surrogateDF`` at compile time (one small Spark job).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_models.exceptions import InvalidArgumentError, NotSupportedError
from spark_models.native.expressions import lit_double

Env = dict[str, Column | list[Column]]
_NAN = float("nan")


def _cls(stage: Any) -> str:
    return type(stage).__name__


def _place(stage: Any, where: str) -> str:
    label = f"{_cls(stage)} '{stage.uid}'" if hasattr(stage, "uid") else _cls(stage)
    return f"{where} > {label}" if where else label


def _param(stage: Any, name: str, default: Any = None) -> Any:
    """A param's value (set or default), or ``default`` when the stage has no such param."""
    if stage.hasParam(name) and (stage.isSet(name) or stage.hasDefault(name)):
        return stage.getOrDefault(name)
    return default


def _fail(prefix: str, value: Column) -> Column:
    shown = F.coalesce(value.cast("string"), F.lit("null"))
    return F.raise_error(F.concat(F.lit(prefix), shown))


def _scalar(env: Env, name: str, where: str) -> Column:
    value = env.get(name, F.col(name))
    if isinstance(value, list):
        raise InvalidArgumentError(f"{where}: column '{name}' is a vector, a scalar is needed")
    return value


def _vector(env: Env, name: str, size: int, where: str) -> list[Column]:
    value = env.get(name)
    if value is None or not isinstance(value, list):
        return _elements(value if value is not None else F.col(name), size)
    if len(value) != size:
        raise InvalidArgumentError(f"{where}: vector '{name}' has {len(value)} elements, "
                                   f"the stage expects {size}")
    return value


def _elements(vector: Column, size: int) -> list[Column]:
    """The elements of a Spark ML vector column (all null for a null vector)."""
    from pyspark.ml.functions import vector_to_array

    array = F.when(vector.isNotNull(), vector_to_array(vector, "float64"))
    return [array.getItem(i) for i in range(size)]


def _columns(stage: Any) -> list[tuple[str, str]]:
    """(input, output) column pairs of a single- or multi-column stage."""
    ins, outs = _param(stage, "inputCols"), _param(stage, "outputCols")
    if ins:
        return list(zip(ins, outs))
    return [(stage.getOrDefault("inputCol"), stage.getOrDefault("outputCol"))]


def _require_finite(factors: list[float], where: str, name: str) -> None:
    """Spark keeps the zeros of a sparse vector unscaled, so ``0 * factor`` is only the same
    for sparse and dense storage when every factor is finite."""
    if not all(math.isfinite(f) for f in factors):
        raise NotSupportedError(f"{where}: {name} has NaN/infinite entries (fitted on NaN?); "
                                "Spark's output then depends on sparse or dense storage")


# ----------------------------------------------------------------------------- stages
def _assembler(stage, env, where):
    mode = _param(stage, "handleInvalid", "error")
    parts: list[Column] = []
    for name in stage.getInputCols():
        value = env.get(name, F.col(name))
        if isinstance(value, list):
            if mode == "keep":
                parts += [F.coalesce(v, lit_double(_NAN)) for v in value]
            else:
                msg = f"{where}: VectorAssembler found a null vector in column '{name}': "
                parts += [F.when(v.isNull(), _fail(msg, v)).otherwise(v) for v in value]
            continue
        x = value.cast("double")
        if mode == "keep":
            parts.append(F.coalesce(x, lit_double(_NAN)))
        else:
            msg = f"{where}: VectorAssembler found a null or NaN in column '{name}': "
            parts.append(F.when(x.isNull() | F.isnan(x), _fail(msg, x)).otherwise(x))
    env[stage.getOutputCol()] = parts


def _standard(stage, env, where):
    mean, std = stage.mean.toArray(), stage.std.toArray()
    shift, scale = stage.getWithMean(), stage.getWithStd()
    factors = [0.0 if s == 0 else 1.0 / s for s in std]
    if scale:
        _require_finite(factors, where, "std")
    out = []
    for j, x in enumerate(_vector(env, stage.getInputCol(), len(mean), where)):
        if shift:
            x = x - lit_double(mean[j])
        if scale:
            x = x * lit_double(factors[j])
        out.append(x)
    env[stage.getOutputCol()] = out


def _minmax(stage, env, where):
    lo, hi = stage.originalMin.toArray(), stage.originalMax.toArray()
    new_min, new_max = stage.getMin(), stage.getMax()
    span, constant = new_max - new_min, (new_min + new_max) / 2
    out = []
    for j, x in enumerate(_vector(env, stage.getInputCol(), len(lo), where)):
        factor = span / (hi[j] - lo[j]) if hi[j] - lo[j] != 0 else 0.0
        scaled = ((x - lit_double(lo[j])) * lit_double(factor) + lit_double(new_min)
                  if factor != 0 else lit_double(constant))
        out.append(F.when(F.isnan(x), x).when(x.isNotNull(), scaled))
    env[stage.getOutputCol()] = out


def _maxabs(stage, env, where):
    factors = [1.0 if v == 0 else 1.0 / float(v) for v in stage.maxAbs.toArray()]
    _require_finite(factors, where, "maxAbs")
    xs = _vector(env, stage.getInputCol(), len(factors), where)
    env[stage.getOutputCol()] = [x * lit_double(t) for x, t in zip(xs, factors)]


def _imputer(stage, env, where):
    surrogates = stage.surrogateDF.collect()[0].asDict()
    missing = float(stage.getMissingValue())
    for name, out_name in _columns(stage):
        raw = _scalar(env, name, where)
        x = raw.cast("double")
        hit = x.isNull() | (F.isnan(x) if missing != missing else x == lit_double(missing))
        result = F.when(hit, lit_double(float(surrogates[name]))).otherwise(x)
        kind = F.typeof(raw)
        env[out_name] = (F.when(kind == "float", result.cast("float").cast("double"))
                         .when(kind.isin("tinyint", "smallint", "int", "bigint"),
                               result.cast("bigint").cast("double"))
                         .otherwise(result))


def _string_indexer(stage, env, where):
    keep = _param(stage, "handleInvalid", "error") == "keep"
    for (name, out_name), labels in zip(_columns(stage), stage.labelsArray):
        key = _scalar(env, name, where).cast("string")
        table = F.create_map(*[t for i, v in enumerate(labels)
                               for t in (F.lit(v), lit_double(float(i)))])
        found = F.try_element_at(table, key)
        if keep:
            env[out_name] = F.coalesce(found, lit_double(float(len(labels))))
            continue
        msg = f"{where}: StringIndexerModel found an unseen label or null in column '{name}': "
        env[out_name] = F.when(found.isNull(), _fail(msg, key)).otherwise(found)


def _one_hot(stage, env, where):
    keep = _param(stage, "handleInvalid", "error") == "keep"
    drop_last = stage.getDropLast()
    for (name, out_name), size in zip(_columns(stage), stage.categorySizes):
        x = _scalar(env, name, where).cast("double")
        valid = (x >= lit_double(0.0)) & (x < lit_double(float(size))) & ~F.isnan(x)
        msg = f"{where}: OneHotEncoderModel found an invalid category index in column '{name}': "
        invalid = F.lit(size) if keep else _fail(msg, x).cast("int")
        index = F.when(x.isNull(), F.lit(None).cast("int")).when(valid, x.cast("int")) \
            .otherwise(invalid)
        width = size + (1 if keep else 0) - (1 if drop_last else 0)
        env[out_name] = [F.when(index.isNull(), F.lit(None).cast("double"))
                         .when(index == F.lit(k), lit_double(1.0)).otherwise(lit_double(0.0))
                         for k in range(width)]


def _java_bucket(splits: list[float], value: float) -> int | None:
    """``Bucketizer.binarySearchForBuckets`` for one value with Java's total order on doubles
    (``-0.0 < 0.0``); ``None`` when the value is out of bounds."""
    def key(v: float) -> tuple[float, int]:
        return (v, 0 if str(v).startswith("-") and v == 0 else 1)
    if value == splits[-1]:
        return len(splits) - 2
    keys = [key(s) for s in splits]
    k = key(value)
    if k in keys:
        return keys.index(k)
    pos = sum(1 for s in keys if s < k)
    return None if pos in (0, len(splits)) else pos - 1


def _bucket(x: Column, splits: list[float], keep: bool, msg: str) -> Column:
    n = len(splits)
    code = F.when(F.isnan(x), lit_double(float(n - 1)) if keep else _fail(msg, x))
    code = code.when((x < lit_double(splits[0])) | (x > lit_double(splits[-1])), _fail(msg, x))
    if any(s == 0 for s in splits):  # Java orders -0.0 below 0.0
        negative = x.cast("string").startswith("-")
        for sign, value in ((negative, -0.0), (~negative, 0.0)):
            bucket = _java_bucket(splits, value)
            outcome = _fail(msg, x) if bucket is None else lit_double(float(bucket))
            code = code.when((x == lit_double(0.0)) & sign, outcome)
    code = code.when(x == lit_double(splits[-1]), lit_double(float(n - 2)))
    for k in range(1, n):
        code = code.when(x < lit_double(splits[k]), lit_double(float(k - 1)))
    return code


def _bucketizer(stage, env, where):
    keep = _param(stage, "handleInvalid", "error") == "keep"
    splits_list = _param(stage, "splitsArray") or [stage.getSplits()]
    for (name, out_name), splits in zip(_columns(stage), splits_list):
        x = _scalar(env, name, where).cast("double")
        msg = f"{where}: Bucketizer found a NaN or out-of-bounds value in column '{name}': "
        env[out_name] = _bucket(x, [float(s) for s in splits], keep, msg)


def _binarizer(stage, env, where):
    thresholds = _param(stage, "thresholds") or [stage.getThreshold()]
    for (name, out_name), t in zip(_columns(stage), thresholds):
        value = env.get(name, F.col(name))

        def above(v: Column) -> Column:
            v = v.cast("double")
            return F.when((v > lit_double(t)) & ~F.isnan(v), lit_double(1.0)) \
                .otherwise(lit_double(0.0))
        if isinstance(value, list):
            env[out_name] = [F.when(v.isNotNull(), above(v)) for v in value]
        else:
            env[out_name] = above(value)


def _index_to_string(stage, env, where):
    labels = _param(stage, "labels")
    name = stage.getInputCol()
    index = _scalar(env, name, where).cast("int")
    msg = f"{where}: IndexToString found an index out of range in column '{name}': "
    inside = (F.lit(0) <= index) & (index < F.lit(len(labels)))
    env[stage.getOutputCol()] = F.when(inside, F.array(*[F.lit(v) for v in labels])[index]) \
        .otherwise(_fail(msg, index).cast("string"))


def _pipeline(stage, env, where):
    for sub in stage.stages:
        compile_stage(sub, env, where=where)


_HANDLERS: dict[str, Callable[[Any, Env, str], None]] = {
    "VectorAssembler": _assembler, "StandardScalerModel": _standard,
    "MinMaxScalerModel": _minmax, "MaxAbsScalerModel": _maxabs, "ImputerModel": _imputer,
    "StringIndexerModel": _string_indexer, "OneHotEncoderModel": _one_hot,
    "Bucketizer": _bucketizer, "Binarizer": _binarizer, "IndexToString": _index_to_string,
    "PipelineModel": _pipeline,
}


def _unsupported(stage: Any) -> str | None:
    """Why ``stage`` cannot be compiled, or ``None`` when it can."""
    if _cls(stage) not in _HANDLERS or not type(stage).__module__.startswith("pyspark.ml"):
        return "this stage class is not supported"
    if _param(stage, "handleInvalid") == "skip":
        return "handleInvalid='skip' drops rows, which an expression cannot do"
    if _cls(stage) == "IndexToString" and not _param(stage, "labels"):
        return "labels are not set (labels from column metadata are not supported)"
    if _cls(stage) == "PipelineModel":
        return next((r for r in map(_unsupported, stage.stages) if r), None)
    return None


def is_transformer_supported(stage: Any) -> bool:
    """True when :func:`compile_stage` can compile ``stage`` (its class and parameters)."""
    return _unsupported(stage) is None


def compile_stage(stage: Any, env: Env, *, where: str = "") -> None:
    """Add the output column(s) of the fitted Spark ML ``stage`` to ``env`` (in place).

    Raises ``NotSupportedError`` naming the stage (class, uid, ``where`` path) and the reason.
    """
    reason = _unsupported(stage)
    if reason is not None:
        raise NotSupportedError(f"{_place(stage, where)}: cannot compile to a Spark "
                                f"expression: {reason}")
    place = where if _cls(stage) == "PipelineModel" else _place(stage, where)
    _HANDLERS[_cls(stage)](stage, env, place)
