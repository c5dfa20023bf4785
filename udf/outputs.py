"""A model's whole output → the UDF's result: picks the conversion for the result type.

Scalars and arrays of scalars: :mod:`udf.coercion`; structs, maps, ML vectors and arrays of
those: :mod:`udf.nested_outputs`.
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd
from pyspark.sql import types as T

from udf.coercion import as_frame, check_dimensions, check_rows, coerce_array, convert, fast_vector, no_fit, select_columns
from udf.nested_outputs import coerce_nested, handles
from udf.plan import Kind


def coerce_output(output: Any, dt: T.DataType, expected_rows: int,
                  declared: Mapping[Any, Kind] | None = None) -> pd.Series | pd.DataFrame:
    """Model output → a Series (a DataFrame for structs) of ``dt`` with ``expected_rows`` rows.

    ``declared`` maps output names (None: a single unnamed output) to the selection type the
    signature declares; it wins over the column's dtype when choosing columns.
    """
    check_dimensions(output)
    fast = fast_vector(output, dt, expected_rows)
    if fast is not None:
        return fast
    if handles(dt):  # structs, maps, ML vectors, arrays of those: udf.nested_outputs
        return coerce_nested(output, dt, expected_rows, declared)
    frame = as_frame(output).reset_index(drop=True)
    check_rows(len(frame), expected_rows)
    if isinstance(dt, T.ArrayType):
        return coerce_array(frame, dt, declared)
    picked, _ = select_columns(frame, dt, declared)
    if not picked:
        raise no_fit(frame, dt, declared)
    name, kind = picked[0]
    return convert(frame[name], dt, kind)
