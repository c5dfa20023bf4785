"""``PyFuncModel``: the one interface every loaded model is scored through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spark_models.exceptions import InvalidArgumentError
from spark_models.pyfunc.outputs import align_output, check_row_count, empty_output, note_missing_values, row_count
from spark_models.mlmodel import Model
from spark_models.schema.signature import ModelSignature


class PyFuncModel:
    """A loaded python_function model: ``predict`` enforces the signature, then runs the model.

    Accepted inputs: pandas DataFrame (or Series), numpy array, dict of arrays/lists, list.
    """

    def __init__(self, model_meta: Model, model_impl: Any, model_uri: str = "", local_path: str | Path = ""):
        if not callable(getattr(model_impl, "predict", None)):
            raise InvalidArgumentError(f"Loaded model implementation {type(model_impl).__name__} has no predict()")
        self._model_meta = model_meta
        self._model_impl = model_impl
        self.model_uri = model_uri
        self.local_path = Path(local_path) if local_path else None
        self._takes_params = _accepts_params(model_impl.predict)

    @property
    def metadata(self) -> Model:
        """The model's MLmodel content."""
        return self._model_meta

    @property
    def signature(self) -> ModelSignature | None:
        return self._model_meta.signature

    @property
    def loader_module(self) -> str:
        return self._model_meta.flavors["python_function"].get("loader_module", "")

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Score ``data``: enforce the signature's input schema and params, then predict.

        The output has one row per input row, in the input's order (see
        :mod:`spark_models.pyfunc.outputs`); 0 rows give an empty result without calling the model.
        """
        return self.predict_prepared(*self.prepare_input(data, params))

    def prepare_input(self, data: Any, params: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any] | None]:
        """``(data, params)`` enforced against the signature: the client's part of ``predict``
        (its errors are the input's fault; the server answers them with 400)."""
        from spark_models.schema.enforcement import enforce_params, enforce_schema

        signature = self.signature
        if signature is not None:
            return enforce_schema(data, signature.inputs), enforce_params(params, signature.params)
        if params is not None and not isinstance(params, dict):
            raise InvalidArgumentError(f"params must be a dict, got {type(params).__name__}")
        return data, params

    def predict_prepared(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """The model's part of ``predict``, on input :meth:`prepare_input` returned."""
        signature = self.signature
        rows = row_count(data)
        if rows == 0:
            return empty_output(signature)
        try:
            output = self._model_impl.predict(data, params=params) if self._takes_params else self._model_impl.predict(data)
        except Exception as e:
            note_missing_values(e, data)
            raise
        if rows is not None:
            check_row_count(output, rows, f"Model {self.model_uri!r}")
        return align_output(output, data)

    def unwrap_python_model(self) -> Any:
        """The user's ``PythonModel`` instance (custom models only)."""
        unwrap = getattr(self._model_impl, "unwrap_python_model", None)
        if unwrap is None:
            raise InvalidArgumentError(
                f"unwrap_python_model() applies to custom PythonModel models; this model's loader is {self.loader_module!r}"
            )
        return unwrap()

    def get_raw_model(self) -> Any:
        """The underlying implementation object returned by the flavor's ``_load_pyfunc``."""
        return self._model_impl

    def __repr__(self) -> str:
        return f"PyFuncModel(uri={self.model_uri!r}, loader_module={self.loader_module!r})"


def _accepts_params(predict) -> bool:
    import inspect

    try:
        sig = inspect.signature(predict)
    except (TypeError, ValueError):
        return False
    return "params" in sig.parameters or any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
