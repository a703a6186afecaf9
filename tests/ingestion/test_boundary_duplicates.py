"""The boundary quarantines a key sent twice for the same update with different values (keeping the
first), and lets exact repeats and genuine updates through."""

from __future__ import annotations

import pyarrow as pa

from ingestion import boundary
from ingestion.registry import RestEndpoint


def _process(rows: list[dict]) -> boundary.BoundaryResult:
    spec = RestEndpoint(name="orders", path="/orders", primary_key="order_no", cursor_field="updated_at",
                        required=["order_no"])
    return boundary.process(pa.Table.from_pylist(rows), spec, "test", boundary.Protector(store_identities=False))


def test_conflicting_repeat_is_quarantined_and_the_first_kept():
    result = _process([
        {"order_no": "A", "updated_at": "2026-10-01T08:00:00+08:00", "category_code": "CX0101"},
        {"order_no": "A", "updated_at": "2026-10-01T08:00:00+08:00", "category_code": "JT0301"},  # conflict
        {"order_no": "A", "updated_at": "2026-10-01T08:00:00+08:00", "category_code": "CX0101"},  # exact repeat
        {"order_no": "A", "updated_at": "2026-10-02T09:00:00+08:00", "category_code": "JT0301"},  # an update
        {"order_no": "B", "updated_at": "2026-10-01T08:00:00+08:00", "category_code": "GY0201"},
    ])
    assert result.received == 5 and result.loaded == 4 and result.quarantined == 1
    assert result.quarantine.column("reason").to_pylist() == [
        "conflicting duplicate: order_no=A, updated_at=2026-10-01T08:00:00+08:00 sent again with different values"]
    assert result.clean.column("category_code").to_pylist() == ["CX0101", "CX0101", "JT0301", "GY0201"]


def test_no_duplicates_no_quarantine():
    result = _process([{"order_no": str(i), "updated_at": "2026-10-01T08:00:00+08:00"} for i in range(100)])
    assert result.quarantined == 0 and result.loaded == 100
