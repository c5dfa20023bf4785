"""Tensor signatures through spark_udf: flattened and nested array columns, shapes checked with
errors naming the column, multi-input models, tensor outputs, fixed batches, one load per worker,
and the GPU choice from Spark's task resources."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from pyspark.errors import PythonException
from pyspark.sql import functions as F

import spark_models.pyfunc
from spark_models.exceptions import InvalidArgumentError, SchemaEnforcementError
from spark_models.flavors.devices import resolve_device, task_gpus, cuda_index
from spark_models.models import ModelSignature
from spark_models.types import ColSpec, Schema, TensorSpec
from udf.plan import TensorInput
from udf.tensors import reshape_tensors

IMAGE = TensorSpec(np.float32, (-1, 3, 8, 8))


class ChannelMeans(spark_models.pyfunc.PythonModel):
    """(n, 3, 8, 8) float32 → (n, 3): the mean of each channel; records every load and batch."""

    def __init__(self, log_dir: str):
        self.log_dir = log_dir

    def load_context(self, context):
        with open(os.path.join(self.log_dir, "loads"), "a") as f:
            f.write(f"{os.getpid()}\n")

    def predict(self, context, model_input, params=None):
        assert isinstance(model_input, np.ndarray) and model_input.dtype == np.float32, type(model_input)
        assert model_input.shape[1:] == (3, 8, 8), model_input.shape
        with open(os.path.join(self.log_dir, "batches"), "a") as f:
            f.write(f"{len(model_input)}\n")
        return model_input.reshape(len(model_input), 3, 64).mean(axis=2)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, 8, 8)).astype(np.float32)


@pytest.fixture
def image_model(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    sig = ModelSignature(Schema([IMAGE]), Schema([TensorSpec(np.float32, (-1, 3))]))
    path = tmp_path / "cnn"
    spark_models.pyfunc.save_model(path, python_model=ChannelMeans(str(logs)), signature=sig)
    return str(path), logs


def _expected(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), 3, 64).mean(axis=2)


def test_flattened_and_nested_columns_score_the_same(spark, image_model):
    path, _ = image_model
    images = _images(40)
    rows = [(i, images[i].reshape(-1).tolist(), images[i].tolist()) for i in range(len(images))]
    df = spark.createDataFrame(rows, "id int, flat array<float>, nested array<array<array<float>>>").repartition(3)
    u = spark_models.pyfunc.spark_udf(spark, path)
    assert u.return_type.simpleString() == "array<float>"
    out = df.withColumn("a", u("flat")).withColumn("b", u("nested")).orderBy("id").collect()
    assert [r.id for r in out] == list(range(40))
    np.testing.assert_allclose(np.array([r.a for r in out]), _expected(images), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.array([r.b for r in out]), _expected(images), rtol=1e-4, atol=1e-6)


def test_double_arrays_feed_a_float32_tensor(spark, image_model):
    path, _ = image_model
    images = _images(5).astype(np.float64)
    df = spark.createDataFrame([(images[i].reshape(-1).tolist(),) for i in range(5)], "img array<double>")
    out = df.withColumn("p", spark_models.pyfunc.spark_udf(spark, path)("img")).collect()
    np.testing.assert_allclose(np.array([r.p for r in out]), _expected(images), rtol=1e-4, atol=1e-6)


def test_wrong_nesting_is_refused_on_the_driver_naming_column_and_shapes(spark, image_model):
    path, _ = image_model
    df = spark.createDataFrame([([[1.0, 2.0]],)], "img array<array<double>>")
    u = spark_models.pyfunc.spark_udf(spark, path)
    with pytest.raises(SchemaEnforcementError) as e:
        u.validate(df, "img")
    message = str(e.value)
    assert "'img'" in message and "array<array<double>>" in message and "(-1, 3, 8, 8)" in message
    assert "array<float> of 192 values" in message and "array<array<array<float>>>" in message
    strings = spark.createDataFrame([(["a"],)], "img array<string>")
    with pytest.raises(SchemaEnforcementError, match="'img' is array<string>"):
        u.validate(strings, "img")


def test_wrong_lengths_fail_the_task_naming_column_row_and_shapes(spark, image_model):
    path, _ = image_model
    u = spark_models.pyfunc.spark_udf(spark, path)
    short = spark.createDataFrame([([0.5] * 192,), ([0.5] * 150,)], "img array<float>").coalesce(1)
    with pytest.raises(PythonException, match=r"column 'img' row 1 has 150 values, but the signature's tensor "
                                              r"takes \(3, 8, 8\) per row \(shape \(-1, 3, 8, 8\)"):
        short.withColumn("p", u("img")).collect()
    ragged = np.zeros((3, 8, 8)).tolist()
    ragged[2] = ragged[2][:7]
    bad = spark.createDataFrame([(ragged,)], "img array<array<array<float>>>")
    with pytest.raises(PythonException, match="column 'img' row 0 has shape \\(3, 7, 8\\)|row 0 has ragged"):
        bad.withColumn("p", u("img")).collect()
    nulls = spark.createDataFrame([(None,)], "img array<float>")
    with pytest.raises(PythonException, match="column 'img' row 0 has a null"):
        nulls.withColumn("p", u("img")).collect()


def test_reshape_keeps_row_order_and_casts():
    tensor = TensorInput("x", "float32", (-1, 2, 2))
    frame = pd.DataFrame({"x": [np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0, 7.0, 8.0])]})
    out = reshape_tensors(frame, (tensor,))  # a single tensor input: one array, whatever it is named
    assert out.dtype == np.float32 and out.shape == (2, 2, 2)
    assert out[1].tolist() == [[5.0, 6.0], [7.0, 8.0]]
    nested = pd.DataFrame({"x": [np.array([np.array([1.0, 2.0]), np.array([3.0, 4.0])], dtype=object)]})
    assert reshape_tensors(nested, (tensor,)).tolist() == [[[1.0, 2.0], [3.0, 4.0]]]
    two = reshape_tensors(frame.assign(y=[1.0, 2.0]), (tensor, TensorInput("y", "float64", (-1,))))
    assert set(two) == {"x", "y"} and two["y"].tolist() == [1.0, 2.0]


class TwoInputs(spark_models.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        assert set(model_input) == {"a", "b"}, model_input
        return model_input["a"].sum(axis=1) * 10 + model_input["b"].reshape(len(model_input["b"]), -1).sum(axis=1)


def test_multi_input_tensors_bind_one_column_per_input_name(spark, tmp_path):
    sig = ModelSignature(Schema([TensorSpec(np.float32, (-1, 2), "a"), TensorSpec(np.float64, (-1, 2, 2), "b")]),
                         Schema([TensorSpec(np.float64, (-1,))]))
    spark_models.pyfunc.save_model(tmp_path / "two", python_model=TwoInputs(), signature=sig)
    df = spark.createDataFrame([(1, [1.0, 2.0], [[1.0, 1.0], [1.0, 1.0]]), (2, [0.0, 1.0], [[0.5, 0.5], [0.0, 0.0]])],
                               "id int, a array<double>, b array<array<double>>")
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "two"))
    assert u.return_type.simpleString() == "double"
    assert [r.p for r in df.withColumn("p", u()).orderBy("id").collect()] == [34.0, 11.0]
    renamed = df.withColumnRenamed("b", "pics")
    assert [r.p for r in renamed.withColumn("p", u(a="a", b="pics")).orderBy("id").collect()] == [34.0, 11.0]


class Outputs(spark_models.pyfunc.PythonModel):
    """Returns a tensor of per-row shape ``params['shape']`` for the (n, 2) input."""

    def predict(self, context, model_input, params=None):
        shape = tuple(params["shape"])
        n = len(model_input)
        return np.arange(n * int(np.prod(shape)), dtype=np.float32).reshape((n, *shape))


def _outputs_model(tmp_path, out_shape):
    from spark_models.types import ParamSchema, ParamSpec

    sig = ModelSignature(Schema([TensorSpec(np.float32, (-1, 2))]),
                         None if out_shape is None else Schema([TensorSpec(np.float32, (-1, *out_shape))]),
                         ParamSchema([ParamSpec("shape", "long", [1], (-1,))]))
    path = tmp_path / f"out{len(os.listdir(tmp_path))}"
    spark_models.pyfunc.save_model(path, python_model=Outputs(), signature=sig)
    return str(path)


def test_tensor_outputs_become_scalars_arrays_and_arrays_of_arrays(spark, tmp_path):
    df = spark.createDataFrame([([1.0, 2.0],), ([3.0, 4.0],)], "x array<float>").coalesce(1)
    scalar = spark_models.pyfunc.spark_udf(spark, _outputs_model(tmp_path, (1,)), result_type="float", params={"shape": [1]})
    assert [r.p for r in df.withColumn("p", scalar("x")).collect()] == [0.0, 1.0]
    vector = spark_models.pyfunc.spark_udf(spark, _outputs_model(tmp_path, (3,)), params={"shape": [3]})
    assert vector.return_type.simpleString() == "array<float>"
    assert [r.p for r in df.withColumn("p", vector("x")).collect()] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    matrix = spark_models.pyfunc.spark_udf(spark, _outputs_model(tmp_path, (2, 2)), params={"shape": [2, 2]})
    assert matrix.return_type.simpleString() == "array<array<float>>"
    assert [r.p for r in df.withColumn("p", matrix("x")).collect()] == [[[0.0, 1.0], [2.0, 3.0]], [[4.0, 5.0], [6.0, 7.0]]]


def test_outputs_of_more_than_two_dimensions_per_row_are_errors_naming_the_output(spark, tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"output #0 is a tensor of shape \(-1, 2, 2, 2\).*3 dimensions per row"):
        spark_models.pyfunc.spark_udf(spark, _outputs_model(tmp_path, (2, 2, 2)))
    unsigned = spark_models.pyfunc.spark_udf(spark, _outputs_model(tmp_path, None), result_type="array<array<float>>",
                                             params={"shape": [2, 2, 2]})
    df = spark.createDataFrame([([1.0, 2.0],)], "x array<float>")
    with pytest.raises(PythonException, match=r"output is a tensor of shape \(1, 2, 2, 2\): spark_udf returns at most 2"):
        df.withColumn("p", unsigned("x")).collect()


def test_batch_size_rows_per_call_and_one_load_per_worker(spark, image_model):
    path, logs = image_model
    images = _images(250, seed=3)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")
    try:
        df = spark.createDataFrame([(i, images[i].reshape(-1).tolist()) for i in range(250)], "id int, img array<float>")
        u = spark_models.pyfunc.spark_udf(spark, path, batch_size=32)
        out = sorted(df.repartition(2).withColumn("p", u("img")).collect())  # one job: orderBy would sample first
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    np.testing.assert_allclose(np.array([r.p for r in out]), _expected(images), rtol=1e-4, atol=1e-6)
    sizes = [int(s) for s in (logs / "batches").read_text().split()]
    assert sum(sizes) == 250 and max(sizes) == 32
    assert sum(1 for s in sizes if s != 32) <= 2  # at most one short tail per partition
    loads = (logs / "loads").read_text().split()
    assert len(loads) == len(set(loads)) <= 2  # each Python worker loaded the model once


class FakeResource:
    def __init__(self, addresses):
        self.addresses = addresses


def test_device_choice_follows_the_task_gpus():
    assert task_gpus({"gpu": FakeResource(["1", "3"])}) == ("1", "3")
    assert task_gpus({"fpga": FakeResource(["0"])}) == ()
    assert task_gpus() == ()  # the driver runs no task
    assert resolve_device({}, gpus=()) == "cpu"
    assert resolve_device({}, gpus=("2",)) == "cuda:2"
    assert resolve_device({"device": "cuda"}, gpus=("2",)) == "cuda:2"
    assert resolve_device({"device": "cuda"}, gpus=()) == "cuda"
    assert resolve_device({"device": "cuda:1"}, gpus=("2",)) == "cuda:1"
    assert resolve_device({"device": "CPU"}, gpus=("2",)) == "cpu"
    assert cuda_index("cuda:3") == 3 and cuda_index("cuda") == 0
    for bad in ("gpu", "cuda:x", "cpu:0", ""):
        with pytest.raises(InvalidArgumentError, match="model_config\\['device'\\]"):
            resolve_device({"device": bad})


def test_tasks_without_gpus_report_none(spark):
    from pyspark import TaskContext

    def gpus(_):
        from spark_models.flavors.devices import task_gpus as in_task

        assert TaskContext.get() is not None
        return [in_task()]

    assert spark.sparkContext.parallelize([0], 1).mapPartitions(gpus).collect() == [()]


def test_a_column_signature_is_not_treated_as_a_tensor(spark, tmp_path):
    class Sum(spark_models.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input["a"] + model_input["b"]

    sig = ModelSignature(Schema([ColSpec("double", "a"), ColSpec("double", "b")]), Schema([ColSpec("double")]))
    spark_models.pyfunc.save_model(tmp_path / "cols", python_model=Sum(), signature=sig)
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "cols"))
    df = spark.range(3).select(F.col("id").cast("double").alias("a"), F.lit(1.0).alias("b"))
    assert [r.p for r in df.withColumn("p", u()).orderBy("a").collect()] == [1.0, 2.0, 3.0]


# ---- real tensor models: pytorch and onnx ---------------------------------------------------

@pytest.fixture(scope="module")
def cnn_models(tmp_path_factory):
    """The same TinyCNN saved by the pytorch flavor and, exported to ONNX, by the onnx flavor."""
    import io
    import warnings

    import onnx
    import torch

    import spark_models.onnx
    import spark_models.pytorch
    from tests.helpers.torch_models import make_cnn

    root = tmp_path_factory.mktemp("cnn")
    model = make_cnn().eval()
    sig = ModelSignature(Schema([TensorSpec(np.float32, (-1, 3, 8, 8), "x")]), Schema([TensorSpec(np.float32, (-1, 2))]))
    spark_models.pytorch.save_model(model, root / "torch", signature=sig)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter needs no onnxscript
        torch.onnx.export(model, (torch.zeros(1, 3, 8, 8),), buf, dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    spark_models.onnx.save_model(onnx.load_from_string(buf.getvalue()), root / "onnx", signature=sig)
    images = _images(64, seed=7)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    return {"torch": str(root / "torch"), "onnx": str(root / "onnx")}, images, expected


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["torch", "onnx"])
def test_a_real_cnn_scores_flattened_and_nested_columns(spark, cnn_models, flavor):
    paths, images, expected = cnn_models
    rows = [(i, images[i].reshape(-1).tolist(), images[i].tolist()) for i in range(len(images))]
    df = spark.createDataFrame(rows, "id int, flat array<float>, nested array<array<array<float>>>").repartition(2)
    u = spark_models.pyfunc.spark_udf(spark, paths[flavor], batch_size=16)
    assert u.return_type.simpleString() == "array<float>"
    out = sorted(df.withColumn("a", u("flat")).withColumn("b", u("nested")).collect())
    assert [r.id for r in out] == list(range(len(images)))
    np.testing.assert_allclose(np.array([r.a for r in out]), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.array([r.b for r in out]), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(SchemaEnforcementError, match=r"column 'flat' is array<array<float>>.*\(-1, 3, 8, 8\)"):
        u.validate(spark.createDataFrame([([[1.0]],)], "flat array<array<float>>"), "flat")


@pytest.mark.slow
def test_torch_scoring_in_spark_runs_in_inference_mode(spark, tmp_path):
    import spark_models.pytorch
    from tests.helpers.torch_models import InferenceProbe

    sig = ModelSignature(Schema([TensorSpec(np.float32, (-1, 2))]), Schema([TensorSpec(np.float32, (-1,))]))
    spark_models.pytorch.save_model(InferenceProbe().train(), tmp_path / "probe", signature=sig)
    u = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "probe"))
    df = spark.createDataFrame([([1.0, 2.0],)] * 10, "x array<float>").repartition(2)
    assert {r.p for r in df.withColumn("p", u("x")).collect()} == {1.0}


def test_tensor_models_get_about_a_mebibyte_of_rows_per_call_by_default(spark, image_model):
    from udf.batching import TENSOR_MAX_ROWS, TENSOR_MIN_ROWS, tensor_batch_rows

    assert tensor_batch_rows([TensorInput("x", "float32", (-1, 3, 8, 8))]) == (1 << 20) // (4 * 192) == 1365
    assert tensor_batch_rows([TensorInput("x", "float64", (-1, 3, 224, 224))]) == TENSOR_MIN_ROWS
    assert tensor_batch_rows([TensorInput("x", "float32", (-1, 2))]) == TENSOR_MAX_ROWS
    path, logs = image_model
    images = _images(3000, seed=5)
    df = spark.createDataFrame([(i, images[i].reshape(-1).tolist()) for i in range(3000)], "id int, img array<float>")
    out = sorted(df.coalesce(1).withColumn("p", spark_models.pyfunc.spark_udf(spark, path)("img")).collect())
    np.testing.assert_allclose(np.array([r.p for r in out]), _expected(images), rtol=1e-4, atol=1e-6)
    assert [int(s) for s in (logs / "batches").read_text().split()] == [1365, 1365, 270]
