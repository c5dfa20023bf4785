"""compile_transform: sklearn preprocessing as Spark Column expressions, compared with
``transform`` of the same fitted step on the same rows (NaN, nulls, edges, unseen values)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from pyspark.errors.exceptions.captured import SparkRuntimeException
from pyspark.sql import functions as F
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (Binarizer, FunctionTransformer, KBinsDiscretizer,
                                   MaxAbsScaler, MinMaxScaler, OneHotEncoder, OrdinalEncoder,
                                   PolynomialFeatures, RobustScaler, StandardScaler)

from spark_models.exceptions import NotSupportedError
from spark_models.native.sklearn_steps import compile_transform, split_pipeline

NUM = ["a", "b", "c"]
TXT = ["s", "t"]


def _numeric(seed: int, n: int = 300, *, nan: bool = True) -> pd.DataFrame:
    """Numeric columns with NaN (nan=True), repeated values and a wide range of magnitudes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NUM))) * 10.0 ** rng.uniform(-3, 3, size=(n, 1))
    X[rng.random(size=X.shape) < 0.1] = 1.5
    if nan:
        X[rng.random(size=X.shape) < 0.1] = np.nan
    return pd.DataFrame(X, columns=NUM)


def _text(seed: int, n: int = 300, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """String columns with None and (optionally) categories unseen at fit time."""
    rng = np.random.default_rng(seed)
    pool = np.array(["red", "green", "blue", "x", None] + list(extra), dtype=object)
    weights = np.r_[[0.4, 0.25, 0.15, 0.05, 0.1], [0.05 / max(len(extra), 1)] * len(extra)]
    cols = {c: rng.choice(pool, size=n, p=weights / weights.sum()) for c in TXT}
    return pd.DataFrame(cols, dtype=object)


def _spark_frame(spark, frame: pd.DataFrame):
    """The same rows in Spark: NaN in numeric columns becomes a null in every other row."""
    rows, fields = [], ["id long"]
    for c in frame.columns:
        fields.append(f"{c} {'double' if frame[c].dtype.kind == 'f' else 'string'}")
    for i, rec in enumerate(frame.itertuples(index=False)):
        vals = []
        for v in rec:
            if isinstance(v, float) and np.isnan(v):
                v = None if i % 2 else float("nan")
            vals.append(v)
        rows.append((i, *vals))
    return spark.createDataFrame(rows, ", ".join(fields))


def _run(spark, step, frame: pd.DataFrame, columns: list[str] | None = None):
    """(compiled output as an array, names) evaluated in one Spark job."""
    columns = columns or list(frame.columns)
    sdf = _spark_frame(spark, frame)
    cols, names = compile_transform(step, [F.col(c) for c in columns], columns)
    got = sdf.select("id", *[c.alias(f"o{k}") for k, c in enumerate(cols)]).orderBy("id")
    rows = got.collect()
    return np.array([[r[f"o{k}"] for k in range(len(cols))] for r in rows], dtype=object), names


def _want(step, frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = step.transform(frame)
    return np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=object)


def _check(spark, step, frame, columns=None):
    got, names = _run(spark, step, frame, columns)
    want = _want(step, frame[columns] if columns else frame)
    assert got.shape == want.shape
    if all(isinstance(v, float) for v in want.ravel()):
        got, want = got.astype(float), want.astype(float)
    np.testing.assert_array_equal(got, want)
    expected_names = getattr(step, "get_feature_names_out", None)
    if expected_names is not None and _has_names(step):
        assert names == list(step.get_feature_names_out())
    return got


def _has_names(step) -> bool:
    try:
        step.get_feature_names_out()
        return True
    except Exception:  # noqa: BLE001
        return False


SCALERS = [StandardScaler(), StandardScaler(with_mean=False), StandardScaler(with_std=False),
           MinMaxScaler(), MinMaxScaler(feature_range=(-1, 2), clip=True), MaxAbsScaler(),
           MaxAbsScaler(clip=True), RobustScaler(), RobustScaler(with_centering=False),
           RobustScaler(with_scaling=False, quantile_range=(10, 90))]


@pytest.mark.parametrize("step", SCALERS, ids=lambda s: repr(s))
def test_scalers_match_exactly_with_nan_and_null(spark, step):
    train = _numeric(0)
    step.fit(train)
    frame = pd.concat([_numeric(1), train.iloc[:20] * 3.0], ignore_index=True)  # clip range
    got = _check(spark, step, frame).astype(float)
    assert np.isnan(got).any() and not np.isnan(got).all()


@pytest.mark.parametrize("kwargs", [
    dict(strategy="mean"), dict(strategy="median", add_indicator=True),
    dict(strategy="most_frequent", keep_empty_features=True),
    dict(strategy="constant", fill_value=-7.5, add_indicator=True),
    dict(strategy="mean", keep_empty_features=False, add_indicator=True)])
def test_simple_imputer_numeric(spark, kwargs):
    train = _numeric(2)
    train["c"] = np.nan  # an empty feature: dropped or kept as 0 per keep_empty_features
    train.loc[5:9, "b"] = np.nan
    step = SimpleImputer(**kwargs).fit(train)
    _check(spark, step, _numeric(3))


def test_simple_imputer_number_missing_value_and_strings(spark):
    train = _numeric(4, nan=False)
    step = SimpleImputer(missing_values=1.5, strategy="median", add_indicator=True).fit(train)
    _check(spark, step, _numeric(5, nan=False))
    text = _text(6)
    marked = SimpleImputer(missing_values="x", strategy="most_frequent", add_indicator=True)
    _check(spark, marked.fit(text), _text(7))  # None is not "x": indicator 0, value kept
    pipe = make_pipeline(SimpleImputer(missing_values=None, strategy="constant",
                                       fill_value="missing"),
                         OneHotEncoder(handle_unknown="ignore")).fit(text)
    _check(spark, pipe, _text(7, extra=("purple",)))


ENCODERS = [
    OneHotEncoder(handle_unknown="ignore"),
    OneHotEncoder(drop="first", handle_unknown="ignore"),
    OneHotEncoder(drop="if_binary", handle_unknown="infrequent_if_exist", min_frequency=20),
    OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=3),
    OneHotEncoder(drop=["green", "red"], handle_unknown="ignore"),
    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                   encoded_missing_value=-9),
    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, min_frequency=20),
]


@pytest.mark.parametrize("step", ENCODERS, ids=lambda s: repr(s))
def test_encoders_on_strings_with_none_and_unseen(spark, step):
    step.fit(_text(8))
    _check(spark, step, _text(9, extra=("purple", "cyan")))


@pytest.mark.parametrize("step", [OneHotEncoder(handle_unknown="ignore"),
                                  OneHotEncoder(drop="first", handle_unknown="ignore"),
                                  OrdinalEncoder(handle_unknown="use_encoded_value",
                                                 unknown_value=-1, encoded_missing_value=-2)],
                         ids=repr)
def test_encoders_on_numbers_with_nan(spark, step):
    rng = np.random.default_rng(10)
    train = pd.DataFrame({"a": rng.choice([0.0, 1.0, 2.5, np.nan], 200),
                          "b": rng.choice([-1.0, 3.0], 200)})
    step.fit(train)
    test = pd.DataFrame({"a": rng.choice([0.0, -0.0, 1.0, 2.5, np.nan, 7.0], 200),
                         "b": rng.choice([-1.0, 3.0, 4.0, np.nan], 200)})
    _check(spark, step, test)


@pytest.mark.parametrize("encode", ["ordinal", "onehot-dense", "onehot"])
@pytest.mark.parametrize("strategy", ["uniform", "quantile", "kmeans"])
def test_kbins_including_values_on_edges(spark, encode, strategy):
    train = _numeric(11, nan=False)
    extra = {"quantile_method": "averaged_inverted_cdf"} if strategy == "quantile" else {}
    step = KBinsDiscretizer(n_bins=4, encode=encode, strategy=strategy, **extra).fit(train)
    edges = pd.DataFrame(np.array([e for e in step.bin_edges_]).T, columns=NUM)
    _check(spark, step, pd.concat([_numeric(12, nan=False), edges], ignore_index=True))


def test_binarizer_threshold_values(spark):
    frame = pd.DataFrame({"a": [0.5, 0.5000000000000001, 0.49999999999999994, -3.0, 9.0]})
    _check(spark, Binarizer(threshold=0.5).fit(frame), frame)


def test_column_transformer_selections_and_names(spark):
    frame = pd.concat([_numeric(13), _text(13)], axis=1)
    ct = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a", "b"]),
        ("idx", MinMaxScaler(), [2]),
        ("mask", "passthrough", np.array([False, True, False, False, False])),
        ("sl", OneHotEncoder(handle_unknown="ignore"), slice(3, 5)),
        ("gone", "drop", ["a"]),
        ("empty", StandardScaler(), []),
    ], remainder="drop").fit(frame)
    test = pd.concat([_numeric(14), _text(14, extra=("purple",))], axis=1)
    _check(spark, ct, test)
    ct2 = ColumnTransformer([("t", OrdinalEncoder(handle_unknown="use_encoded_value",
                                                  unknown_value=-1),
                              make_column_selector(dtype_include=object))],
                            remainder=RobustScaler(), verbose_feature_names_out=False).fit(frame)
    _check(spark, ct2, test)
    ct3 = ColumnTransformer([("t", OneHotEncoder(handle_unknown="ignore"), ["s"])],
                            remainder="passthrough").fit(frame[["s", "a", "b"]])
    _check(spark, ct3, test[["s", "a", "b"]])


def test_function_transformer_identity(spark):
    frame = _numeric(15)
    _check(spark, FunctionTransformer().fit(frame), frame)
    assert _run(spark, FunctionTransformer().fit(frame), frame)[1] is None  # no names out
    _check(spark, FunctionTransformer(feature_names_out="one-to-one").fit(frame), frame)
    with pytest.raises(NotSupportedError, match="FunctionTransformer.*func"):
        compile_transform(FunctionTransformer(np.log1p).fit(frame), [F.col("a")] * 3, NUM)


def _error(spark, step, frame):
    with pytest.raises(SparkRuntimeException) as info:
        _run(spark, step, frame)
    return str(info.value)


def test_errors_fail_the_query_naming_column_and_value(spark):
    text = _text(16)
    unseen = pd.DataFrame({"s": ["red"], "t": ["purple"]}, dtype=object)
    message = _error(spark, OneHotEncoder().fit(text), unseen)
    assert "OneHotEncoder found an unknown category in column 't': purple" in message
    no_none = OrdinalEncoder().fit(pd.DataFrame({"s": ["a", "b"], "t": ["c", "d"]}))
    message = _error(spark, no_none, pd.DataFrame({"s": ["a"], "t": [None]}, dtype=object))
    assert "OrdinalEncoder found an unknown category in column 't': None" in message
    numeric = _numeric(18, nan=False)
    message = _error(spark, Binarizer().fit(numeric),
                     pd.DataFrame({"a": [1.0], "b": [np.nan], "c": [2.0]}))
    assert "Binarizer: input contains NaN or infinity in column 'b'" in message
    message = _error(spark, StandardScaler().fit(numeric),
                     pd.DataFrame({"a": [1.0], "b": [2.0], "c": [-np.inf]}))
    assert "column 'c': -Infinity" in message
    message = _error(spark, KBinsDiscretizer(n_bins=3, encode="ordinal").fit(numeric),
                     pd.DataFrame({"a": [np.nan], "b": [2.0], "c": [1.0]}))
    assert "KBinsDiscretizer" in message and "column 'a'" in message


def test_unsupported_steps_name_the_path():
    frame = _numeric(20, nan=False)
    pipe = Pipeline([("prep", ColumnTransformer([("poly", PolynomialFeatures(), NUM)])),
                     ("lr", LinearRegression())]).fit(frame, frame["a"])
    steps, final = split_pipeline(pipe)
    assert [n for n, _ in steps] == ["prep"] and isinstance(final, LinearRegression)
    with pytest.raises(NotSupportedError, match="Pipeline step 'prep' > ColumnTransformer "
                                                "'poly'.*PolynomialFeatures"):
        compile_transform(pipe[:-1], [F.col(c) for c in NUM], NUM)
    with pytest.raises(NotSupportedError, match="not a transformer"):
        compile_transform(pipe, [F.col(c) for c in NUM], NUM)


def test_split_pipeline_flattens_nested():
    inner = Pipeline([("imp", SimpleImputer()), ("skip", "passthrough")])
    pipe = Pipeline([("pre", inner), ("sc", StandardScaler()), ("lr", LinearRegression())])
    steps, final = split_pipeline(pipe)
    assert [n for n, _ in steps] == ["pre__imp", "sc"] and final is pipe.steps[-1][1]
    assert split_pipeline(Pipeline([("sc", StandardScaler()), ("end", "passthrough")]))[1] is None


def _random_pipeline(rng):
    """A random ColumnTransformer (inside a Pipeline half the time)."""
    numeric = [lambda: StandardScaler(with_mean=bool(rng.integers(2))),
               lambda: MinMaxScaler(clip=bool(rng.integers(2))), MaxAbsScaler, RobustScaler,
               lambda: make_pipeline(SimpleImputer(strategy=str(rng.choice(
                   ["mean", "median", "most_frequent"])), add_indicator=True),
                   StandardScaler())]
    text = [lambda: OneHotEncoder(handle_unknown="ignore", drop=[None, "first"][rng.integers(2)]),
            lambda: OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
            lambda: OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=30)]
    parts = []
    for i in range(int(rng.integers(1, 4))):
        cols = [str(c) for c in rng.choice(NUM, size=int(rng.integers(1, 4)), replace=False)]
        parts.append((f"n{i}", numeric[int(rng.integers(len(numeric)))](), cols))
    parts.append(("txt", text[int(rng.integers(len(text)))](), TXT))  # no string remainder
    remainder = rng.choice(["drop", "passthrough"])
    ct = ColumnTransformer(parts, remainder=str(remainder))
    return make_pipeline(ct, MaxAbsScaler()) if rng.integers(2) else ct


@pytest.mark.parametrize("seed", range(4))
def test_random_column_transformers_match_sklearn(spark, seed):
    rng = np.random.default_rng(seed)
    step = _random_pipeline(rng)
    train = pd.concat([_numeric(30 + seed), _text(30 + seed)], axis=1)
    step.fit(train)
    test = pd.concat([_numeric(40 + seed), _text(40 + seed, extra=("new",))], axis=1)
    _check(spark, step, test)
