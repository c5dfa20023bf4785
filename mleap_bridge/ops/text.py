"""Text ops: tokenizer, regex_tokenizer, stopwords_remover, ngram, hashing_term_frequency,
count_vectorizer, idf. Token lists are object arrays of Python lists; term vectors are dense.

A null text or token list is an error naming the node and column, as Spark's transformers
fail on null too (rows an earlier op skipped are exempt).
"""

from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np

from spark_models.exceptions import NotSupportedError, SchemaEnforcementError

from mleap_bridge import attributes as A
from mleap_bridge.bundle import Node
from mleap_bridge.frame import Frame, as_float
from mleap_bridge.java_regex import compile_java
from mleap_bridge.murmur3 import spark_hash_index
from mleap_bridge.ops import OpSpec, register

Kernel = Callable[[Frame], None]


def _java_split(pattern: re.Pattern, text: str) -> list[str]:
    """Java's String.split: trailing empty strings are removed."""
    parts = pattern.split(text)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _per_row(node: Node, fn: Callable[[Any], Any], dtype: Any = object) -> Kernel:
    column, output = node.input(), node.output()

    def run(frame: Frame) -> None:
        values = frame.column(column, node.name)
        out = np.empty(len(values), dtype=object)
        empty = None
        for i, v in enumerate(values):
            if not _is_null(v):
                out[i] = fn(v)
            elif frame.keep is not None and not frame.keep[i]:
                out[i] = empty = fn([]) if empty is None else empty  # a placeholder for a skipped row
            else:
                raise SchemaEnforcementError(f"MLeap node {node.name!r} ({node.op}): null value in column {column!r} "
                                             f"at row {i}; Spark's transformer fails on null input too")
        frame.data[output] = out if dtype is object else np.stack(out) if len(out) else np.empty((0, 0))

    return run


def _io(stage: Any) -> tuple[list, list]:
    return [("input", stage.getInputCol())], [("output", stage.getOutputCol())]


def _simple(op: str, spark_class: str, compile_fn: Callable, attributes: Callable[[Any], dict],
            to_spark: Callable[[Node], Any]) -> None:
    def from_spark(stage: Any, shapes: dict) -> Node:
        shapes[stage.getOutputCol()] = None
        return Node(stage.uid, op, attributes(stage), *_io(stage))

    register(OpSpec(op, compile_fn, (spark_class,), from_spark, to_spark))


# ---- tokenizers -------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s", re.ASCII)  # Java character classes are ASCII by default


def _tokenizer(node: Node) -> Kernel:
    return _per_row(node, lambda s: _java_split(_WHITESPACE, str(s).lower()))


def _tokenizer_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import Tokenizer

    return Tokenizer(inputCol=node.input(), outputCol=node.output())


_simple("tokenizer", "Tokenizer", _tokenizer, lambda stage: {}, _tokenizer_to_spark)


def _regex_tokenizer(node: Node) -> Kernel:
    pattern = compile_java(node.attr("regex", "string", "\\s+"), node.name)
    gaps, lower = node.attr("matchGaps", "boolean", True), node.attr("lowercaseText", "boolean", True)
    min_length = int(node.attr("tokenMinLength", "int", 1))

    def tokens(text: Any) -> list[str]:
        s = str(text).lower() if lower else str(text)
        found = _java_split(pattern, s) if gaps else [m.group(0) for m in pattern.finditer(s)]
        return [t for t in found if len(t) >= min_length]

    return _per_row(node, tokens)


def _regex_attributes(stage: Any) -> dict:
    return {"regex": A.scalar("string", stage.getPattern()), "matchGaps": A.scalar("boolean", stage.getGaps()),
            "tokenMinLength": A.scalar("int", stage.getMinTokenLength()),
            "lowercaseText": A.scalar("boolean", stage.getToLowercase())}


def _regex_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import RegexTokenizer

    return RegexTokenizer(inputCol=node.input(), outputCol=node.output(), pattern=node.attr("regex", "string", "\\s+"),
                          gaps=bool(node.attr("matchGaps", "boolean", True)),
                          minTokenLength=int(node.attr("tokenMinLength", "int", 1)),
                          toLowercase=bool(node.attr("lowercaseText", "boolean", True)))


_simple("regex_tokenizer", "RegexTokenizer", _regex_tokenizer, _regex_attributes, _regex_to_spark)


# ---- stopwords_remover, ngram -----------------------------------------------------------

def _stopwords(node: Node) -> Kernel:
    case_sensitive = node.attr("case_sensitive", "boolean")
    words = node.attr("stop_words", "list", [])
    stop = set(words) if case_sensitive else {w.lower() for w in words}
    if case_sensitive:
        return _per_row(node, lambda tokens: [t for t in tokens if t not in stop])
    return _per_row(node, lambda tokens: [t for t in tokens if t is None or t.lower() not in stop])


def _stopwords_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import StopWordsRemover

    return StopWordsRemover(inputCol=node.input(), outputCol=node.output(),
                            stopWords=list(node.attr("stop_words", "list", [])),
                            caseSensitive=bool(node.attr("case_sensitive", "boolean")))


_simple("stopwords_remover", "StopWordsRemover", _stopwords,
        lambda s: {"stop_words": A.listed("string", s.getStopWords()),
                   "case_sensitive": A.scalar("boolean", s.getCaseSensitive())}, _stopwords_to_spark)


def _ngram(node: Node) -> Kernel:
    n = int(node.attr("n", "long", 2))
    return _per_row(node, lambda tokens: [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)])


def _ngram_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import NGram

    return NGram(n=int(node.attr("n", "long", 2)), inputCol=node.input(), outputCol=node.output())


_simple("ngram", "NGram", _ngram, lambda s: {"n": A.scalar("long", s.getN())}, _ngram_to_spark)


# ---- term frequencies -------------------------------------------------------------------

def _hash_version(node: Node) -> int:
    """MLeap's ``hashUnsafeBytesVersion``: 2 (Spark 3+); absent means 1 (Spark 2's hashing)."""
    version = int(node.attr("hashUnsafeBytesVersion", "int", 1))
    if version not in (1, 2):
        raise NotSupportedError(f"hashing_term_frequency node {node.name!r}: hashUnsafeBytesVersion {version} "
                                "is unknown (1 and 2 are supported)")
    return version


def _num_features(node: Node) -> int:
    return node.size("num_features", "long", 1 << 18, minimum=1)


def _hashing_tf(node: Node) -> Kernel:
    size, binary = _num_features(node), node.attr("binary", "boolean")
    version = _hash_version(node)

    def counts(tokens: Any) -> np.ndarray:
        vector = np.zeros(size)
        for t in tokens:
            index = spark_hash_index(t, size, version)
            vector[index] = 1.0 if binary else vector[index] + 1.0
        return vector

    return _per_row(node, counts, dtype=float)


def _hashing_from_spark(stage: Any, shapes: dict) -> Node:
    shapes[stage.getOutputCol()] = stage.getNumFeatures()
    return Node(stage.uid, "hashing_term_frequency", {
        "num_features": A.scalar("long", stage.getNumFeatures()), "binary": A.scalar("boolean", stage.getBinary()),
        "hashUnsafeBytesVersion": A.scalar("int", 2)}, *_io(stage))


def _hashing_to_spark(node: Node) -> Any:
    """Version 2 is Spark 3+'s HashingTF; version 1 uses its (uid, hashFuncVersion) constructor."""
    from pyspark.ml.feature import HashingTF

    params = {"inputCol": node.input(), "outputCol": node.output(), "binary": bool(node.attr("binary", "boolean")),
              "numFeatures": _num_features(node)}
    stage = HashingTF(**params)
    if _hash_version(node) == 1:
        from mleap_bridge import jvm

        stage._java_obj = jvm.new_object("org.apache.spark.ml.feature.HashingTF", stage.uid, 1)
    return stage


register(OpSpec("hashing_term_frequency", _hashing_tf, ("HashingTF",), _hashing_from_spark, _hashing_to_spark))


def _count_vectorizer(node: Node) -> Kernel:
    vocabulary = node.attr("vocabulary", "list", [])
    node.checked("vocabulary (its length is the vector width)", len(vocabulary))
    index = {term: i for i, term in enumerate(vocabulary)}
    binary, min_tf = node.attr("binary", "boolean"), float(node.attr("min_tf", "double", 1.0))

    def counts(tokens: Any) -> np.ndarray:
        vector = np.zeros(len(vocabulary))
        for t in tokens:
            if t in index:
                vector[index[t]] += 1.0
        threshold = min_tf if min_tf >= 1.0 else min_tf * len(tokens)
        vector[vector < threshold] = 0.0
        return (vector > 0).astype(np.float64) if binary else vector

    return _per_row(node, counts, dtype=float)


def _count_from_spark(stage: Any, shapes: dict) -> Node:
    shapes[stage.getOutputCol()] = len(stage.vocabulary)
    return Node(stage.uid, "count_vectorizer", {
        "vocabulary": A.listed("string", stage.vocabulary), "binary": A.scalar("boolean", stage.getBinary()),
        "min_tf": A.scalar("double", stage.getMinTF())}, *_io(stage))


def _count_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import CountVectorizerModel

    vocabulary = list(node.attr("vocabulary", "list", []))
    node.checked("vocabulary (its length is the vector width)", len(vocabulary))
    model = CountVectorizerModel.from_vocabulary(vocabulary, node.input(), node.output(),
                                                 minTF=float(node.attr("min_tf", "double", 1.0)))
    return model.setBinary(bool(node.attr("binary", "boolean")))


register(OpSpec("count_vectorizer", _count_vectorizer, ("CountVectorizerModel",), _count_from_spark, _count_to_spark))


def _idf(node: Node) -> Kernel:
    weights = as_float(node.attr("idf", "tensor"))
    column, output = node.input(), node.output()

    def run(frame: Frame) -> None:
        frame.data[output] = as_float(frame.column(column, node.name)) * weights

    return run


def _idf_from_spark(stage: Any, shapes: dict) -> Node:
    shapes[stage.getOutputCol()] = len(stage.idf)
    return Node(stage.uid, "idf", {"idf": A.tensor(stage.idf.toArray()), "docFreq": A.listed("long", stage.docFreq),
                                   "numDocs": A.scalar("long", stage.numDocs)}, *_io(stage))


def _idf_to_spark(node: Node) -> Any:
    from pyspark.ml.feature import IDFModel

    from mleap_bridge import jvm

    weights = as_float(node.attr("idf", "tensor"))
    doc_freq = node.attr("docFreq", "list", [0] * len(weights))
    gw = jvm.gateway()
    freq = gw.new_array(gw.jvm.long, len(doc_freq))
    for i, f in enumerate(doc_freq):
        freq[i] = int(f)
    parent = gw.jvm.org.apache.spark.mllib.feature.IDFModel(
        gw.jvm.org.apache.spark.mllib.linalg.Vectors.fromML(jvm.dense_vector(weights)), freq,
        int(node.attr("numDocs", "long", 0)))
    return jvm.new_model("org.apache.spark.ml.feature.IDFModel", IDFModel, node.name, parent,
                         inputCol=node.input(), outputCol=node.output())


register(OpSpec("idf", _idf, ("IDFModel",), _idf_from_spark, _idf_to_spark))
