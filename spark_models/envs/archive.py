"""Relocatable environment archives: pack a built environment, unpack one on another machine.

An archive is a tar.gz holding ``spark-models-env.json`` (key, manager, Python version and
platform) and the environment under ``env/``, without the interpreter links: those are made
again on unpacking, to this machine's interpreter of the same Python version. An archive
made for another platform or Python version is refused, naming both.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from spark_models.archives import safe_extract
from spark_models.envs.build import MARKER, BuiltEnv, env_lock, env_paths, find_env, local_interpreter
from spark_models.envs.spec import machine_platform
from spark_models.exceptions import InvalidArgumentError, MalformedModelError, ModelEnvironmentError

_logger = logging.getLogger(__name__)

MANIFEST = "spark-models-env.json"
ARCHIVE_FORMAT = 1


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(env: BuiltEnv) -> dict:
    from spark_models import __version__

    info = json.loads((env.root / MARKER).read_text())
    return {**info, "format": ARCHIVE_FORMAT, "python_full": "{}.{}.{}".format(*sys.version_info[:3]),
            "spark_models": __version__, "lib64": (env.root / "lib64").is_symlink()}


def _members(root: Path) -> list[Path]:
    """The environment's files and directories; interpreter links and ``lib64`` are made again on unpacking."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_symlink():
            if rel.parts[0] == "bin" and rel.name.startswith("python") or rel.as_posix() == "lib64":
                continue
            raise ModelEnvironmentError(f"Cannot pack {root}: {rel} is a symbolic link (archives hold no links)")
        if rel.name.endswith(".pyc") and "__pycache__" in rel.parts:
            continue
        found.append(path)
    return found


def pack_env(env: BuiltEnv, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``env`` to the archive ``out`` (local path); refuses an existing file unless ``overwrite``."""
    target = Path(out)
    if target.exists() and not overwrite:
        raise InvalidArgumentError(f"{target} exists; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    manifest = json.dumps(_manifest(env), indent=1).encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=1) as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode = len(manifest), 0o644
            tar.addfile(info, io.BytesIO(manifest))
            for path in _members(env.root):
                tar.add(path, arcname=f"env/{path.relative_to(env.root).as_posix()}", recursive=False)
        os.replace(tmp, target)  # atomic: no reader sees a half-written archive
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _logger.info("Packed environment %s into %s (%d bytes)", env.key, target, target.stat().st_size)
    return target


def read_manifest(archive: Path) -> dict:
    """The archive's manifest (its first member); MalformedModelError when it has none."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile() or first.size > 1 << 20:
                raise MalformedModelError(f"{archive} is not an environment archive: it does not start with {MANIFEST}")
            return json.loads(tar.extractfile(first).read())
    except (tarfile.TarError, OSError, ValueError) as e:
        raise MalformedModelError(f"{archive} is not a readable environment archive: {e}") from None


def check_compatible(manifest: dict, archive: object) -> None:
    """Refuse an archive built for another platform or Python version, naming both."""
    here_platform, here_python = machine_platform(), "{}.{}".format(*sys.version_info[:2])
    there_platform, there_python = manifest.get("platform"), str(manifest.get("python"))
    if there_platform != here_platform:
        raise ModelEnvironmentError(f"Environment archive {archive} was built for platform {there_platform!r}; "
                                    f"this machine is {here_platform!r}")
    if local_interpreter(there_python) is None:
        raise ModelEnvironmentError(f"Environment archive {archive} was built for Python {there_python}; this "
                                    f"machine has Python {here_python} and no python{there_python}")


def unpack_env(archive: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
               sha256: str | None = None, timeout: float = 1800.0) -> BuiltEnv:
    """The environment in ``archive`` installed in this machine's cache once (found there afterwards).

    ``sha256``, when given, must match the archive file's. Extraction refuses links, paths that
    leave the directory and archives over the size limits (:mod:`spark_models.limits`).
    """
    path = Path(archive)
    if sha256 is not None and file_sha256(path) != sha256:
        raise ModelEnvironmentError(f"Environment archive {path} does not have the content it was shipped with "
                                    f"(sha256 {sha256})")
    manifest = read_manifest(path)
    key = str(manifest.get("key") or "")
    if not key.isalnum():
        raise MalformedModelError(f"{path}: its manifest has no valid environment key ({key!r})")
    check_compatible(manifest, path)
    found = find_env(key, cache_dir)
    if found:
        return found
    target, log = env_paths(key, cache_dir)
    with env_lock(target, timeout=timeout, what=f"environment {key}"):
        found = find_env(key, cache_dir)
        if found:
            return found
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
        try:
            safe_extract(path, tmp)
            _relink(tmp / "env", manifest)
            (tmp / "env" / MARKER).write_text(json.dumps({k: v for k, v in manifest.items() if k != "format"}))
            shutil.rmtree(target, ignore_errors=True)  # an incomplete earlier attempt (we hold the lock)
            os.replace(tmp / "env", target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _logger.info("Unpacked environment %s from %s into %s", key, path, target)
    return BuiltEnv(target, key, log)


def _relink(root: Path, manifest: dict) -> None:
    """Point the environment at this machine's interpreter of its Python version."""
    python = str(manifest["python"])
    interpreter = local_interpreter(python)
    if not (root / "pyvenv.cfg").is_file():
        raise MalformedModelError(f"The environment archive for {manifest.get('key')} has no pyvenv.cfg")
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "python3", f"python{python}"):
        (bin_dir / name).unlink(missing_ok=True)
        (bin_dir / name).symlink_to(interpreter)
    if manifest.get("lib64") and not (root / "lib64").exists():
        (root / "lib64").symlink_to("lib")
    lines = [ln for ln in (root / "pyvenv.cfg").read_text().splitlines() if not ln.startswith("home")]
    (root / "pyvenv.cfg").write_text("\n".join([f"home = {Path(interpreter).parent}", *lines]) + "\n")
