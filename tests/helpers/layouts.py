"""What every flavor writes to disk, as a normalized manifest, to prove layouts never change.

``build_cases(root, spark)`` saves one model per case (every built-in flavor and the main
options of each) under ``root``; ``manifest(model_dir)`` turns a saved directory into
``{relative path: normalized text, or "<binary>"}``. Normalization removes only what differs
between two saves of the same model: ids, timestamps, installed versions, Spark uids.
``tests/fixtures/layouts/*.json`` hold the manifests recorded before the flavor contract was
introduced; ``tests/test_layouts.py`` saves the same models again and compares.

Regenerate (only when a layout change is intended)::

    python -m tests.helpers.layouts tests/fixtures/layouts
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

_BINARY_SUFFIXES = {".pkl", ".skops", ".parquet", ".crc", ".snappy"}
_SUBSTITUTIONS = [
    (re.compile(r"\b[0-9a-f]{32}\b"), "<uuid>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"(utc_time_created: )'[^']*'"), r"\1<time>"),
    (re.compile(r"(\w*_version: )['\"]?[0-9][^\s'\"]*['\"]?"), r"\1<version>"),
    (re.compile(r"(python: )['\"]?[0-9][^\s'\"]*['\"]?"), r"\1<version>"),
    (re.compile(r"(python=)[0-9][^\s'\"]*"), r"\1<version>"),
    (re.compile(r"(==|<=)[0-9][^\s'\",]*"), r"\1<version>"),
    (re.compile(r"(\"timestamp\"\s*:\s*)(\d+|\"[^\"]*\")"), r"\1<time>"),
    (re.compile(r"(\"sparkVersion\"\s*:\s*)\"[^\"]*\""), r"\1<version>"),
    (re.compile(r"(\"version\"\s*:\s*)\"[0-9][^\"]*\""), r"\1<version>"),
    (re.compile(r"_[0-9a-f]{12}\b"), "_<uid>"),
    # wheel is pinned when installed (TensorFlow's dependencies install it), bare otherwise
    (re.compile(r"(- wheel)==<version>"), r"\1"),
    # fitted coefficients differ in their last digits between runs (Spark's aggregation order)
    (re.compile(r"(-?\d+\.\d{9})\d+"), r"\1"),
]


def normalize(text: str) -> str:
    for pattern, replacement in _SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    return text


def manifest(model_dir: Path, root: Path | None = None) -> dict[str, str]:
    """``{relative path: normalized text or "<binary>"}`` of every file under ``model_dir``
    (``root``, where the cases' input files lie, is written as ``<root>``)."""
    out = {}
    for path in sorted(p for p in Path(model_dir).rglob("*") if p.is_file()):
        rel = normalize(path.relative_to(model_dir).as_posix())
        if path.suffix in _BINARY_SUFFIXES or path.name.startswith("part-") and path.suffix != "":
            out[rel] = "<binary>"
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            out[rel] = "<binary>"
            continue
        if root is not None:
            text = text.replace(str(root), "<root>")
        out[rel] = normalize(text)
    return out


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.5]})


class ConstantModel:
    """A PythonModel-like class (importable, so the pickle refers to it by name)."""

    def load_context(self, context):
        self.offset = float(Path(context.artifacts["offset"]).read_text())

    def predict(self, context, model_input, params=None):
        return model_input["a"] + self.offset


def _sklearn_cases(root: Path) -> dict[str, Callable[[Path], Any]]:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    import spark_models.sklearn
    from spark_models.models import infer_signature

    X = _frame()
    reg = LinearRegression().fit(X, X.a + 2 * X.b)
    clf = LogisticRegression().fit(X, [0, 1, 0, 1])
    code = root / "_code" / "helper_module.py"
    code.parent.mkdir(parents=True, exist_ok=True)
    code.write_text("VALUE = 1\n")
    return {
        "sklearn_cloudpickle": lambda p: spark_models.sklearn.save_model(
            reg, p, signature=infer_signature(X, reg.predict(X)), input_example=X.head(2),
            metadata={"team": "scoring"}, extra_pip_requirements=["pyarrow"]),
        "sklearn_skops_proba": lambda p: spark_models.sklearn.save_model(
            clf, p, serialization_format="skops", pyfunc_predict_fn="predict_proba", code_paths=[code],
            input_example=X.head(2)),
        "sklearn_pickle": lambda p: spark_models.sklearn.save_model(
            reg, p, serialization_format="pickle", pip_requirements=["scikit-learn", "numpy"]),
    }


def _pyfunc_cases(root: Path) -> dict[str, Callable[[Path], Any]]:
    import spark_models.pyfunc

    artifact = root / "_artifacts" / "offset.txt"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_text("2.5")
    loader = root / "_loader" / "layout_loader.py"
    loader.parent.mkdir(parents=True, exist_ok=True)
    loader.write_text("def _load_pyfunc(path):\n    return None\n")
    data = root / "_data" / "weights.txt"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("1 2 3")
    return {
        "pyfunc_python_model": lambda p: spark_models.pyfunc.save_model(
            p, python_model=ConstantModel(), artifacts={"offset": str(artifact)}, model_config={"k": 1},
            input_example={"a": [1.0, 2.0], "b": [0.0, 1.0]}),
        "pyfunc_loader_module": lambda p: spark_models.pyfunc.save_model(
            p, loader_module="layout_loader", data_path=data, code_paths=[loader],
            conda_env={"dependencies": ["python=3.11", {"pip": ["numpy"]}]}),
    }


def _spark_pipeline(spark, trees: bool = False):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.normal(size=40), "x2": rng.normal(size=40),
                          "color": rng.choice(["red", "blue"], 40)})
    frame["label"] = (frame.x1 > 0).astype(float)
    df = spark.createDataFrame(frame)
    stages = [StringIndexer(inputCol="color", outputCol="color_idx", handleInvalid="keep"),
              VectorAssembler(inputCols=["x1", "x2", "color_idx"], outputCol="features"),
              RandomForestClassifier(numTrees=3, maxDepth=3, seed=1) if trees else LogisticRegression(maxIter=5)]
    for i, stage in enumerate(stages):
        stage._resetUid(f"{type(stage).__name__}_layout{i}")
    pipeline = Pipeline(stages=stages)
    pipeline._resetUid("Pipeline_layout")
    return pipeline.fit(df), df.drop("label")


def _spark_cases(spark) -> dict[str, Callable[[Path], Any]]:
    import spark_models.mleap
    import spark_models.spark
    from spark_models.models import infer_signature

    lr, df = _spark_pipeline(spark)
    rf, _ = _spark_pipeline(spark, trees=True)
    sample = df.limit(3).toPandas()
    signature = infer_signature(sample, pd.Series([0.0, 1.0, 0.0], name="prediction"))
    return {
        "spark_bundle": lambda p: spark_models.spark.save_model(lr, p, signature=signature),
        "spark_trees": lambda p: spark_models.spark.save_model(rf, p, signature=signature),
        "spark_no_mleap": lambda p: spark_models.spark.save_model(lr, p, mleap=False, input_example=sample.head(2)),
        "spark_sample_input": lambda p: spark_models.spark.save_model(lr, p, sample_input=df),
        "mleap_only": lambda p: spark_models.mleap.save_model(lr, p, sample_input=df, signature=signature),
    }


def build_cases(root: Path, spark: Any = None) -> dict[str, Path]:
    """Save every case under ``root``; returns case name → model directory."""
    root = Path(root)
    cases = {**_sklearn_cases(root), **_pyfunc_cases(root)}
    if spark is not None:
        cases.update(_spark_cases(spark))
    saved = {}
    for name, save in cases.items():
        save(root / name)
        saved[name] = root / name
    return saved


def _main(out_dir: str) -> None:
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from conftest import spark_builder

    spark = spark_builder().getOrCreate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in build_cases(Path(tmp), spark).items():
            (out / f"{name}.json").write_text(json.dumps(manifest(path, Path(tmp)), indent=1, sort_keys=True) + "\n")
    spark.stop()


if __name__ == "__main__":
    _main(sys.argv[1])
