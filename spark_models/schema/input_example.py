"""Input examples: saved beside the model as JSON, in MLflow's layout.

Column-based examples (DataFrame, dict, list) are stored as a pandas split-oriented
DataFrame with bytes base64-encoded and datetimes as ISO 8601; tensor examples (ndarray,
dict of ndarrays) as bare tensor JSON, MLflow 3's form (MLflow 2's ``{"inputs": ...}`` is
read too). ``saved_input_example_info`` in MLmodel carries the keys MLflow writes, plus
``input_kind`` so loading returns the kind of object that was saved.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import ArtifactNotFoundError, InvalidArgumentError, MalformedModelError
from spark_models.schema.json_decoding import decode_json_columns

EXAMPLE_FILE = "input_example.json"
SERVING_EXAMPLE_FILE = "serving_input_example.json"


def _is_tensor_input(example: Any) -> bool:
    if isinstance(example, np.ndarray):
        return True
    return isinstance(example, dict) and bool(example) and all(isinstance(v, np.ndarray) for v in example.values())


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value


def _example_frame(example: Any) -> tuple[pd.DataFrame, str]:
    """The example as a DataFrame, and the kind of object it was."""
    if isinstance(example, pd.DataFrame):
        return example, "dataframe"
    if isinstance(example, pd.Series):
        return example.to_frame(), "series"
    if isinstance(example, dict):
        if all(np.isscalar(v) or v is None or isinstance(v, bytes) for v in example.values()):
            return pd.DataFrame([example]), "record"
        return pd.DataFrame(example), "dict"
    if isinstance(example, list):
        if example and all(isinstance(r, dict) for r in example):
            return pd.DataFrame(example), "records"
        return pd.DataFrame(example), "list"
    raise InvalidArgumentError(
        f"Unsupported input_example type {type(example).__name__}: use a pandas DataFrame, dict, list, "
        "numpy array or dict of numpy arrays"
    )


def _split_json(df: pd.DataFrame) -> dict[str, Any]:
    rows = [[_jsonable(v) for v in row] for row in df.itertuples(index=False, name=None)]
    return {"columns": [str(c) if not isinstance(c, int) else c for c in df.columns], "data": rows}


def save_input_example(example: Any, model_dir: str | Path) -> dict[str, Any]:
    """Write the example files and return ``saved_input_example_info`` for MLmodel."""
    root = Path(model_dir)
    info: dict[str, Any] = {"artifact_path": EXAMPLE_FILE, "serving_input_path": SERVING_EXAMPLE_FILE}
    if _is_tensor_input(example):
        inputs = example.tolist() if isinstance(example, np.ndarray) else {k: v.tolist() for k, v in example.items()}
        # MLflow 3 stores the bare tensor here (its reader rejects MLflow 2's {"inputs": ...});
        # the serving example keeps the TF-serving {"inputs": ...} form. We read both.
        payload = inputs
        serving = {"inputs": inputs}
        info.update(type="ndarray", input_kind="ndarray" if isinstance(example, np.ndarray) else "tensor_dict")
    else:
        df, kind = _example_frame(example)
        payload = _split_json(df)
        serving = {"dataframe_split": payload}
        info.update(type="dataframe", pandas_orient="split", input_kind=kind)
    (root / EXAMPLE_FILE).write_text(json.dumps(payload))
    (root / SERVING_EXAMPLE_FILE).write_text(json.dumps(serving, indent=2))
    return info


def _frame_from_split(payload: dict[str, Any], path: Path) -> pd.DataFrame:
    if not isinstance(payload, dict) or "data" not in payload:
        raise MalformedModelError(f"{path}: expected a split-oriented DataFrame with 'columns' and 'data'")
    return pd.DataFrame(payload["data"], columns=payload.get("columns"))


def _tensor_example(payload: Any, kind: str | None) -> Any:
    wrapped = isinstance(payload, dict) and kind != "tensor_dict" and ("inputs" in payload or "instances" in payload)
    inputs = payload.get("inputs", payload.get("instances")) if wrapped else payload
    if isinstance(inputs, dict):
        return {k: np.asarray(v) for k, v in inputs.items()}
    return np.asarray(inputs)


def load_input_example(model: Any, model_dir: Path) -> Any:
    """The example saved with ``model``, as the kind of object saved (None without one)."""
    info = model.saved_input_example_info
    if not info:
        return None
    path = model_dir / info.get("artifact_path", EXAMPLE_FILE)
    if not path.is_file():
        raise ArtifactNotFoundError(f"Input example file {str(path)!r} referenced by MLmodel does not exist")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MalformedModelError(f"{path}: invalid JSON ({e})") from None
    kind = info.get("input_kind")
    if info.get("type") == "ndarray":
        return _tensor_example(payload, kind)
    if info.get("type") not in (None, "dataframe"):
        raise MalformedModelError(f"{path}: input example type {info.get('type')!r} is not supported")
    inputs = getattr(model.signature, "inputs", None)
    df = decode_json_columns(_frame_from_split(payload, path), inputs, cast_numbers=False)
    return _restore_kind(df, kind)


def _restore_kind(df: pd.DataFrame, kind: str | None) -> Any:
    if kind == "record":
        return {k: v[0] for k, v in df.to_dict(orient="list").items()}
    if kind == "dict":
        return df.to_dict(orient="list")
    if kind == "records":
        return df.to_dict(orient="records")
    if kind == "list":
        return df.values.tolist() if df.shape[1] > 1 else df.iloc[:, 0].tolist()
    if kind == "series":
        return df.iloc[:, 0]
    return df
