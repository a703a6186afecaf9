"""The suites' memory stays bounded: nothing of a validated chunk outlives it."""

from __future__ import annotations

import gc

import pandas as pd
import pyarrow as pa

from expectations.runner import _failing_rows


def test_a_chunk_without_failures_is_not_kept_alive_by_its_empty_failing_rows():
    frame = pd.DataFrame({"record_key": pd.array([f"r{i}" for i in range(200_000)], dtype="str"),
                          "note": pd.array(["某某小区噪音扰民" * 4] * 200_000, dtype="str")})
    gc.collect()
    with_frame = pa.total_allocated_bytes()
    kept = _failing_rows(frame, [])
    del frame
    gc.collect()
    freed = with_frame - pa.total_allocated_bytes()
    assert kept.empty and list(kept.columns) == ["record_key", "note"]
    assert str(kept["note"].dtype) == "str"
    assert freed > 10_000_000  # the chunk's Arrow buffers (~20 MB) are released, not held by the empty result
