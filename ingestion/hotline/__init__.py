"""dlt source for the central 12345 work-order system (JSON API with cursor pagination).

Incremental on the API's update time with a lookback window, merged on the primary key: a
re-read of the lookback window replaces rows instead of duplicating them, and late status
updates are caught. The cursor lives in dlt's resource state, which is committed together with
the load. Records without an id cannot be merged; they go to `orders_quarantine` with the reason.
Pages are handed to dlt as Arrow tables (dlt's fast path); the raw layer keeps values as sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import dlt
import pyarrow as pa

from ingestion.http import JsonApiClient

DEFAULT_LOOKBACK_DAYS = 3.0
PAGE_SIZE = 1000
QUARANTINE_SCHEMA = pa.schema([("record_hash", pa.string()), ("reason", pa.string()), ("updated_at", pa.string()), ("payload", pa.string())])


def _pages(client: JsonApiClient, path: str, updated_since: str | None) -> Iterator[list[dict]]:
    params: dict = {"page_size": PAGE_SIZE}
    if updated_since:
        params["updated_since"] = updated_since
    while True:
        body = client.get(path, params)
        yield body["data"]
        if not body.get("next_cursor"):
            return
        params = {"page_size": PAGE_SIZE, "cursor": body["next_cursor"]}


def _incremental_pages(client: JsonApiClient, path: str, cursor_field: str, lookback: timedelta):
    """Pages updated since the last committed cursor minus the lookback; advances the cursor."""
    state = dlt.current.resource_state()
    last = state.get("last_value")
    since = (datetime.fromisoformat(last) - lookback).isoformat() if last else None
    newest = last
    for page in _pages(client, path, since):
        for row in page:
            value = row.get(cursor_field)
            if value and (newest is None or datetime.fromisoformat(value) > datetime.fromisoformat(newest)):
                newest = value
        yield page
    state["last_value"] = newest


def _flatten(row: dict) -> dict:
    """Keep the raw layer flat: lists become comma-separated text."""
    codes = row.get("assist_dept_codes")
    if isinstance(codes, list):
        row = {**row, "assist_dept_codes": ",".join(codes) or None}
    return row


def _quarantined(row: dict, reason: str) -> dict:
    payload = json.dumps(row, ensure_ascii=False, sort_keys=True)
    return {"record_hash": hashlib.sha256(payload.encode()).hexdigest(), "reason": reason,
            "updated_at": row.get("updated_at"), "payload": payload}


@dlt.source(name="raw_hotline", max_table_nesting=0)
def hotline_source(base_url: str, token: str, lookback_days: float = DEFAULT_LOOKBACK_DAYS):
    client = JsonApiClient(base_url, headers={"Authorization": f"Bearer {token}"})
    lookback = timedelta(days=lookback_days)

    @dlt.resource(name="order_pages", selected=False)
    def order_pages():
        yield from _incremental_pages(client, "/api/v1/orders", "updated_at", lookback)

    @dlt.transformer(data_from=order_pages, name="orders", primary_key="order_no", write_disposition="merge")
    def orders(page: list[dict]):
        good = [_flatten(row) for row in page if row.get("order_no")]
        if good:
            yield pa.Table.from_pylist(good)

    @dlt.transformer(data_from=order_pages, name="orders_quarantine", primary_key="record_hash",
                     write_disposition="merge")
    def orders_quarantine(page: list[dict]):
        bad = [_quarantined(row, "missing order_no") for row in page if not row.get("order_no")]
        if bad:
            yield pa.Table.from_pylist(bad, schema=QUARANTINE_SCHEMA)

    @dlt.resource(name="events", primary_key="event_id", write_disposition="merge")
    def events():
        for page in _incremental_pages(client, "/api/v1/events", "recorded_at", lookback):
            if page:
                yield pa.Table.from_pylist(page)

    return order_pages, orders, orders_quarantine, events
