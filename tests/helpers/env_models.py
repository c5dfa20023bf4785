"""A model saved by another scikit-learn version, in a virtualenv built for it (PyPI is reachable).

The trainer environment has scikit-learn ``OLD_SKLEARN`` and our package on PYTHONPATH; it
trains a small forest, saves it with ``spark_models.sklearn.save_model`` (so requirements.txt
pins that version) and writes the inputs and that version's own predictions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

OLD_SKLEARN = "1.5.2"
REPO = Path(__file__).resolve().parents[2]

_TRAIN = """
import sys
import numpy as np, pandas as pd
from sklearn.ensemble import RandomForestRegressor
import spark_models.sklearn
from spark_models.models import infer_signature
out = sys.argv[1]
rng = np.random.default_rng(7)
X = pd.DataFrame(rng.normal(size=(400, 4)), columns=["a", "b", "c", "d"])
y = X.a * 2 + np.sin(X.b) + rng.normal(scale=0.1, size=400)
model = RandomForestRegressor(n_estimators=12, max_depth=6, random_state=0).fit(X, y)
spark_models.sklearn.save_model(model, out + "/model", signature=infer_signature(X, model.predict(X)))
X.to_parquet(out + "/inputs.parquet")
np.save(out + "/expected.npy", model.predict(X))
"""


def uv() -> str:
    from spark_models.envs.build import uv_binary

    return uv_binary()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def trainer_env(root: Path, sklearn_version: str = OLD_SKLEARN) -> Path:
    """A virtualenv with scikit-learn ``sklearn_version`` and the packages our loader imports; its python."""
    env = root / f"trainer-sklearn-{sklearn_version}"
    python = env / "bin" / "python"
    if not python.exists():
        version = "{}.{}".format(*sys.version_info[:2])
        subprocess.run([uv(), "venv", "--quiet", "--python", version, str(env)], check=True, env=clean_env())
        subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(python), f"scikit-learn=={sklearn_version}",
                        "pandas<3", "pyarrow", "pyyaml", "cloudpickle", "fsspec"], check=True, env=clean_env())
    return python


def old_sklearn_model(root: Path) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """(model dir, inputs, the old version's predictions), saved once under ``root``."""
    if not (root / "model" / "MLmodel").is_file():
        python = trainer_env(root)
        subprocess.run([str(python), "-c", _TRAIN, str(root)], check=True, env={**clean_env(), "PYTHONPATH": str(REPO)})
    return root / "model", pd.read_parquet(root / "inputs.parquet"), np.load(root / "expected.npy")


# ---- fixtures (registered in conftest.py) ----
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def env_root(tmp_path_factory):
    """One directory per test run for trainer envs and the shared environment cache (built once per run)."""
    return tmp_path_factory.mktemp("model-envs")


@pytest.fixture(scope="session")
def old_model(env_root):
    """(model dir, inputs, predictions) of a forest saved by scikit-learn OLD_SKLEARN."""
    return old_sklearn_model(env_root / "old")


@pytest.fixture
def env_cache(env_root, monkeypatch):
    """``$SPARK_MODELS_ENV_CACHE`` set to this run's shared cache (environments are built once per run)."""
    from spark_models.envs.options import CACHE_ENV

    cache = env_root / "cache"
    cache.mkdir(mode=0o700, exist_ok=True)
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache
