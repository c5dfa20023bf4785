"""The spacy flavor: MLflow's layout, the python_function entry only for text categorizers,
pyfunc scoring (one text column → a ``predictions`` column of cats dicts), bad input, trust
(code_paths), MLflow interop both ways and spark_udf."""

import json
import logging
import uuid

import pandas as pd
import pytest
import yaml

import spark_models.pyfunc
import spark_models.spacy
from spark_models.exceptions import (
    ArtifactNotFoundError,
    FlavorNotFoundError,
    SchemaEnforcementError,
    UnsafeModelError,
)
from spark_models.flavors.opening import open_model
from spark_models.flavors.testing import check_flavor
from spark_models.pyfunc.loading import check_trusted
from tests.isolation import run_json

spacy = pytest.importorskip("spacy")
from spacy.training import Example

TRAIN = [("I love this film", "POS"), ("what a great movie", "POS"), ("wonderful acting, great story", "POS"),
         ("I hate this", "NEG"), ("an awful film", "NEG"), ("boring and bad", "NEG")]
TEXTS = ["I love it", "awful", "a great film that I love", "", "   ", "boring boring", "Ünïcödé ☃ text", "x"]


def trained(factory: str = "textcat", *extra_pipes: str):
    """A blank English pipeline with a text categorizer trained on six sentences."""
    nlp = spacy.blank("en")
    for name in extra_pipes:
        nlp.add_pipe(name)
    nlp.add_pipe(factory)
    examples = [Example.from_dict(nlp.make_doc(text), {"cats": {"POS": float(label == "POS"), "NEG": float(label == "NEG")}})
                for text, label in TRAIN]
    spacy.util.fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(8):
        nlp.update(examples, sgd=optimizer)
    return nlp


def cats_of(nlp, texts) -> pd.DataFrame:
    """MLflow's pyfunc output: each text through nlp() on its own."""
    return pd.DataFrame({"predictions": [nlp(text).cats for text in texts]})


@pytest.fixture(scope="module")
def nlp():
    return trained()


@pytest.fixture(scope="module")
def frame():
    return pd.DataFrame({"text": TEXTS})


# ---- conformance and layout --------------------------------------------------------------

def test_passes_check_flavor(spark, nlp, frame, tmp_path):
    check_flavor(spark_models.spacy.FLAVOR, nlp, frame, tmp_path, native_predict=lambda m, x: cats_of(m, x["text"]),
                 spark=spark)


def test_layout_is_mlflow_s(nlp, tmp_path):
    spark_models.spacy.save_model(nlp, tmp_path / "m")
    flavors = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]
    assert flavors["spacy"] == {"spacy_version": spacy.__version__, "data": "model.spacy", "code": None}
    assert {k: flavors["python_function"][k] for k in ("loader_module", "data")} == {
        "loader_module": "spark_models.spacy", "data": "model.spacy"}
    assert {"config.cfg", "meta.json", "textcat", "vocab"} <= {p.name for p in (tmp_path / "m" / "model.spacy").iterdir()}
    assert f"spacy=={spacy.__version__}" in (tmp_path / "m" / "requirements.txt").read_text().splitlines()
    loaded = spark_models.spacy.load_model(tmp_path / "m", allow_code=False)
    assert loaded.pipe_names == ["textcat"]
    assert [loaded(t).cats for t in TEXTS] == [nlp(t).cats for t in TEXTS]


def test_a_directory_without_a_spacy_3_pipeline_is_named(nlp, tmp_path):
    spark_models.spacy.save_model(nlp, tmp_path / "m")
    (tmp_path / "m" / "model.spacy" / "config.cfg").unlink()  # as a spaCy 2 model directory has none
    for load in (spark_models.spacy.load_model, spark_models.pyfunc.load_model):
        with pytest.raises(ArtifactNotFoundError, match=rf"model.spacy \(named in .*\) holds no config.cfg: no spaCy 3 "
                                                         rf"pipeline \(the model was written with spacy {spacy.__version__}\)"):
            load(tmp_path / "m")


def test_extra_files_are_copied_and_listed(nlp, tmp_path):
    notes = tmp_path / "labels.txt"
    notes.write_text("POS\nNEG\n")
    spark_models.spacy.save_model(nlp, tmp_path / "m", extra_files=[str(notes)])
    conf = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]["spacy"]
    assert conf["extra_files"] == [{"path": "extra_files/labels.txt"}]
    assert (tmp_path / "m" / "extra_files" / "labels.txt").read_text() == "POS\nNEG\n"


def test_multilabel_text_categorizer_gets_a_pyfunc(frame, tmp_path):
    multi = trained("textcat_multilabel")
    spark_models.spacy.save_model(multi, tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    pd.testing.assert_frame_equal(model.predict(frame), cats_of(multi, TEXTS))


def test_pipeline_without_text_categorizer_has_no_pyfunc(tmp_path, caplog):
    plain = spacy.blank("en")
    plain.add_pipe("sentencizer")
    with caplog.at_level(logging.WARNING, logger="spark_models.flavors.spacy"):
        spark_models.spacy.save_model(plain, tmp_path / "m")
    assert "has no text categorizer" in caplog.text and "['sentencizer']" in caplog.text
    assert set(yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]) == {"spacy"}
    with pytest.raises(FlavorNotFoundError, match="no 'python_function' flavor. Flavors present: spacy"):
        spark_models.pyfunc.load_model(tmp_path / "m")
    assert spark_models.spacy.load_model(tmp_path / "m").pipe_names == ["sentencizer"]


# ---- pyfunc behaviour --------------------------------------------------------------------

def test_batched_scores_equal_one_text_at_a_time(nlp, tmp_path):
    """nlp.pipe in small batches (empty texts among full ones) gives nlp(text)'s scores, row for
    row, on the input's index."""
    spark_models.spacy.save_model(nlp, tmp_path / "m")
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    model.get_raw_model().get_raw_model().batch_size = 3
    texts = [TEXTS[i % len(TEXTS)] + (" film" * (i % 3) if i % 4 else "") for i in range(41)]
    data = pd.DataFrame({"review": texts}, index=[f"r{i}" for i in range(41)][::-1])
    out = model.predict(data)
    assert list(out.index) == list(data.index) and list(out.columns) == ["predictions"]
    assert out["predictions"].tolist() == [nlp(t).cats for t in texts]
    assert nlp("").cats == {"POS": 0.0, "NEG": 0.0}  # what an empty text gets alone, not within a batch
    pd.testing.assert_frame_equal(model.predict(data["review"]), out)  # a Series is one text column


def test_bad_input_is_refused_naming_the_column(nlp, tmp_path):
    spark_models.spacy.save_model(nlp, tmp_path / "m")  # no signature: the flavor's own checks
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    with pytest.raises(SchemaEnforcementError, match=r"exactly one column of texts, got 2: \['a', 'b'\]"):
        model.predict(pd.DataFrame({"a": ["x"], "b": ["y"]}))
    with pytest.raises(SchemaEnforcementError, match=r"Column 'review' holds 2 missing text\(s\), at rows \[11, 13\]"):
        model.predict(pd.DataFrame({"review": ["ok", None, "fine", float("nan")]}, index=[10, 11, 12, 13]))
    with pytest.raises(SchemaEnforcementError, match=r"Column 'review' must hold texts \(str\); row 1 holds int 3"):
        model.predict(pd.DataFrame({"review": ["ok", 3]}))
    with pytest.raises(SchemaEnforcementError, match="DataFrame with one column of texts, got list"):
        model.predict(["a list"])


def test_with_a_signature_nulls_and_numbers_are_refused(nlp, frame, tmp_path):
    spark_models.spacy.save_model(nlp, tmp_path / "m", input_example=frame.head(2))
    model = spark_models.pyfunc.load_model(tmp_path / "m")
    with pytest.raises(SchemaEnforcementError, match=r"Column 'text' holds 1 missing text\(s\), at rows \[1\]"):
        model.predict(pd.DataFrame({"text": ["ok", None]}))
    with pytest.raises(SchemaEnforcementError, match="Column 'text'"):
        model.predict(pd.DataFrame({"text": [1.0, 2.0]}))
    extra = frame.assign(other=1.0)  # the signature picks its column
    assert model.predict(extra)["predictions"].tolist() == [nlp(t).cats for t in TEXTS]


# ---- trust: config is data, code_paths are code ------------------------------------------

COMPONENT = '''
from spacy.language import Language

@Language.component("{name}")
def shout(doc):
    doc.user_data["shouted"] = doc.text.upper()
    return doc
'''


def test_plain_pipeline_loads_in_safe_mode(nlp, frame, tmp_path):
    spark_models.spacy.save_model(nlp, tmp_path / "m")
    context = open_model(tmp_path / "m", allow_code=False)
    assert spark_models.spacy.FLAVOR.runs_code(context) is None
    check_trusted(context)
    out = spark_models.pyfunc.load_model(tmp_path / "m", allow_code=False).predict(frame)
    pd.testing.assert_frame_equal(out, cats_of(nlp, TEXTS))


@pytest.mark.slow
def test_custom_component_in_code_paths(tmp_path, monkeypatch, frame):
    """Safe mode refuses a model shipping code; otherwise the code goes on sys.path (as MLflow
    does), and a factory nobody imported is a clear error naming the shipped modules."""
    module = f"sm_shout_{uuid.uuid4().hex[:8]}"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / f"{module}.py").write_text(COMPONENT.format(name=module))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    __import__(module)
    nlp = trained("textcat", module)
    spark_models.spacy.save_model(nlp, tmp_path / "m", code_paths=[str(tmp_path / "src" / f"{module}.py")])
    conf = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]
    assert conf["spacy"]["code"] == conf["python_function"]["code"] == "code"
    for load in (spark_models.spacy.load_model, spark_models.pyfunc.load_model):
        with pytest.raises(UnsafeModelError, match="ships code"):
            load(tmp_path / "m", allow_code=False)
    frame.to_parquet(tmp_path / "X.parquet")
    out = run_json(FRESH_LOAD.format(path=str(tmp_path / "m"), module=module, data=str(tmp_path / "X.parquet")))
    assert "names a component or function spaCy does not know" in out["error"]
    assert module in out["error"] and f"modules ['{module}']" in out["error"]
    assert out["pipe_names"] == [module, "textcat"] and out["shouted"] == "HELLO"
    assert out["predictions"] == cats_of(nlp, TEXTS)["predictions"].tolist()


FRESH_LOAD = r'''
import json, pandas as pd, spark_models.pyfunc, spark_models.spacy
from spark_models.exceptions import MissingDependencyError
out = {{}}
try:
    spark_models.spacy.load_model({path!r})
except MissingDependencyError as e:
    out["error"] = str(e)
import {module}  # importable now: the model's code directory is on sys.path
nlp = spark_models.spacy.load_model({path!r})
out["pipe_names"] = nlp.pipe_names
out["shouted"] = nlp("hello").user_data["shouted"]
out["predictions"] = spark_models.pyfunc.load_model({path!r}).predict(pd.read_parquet({data!r}))["predictions"].tolist()
print(json.dumps(out))
'''


# ---- MLflow interop ----------------------------------------------------------------------

READS_WITHOUT_MLFLOW = r'''
import json, sys, pandas as pd, spark_models.pyfunc, spark_models.spacy
from spark_models.exceptions import FlavorNotFoundError
root = {root!r}
X = pd.read_parquet(root + "/X.parquet")
out = {{"pyfunc": spark_models.pyfunc.load_model(root + "/textcat", allow_code=False).predict(X)["predictions"].tolist(),
        "native": [spark_models.spacy.load_model(root + "/textcat")(t).cats for t in X["text"]],
        "plain_pipes": spark_models.spacy.load_model(root + "/plain", allow_code=False).pipe_names}}
try:
    spark_models.pyfunc.load_model(root + "/plain")
except FlavorNotFoundError as e:
    out["plain_pyfunc"] = str(e)
out["mlflow_loaded"] = any(m.split(".")[0] == "mlflow" for m in sys.modules)
print(json.dumps(out))
'''


@pytest.mark.slow
def test_mlflow_written_models_load_where_mlflow_cannot_be_imported(nlp, frame, tmp_path):
    mlflow_spacy = pytest.importorskip("mlflow.spacy")
    import mlflow.pyfunc

    plain = spacy.blank("en")
    plain.add_pipe("sentencizer")
    mlflow_spacy.save_model(nlp, str(tmp_path / "textcat"), input_example=frame.head(2))
    mlflow_spacy.save_model(plain, str(tmp_path / "plain"))
    expected = mlflow.pyfunc.load_model(str(tmp_path / "textcat")).predict(frame)["predictions"].tolist()
    frame.to_parquet(tmp_path / "X.parquet")
    got = run_json(READS_WITHOUT_MLFLOW.format(root=str(tmp_path)), blocked=("mlflow",))
    assert got["mlflow_loaded"] is False
    assert got["pyfunc"] == expected == got["native"]
    assert got["plain_pipes"] == ["sentencizer"]
    assert "no 'python_function' flavor" in got["plain_pyfunc"]


@pytest.mark.slow
def test_our_models_load_in_mlflow(nlp, frame, tmp_path):
    mlflow_spacy = pytest.importorskip("mlflow.spacy")
    import mlflow.pyfunc
    from mlflow.models import Model as MlflowModel

    spark_models.spacy.save_model(nlp, tmp_path / "ours", input_example=frame.head(2))
    mlflow_spacy.save_model(nlp, str(tmp_path / "theirs"), input_example=frame.head(2))
    ours = spark_models.pyfunc.load_model(tmp_path / "ours").predict(frame)
    pd.testing.assert_frame_equal(mlflow.pyfunc.load_model(str(tmp_path / "ours")).predict(frame), ours)
    native = mlflow_spacy.load_model(str(tmp_path / "ours"))
    assert native.pipe_names == ["textcat"] and [native(t).cats for t in TEXTS] == ours["predictions"].tolist()
    signatures = [MlflowModel.load(str(tmp_path / name)).signature.to_dict() for name in ("ours", "theirs")]
    assert signatures[0] == signatures[1]
    assert json.loads(signatures[0]["outputs"])[0]["type"] == "object"


# ---- Spark -------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.spark
def test_spark_udf_returns_a_struct_of_label_scores(spark, nlp, frame, tmp_path):
    """With a signature the result type is struct<NEG:double,POS:double> (MLflow's spark_udf
    derives the same type, then fails filling it); without one, result_type says it."""
    spark_models.spacy.save_model(nlp, tmp_path / "sig", input_example=frame.head(2))
    spark_models.spacy.save_model(nlp, tmp_path / "nosig")
    rows = [(i, t) for i, t in enumerate(TEXTS * 3)]
    df = spark.createDataFrame(rows, "id long, text string").repartition(2)
    by_signature = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "sig"))
    explicit = spark_models.pyfunc.spark_udf(spark, str(tmp_path / "nosig"), result_type="struct<POS:double,NEG:double>")
    scored = df.select("id", by_signature().alias("s"), explicit("text").alias("e"))
    assert scored.schema["s"].dataType.simpleString() == "struct<NEG:double,POS:double>"
    out = scored.orderBy("id").collect()
    expected = [nlp(t).cats for _, t in rows]
    assert [r.s.asDict() for r in out] == expected == [r.e.asDict() for r in out]


# ---- worker imports ----------------------------------------------------------------------

HEAVY = ("spacy", "torch", "tensorflow", "keras", "sklearn", "xgboost", "lightgbm", "onnxruntime", "mlflow", "pyspark")
IMPORTS = r'''
import json, sys
import pandas as pd
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
'''


@pytest.mark.slow
def test_scoring_imports_spacy_and_nothing_else_heavy(nlp, frame, tmp_path):
    spark_models.spacy.save_model(nlp, tmp_path / "m")
    frame.to_parquet(tmp_path / "X.parquet")
    score = (f"import spark_models.pyfunc\nm = spark_models.pyfunc.load_model({str(tmp_path / 'm')!r})\n"
             f"m.predict(pd.read_parquet({str(tmp_path / 'X.parquet')!r}))")
    scored = run_json(IMPORTS.format(body=score, heavy=HEAVY))
    library_alone = run_json(IMPORTS.format(body="import spacy", heavy=HEAVY))
    assert "spacy" in scored and "mlflow" not in scored and "pyspark" not in scored
    assert scored == library_alone  # thinc imports torch itself when it is installed; scoring adds nothing
