"""mleap_bridge's tree ops score through one flat TreeEnsemble per node.

The kernels (decision_tree_*, random_forest_*, gbt_*) must give exactly what walking each
``tree.json`` separately gives (a small reference walker below), on data with NaN, infinities,
values on the thresholds and unseen/non-whole categories, both for batches (numpy walk) and
single rows (the few-row walk); hostile tree files keep failing at load, naming node and file.
"""

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mleap_bridge
from mleap_bridge import Bundle, Node
from mleap_bridge import attributes as A
from mleap_bridge.ops import op_spec
from spark_models.exceptions import MalformedModelError, SchemaEnforcementError
from spark_models.native.trees import MISSING_AS_ZERO, MISSING_NAN, MISSING_ZERO, concatenate

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mleap"
WIDTH = 5
THRESHOLDS = [-1.0, 0.0, 0.5, 1.0, 2.0, 3.5]
GRID = np.array([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 7.0, np.nan, np.inf, -np.inf])


# ---- reference: one tree at a time, one row at a time --------------------------------------

def _after_subtree(lines: list[dict], i: int) -> int:
    """The line after the subtree that starts at line ``i`` (pre-order)."""
    need = 1
    while need:
        need += 1 if lines[i]["type"] != "leaf" else -1
        i += 1
    return i


def _reference_leaf(lines: list[dict], row: np.ndarray) -> list[float]:
    i = 0
    while lines[i]["type"] != "leaf":
        split = lines[i]["split"]
        v = row[split["featureIndex"]]
        if split["type"] == "continuous":
            left = v <= split["threshold"]  # NaN: right
        else:
            left = (v in split["categories"]) == split["isLeft"]  # NaN and unlisted values: the other side
        i = i + 1 if left else _after_subtree(lines, i + 1)
    return lines[i]["values"]


def _normalize(rows: np.ndarray) -> np.ndarray:
    total = rows.sum(axis=1, keepdims=True)
    return np.divide(rows, total, out=np.zeros_like(rows), where=total != 0)


def _reference(op: str, trees: list[list[dict]], weights: list[float], x: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Outputs as the per-tree walk combines them (trees summed in order, starting from 0)."""
    leaves = [np.array([(_reference_leaf(t, r) + [0.0] * k)[:k] for r in x]) for t in trees]
    if op in ("decision_tree_regression", "gbt_regression", "random_forest_regression", "gbt_classifier"):
        total = sum(w * leaf[:, 0] for w, leaf in zip(weights, leaves))
        if op == "random_forest_regression":
            return {"prediction": total / len(trees)}
        if op != "gbt_classifier":
            return {"prediction": total}
        p1 = 1.0 / (1.0 + np.exp(-2.0 * total))
        return {"prediction": (total > 0).astype(float), "probability": np.column_stack([1.0 - p1, p1]),
                "raw_prediction": np.column_stack([-total, total])}
    raw = sum(w * _normalize(leaf) for w, leaf in zip(weights, leaves)) if op == "random_forest_classifier" \
        else leaves[0]
    probability = _normalize(raw)
    return {"prediction": np.argmax(probability, axis=1).astype(float), "probability": probability,
            "raw_prediction": raw}


# ---- random trees and nodes ---------------------------------------------------------------

def _random_tree(rng: np.random.Generator, depth: int, k: int, counts: bool) -> list[dict]:
    lines: list[dict] = []
    stack = [depth]
    while stack:
        d = stack.pop()
        if d == 0 or (d < depth and rng.random() < 0.2):
            values = rng.integers(0, 6, k).astype(float) if counts else rng.normal(size=k)
            lines.append({"type": "leaf", "values": values.tolist()})
            continue
        feature = int(rng.integers(WIDTH))
        if rng.random() < 0.3:
            cats = sorted(rng.choice(6, size=int(rng.integers(1, 4)), replace=False).astype(float).tolist())
            split = {"type": "categorical", "featureIndex": feature, "numCategories": 6, "categories": cats,
                     "isLeft": bool(rng.random() < 0.5)}
        else:
            split = {"type": "continuous", "featureIndex": feature, "threshold": float(rng.choice(THRESHOLDS))}
        lines.append({"type": "internal", "split": split})
        stack += [d - 1, d - 1]
    return lines


def _text(lines: list[dict]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


OUTPUTS = {"prediction": "pred", "probability": "prob", "raw_prediction": "raw"}
CLASSIFIERS = ("decision_tree_classifier", "random_forest_classifier", "gbt_classifier")


def _node(op: str, trees: list[list[dict]], weights: list[float], k: int, name: str = "trees") -> Node:
    attributes = {"num_features": A.scalar("long", WIDTH)}
    outputs = [("prediction", "pred")]
    if op in CLASSIFIERS:
        attributes["num_classes"] = A.scalar("long", k)
        outputs += [("probability", "prob"), ("raw_prediction", "raw")]
    if op.startswith("decision_tree"):
        files = {"tree.json": _text(trees[0])}
    else:
        names = [f"tree{i}" for i in range(len(trees))]
        attributes["trees"] = A.listed("string", names)
        attributes["tree_weights"] = A.listed("double", weights)
        files = {f"{n}/tree.json": _text(t) for n, t in zip(names, trees)}
    return Node(name, op, attributes, [("features", "features")], outputs, files=files)


def _model(node: Node) -> mleap_bridge.BundleModel:
    return mleap_bridge.BundleModel(Bundle(Node("p", "pipeline", children=[node]), "p"))


def _data(rng: np.random.Generator, rows: int) -> np.ndarray:
    return rng.choice(GRID, size=(rows, WIDTH))


CASES = [  # op, number of trees, leaf values per tree
    ("decision_tree_regression", 1, 1), ("decision_tree_classifier", 1, 3),
    ("random_forest_regression", 7, 1), ("random_forest_regression", 70, 1),
    ("random_forest_classifier", 7, 3), ("random_forest_classifier", 70, 2),
    ("gbt_regression", 12, 1), ("gbt_classifier", 12, 1),
]


@pytest.mark.parametrize("op,n_trees,k", CASES, ids=[f"{op}-{n}" for op, n, _ in CASES])
def test_kernel_equals_the_per_tree_walk_for_batches_and_single_rows(op, n_trees, k):
    rng = np.random.default_rng(n_trees * 31 + k)
    counts = op in ("decision_tree_classifier", "random_forest_classifier")
    trees = [_random_tree(rng, int(rng.integers(1, 7)), k, counts) for _ in range(n_trees)]
    weights = rng.uniform(0.05, 1.5, n_trees).round(3).tolist() if op.startswith("gbt") else [1.0] * n_trees
    model = _model(_node(op, trees, weights, k))
    x = _data(rng, 400)
    expected = _reference(op, trees, weights, x, k)
    out = model.transform(pd.DataFrame({"features": list(x)}))
    assert len(out) == len(x)
    for port, values in expected.items():
        got = out[OUTPUTS[port]]
        got = np.stack(got) if values.ndim == 2 else got.to_numpy()
        np.testing.assert_array_equal(got, values, err_msg=f"{op} {port}")
    for i in range(0, len(x), 37):  # one row at a time: the few-row walk for small ensembles
        row = model.transform_row({"features": x[i]})
        for port, values in expected.items():
            np.testing.assert_array_equal(row[OUTPUTS[port]], values[i], err_msg=f"{op} {port} row {i}")


def test_thresholds_and_unnamed_outputs_still_apply():
    rng = np.random.default_rng(5)
    trees = [_random_tree(rng, 4, 3, True) for _ in range(5)]
    node = _node("random_forest_classifier", trees, [1.0] * 5, 3)
    node.attributes["thresholds"] = A.listed("double", [0.1, 0.0, 0.8])
    node.outputs = [("prediction", "pred")]
    x = _data(rng, 200)
    probability = _reference("random_forest_classifier", trees, [1.0] * 5, x, 3)["probability"]
    scaled = np.where([False, True, False], np.inf, probability / np.array([0.1, 1.0, 0.8]))
    out = _model(node).transform(pd.DataFrame({"features": list(x)}))
    assert list(out.columns) == ["features", "pred"]
    np.testing.assert_array_equal(out["pred"].to_numpy(), np.argmax(scaled, axis=1).astype(float))


def test_trees_are_read_once_when_the_kernel_is_built():
    rng = np.random.default_rng(2)
    trees = [_random_tree(rng, 4, 1, False) for _ in range(4)]
    node = _node("gbt_regression", trees, [0.5] * 4, 1)
    kernel = op_spec(node.op, node.name).compile(node)
    node.files.clear()  # scoring must not need the tree files any more
    x = _data(rng, 50)
    frame = mleap_bridge.frame.Frame({"features": x}, len(x))
    kernel(frame)
    expected = _reference("gbt_regression", trees, [0.5] * 4, x, 1)["prediction"]
    np.testing.assert_array_equal(frame.data["pred"], expected)


def test_a_deep_chain_of_splits_scores_without_recursion():
    """Node i sends x <= i left to a leaf -i, else on to node i + 1: 3000 levels deep."""
    chain = []
    for i in range(3000):
        chain += [{"type": "internal", "split": {"type": "continuous", "featureIndex": i % WIDTH, "threshold": i}},
                  {"type": "leaf", "values": [float(-i)]}]
    chain.append({"type": "leaf", "values": [1.0]})
    node = Node("deep", "decision_tree_regression", {"num_features": A.scalar("long", WIDTH)},
                [("features", "features")], [("prediction", "pred")], files={"tree.json": _text(chain)})
    model = _model(node)
    x = np.array([[5.0] * WIDTH, [-2.5] * WIDTH, [np.nan] * WIDTH, [1e9] * WIDTH, [2999.0] * WIDTH])
    expected = [_reference_leaf(chain, r)[0] for r in x]
    assert expected == [-5.0, 0.0, 1.0, 1.0, -2999.0]
    np.testing.assert_array_equal(model.transform(pd.DataFrame({"features": list(x)}))["pred"].to_numpy(), expected)
    assert [model.transform_row({"features": r})["pred"] for r in x] == expected


# ---- the airbnb RandomForest written by MLeap ---------------------------------------------

def _airbnb_forest_texts() -> list[list[dict]]:
    with zipfile.ZipFile(FIXTURES / "airbnb.model.rf.zip") as bundle:
        names = sorted((n for n in bundle.namelist() if n.endswith("/tree.json")),
                       key=lambda n: int(n.rsplit("/", 2)[-2][len("tree"):]))
        return [[json.loads(line) for line in bundle.read(n).decode().splitlines() if line.strip()] for n in names]


def test_airbnb_forest_scores_what_mleap_scores_and_what_each_tree_gives():
    model = mleap_bridge.load_bundle(FIXTURES / "airbnb.model.rf.zip")
    frame = mleap_bridge.read_leapframe(FIXTURES / "frame.airbnb.json")
    assert model.transform_row(frame.iloc[0].to_dict())["price_prediction"] == 218.2767196535019  # MLeap's value
    assert model.transform(frame)["price_prediction"][0] == 218.2767196535019
    forest = model.nodes[-1]
    trees = _airbnb_forest_texts()
    assert forest.op == "random_forest_regression" and len(trees) == 20
    width = forest.size("num_features")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, width)) * 3
    x[rng.random(x.shape) < 0.1] = np.nan
    splits = [line["split"] for t in trees for line in t if line["type"] != "leaf"]
    for r, split in enumerate(splits[:250]):  # exactly on thresholds, and listed categories
        x[r, split["featureIndex"]] = split["threshold"] if split["type"] == "continuous" else \
            (split["categories"] or [0.0])[0]
    expected = _reference("random_forest_regression", trees, [1.0] * 20, x, 1)["prediction"]
    single = mleap_bridge.BundleModel(Bundle(Node("p", "pipeline", children=[forest]), "p"))
    out = single.transform(pd.DataFrame({forest.input("features"): list(x)}))[forest.output("prediction")]
    np.testing.assert_array_equal(out.to_numpy(), expected)
    rows = [single.transform_row({forest.input("features"): x[i]})[forest.output("prediction")] for i in range(40)]
    np.testing.assert_array_equal(rows, expected[:40])


# ---- the few-row walk and the numpy walk agree on every split rule -------------------------

@pytest.mark.parametrize("strict", [False, True])
def test_few_row_walk_equals_numpy_walk_on_every_rule(strict):
    rng = np.random.default_rng(int(strict))
    trees = []
    for _ in range(6):
        lines = _random_tree(rng, 5, 2, False)
        n = len(lines)
        arrays = {"feature": [], "threshold": [], "left": [-1] * n, "right": [-1] * n, "value": [], "categories": {}}
        pending = []
        for i, line in enumerate(lines):
            if pending:
                parent, side = pending.pop()
                arrays[side][parent] = i
            if line["type"] == "leaf":
                arrays["feature"].append(-1)
                arrays["threshold"].append(0.0)
                arrays["value"].append(line["values"])
                continue
            split = line["split"]
            arrays["feature"].append(split["featureIndex"])
            arrays["threshold"].append(split.get("threshold", 0.0))
            arrays["value"].append([0.0, 0.0])
            if split["type"] != "continuous":
                arrays["categories"][i] = (set(split["categories"]), split["isLeft"])
            pending += [(i, "right"), (i, "left")]
        arrays["default_left"] = rng.random(n) < 0.5
        arrays["missing"] = rng.choice([MISSING_NAN, MISSING_ZERO, MISSING_AS_ZERO], n)
        arrays["weight"] = float(rng.uniform(0.5, 2))
        trees.append(arrays)
    ensemble = concatenate(trees, base_score=np.array([0.25, -0.5]), n_features=WIDTH, strict=strict)
    x = _data(rng, 300)
    x[::7, 0] = 1e-36  # lightgbm's "zero" band
    batch = ensemble.apply(x)  # 1800 pairs: the numpy walk
    few = np.concatenate([ensemble.apply(x[i:i + 1]) for i in range(len(x))])  # 6 pairs each: the plain walk
    np.testing.assert_array_equal(few, batch)
    np.testing.assert_array_equal(np.concatenate([ensemble.raw_score(x[i:i + 1]) for i in range(len(x))]),
                                  ensemble.raw_score(x))


# ---- hostile tree files still fail at load, naming node, file and line --------------------

_INNER = {"type": "internal", "split": {"type": "continuous", "featureIndex": 1, "threshold": 0.5}}
_LEAF = {"type": "leaf", "values": [1.0]}


def _split(**split) -> str:
    return json.dumps({"type": "internal", "split": {"type": "continuous", "threshold": 0.5, **split}})


BAD_TREES = [
    ("feature-beyond-num_features", "\n".join([_split(featureIndex=WIDTH), json.dumps(_LEAF), json.dumps(_LEAF)]),
     r"line 1: not a tree node.*featureIndex 5 is not from 0 to 4"),
    ("negative-feature", "\n".join([_split(featureIndex=-1), json.dumps(_LEAF), json.dumps(_LEAF)]),
     r"line 1: not a tree node.*featureIndex -1"),
    ("string-feature", "\n".join([_split(featureIndex="2"), json.dumps(_LEAF), json.dumps(_LEAF)]),
     r"line 1: not a tree node.*featureIndex '2' is not a whole number"),
    ("fractional-feature", "\n".join([_split(featureIndex=1.5), json.dumps(_LEAF), json.dumps(_LEAF)]),
     r"line 1: not a tree node.*featureIndex 1\.5 is not a whole number"),
    ("bool-feature", "\n".join([_split(featureIndex=True), json.dumps(_LEAF), json.dumps(_LEAF)]),
     r"line 1: not a tree node.*featureIndex True is not a whole number"),
    ("categorical-without-feature", "\n".join([json.dumps({"type": "internal", "split": {"type": "categorical"}}),
                                               json.dumps(_LEAF), json.dumps(_LEAF)]),
     r"line 1: not a tree node \(KeyError"),
    ("invalid-json", "\n".join([json.dumps(_INNER), '{"type": "leaf", "values": [1.0]', json.dumps(_LEAF)]),
     r"line 2: not valid JSON"),
    ("deeply-nested-json", "[" * 100000 + "]" * 100000, r"line 1: not valid JSON"),
    ("truncated", "\n".join([json.dumps(_INNER), json.dumps(_INNER), json.dumps(_LEAF)]),
     r"the tree ends before all its children"),
    ("node-after-the-end", "\n".join([json.dumps(_LEAF), json.dumps(_LEAF)]), r"line 2: a node after the tree"),
    ("leaf-without-values", "\n".join([json.dumps(_INNER), json.dumps(_LEAF), '{"type": "leaf", "values": []}']),
     r"line 3: not a tree node.*a leaf without values"),
    ("leaf-with-text-values", "\n".join([json.dumps(_INNER), json.dumps(_LEAF), '{"type": "leaf", "values": ["x"]}']),
     r"line 3: not a tree node \(ValueError"),
    ("not-an-object", "\n".join([json.dumps(_INNER), "[1, 2]", json.dumps(_LEAF)]), r"line 2: not a tree node"),
    ("huge-category", "\n".join([json.dumps({"type": "internal", "split": {"type": "categorical", "featureIndex": 0,
                                                                           "categories": [1e9], "isLeft": True}}),
                                 json.dumps(_LEAF), json.dumps(_LEAF)]),
     r"node #1: categories \[1000000000\.0\] are not all whole numbers from 0 to 1000000"),
]


@pytest.mark.parametrize("text,match", [(t, m) for _, t, m in BAD_TREES], ids=[n for n, _, _ in BAD_TREES])
def test_hostile_tree_json_is_refused_naming_node_and_file(tmp_path, text, match):
    good = _text([_LEAF])
    node = Node("forest", "random_forest_regression",
                {"num_features": A.scalar("long", WIDTH), "trees": A.listed("string", ["tree0", "tree1"])},
                [("features", "features")], [("prediction", "pred")],
                files={"tree0/tree.json": good, "tree1/tree.json": text})
    with pytest.raises(MalformedModelError, match=r"'forest'.*tree1/tree\.json.*" + match):
        _model(node)
    path = mleap_bridge.write_bundle(Bundle(Node("p", "pipeline", children=[node]), "p"), tmp_path / "b")
    with pytest.raises(MalformedModelError, match=r"'forest'.*" + match):
        mleap_bridge.load_bundle(path)


def test_feature_index_is_checked_against_the_vector_limit_without_num_features(monkeypatch):
    monkeypatch.setenv("SPARK_MODELS_MAX_VECTOR_SIZE", "100")
    text = "\n".join([_split(featureIndex=101), json.dumps(_LEAF), json.dumps(_LEAF)])
    node = Node("dt", "decision_tree_regression", {}, [("features", "features")], [("prediction", "pred")],
                files={"tree.json": text})
    with pytest.raises(MalformedModelError, match=r"'dt'.*tree\.json, line 1.*featureIndex 101 is not from 0 to 100"):
        _model(node)
    node.files["tree.json"] = text.replace("101", "100")
    assert _model(node).transform_row({"features": np.full(101, 2.0)})["pred"] == 1.0


def test_a_features_vector_narrower_than_the_trees_is_a_schema_error():
    node = Node("dt", "decision_tree_regression", {"num_features": A.scalar("long", WIDTH)},
                [("features", "features")], [("prediction", "pred")],
                files={"tree.json": "\n".join([_split(featureIndex=3), json.dumps(_LEAF), json.dumps(_LEAF)])})
    model = _model(node)
    with pytest.raises(SchemaEnforcementError, match=r"'dt'.*'features' has 2 features; its trees split on feature 3"):
        model.transform_row({"features": np.array([1.0, 2.0])})
    assert model.transform_row({"features": np.array([1.0, 2.0, 3.0, 4.0])})["pred"] == 1.0
