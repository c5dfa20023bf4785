"""Scoring with no Python worker: :func:`spark_native` and ``spark_udf(..., runtime=...)``.

A model compiles when every part of it does (see :mod:`spark_models.native`); the callable it
returns binds input columns exactly as :func:`udf.spark_udf` does and builds one Column.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pyspark.sql import Column

from spark_models.exceptions import InvalidArgumentError, NotSupportedError, SchemaEnforcementError
from spark_models.native.programs import Program

_logger = logging.getLogger(__name__)

RUNTIMES = ("python", "native", "auto")
AUTO_TREE_NODES = 500
"""``runtime="auto"`` compiles tree models up to this many split nodes (all trees together). Past it
the Arrow UDF is faster on Spark 4 (measured in bench/native.py: the expression outgrows the
JVM's 64 KB method limit and its JIT's huge-method limit, so Spark runs it interpreted)."""


class NativeModelUDF:
    """What :func:`spark_native` returns: call it with input columns to get the prediction Column.

    Attributes as :class:`udf.SparkModelUDF` (``return_type``, ``model_uri``, ``model_info``,
    ``signature``); ``runtime`` is ``"native"``; :meth:`explain` describes the expression.
    """

    runtime = "native"

    def __init__(self, program: Program, signature: Any, model_uri: str, *, return_type: Any,
                 model_info: dict[str, str] | None = None):
        self._program, self._signature = program, signature
        self.return_type, self.model_uri = return_type, model_uri
        self._model_info = dict(model_info or {"uri": os.fspath(model_uri)})

    @property
    def model_info(self) -> dict[str, str]:
        """The scored model's provenance (see ``SparkModelUDF.model_info``)."""
        return dict(self._model_info)

    @property
    def signature(self) -> Any:
        return self._signature

    def __call__(self, *args: Any, **kwargs: Any) -> Column:
        """The prediction Column for these input columns (binding as in ``spark_udf``)."""
        return self._program.column(self._bound(args, kwargs)).cast(self.return_type)

    def _bound(self, args: tuple, kwargs: dict) -> dict[str, Column]:
        from udf.binding import bind_columns

        inputs = self._program.inputs
        binding = bind_columns(self._signature if self._signature is not None else _NamedInputs(inputs), args, kwargs)
        if binding.names is None:
            raise InvalidArgumentError("native scoring binds columns by name: alias the expressions "
                                       "(e.g. u(col('a').alias('x'), ...)) or pass them as keywords")
        if binding.flatten:
            column, name = binding.columns[0], binding.names[0]
            if name in inputs:  # one column, bound by its name as spark_udf binds it
                if len(inputs) > 1:
                    raise SchemaEnforcementError(f"Model {os.fspath(self.model_uri)!r} needs input columns "
                                                 f"{[n for n in inputs if n != name]}; the call passes [{name!r}]")
                return {name: column}
            return {n: column.getField(n) for n in inputs}  # a struct argument: its fields by name
        bound = dict(zip(binding.names, binding.columns))
        missing = [n for n in inputs if n not in bound]
        if missing:
            raise SchemaEnforcementError(f"Model {os.fspath(self.model_uri)!r} needs input columns {missing}; "
                                         f"the call passes {binding.names}")
        return bound

    def validate(self, df: Any, *args: Any, **kwargs: Any) -> Any:
        """Raise naming every input column ``df`` lacks (as ``SparkModelUDF.validate``); return ``df``."""
        from udf.binding import Binding, check_columns

        bound = self._bound(args, kwargs)
        check_columns(df, Binding(list(bound.values()), list(bound)), os.fspath(self.model_uri))
        return df

    def explain(self) -> str:
        """What was compiled and how big the expression is (its size decides how fast it runs)."""
        column = self()
        from spark_models.native.expressions import expression_size

        return (f"native Spark expression for {os.fspath(self.model_uri)!r}: {' -> '.join(self._program.parts)}; "
                f"inputs {self._program.inputs}; {self._program.tree_nodes} tree split nodes; "
                f"expression {expression_size(column):,} characters; returns {self.return_type.simpleString()}")

    def __repr__(self) -> str:
        return f"NativeModelUDF({os.fspath(self.model_uri)!r}, return_type={self.return_type.simpleString()})"


class _NamedInputs:
    """A stand-in signature naming the program's inputs, for models saved without one."""

    def __init__(self, names: list[str]):
        from spark_models.schema.types import ColSpec, Schema

        self.inputs = Schema([ColSpec("double", n) for n in names])


def compile_model(spark: Any, context: Any, *, model_config: dict | None = None) -> Program:
    """The :class:`Program` of the model in ``context`` (an opened model directory), or
    NotSupportedError naming the part that does not compile."""
    flavors = context.model.flavors
    signature = context.signature
    names = [str(n) for n in signature.inputs.input_names()] if signature is not None and \
        signature.inputs.has_input_names() else None
    config = dict(model_config or {})
    predict_fn = config.get("predict_fn") or context.pyfunc_conf.get("predict_fn") or "predict"
    if "spark" in flavors:
        return _spark_pipeline(spark, context, names)
    if "sklearn" in flavors:
        import spark_models.sklearn as sk

        from spark_models.native.programs import sklearn_program

        model = sk.load_model(context.model_dir, allow_code=context.allow_code)
        return sklearn_program(model, names, output=predict_fn)
    for flavor in ("xgboost", "lightgbm"):
        if flavor in flavors:
            import importlib

            from spark_models.native.programs import booster_program

            module = importlib.import_module(f"spark_models.{flavor}")
            return booster_program(module.load_model(context.model_dir, allow_code=context.allow_code), names,
                                   output=predict_fn)
    raise NotSupportedError(f"flavors {sorted(f for f in flavors if f != 'python_function')} do not compile "
                            "(sklearn, spark, xgboost and lightgbm models do)")


def _spark_pipeline(spark: Any, context: Any, names: list[str] | None) -> Program:
    from spark_models.flavors.spark.scoring import output_columns
    from spark_models.native.programs import spark_program
    from spark_models.sessions import is_connect

    if is_connect(spark):
        raise NotSupportedError("compiling a Spark ML pipeline needs a classic SparkSession to load it")
    if not names:
        raise NotSupportedError("a Spark ML pipeline without a signature: its input columns are unknown")
    import spark_models.spark as spark_flavor

    pipeline = spark_flavor.load_model(context.model_dir)
    return spark_program(pipeline, names, outputs=output_columns(context.signature))


def native_udf(spark: Any, model_uri: str, *, result_type: Any = None, allow_code: bool | None = None,
               model_config: dict | None = None) -> NativeModelUDF:
    """:func:`spark_native`'s work: resolve, open, compile (NotSupportedError when a part does not)."""
    from spark_models.flavors.opening import open_model
    from spark_models.tracking.resolve import resolve_model_source
    from udf.result_types import parse_result_type

    source = resolve_model_source(model_uri)
    context = open_model(source.local_dir, allow_code=allow_code)
    program = compile_model(spark, context, model_config=model_config)
    return_type = parse_result_type(result_type, context.signature)
    _logger.info("native scoring of %s: %s (%d tree split nodes)", model_uri, " -> ".join(program.parts),
                 program.tree_nodes)
    return NativeModelUDF(program, context.signature, model_uri, return_type=return_type, model_info=source.as_dict())


def spark_native(spark: Any, model_uri: str, result_type: Any = None, *, allow_code: bool | None = None,
                 model_config: dict | None = None) -> NativeModelUDF:
    """Score a model as a pure Spark expression: no Python worker, no Arrow.

    The returned callable binds input columns as :func:`udf.spark_udf` does (``u()``,
    ``u("b", "a")``, ``u(a="x")``, ``u(struct(...))``) and returns one Column, which runs on
    Spark Connect and on executors without any Python packages. Linear models, tree ensembles
    (scikit-learn, xgboost, lightgbm, Spark ML) and their preprocessing pipelines compile; any
    other part raises :class:`~spark_models.exceptions.NotSupportedError` naming it.
    ``u.explain()`` tells what was compiled and how large the expression is.

    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> import spark_models.sklearn
    >>> from spark_models.models import infer_signature
    >>> X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    >>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
    >>> _ = spark_models.sklearn.save_model(model, model_dir, signature=infer_signature(X, model.predict(X)))
    >>> predict = spark_native(spark, model_dir)
    >>> [r.pred for r in spark.createDataFrame(X).withColumn("pred", predict()).collect()]
    [0, 0, 1, 1]
    >>> predict.explain()
    "native Spark expression for '...': LogisticRegression; inputs ['a', 'b']; 0 tree split nodes; ..."
    """
    return native_udf(spark, model_uri, result_type=result_type, allow_code=allow_code, model_config=model_config)


def choose_runtime(spark: Any, model_uri: str, runtime: str, **options: Any) -> NativeModelUDF | None:
    """For ``spark_udf(runtime=...)``: the native callable, or None to use the Arrow UDF (``auto``
    logs why). ``native`` raises when the model does not compile."""
    if runtime not in RUNTIMES:
        raise InvalidArgumentError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    if runtime == "python":
        return None
    if runtime == "native":
        return native_udf(spark, model_uri, **options)
    try:
        u = native_udf(spark, model_uri, **options)
    except NotSupportedError as e:
        _logger.info("spark_udf(runtime='auto') scores %s with the Arrow UDF: %s", model_uri, e)
        return None
    if u._program.tree_nodes > AUTO_TREE_NODES:
        _logger.info("spark_udf(runtime='auto') scores %s with the Arrow UDF: %d tree split nodes "
                     "(compiled only up to %d, where the expression is faster)", model_uri,
                     u._program.tree_nodes, AUTO_TREE_NODES)
        return None
    _logger.info("spark_udf(runtime='auto') scores %s natively", model_uri)
    return u
