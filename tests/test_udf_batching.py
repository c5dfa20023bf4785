"""Re-batching between Spark's Arrow batches and model.predict calls (no Spark needed)."""

import numpy as np
import pandas as pd
import pytest

from udf.batching import fixed_batches, merged_batches, model_batches


def _batches(sizes):
    start = 0
    for n in sizes:
        yield pd.DataFrame({"x": np.arange(start, start + n), "s": [str(i) for i in range(start, start + n)]})
        start += n


@pytest.mark.parametrize("sizes", [[10, 10, 3], [0, 5, 0, 0, 17, 1], [1] * 30, [100], [], [0, 0]])
@pytest.mark.parametrize("batch_size", [1, 4, 7, 10, 250])
def test_fixed_batches_keep_rows_in_order_and_sizes_exact(sizes, batch_size):
    out = list(fixed_batches(_batches(sizes), batch_size))
    total = sum(sizes)
    assert [len(f) for f in out] == [batch_size] * (total // batch_size) + ([total % batch_size] if total % batch_size else [])
    rows = pd.concat(out, ignore_index=True) if out else pd.DataFrame({"x": []})
    assert rows["x"].tolist() == list(range(total))
    assert all(f.index.tolist() == list(range(len(f))) for f in out)


@pytest.mark.parametrize("sizes", [[10, 10, 3], [0, 5, 0, 0, 17, 1], [1] * 30, [100], []])
def test_merged_batches_concatenate_up_to_the_row_limit(sizes):
    out = list(merged_batches(_batches(sizes), max_rows=12))
    assert [x for f in out for x in f["x"]] == list(range(sum(sizes)))
    assert all(len(f) > 0 for f in out)
    assert all(len(f) < 12 + max(sizes) for f in out)  # never more than one batch past the limit
    assert len(out) <= -(-sum(sizes) // 12) + 1


def test_merged_batches_respect_the_byte_limit():
    out = list(merged_batches(_batches([10] * 10), max_rows=10**6, max_bytes=10 * 8 * 2 * 3))
    assert [len(f) for f in out] == [30, 30, 30, 10]


def test_default_merges_spark_sized_batches():
    assert [len(f) for f in model_batches(_batches([10_000] * 25), None)] == [100_000, 100_000, 50_000]
    assert [len(f) for f in model_batches(_batches([10_000] * 3), 4_096)] == [4_096] * 7 + [1_328]
