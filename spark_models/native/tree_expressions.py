"""Compile a :class:`~spark_models.native.trees.TreeEnsemble` to pure Spark ``Column`` expressions.

Each tree becomes one nested ``CASE WHEN`` over its splits; its leaves are literals (the leaf value
times the tree's weight, computed in numpy exactly as the evaluator does). Tree outputs are added
one by one in tree order, as the libraries do, so double results match to rounding and xgboost's
float32 accumulation is reproduced bit for bit (float32 operations are done in double and rounded
back to float after each step: for ``+ - * /`` that double rounding is exact).

Missing values: a Spark null is treated like NaN (what the Python path hands the model for a
null). Spark orders NaN above every number, so ``NaN <= t`` is false and a null comparison falls
to ``ELSE``: nodes whose missing values go right need no extra test; for nodes whose missing
values go left the feature is read with NaN/null replaced by ``-inf``.

``compile_trees(ensemble, features, output=...)``: ``"predict"`` (class label, or the regression
value — ``array<double>`` for several outputs), ``"predict_proba"`` (``array<double>``), ``"raw"``
(margins before the link: double, or ``array<double>``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from spark_models.exceptions import InvalidArgumentError, NotSupportedError
from spark_models.native import expressions as E
from spark_models.native import tree_tables
from spark_models.native.trees import MISSING_AS_ZERO, MISSING_NAN, MISSING_ZERO, TreeEnsemble, _ZERO

OUTPUTS = ("predict", "predict_proba", "raw")
INLINE_TREE_NODES = 5000
"""Up to this many split nodes a model becomes nested ``IF`` expressions (code-generated, fast for
small trees); past it, a node-table walk (:mod:`~spark_models.native.tree_tables`): small to
compile, interpreted at run time."""
_NEG_INF = float("-inf")


class _Features:
    """The model's view of each input feature, built once per feature and reused by every node."""

    def __init__(self, ensemble: TreeEnsemble, columns: Sequence[Column]):
        self._ensemble, self._columns = ensemble, list(columns)
        self._plain: dict[int, Column] = {}
        self._left: dict[int, Column] = {}
        self._zero: dict[int, Column] = {}
        self.thresholds = ensemble.threshold
        if ensemble.float32:
            self.thresholds = float32_thresholds(ensemble.threshold, strict=ensemble.strict)
            inner = ensemble.feature >= 0
            if ensemble.cat_index is not None:
                inner &= ensemble.cat_index < 0
            if np.any(np.isnan(self.thresholds[inner])):
                raise NotSupportedError("a float32 tree threshold that is not a finite float32 number")

    def plain(self, f: int) -> Column:
        """Feature ``f`` as a double (lightgbm: tiny values read as 0). float32 models compare it
        against :func:`float32_thresholds`, which give the float32 comparison's answer exactly."""
        if f not in self._plain:
            x = self._columns[f].cast("double")
            if self._ensemble.tiny_as_zero:
                x = F.when(F.abs(x) <= E.lit_double(_ZERO), E.lit_double(0.0)).otherwise(x)
            self._plain[f] = x
        return self._plain[f]

    def missing_left(self, f: int) -> Column:
        """Feature ``f`` with NaN and null read as ``-inf`` (so they take the ``<=``/``<`` branch)."""
        if f not in self._left:
            x = self.plain(f)
            self._left[f] = F.coalesce(F.nanvl(x, E.lit_double(_NEG_INF)), E.lit_double(_NEG_INF))
        return self._left[f]

    def as_zero(self, f: int) -> Column:
        """Feature ``f`` with NaN and null read as 0.0 (lightgbm's missing type "None")."""
        if f not in self._zero:
            x = self.plain(f)
            zero = E.lit_double(0.0)
            self._zero[f] = F.coalesce(F.nanvl(x, zero), zero)
        return self._zero[f]


def float32_thresholds(threshold: np.ndarray, *, strict: bool) -> np.ndarray:
    """Double thresholds ``d`` with ``x <= d`` exactly when ``float32(x) <= t`` (``< t`` if strict).

    With ``F`` the largest float32 that passes, ``float32(x) <= F`` holds for ``x`` below the midpoint
    of ``F`` and the next float32, and at the midpoint when round-half-even picks ``F`` (even mantissa).
    """
    t = np.asarray(threshold, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        f = t.astype(np.float32)
        passes = (f < t) if strict else (f <= t)
        f = np.where(passes, f, np.nextafter(f, np.float32(-np.inf)))
        up = np.nextafter(f, np.float32(np.inf)).astype(np.float64)
        down = f.astype(np.float64) - np.nextafter(f, np.float32(-np.inf)).astype(np.float64)
        up = np.where(np.isinf(up), f.astype(np.float64) + down, up)  # above the largest float32
        mid = (f.astype(np.float64) + up) / 2
        even = (f.view(np.int32) & 1) == 0
        out = np.where(even, mid, np.nextafter(mid, -np.inf))
    top = float(np.finfo(np.float32).max)
    edge = top + (top - float(np.nextafter(np.float32(top), np.float32(0)))) / 2  # rounds to inf (a tie, odd mantissa)
    out = np.where(np.isfinite(t) & np.isfinite(f), out, np.nan)
    out = np.where(np.isfinite(t) & (t > top), np.nextafter(edge, 0), out)  # every finite float32 passes
    out = np.where(np.isfinite(t) & (t < -top), -edge, out)  # only what rounds to -inf passes
    out = np.where(t == np.inf, np.nextafter(edge, 0) if strict else np.inf, out)
    return np.where((t == -np.inf) & (not strict), -edge, out)


def _is_missing(x: Column) -> Column:
    return x.isNull() | F.isnan(x)


def _split(ensemble: TreeEnsemble, features: _Features, i: int) -> tuple[Column, bool]:
    """(condition, whether the condition leads left) of inner node ``i``."""
    f, t = int(ensemble.feature[i]), float(features.thresholds[i])
    default_left = bool(ensemble.default_left[i])
    if ensemble.cat_index is not None and ensemble.cat_index[i] >= 0:
        return _categorical_split(ensemble, features.plain(f), i)
    missing = int(ensemble.missing[i])
    strict = ensemble.strict and not ensemble.float32  # float32 thresholds already encode strictness
    compare = (lambda x: x < t) if strict else (lambda x: x <= t)
    if missing == MISSING_AS_ZERO:
        return compare(features.as_zero(f)), True
    if missing == MISSING_ZERO:
        x = features.plain(f)
        to_default = _is_missing(x) | (x == F.lit(0.0))
        return F.when(to_default, F.lit(default_left)).otherwise(compare(x)), True
    if missing != MISSING_NAN:
        raise NotSupportedError(f"tree node {i}: missing-value rule {missing}")
    if not default_left:
        return compare(features.plain(f)), True  # NaN compares false in Spark; null falls to ELSE
    if t > _NEG_INF:
        return compare(features.missing_left(f)), True
    x = features.plain(f)
    return compare(x) | _is_missing(x), True


def _categorical_split(ensemble: TreeEnsemble, x: Column, i: int) -> tuple[Column, bool]:
    row = ensemble.cat_table[ensemble.cat_index[i]]
    others_left = bool(row[-1])
    listed = [float(c) for c in np.nonzero(row[:-1] != others_left)[0]]
    if not listed:
        return F.lit(True), others_left
    # x IN (listed) takes the listed side; NaN, null and every other value take the others' side.
    return F.coalesce(x.isin(*listed), F.lit(False)), not others_left


def _tree(ensemble: TreeEnsemble, features: _Features, root: int, leaf_literal) -> Column:
    """One nested CASE for the tree at ``root``, built without recursion (post-order)."""
    built: dict[int, Column] = {}
    stack = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if ensemble.feature[node] < 0:
            built[node] = leaf_literal(node)
        elif ready:
            condition, to_left = _split(ensemble, features, node)
            yes, no = (built.pop(ensemble.left[node]), built.pop(ensemble.right[node]))
            if not to_left:
                yes, no = no, yes
            built[node] = F.call_function("if", condition, yes, no)  # If: leaner code than CASE WHEN
        else:
            stack += [(node, True), (int(ensemble.left[node]), False), (int(ensemble.right[node]), False)]
    return built[root]


def _tree_nodes(ensemble: TreeEnsemble, t: int) -> np.ndarray:
    """Node indices of tree ``t`` (trees are stored contiguously, in order)."""
    start = int(ensemble.roots[t])
    end = int(ensemble.roots[t + 1]) if t + 1 < ensemble.n_trees else len(ensemble.feature)
    return np.arange(min(start, end), max(start, end))


def _raw_scores(ensemble: TreeEnsemble, features: _Features) -> list[Column]:
    """The raw score of every output, summed over the trees in tree order."""
    dtype = np.float32 if ensemble.accumulate_float32 else np.float64
    kind = "float" if dtype is np.float32 else "double"
    contribution = ensemble.value.astype(dtype) * ensemble.weights.astype(dtype)[_tree_of_node(ensemble)][:, None]
    if node_count(ensemble) > INLINE_TREE_NODES and tree_tables.supports(ensemble) is None:
        plain = [features.plain(f) for f in range(ensemble.n_features)]
        sums = tree_tables.table_raw_scores(ensemble, plain, features.thresholds, contribution, kind)
        return _averaged(ensemble, sums, dtype, kind)
    base = ensemble.base_score.astype(dtype)
    sums: list[Column | None] = [None if base[k] == 0 else _literal(base[k], kind) for k in range(ensemble.n_outputs)]
    for t in range(ensemble.n_trees):
        nodes, root = _tree_nodes(ensemble, t), int(ensemble.roots[t])
        touched = [k for k in range(ensemble.n_outputs) if np.any(contribution[nodes, k] != 0)]
        if len(touched) == 1:
            k = touched[0]
            term = _tree(ensemble, features, root, lambda n, k=k: _literal(contribution[n, k], kind))
            sums[k] = _add(sums[k], _own_method(term), kind)
        elif touched:  # one CASE yields the leaf's position; each output looks its value up
            leaves = nodes[ensemble.feature[nodes] < 0]
            position = {int(n): i for i, n in enumerate(leaves)}
            leaf = _tree(ensemble, features, root, lambda n: F.lit(position[int(n)]))
            for k in touched:
                values = F.array(*[_literal(contribution[n, k], kind) for n in leaves])
                sums[k] = _add(sums[k], F.get(values, leaf), kind)
    return _averaged(ensemble, [_literal(0.0, kind) if s is None else s for s in sums], dtype, kind)


def _averaged(ensemble: TreeEnsemble, sums: list[Column], dtype: type, kind: str) -> list[Column]:
    if ensemble.average_over:
        return [(s / _literal(dtype(ensemble.average_over), kind)).cast(kind) for s in sums]
    return sums


def _add(total: Column | None, term: Column, kind: str) -> Column:
    """``total + term`` rounded to ``kind`` (a zero base is left out: ``0 + t == t``)."""
    return term if total is None else (total + term).cast(kind)


def _own_method(tree: Column) -> Column:
    """``tree`` as it is, written twice: Spark's common-subexpression elimination then evaluates it
    once, in a method of its own. Without that, whole-stage code generation inlines every tree
    into one method, which outgrows the JVM's 64 KB limit or its JIT's huge-method limit and runs
    an order of magnitude slower."""
    return F.greatest(tree, tree)


def _tree_of_node(ensemble: TreeEnsemble) -> np.ndarray:
    owner = np.zeros(len(ensemble.feature), dtype=np.int64)
    for t in range(ensemble.n_trees):
        owner[_tree_nodes(ensemble, t)] = t
    return owner


def _literal(value: float, kind: str) -> Column:
    """A literal of ``kind``; a Python float already is a double literal (one JVM call, not two)."""
    column = F.lit(float(value))
    return column if kind == "double" else column.cast(kind)


def _link(ensemble: TreeEnsemble, raw: list[Column]) -> list[Column]:
    """The ensemble's link on raw scores, with the evaluator's float32 rules where it uses them."""
    link = ensemble.link
    f32 = ensemble.accumulate_float32
    if link == "identity":
        return raw
    if link == "exp":
        return [F.exp(r) for r in raw] if not f32 else [F.exp(r).cast("float") for r in raw]
    if link == "normalize":
        total = raw[0]
        for r in raw[1:]:  # numpy adds a short row left to right
            total = total + r
        safe = F.when(total == E.lit_double(0.0), E.lit_double(1.0)).otherwise(total)
        return [r / safe for r in raw]
    if link == "sigmoid":
        return [_sigmoid(r, ensemble.link_scale, f32) for r in raw]
    return _softmax32(raw) if f32 else E.softmax(raw)


def _sigmoid(r: Column, scale: float, f32: bool) -> Column:
    if not f32:
        return E.lit_double(1.0) / (E.lit_double(1.0) + F.exp(-(E.lit_double(scale) * r)))
    z = F.least((-(_literal(np.float32(scale), "float") * r).cast("float")), _literal(np.float32(88.7), "float"))
    e = F.exp(z).cast("float")
    return (E.lit_double(1.0) / (E.lit_double(1.0) + e).cast("float")).cast("float")


def _softmax32(raw: list[Column]) -> list[Column]:
    """xgboost's float32 softmax: float32 exponentials, their sum accumulated in float64."""
    top = F.greatest(*raw)
    exps = [F.exp((r - top).cast("float")).cast("float") for r in raw]
    total = exps[0].cast("double")
    for e in exps[1:]:
        total = total + e
    total = total.cast("float")
    return [(e / total).cast("float") for e in exps]


def _index(ensemble: TreeEnsemble, raw: list[Column]) -> Column:
    """The class index the ensemble's decision rule picks (see ``TreeEnsemble.predict``)."""
    decision = ensemble.decision
    if decision in ("raw>=0", "raw>0", "argmax_raw"):
        if len(raw) > 1:
            return E.argmax_index(raw)
        z = F.nanvl(raw[0], E.lit_double(-1.0))  # NaN is "not positive", as in numpy
        return (z >= E.lit_double(0.0) if decision == "raw>=0" else z > E.lit_double(0.0)).cast("int")
    out = _link(ensemble, raw)
    if decision == "proba>0.5" and len(out) == 1:
        return (F.nanvl(out[0], E.lit_double(0.0)) > E.lit_double(0.5)).cast("int")
    return E.argmax_index(out)


def compile_trees(ensemble: TreeEnsemble, features: Sequence[Column | str], *, output: str = "predict") -> Column:
    """A Column computing ``output`` of ``ensemble`` from ``features`` (one per model feature)."""
    if output not in OUTPUTS:
        raise InvalidArgumentError(f"output must be one of {OUTPUTS}, not {output!r}")
    columns = [F.col(c) if isinstance(c, str) else c for c in features]
    if len(columns) < ensemble.n_features:
        raise InvalidArgumentError(f"the tree model reads {ensemble.n_features} features but "
                                   f"{len(columns)} columns were given")
    raw = _raw_scores(ensemble, _Features(ensemble, columns))
    if output == "raw":
        return _doubles(raw)
    if output == "predict_proba":
        if ensemble.classes is None:
            raise NotSupportedError("predict_proba of a tree regressor")
        p = _link(ensemble, raw)
        if ensemble.link == "sigmoid" and len(p) == 1:
            one = E.lit_double(1.0) - p[0]
            p = [one.cast("float") if ensemble.accumulate_float32 else one, p[0]]
        return E.double_array(p)
    if ensemble.decision == "none":
        return _doubles(_link(ensemble, raw))
    return E.pick_label(list(ensemble.classes), _index(ensemble, raw))


def _doubles(values: list[Column]) -> Column:
    return values[0].cast("double") if len(values) == 1 else E.double_array(values)


def node_count(ensemble: TreeEnsemble) -> int:
    """Inner nodes the expression holds (one ``CASE`` each, per output a tree touches)."""
    return int(np.sum(ensemble.feature >= 0))
