"""An Open311 GeoReport v2 endpoint over `open311.sqlite` (the city app's public 311 API).

    GET /open311/v2/services.{json,xml}
    GET /open311/v2/requests.{json,xml}      start_date, end_date, status, service_code,
                                             service_request_id, page, page_size
    GET /open311/v2/requests/{id}.{json,xml}

Requests are listed by requested_datetime ascending. Without dates the window is the 90 days
before the clock; with no clock (`as_of` None) it is the 90 days up to the newest request, so a
static store stays queryable. Times are rendered in UTC with "Z", like the stored requested_datetime.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote

from simulator.servers.base import (
    JSON_TYPE,
    HttpError,
    Request,
    Response,
    SandboxServer,
    datetime_param,
    int_param,
    render_utc,
)

BASE_PATH = "/open311/v2"
WINDOW_SECONDS = 90 * 86400
MAX_PAGE_SIZE = 1000
XML_TYPE = "application/xml; charset=utf-8"

# Characters XML 1.0 forbids; a store value containing one would make the whole document unreadable.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_PATH = re.compile(
    r"/open311/v2/(?P<resource>services|requests)(?:/(?P<id>[^/]+?))?(?:\.(?P<format>json|xml))?"
)

# Closed once the close has happened and has reached the system (late updates arrive later).
_CLOSED = "(r.closed_ts <= :visible_until AND COALESCE(r.recorded_closed_ts, r.closed_ts) <= :visible_until)"
_REQUESTS_SELECT = f"""
    SELECT r.*, s.service_name, CASE WHEN {_CLOSED} THEN 'closed' ELSE 'open' END AS status
    FROM requests r LEFT JOIN services s ON s.service_code = r.service_code
    WHERE r.requested_ts <= :visible_until
"""


def _service_item(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "service_code": row["service_code"],
        "service_name": row["service_name"],
        "description": row["description"],
        "metadata": False,
        "type": "realtime",
        "keywords": row["keywords"],
        "group": row["group"],
    }


def _request_item(row: sqlite3.Row) -> dict[str, Any]:
    closed = row["status"] == "closed"
    return {
        "service_request_id": row["service_request_id"],
        "status": row["status"],
        "status_notes": row["closed_status_notes"] if closed else None,
        "service_name": row["service_name"],
        "service_code": row["service_code"],
        "description": row["description"],
        "agency_responsible": row["agency_responsible"],
        "service_notice": None,
        "requested_datetime": row["requested_datetime"],
        "updated_datetime": render_utc(row["closed_ts"]) if closed else row["requested_datetime"],
        "expected_datetime": row["expected_datetime"],
        "address": row["address"],
        "address_id": None,
        "zipcode": row["zipcode"],
        "lat": row["lat"],
        "long": row["long"],
        "media_url": None,
    }


def _xml_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_ILLEGAL.sub("", str(value))


def render(items: list[dict[str, Any]], fmt: str, root_tag: str, item_tag: str) -> Response:
    """A GeoReport v2 list: a JSON array, or <root_tag><item_tag>...</item_tag></root_tag>."""
    if fmt != "xml":
        return Response(200, json.dumps(items, ensure_ascii=False).encode(), JSON_TYPE)
    root = ET.Element(root_tag)
    for item in items:
        element = ET.SubElement(root, item_tag)
        for name, value in item.items():
            ET.SubElement(element, name).text = _xml_text(value)
    return Response(200, ET.tostring(root, encoding="utf-8", xml_declaration=True), XML_TYPE)


def _comma_list(query: dict[str, str], name: str) -> list[str]:
    return [value.strip() for value in query.get(name, "").split(",") if value.strip()]


def _in_list(column: str, values: list[str], params: dict[str, Any]) -> str:
    """`column IN (...)`, binding the values as new entries of `params`."""
    names = [f"v{len(params) + i}" for i in range(len(values))]
    params.update(zip(names, values, strict=True))
    return f"{column} IN ({', '.join(':' + name for name in names)})"


class Open311Server(SandboxServer):
    """Open311 GeoReport v2 over `open311.sqlite`; `endpoint` is the base URL clients append to."""

    @property
    def endpoint(self) -> str:
        return self.url + BASE_PATH

    def authenticate(self, request: Request) -> str:
        return request.query.get("api_key", "anonymous")  # reads need no key; a key is a rate-limit client

    def error_response(self, request: Request, error: HttpError) -> Response:
        response = render(
            [{"code": error.status, "description": error.message}], _format(request), "errors", "error"
        )
        response.status, response.headers = error.status, error.headers
        return response

    def route(self, request: Request) -> Response:
        match = _PATH.fullmatch(request.path)
        if match is None:
            raise HttpError(404, f"no endpoint {request.path}")
        fmt = match["format"] or "json"
        if match["resource"] == "services":
            if match["id"] is not None:
                raise HttpError(404, "services have no metadata (metadata is false)")
            return render(self._services(), fmt, "services", "service")
        if match["id"] is not None:
            service_request_id = unquote(match["id"])
            items = self._requests({"service_request_id": service_request_id})
            if not items:
                raise HttpError(404, f"no service request {service_request_id}")
            return render(items, fmt, "service_requests", "request")
        return render(self._requests(request.query), fmt, "service_requests", "request")

    def _services(self) -> list[dict[str, Any]]:
        with self.read_store() as conn:
            return [
                _service_item(row) for row in conn.execute("SELECT * FROM services ORDER BY service_code")
            ]

    def _requests(self, query: dict[str, str]) -> list[dict[str, Any]]:
        page_size = int_param(query, "page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        page = int_param(query, "page", 1)
        params: dict[str, Any] = {"visible_until": self.visible_until}
        with self.read_store() as conn:
            ids = _comma_list(query, "service_request_id")
            if ids:  # per the standard, ids override every other filter
                conditions = [_in_list("service_request_id", ids, params)]
            else:
                conditions = self._search_conditions(conn, query, params)
            sql = (
                f"SELECT * FROM ({_REQUESTS_SELECT}) WHERE {' AND '.join(conditions)}"
                f" ORDER BY requested_ts, service_request_id LIMIT {page_size} OFFSET {(page - 1) * page_size}"
            )
            return [_request_item(row) for row in conn.execute(sql, params)]

    def _search_conditions(
        self, conn: sqlite3.Connection, query: dict[str, str], params: dict[str, Any]
    ) -> list[str]:
        start, end = datetime_param(query, "start_date"), datetime_param(query, "end_date")
        if start is None and end is None:
            end = self._newest_time(conn)
        if end is None:
            end = start + WINDOW_SECONDS
        if start is None:
            start = end - WINDOW_SECONDS
        if end < start:
            raise HttpError(400, "end_date is before start_date")
        if end - start > WINDOW_SECONDS:
            raise HttpError(400, "start_date and end_date may not span more than 90 days")
        params.update(start=start, end=end)
        conditions = ["requested_ts >= :start", "requested_ts <= :end"]

        statuses = _comma_list(query, "status")
        if set(statuses) - {"open", "closed"}:
            raise HttpError(
                400, f"status must be open, closed or both (comma separated), got {query['status']!r}"
            )
        if statuses:
            conditions.append(_in_list("status", statuses, params))
        service_codes = _comma_list(query, "service_code")
        if service_codes:
            conditions.append(_in_list("service_code", service_codes, params))
        return conditions

    def _newest_time(self, conn: sqlite3.Connection) -> float:
        """The clock, or with no clock the newest request (else now): the default window's end."""
        if self.as_of is not None:
            return self.as_of
        newest = conn.execute("SELECT MAX(requested_ts) FROM requests").fetchone()[0]
        return time.time() if newest is None else newest


def _format(request: Request) -> str:
    return "xml" if request.path.endswith(".xml") else "json"
