"""Arrow-based batch scoring of any pyfunc model in PySpark: :func:`spark_udf`."""

import logging
from dataclasses import replace
import os
from pathlib import Path
from typing import Any, Iterator, Tuple

import pandas as pd

from spark_models.exceptions import InvalidArgumentError
from spark_models.sessions import is_local_master

_logger = logging.getLogger(__name__)

__all__ = ["SparkModelUDF", "spark_udf"]


def _ship(spark, local_dir, key: str) -> str:
    """Send the model archive to the executors once per session (SparkFiles / artifacts)."""
    from udf.environments import ship_file
    from udf.shipping import build_archive

    return ship_file(spark, build_archive(local_dir, key))


def _dir_for_tasks(spark: Any, context: Any, model_uri: str) -> Path:
    """The model directory to ship: the model's own, or a copy its flavor converts for the workers
    (a Spark ML pipeline gets an MLeap bundle). Fails now, on the driver, when the flavor says
    the model cannot run inside a task."""
    from spark_models.exceptions import MissingDependencyError, NotSupportedError
    from spark_models.flavors.registry import flavor_for_loader_module
    from udf.shipping import converted_model_dir

    loader = context.pyfunc_conf.get("loader_module")
    if not loader:
        return context.model_dir
    try:
        flavor = flavor_for_loader_module(loader)
    except (ImportError, MissingDependencyError):
        return context.model_dir  # the workers report a missing loader with the model's requirements
    if flavor.prepare_for_udf is None:
        return context.model_dir
    try:
        build = flavor.prepare_for_udf(spark, context, model_uri)
        return context.model_dir if build is None else converted_model_dir(context.model_dir, flavor.name, build)
    except NotSupportedError as e:
        raise NotSupportedError(f"spark_udf cannot score {model_uri!r}: {e}") from e


def _scoring_udf(body, return_type):
    from pyspark.sql.functions import pandas_udf

    def spark_models_predict(batches: Iterator[Tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        return body(batches)

    return pandas_udf(spark_models_predict, returnType=return_type)


class SparkModelUDF:
    """What :func:`spark_udf` returns: call it with input columns to get the prediction Column.
    ``runtime`` is ``"python"`` (an Arrow pandas UDF; see :func:`spark_models.spark_native` for ``"native"``).

    ``return_type`` is the UDF's Spark type, ``model_uri`` the model it scores and ``model_info``
    where that model came from (see :attr:`model_info`).
    """

    runtime = "python"

    def __init__(self, plan: Any, signature: Any, model_uri: str, model_info: dict[str, str] | None = None):
        self._plan, self._signature = plan, signature
        self.return_type, self.model_uri = plan.result_type, model_uri
        self._model_info = dict(model_info or {"uri": os.fspath(model_uri)})

    @property
    def model_info(self) -> dict[str, str]:
        """The scored model's provenance, resolved once on the driver: ``uri`` always; for
        ``runs:/`` and ``models:/`` URIs also ``tracking_uri``, ``registered_name``, ``version``,
        ``alias``, ``run_id``, ``model_id``, ``artifact_uri`` when known (a copy; strings only)."""
        return dict(self._model_info)

    @property
    def signature(self) -> Any:
        """The signature of the model the UDF scores (None without one)."""
        return self._signature

    @property
    def environment(self) -> Any:
        """The :class:`udf.environments.EnvPlan` workers score in (``manager``, ``key``, ``archive``),
        or None with ``env_manager="local"``."""
        return self._plan.env

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The prediction Column for these input columns (see :func:`spark_udf` for binding)."""
        from udf.binding import bind_columns, prepare
        from udf.worker import ScoringFunction

        binding = prepare(bind_columns(self._signature, args, kwargs), self._signature)
        body = ScoringFunction(self._plan.bound(binding.names, binding.flatten))
        return _scoring_udf(body, self.return_type)(*binding.columns)

    def validate(self, df: Any, *args: Any, **kwargs: Any) -> Any:
        """Check that ``df`` has the input columns ``self(*args, **kwargs)`` would read; return ``df``.

        Raises SchemaEnforcementError naming every missing column and the model URI (Spark's
        own analysis error names only the first), then every column whose Spark type does not
        convert to its spec (column, Spark type, spec). Chains: ``df.transform(predict.validate)``.
        """
        from udf.binding import bind_columns, check_columns, prepare

        binding = prepare(bind_columns(self._signature, args, kwargs), self._signature)
        check_columns(df, binding, os.fspath(self.model_uri))
        return df

    def __repr__(self) -> str:
        return f"SparkModelUDF({os.fspath(self.model_uri)!r}, return_type={self.return_type.simpleString()})"


def _native(spark: Any, model_uri: str, runtime: str, *, params: dict | None, **options: Any) -> Any:
    """The compiled callable when ``runtime`` asks for one and gets it (None: the Arrow UDF)."""
    if runtime == "python":
        return None
    from spark_models.native.scoring import choose_runtime

    if params:
        if runtime == "native":
            raise InvalidArgumentError("runtime='native' takes no inference params")
        return None
    return choose_runtime(spark, model_uri, runtime, **options)


def _check_arguments(env_manager: str, batch_size: int | None, runtime: str) -> None:
    from spark_models.envs.options import check_env_manager

    if check_env_manager(env_manager) != "local" and runtime != "python":
        raise InvalidArgumentError(f"runtime={runtime!r} compiles the model with this environment's libraries; "
                                   f"env_manager={env_manager!r} needs runtime='python'")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidArgumentError(f"batch_size must be a positive number of rows, got {batch_size!r}")


def _scoring_plan(spark: Any, local_dir: Path, model_uri: str, signature: Any, *, result_type: Any,
                  params: dict | None, batch_size: int | None, allow_code: bool) -> Any:
    """Ship the model and decide what every task needs (pickled into each of them)."""
    from udf.batching import tensor_batch_rows
    from udf.binding import tensor_inputs, vector_columns
    from udf.plan import ScoringPlan
    from udf.result_types import declared_kinds
    from udf.shipping import content_hash

    key = content_hash(local_dir)
    tensors = tensor_inputs(signature)
    if batch_size is None and tensors:
        batch_size = tensor_batch_rows(tensors)
    return ScoringPlan(
        model_key=key, archive=_ship(spark, local_dir, key), model_uri=model_uri, result_type=result_type,
        local_dir=str(local_dir) if is_local_master(spark) else None, params=params, batch_size=batch_size,
        tensors=tensors, declared_outputs=declared_kinds(signature), allow_code=allow_code,
        vector_columns=vector_columns(signature),
    )


def spark_udf(spark, model_uri: str, result_type: Any = None, env_manager: str = "local",
              params: dict | None = None, batch_size: int | None = None, *,
              allow_code: bool | None = None, model_config: dict | None = None, runtime: str = "python",
              prebuilt_env_uri: str | None = None, ship_env: bool = False, env_timeouts: dict | None = None) -> Any:
    """A Spark UDF that scores any python_function model with Arrow batches.

    Args:
        spark: the SparkSession (classic or Spark Connect) the UDF will run in.
        model_uri: a model directory or URI; resolved once on the driver and shipped to
            the executors, where each Python worker loads it once. A Spark ML pipeline
            without an MLeap bundle (e.g. saved by MLflow) is first converted on the driver
            (classic SparkSession only) into a copy with one, cached per model content; the
            model directory itself is never changed. ``runs:/`` and ``models:/`` URIs
            (``models:/name@alias``, ``models:/name/3``, ``models:/name/latest``, ``models:/m-<id>``)
            are resolved here, through MLflow or the tracking server's REST API, to one version;
            executors get only the files, never the tracking URI or credentials. The resolved
            version and run id are logged and kept in ``u.model_info``.
        result_type: a Spark DataType or type string (``"double"``, ``"array<double>"``,
            ``"struct<label:int,score:double>"``); None derives it from the signature's
            outputs (``double`` without one). An output type Spark cannot return from here
            (e.g. ``datetime``) is an error now, naming the output.
        env_manager: ``"local"`` (default): workers use the driver's Python environment (a model
            pinned to other library versions is warned about, naming both). ``"uv"``,
            ``"virtualenv"`` or ``"conda"``: the model is scored in the environment its
            ``python_env.yaml``/``requirements.txt`` (``conda.yaml`` for conda) declares, built once
            per machine into a cache (``$SPARK_MODELS_ENV_CACHE``), by one persistent scorer
            process per Python worker that receives Arrow batches over pipes.
        params: inference params, validated now against the signature's params schema.
        batch_size: rows per ``model.predict`` call. None merges Spark's Arrow batches
            up to 100,000 rows (or 32 MiB), except for tensor signatures, which get about
            1 MiB of input per call (64 to 4,096 rows); a number gives every call exactly that many.
        allow_code: False loads only models that run no code of their own, checked now on the
            driver and again in every task (see :mod:`spark_models.flavors.trust`); None reads
            ``$SPARK_MODELS_ALLOW_CODE`` on the driver (default True).
        model_config: passed to the model's loader in every worker, as
            ``pyfunc.load_model(..., model_config=...)`` (e.g. ``{"num_threads": 2}`` for
            gradient-boosting models, see :mod:`spark_models.flavors.threads`).
        runtime: ``"python"`` (default): this Arrow UDF; ``"native"``: the model compiled to a pure
            Spark expression (:func:`spark_models.native.scoring.spark_native`; NotSupportedError
            names the part that does not compile); ``"auto"``: native when the model compiles and
            is small enough for the expression to be faster (see ``AUTO_TREE_NODES``), else this
            UDF, logging why. ``u.runtime`` tells which one was chosen.
        prebuilt_env_uri: an archive written by :func:`spark_models.build_env` (a path or fsspec
            URL); shipped to the executors and unpacked there instead of building (any cluster).
        ship_env: build the environment on the driver only and ship it to the executors as an
            archive (for executors that cannot reach a package index).
        env_timeouts: seconds for ``build``, ``load`` and ``batch`` (defaults 1800, 600, 600).

    The returned callable binds input columns by name: ``u()`` takes the signature's
    input columns, ``u("a", "b")`` / ``u(col("a"), ...)`` pass columns under their own
    names, ``u(a="x")`` passes column ``x`` as model input ``a``, and a single struct
    argument (``u(struct(...))``, ``u(col("st"))``) passes the struct's fields.

    ``u()`` does not see the DataFrame, so a missing input column fails when Spark analyzes
    the query, on the driver before any task runs, with Spark's ``UNRESOLVED_COLUMN`` error:
    it names the first missing column and the available ones, and its plan shows them all.
    ``u.validate(df)`` (same arguments as ``u``) raises one error naming every missing
    column and the model URI: ``df.transform(u.validate).withColumn("p", u())``.

    >>> import pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> import spark_models.sklearn
    >>> from spark_models.models import infer_signature
    >>> X = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 1.0, 0.0]})
    >>> model = LinearRegression().fit(X, X.a + 2 * X.b)
    >>> saved = spark_models.sklearn.save_model(model, model_dir, signature=infer_signature(X, model.predict(X)))
    >>> predict = spark_udf(spark, model_dir)
    >>> df = spark.createDataFrame(X)
    >>> [round(r.pred, 6) for r in df.withColumn("pred", predict()).collect()]
    [2.0, 3.0, 2.0]
    >>> [round(r.pred, 6) for r in df.withColumn("pred", predict(a="b", b="a")).collect()]
    [1.0, 3.0, 4.0]
    >>> predict.validate(df.select("a"))
    Traceback (most recent call last):
    ...
    spark_models.exceptions.SchemaEnforcementError: Model '...' needs input columns the DataFrame lacks: ['b']; its columns are ['a']
    """
    from spark_models.flavors.opening import open_model
    from spark_models.mlmodel import Model
    from spark_models.schema.enforcement import enforce_params
    from spark_models.tracking.resolve import resolve_model_source
    from udf.environments import plan_environment
    from udf.result_types import parse_result_type

    _check_arguments(env_manager, batch_size, runtime)
    native = _native(spark, model_uri, runtime, result_type=result_type, allow_code=allow_code,
                     model_config=model_config, params=params)
    if native is not None:
        return native
    source = resolve_model_source(model_uri)  # the only contact with a tracking server: here, on the driver
    model_info = source.as_dict()
    _logger.info("spark_udf scores %s", ", ".join(f"{k}={v}" for k, v in model_info.items()))
    context = open_model(source.local_dir, allow_code=allow_code)
    if not context.allow_code:
        from spark_models.pyfunc.loading import check_trusted

        check_trusted(context)
    local_dir = _dir_for_tasks(spark, context, os.fspath(model_uri))
    signature = context.signature if local_dir == context.model_dir else Model.load(local_dir).signature
    params = enforce_params(params, signature.params) if signature is not None else params
    plan = _scoring_plan(spark, local_dir, os.fspath(model_uri), signature, allow_code=context.allow_code,
                         result_type=parse_result_type(result_type, signature), params=params, batch_size=batch_size)
    plan = replace(plan, model_config=dict(model_config)) if model_config else plan
    env = plan_environment(spark, local_dir, env_manager, model_uri=os.fspath(model_uri), ship_env=ship_env,
                           prebuilt_env_uri=prebuilt_env_uri, timeouts=env_timeouts)
    plan = replace(plan, env=env) if env is not None else plan
    return SparkModelUDF(plan, signature, model_uri, model_info)
