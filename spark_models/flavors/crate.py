"""The crate flavor: R functions (``carrier::crate()``) in MLflow R's layout, scored by ``Rscript``.

MLflow R's ``mlflow_save_model(crate, path)`` writes ``crate.bin`` (``saveRDS(serialize(crate,
NULL))``) and an MLmodel whose only flavor is ``crate: {version: 0.1.0, model: crate.bin}``; its
loader is ``unserialize(readRDS(...))`` and it predicts with ``crate(data, ...)`` on a data.frame.
:func:`save_model` writes exactly that, plus a ``python_function`` entry (``loader_module:
spark_models.crate``, ``data: crate.bin``) that MLflow R ignores, so MLflow R loads our models
and ``mlflow.pyfunc.load_model`` does too where spark-models is installed. MLflow for Python
has no loader of its own for R models (it needs the R ``mlflow`` package), and MLflow R writes
no ``python_function`` entry: :func:`load_model` reads such a directory as it is, and
``save_model(<MLflow R model directory>, path)`` gives a copy that ``pyfunc``/``spark_udf`` load.

A crate is an R function with class ``"crate"``: one made with ``carrier::crate(function(df) ...)``,
or in base R ``f <- function(df) ...; class(f) <- c("crate", class(f))``, saved with
``saveRDS(f, "model.rds")``. :func:`save_model` takes the path of that RDS file (or its bytes,
or MLflow's ``crate.bin``, or an MLflow R model directory) and rewrites it with ``Rscript``.

Scoring (:mod:`spark_models.flavors.r_process`): one ``Rscript`` process per crate per Python
process (per Spark Python worker), started on load, reused for every batch and stopped when the
model is garbage collected or at exit. The input reaches R as a data.frame (float → numeric,
int → integer, bool → logical, str → character, timestamps → POSIXct UTC; NaN/None/NaT → NA);
params become named arguments (``crate(data, threshold = 0.5)``). A vector result becomes a
Series, a data.frame (or matrix) a DataFrame; NA comes back as NaN/None; one row per input row
is required (:class:`~spark_models.exceptions.ModelOutputError`), and a data.frame result
whose row names permute the input's rows is put back in input order. An R error raises
:class:`~spark_models.flavors.r_process.RFunctionError` with R's message and the process keeps
serving. Without R: :class:`~spark_models.exceptions.MissingDependencyError`
(``apt-get install -y r-base-core``). A crate is code: ``allow_code=False`` refuses it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spark_models.environment import default_requirements
from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
)
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.r_process import (
    RFunctionError,
    RProcess,
    pack_crate,
    r_process,
)
from spark_models.flavors.saving import saved_model
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import MLMODEL_FILE_NAME, Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "crate"
CRATE_FILE = "crate.bin"
CRATE_VERSION = "0.1.0"
"""The ``version`` MLflow R writes in its ``crate`` entry."""


def default_pip_requirements() -> list[str]:
    """spark-models, pinned (R itself comes from the OS, not pip)."""
    return default_requirements()


def _as_frame(data: Any) -> pd.DataFrame:
    """Model input as the data.frame the crate is called on."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    if isinstance(data, np.ndarray):
        table = data.reshape(-1, 1) if data.ndim == 1 else data
        if table.ndim != 2:
            raise InvalidArgumentError(f"An R crate takes a table; got an array of shape {data.shape}")
        return pd.DataFrame(table, columns=[f"V{i + 1}" for i in range(table.shape[1])])  # as R names them
    if isinstance(data, (dict, list)):
        return pd.DataFrame(data)
    raise InvalidArgumentError(f"An R crate takes a DataFrame (or dict, list, array), got {type(data).__name__}")


def _crate_source(crate: Any, workdir: Path) -> Path:
    """The file holding the crate: a path as given, bytes written out, or an MLflow R model's crate."""
    if isinstance(crate, (bytes, bytearray, memoryview)):
        source = workdir / "crate.rds"
        source.write_bytes(bytes(crate))
        return source
    if not isinstance(crate, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"crate must be the path of an RDS file holding an R crate (saveRDS(crate, path)), its bytes, "
            f"or an MLflow R model directory; got {type(crate).__name__}")
    source = Path(crate)
    if source.is_dir():
        if not (source / MLMODEL_FILE_NAME).is_file():
            raise InvalidArgumentError(f"{str(source)!r} is a directory without an {MLMODEL_FILE_NAME}")
        return _crate_file(open_model(source))
    if not source.is_file():
        raise ArtifactNotFoundError(f"Crate file {str(source)!r} does not exist")
    return source


def save_model(
    crate: str | os.PathLike | bytes,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
) -> Model:
    """Save an R crate at ``path`` in MLflow R's layout (plus a ``python_function`` entry).

    ``crate``: the path of an RDS file holding the crate (``saveRDS(crate, "model.rds")``), or
    of MLflow's ``crate.bin``, or the bytes of either, or an MLflow R model directory. ``Rscript``
    checks that it is a function with class ``"crate"`` (else InvalidArgumentError) and writes
    ``crate.bin``; an ``input_example`` is scored in R to infer the output schema.
    """
    scorer = _ExampleScorer()
    try:
        with tempfile.TemporaryDirectory(prefix="spark-models-crate-") as workdir:
            source = _crate_source(crate, Path(workdir))
            with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model,
                             code_paths=code_paths, signature=signature, input_example=input_example,
                             conda_env=conda_env, pip_requirements=pip_requirements,
                             extra_pip_requirements=extra_pip_requirements, metadata=metadata) as draft:
                pack_crate(source, draft.dir / CRATE_FILE)
                draft.add_flavor(FLAVOR_NAME, version=CRATE_VERSION, model=CRATE_FILE)
                draft.set_pyfunc(FLAVOR.module, data=CRATE_FILE, code=draft.code)
                scorer.path = draft.dir / CRATE_FILE
                draft.predict_for_signature = scorer.predict
    finally:
        scorer.close()
    return draft.model


class _ExampleScorer:
    """Scores the input example while saving, in an R process of its own started only if needed."""

    path: Path | None = None
    process: RProcess | None = None

    def predict(self, data: Any) -> Any:
        if self.process is None:
            self.process = RProcess(self.path)
        return self.process.predict(_as_frame(data))

    def close(self) -> None:
        if self.process is not None:
            self.process.close()


def _crate_file(context: LoadContext) -> Path:
    conf = context.flavor_conf(FLAVOR_NAME)
    name = conf.get("model") or CRATE_FILE
    if not isinstance(name, str):
        raise MalformedModelError(f"{context.model_dir / MLMODEL_FILE_NAME}: the crate flavor's model is not a file name")
    crate = context.path(name, "crate model")
    if not crate.is_file():
        raise ArtifactNotFoundError(f"Crate {str(crate)!r} named in {context.model_dir / MLMODEL_FILE_NAME} does not exist")
    return crate


def _runs_code(context: LoadContext) -> str:
    """A crate is an R function: loading it to score it runs its code."""
    conf = context.model.flavors.get(FLAVOR_NAME) or {}
    return f"calls the R function (crate) in {conf.get('model') or CRATE_FILE!r}, which runs its code in R"


class CrateModel:
    """A crate loaded into its R process: :meth:`predict` calls it on a data.frame of the input."""

    def __init__(self, process: RProcess, model_config: Mapping[str, Any] | None = None):
        self._process = process
        self.model_config = dict(model_config or {})

    @property
    def crate_path(self) -> Path:
        return self._process.crate_path

    @property
    def pid(self) -> int | None:
        """The id of the R process scoring this crate (None while none runs)."""
        return self._process.pid

    @property
    def r_version(self) -> str:
        return self._process.r_version

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.Series | pd.DataFrame:
        """The crate's result on ``data`` (``params`` as named arguments): a Series for an R vector,
        a DataFrame for a data.frame, one row per input row, on the input's index."""
        from spark_models.pyfunc.outputs import check_row_count

        frame = _as_frame(data)
        result = self._process.predict(frame, params)
        check_row_count(result, len(frame), f"The R crate {str(self.crate_path)!r}")
        return result.set_axis(frame.index, axis=0)

    def close(self) -> None:
        """Stop the R process now (the next predict starts another)."""
        self._process.close()

    def get_raw_model(self) -> CrateModel:
        return self


def _load(context: LoadContext) -> CrateModel:
    if not context.allow_code:
        raise refusal(context.model_dir, f"loading it {_runs_code(context)}")
    return CrateModel(r_process(_crate_file(context)), context.model_config)


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None, *,
               allow_code: bool | None = None) -> CrateModel:
    """The crate of a model with a ``crate`` flavor (ours, or MLflow R's without ``python_function``),
    loaded into an R process; ``allow_code=False`` refuses it (a crate is code)."""
    return _load(open_model(model_uri, dst_path, allow_code=allow_code))


def _implied_pyfunc(conf: dict[str, Any]) -> dict[str, Any]:
    """MLflow R writes no python_function entry for a crate; ours is implied by its crate file."""
    return {"loader_module": "spark_models.crate", "data": conf.get("model") or CRATE_FILE}


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load,
    default_pip_requirements=default_pip_requirements,
    extra=None,
    runs_code=_runs_code,
    implied_pyfunc=_implied_pyfunc,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = [
    "CRATE_FILE",
    "CRATE_VERSION",
    "FLAVOR",
    "FLAVOR_NAME",
    "CrateModel",
    "RFunctionError",
    "_load_pyfunc",
    "default_pip_requirements",
    "load_model",
    "save_model",
]
