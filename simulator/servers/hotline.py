"""The central 12345 work-order system: a bearer-token JSON API over `hotline.sqlite`.

    GET /api/v1/orders                 orders as of their latest visible version
    GET /api/v1/orders/{order_no}      one order
    GET /api/v1/events                 the lifecycle event log

Lists filter with `updated_since` (inclusive) and page either by cursor (`page_size`, then
`cursor=<next_cursor>`) or by page number (`page`, `page_size`); both follow the recorded time.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from simulator.servers.base import (
    HttpError,
    Request,
    Response,
    SandboxServer,
    datetime_param,
    int_param,
    json_response,
    render_local,
)

DEFAULT_SANDBOX_TOKEN = "sandbox-token"
TOKEN_ENV_VAR = "CV_SANDBOX_HOTLINE_TOKEN"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

_ORDER_PATH = re.compile(r"/api/v1/orders/(?P<order_no>[^/]+)")

# One row per order: its latest version recorded at or before the clock. The cursor columns are
# the recorded time and a unique key, so (cursor_ts, cursor_key) orders rows totally.
_ORDERS_SELECT = """
    SELECT o.*, v.recorded_ts AS cursor_ts, v.row_id AS cursor_key,
           v.status, v.lead_dept_code, v.assist_dept_codes, v.is_direct_answer,
           v.due_at, v.closed_at, v.reply_content, v.parent_order_no
    FROM order_versions v JOIN orders o ON o.row_id = v.row_id
    WHERE v.recorded_ts <= :visible_until
      AND NOT EXISTS (
          SELECT 1 FROM order_versions newer
          WHERE newer.row_id = v.row_id
            AND newer.recorded_ts > v.recorded_ts AND newer.recorded_ts <= :visible_until)
"""
_EVENTS_SELECT = """
    SELECT *, recorded_ts AS cursor_ts, event_id AS cursor_key
    FROM events
    WHERE recorded_ts <= :visible_until
"""


def _order_item(row: sqlite3.Row) -> dict[str, Any]:
    item = dict(row)
    for internal in ("row_id", "received_ts", "cursor_ts", "cursor_key"):
        del item[internal]
    assist = item["assist_dept_codes"]
    item["assist_dept_codes"] = [code.strip() for code in assist.split(",") if code.strip()] if assist else []
    if item["is_direct_answer"] is not None:
        item["is_direct_answer"] = bool(item["is_direct_answer"])
    item["updated_at"] = render_local(row["cursor_ts"])
    return item


def _event_item(row: sqlite3.Row) -> dict[str, Any]:
    item = dict(row)
    for internal in ("recorded_ts", "cursor_ts", "cursor_key"):
        del item[internal]
    item["recorded_at"] = render_local(row["recorded_ts"])
    return item


def encode_cursor(ts: int, key: int | str) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts, key]).encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, int | str]:
    try:
        ts, key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(ts, int) or not isinstance(key, int | str):
            raise ValueError
    except ValueError:
        raise HttpError(400, "cursor is not a next_cursor returned by this API") from None
    return ts, key


@dataclass(frozen=True)
class Paging:
    page_size: int
    cursor: tuple[int, int | str] | None = None
    page: int | None = None  # set for page-number paging


def parse_paging(query: dict[str, str]) -> Paging:
    page_size = int_param(query, "page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    page = int_param(query, "page", None)
    if page is not None and "cursor" in query:
        raise HttpError(400, "use either cursor or page, not both")
    cursor = decode_cursor(query["cursor"]) if "cursor" in query else None
    return Paging(page_size, cursor, page)


class HotlineServer(SandboxServer):
    """The 12345 work-order API over `hotline.sqlite`; requests need `Authorization: Bearer <token>`."""

    def __init__(self, store_path, *, token: str = DEFAULT_SANDBOX_TOKEN, **options: Any):
        super().__init__(store_path, **options)
        self.token = token

    def authenticate(self, request: Request) -> str:
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.token.encode()):
            raise HttpError(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})
        return token

    def route(self, request: Request) -> Response:
        if request.path == "/api/v1/orders":
            return self._list(request.query, _ORDERS_SELECT, _order_item)
        if request.path == "/api/v1/events":
            return self._list(request.query, _EVENTS_SELECT, _event_item)
        if match := _ORDER_PATH.fullmatch(request.path):
            return self._get_order(unquote(match["order_no"]))
        raise HttpError(404, f"no endpoint {request.path}")

    def _get_order(self, order_no: str) -> Response:
        # The store may repeat an order_no (a source fault): the most recently updated row wins.
        sql = f"SELECT * FROM ({_ORDERS_SELECT}) WHERE order_no = :order_no ORDER BY cursor_ts DESC, cursor_key DESC"
        with self.read_store() as conn:
            row = conn.execute(sql, {"visible_until": self.visible_until, "order_no": order_no}).fetchone()
        if row is None:
            raise HttpError(404, f"no order {order_no}")
        return json_response(_order_item(row))

    def _list(
        self, query: dict[str, str], select_sql: str, to_item: Callable[[sqlite3.Row], dict]
    ) -> Response:
        paging = parse_paging(query)
        since = datetime_param(query, "updated_since")
        params: dict[str, Any] = {"visible_until": self.visible_until}
        conditions = []
        if since is not None:
            conditions.append("cursor_ts >= :since")
            params["since"] = since
        if paging.cursor is not None:
            conditions.append("(cursor_ts, cursor_key) > (:cursor_ts, :cursor_key)")
            params["cursor_ts"], params["cursor_key"] = paging.cursor
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        filtered = f"SELECT * FROM ({select_sql}) {where}"
        ordered = f"{filtered} ORDER BY cursor_ts, cursor_key LIMIT :limit OFFSET :offset"

        with self.read_store() as conn:
            if paging.page is not None:
                params.update(limit=paging.page_size, offset=(paging.page - 1) * paging.page_size)
                rows = conn.execute(ordered, params).fetchall()
                total = conn.execute(f"SELECT COUNT(*) FROM ({filtered})", params).fetchone()[0]
                return json_response(
                    {
                        "data": [to_item(row) for row in rows],
                        "next_cursor": None,
                        "has_more": paging.page * paging.page_size < total,
                        "page": paging.page,
                        "page_size": paging.page_size,
                        "total": total,
                    }
                )
            # One row more than asked tells whether there is a next page.
            rows = conn.execute(ordered, {**params, "limit": paging.page_size + 1, "offset": 0}).fetchall()
        has_more = len(rows) > paging.page_size
        rows = rows[: paging.page_size]
        next_cursor = encode_cursor(rows[-1]["cursor_ts"], rows[-1]["cursor_key"]) if has_more else None
        return json_response(
            {"data": [to_item(row) for row in rows], "next_cursor": next_cursor, "has_more": has_more}
        )
