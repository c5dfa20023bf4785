"""What the driver decides and every task needs: one frozen, picklable :class:`ScoringPlan`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Tuple

Kind = Tuple[str, int]
"""A column's type for selecting outputs: (``i``/``u``/``f``/``b``/``s``/``o``/``null``, bits; 0: any width)."""

UNNAMED_TENSOR = "_tensor_"


@dataclass(frozen=True)
class TensorInput:
    """One tensor input: the column carrying it, and the dtype and shape to reshape it to."""

    column: str
    dtype: str
    shape: Tuple[int, ...]


@dataclass(frozen=True)
class ScoringPlan:
    """The model to load and how to score it, decided on the driver.

    ``model_key`` is the content hash of the shipped model directory and ``archive`` its file
    name in SparkFiles; ``local_dir`` is set in local mode (workers read it in place while it
    still hashes to ``model_key``). ``declared_outputs`` maps output names (None: the single
    unnamed output) to the selection type the signature declares. ``column_names`` names the
    UDF's argument columns (None: one struct argument carries them); ``flatten``: a single
    argument that arrives as a struct hands the model its fields.
    """

    model_key: str
    archive: str
    local_dir: Optional[str]
    model_uri: str
    result_type: Any
    params: Optional[Mapping[str, Any]] = None
    batch_size: Optional[int] = None
    tensors: Tuple[TensorInput, ...] = ()
    declared_outputs: Optional[Mapping[Optional[str], Kind]] = None
    column_names: Optional[Tuple[str, ...]] = None
    flatten: bool = True
    allow_code: bool = True
    model_config: Optional[Mapping[str, Any]] = None  # passed to the workers' loader
    vector_columns: Optional[Tuple[str, ...]] = None  # the model's n double columns, to fill from one ML vector
    env: Any = None  # an udf.environments.EnvPlan: score in the model's own environment (None: this one)

    def bound(self, names: list[str] | None, flatten: bool = False) -> "ScoringPlan":
        """This plan with the UDF's argument columns named (see the class docstring)."""
        return replace(self, column_names=None if names is None else tuple(names), flatten=flatten or names is None)
