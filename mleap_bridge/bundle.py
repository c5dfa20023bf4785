"""The Bundle.ML file format: a directory or zip with ``bundle.json`` and a ``root/`` node tree.

Each node folder holds ``model.json`` (``op`` + attributes) and ``node.json`` (name and
shape: input/output sockets ``{"port", "name"}``). Pipelines list their children in the
``nodes`` attribute; child ``X`` lives in ``X.node/``. Only the JSON format is supported.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from spark_models.exceptions import MalformedModelError, ModelNotFoundError, NotSupportedError

from mleap_bridge import attributes as attrs

BUNDLE_VERSION = "0.25.0"  # the MLeap version whose format we write


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


# ---- reading ----------------------------------------------------------------------------

def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
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


def _read_dir(folder: Path, source: Path) -> Bundle:
    info = _read_json(folder / "bundle.json")
    fmt = info.get("format", "json")
    if fmt != "json":
        raise NotSupportedError(f"{source}: MLeap bundle format {fmt!r} is unsupported; only the JSON format is read")
    return Bundle(_read_node(folder / "root"), info.get("name", ""), info.get("version", ""), info.get("uid", ""),
                  info.get("timestamp", ""))


# ---- writing ----------------------------------------------------------------------------

def _write_node(node: Node, folder: Path) -> None:
    folder.mkdir(parents=True)
    attributes = dict(node.attributes)
    if node.op == "pipeline":
        attributes["nodes"] = attrs.listed("string", [c.name for c in node.children])
        for child in node.children:
            _write_node(child, folder / f"{child.name}.node")
    (folder / "model.json").write_text(json.dumps({"op": node.op, "attributes": attributes}, indent=2))
    shape = {"inputs": [{"port": p, "name": c} for p, c in node.inputs],
             "outputs": [{"port": p, "name": c} for p, c in node.outputs]}
    (folder / "node.json").write_text(json.dumps({"name": node.name, "shape": shape}, indent=2))
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
