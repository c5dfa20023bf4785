"""Inference parameters of a signature: ``ParamSpec`` and ``ParamSchema`` (MLflow's JSON)."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from spark_models.exceptions import SchemaError
from spark_models.schema.data_type import DataType


class ParamSpec:
    """One inference parameter: name, type, default, and ``shape`` (None or (-1,) for a list)."""

    def __init__(self, name: str, dtype: DataType | str, default: Any, shape: Sequence[int] | None = None):
        self.name = name
        self.dtype = dtype if isinstance(dtype, DataType) else DataType.from_name(dtype, f"param {name!r}")
        self.shape = tuple(shape) if shape is not None else None
        self.default = default

    @property
    def type(self) -> DataType:
        return self.dtype

    def to_dict(self) -> dict[str, Any]:
        default = self.default
        if hasattr(default, "isoformat"):
            default = default.isoformat()
        return {
            "name": self.name,
            "default": default,
            "shape": list(self.shape) if self.shape is not None else None,
            "type": self.dtype.value,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{self.name!r}: {self.dtype.value} (default: {self.default!r})"


class ParamSchema:
    """The inference parameters a model accepts."""

    def __init__(self, params: Iterable[ParamSpec]):
        self.params = list(params)
        names = [p.name for p in self.params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"Duplicate names in params schema: {dupes!r}")

    def to_dict(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.params]

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "ParamSchema":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as e:
            raise SchemaError(f"Params schema is not valid JSON ({e})") from None
        specs = []
        for d in entries:
            if not isinstance(d, dict) or "name" not in d or "type" not in d:
                raise SchemaError(f"Params schema entry needs 'name' and 'type': {d!r}")
            specs.append(ParamSpec(d["name"], d["type"], d.get("default"), d.get("shape")))
        return cls(specs)

    def __iter__(self):
        return iter(self.params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSchema) and self.params == other.params

    def __repr__(self) -> str:
        return "[" + ", ".join(repr(p) for p in self.params) + "]"
