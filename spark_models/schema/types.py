"""Schema types of model signatures: ``DataType``, ``ColSpec``, ``TensorSpec``, ``Schema``.

The JSON forms are MLflow's, so signatures written by either library read in the other.
Spark and Arrow conversions are imported lazily: a worker that only enforces a schema
never imports pyspark.sql.types.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import numpy as np

from spark_models.exceptions import SchemaError
import spark_models.schema.type_table as type_table
from spark_models.schema import nested
from spark_models.schema.data_type import DataType


class ColSpec:
    """One column of a column-based schema: a type, an optional name, required or not."""

    def __init__(self, type: DataType | nested.NestedType | str, name: str | None = None, required: bool = True):
        if isinstance(type, (DataType, nested.NestedType)):
            self.type = type
        else:
            self.type = DataType.from_name(type, f"column {name!r}")
        self.name = name
        self.required = bool(required)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type.value} if isinstance(self.type, DataType) else self.type.to_dict()
        if self.name is not None:
            d["name"] = self.name
        d["required"] = self.required
        return d

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColSpec) and (self.type, self.name, self.required) == (
            other.type,
            other.name,
            other.required,
        )

    def __repr__(self) -> str:
        name = f"{self.name!r}: " if self.name is not None else ""
        opt = " (optional)" if not self.required else ""
        kind = self.type.value if isinstance(self.type, DataType) else repr(self.type)
        return f"{name}{kind}{opt}"


class TensorSpec:
    """One tensor of a tensor-based schema: a numpy dtype and a shape (-1 = any size)."""

    def __init__(self, dtype: np.dtype | str | type, shape: Sequence[int], name: str | None = None):
        try:
            self.dtype = np.dtype(dtype)
        except TypeError as e:
            raise SchemaError(f"Invalid tensor dtype {dtype!r} for tensor {name!r}: {e}") from None
        if self.dtype.kind == "O":
            raise SchemaError(f"Tensor {name!r}: object dtype is not a valid tensor type")
        self.shape = tuple(int(s) for s in shape) if shape is not None else None
        self.name = name
        self.required = True

    @property
    def type(self) -> np.dtype:
        return self.dtype

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name} if self.name is not None else {}
        d["type"] = "tensor"
        d["tensor-spec"] = {"dtype": str(self.dtype), "shape": list(self.shape)}
        return d

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorSpec) and (self.dtype, self.shape, self.name) == (
            other.dtype,
            other.shape,
            other.name,
        )

    def __repr__(self) -> str:
        name = f"{self.name!r}: " if self.name is not None else ""
        return f"{name}Tensor({self.dtype}, {self.shape})"


def _spec_from_dict(d: dict[str, Any], index: int) -> ColSpec | TensorSpec:
    where = f"input {d.get('name', index)!r}"
    if not isinstance(d, dict):
        raise SchemaError(f"Schema entry {index} must be a JSON object, got {d!r}")
    if d.get("type") == "tensor":
        spec = d.get("tensor-spec") or {}
        if "dtype" not in spec or "shape" not in spec:
            raise SchemaError(f"Tensor spec of {where} needs 'dtype' and 'shape': {d!r}")
        return TensorSpec(spec["dtype"], spec["shape"], d.get("name"))
    if "dtype" in d:  # MLflow 1.x tensor form
        return TensorSpec(d["dtype"], d.get("shape"), d.get("name"))
    if "type" not in d:
        raise SchemaError(f"Schema entry for {where} has no 'type': {d!r}")
    if d["type"] in nested.TYPE_NAMES:  # MLflow 3's array / object / map / any / sparkml_vector
        return ColSpec(nested.from_dict(d, where), d.get("name"), d.get("required", True))
    return ColSpec(DataType.from_name(d["type"], where), d.get("name"), d.get("required", True))


class Schema:
    """An ordered list of ``ColSpec`` or of ``TensorSpec`` (never a mix)."""

    def __init__(self, inputs: Iterable[ColSpec | TensorSpec]):
        self.inputs = list(inputs)
        kinds = {type(i) for i in self.inputs}
        if len(kinds) > 1:
            raise SchemaError(
                "A schema is either all column specs or all tensor specs; got a mix: "
                f"{self.inputs!r}"
            )
        if kinds - {ColSpec, TensorSpec}:
            raise SchemaError(f"Schema entries must be ColSpec or TensorSpec, got {kinds!r}")
        names = [i.name for i in self.inputs]
        if any(n is not None for n in names) and any(n is None for n in names):
            raise SchemaError(f"Either all or none of the schema entries are named: {names!r}")
        dupes = sorted({n for n in names if n is not None and names.count(n) > 1})
        if dupes:
            raise SchemaError(f"Duplicate names in schema: {dupes!r}")

    def is_tensor_spec(self) -> bool:
        return bool(self.inputs) and isinstance(self.inputs[0], TensorSpec)

    def has_input_names(self) -> bool:
        return bool(self.inputs) and self.inputs[0].name is not None

    def input_names(self) -> list[str | int]:
        return [i.name if i.name is not None else n for n, i in enumerate(self.inputs)]

    def required_input_names(self) -> list[str | int]:
        return [n for n, i in zip(self.input_names(), self.inputs) if i.required]

    def optional_input_names(self) -> list[str | int]:
        return [n for n, i in zip(self.input_names(), self.inputs) if not i.required]

    def input_types(self) -> list[DataType | np.dtype]:
        return [i.type for i in self.inputs]

    def numpy_types(self) -> list[np.dtype]:
        return [i.type.to_numpy() if isinstance(i, ColSpec) and isinstance(i.type, DataType) else
                np.dtype(object) if isinstance(i, ColSpec) else i.dtype for i in self.inputs]

    def to_dict(self) -> list[dict[str, Any]]:
        return [i.to_dict() for i in self.inputs]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "Schema":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as e:
            raise SchemaError(f"Schema is not valid JSON ({e}): {text[:200]!r}") from None
        if not isinstance(entries, list):
            raise SchemaError(f"Schema JSON must be a list, got {type(entries).__name__}")
        return cls(_spec_from_dict(d, n) for n, d in enumerate(entries))

    def to_spark(self):  # -> pyspark.sql.types.StructType
        """The Spark StructType of a named column schema (tensors become nested arrays)."""
        from pyspark.sql import types as T

        if not self.has_input_names():
            raise SchemaError("Only a schema with named inputs converts to a Spark StructType")
        return T.StructType([T.StructField(str(s.name), _spark_type_of_spec(s), nullable=True) for s in self.inputs])

    @classmethod
    def from_spark(cls, struct_type) -> "Schema":
        """A column schema from a Spark StructType (numeric arrays become tensor specs)."""
        specs = [_spec_of_spark_field(f) for f in struct_type.fields]
        if len({type(s) for s in specs}) > 1:
            arrays = [s.name for s in specs if isinstance(s, TensorSpec)]
            raise SchemaError(
                f"Columns {arrays} are arrays (tensor specs) but the others are scalars; a signature cannot mix them. "
                "Infer the signature from the scalar columns, or from the array columns alone."
            )
        return cls(specs)

    def __len__(self) -> int:
        return len(self.inputs)

    def __iter__(self):
        return iter(self.inputs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.inputs == other.inputs

    def __repr__(self) -> str:
        return "[" + ", ".join(repr(i) for i in self.inputs) + "]"


def _spec_of_spark_field(field: Any) -> ColSpec | TensorSpec:
    """A top-level Spark field as a spec: (nested) arrays of numbers or booleans are tensors;
    structs, maps (string keys), ML vectors and arrays of anything else are MLflow 3's nested
    column types; other leaves are scalar columns."""
    from pyspark.sql import types as T

    depth, leaf = 0, field.dataType
    while isinstance(leaf, T.ArrayType):
        depth, leaf = depth + 1, leaf.elementType
    dtype = type_table.numpy_of_spark(leaf)
    if depth and dtype is not None:
        return TensorSpec(dtype, (-1,) * (depth + 1), field.name)
    if depth or isinstance(leaf, (T.StructType, T.MapType)) or type(leaf).__name__ == "VectorUDT":
        return ColSpec(nested.from_spark(field.dataType, f"Column {field.name!r}"), field.name)
    name = type_table.signature_type_of_spark(leaf)
    if name is None:
        raise SchemaError(f"Column {field.name!r}: Spark type {leaf.simpleString()} has no model-signature type")
    return ColSpec(DataType(name), field.name)


def _spark_type_of_spec(spec: ColSpec | TensorSpec) -> Any:
    from pyspark.sql import types as T

    if isinstance(spec, ColSpec):
        try:
            return spec.type.to_spark()
        except SchemaError as e:
            raise SchemaError(f"Column {spec.name!r}: {e}") from None
    dt = type_table.spark_of_numpy(spec.dtype)
    if dt is None:
        raise SchemaError(f"Tensor {spec.name!r} of dtype {spec.dtype} has no Spark type")
    for _ in range(max(len(spec.shape or (-1, -1)) - 1, 1)):
        dt = T.ArrayType(dt)
    return dt
