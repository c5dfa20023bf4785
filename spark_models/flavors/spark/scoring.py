"""Scoring a Spark ML pipeline: pandas in/out through Spark (pyfunc), or DataFrame → DataFrame.

Output columns follow the signature's output names when there are any, else
``prediction``. ML vectors (``probability``, ``rawPrediction``) become lists of floats in
pandas. Array input columns feeding a stage that expects a vector are converted to vectors.
pandas input becomes a Spark DataFrame with the signature's input types (a column of only
missing values has no type Spark could infer); columns the signature lacks are inferred.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from spark_models.exceptions import SchemaEnforcementError, SchemaError
from spark_models.flavors.spark.persistence import is_connect_ml_model, stages
from spark_models.sessions import active_session

_VECTOR_PARAMS = ("featuresCol", "inputCol")


def declared_outputs(signature: Any) -> list[str] | None:
    """The signature's output column names, or None when it names none."""
    outputs = getattr(signature, "outputs", None)
    if outputs is not None and outputs.inputs and outputs.has_input_names():
        return [str(n) for n in outputs.input_names()]
    return None


def output_columns(signature: Any, requested: Sequence[str] | None = None) -> list[str]:
    """Which transformed columns are the model's outputs."""
    if requested:
        return [str(c) for c in requested]
    return declared_outputs(signature) or ["prediction"]


def _vector_inputs(model: Any) -> set[str]:
    """Columns some stage reads as an ML vector (features of a predictor, input of a scaler …)."""
    names = set()
    for stage in stages(model):
        for param in _VECTOR_PARAMS:
            if stage.hasParam(param) and stage.isDefined(getattr(stage, param)):
                names.add(stage.getOrDefault(getattr(stage, param)))
    return names


def _arrays_to_vectors(df: Any, model: Any) -> Any:
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import types as T

    wanted = _vector_inputs(model)
    for field in df.schema.fields:
        if field.name in wanted and isinstance(field.dataType, T.ArrayType):
            df = df.withColumn(field.name, array_to_vector(field.name))
    return df


def _select_outputs(transformed: Any, columns: list[str], keep: Sequence[str], vectors_as_arrays: bool) -> Any:
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import functions as F

    available = transformed.columns
    missing = [c for c in columns if c not in available]
    if missing:
        raise SchemaEnforcementError(
            f"The Spark ML model produced no column(s) {missing}; its output columns are {available}"
        )
    types = {f.name: f.dataType for f in transformed.schema.fields}
    exprs = [F.col(f"`{c}`") for c in keep if c not in columns]
    for c in columns:
        is_vector = isinstance(types[c], VectorUDT)
        exprs.append(vector_to_array(F.col(f"`{c}`")).alias(c) if is_vector and vectors_as_arrays else F.col(f"`{c}`"))
    return transformed.select(*exprs)


def _to_pandas_column(series: pd.Series) -> pd.Series:
    """Spark arrays (numpy arrays in pandas) → lists of Python floats/values."""
    if series.dtype == object and len(series) and hasattr(series.iloc[0], "tolist"):
        return series.map(lambda v: None if v is None else v.tolist())
    return series


def _declared_input_fields(signature: Any) -> dict[str, Any]:
    """Spark fields of the signature's named input columns ({} without named inputs)."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not inputs.inputs or not inputs.has_input_names():
        return {}
    try:
        return {field.name: field for field in inputs.to_spark().fields}
    except SchemaError:
        return {}


def spark_input(spark: Any, frame: pd.DataFrame, signature: Any) -> Any:
    """``frame`` as a Spark DataFrame typed by the signature's inputs; other columns inferred."""
    from pyspark.sql import types as T

    declared = _declared_input_fields(signature)
    names = [str(c) for c in frame.columns]
    if not any(n in declared for n in names):
        return spark.createDataFrame(frame)
    rest = [c for c, n in zip(frame.columns, names) if n not in declared]
    inferred = {f.name: f for f in spark.createDataFrame(frame[rest]).schema.fields} if rest else {}
    schema = T.StructType([declared.get(n) or inferred[n] for n in names])
    return spark.createDataFrame(frame.set_axis(names, axis=1), schema=schema)


def _single_or_frame(out: pd.DataFrame, columns: list[str]) -> pd.Series | pd.DataFrame:
    return out[columns[0]] if len(columns) == 1 else out[columns]


def predict_pandas(model: Any, data: Any, signature: Any, spark: Any = None) -> pd.Series | pd.DataFrame:
    """Score a pandas DataFrame through Spark; a Series for one output column, else a DataFrame."""
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    columns = output_columns(signature)
    if len(frame) == 0:  # nothing to score; Spark cannot infer types from an empty frame
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
        return _single_or_frame(empty, columns)
    spark = spark or active_session()
    df = _arrays_to_vectors(spark_input(spark, frame.reset_index(drop=True), signature), model)
    out = _select_outputs(model.transform(df), columns, [], vectors_as_arrays=True).toPandas()
    out = out.apply(_to_pandas_column) if len(out) else out
    return _single_or_frame(out, columns)


def predict_connect_ml(model: Any, data: Any, signature: Any) -> pd.Series | pd.DataFrame:
    """Score a ``pyspark.ml.connect`` model (it transforms pandas itself, without Spark).

    Output columns: the signature's, else ``prediction``, else the last column it adds.
    """
    frame = (data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)).reset_index(drop=True)
    out = model.transform(frame.copy())
    added = [c for c in out.columns if c not in frame.columns]
    columns = declared_outputs(signature) or (["prediction"] if "prediction" in out.columns else added[-1:])
    missing = [c for c in columns if c not in out.columns]
    if missing or not columns:
        raise SchemaEnforcementError(
            f"The {type(model).__name__} model produced no column(s) {missing or ['prediction']}; "
            f"its output columns are {list(out.columns)}"
        )
    return _single_or_frame(out[columns].apply(_to_pandas_column), columns)


class SparkPipelinePyfunc:
    """pyfunc adapter running a Spark ML pipeline through a SparkSession (or, for a
    ``pyspark.ml.connect`` model, on pandas)."""

    def __init__(self, model: Any, signature: Any, model_config: dict[str, Any] | None = None):
        self.model = model
        self.signature = signature
        self.model_config = model_config or {}

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.Series | pd.DataFrame:
        if is_connect_ml_model(self.model):
            return predict_connect_ml(self.model, data, self.signature)
        return predict_pandas(self.model, data, self.signature)

    def get_raw_model(self) -> Any:
        return self.model


def transform_keep(df: Any, model: Any, output_cols: Sequence[str] | None, vectors_as_arrays: bool) -> Any:
    """``model.transform(df)`` with ``df``'s columns and the output columns only (``model``: a
    fitted pipeline, or the URI of a spark-flavor model)."""
    signature = None
    if not hasattr(model, "transform"):
        from spark_models.flavors.opening import open_model
        from spark_models.flavors.spark.persistence import load_pipeline

        context = open_model(model)
        signature, model = context.signature, load_pipeline(context)
    columns = output_columns(signature, output_cols)
    transformed = model.transform(_arrays_to_vectors(df, model))
    return _select_outputs(transformed, columns, df.columns, vectors_as_arrays)
