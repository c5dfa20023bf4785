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

Reading does not trust the bundle (see :mod:`mleap_bridge.safety`); each refusal is a
``MalformedModelError`` naming the bundle and what is refused. A child in ``nodes`` must be
a plain folder name (no ``/``, ``\\``, ``..``, absolute path, duplicate) and every file read
must resolve inside the bundle. Symbolic links are refused anywhere in a directory bundle
(``bundle.json`` and ``root/``; the bundle path itself may be a link), as are special files
and zip entries that are links: MLeap never writes links, so none is followed. A path that
is neither a directory nor a zip archive is refused; a zip's absolute or ``..`` entries are
refused, and its entry count and declared uncompressed size are checked against
``SPARK_MODELS_MAX_ARCHIVE_ENTRIES`` (100,000) and ``SPARK_MODELS_MAX_ARCHIVE_BYTES`` (8 GiB)
before extraction, which also counts the bytes actually written. A node folder without
``model.json`` / ``node.json``, invalid JSON, a socket without ``port`` / ``name`` or a node
without ``op`` names the file and the node. Sizes a node declares (vector widths, feature and
class counts, tensor dimensions) are checked when its op is compiled against
``SPARK_MODELS_MAX_VECTOR_SIZE`` (2**24), and a tensor whose dimensions disagree with its
number of values is an error (:mod:`spark_models.limits` has the limits).
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
from pathlib import Path
from typing import Any

import numpy as np

from spark_models.exceptions import MalformedModelError, ModelNotFoundError, NotSupportedError

from mleap_bridge import attributes as attrs
from mleap_bridge.safety import check_tree, check_width, extract_zip, inside

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
    origin: str = field(default="", compare=False, repr=False)  # bundle and folder it was read from (messages)

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

    def size(self, name: str, kind: str = "long", default: Any = attrs.UNSET, minimum: int = 0) -> int:
        """A size the node declares (vector width, feature or class count), checked against
        ``SPARK_MODELS_MAX_VECTOR_SIZE``: an error names the node, the attribute, the value and the limit."""
        return check_width(self.name, name, self.attr(name, kind, default), self.op, minimum)

    def checked(self, what: str, value: Any, minimum: int = 0) -> int:
        """A size derived from the node's attributes (``what`` says how), checked like :meth:`size`."""
        return check_width(self.name, what, value, self.op, minimum)

    def file(self, relative: str) -> str:
        """The text of an extra file of the node folder (e.g. ``tree0/tree.json``)."""
        if relative not in self.files:
            where = f" (bundle {self.origin})" if self.origin else ""
            raise MalformedModelError(f"MLeap node {self.name!r} (op {self.op!r}){where} has no file {relative!r}")
        return self.files[relative]

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

@dataclass
class _Reader:
    """Where a bundle is read from: ``root`` (resolved; holds bundle.json) and ``source`` (for messages)."""

    root: Path
    source: Path

    def where(self, path: Path) -> str:
        return f"MLeap bundle {str(self.source)!r}, {path.relative_to(self.root).as_posix()}"

    def text(self, path: Path, node: str | None = None) -> str:
        """A file of the bundle: refused if it is a link, not a regular file, or outside the root."""
        about = self.where(path) + (f" (node {node!r})" if node else "")
        inside(self.root, path, about)
        if path.is_symlink():
            raise MalformedModelError(f"{about} is a symbolic link; links inside a bundle are refused")
        if not path.is_file():
            raise MalformedModelError(f"{about} is missing" if not path.exists() else f"{about} is not a file")
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise MalformedModelError(f"{about} is not UTF-8 text ({e})") from None

    def json_object(self, path: Path, node: str | None = None, text: str | None = None) -> dict[str, Any]:
        text = self.text(path, node) if text is None else text
        about = self.where(path) + (f" (node {node!r})" if node else "")
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise MalformedModelError(f"{about} is not valid JSON ({e})") from None
        if not isinstance(value, dict):
            raise MalformedModelError(f"{about} holds a JSON {type(value).__name__}, not an object")
        return value


def _sockets(reader: _Reader, path: Path, node: str, shape: dict[str, Any], side: str) -> list[tuple[str, str]]:
    sockets = shape.get(side, [])
    if not isinstance(sockets, list):
        raise MalformedModelError(f"{reader.where(path)} (node {node!r}): shape {side!r} is not a list")
    out = []
    for i, socket in enumerate(sockets):
        for key in ("port", "name"):
            if not isinstance(socket, dict) or not isinstance(socket.get(key), str):
                raise MalformedModelError(f"{reader.where(path)} (node {node!r}): {side[:-1]} socket #{i} "
                                          f"{socket!r} has no string {key!r}")
        out.append((socket["port"], socket["name"]))
    return out


def _child_folder(reader: _Reader, folder: Path, node: Node, child: Any, seen: set[str]) -> Path:
    """``<child>.node`` next to the pipeline's model.json; names that would leave it are refused."""
    about = f"{reader.where(folder / 'model.json')}: pipeline node {node.name!r} lists child {child!r} in 'nodes'"
    if not isinstance(child, str) or child in ("", ".", "..") or any(c in child for c in "/\\\0"):
        raise MalformedModelError(f"{about}; a child must be a plain folder name (<name>.node next to model.json), "
                                  "not a path")
    if child in seen:
        raise MalformedModelError(f"{about} more than once")
    seen.add(child)
    path = folder / f"{child}.node"
    inside(reader.root, path, about)
    return path


def _node_files(reader: _Reader, folder: Path, node: Node) -> None:
    """Other files of the node folder and of its non-node subfolders (tree ensembles: <tree>/tree.json)."""
    for extra in sorted(folder.iterdir()):
        if extra.is_file() and extra.name not in ("model.json", "node.json"):
            node.files[extra.name] = reader.text(extra, node.name)
        elif extra.is_dir() and not extra.name.endswith(".node"):
            for sub in sorted(extra.iterdir()):
                if sub.is_file():
                    node.files[f"{extra.name}/{sub.name}"] = reader.text(sub, node.name)


_MAX_DEPTH = 100  # pipelines nested deeper than this are refused (MLeap nests a few levels)


def _read_node(reader: _Reader, folder: Path, label: str, depth: int = 0) -> Node:
    if depth > _MAX_DEPTH:
        raise MalformedModelError(f"{reader.where(folder)}: pipelines are nested more than {_MAX_DEPTH} levels deep")
    if not folder.is_dir():
        raise MalformedModelError(f"{reader.where(folder)}: the folder of node {label!r} is missing")
    model = reader.json_object(folder / "model.json", label)
    info = reader.json_object(folder / "node.json", label)
    name = info.get("name", folder.name)
    if not isinstance(name, str):
        raise MalformedModelError(f"{reader.where(folder / 'node.json')} (node {label!r}): 'name' is {name!r}")
    op, attributes, shape = model.get("op"), model.get("attributes") or {}, info.get("shape") or {}
    if not isinstance(op, str) or not op:
        raise MalformedModelError(f"{reader.where(folder / 'model.json')} (node {name!r}) has no 'op'")
    if not isinstance(attributes, dict) or not isinstance(shape, dict):
        raise MalformedModelError(f"{reader.where(folder)} (node {name!r}): 'attributes' and 'shape' must be objects")
    node = Node(name, op, attributes, _sockets(reader, folder / "node.json", name, shape, "inputs"),
                _sockets(reader, folder / "node.json", name, shape, "outputs"),
                origin=f"{str(reader.source)!r}, {folder.relative_to(reader.root).as_posix()}")
    if node.op == "pipeline":
        seen: set[str] = set()
        for child in node.attr("nodes", "list", []):
            child_folder = _child_folder(reader, folder, node, child, seen)
            node.children.append(_read_node(reader, child_folder, child, depth + 1))
    _node_files(reader, folder, node)
    return node


def safe_unzip(archive: Path, dest: Path) -> None:
    """Extract ``archive`` within the archive limits, refusing absolute paths, ``..`` and links."""
    extract_zip(archive, dest)


def read_bundle(path: str | Path) -> Bundle:
    """A bundle directory or zip file (``jar:file:`` prefixes accepted)."""
    text = str(path)
    for prefix in ("jar:file:", "file:"):
        text = text[len(prefix):] if text.startswith(prefix) else text
    source = Path(text)
    if not source.exists():
        raise ModelNotFoundError(f"MLeap bundle {text!r} does not exist")
    if source.is_dir():
        root = source.resolve()
        check_tree(root, source)
        return _read_dir(_Reader(root, source))
    if not source.is_file() or not zipfile.is_zipfile(source):
        raise MalformedModelError(f"MLeap bundle {text!r} is neither a directory nor a zip archive")
    with tempfile.TemporaryDirectory(prefix="mleap-bundle-") as tmp:
        safe_unzip(source, Path(tmp))
        return _read_dir(_Reader(Path(tmp).resolve(), source))


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
                rows = np.atleast_2d(np.asarray(attrs.decode(node.attributes[name], name, node.name), dtype=np.float64))
                node.attributes[name] = attrs.matrix_tensor(rows.T if transpose else rows)


def _read_dir(reader: _Reader) -> Bundle:
    path = reader.root / "bundle.json"
    text = reader.text(path)
    info = reader.json_object(path, text=text)
    fmt = info.get("format", "json")
    if fmt != "json":
        raise NotSupportedError(f"{reader.source}: MLeap bundle format {fmt!r} is unsupported; only the JSON format "
                                "is read")
    writer = PYTHON if _PYTHON_INDENT.match(text) else JVM
    root = _read_node(reader, reader.root / "root", "root")
    if writer == PYTHON:
        _log.debug("%s: written by the mleap Python package; reading its matrices as row-major", reader.source)
        _python_matrices_to_jvm(root)
    return Bundle(root, str(info.get("name", "")), str(info.get("version", "")), str(info.get("uid", "")),
                  str(info.get("timestamp", "")), writer)


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
