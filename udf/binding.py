"""Which DataFrame columns the model sees, and under which names (decided on the driver).

Everything is passed to the UDF as one struct column, so the worker receives a pandas
DataFrame whose column names are the struct's field names: binding is by name, never by
argument position (MLflow renames positional arguments to the signature order and
silently mis-scores ``u("b", "a")``).
"""

from __future__ import annotations

from typing import Any

from spark_models.exceptions import InvalidArgumentError


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _is_struct_call(args: tuple) -> bool:
    # u(struct(...)) hands the model the struct's own fields.
    if len(args) != 1 or isinstance(args[0], str):
        return False
    text = str(args[0])
    return "struct(" in text.lower()


def bind_columns(signature: Any, args: tuple, kwargs: dict[str, Any]):
    """One struct Column carrying the model's inputs, named as the model expects them."""
    from pyspark.sql import functions as F

    inputs = getattr(signature, "inputs", None)
    if args and kwargs:
        raise InvalidArgumentError("Pass input columns either positionally or as keywords, not both")
    if kwargs:
        return F.struct(*[(_col(v) if isinstance(v, str) else v).alias(k) for k, v in kwargs.items()])
    if args:
        if _is_struct_call(args):
            return args[0]
        return F.struct(*[_col(a) if isinstance(a, str) else a for a in args])
    if inputs is None or not inputs.inputs:
        raise InvalidArgumentError("The model has no signature: pass the input columns, e.g. u('a', 'b') or u(struct(...))")
    if not inputs.has_input_names():
        raise InvalidArgumentError("The model's signature has unnamed inputs: pass the input columns in order, e.g. u('a', 'b')")
    return F.struct(*[_col(str(n)).alias(str(n)) for n in inputs.input_names()])


def tensor_specs(signature: Any) -> list[tuple[str, str, tuple[int, ...]]] | None:
    """(column, dtype, shape) per tensor input, for reshaping array columns in the worker."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.is_tensor_spec():
        return None
    specs = []
    for spec in inputs.inputs:
        name = spec.name if spec.name is not None else "_tensor_"
        specs.append((name, str(spec.dtype), tuple(spec.shape)))
    return specs
