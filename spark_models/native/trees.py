"""One flattened representation of tree ensembles, and a vectorized numpy evaluator.

All trees are concatenated into flat per-node arrays (child indices are global). Evaluation walks
every row down every tree at once, one depth level per step; leaf values are then summed over the
trees in tree order (the order the libraries themselves use), so results match them to rounding.

Split rule of an inner node ``i`` for a value ``x`` of feature ``feature[i]``:

* ``float32``: ``x`` is first rounded to float32 (xgboost and scikit-learn's ``DecisionTree*``
  compare float32 inputs; thresholds are stored as the float64 the library compares against).
* ``missing[i]`` is :data:`MISSING_NAN` (NaN goes to ``default_left[i]``), :data:`MISSING_ZERO`
  (NaN counts as 0.0 and any ``|x| <= 1e-35`` goes to ``default_left[i]``: lightgbm "Zero") or
  :data:`MISSING_AS_ZERO` (NaN counts as 0.0, then the comparison: lightgbm "None").
* ``tiny_as_zero`` (lightgbm): inputs with ``|x| <= 1e-35`` are read as 0.0 first.
* categorical nodes (``cat_index[i] >= 0``): left when ``cat_table[cat_index[i], int(x)]`` for a
  whole ``0 <= x < width``, else (other values, NaN) ``cat_table[cat_index[i], width]``.
* otherwise left when ``x < threshold[i]`` (``strict``, xgboost) or ``x <= threshold[i]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spark_models.exceptions import InvalidArgumentError, MalformedModelError

MISSING_NAN, MISSING_ZERO, MISSING_AS_ZERO = 0, 1, 2
LINKS = ("identity", "sigmoid", "softmax", "exp", "normalize")
DECISIONS = ("argmax", "argmax_raw", "raw>=0", "raw>0", "proba>0.5", "none")
_ZERO = float(np.float32(1e-35))  # lightgbm's kZeroThreshold (a float)
_CHUNK = 1 << 21  # rows x trees evaluated per block (bounds memory for large ensembles)
_FEW = 64  # up to this many (row, tree) pairs walk in plain Python: numpy's per-call cost dominates there


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """Flat node arrays of all trees of one model, and how their outputs combine.

    Per node (``n_nodes`` over all trees): ``feature`` (-1 marks a leaf), ``threshold``, ``left`` and
    ``right`` (global node indices, -1 at leaves), ``value`` (``(n_nodes, n_outputs)``: what the
    leaf adds to each output, zero for outputs a tree does not touch), ``default_left`` (where a
    missing value goes) and ``missing`` (see the module docstring). Per tree: ``roots`` (index of
    its root node) and ``weights`` (each tree's leaf value is multiplied by it before summing).

    Scores: ``raw = base_score + sum_t weights[t] * value[leaf_t]`` (in tree order), divided by
    ``average_over`` when not 0 (forests); ``link`` maps raw scores to the model's output
    (``sigmoid`` uses ``sigmoid(link_scale * raw)``; ``normalize`` divides by the row sum) and
    ``decision`` turns outputs into labels (``classes``) for classifiers: ``argmax`` of the output,
    ``argmax_raw`` of the raw scores, ``raw>=0`` / ``raw>0`` / ``proba>0.5`` for a single raw score
    (argmax of raw / of the output when there are several), ``none`` for regressors.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    roots: np.ndarray
    weights: np.ndarray
    base_score: np.ndarray
    n_features: int
    strict: bool = False
    float32: bool = False
    average_over: int = 0
    link: str = "identity"
    link_scale: float = 1.0
    decision: str = "none"
    classes: np.ndarray | None = None
    accumulate_float32: bool = False
    tiny_as_zero: bool = False
    cat_index: np.ndarray | None = None
    cat_table: np.ndarray | None = None
    max_depth: int = field(default=-1)

    def __post_init__(self) -> None:
        n = len(self.feature)
        for name in ("threshold", "left", "right", "default_left", "missing"):
            if len(getattr(self, name)) != n:
                raise MalformedModelError(f"tree arrays: {name} has {len(getattr(self, name))} entries, not {n}")
        if self.value.ndim != 2 or len(self.value) != n:
            raise MalformedModelError(f"tree arrays: value must be (n_nodes={n}, n_outputs), not {self.value.shape}")
        if len(self.weights) != len(self.roots):
            raise MalformedModelError("tree arrays: weights and roots differ in length")
        if self.link not in LINKS or self.decision not in DECISIONS:
            raise MalformedModelError(f"tree arrays: unknown link {self.link!r} or decision {self.decision!r}")
        inner = self.feature >= 0
        if n and (np.any(self.feature >= self.n_features) or np.any((self.left[inner] < 0) | (self.left[inner] >= n))
                  or np.any((self.right[inner] < 0) | (self.right[inner] >= n))):
            raise MalformedModelError("tree arrays: a feature index or child index is out of range")
        if len(self.roots) and (self.roots.min() < 0 or self.roots.max() >= n):
            raise MalformedModelError("tree arrays: a root index is out of range")
        if self.max_depth < 0:
            object.__setattr__(self, "max_depth", _depth(self.feature, self.left, self.right, self.roots))
        object.__setattr__(self, "_walk", self._walk_arrays())

    def _walk_arrays(self) -> tuple:
        """Arrays for the walk: leaves loop onto themselves; NaN (and lightgbm zero) targets precomputed."""
        leaf, me = self.feature < 0, np.arange(len(self.feature))
        left, right = np.where(leaf, me, self.left), np.where(leaf, me, self.right)
        default = np.where(self.default_left, left, right)
        with np.errstate(invalid="ignore"):
            zero_left = (0.0 < self.threshold) if self.strict else (0.0 <= self.threshold)
        as_zero = np.where(zero_left, left, right)  # where a NaN read as 0.0 goes
        on_nan = np.where(self.missing == MISSING_AS_ZERO, as_zero, default)
        if self.cat_index is not None:
            other = self.cat_table[np.maximum(self.cat_index, 0), -1]
            on_nan = np.where(self.cat_index >= 0, np.where(other, left, right), on_nan)
        zero_to = np.where(self.missing == MISSING_ZERO, default, -1)
        f = np.where(leaf, 0, self.feature)
        any_zero = np.any(self.missing[~leaf] == MISSING_ZERO)
        children = np.column_stack([right, left]).reshape(-1)  # 2i: right child, 2i + 1: left child
        return f, ~leaf, self.threshold, children, on_nan, zero_to if any_zero else None

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def n_outputs(self) -> int:
        return self.value.shape[1]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Global leaf node index per row and tree: ``(rows, n_trees)``."""
        x = self._check(x)
        if len(x) * self.n_trees <= _FEW:
            return self._apply_few(x)
        rows = max(1, _CHUNK // max(self.n_trees, 1))
        return np.concatenate([self._apply(x[a:a + rows]) for a in range(0, len(x), rows)] or
                              [np.zeros((0, self.n_trees), dtype=np.int64)])

    def _apply(self, x: np.ndarray) -> np.ndarray:
        """Every (row, tree) pair walks one level per step; pairs that reached a leaf drop out."""
        f, inner, thr, children, on_nan, zero_to = self._walk
        width = x.shape[1]
        flat_x = np.ascontiguousarray(x).reshape(-1)
        has_nan = bool(np.isnan(flat_x).any())
        node = np.tile(self.roots, len(x))
        base = np.repeat(np.arange(len(x), dtype=np.int64) * width, self.n_trees)
        active = None  # all pairs, until enough of them reached their leaves
        for _ in range(self.max_depth):
            n = node if active is None else node[active]
            v = flat_x[(base if active is None else base[active]) + f[n]]
            with np.errstate(invalid="ignore"):
                go_left = (v < thr[n]) if self.strict else (v <= thr[n])
            if self.cat_index is not None:
                go_left = self._categorical(n, v, go_left)
            step = children[2 * n + go_left]  # NaN compares false: right, then fixed below
            if has_nan:
                step = np.where(np.isnan(v), on_nan[n], step)
            if zero_to is not None:
                z = zero_to[n]
                step = np.where((np.abs(v) <= _ZERO) & (z >= 0), z, step)
            if active is None:
                node = step
                still = inner[node]
                if not still.any():
                    break
                if still.mean() < 0.75:  # enough pairs finished: carry on with the rest only
                    active = np.nonzero(still)[0]
            else:
                node[active] = step
                active = active[inner[step]]
                if not len(active):
                    break
        return node.reshape(len(x), self.n_trees)

    def _apply_few(self, x: np.ndarray) -> np.ndarray:
        """:meth:`_apply` for a few rows: the same rules, one (row, tree) pair at a time over memoryviews."""
        if getattr(self, "_views", None) is None:
            f, inner, thr, children, on_nan, zero_to = self._walk
            cat = None if self.cat_index is None else (
                memoryview(np.ascontiguousarray(self.cat_index)), self.cat_table.shape[1],
                memoryview(np.ascontiguousarray(self.cat_table).reshape(-1)))
            views = tuple(memoryview(np.ascontiguousarray(a)) for a in (f, inner, thr, children, on_nan))
            object.__setattr__(self, "_views", views + (None if zero_to is None else memoryview(zero_to), cat))
        f, inner, thr, children, on_nan, zero_to, cat = self._views
        strict, roots, leaves = self.strict, self.roots.tolist(), []
        for row in x.tolist():
            for n in roots:
                while inner[n]:
                    v = row[f[n]]
                    if zero_to is not None and zero_to[n] >= 0 and abs(v) <= _ZERO:
                        n = zero_to[n]
                    elif v != v:
                        n = on_nan[n]
                    elif cat is not None and cat[0][n] >= 0:
                        width = cat[1] - 1
                        column = int(v) if 0 <= v < width and v.is_integer() else width
                        n = children[2 * n + cat[2][cat[0][n] * cat[1] + column]]
                    else:
                        n = children[2 * n + ((v < thr[n]) if strict else (v <= thr[n]))]
                leaves.append(n)
        return np.array(leaves, dtype=np.int64).reshape(len(x), self.n_trees)

    def _categorical(self, n: np.ndarray, v: np.ndarray, go_left: np.ndarray) -> np.ndarray:
        cat = self.cat_index[n]
        at = cat >= 0
        if not at.any():
            return go_left
        width = self.cat_table.shape[1] - 1
        vv = v[at]
        with np.errstate(invalid="ignore"):
            whole = (vv >= 0) & (vv < width) & (vv == np.floor(vv))
        column = np.where(whole, np.nan_to_num(vv), width).astype(np.int64)
        go_left = go_left.copy()
        go_left[at] = self.cat_table[cat[at], column]
        return go_left

    def raw_score(self, x: np.ndarray) -> np.ndarray:
        """Raw (margin) scores ``(rows, n_outputs)`` before the link."""
        leaves = self.apply(x)
        dtype = np.float32 if self.accumulate_float32 else np.float64
        out = np.empty((len(leaves), self.n_outputs), dtype=dtype)
        rows = max(1, _CHUNK // max(self.n_trees, 1))
        value, weights = self.value.astype(dtype), self.weights.astype(dtype)
        for a in range(0, len(leaves), rows):
            part = leaves[a:a + rows]
            terms = value[part.T] * weights[:, None, None]  # (trees, rows, outputs)
            stack = np.concatenate([np.broadcast_to(self.base_score.astype(dtype), (1, len(part), self.n_outputs)),
                                    terms])
            out[a:a + rows] = np.cumsum(stack, axis=0)[-1]  # cumsum is sequential: tree order, as the libraries
        if self.average_over:
            out = out / dtype(self.average_over)
        return out

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """The link applied to raw scores."""
        if self.link == "identity":
            return raw
        if self.link == "exp":
            return np.exp(raw)
        if raw.dtype == np.float32 and self.link in ("sigmoid", "softmax"):
            return _transform32(raw, self.link, self.link_scale)
        if self.link == "sigmoid":
            one = raw.dtype.type(1)
            return one / (one + np.exp(-(raw.dtype.type(self.link_scale) * raw)))
        if self.link == "softmax":
            e = np.exp(raw - raw.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        total = raw.sum(axis=1, keepdims=True)
        return raw / np.where(total == 0, 1.0, total)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(rows, n_classes)`` (binary sigmoid models give ``[1 - p, p]``)."""
        if self.classes is None:
            raise InvalidArgumentError("predict_proba: this tree model is not a classifier")
        p = self.transform(self.raw_score(x))
        if self.link == "sigmoid" and p.shape[1] == 1:
            p = np.column_stack([1 - p[:, 0], p[:, 0]])
        return p

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class labels for classifiers; the transformed output (squeezed when single) otherwise."""
        raw = self.raw_score(x)
        if self.decision == "none":
            out = self.transform(raw)
            return out[:, 0] if out.shape[1] == 1 else out
        if self.decision in ("raw>=0", "raw>0", "argmax_raw"):
            if raw.shape[1] > 1:
                index = raw.argmax(axis=1)
            else:
                index = ((raw[:, 0] >= 0) if self.decision == "raw>=0" else (raw[:, 0] > 0)).astype(np.int64)
        elif self.decision == "proba>0.5":
            index = (self.transform(raw)[:, 0] > 0.5).astype(np.int64) if raw.shape[1] == 1 \
                else self.transform(raw).argmax(axis=1)
        else:
            index = self.transform(raw).argmax(axis=1)
        return np.asarray(self.classes)[index]

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] < self.n_features:
            raise InvalidArgumentError(f"tree model input: expected (rows, {self.n_features}) features, "
                                       f"got shape {x.shape}")
        if self.tiny_as_zero:  # lightgbm reads |x| <= 1e-35f as an absent (zero) feature
            x = np.where(np.abs(x) <= _ZERO, 0.0, x)
        return x.astype(np.float32).astype(np.float64) if self.float32 else x


def _exp32(x: np.ndarray) -> np.ndarray:
    """A correctly rounded float32 exp (as C's ``expf``), through float64."""
    return np.exp(x.astype(np.float64)).astype(np.float32)


def _transform32(raw: np.ndarray, link: str, scale: float) -> np.ndarray:
    """xgboost's float32 sigmoid (its exponent clamped at 88.7) and softmax (its sum accumulated in float64)."""
    one = np.float32(1)
    if link == "sigmoid":
        return one / (one + _exp32(np.minimum(-(np.float32(scale) * raw), np.float32(88.7))))
    e = _exp32(raw - raw.max(axis=1, keepdims=True))
    return e / np.cumsum(e.astype(np.float64), axis=1)[:, -1:].astype(np.float32)


def _depth(feature: np.ndarray, left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    """Longest root-to-leaf path (in edges) over all trees, level by level; a cycle is an error."""
    frontier, depth, limit = np.asarray(roots, dtype=np.int64), 0, len(feature) + 1
    while True:
        frontier = frontier[feature[frontier] >= 0]
        if not len(frontier):
            return depth
        depth += 1
        if depth > limit:
            raise MalformedModelError("tree arrays: the child links form a cycle")
        frontier = np.concatenate([left[frontier], right[frontier]])


def concatenate(trees: list[dict[str, np.ndarray]], **combine) -> TreeEnsemble:
    """A :class:`TreeEnsemble` from per-tree arrays with tree-local child indices.

    Each dict has ``feature, threshold, left, right, value`` (``(nodes, n_outputs)``) and optionally
    ``default_left``, ``missing``, ``weight`` (1.0), ``root`` (0) and ``categories`` (local node
    index -> ``(categories, they_go_left)``: the listed whole values go left, or right); ``combine`` holds the remaining
    :class:`TreeEnsemble` fields (``base_score``, ``n_features``, ``link``, ...)."""
    if not trees:
        raise MalformedModelError("a tree model without trees")
    offsets = np.cumsum([0] + [len(t["feature"]) for t in trees])
    def cat(name, dtype, default=None):
        parts = [np.asarray(t[name], dtype=dtype) if name in t else np.full(len(t["feature"]), default, dtype=dtype)
                 for t in trees]
        return np.concatenate(parts)
    def children(name):
        return np.concatenate([np.where(np.asarray(t[name]) >= 0, np.asarray(t[name], dtype=np.int64) + o, -1)
                               for t, o in zip(trees, offsets)])
    cat_index, cat_table = _category_tables(trees, offsets)
    return TreeEnsemble(
        cat_index=cat_index, cat_table=cat_table,
        feature=cat("feature", np.int64), threshold=cat("threshold", np.float64),
        left=children("left"), right=children("right"),
        value=np.concatenate([np.asarray(t["value"], dtype=np.float64).reshape(len(t["feature"]), -1) for t in trees]),
        default_left=cat("default_left", bool, False), missing=cat("missing", np.int8, MISSING_NAN),
        roots=np.asarray([o + t.get("root", 0) for t, o in zip(trees, offsets)], dtype=np.int64),
        weights=np.asarray([t.get("weight", 1.0) for t in trees], dtype=np.float64),
        **combine)


def _category_tables(trees: list[dict], offsets: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``cat_index`` per node and the ``cat_table`` (last column: values not listed, and NaN)."""
    splits = [(o + i, spec) for t, o in zip(trees, offsets) for i, spec in t.get("categories", {}).items()]
    if not splits:
        return None, None
    listed = [np.asarray(sorted(c), dtype=np.float64) for _, (c, _) in splits]
    for values in listed:
        if len(values) and (values.min() < 0 or np.any(values != np.floor(values)) or values.max() > 1e6):
            raise MalformedModelError(f"tree arrays: categories must be whole numbers from 0 to 1e6, not {values}")
    width = int(max((v.max() + 1 for v in listed if len(v)), default=0))
    index = np.full(int(offsets[-1]), -1, dtype=np.int64)
    table = np.zeros((len(splits), width + 1), dtype=bool)
    for row, ((node, (_, go_left)), values) in enumerate(zip(splits, listed)):
        index[node] = row
        table[row, :] = not go_left
        table[row, values.astype(np.int64)] = go_left
    return index, table
