"""Input columns converted in the JVM, before the Python crossing, to what the signature declares.

``u()`` does not see the DataFrame, so each bound column gets one expression that is right for
whatever Spark type it turns out to have, and that Spark's optimizer folds to a plain cast
(``typeof`` is a constant of the plan):

| spec | converted in the JVM | refused |
|---|---|---|
| double | decimal, float, int/short/byte → double (decimals above 15–17 digits round, as Spark's cast does) | bigint (int64 → double loses precision): at the first row; string, boolean, date …: when the UDF is applied |
| float | float as is | everything else |
| long / integer | byte/short/int (and bigint for long), decimal(p, 0) that fits → the integer; sent as value + null mask so nulls reach the model as pandas ``Int64``/``Int32`` with ``pd.NA``, exactly | float, double, decimals with a scale or too many digits: at the first row; string …: when applied |
| boolean | boolean (nulls become pandas ``boolean``'s NA in the worker) | anything else, when applied |
| datetime | date, timestamp, timestamp_ntz → timestamp; ISO 8601 strings parsed (the first unparseable value fails the task, naming it) | numbers, booleans …: at the first row |
| string / binary | as is | other types: at the first row |

"When the UDF is applied" is Spark's own analysis error (``DATATYPE_MISMATCH``, naming the
column and both types) on the driver at ``withColumn``; "at the first row" is an error naming
the column, its Spark type and the spec, raised before the model sees any row. ``u.validate(df)``
reports all of them on the driver, in one error, before any job runs. Tensor inputs (numeric
arrays, flattened or nested, and ML vectors) go to the worker as they are: :mod:`udf.tensors`.
"""

from __future__ import annotations

import re
from typing import Any

from spark_models.schema.data_type import DataType

MASK_SUFFIX = "\x00null-mask"  # names the null-mask argument that follows an integer column

_SPARK_NAMES = {"double": "DOUBLE", "float": "FLOAT", "long": "BIGINT", "integer": "INT", "boolean": "BOOLEAN"}
_TEXT = r"string|varchar\(\d+\)|char\(\d+\)"
# The Spark types (as ``typeof`` and ``DataType.simpleString`` spell them) each spec converts from.
ACCEPTED = {
    "double": r"tinyint|smallint|int|float|double|decimal\(\d+,\d+\)",
    "float": r"float",
    "long": r"tinyint|smallint|int|bigint|decimal\(([1-9]|1[0-8]),0\)",
    "integer": r"tinyint|smallint|int|decimal\([1-9],0\)",
    "boolean": r"boolean",
    "string": _TEXT,
    "binary": r"binary",
    "datetime": _TEXT + r"|date|timestamp|timestamp_ntz",
}


def accepts(spec_name: str, spark_type: str) -> bool:
    """Whether a column of ``spark_type`` (``simpleString``) converts to ``spec_name`` here."""
    pattern = ACCEPTED.get(spec_name)
    return pattern is None or re.fullmatch(f"({pattern})", spark_type) is not None


class _SqlBuilder:
    """Builds the conversion as Spark SQL text: one parse in the JVM per argument, cheap even
    for 1,000-column tables (the Column API costs a py4j call per node)."""

    @staticmethod
    def text(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def typeof(self, x: str) -> str:
        return f"typeof({x})"

    def not_rlike(self, x: str, pattern: str) -> str:
        return f"NOT {x} RLIKE {self.text(pattern)}"

    def when(self, condition: str, then: str, otherwise: str) -> str:
        return f"CASE WHEN {condition} THEN {then} ELSE {otherwise} END"

    def fail(self, *parts: str) -> str:
        return f"raise_error(concat({', '.join(parts)}))"

    def greatest_with_null(self, x: str, spark_name: str) -> str:
        return f"greatest({x}, CAST(NULL AS {spark_name}))"

    def has_type(self, x: str, type_name: str) -> str:
        return f"typeof({x}) = {self.text(type_name)}"

    def cast(self, x: str, spark_name: str) -> str:
        return f"CAST({x} AS {spark_name})"

    def zero_if_null(self, x: str, spark_name: str) -> str:
        return f"coalesce({x}, CAST(0 AS {spark_name}))"

    def is_null(self, x: str) -> str:
        return f"({x}) IS NULL"

    def unparsed(self, x: str, parsed: str) -> str:
        return f"({x}) IS NOT NULL AND ({parsed}) IS NULL"

    def to_timestamp(self, x: str) -> str:
        return f"try_to_timestamp({x})"

    def finish(self, text: str) -> Any:
        from pyspark.sql import functions as F

        return F.expr(text)


class _ColumnBuilder:
    """The same conversion with the Column API, for arguments that are expressions, not names."""

    def __init__(self) -> None:
        from pyspark.sql import functions as F

        self.F = F

    def text(self, value: str) -> Any:
        return self.F.lit(value)

    def typeof(self, x: Any) -> Any:
        return self.F.typeof(x)

    def not_rlike(self, x: Any, pattern: str) -> Any:
        return ~x.rlike(pattern)

    def when(self, condition: Any, then: Any, otherwise: Any) -> Any:
        return self.F.when(condition, then).otherwise(otherwise)

    def fail(self, *parts: Any) -> Any:
        return self.F.raise_error(self.F.concat(*parts))

    def greatest_with_null(self, x: Any, spark_name: str) -> Any:
        return self.F.greatest(x, self.F.lit(None).cast(spark_name))

    def has_type(self, x: Any, type_name: str) -> Any:
        return self.F.typeof(x) == type_name

    def cast(self, x: Any, spark_name: str) -> Any:
        return x.cast(spark_name)

    def zero_if_null(self, x: Any, spark_name: str) -> Any:
        return self.F.coalesce(x, self.F.lit(0).cast(spark_name))

    def is_null(self, x: Any) -> Any:
        return x.isNull()

    def unparsed(self, x: Any, parsed: Any) -> Any:
        return x.isNotNull() & parsed.isNull()

    def to_timestamp(self, x: Any) -> Any:
        return self.F.try_to_timestamp(x)

    def finish(self, column: Any) -> Any:
        return column


def _guarded(b: Any, x: Any, label: str, spec_name: str, value: Any) -> Any:
    """``value``, unless the Spark type of ``x`` (``typeof``, a constant of the plan that the
    optimizer folds away) is not one the spec accepts: then an error naming column, type, spec."""
    refused = b.not_rlike(b.typeof(x), f"^({ACCEPTED[spec_name]})$")
    suffix = f", which does not convert to the signature's {spec_name} without loss; cast it in Spark or change the signature"
    return b.when(refused, b.fail(b.text(f"spark_udf: {label} has Spark type "), b.typeof(x), b.text(suffix)), value)


def _widened(b: Any, x: Any, name: str) -> Any:
    """``x`` as the spec's Spark type: ``greatest(x, null)`` widens numbers and, for other types,
    fails Spark's analysis (on the driver, naming both types); a column already of the type is
    passed as it is (the optimizer keeps only that branch)."""
    spark_name = _SPARK_NAMES[name]
    return b.when(b.has_type(x, spark_name.lower()), x, b.greatest_with_null(x, spark_name))


def _conversion(b: Any, x: Any, label: str, name: str) -> list[Any]:
    """The argument(s) for column ``x`` and spec type ``name``, built by ``b``."""
    if name in ("double", "float", "boolean"):
        return [_guarded(b, x, label, name, _widened(b, x, name))]
    if name in ("long", "integer"):
        spark_name = _SPARK_NAMES[name]
        value = b.cast(_guarded(b, x, label, name, _widened(b, x, name)), spark_name)
        return [b.zero_if_null(value, spark_name), b.is_null(value)]
    if name == "datetime":
        parsed = b.to_timestamp(x)
        bad = b.fail(b.text(f"spark_udf: {label} holds "), b.cast(x, "STRING"), b.text(", which is not an ISO 8601 datetime"))
        return [_guarded(b, x, label, name, b.when(b.unparsed(x, parsed), bad, parsed))]
    return [_guarded(b, x, label, name, x)]


def prepared_columns(column: Any, label: str, spec: Any, sql: str | None = None) -> list[Any]:
    """The UDF argument(s) carrying ``column`` for the column spec ``spec``: one, or for integer
    specs the value (nulls as 0) followed by its null mask. ``sql`` is the column's SQL text when
    it is a plain column reference (built as SQL then, much faster)."""
    kind = spec.type
    if not isinstance(kind, DataType):  # arrays, objects, maps: as they are
        return [column]
    builder = _SqlBuilder() if sql is not None else _ColumnBuilder()
    return [builder.finish(part) for part in _conversion(builder, sql if sql is not None else column, label, kind.value)]
