"""The contract between connectors and the ingestion framework.

A connector is an *extractor*: a plain generator `extract(entry, state) -> Iterator[Batch]` that
reads a department system and yields raw records as the system sent them. It knows nothing of
dlt, quarantine, personal data or counting; the framework (ingestion.pipeline) does those at the
boundary. `state` is a dict that survives between runs and is committed together with the load
(dlt resource state): the extractor keeps its cursors or file ledger there and must only advance
them for records it has yielded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from ingestion.registry import SourceEntry


@dataclass
class Batch:
    table: str  # the TableSpec name in the registry entry
    rows: list[dict] | pa.Table
    origin: str  # where the records came from (page, file, query): kept with quarantined records


@dataclass
class Rejected:
    """A whole unit (file, page) that could not be read; reported and counted, never silently lost."""

    table: str
    origin: str
    reason: str
    records: int = 0  # how many records it held, when known


Extractor = Callable[[SourceEntry, dict], Iterator[Batch | Rejected]]


def row_count(rows: list[dict] | pa.Table) -> int:
    return rows.num_rows if isinstance(rows, pa.Table) else len(rows)


def as_text(value) -> str | None:
    """Raw-layer rendering of a JSON value: text as is, scalars as JSON text, lists/objects as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def text_table(rows: list[dict]) -> pa.Table:
    """All-text Arrow table over the union of the rows' keys (first-seen order): the raw layer keeps
    values as sent, so a type change in a source cannot break a load."""
    columns: dict[str, None] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, None)
    return pa.table({name: pa.array([as_text(row.get(name)) for row in rows], type=pa.string())
                     for name in columns})
