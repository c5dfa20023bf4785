"""The scoring app: every request format of the reference doc, decoding, errors and limits."""

import base64
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

import spark_models.pyfunc
import spark_models.sklearn
from spark_models import __version__
from spark_models.models import infer_signature
from spark_models.serving import create_app
from spark_models.schema.signature import ModelSignature
from spark_models.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

SPLIT = "application/json"
RECORDS = "application/json; format=pandas-records"


@pytest.fixture(scope="module")
def sk(tmp_path_factory):
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.random(50), "b": rng.random(50)})
    clf = LogisticRegression().fit(X, (X.a > X.b).astype(int))
    path = tmp_path_factory.mktemp("serve") / "lr"
    spark_models.sklearn.save_model(clf, path, signature=infer_signature(X, clf.predict(X)))
    client = TestClient(create_app(spark_models.pyfunc.load_model(str(path)), max_body_bytes=4096))
    return clf, X, client


def _post(client, body, content_type=SPLIT):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/invocations", content=data, headers={"Content-Type": content_type})


def _expect(clf, X, response):
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": clf.predict(X).tolist()}


def test_split_records_csv_and_mlflow2_keys_score_the_same(sk):
    clf, X, client = sk
    head = X.head(4)
    split = json.loads(head.to_json(orient="split", index=False))
    records = json.loads(head.to_json(orient="records"))
    _expect(clf, head, _post(client, split))
    _expect(clf, head, _post(client, split, "application/json; format=pandas-split"))
    _expect(clf, head, _post(client, records, RECORDS))
    _expect(clf, head, _post(client, head.to_csv(index=False), "text/csv"))
    _expect(clf, head, _post(client, {"dataframe_split": split}))
    _expect(clf, head, _post(client, {"dataframe_records": records}))
    _expect(clf, head, _post(client, {"instances": records}))
    _expect(clf, head, _post(client, {"inputs": {"a": head.a.tolist(), "b": head.b.tolist()}}))


def test_columns_are_bound_by_name_not_position(sk):
    clf, X, client = sk
    swapped = {"columns": ["b", "a"], "data": X[["b", "a"]].head(6).values.tolist()}
    _expect(clf, X.head(6), _post(client, swapped))


def test_json_integers_are_cast_to_double_columns(sk):
    clf, _, client = sk
    ints = pd.DataFrame({"a": [0, 1, 1], "b": [1, 0, 1]})
    _expect(clf, ints.astype(float), _post(client, json.loads(ints.to_json(orient="split", index=False))))


def test_health_ping_version(sk):
    _, _, client = sk
    assert client.get("/ping").status_code == 200
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/version").text == __version__


@pytest.mark.parametrize(
    "body, content_type, status, words",
    [
        ("{not json", SPLIT, 400, "not valid JSON"),
        ({"columns": ["a"], "data": [[0.1]]}, SPLIT, 400, "'b'"),
        ({"columns": ["a", "b"], "data": [["x", 0.1]]}, SPLIT, 400, "'a'"),
        ({"dataframe_split": {}, "inputs": {}}, SPLIT, 400, "exactly one"),
        ({"foo": 1}, SPLIT, 400, "foo"),
        ([{"a": 1.0, "b": 2.0}], SPLIT, 400, "pandas-records"),
        ("a,b\n0.1,0.2", "text/plain", 415, "Content-Type"),
        ("a,b\n0.1,0.2", "text/csv; charset=latin-1", 415, "charset"),
        ("", "text/csv", 400, "empty"),
        (b"\xff\xfe", "text/csv", 400, "UTF-8"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[0.1, 0.2]]}, "params": [1]}, SPLIT, 400, "params"),
    ],
)
def test_bad_requests_get_400_with_a_message(sk, body, content_type, status, words):
    _, _, client = sk
    response = _post(client, body, content_type)
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error_code", "message"} and words in payload["message"], payload


def test_body_size_limit(sk):
    _, X, client = sk
    big = {"columns": ["a", "b"], "data": [[0.5, 0.5]] * 500}
    response = _post(client, big)
    assert response.status_code == 413 and response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(100):
            yield b"a,b\n" * 20

    streamed = client.post("/invocations", content=chunks(), headers={"Content-Type": "text/csv"})
    assert streamed.status_code == 413


class Typed(spark_models.pyfunc.PythonModel):
    """Echoes what it received: byte lengths, datetime months, a param."""

    def predict(self, context, model_input, params=None):
        if isinstance(model_input, dict) or isinstance(model_input, np.ndarray):
            arr = model_input["x"] if isinstance(model_input, dict) else model_input
            return (arr.sum(axis=tuple(range(1, arr.ndim))) * params["scale"]).tolist()
        if "fail" in model_input.columns:
            raise RuntimeError("boom inside the model")
        return pd.DataFrame({
            "size": model_input["blob"].map(len),
            "month": model_input["when"].dt.month,
            "label": [None, *["x"] * (len(model_input) - 1)],
            "score": [np.nan, *[1.5] * (len(model_input) - 1)],
        })


@pytest.fixture(scope="module")
def typed_client(tmp_path_factory):
    sig = ModelSignature(Schema([ColSpec("binary", "blob"), ColSpec("datetime", "when")]))
    path = tmp_path_factory.mktemp("typed") / "m"
    spark_models.pyfunc.save_model(path, python_model=Typed(), signature=sig)
    return TestClient(create_app(spark_models.pyfunc.load_model(str(path))))


def test_base64_binary_and_iso_datetimes_are_decoded_per_signature(typed_client):
    rows = [
        {"blob": base64.b64encode(b"abc").decode(), "when": "2020-01-01T00:00:00Z"},
        {"blob": base64.b64encode(b"hello!").decode(), "when": "2020-02-01T12:34:56Z"},
    ]
    response = _post(typed_client, rows, RECORDS)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [
        {"size": 3, "month": 1, "label": None, "score": None},
        {"size": 6, "month": 2, "label": "x", "score": 1.5},
    ]}
    bad = _post(typed_client, [{"blob": "not base64!", "when": "2020-01-01"}], RECORDS)
    assert bad.status_code == 400 and "'blob'" in bad.json()["message"]
    bad_date = _post(typed_client, [{"blob": "YQ==", "when": "yesterday"}], RECORDS)
    assert bad_date.status_code == 400 and "'when'" in bad_date.json()["message"]


def test_model_failure_is_500_with_the_message(tmp_path):
    path = tmp_path / "m"
    spark_models.pyfunc.save_model(path, python_model=Typed())
    client = TestClient(create_app(spark_models.pyfunc.load_model(str(path))))
    response = _post(client, {"columns": ["fail"], "data": [[1]]})
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR" and "boom inside the model" in response.json()["message"]


def test_tensor_instances_and_inputs_with_params(tmp_path):
    sig = ModelSignature(
        Schema([TensorSpec(np.dtype("float32"), (-1, 2, 2), "x")]),
        params=ParamSchema([ParamSpec("scale", "double", 1.0)]),
    )
    path = tmp_path / "t"
    spark_models.pyfunc.save_model(path, python_model=Typed(), signature=sig)
    client = TestClient(create_app(spark_models.pyfunc.load_model(str(path))))
    batch = [[[1, 2], [3, 4]], [[0, 0], [0, 1]]]
    by_inputs = _post(client, {"inputs": {"x": batch}, "params": {"scale": 2.0}})
    assert by_inputs.status_code == 200, by_inputs.text
    assert by_inputs.json() == {"predictions": [20.0, 2.0]}
    by_instances = _post(client, {"instances": [{"x": batch[0]}, {"x": batch[1]}]})
    assert by_instances.json() == {"predictions": [10.0, 1.0]}
    wrong_shape = _post(client, {"inputs": {"x": [[1, 2, 3]]}})
    assert wrong_shape.status_code == 400 and "shape" in wrong_shape.json()["message"].lower()


def test_large_bodies_are_scored_off_the_event_loop_too(sk, tmp_path):
    from spark_models.serving.app import INLINE_BODY_BYTES

    clf, _, _ = sk
    rng = np.random.default_rng(5)
    big = pd.DataFrame({"a": rng.random(20000), "b": rng.random(20000)})
    body = big.to_json(orient="split", index=False)
    assert len(body) > INLINE_BODY_BYTES
    spark_models.sklearn.save_model(clf, tmp_path / "m")
    client = TestClient(create_app(spark_models.pyfunc.load_model(str(tmp_path / "m"))))
    _expect(clf, big, _post(client, body))
