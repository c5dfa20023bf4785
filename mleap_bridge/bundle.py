"""The Bundle.ML file format: a directory or zip with ``bundle.json`` and a ``root/`` node tree.

Each node folder holds ``model.json`` (``op`` + attributes) and ``node.json`` (name and
shape: input/output sockets ``{"port", "name"}``). Pipelines list their children in the
``nodes`` attribute; child ``X`` lives in ``X.node/``. Only the JSON format is supported.

Two producers write bundles: MLeap's JVM serializers (Spark and the MLeap runtime; also this
bridge) and the ``mleap`` PyPI package's scikit-learn serializers. They lay matrices out
differently (JVM: Spark's column-major ``Matrix.toArray``; Python: numpy's row-major
``flatten()`` of scikit-learn's arrays), and the version number does not tell them apart —
both are "0.25.x" today. The Python writer is recognised by its ``bundle.json``, which it
alone writes with ``json.dump(..., indent=3)`` (the JVM's pretty printer indents by 2);
its matrices are converted to the JVM layout on reading (:data:`Bundle.writer` says which).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from spark_models.exceptions import MalformedModelError, ModelNotFoundError, NotSupportedError

from mleap_bridge import attributes as attrs

BUNDLE_VERSION = "0.25.0"  # the MLeap version whose format we write
JVM, PYTHON = "jvm", "python"  # bundle writers (see the module docstring)

_log = logging.getLogger(__name__)


@dataclass
class Node:
    """One op in a bundle: its attributes (raw JSON values), sockets and children."""

    name: str
    op: str
    attributes: dict[str, Any] = field(default_factory=dict)
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (port, column)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    children: list["Node"] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # extra files in the node folder (trees)

    def attr(self, name: str, kind: str, default: Any = attrs.UNSET) -> Any:
        """The decoded attribute; a missing one gives ``default`` if passed, else the kind's default."""
        return attrs.get(self.attributes, name, kind, default, self.name)

    def matrix(self, name: str, default: Any = attrs.UNSET) -> Any:
        """A matrix attribute in MLeap's layout (see :func:`attributes.matrix`)."""
        if name not in self.attributes and default is not attrs.UNSET:
            return default
        if name not in self.attributes:
            raise MalformedModelError(f"node {self.name!r} (op {self.op!r}) has no attribute {name!r}")
        return attrs.matrix(self.attributes[name], name, self.name)

    def input(self, port: str = "input") -> str:
        return _socket(self.inputs, port, self.name, "input")

    def output(self, port: str = "output") -> str | None:
        return next((c for p, c in self.outputs if p == port), None)


def _socket(sockets: list[tuple[str, str]], port: str, node: str, side: str) -> str:
    for p, column in sockets:
        if p == port:
            return column
    raise MalformedModelError(f"node {node!r} has no {side} port {port!r}; it has {[p for p, _ in sockets]}")


@dataclass
class Bundle:
    root: Node
    name: str
    version: str = BUNDLE_VERSION
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="milliseconds"))
    writer: str = JVM  # who wrote it: JVM (MLeap's Scala serializers, this bridge) or PYTHON (mleap.sklearn)


# ---- reading ----------------------------------------------------------------------------

def _read_json(path: Path, text: str | None = None) -> Any:
    try:
        return json.loads(path.read_text() if text is None else text)
    except FileNotFoundError:
        raise MalformedModelError(f"Bundle file {str(path)!r} is missing") from None
    except json.JSONDecodeError as e:
        raise MalformedModelError(f"{path}: not valid JSON ({e})") from None


def _read_node(folder: Path) -> Node:
    model, info = _read_json(folder / "model.json"), _read_json(folder / "node.json")
    shape = info.get("shape") or {}
    node = Node(
        name=info.get("name", folder.name),
        op=model.get("op", ""),
        attributes=model.get("attributes") or {},
        inputs=[(s["port"], s["name"]) for s in shape.get("inputs", [])],
        outputs=[(s["port"], s["name"]) for s in shape.get("outputs", [])],
    )
    if node.op == "pipeline":
        for child in node.attr("nodes", "list", []):
            node.children.append(_read_node(folder / f"{child}.node"))
    for extra in folder.iterdir():
        if extra.is_file() and extra.name not in ("model.json", "node.json"):
            node.files[extra.name] = extra.read_text()
        elif extra.is_dir() and not extra.name.endswith(".node"):
            for sub in extra.iterdir():  # tree ensembles: <tree>/model.json + tree.json
                if sub.is_file():
                    node.files[f"{extra.name}/{sub.name}"] = sub.read_text()
    return node


def safe_unzip(archive: Path, dest: Path) -> None:
    """Extract ``archive`` refusing absolute paths and ``..`` entries."""
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            parts = PurePosixPath(member.replace("\\", "/")).parts
            if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise MalformedModelError(f"{archive}: refusing unsafe zip entry {member!r}")
        zf.extractall(dest)


def read_bundle(path: str | Path) -> Bundle:
    """A bundle directory or zip file (``jar:file:`` prefixes accepted)."""
    text = str(path)
    for prefix in ("jar:file:", "file:"):
        text = text[len(prefix):] if text.startswith(prefix) else text
    source = Path(text)
    if not source.exists():
        raise ModelNotFoundError(f"MLeap bundle {text!r} does not exist")
    if source.is_file():
        with tempfile.TemporaryDirectory(prefix="mleap-bundle-") as tmp:
            safe_unzip(source, Path(tmp))
            return _read_dir(Path(tmp), source)
    return _read_dir(source, source)


_PYTHON_INDENT = re.compile(r"\A\ufeff?\{\r?\n {3}\S")  # json.dump(indent=3): the mleap package's writer

# (op, attribute, transpose): matrices the Python writer stores as numpy row-major arrays.
# Its logistic regression writes coef_ (classes × features, like Spark's coefficientMatrix);
# its PCA writes components_ (k × features), the transpose of Spark's pc (features × k).
_PYTHON_MATRICES = (("logistic_regression", "coefficient_matrix", False), ("pca", "principal_components", True))


def _all_nodes(node: Node) -> list[Node]:
    return [node] + [n for child in node.children for n in _all_nodes(child)]


def _python_matrices_to_jvm(root: Node) -> None:
    """Rewrite row-major matrices of a Python-written bundle in the JVM's column-major layout."""
    for node in _all_nodes(root):
        for op, name, transpose in _PYTHON_MATRICES:
            if node.op == op and name in node.attributes:
                rows = np.atleast_2d(np.asarray(attrs.decode(node.attributes[name]), dtype=np.float64))
                node.attributes[name] = attrs.matrix_tensor(rows.T if transpose else rows)


def _read_dir(folder: Path, source: Path) -> Bundle:
    text = (folder / "bundle.json").read_text() if (folder / "bundle.json").is_file() else None
    info = _read_json(folder / "bundle.json", text)
    fmt = info.get("format", "json")
    if fmt != "json":
        raise NotSupportedError(f"{source}: MLeap bundle format {fmt!r} is unsupported; only the JSON format is read")
    writer = PYTHON if _PYTHON_INDENT.match(text or "") else JVM
    root = _read_node(folder / "root")
    if writer == PYTHON:
        _log.debug("%s: written by the mleap Python package; reading its matrices as row-major", source)
        _python_matrices_to_jvm(root)
    return Bundle(root, info.get("name", ""), info.get("version", ""), info.get("uid", ""), info.get("timestamp", ""),
                  writer)


# ---- writing ----------------------------------------------------------------------------

def _strict_json(value: Any, node: Node, file: str) -> str:
    """JSON text without NaN/Infinity tokens (not JSON; MLeap writes ``null`` for them)."""
    try:
        return json.dumps(value, indent=2, allow_nan=False)
    except ValueError as e:
        raise MalformedModelError(f"node {node.name!r} (op {node.op!r}), {file}: a non-finite number cannot be "
                                  f"written as JSON ({e}); encode it with mleap_bridge.attributes") from None


def _write_node(node: Node, folder: Path) -> None:
    folder.mkdir(parents=True)
    attributes = dict(node.attributes)
    if node.op == "pipeline":
        attributes["nodes"] = attrs.listed("string", [c.name for c in node.children])
        for child in node.children:
            _write_node(child, folder / f"{child.name}.node")
    (folder / "model.json").write_text(_strict_json({"op": node.op, "attributes": attributes}, node, "model.json"))
    shape = {"inputs": [{"port": p, "name": c} for p, c in node.inputs],
             "outputs": [{"port": p, "name": c} for p, c in node.outputs]}
    (folder / "node.json").write_text(_strict_json({"name": node.name, "shape": shape}, node, "node.json"))
    for rel, text in node.files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)


def write_bundle(bundle: Bundle, path: str | Path) -> Path:
    """Write ``bundle`` as a directory, or as a zip when ``path`` ends with ``.zip``."""
    target = Path(path)
    if target.exists():
        raise MalformedModelError(f"Refusing to overwrite {str(target)!r}")
    with tempfile.TemporaryDirectory(prefix="mleap-write-") as tmp:
        staging = Path(tmp) / "bundle"
        staging.mkdir()
        info = {"uid": bundle.uid, "name": bundle.name, "timestamp": bundle.timestamp,
                "version": bundle.version, "format": "json"}
        (staging / "bundle.json").write_text(json.dumps(info, indent=2))
        _write_node(bundle.root, staging / "root")
        if target.suffix == ".zip":
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
                for file in sorted(staging.rglob("*")):
                    if file.is_file():
                        zf.write(file, file.relative_to(staging).as_posix())
        else:
            shutil.copytree(staging, target)
    return target
