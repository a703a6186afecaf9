"""An Open311 GeoReport v2 read API over the published open dataset (<published>/open/work_orders/, month parts).

    GET /open311/v2/services.{json,xml}
    GET /open311/v2/requests.{json,xml}     service_request_id (comma list; overrides the other filters),
                                            service_code (comma list), start_date, end_date, status
                                            (open, closed or both), and the common page/page_size extension
    GET /open311/v2/requests/{id}.{json,xml}

Mapping: a service is a level-3 category (问题分类, group = level 1); a service request is a work
order: service_request_id = 工单编号, status closed once 办结, agency_responsible = the lead unit,
expected_datetime = 办理时限, address = 区 街道 社区 (never finer: the dataset is coarsened), no
coordinates. Times are ISO-8601 with the +08:00 offset. Dates given without an offset are Beijing time.

Window: requests are filtered on requested_datetime. With no dates the window is the 90 days up to
the newest published request (the published data lags the calendar, so "now" would often be
empty); with only one date it extends 90 days from it; a range may not span more than 90 days. At
most 1000 requests per answer (page_size ≤ 1000, default 1000), oldest first.
Errors follow the spec: a list of {code, description} (XML: <errors><error>...).

The dataset is read into an in-memory DuckDB at start and re-read when the file changes (the open
data publication replaces it atomically), so the API never holds the warehouse.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import duckdb

from citizen_voice import settings, warehouse

log = logging.getLogger(__name__)

BASE_PATH = "/open311/v2"
CHINA_TZ = timezone(timedelta(hours=8))
WINDOW = timedelta(days=90)
MAX_REQUESTS = 1000
JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "text/xml; charset=utf-8"
DEMAND_TYPES = {"ZX": "咨询", "QZ": "求助", "TS": "投诉", "JB": "举报", "JY": "建议", "BY": "表扬", "WX": "无效"}
STATUS_LABELS = {"accepted": "已受理", "handling": "办理中", "closed": "已办结", "visited": "已回访"}
HOTLINE_AGENCY = "12345热线"
_PATH = re.compile(r"/open311/v2/(?P<resource>services|requests)(?:/(?P<id>[^/]+?))?(?:\.(?P<format>json|xml))?")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class ApiError(Exception):
    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str


def default_dataset() -> Path:
    """The open dataset's month parts (open/work_orders/month=YYYY-MM/part.parquet)."""
    return settings.published_dir() / "open" / "work_orders"


def iso(value: datetime | date | None) -> str | None:
    """ISO-8601 with the Beijing offset (the published times are Beijing wall-clock times)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=CHINA_TZ).isoformat()


def parse_time(name: str, text: str) -> datetime:
    """An ISO-8601 query value as a naive Beijing time (what the dataset holds); else 400."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO-8601 datetime such as 2026-10-01T00:00:00+08:00, "
                            f"got {text!r}") from None
    if value.tzinfo is not None:
        value = value.astimezone(CHINA_TZ).replace(tzinfo=None)
    return value


def comma_list(query: dict[str, str], name: str) -> list[str]:
    return [v.strip() for v in query.get(name, "").split(",") if v.strip()]


def positive_int(query: dict[str, str], name: str, default: int, maximum: int | None = None) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1 or (maximum is not None and int(text) > maximum):
        bound = f" and at most {maximum}" if maximum else ""
        raise ApiError(400, f"{name} must be an integer of at least 1{bound}, got {text!r}")
    return int(text)


def render(items: list[dict[str, Any]], fmt: str, root_tag: str, item_tag: str, status: int = 200) -> Answer:
    if fmt == "json":
        return Answer(status, json.dumps(items, ensure_ascii=False).encode(), JSON_TYPE)
    root = ET.Element(root_tag)
    for item in items:
        element = ET.SubElement(root, item_tag)
        for name, value in item.items():
            child = ET.SubElement(element, name)
            if value is not None:
                text = ("true" if value else "false") if isinstance(value, bool) else str(value)
                child.text = _XML_ILLEGAL.sub("", text)
    return Answer(status, ET.tostring(root, encoding="utf-8", xml_declaration=True), XML_TYPE)


def error_answer(error: ApiError, fmt: str) -> Answer:
    return render([{"code": error.status, "description": error.description}], fmt, "errors", "error", error.status)


class OpenDataset:
    """The open work-order dataset in an in-memory DuckDB, re-read when the file changes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stamp: tuple[int, int] | None = None
        self.columns: set[str] = set()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                raise ApiError(503, "the open dataset has not been published yet") from None
            stamp = (stat.st_ino, stat.st_mtime_ns)  # a folder is new (another inode) with each publication
            if stamp != self._stamp:
                con = warehouse.scratch_connection()
                source = self.path / "month=*" / "part.parquet" if self.path.is_dir() else self.path
                literal = str(source).replace("'", "''")
                con.execute(f"create table requests as select * from read_parquet('{literal}', hive_partitioning = false)")
                self.columns = {r[0] for r in con.execute("describe requests").fetchall()}
                if self._con is not None:
                    self._con.close()
                self._con, self._stamp = con, stamp
                log.info("open dataset loaded from %s", self.path)
            return self._con.cursor()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = self._stamp = None


def _rows(cursor: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict[str, Any]]:
    result = cursor.execute(sql, params)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def service_item(row: dict[str, Any]) -> dict[str, Any]:
    path = [row.get("category_l1_name"), row.get("category_l2_name"), row.get("category_name")]
    return {
        "service_code": row["category_code"],
        "service_name": row.get("category_name") or row["category_code"],
        "description": " / ".join(p for p in path if p),
        "metadata": False,
        "type": "realtime",
        "keywords": ",".join(p for p in path[:2] if p),
        "group": row.get("category_l1_name"),
    }


def request_item(row: dict[str, Any]) -> dict[str, Any]:
    closed = bool(row.get("is_closed"))
    notes = [STATUS_LABELS.get(row.get("status"), row.get("status"))]
    if closed:
        notes += [row.get("resolution"), row.get("satisfaction")]
    place = [row.get("district_name"), row.get("street_name"), row.get("community_name")]
    category = " / ".join(p for p in (row.get("category_l1_name"), row.get("category_l2_name"),
                                      row.get("category_name")) if p)
    demand = DEMAND_TYPES.get(row.get("demand_type_code"), row.get("demand_type_code"))
    times = [t for t in (row.get("received_at"), row.get("closed_at"), row.get("visited_at")) if t is not None]
    limit = row.get("time_limit_working_days")
    return {
        "service_request_id": row["order_no"],
        "status": "closed" if closed else "open",
        "status_notes": "；".join(n for n in notes if n),
        "service_name": row.get("category_name") or row["category_code"],
        "service_code": row["category_code"],
        "description": "：".join(p for p in (demand, category) if p),
        "agency_responsible": row.get("department_name") or HOTLINE_AGENCY,
        "service_notice": f"办理时限 {limit} 个工作日" if limit else None,
        "requested_datetime": iso(row["received_at"]),
        "updated_datetime": iso(max(times)) if times else None,
        "expected_datetime": iso(row.get("due_at")),
        "address": " ".join(p for p in place if p) or None,
        "address_id": row.get("community_code") or row.get("street_code"),
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


class Open311Api:
    """`with Open311Api(port=0) as api: api.endpoint` — the API on 127.0.0.1 in a background thread."""

    def __init__(self, dataset: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.dataset = OpenDataset(Path(dataset) if dataset else default_dataset())
        self.host, self.requested_port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Open311Api:
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer((self.host, self.requested_port), _Handler)
            self._httpd.daemon_threads = True
            self._httpd.api = self
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"open311:{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
            self._httpd = self._thread = None
        self.dataset.close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI)."""
        self.start()
        try:
            self._thread.join()
        finally:
            self.stop()

    def __enter__(self) -> Open311Api:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}{BASE_PATH}"

    # --- requests ----------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict[str, str]) -> Answer:
        fmt = "xml" if path.endswith(".xml") else "json"
        try:
            if method != "GET":
                raise ApiError(405, f"method {method} not allowed: this is a read-only API")
            match = _PATH.fullmatch(path)
            if match is None:
                raise ApiError(404, f"no endpoint {path}; see {BASE_PATH}/services.json and {BASE_PATH}/requests.json")
            fmt = match["format"] or "json"
            if match["resource"] == "services":
                if match["id"] is not None:
                    raise ApiError(404, "services have no metadata (metadata is false)")
                return render(self.services(), fmt, "services", "service")
            if match["id"] is not None:
                request_id = unquote(match["id"])
                items = self.requests({"service_request_id": request_id})
                if not items:
                    raise ApiError(404, f"no service request {request_id}")
                return render(items, fmt, "service_requests", "request")
            return render(self.requests(query), fmt, "service_requests", "request")
        except ApiError as error:
            return error_answer(error, fmt)
        except Exception:
            log.exception("Open311 API failed on %s", path)
            return error_answer(ApiError(500, "internal error"), fmt)

    def services(self) -> list[dict[str, Any]]:
        cursor = self.dataset.cursor()
        wanted = [c for c in ("category_l1_name", "category_l2_name", "category_name") if c in self.dataset.columns]
        names = "".join(f", any_value({c}) as {c}" for c in wanted)
        rows = _rows(cursor, f"select category_code{names} from requests group by category_code order by 1", [])
        return [service_item(row) for row in rows]

    def requests(self, query: dict[str, str]) -> list[dict[str, Any]]:
        page_size = positive_int(query, "page_size", MAX_REQUESTS, MAX_REQUESTS)
        page = positive_int(query, "page", 1)
        cursor = self.dataset.cursor()
        ids = comma_list(query, "service_request_id")
        if ids:  # the standard: ids override every other filter
            conditions, params = [f"order_no in ({', '.join('?' * len(ids))})"], list(ids)
        else:
            conditions, params = self._search(cursor, query)
        sql = (f"select * from requests where {' and '.join(conditions)} "
               f"order by received_at, order_no limit {page_size} offset {(page - 1) * page_size}")
        return [request_item(row) for row in _rows(cursor, sql, params)]

    def _search(self, cursor: duckdb.DuckDBPyConnection, query: dict[str, str]) -> tuple[list[str], list]:
        start = parse_time("start_date", query["start_date"]) if query.get("start_date") else None
        end = parse_time("end_date", query["end_date"]) if query.get("end_date") else None
        if start is None and end is None:
            end = cursor.execute("select max(received_at) from requests").fetchall()[0][0] or datetime.now()
        if end is None:
            end = start + WINDOW
        if start is None:
            start = end - WINDOW
        if end < start:
            raise ApiError(400, "end_date is before start_date")
        if end - start > WINDOW:
            raise ApiError(400, "start_date and end_date may not span more than 90 days")
        conditions, params = ["received_at >= ?", "received_at <= ?"], [start, end]
        statuses = comma_list(query, "status")
        if set(statuses) - {"open", "closed"}:
            raise ApiError(400, f"status must be open, closed or both (comma separated), got {query['status']!r}")
        if len(set(statuses)) == 1:
            conditions.append("coalesce(is_closed, false) = ?")
            params.append(statuses[0] == "closed")
        codes = comma_list(query, "service_code")
        if codes:
            conditions.append(f"category_code in ({', '.join('?' * len(codes))})")
            params += codes
        return conditions, params


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    server: ThreadingHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        answer = self.server.api.answer("GET" if method == "HEAD" else method, url.path, dict(parse_qsl(url.query)))
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Access-Control-Allow-Origin", "*")  # public data for browser dashboards
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(answer.body)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
