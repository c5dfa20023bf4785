"""What a model's output must be, whatever path scored it (pyfunc, spark_udf, the CLI, the server).

- **One row per input row.** Fewer or more is a :class:`~spark_models.exceptions.ModelOutputError`
  naming both counts.
- **Alignment.** A pandas output whose index is a permutation of the input's index (a model that
  sorted or grouped its input) is put back in the input's order by label; any other output is
  taken by position. An output with a fresh ``0..n-1`` index when the input's index is something
  else counts as positional (its labels were never the input's). Either way the result carries
  the input's index, so label and position agree downstream.
- **No rows in, no model call.** 0 input rows give an empty result shaped by the signature's
  outputs (a float64 Series without them), as spark_udf returns no rows for an empty partition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from spark_models.exceptions import ModelOutputError


def row_count(data: Any) -> int | None:
    """Rows of model input or output (None when it has no row dimension, e.g. a scalar)."""
    if isinstance(data, (pd.DataFrame, pd.Series)):
        return len(data)
    if isinstance(data, dict):
        counts = {row_count(v) for v in data.values()}
        return counts.pop() if len(counts) == 1 else None
    if isinstance(data, np.ndarray):
        return data.shape[0] if data.ndim else None
    if isinstance(data, (list, tuple)):
        return len(data)
    return None


def check_row_count(output: Any, expected: int, model: str = "The model") -> None:
    """Raise unless ``output`` has ``expected`` rows. Only tables and arrays have rows: a dict of
    arrays is checked array by array; a scalar or a dict of other things is not checked here."""
    if isinstance(output, dict):
        counts = {k: row_count(v) for k, v in output.items()}
        if None in counts.values():
            return
        bad = {k: n for k, n in counts.items() if n != expected}
        if bad:
            raise ModelOutputError(f"{model} returned {bad} rows per output for {expected} input rows; "
                                   "scoring must return one row per input row")
        return
    got = row_count(output)
    if got is not None and got != expected:
        raise ModelOutputError(f"{model} returned {got} rows for {expected} input rows; "
                               "scoring must return one row per input row")


def _is_fresh_range(index: pd.Index) -> bool:
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1


def align_output(output: Any, model_input: Any) -> Any:
    """``output`` in the input's row order (see the module docstring), with the input's index."""
    if not isinstance(output, (pd.Series, pd.DataFrame)) or not isinstance(model_input, (pd.DataFrame, pd.Series)):
        return output
    source, result = model_input.index, output.index
    if result.equals(source):
        return output
    if len(result) != len(source):
        return output  # check_row_count reports it
    permuted = (source.is_unique and result.is_unique and bool(result.isin(source).all())
                and not (_is_fresh_range(result) and not _is_fresh_range(source)))
    return output.loc[source] if permuted else output.set_axis(source, axis=0)


def note_missing_values(error: BaseException, model_input: Any) -> None:
    """Add to a model's exception which input columns held how many missing values."""
    if not isinstance(model_input, pd.DataFrame) or not hasattr(error, "add_note"):
        return
    counts = model_input.isna().sum()
    held = [f"{name}: {int(n)} of {len(model_input)}" for name, n in counts.items() if n]
    if held:
        error.add_note(f"the input held missing values, {', '.join(held)} rows; they reach the model as NaN, "
                       "pd.NA (nullable Int64/boolean), None or NaT")


def empty_output(signature: Any) -> Any:
    """The result of scoring 0 rows: the signature's outputs with no rows."""
    outputs = getattr(signature, "outputs", None)
    if outputs is None or not outputs.inputs:
        return pd.Series([], dtype=np.float64)
    if outputs.is_tensor_spec():
        arrays = {spec.name: np.empty((0, *[max(d, 0) for d in (spec.shape or (-1,))[1:]]), dtype=spec.dtype)
                  for spec in outputs.inputs}
        return arrays if outputs.has_input_names() and len(arrays) > 1 else next(iter(arrays.values()))
    names = outputs.input_names()
    columns = {name: pd.Series([], dtype=spec.type.to_numpy()) for name, spec in zip(names, outputs.inputs)}
    if len(columns) == 1:
        return next(iter(columns.values())).rename(outputs.inputs[0].name)
    return pd.DataFrame(columns)
