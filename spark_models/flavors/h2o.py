"""The h2o flavor: H2O-3 models in MLflow's layout, scored with or without an H2O cluster.

``save_model`` writes MLflow 3's ``mlflow.h2o`` layout: ``model.h2o/`` holds the binary model
(fetched from the cluster with ``h2o.download_model``, as MLflow does) and ``h2o.yaml``
(``model_file``; ``full_file`` and ``model_dir``, which MLflow writes as absolute paths and no
loader reads, are relative here; and the caller's ``settings``, whose ``init`` entry is passed
to ``h2o.init``). The ``h2o`` flavor has ``h2o_version`` and ``data``, plus a key of ours
MLflow ignores: ``mojo_file``, a MOJO of the model next to it, or ``mojo_skipped``, why none
was written (e.g. the h2o wheel refuses MOJO export: h2o 3.46.0.12 reserves it to H2O-3 Secure).

pyfunc (``model_config={"runtime": ...}``): ``"auto"`` (default) scores the MOJO when the model
has one (see :mod:`spark_models.flavors.h2o_mojo`: no ``h2o.init``, no cluster), else does what
MLflow's ``_H2OModelWrapper`` does: ``h2o.init(**init)`` (which starts a local H2O JVM or
connects to a running one; skipped when this process is already connected to a cluster, which
is then used), uploads the model and predicts through an ``H2OFrame``;
``"mojo"`` requires the MOJO; ``"cluster"`` always uses the cluster. Both give H2O's
prediction columns (``predict``, then one probability column per class), with the input's index.
Inside a Spark task only the MOJO runs: ``spark_udf`` refuses a model without one when the UDF
is created, and the cluster runtime refuses to start in a task.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from spark_models.environment import default_requirements, installed_version
from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    NotSupportedError,
)
from spark_models.flavors.contract import Flavor, LoadContext, UdfBuild
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import saved_model
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "h2o"
DATA_SUBPATH = "model.h2o"
SETTINGS_FILE = "h2o.yaml"
RUNTIMES = ("auto", "mojo", "cluster")
# h2o.init arguments that neither add code to the JVM nor send data elsewhere (url, ip, port,
# extra_classpath, jvm_custom_args, ice_root, telemetry ... are not among them).
SAFE_INIT_ARGS = frozenset({"nthreads", "max_mem_size", "min_mem_size", "enable_assertions", "strict_version_check",
                            "log_level", "max_log_file_size", "name", "verbose"})


def default_pip_requirements() -> list[str]:
    """spark-models and h2o, pinned to the installed versions."""
    return default_requirements("h2o")


def save_model(
    h2o_model: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    settings: dict[str, Any] | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    *,
    mojo: bool | None = None,
    mojo_path: str | os.PathLike | None = None,
) -> Model:
    """Save an H2O model (from the connected cluster) as a model directory at ``path``.

    ``settings``: extra ``h2o.yaml`` entries, as in MLflow (``{"init": {...}}`` is passed to
    ``h2o.init`` by the cluster runtime). ``mojo``: None writes a MOJO when H2O exports one for
    this model and logs why not otherwise; True requires it; False writes none. ``mojo_path``:
    a MOJO of this very model exported elsewhere (H2O-3 Secure, another h2o version), stored
    instead of exporting one; a model imported with ``h2o.import_mojo`` keeps its source MOJO.
    """
    import h2o

    if settings is not None and not isinstance(settings, dict):
        raise InvalidArgumentError(f"settings must be a dict of h2o.yaml entries, got {type(settings).__name__}")
    if mojo is False and mojo_path is not None:
        raise InvalidArgumentError("mojo=False contradicts mojo_path: pass one of them")
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        data_dir = draft.dir / DATA_SUBPATH
        data_dir.mkdir()
        model_file = Path(h2o.download_model(model=h2o_model, path=str(data_dir))).name
        entries = {**(settings or {}), "full_file": f"{DATA_SUBPATH}/{model_file}", "model_file": model_file,
                   "model_dir": DATA_SUBPATH}
        (data_dir / SETTINGS_FILE).write_text(yaml.safe_dump(entries))
        mojo_conf = _write_mojo(h2o_model, data_dir / f"{model_file}.zip", mojo, mojo_path)
        draft.add_flavor(FLAVOR_NAME, h2o_version=h2o.__version__, data=DATA_SUBPATH, code=draft.code, **mojo_conf)
        draft.set_pyfunc(FLAVOR.module, data=DATA_SUBPATH, code=draft.code)
        draft.predict_for_signature = _H2OModelWrapper(h2o_model).predict
    return draft.model


def _write_mojo(h2o_model: Any, target: Path, mojo: bool | None, mojo_path: str | os.PathLike | None) -> dict[str, str]:
    """``{"mojo_file": ...}`` once ``target`` holds the model's MOJO, else ``{"mojo_skipped": why}``."""
    relative = f"{DATA_SUBPATH}/{target.name}"
    if mojo is False:
        return {"mojo_skipped": "save_model(mojo=False)"}
    source = mojo_path if mojo_path is not None else _imported_mojo(h2o_model)
    if source is not None:
        _copy_mojo(Path(source), target)
        return {"mojo_file": relative}
    why = _export_mojo(h2o_model, target)
    if why is None:
        return {"mojo_file": relative}
    if mojo:
        model_id = getattr(h2o_model, "model_id", h2o_model)
        raise NotSupportedError(f"save_model(mojo=True): no MOJO for {model_id!r}: {why}")
    _logger.info("H2O model %s saved without a MOJO (%s): pyfunc will need an H2O cluster",
                 getattr(h2o_model, "model_id", "?"), why)
    return {"mojo_skipped": why}


def _imported_mojo(h2o_model: Any) -> str | None:
    """The file an ``h2o.import_mojo`` model came from, when it is on this machine."""
    if getattr(h2o_model, "algo", None) != "generic":
        return None
    source = (getattr(h2o_model, "params", {}) or {}).get("path", {}).get("actual")
    return source if isinstance(source, str) and os.path.isfile(source) else None


def _copy_mojo(source: Path, target: Path) -> None:
    if not source.is_file():
        raise ArtifactNotFoundError(f"mojo_path {str(source)!r} does not exist")
    if not zipfile.is_zipfile(source) or "model.ini" not in zipfile.ZipFile(source).namelist():
        raise InvalidArgumentError(f"mojo_path {str(source)!r} is not an H2O MOJO (a zip file with model.ini)")
    shutil.copyfile(source, target)


def _export_mojo(h2o_model: Any, target: Path) -> str | None:
    """Ask H2O for the model's MOJO; the reason when it gives none (its notices are logged, not printed)."""
    if not getattr(h2o_model, "have_mojo", False):
        return f"H2O cannot export {getattr(h2o_model, 'algo', 'this')} models as MOJOs"
    from h2o.exceptions import H2OError

    notices = io.StringIO()
    try:
        with contextlib.redirect_stdout(notices):
            written = Path(h2o_model.download_mojo(path=str(target.parent)))
    except (H2OError, OSError) as e:  # H2OValueError: export reserved to H2O-3 Secure; server or job errors
        _logger.debug("h2o's download_mojo output: %s", notices.getvalue())
        return f"h2o {installed_version('h2o')}: {e}"
    if written != target:
        written.replace(target)
    return None


def _data_dir(context: LoadContext) -> Path:
    conf = context.flavor_conf(FLAVOR_NAME)
    return context.path(conf.get("data") or DATA_SUBPATH, "h2o data directory")


def _settings(context: LoadContext) -> dict[str, Any]:
    path = _data_dir(context) / SETTINGS_FILE
    if not path.is_file():
        raise ArtifactNotFoundError(f"{context.model_dir / 'MLmodel'}: the h2o model has no {SETTINGS_FILE} at {path}")
    settings = yaml.safe_load(path.read_text())
    if not isinstance(settings, dict) or not isinstance(settings.get("model_file"), str):
        raise MalformedModelError(f"{path} has no model_file entry")
    init = settings.get("init", {})
    if not isinstance(init, dict):
        raise MalformedModelError(f"{path}: init must be a mapping of h2o.init arguments, got {init!r}")
    return settings


def mojo_file(context: LoadContext) -> Path | None:
    """The model's MOJO (None when it has none; a missing file is an error)."""
    name = context.flavor_conf(FLAVOR_NAME).get("mojo_file")
    if not name:
        return None
    path = context.path(name, "mojo_file")
    if not path.is_file():
        raise ArtifactNotFoundError(f"{context.model_dir / 'MLmodel'} names the MOJO {name!r}, which does not exist")
    return path


def _no_mojo_reason(context: LoadContext) -> str:
    conf = context.flavor_conf(FLAVOR_NAME)
    return conf.get("mojo_skipped") or "it was saved without one (mlflow.h2o never writes a MOJO)"


def resolve_runtime(context: LoadContext) -> str:
    """``"mojo"`` or ``"cluster"``, from ``model_config["runtime"]`` and whether there is a MOJO."""
    requested = context.model_config.get("runtime", "auto")
    if requested not in RUNTIMES:
        raise InvalidArgumentError(f"model_config['runtime'] must be one of {RUNTIMES}, got {requested!r}")
    has_mojo = mojo_file(context) is not None
    if requested == "mojo" and not has_mojo:
        raise NotSupportedError(f"runtime='mojo': the h2o model at {str(context.model_dir)!r} has no MOJO: "
                                f"{_no_mojo_reason(context)}")
    if requested == "auto":
        return "mojo" if has_mojo else "cluster"
    return requested


def _runs_code(context: LoadContext) -> str | None:
    """Binary models and MOJOs are data read by H2O's JVM; only ``init`` arguments beyond the
    safe ones (a classpath, JVM flags, another server) make loading run or send anything."""
    requested = context.model_config.get("runtime", "auto")
    conf = context.model.flavors.get(FLAVOR_NAME, {})
    if requested == "mojo" or (requested == "auto" and conf.get("mojo_file")):
        return None
    try:
        init = _settings(context).get("init") or {}
    except (ArtifactNotFoundError, MalformedModelError) as e:
        return f"has an unreadable {SETTINGS_FILE} ({e})"
    unsafe = sorted(set(init) - SAFE_INIT_ARGS)
    if unsafe:
        return (f"passes h2o.init arguments from its {SETTINGS_FILE} ({', '.join(unsafe)}) that can add code to "
                "the H2O JVM or connect to another server")
    return None


def _in_spark_task() -> bool:
    try:
        from pyspark import TaskContext
    except ImportError:
        return False
    return TaskContext.get() is not None


def _connected() -> bool:
    import h2o

    conn = h2o.connection()
    return conn is not None and getattr(conn, "connected", True)


def _load_in_cluster(context: LoadContext, init: bool) -> Any:
    """Upload the binary model to the cluster, as MLflow does; with ``init``, ``h2o.init(**init)``
    first unless this process is already connected to a cluster (then that one is used)."""
    import h2o

    settings = _settings(context)
    model_path = context.path(_data_dir(context) / settings["model_file"], "h2o model_file")
    if not model_path.is_file():
        raise ArtifactNotFoundError(f"The H2O model file {str(model_path)!r} named in {SETTINGS_FILE} does not exist")
    if init and not _connected():
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            h2o.init(**(settings.get("init") or {}))
        _logger.debug("h2o.init: %s", output.getvalue())
        h2o.no_progress()
    elif not init and not _connected():
        raise NotSupportedError("spark_models.h2o.load_model returns a model in an H2O cluster: call h2o.init() first "
                                "(spark_models.pyfunc.load_model scores without one when the model has a MOJO)")
    return h2o.upload_model(str(model_path))


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None) -> Any:
    """The H2O model (an estimator in the connected cluster, as ``mlflow.h2o.load_model``)."""
    return _load_in_cluster(open_model(model_uri, dst_path), init=False)


class _H2OModelWrapper:
    """MLflow's pyfunc adapter: an H2OFrame in, H2O's predictions as pandas out, same index."""

    def __init__(self, h2o_model: Any):
        self.h2o_model = h2o_model

    def get_raw_model(self) -> Any:
        return self.h2o_model

    def predict(self, dataframe: Any, params: dict[str, Any] | None = None) -> Any:
        import h2o

        predicted = self.h2o_model.predict(h2o.H2OFrame(dataframe)).as_data_frame()
        predicted.index = dataframe.index
        return predicted


class _H2OMojoWrapper:
    """The same output from the model's MOJO, without H2O (see :mod:`spark_models.flavors.h2o_mojo`)."""

    def __init__(self, scorer: Any):
        self.scorer = scorer

    def get_raw_model(self) -> Any:
        return self.scorer

    def predict(self, dataframe: Any, params: dict[str, Any] | None = None) -> Any:
        return self.scorer.predict(dataframe)


def _load_pyfunc_context(context: LoadContext) -> Any:
    runtime = resolve_runtime(context)
    if runtime == "mojo":
        from spark_models.flavors.h2o_mojo import MojoScorer

        return _H2OMojoWrapper(MojoScorer(mojo_file(context), context.model_config))
    if _in_spark_task():
        raise NotSupportedError(
            f"the h2o model at {str(context.model_dir)!r} would start an H2O cluster inside a Spark task "
            f"(runtime='cluster'); score its MOJO instead (it has none: {_no_mojo_reason(context)})")
    if not context.allow_code and (reason := _runs_code(context)):
        raise refusal(context.model_dir, f"loading it {reason}")
    return _H2OModelWrapper(_load_in_cluster(context, init=True))


def _prepare_for_udf(spark: Any, context: LoadContext, model_uri: str) -> UdfBuild | None:
    """Workers score the MOJO; a model without one cannot run in a task (it needs a cluster)."""
    if context.model_config.get("runtime") == "cluster":
        raise NotSupportedError("runtime='cluster' would start an H2O cluster inside every Spark task")
    if mojo_file(context) is None:
        raise NotSupportedError(
            f"it has no MOJO for the workers to score ({_no_mojo_reason(context)}), and scoring it otherwise would "
            "start an H2O cluster inside every Spark task. Save it with a MOJO (spark_models.h2o.save_model(model, "
            "path, mojo_path=...)), or score it on the driver: spark_models.pyfunc.load_model(uri).predict(pdf)")
    return None


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="h2o",
    prepare_for_udf=_prepare_for_udf,
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["FLAVOR", "FLAVOR_NAME", "RUNTIMES", "_load_pyfunc", "default_pip_requirements", "load_model", "save_model"]
