"""``ModelSignature``: the input, output and params schemas stored in MLmodel."""

from __future__ import annotations

from typing import Any

from spark_models.exceptions import SchemaError
from spark_models.schema.params import ParamSchema
from spark_models.schema.types import Schema


class ModelSignature:
    """What a model takes and returns. Stored in MLmodel as JSON strings, as MLflow does."""

    def __init__(
        self,
        inputs: Schema | None = None,
        outputs: Schema | None = None,
        params: ParamSchema | None = None,
    ):
        for name, value, cls in (("inputs", inputs, Schema), ("outputs", outputs, Schema), ("params", params, ParamSchema)):
            if value is not None and not isinstance(value, cls):
                raise SchemaError(f"ModelSignature {name} must be a {cls.__name__}, got {type(value).__name__}")
        self.inputs = inputs
        self.outputs = outputs
        self.params = params

    def to_dict(self) -> dict[str, Any]:
        """The MLmodel form: each schema as a JSON string (or None)."""
        return {
            "inputs": self.inputs.to_json() if self.inputs is not None else None,
            "outputs": self.outputs.to_json() if self.outputs is not None else None,
            "params": self.params.to_json() if self.params is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSignature":
        """Read the MLmodel form written by spark-models or MLflow 1.x–3.x."""
        if not isinstance(d, dict):
            raise SchemaError(f"A signature must be a mapping, got {type(d).__name__}")

        def part(key: str, parser):
            text = d.get(key)
            if text in (None, "", "null"):
                return None
            try:
                return parser(text)
            except SchemaError as e:
                raise SchemaError(f"Signature {key}: {e}") from None

        return cls(part("inputs", Schema.from_json), part("outputs", Schema.from_json), part("params", ParamSchema.from_json))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelSignature) and (self.inputs, self.outputs, self.params) == (
            other.inputs,
            other.outputs,
            other.params,
        )

    def __repr__(self) -> str:
        return f"inputs:\n  {self.inputs!r}\noutputs:\n  {self.outputs!r}\nparams:\n  {self.params!r}\n"
