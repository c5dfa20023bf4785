"""The spacy flavor: spaCy pipelines in MLflow's layout (``mlflow.spacy``).

``save_model`` writes the pipeline with ``nlp.to_disk`` into ``model.spacy/`` and an MLmodel with
a ``spacy`` entry (``spacy_version``, ``data``, ``code``). As MLflow does, a ``python_function``
entry is written only for pipelines with a text categorizer (``textcat`` or
``textcat_multilabel``, any ``spacy.pipeline.TextCategorizer``); other pipelines get a warning
and load only through :func:`load_model`.

pyfunc ``predict`` is MLflow's: a DataFrame with exactly one column of texts gives a DataFrame
with one ``predictions`` column holding each text's ``doc.cats`` (a dict label → score), on
the input's index. Texts are run through ``nlp.pipe`` in batches, which gives the scores
``nlp(text)`` gives (a text with no tokens is scored apart, as spaCy scores it alone: all 0).
More than one column, non-text values or missing texts are a SchemaEnforcementError naming
the column (and the rows); MLflow passes them on to spaCy, which fails on the first one.

``spark_udf``: with a signature (e.g. inferred from ``input_example``) the output schema is
``predictions: Object{label: double}`` and the result type derived from it is
``struct<label:double, ...>``: the scores of each row's text, one field per label. MLflow's
``spark_udf`` fails on that derived type (it looks for the labels as DataFrame columns); it
returns the same values for ``result_type="struct<predictions:struct<...>>"`` (ours:
the struct of labels) and ``"map<string,double>"`` (ours has no map result types).

Threads: spaCy runs on thinc's CPU ops (single-threaded, no BLAS pool), so there is no knob.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from spark_models.environment import default_requirements
from spark_models.exceptions import (
    ArtifactNotFoundError,
    InvalidArgumentError,
    MalformedModelError,
    MissingDependencyError,
    SchemaEnforcementError,
)
from spark_models.flavors.contract import Flavor, LoadContext
from spark_models.flavors.opening import open_model
from spark_models.flavors.saving import copy_extra_files, saved_model
from spark_models.flavors.trust import refusal
from spark_models.mlmodel import MLMODEL_FILE_NAME, Model

_logger = logging.getLogger(__name__)

FLAVOR_NAME = "spacy"
DATA_DIR = "model.spacy"
EXTRA_FILES_DIR = "extra_files"
OUTPUT_COLUMN = "predictions"
# spaCy's error codes for a config naming a factory / registered function nobody registered.
_UNREGISTERED = ("[E002]", "[E893]")


def default_pip_requirements() -> list[str]:
    """spark-models and spacy, pinned to the installed versions."""
    return default_requirements("spacy")


def has_text_categorizer(nlp: Any) -> bool:
    """Whether the pipeline has a text categorizer (the condition for a python_function entry)."""
    from spacy.pipeline import (
        TextCategorizer,  # textcat_multilabel's class derives from it
    )

    return any(isinstance(component, TextCategorizer) for _, component in nlp.pipeline)




def save_model(
    spacy_model: Any,
    path: str | os.PathLike,
    conda_env: Any = None,
    code_paths: Sequence[str | os.PathLike] | None = None,
    mlflow_model: Model | None = None,
    signature: Any = None,
    input_example: Any = None,
    pip_requirements: Any = None,
    extra_pip_requirements: Any = None,
    metadata: dict[str, Any] | None = None,
    extra_files: Sequence[str | os.PathLike] | None = None,
) -> Model:
    """Save a spaCy pipeline (``spacy.language.Language``) at ``path`` in MLflow's layout."""
    import spacy
    from spacy.language import Language

    if not isinstance(spacy_model, Language):
        raise InvalidArgumentError(f"spacy_model must be a spacy.language.Language, got {type(spacy_model).__name__}")
    with saved_model(path, default_pip=default_pip_requirements(), mlflow_model=mlflow_model, code_paths=code_paths,
                     signature=signature, input_example=input_example, conda_env=conda_env,
                     pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
                     metadata=metadata) as draft:
        spacy_model.to_disk(draft.dir / DATA_DIR)
        if has_text_categorizer(spacy_model):
            draft.set_pyfunc(FLAVOR.module, data=DATA_DIR, code=draft.code)
            draft.predict_for_signature = _SpacyModelWrapper(spacy_model).predict
        else:
            _logger.warning(
                "The spaCy pipeline %s has no text categorizer (textcat, textcat_multilabel): saving only the spacy "
                "flavor. spark_models.spacy.load_model loads it; pyfunc.load_model, spark_udf and serving cannot.",
                spacy_model.pipe_names)
        draft.add_flavor(FLAVOR_NAME, spacy_version=spacy.__version__, data=DATA_DIR, code=draft.code,
                         **copy_extra_files(extra_files, draft.dir))
    return draft.model


def _runs_code(context: LoadContext) -> str | None:
    """What loading runs from the model itself.

    spaCy's ``to_disk`` directory is data: ``config.cfg`` (text whose ``@architectures``,
    factories and callbacks are looked up by name in spaCy's registry, which holds only code
    already imported or installed as a package's entry point), ``meta.json``, and weights and
    vocab in msgpack (srsly's numpy decoding refuses object arrays) or ``.npy`` read with
    ``allow_pickle=False``; nothing is unpickled. Only a model's ``code`` directory, which
    custom components ship their factories in, brings code of its own.
    """
    conf = context.model.flavors.get(FLAVOR_NAME) or {}
    code = conf.get("code") or context.pyfunc_conf.get("code")
    return f"ships code ({code!r}) to put on sys.path" if code else None


def _data_dir(context: LoadContext, pyfunc: bool) -> Path:
    conf = context.model.flavors.get(FLAVOR_NAME) or {}
    relative = (context.pyfunc_conf.get("data") if pyfunc else None) or conf.get("data") or DATA_DIR  # MLflow <= 0.8 wrote none
    path = context.path(relative, "spacy data")
    if not (path / "config.cfg").is_file():
        raise ArtifactNotFoundError(
            f"{path} (named in {context.model_dir / MLMODEL_FILE_NAME}) holds no config.cfg: no spaCy 3 pipeline "
            f"(the model was written with spacy {conf.get('spacy_version', 'of unknown version')})")
    return path


def _unregistered_error(context: LoadContext, error: ValueError) -> MissingDependencyError:
    code = (context.model.flavors.get(FLAVOR_NAME) or {}).get("code") or context.pyfunc_conf.get("code")
    hint = "install the package that registers it, or import the module that does, before loading"
    if code:
        code_dir = context.path(code, "code directory")
        modules = sorted(p.stem for p in code_dir.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file())
        hint = (f"the model ships code in {code!r} (modules {modules}), now on sys.path: import the module that "
                "registers it, then load again; or install the package that registers it")
    return MissingDependencyError(f"Cannot load the spaCy pipeline of {str(context.model_dir)!r}: its config names a "
                                  f"component or function spaCy does not know ({error}). {hint}")


def _load_native(context: LoadContext, *, pyfunc: bool = False) -> Any:
    import spacy

    if not context.allow_code:
        reason = _runs_code(context)
        if reason:
            raise refusal(context.model_dir, f"loading it {reason}")
    path = _data_dir(context, pyfunc)
    try:
        return spacy.load(path)  # a Path: never taken for an installed package's name
    except ValueError as e:
        if str(e).startswith(_UNREGISTERED):
            raise _unregistered_error(context, e) from e
        raise


def load_model(model_uri: str | os.PathLike, dst_path: str | os.PathLike | None = None, *,
               allow_code: bool | None = None) -> Any:
    """The ``spacy.language.Language`` of a model with the spacy flavor (``allow_code``: see
    :mod:`spark_models.flavors.trust`; a model with ``code`` is refused without it)."""
    context = open_model(model_uri, dst_path, allow_code=allow_code)
    code = context.flavor_conf(FLAVOR_NAME).get("code")
    if code:
        if not context.allow_code:
            raise refusal(context.model_dir, f"it ships code ({code!r}) to put on sys.path")
        from spark_models.pyfunc.loading import add_code_to_sys_path

        # A pipeline without a text categorizer has no python_function entry to name the code in.
        code_only = Model(flavors={"python_function": {"code": code}})
        add_code_to_sys_path(LoadContext(context.model_dir, code_only, allow_code=True))
    return _load_native(context)


def _texts(data: Any) -> pd.Series:
    """The one text column of ``data``, checked: str values only, no missing ones."""
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if not isinstance(data, pd.DataFrame):
        raise SchemaEnforcementError(f"A spaCy model takes a DataFrame with one column of texts, got {type(data).__name__}")
    if data.shape[1] != 1:
        raise SchemaEnforcementError(
            f"A spaCy model takes a DataFrame with exactly one column of texts, got {data.shape[1]}: {list(data.columns)}")
    column = data.iloc[:, 0]
    name = data.columns[0]
    missing = column.isna().to_numpy()
    if missing.any():
        rows = column.index[missing][:5].tolist()
        raise SchemaEnforcementError(
            f"Column {name!r} holds {int(missing.sum())} missing text(s), at rows {rows}"
            f"{' …' if missing.sum() > 5 else ''}: a spaCy model needs a text in every row")
    bad = ~column.map(lambda v: isinstance(v, str)).to_numpy(bool)
    if bad.any():
        label, value = column.index[bad][:1].tolist()[0], column[bad].iloc[0]
        raise SchemaEnforcementError(
            f"Column {name!r} must hold texts (str); row {label!r} holds {type(value).__name__} {value!r}")
    return column


class _SpacyModelWrapper:
    """pyfunc adapter: MLflow's ``_SpacyModelWrapper``, batched through ``nlp.pipe``."""

    def __init__(self, spacy_model: Any):
        self.spacy_model = spacy_model

    def get_raw_model(self) -> Any:
        return self.spacy_model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """``{"predictions": doc.cats}`` per text of the one column of ``data``; ``params`` are unused."""
        if params:
            _logger.warning("A spaCy model takes no params; ignoring %s", sorted(params))
        column = _texts(data)
        nlp = self.spacy_model
        docs = [nlp.make_doc(text) for text in column]
        # spaCy's text categorizer scores a batch of only empty docs as 0, but an empty doc among
        # others like any doc: scoring the empty ones apart gives what nlp(text) gives for each.
        empty = [i for i, doc in enumerate(docs) if len(doc) == 0]
        full = [i for i, doc in enumerate(docs) if len(doc) > 0]
        cats: list[Any] = [None] * len(docs)
        for group in (full, empty):
            for i, doc in zip(group, nlp.pipe(docs[i] for i in group)):
                cats[i] = doc.cats
        return pd.DataFrame({OUTPUT_COLUMN: cats}, index=column.index)


def _load_pyfunc_context(context: LoadContext) -> _SpacyModelWrapper:
    nlp = _load_native(context, pyfunc=True)
    if not has_text_categorizer(nlp):
        raise MalformedModelError(
            f"{context.model_dir / MLMODEL_FILE_NAME}: its python_function entry loads a spaCy pipeline without a text "
            f"categorizer ({nlp.pipe_names}), which has no pyfunc predictions; use spark_models.spacy.load_model")
    return _SpacyModelWrapper(nlp)


FLAVOR = Flavor(
    name=FLAVOR_NAME,
    save_model=save_model,
    load_model=load_model,
    load_pyfunc=_load_pyfunc_context,
    default_pip_requirements=default_pip_requirements,
    extra="spacy",
    runs_code=_runs_code,
)
_load_pyfunc = FLAVOR.mlflow_loader()

__all__ = ["FLAVOR", "FLAVOR_NAME", "_load_pyfunc", "default_pip_requirements", "has_text_categorizer",
           "load_model", "save_model"]
