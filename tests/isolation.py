"""Run Python code in a fresh interpreter where some packages cannot be imported.

This is how tests prove that a model loads "where MLflow is not installed": a meta-path
finder refuses the named top-level packages before anything else is imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_BLOCKER = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by test)", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


def run_python(code: str, blocked: tuple[str, ...] = (), cwd: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter with ``blocked`` packages unimportable."""
    script = _BLOCKER.format(blocked=set(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def run_json(code: str, blocked: tuple[str, ...] = (), cwd: str | None = None, timeout: int = 300):
    """Run ``code`` (which prints one JSON document last) and return the parsed JSON."""
    proc = run_python(code, blocked, cwd, timeout)
    if proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
