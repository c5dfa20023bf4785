"""MLflow 3's nested column types: ``Array``, ``Object`` (of ``Property``), ``Map``, ``AnyType``
and ``SparkMLVector``, with MLflow's JSON forms, so signatures logged by MLflow 3 read here.

JSON (as MLflow writes it inside a column spec)::

    {"type": "array", "items": {"type": "double"}}
    {"type": "object", "properties": {"x": {"type": "long", "required": true}}}
    {"type": "map", "values": {"type": "string"}}
    {"type": "any"}
    {"type": "sparkml_vector"}
"""

from __future__ import annotations

from typing import Any

from spark_models.exceptions import SchemaError
from spark_models.schema.data_type import DataType

ARRAY, OBJECT, MAP, ANY, SPARKML_VECTOR = "array", "object", "map", "any", "sparkml_vector"
TYPE_NAMES = (ARRAY, OBJECT, MAP, ANY, SPARKML_VECTOR)


class NestedType:
    """Base of the nested types (an element, property or value type is a DataType or one of these)."""

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def to_spark(self) -> Any:  # pragma: no cover - every subclass defines it
        """The Spark SQL type of this type (pyspark.sql.types, imported lazily)."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))


def _item_dict(dtype: DataType | NestedType) -> dict[str, Any]:
    return {"type": dtype.value} if isinstance(dtype, DataType) else dtype.to_dict()


def _item_type(d: Any, where: str) -> DataType | NestedType:
    if not isinstance(d, dict) or "type" not in d:
        raise SchemaError(f"{where}: expected a type object with a 'type' key, got {d!r}")
    if d["type"] in TYPE_NAMES:
        return from_dict(d, where)
    return DataType.from_name(d["type"], where)


def _as_item(dtype: DataType | NestedType | str, where: str) -> DataType | NestedType:
    if isinstance(dtype, (DataType, NestedType)):
        return dtype
    return DataType.from_name(dtype, where)


class Array(NestedType):
    """A list of values of one type."""

    def __init__(self, dtype: DataType | NestedType | str):
        self.dtype = _as_item(dtype, "array items")

    def to_dict(self) -> dict[str, Any]:
        return {"type": ARRAY, "items": _item_dict(self.dtype)}

    def to_spark(self) -> Any:
        """``ArrayType`` of the item type (items may be null)."""
        from pyspark.sql import types as T

        return T.ArrayType(self.dtype.to_spark(), containsNull=True)

    def __repr__(self) -> str:
        return f"Array({self.dtype!r})"


class SparkMLVector(Array):
    """A Spark ML vector (MLflow's ``sparkml_vector``): an array of doubles."""

    def __init__(self) -> None:
        super().__init__(DataType.double)

    def to_dict(self) -> dict[str, Any]:
        return {"type": SPARKML_VECTOR}

    def to_spark(self) -> Any:
        """Spark ML's ``VectorUDT``."""
        from pyspark.ml.linalg import VectorUDT

        return VectorUDT()

    def __repr__(self) -> str:
        return "SparkML vector"


class Property:
    """One named property of an ``Object``."""

    def __init__(self, name: str, dtype: DataType | NestedType | str, required: bool = True):
        if not isinstance(name, str) or not name:
            raise SchemaError(f"A property name must be a non-empty string, got {name!r}")
        self.name = name
        self.dtype = _as_item(dtype, f"property {name!r}")
        self.required = bool(required)

    def to_dict(self) -> dict[str, Any]:
        return {self.name: {**_item_dict(self.dtype), "required": self.required}}

    def to_spark(self) -> Any:
        """A ``StructField``: nullable unless the property is required."""
        from pyspark.sql import types as T

        return T.StructField(self.name, self.dtype.to_spark(), nullable=not self.required)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Property) and other.to_dict() == self.to_dict()

    def __lt__(self, other: "Property") -> bool:
        return self.name < other.name

    def __repr__(self) -> str:
        return f"{self.name!r}: {self.dtype!r}{'' if self.required else ' (optional)'}"


class Object(NestedType):
    """A record with named, typed properties (kept sorted by name, as MLflow does)."""

    def __init__(self, properties: list[Property]):
        if not properties:
            raise SchemaError("An Object needs at least one property")
        names = [p.name for p in properties]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise SchemaError(f"Object properties {duplicated} are listed more than once")
        self.properties = sorted(properties)

    def to_dict(self) -> dict[str, Any]:
        return {"type": OBJECT, "properties": {k: v for p in self.properties for k, v in p.to_dict().items()}}

    def to_spark(self) -> Any:
        """``StructType`` of the properties, in their (sorted) order."""
        from pyspark.sql import types as T

        return T.StructType([p.to_spark() for p in self.properties])

    def __repr__(self) -> str:
        return "{" + ", ".join(map(repr, self.properties)) + "}"


class Map(NestedType):
    """A mapping from string keys to values of one type."""

    def __init__(self, value_type: DataType | NestedType | str):
        self.value_type = _as_item(value_type, "map values")

    def to_dict(self) -> dict[str, Any]:
        return {"type": MAP, "values": _item_dict(self.value_type)}

    def to_spark(self) -> Any:
        """``MapType(StringType, value type)`` (values may be null)."""
        from pyspark.sql import types as T

        return T.MapType(T.StringType(), self.value_type.to_spark(), valueContainsNull=True)

    def __repr__(self) -> str:
        return f"Map(str -> {self.value_type!r})"


class AnyType(NestedType):
    """Any value (MLflow's ``any``): not checked."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": ANY}

    def to_spark(self) -> Any:
        raise SchemaError("The type 'any' has no Spark type (its values are not checked); declare a concrete type")

    def __repr__(self) -> str:
        return "Any"


def from_dict(d: dict[str, Any], where: str = "") -> NestedType:
    """A nested type from MLflow's JSON form (the ``type`` key is one of :data:`TYPE_NAMES`)."""
    kind = d.get("type")
    if kind == ARRAY:
        if "items" not in d:
            raise SchemaError(f"{where}: an array type needs 'items': {d!r}")
        return Array(_item_type(d["items"], f"{where} items"))
    if kind == OBJECT:
        props = d.get("properties")
        if not isinstance(props, dict) or not all(isinstance(v, dict) for v in props.values()):
            raise SchemaError(f"{where}: an object type needs 'properties' mapping names to types: {d!r}")
        return Object([Property(name, _item_type({k: v for k, v in spec.items() if k != "required"},
                                                 f"{where} property {name!r}"), spec.get("required", True))
                       for name, spec in props.items()])
    if kind == MAP:
        if "values" not in d:
            raise SchemaError(f"{where}: a map type needs 'values': {d!r}")
        return Map(_item_type(d["values"], f"{where} values"))
    if kind == ANY:
        return AnyType()
    if kind == SPARKML_VECTOR:
        return SparkMLVector()
    raise SchemaError(f"{where}: {kind!r} is not a nested type ({', '.join(TYPE_NAMES)})")


def type_name(t: DataType | NestedType) -> str:
    """A type as error messages spell it: ``array<long>``, ``object{x: long, y?: string}``."""
    if isinstance(t, DataType):
        return t.value
    if isinstance(t, SparkMLVector):
        return SPARKML_VECTOR
    if isinstance(t, Array):
        return f"array<{type_name(t.dtype)}>"
    if isinstance(t, Map):
        return f"map<string, {type_name(t.value_type)}>"
    if isinstance(t, Object):
        return "object{" + ", ".join(f"{p.name}{'' if p.required else '?'}: {type_name(p.dtype)}" for p in t.properties) + "}"
    return ANY


def from_spark(dt: Any, where: str) -> DataType | NestedType:
    """The signature type of a Spark type nested in a column: arrays, structs (properties
    required when not nullable), maps with string keys, ML vectors and scalar leaves."""
    from pyspark.sql import types as T

    import spark_models.schema.type_table as type_table

    if isinstance(dt, T.ArrayType):
        return Array(from_spark(dt.elementType, f"{where} items"))
    if isinstance(dt, T.StructType):
        if not dt.fields:
            raise SchemaError(f"{where}: an empty struct has no signature type (an object needs a property)")
        return Object([Property(f.name, from_spark(f.dataType, f"{where} field {f.name!r}"), not f.nullable)
                       for f in dt.fields])
    if isinstance(dt, T.MapType):
        if not isinstance(dt.keyType, T.StringType):
            raise SchemaError(f"{where}: {dt.simpleString()} has {dt.keyType.simpleString()} keys; "
                              "signature maps have string keys")
        return Map(from_spark(dt.valueType, f"{where} values"))
    if type(dt).__name__ == "VectorUDT":
        return SparkMLVector()
    name = type_table.signature_type_of_spark(dt)
    if name is None:
        raise SchemaError(f"{where}: Spark type {dt.simpleString()} has no model-signature type")
    return DataType(name)
