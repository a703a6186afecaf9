"""What every sandbox department server shares: an HTTP server on 127.0.0.1 over one read-only
SQLite store, a simulated clock (`as_of`), injectable faults and request statistics.

A subclass implements `route` (and may override `authenticate` and `error_response`); the
`/_sandbox/*` endpoints (clock, faults, stats) are served here, without faults or auth.
"""

from __future__ import annotations

import json
import logging
import math
import random
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

logger = logging.getLogger(__name__)

CHINA_TZ = timezone(timedelta(hours=8))
# Stands in for "no clock": every record is visible. Keeps the SQL free of `IS NULL OR` branches.
END_OF_TIME = 2**62
JSON_TYPE = "application/json; charset=utf-8"


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def parse_datetime(text: str) -> datetime:
    """ISO-8601 with an offset or Z; a naive value is Beijing time. Raises ValueError."""
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo else value.replace(tzinfo=CHINA_TZ)


def to_epoch(value: int | float | str | datetime | None) -> int | None:
    """Epoch seconds (floored) from epoch seconds, an ISO-8601 string or a datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
    if isinstance(value, datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=CHINA_TZ)).timestamp()
    return math.floor(value)


def render_local(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA_TZ).isoformat()


def render_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def int_param(
    query: dict[str, str], name: str, default: int | None, maximum: int | None = None
) -> int | None:
    """A positive integer query parameter (at most `maximum`), else HttpError 400."""
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1 or (maximum is not None and int(text) > maximum):
        limit = f" and at most {maximum}" if maximum else ""
        raise HttpError(400, f"{name} must be an integer of at least 1{limit}, got {text!r}")
    return int(text)


def datetime_param(query: dict[str, str], name: str) -> float | None:
    """An ISO-8601 query parameter as epoch seconds, else HttpError 400."""
    text = query.get(name)
    if text is None:
        return None
    try:
        return parse_datetime(text).timestamp()
    except ValueError:
        example = "2024-03-01T08:00:00+08:00"
        raise HttpError(400, f"{name} must be an ISO-8601 datetime such as {example}, got {text!r}") from None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]  # a repeated parameter keeps its last value
    headers: Message
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Response(status, body, JSON_TYPE, headers or {})


@dataclass(frozen=True)
class Faults:
    """Fault knobs. The random rates are exclusive shares of the requests, so they sum to <= 1."""

    rate_limit_per_second: float | None = None  # per client (token); None = unlimited
    error_rate: float = 0.0  # answered 500/502/503
    throttle_rate: float = 0.0  # answered 429 + Retry-After regardless of the rate limit
    drop_rate: float = 0.0  # connection closed without a response

    def __post_init__(self) -> None:
        rates = (self.error_rate, self.throttle_rate, self.drop_rate)
        if any(not 0 <= rate <= 1 for rate in rates) or sum(rates) > 1:
            raise ValueError("error_rate, throttle_rate and drop_rate must be in [0, 1] and sum to <= 1")
        if self.rate_limit_per_second is not None and self.rate_limit_per_second <= 0:
            raise ValueError("rate_limit_per_second must be positive (or None for no limit)")


class TokenBucket:
    """Allows `rate` requests per second on average, in bursts of up to max(rate, 1)."""

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> float:
        """Take a token; return 0 if granted, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class SandboxServer:
    """Base class of the sandbox servers: use `start()`/`stop()` or a `with` block."""

    def __init__(
        self,
        store_path: str | Path,
        *,
        port: int = 0,
        as_of: int | float | str | datetime | None = None,
        rate_limit_per_second: float | None = None,
        error_rate: float = 0.0,
        throttle_rate: float = 0.0,
        drop_rate: float = 0.0,
        seed: int = 0,
    ):
        self.store_path = Path(store_path).resolve()
        if not self.store_path.is_file():
            raise FileNotFoundError(f"store not found: {self.store_path}")
        self.requested_port = port
        self.as_of = to_epoch(as_of)
        self.faults = Faults(rate_limit_per_second, error_rate, throttle_rate, drop_rate)
        self._random = random.Random(seed)
        self._buckets: dict[str, TokenBucket] = {}
        self._stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(("127.0.0.1", self.requested_port), _Handler)
        self._httpd.sandbox = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the loop to notice
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- knobs -----------------------------------------------------------------------------

    def set_clock(self, as_of: int | float | str | datetime | None) -> None:
        """Show the system as it was at `as_of` (None: everything in the store)."""
        self.as_of = to_epoch(as_of)

    def set_faults(self, **knobs: Any) -> Faults:
        """Change some fault knobs (the others keep their values); returns the new knobs."""
        with self._lock:
            self.faults = replace(self.faults, **knobs)
            self._buckets.clear()
            return self.faults

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.clear()

    @property
    def visible_until(self) -> int:
        """Upper bound (inclusive) on recorded times visible at the clock."""
        return END_OF_TIME if self.as_of is None else self.as_of

    @contextmanager
    def read_store(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection to the store, opened per request and closed afterwards."""
        conn = sqlite3.connect(f"{self.store_path.as_uri()}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    # --- hooks for subclasses ----------------------------------------------------------------

    def route(self, request: Request) -> Response:
        raise NotImplementedError

    def authenticate(self, request: Request) -> str:
        """Check credentials (raise HttpError 401) and return the client key for rate limiting."""
        return "anonymous"

    def error_response(self, request: Request, error: HttpError) -> Response:
        return _json_error(error)

    # --- request handling --------------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        """Answer one request; None means: drop the connection without a response."""
        if request.path.startswith("/_sandbox/"):
            try:
                return self._sandbox_endpoint(request)
            except HttpError as error:
                return _json_error(error)
        self._count("requests")
        fault = self._draw_fault()
        if fault == "drop":
            self._count("dropped")
            return None
        try:
            if fault == "error":
                self._count("injected_errors")
                with self._lock:
                    status = self._random.choice((500, 502, 503))
                raise HttpError(status, "simulated server error")
            if fault == "throttle":
                self._count("throttled")
                raise HttpError(429, "simulated throttling", {"Retry-After": "1"})
            self._enforce_rate_limit(self.authenticate(request))
            if request.method != "GET":
                raise HttpError(405, f"method {request.method} not allowed")
            response = self.route(request)
        except HttpError as error:
            response = self.error_response(request, error)
        except Exception:
            logger.exception("%s failed on %s", type(self).__name__, request.path)
            response = self.error_response(request, HttpError(500, "internal error"))
        self._count(f"http_{response.status}")
        return response

    def _draw_fault(self) -> str | None:
        faults = self.faults
        with self._lock:
            draw = self._random.random()
        for name, rate in (
            ("drop", faults.drop_rate),
            ("error", faults.error_rate),
            ("throttle", faults.throttle_rate),
        ):
            if draw < rate:
                return name
            draw -= rate
        return None

    def _enforce_rate_limit(self, client: str) -> None:
        rate = self.faults.rate_limit_per_second
        if rate is None:
            return
        with self._lock:
            bucket = self._buckets.setdefault(client, TokenBucket(rate))
            wait = bucket.take()
        if wait:
            self._count("rate_limited")
            retry_after = str(max(1, math.ceil(wait)))
            raise HttpError(429, "rate limit exceeded", {"Retry-After": retry_after})

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def _sandbox_endpoint(self, request: Request) -> Response:
        endpoint, method = request.path.removeprefix("/_sandbox/"), request.method
        if endpoint == "clock" and method in ("GET", "POST"):
            if method == "POST":
                as_of = _json_body(request).get("as_of")
                try:
                    self.set_clock(as_of)
                except (TypeError, ValueError) as exc:
                    raise HttpError(400, f"bad as_of {as_of!r}: {exc}") from None
            return json_response({"as_of": None if self.as_of is None else render_local(self.as_of)})
        if endpoint == "faults" and method in ("GET", "POST"):
            if method == "POST":
                knobs = _json_body(request)
                unknown = set(knobs) - {f.name for f in fields(Faults)}
                if unknown:
                    raise HttpError(400, f"unknown fault knobs: {sorted(unknown)}")
                try:
                    self.set_faults(**knobs)
                except (TypeError, ValueError) as exc:
                    raise HttpError(400, str(exc)) from None
            return json_response(asdict(self.faults))
        if endpoint == "stats" and method == "GET":
            return json_response(self.stats)
        raise HttpError(404, f"no sandbox endpoint {method} {request.path}")


def _json_error(error: HttpError) -> Response:
    return json_response(
        {"error": {"code": error.status, "message": error.message}}, error.status, error.headers
    )


def _json_body(request: Request) -> dict[str, Any]:
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        raise HttpError(400, "body must be a JSON object") from None
    if not isinstance(payload, dict):
        raise HttpError(400, "body must be a JSON object")
    return payload


class _HTTPServer(ThreadingHTTPServer):
    sandbox: SandboxServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real systems do
    timeout = 60  # idle keep-alive connections give their thread back eventually
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out as separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every small response on a kept-alive connection
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(method, url.path, dict(parse_qsl(url.query)), self.headers, body)
        response = self.server.sandbox.handle(request)
        if response is None:
            self.close_connection = True
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)
