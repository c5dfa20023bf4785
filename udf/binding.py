"""Which DataFrame columns the model sees, and under which names (decided on the driver).

Binding is by name, never by argument position (MLflow renames positional arguments to
the signature order and silently mis-scores ``u("b", "a")``): the worker rebuilds a
pandas DataFrame whose column names are the Spark names, keyword names or struct fields.
Only a signature without column names binds by position.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError
from udf.plan import UNNAMED_TENSOR, TensorInput


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col(_quoted(name))


class Binding:
    """The UDF's argument columns and the model input name of each.

    ``names`` is None when a single struct column built here carries the names in its
    fields. ``flatten`` marks a single positional argument: when it turns out to be a struct
    (Spark hands the worker a DataFrame then) the model gets the struct's fields; otherwise
    the one column is named ``names[0]``. Separate columns are preferred to a struct:
    PySpark converts them to pandas faster.
    """

    def __init__(self, columns: list, names: list[str] | None, flatten: bool = False, parts: list | None = None,
                 checks: list | None = None, sources: list | None = None):
        self.columns, self.names, self.flatten = columns, names, flatten
        self.sources = sources or [None] * len(columns)  # the SQL of a column passed by name (else None)
        self.parts = columns if parts is None else parts  # one Column per argument, before any struct or cast
        self.checks = checks or []  # (raw column, label, spec) of every column converted for its spec


def _name_parts(identifier: str) -> list[str]:
    """The parts of a Spark multi-part identifier (``a.b`` → a, b; ```x.y``` → x.y)."""
    parts, current, quoted, i = [], "", False, 0
    while i < len(identifier):
        ch = identifier[i]
        if ch == "`" and quoted and identifier[i + 1:i + 2] == "`":
            current, i = current + "`", i + 2
            continue
        if ch == "`":
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    return parts + [current]


def _column_name(column: Any) -> str | None:
    """The name Spark gives a plain column reference or an aliased column; None otherwise."""
    if type(column).__module__.startswith("pyspark.sql.connect"):
        expr = column._expr
        alias = getattr(expr, "_alias", None)
        if alias is not None:
            return alias[0] if len(alias) == 1 else None
        identifier = getattr(expr, "_unparsed_identifier", None)
        return _name_parts(identifier)[-1] if isinstance(identifier, str) and identifier != "*" else None
    try:
        return _classic_column_name(vars(column)["_jc"])
    except Exception:  # another Spark version's internals: let Spark name it instead
        return None


def _classic_column_name(jc: Any) -> str | None:
    from py4j.protocol import Py4JError

    try:
        node = jc.node()  # Spark 4: the ColumnNode
    except Py4JError:
        node = jc.expr()  # Spark 3.5: the Catalyst expression
    kind = node.getClass().getSimpleName()
    if kind == "Alias":
        name = node.name()
        if isinstance(name, str):
            return name
        return name.apply(0) if name.size() == 1 else None
    if kind == "UnresolvedAttribute":
        parts = node.nameParts()
        return parts.apply(parts.size() - 1)
    return None


def _label(column: Any) -> str:
    """The expression's text as PySpark prints it: the name an unaliased expression gets here."""
    text = str(column)
    return text[len("Column<'"):-len("'>")] if text.startswith("Column<'") and text.endswith("'>") else text


def bind_columns(signature: Any, args: tuple, kwargs: dict[str, Any]) -> Binding:
    """The columns carrying the model's inputs, and the names the model expects them under."""
    if args and kwargs:
        raise InvalidArgumentError("Pass input columns either positionally or as keywords, not both")
    if kwargs:
        columns = [_col(v) if isinstance(v, str) else v for v in kwargs.values()]
        sources = [_quoted(v) if isinstance(v, str) else None for v in kwargs.values()]
        return Binding(columns, [str(k) for k in kwargs], sources=sources)
    if args:
        return _bind_positional(args)
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.inputs:
        raise InvalidArgumentError("The model has no signature: pass the input columns, e.g. u('a', 'b') or u(struct(...))")
    if not inputs.has_input_names():
        raise InvalidArgumentError("The model's signature has unnamed inputs: pass the input columns in order, e.g. u('a', 'b')")
    names = [str(n) for n in inputs.input_names()]
    return Binding([_col(n) for n in names], names, sources=[_quoted(n) for n in names])


def _bind_positional(args: tuple) -> Binding:
    from pyspark.sql import functions as F

    names = [a if isinstance(a, str) else _column_name(a) for a in args]
    columns = [_col(a) if isinstance(a, str) else a for a in args]
    sources = [_quoted(a) if isinstance(a, str) else None for a in args]
    if len(args) == 1:  # a struct hands the model its fields, anything else is one column
        return Binding(columns, [names[0] if names[0] is not None else _label(args[0])], flatten=True, sources=sources)
    if all(n is not None for n in names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise InvalidArgumentError(f"Input columns {duplicated} are passed more than once; alias them apart")
        return Binding(columns, names, sources=sources)
    return Binding([F.struct(*columns)], None, parts=columns)  # Spark names the expressions


def _specs_for(inputs: Any, names: list[str]) -> dict[str, Any]:
    """Model input name → its spec (by position when the signature names none)."""
    if inputs.has_input_names():
        return {str(spec.name): spec for spec in inputs.inputs}
    return dict(zip(names, inputs.inputs)) if len(names) == len(inputs.inputs) else {}


def _specs_of_binding(inputs: Any, binding: Binding) -> dict[str, Any]:
    if inputs.is_tensor_spec() and len(inputs.inputs) == 1 and len(binding.names) == 1:
        return {binding.names[0]: inputs.inputs[0]}  # the one tensor, whatever its column is called
    if binding.flatten:  # one argument: converted only when it is a signature column by name
        named = _specs_for(inputs, [])
        return {binding.names[0]: named[binding.names[0]]} if binding.names[0] in named else {}
    return _specs_for(inputs, binding.names)


def _argument_label(column: Any, name: str) -> str:
    spark = _label(column).strip("`")
    return f"column {spark!r}" if spark == name else f"column {spark!r} (model input {name!r})"


def prepare(binding: Binding, signature: Any) -> Binding:
    """``binding`` with each column converted in the JVM to its spec (:mod:`udf.input_casts`);
    integer columns are followed by their null mask. A single argument that may be a struct
    (its fields) or an ML vector (expanded in the worker) is left as it is."""
    from udf.input_casts import MASK_SUFFIX, prepared_columns

    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.inputs or binding.names is None:
        return binding
    tensors = inputs.is_tensor_spec()
    specs = _specs_of_binding(inputs, binding)
    if not specs:
        return binding
    columns, names, checks = [], [], []
    for column, name, sql in zip(binding.columns, binding.names, binding.sources):
        spec = specs.get(name)
        if spec is None:
            columns.append(column)
            names.append(name)
            continue
        label = _argument_label(column, name)
        converted = [column] if tensors else prepared_columns(column, label, spec, sql)  # tensors: udf.tensors
        columns.extend(converted)
        names.extend([name, name + MASK_SUFFIX][:len(converted)])
        checks.append((column, label, spec))
    return Binding(columns, names, flatten=False, parts=binding.parts, checks=checks)


@contextlib.contextmanager
def _quiet_analysis_errors() -> Iterator[None]:
    """PySpark ≥ 4 logs every analysis error with its stack; the probes below expect some."""
    try:
        from pyspark.logger import PySparkLogger
    except ImportError:  # older PySpark: nothing is logged
        yield
        return
    loggers = [PySparkLogger.getLogger(n) for n in ("DataFrameQueryContextLogger", "SQLQueryContextLogger")]
    saved = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, saved):
            logger.disabled = disabled


def _unresolved_parts(df: Any, binding: Binding) -> tuple[list[str], Exception | None]:
    """The columns Spark cannot resolve in ``df`` (each argument analyzed alone), and the first error."""
    from pyspark.errors import AnalysisException

    try:
        df.select(*binding.parts).schema
        return [], None
    except AnalysisException as e:
        error = e
    missing = []
    for column in binding.parts:
        try:
            df.select(column).schema
        except AnalysisException as e:
            name = _unresolved_name(e, column)
            if name is not None:
                missing.append(name)
    return missing, error


def check_columns(df: Any, binding: Binding, model_uri: str) -> None:
    """Raise naming every input column ``df`` cannot supply (Spark's own error names the first)."""
    with _quiet_analysis_errors():
        missing, error = _unresolved_parts(df, binding)
    if error is not None and not missing:
        raise error  # not a missing column: Spark's own error says what is wrong
    if missing:
        raise SchemaEnforcementError(
            f"Model {model_uri!r} needs input columns the DataFrame lacks: {missing}; its columns are {df.columns}"
        )
    problems = _type_problems(df, binding)
    if problems:
        raise SchemaEnforcementError(f"Model {model_uri!r} cannot score these columns as they are: {'; '.join(problems)}")


def _type_problems(df: Any, binding: Binding) -> list[str]:
    """What spark_udf would refuse about the bound columns' Spark types, one line each."""
    from udf.input_casts import accepts
    from udf.tensors import depth_problem

    if not binding.checks:
        return []
    fields = df.select(*[column for column, _, _ in binding.checks]).schema.fields
    problems = []
    for field, (_, label, spec) in zip(fields, binding.checks):
        if hasattr(spec, "shape"):
            problem = depth_problem(field.dataType, tuple(spec.shape or (-1,)), label)
            problems.extend([problem] if problem else [])
            continue
        spark_type = field.dataType.simpleString()
        expected = spec.type.value if hasattr(spec.type, "value") else None
        if not (expected is None or accepts(expected, spark_type)):
            problems.append(f"{label} is {spark_type}, the signature declares {expected}")
    return problems


def _unresolved_name(error: Any, column: Any) -> str | None:
    """The column Spark could not resolve, from its error (None when the error is another one)."""
    condition = getattr(error, "getCondition", None) or getattr(error, "getErrorClass", None)
    condition = str(condition()) if condition is not None else ""
    params = error.getMessageParameters() or {}
    if condition.startswith("UNRESOLVED_COLUMN") and "objectName" in params:
        return ".".join(_name_parts(params["objectName"]))
    if condition.startswith("FIELD_NOT_FOUND"):  # a missing field of a struct column: st.zz
        return _label(column)
    return None


def vector_columns(signature: Any) -> tuple[str, ...] | None:
    """The signature's input names when they are two or more float/double columns: a single ML
    vector argument fills them, in order (None otherwise)."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None or len(inputs.inputs) < 2 or inputs.is_tensor_spec() or not inputs.has_input_names():
        return None
    floats = all(getattr(spec.type, "value", None) in ("double", "float") for spec in inputs.inputs)
    return tuple(str(n) for n in inputs.input_names()) if floats else None


def tensor_inputs(signature: Any) -> tuple[TensorInput, ...]:
    """The tensor inputs (none for a column signature), for reshaping array columns in the worker."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.is_tensor_spec():
        return ()
    return tuple(TensorInput(spec.name if spec.name is not None else UNNAMED_TENSOR, str(spec.dtype), tuple(spec.shape))
                 for spec in inputs.inputs)
