"""Which DataFrame columns the model sees, and under which names (decided on the driver).

Binding is by name, never by argument position (MLflow renames positional arguments to
the signature order and silently mis-scores ``u("b", "a")``): the worker rebuilds a
pandas DataFrame whose column names are the Spark names, keyword names or struct fields.
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


class Binding:
    """The UDF's argument columns and the model input name of each.

    ``names`` is None when a single struct column carries the names in its fields (a
    struct argument, or Column objects whose names only Spark's analyzer knows).
    Separate columns are preferred: PySpark converts them to pandas faster than a struct.
    """

    def __init__(self, columns: list, names: list[str] | None):
        self.columns, self.names = columns, names


def bind_columns(signature: Any, args: tuple, kwargs: dict[str, Any]) -> Binding:
    """The columns carrying the model's inputs, and the names the model expects them under."""
    from pyspark.sql import functions as F

    inputs = getattr(signature, "inputs", None)
    if args and kwargs:
        raise InvalidArgumentError("Pass input columns either positionally or as keywords, not both")
    if kwargs:
        return Binding([_col(v) if isinstance(v, str) else v for v in kwargs.values()], [str(k) for k in kwargs])
    if args:
        if _is_struct_call(args):
            return Binding([args[0]], None)
        if all(isinstance(a, str) for a in args):
            return Binding([_col(a) for a in args], list(args))
        return Binding([F.struct(*[_col(a) if isinstance(a, str) else a for a in args])], None)
    if inputs is None or not inputs.inputs:
        raise InvalidArgumentError("The model has no signature: pass the input columns, e.g. u('a', 'b') or u(struct(...))")
    if not inputs.has_input_names():
        raise InvalidArgumentError("The model's signature has unnamed inputs: pass the input columns in order, e.g. u('a', 'b')")
    names = [str(n) for n in inputs.input_names()]
    return Binding([_col(n) for n in names], names)


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
