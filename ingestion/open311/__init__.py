"""Open311 GeoReport v2 connector: `extract(entry, state)` for any standard GeoReport v2 service.

Per run: `GET services` once (table `services`), then `GET requests` walked by date windows on
requested_datetime (at most `window_days` each; the standard caps a window at 90 days and 1000
records), each window paged with the common `page`/`page_size` extension until a short or empty
page. Values are kept as sent, as text (JSON or XML, `entry.system.format`).

Services that do not page are detected and handled without losing records:
  * a page >= 2 that only repeats records already read in the window  -> `page` is ignored;
  * a paged request refused (4xx) while the same window without paging parameters is answered
    -> the paging extension is not supported (e.g. page_size above the service's maximum).
In both cases the run switches to one request per window, and a window whose answer reaches the
service's cap (the largest answer seen without paging, which never exceeds the true cap) is split
in halves, recursively, down to one second. Records are deduplicated by service_request_id within
a run, so overlapping window bounds and splits never yield a record twice.

Incremental with late status updates: GeoReport v2 only filters on requested_datetime, yet requests
close later. `state` keeps the newest requested_datetime seen and the earliest requested_datetime
among requests still open at the last run; a run walks from min(earliest open, newest - lookback)
(or `first_date` on the first run) to now, so each close is re-read and merge-on-key replaces the
old version. See README.md for the state layout and the trade-off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ingestion.core import Batch, Rejected, text_table
from ingestion.http import JsonApiClient, RequestRefused, RetryPolicy, SourceUnavailable
from ingestion.registry import Open311Source, SourceEntry

logger = logging.getLogger(__name__)

__all__ = ["extract", "SERVICES_TABLE", "REQUESTS_TABLE"]

SERVICES_TABLE = "services"
REQUESTS_TABLE = "requests"
DAY = 86400
MIN_SPLIT_SECONDS = 2  # a window [a, b] is split into [a, m] and [m, b]; below 2 s it cannot shrink


class _Unreadable(ValueError):
    """A 200 answer that is not a GeoReport v2 list (HTML error page, broken XML...)."""


def _now() -> int:
    """Wall-clock now in epoch seconds, rounded up (a seam for tests)."""
    return math.ceil(time.time())


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_epoch(text: str, tz: ZoneInfo) -> int:
    """ISO-8601 (a date alone, an offset or Z) as epoch seconds; a naive value is in the entry's zone."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return math.floor(value.timestamp())


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # drop an XML namespace


def _xml_value(element: ET.Element) -> str | None:
    if len(element):  # nested structure (rare in GeoReport v2): kept as its XML text
        return ET.tostring(element, encoding="unicode")
    return element.text


def _items(body: bytes | dict | list, fmt: str) -> list[dict]:
    """The records of a GeoReport v2 list answer: a JSON array, or <root><item>...</item></root>."""
    if fmt == "xml":
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise _Unreadable(f"not well-formed XML ({exc}): {body[:200]!r}") from None
        if _local_name(root.tag) == "errors":
            raise _Unreadable(f"the service answered errors: {_error_text(body)}")
        return [{_local_name(child.tag): _xml_value(child) for child in item} for item in root]
    if isinstance(body, dict):  # some services wrap the list: {"service_requests": [...]}
        lists = [value for value in body.values() if isinstance(value, list)]
        if len(lists) != 1:
            raise _Unreadable(f"expected a JSON array, got an object: {json.dumps(body, ensure_ascii=False)[:200]}")
        body = lists[0]
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise _Unreadable(f"expected a JSON array of objects, got: {json.dumps(body, ensure_ascii=False)[:200]}")
    return body


def _error_text(body: str | bytes) -> str:
    """The description(s) of an Open311 error answer (JSON or XML), else the body's start."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
        errors = parsed if isinstance(parsed, list) else [parsed]
        found = [str(e.get("description") or e.get("message") or e.get("code") or "")
                 for e in errors if isinstance(e, dict)]
        if any(found):
            return "; ".join(found)
    except ValueError:
        pass
    try:
        root = ET.fromstring(body if isinstance(body, bytes) else body.encode())
        found = [e.findtext("description") or e.findtext("code") or "" for e in root]
        if any(found):
            return "; ".join(found)
    except (ET.ParseError, ValueError):
        pass
    return " ".join(text.split())[:300]


def _key(item: dict) -> str:
    """Identity within a run: service_request_id, or a hash of a record that has none."""
    value = item.get("service_request_id")
    if value not in (None, ""):
        return str(value)
    return "#" + hashlib.sha1(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class _Run:
    entry: SourceEntry
    system: Open311Source
    client: JsonApiClient
    tz: ZoneInfo
    base_params: dict
    # paging mode: "paged" (page + page_size), "no_page" (page ignored: page_size only),
    # "unpaged" (the extension is refused: neither)
    paging: str = "paged"
    cap: int = 0  # largest answer seen without paging: an answer this large may be truncated
    seen: set[str] = field(default_factory=set)
    newest: int | None = None
    earliest_open: int | None = None
    failed: list[tuple[int, int]] = field(default_factory=list)
    probing: bool = False  # past now: a refusal ends the walk instead of rejecting a window
    probe_refused: bool = False
    stats: dict[str, int] = field(default_factory=lambda: {"records": 0, "pages": 0, "windows": 0,
                                                           "splits": 0, "rejected": 0})

    @property
    def fmt(self) -> str:
        return self.system.format

    def fetch(self, resource: str, params: dict) -> list[dict]:
        path = f"{resource}.{self.fmt}"
        try:
            if self.fmt == "xml":
                return _items(self.client.get_bytes(path, {**self.base_params, **params}), "xml")
            return _items(self.client.get(path, {**self.base_params, **params}), "json")
        except RequestRefused:
            raise
        except SourceUnavailable as exc:
            raise SourceUnavailable(f"{self.entry.name}: the Open311 service at {self.client.base_url} is "
                                    f"unreachable: {exc}") from exc
        except ValueError as exc:  # JSON that does not decode
            if isinstance(exc, _Unreadable):
                raise
            raise _Unreadable(f"not JSON: {exc}") from None

    def request_page(self, start: int, end: int, page: int | None) -> list[dict]:
        params = {"start_date": _iso(start), "end_date": _iso(end)}
        if self.paging in ("paged", "no_page"):
            params["page_size"] = self.system.page_size
        if self.paging == "paged" and page is not None:
            params["page"] = page
        self.stats["pages"] += 1
        return self.fetch(REQUESTS_TABLE, params)

    def origin(self, start: int, end: int, page: int | None) -> str:
        where = f"page {page}" if page is not None else "(unpaged)"
        return f"GET {REQUESTS_TABLE}.{self.fmt} {_iso(start)}..{_iso(end)} {where}"

    def emit(self, items: list[dict], start: int, end: int, origin: str) -> Batch | None:
        """The records not yet read in this run, with the cursors updated from them."""
        fresh = []
        for item in items:
            key = _key(item)
            if key in self.seen:
                continue
            self.seen.add(key)
            fresh.append(item)
            # The window the record came from bounds its position: a malformed or inconsistent
            # requested_datetime (the service filters on its own stored value) never moves a cursor
            # outside what was actually walked.
            try:
                position = min(max(_parse_epoch(str(item.get("requested_datetime")), self.tz), start), end)
            except (TypeError, ValueError):
                position = start
            self.newest = position if self.newest is None else max(self.newest, position)
            if str(item.get("status") or "").strip().lower() != "closed":  # open, or any non-standard status
                self.earliest_open = position if self.earliest_open is None else min(self.earliest_open, position)
        if not fresh:
            return None
        self.stats["records"] += len(fresh)
        return Batch(REQUESTS_TABLE, text_table(fresh), origin)

    def reject(self, start: int, end: int, origin: str, error: Exception) -> Iterator[Rejected]:
        reason = (f"HTTP {error.status}: {_error_text(error.body)}" if isinstance(error, RequestRefused)
                  else str(error))
        if self.probing:
            logger.info("%s: %s refused past now, taken as the end of the data: %s", self.entry.name, origin, reason)
            self.probe_refused = True
            return
        self.failed.append((start, end))
        self.stats["rejected"] += 1
        logger.warning("%s: %s refused: %s", self.entry.name, origin, reason)
        yield Rejected(REQUESTS_TABLE, origin, reason)


def _window(run: _Run, start: int, end: int) -> Iterator[Batch | Rejected]:
    """All requests of [start, end]: paged until a short or empty page, else by splitting."""
    run.stats["windows"] += 1
    if run.paging != "paged":
        yield from _unpaged(run, start, end)
        return
    size = run.system.page_size
    window_keys: set[str] = set()
    first: list[dict] = []
    page = 1
    while True:
        try:
            items = run.request_page(start, end, page)
        except (RequestRefused, _Unreadable) as error:
            if page == 1 and isinstance(error, RequestRefused):
                items = _without_paging(run, start, end)
                if items is not None:  # the run has switched to unpaged requests
                    yield from _unpaged(run, start, end, items)
                    return
            yield from run.reject(start, end, run.origin(start, end, page), error)
            return
        keys = [_key(item) for item in items]
        if page > 1 and items and all(key in window_keys for key in keys):
            # The service answers every page with the same records: it ignores `page`.
            logger.info("%s: the service ignores `page`; splitting windows instead", run.entry.name)
            run.paging, run.cap = "no_page", max(run.cap, len(first))
            yield from _split(run, start, end)
            return
        if page == 1:
            first = items
        window_keys.update(keys)
        batch = run.emit(items, start, end, run.origin(start, end, page))
        if batch is not None:
            yield batch
        size = max(size, len(items))  # a service may use its own, larger page size
        if len(items) < size:
            return
        page += 1


def _without_paging(run: _Run, start: int, end: int) -> list[dict] | None:
    """After a refused first page: the window's answer without the paging parameters, if it comes."""
    run.paging = "unpaged"
    try:
        items = run.request_page(start, end, None)
    except (RequestRefused, _Unreadable):
        run.paging = "paged"  # the refusal was about the window, not the paging extension
        return None
    logger.info("%s: the service refuses the page/page_size extension; splitting windows instead",
                run.entry.name)
    return items


def _unpaged(run: _Run, start: int, end: int, items: list[dict] | None = None) -> Iterator[Batch | Rejected]:
    """One request for [start, end]; an answer as large as the cap may be truncated: split in halves."""
    origin = run.origin(start, end, None)
    if items is None:
        try:
            items = run.request_page(start, end, None)
        except (RequestRefused, _Unreadable) as error:
            yield from run.reject(start, end, origin, error)
            return
    run.cap = max(run.cap, len(items))
    batch = run.emit(items, start, end, origin)
    if batch is not None:
        yield batch
    if items and len(items) >= run.cap:
        yield from _split(run, start, end)


def _split(run: _Run, start: int, end: int) -> Iterator[Batch | Rejected]:
    if end - start < MIN_SPLIT_SECONDS:
        origin = run.origin(start, end, None)
        reason = (f"at least {run.cap} requests within {end - start + 1} s and the service answers at most "
                  f"{run.cap} per query without paging: some may be missing")
        logger.warning("%s: %s: %s", run.entry.name, origin, reason)
        run.stats["rejected"] += 1
        yield Rejected(REQUESTS_TABLE, origin, reason)
        return
    run.stats["splits"] += 1
    middle = (start + end) // 2
    yield from _unpaged(run, start, middle)
    yield from _unpaged(run, middle, end)


def _services(run: _Run) -> Iterator[Batch]:
    try:
        items = run.fetch(SERVICES_TABLE, {})
    except (RequestRefused, _Unreadable) as error:
        detail = f"HTTP {error.status}: {_error_text(error.body)}" if isinstance(error, RequestRefused) else str(error)
        raise SourceUnavailable(
            f"{run.entry.name}: the Open311 service at {run.client.base_url} refused "
            f"{SERVICES_TABLE}.{run.fmt} ({detail}); check base_url (the GeoReport v2 endpoint), "
            "format, api_key and jurisdiction_id") from error
    if items:
        yield Batch(SERVICES_TABLE, text_table(items), f"GET {SERVICES_TABLE}.{run.fmt}")


def _client(entry: SourceEntry, system: Open311Source) -> tuple[JsonApiClient, dict]:
    client = JsonApiClient(system.base_url.resolve(f"{entry.name}: base_url"), timeout=system.timeout_seconds,
                           retry=RetryPolicy(attempts=system.max_attempts))
    params = {}
    if system.api_key is not None:
        params["api_key"] = system.api_key.resolve(f"{entry.name}: api_key")
    if system.jurisdiction_id:
        params["jurisdiction_id"] = system.jurisdiction_id
    return client, params


def _walk_start(run: _Run, state: dict, first: int) -> int:
    newest = state.get("newest_requested")
    if not newest:
        return first
    starts = [_parse_epoch(newest, run.tz) - math.ceil(timedelta(days=run.entry.lookback_days).total_seconds())]
    if state.get("earliest_open"):
        starts.append(_parse_epoch(state["earliest_open"], run.tz))
    return max(first, min(starts))


def _save(run: _Run, state: dict, pending: list[tuple[int, int]], walked_to: int | None) -> None:
    """Write the cursors as they stand; `walked_to` None means the walk is complete.

    While the walk is incomplete the earliest-open cursor is capped at the walk's progress, so a
    run that stops early resumes where it stopped (requests open at the last run lie beyond it).
    """
    if run.newest is not None:
        previous = state.get("newest_requested")
        newest = run.newest if not previous else max(run.newest, _parse_epoch(previous, run.tz))
        state["newest_requested"] = _iso(newest)
    bounds = [b for b in (run.earliest_open, walked_to) if b is not None]
    state["earliest_open"] = _iso(min(bounds)) if bounds else None
    state["failed_windows"] = [[_iso(a), _iso(b)] for a, b in [*pending, *run.failed]]


def extract(entry: SourceEntry, state: dict) -> Iterator[Batch | Rejected]:
    """Read an Open311 GeoReport v2 service: `services` once, `requests` by date windows (see module doc).

    state: {"newest_requested": ISO-8601 UTC, "earliest_open": ISO-8601 UTC or None,
            "failed_windows": [[start, end], ...]} — advanced only for windows already yielded.
    """
    system = entry.system
    if not isinstance(system, Open311Source):
        raise TypeError(f"{entry.name}: not an open311 source (kind {entry.kind})")
    client, params = _client(entry, system)
    run = _Run(entry, system, client, ZoneInfo(entry.timezone), params)
    started = time.perf_counter()

    yield from _services(run)

    first = _parse_epoch(system.first_date, run.tz)
    now = _now()
    start = _walk_start(run, state, first)
    window = max(1, round(system.window_days * DAY))

    # Windows refused at the last run are asked again first (only the part before this run's walk).
    pending = [(_parse_epoch(a, run.tz), _parse_epoch(b, run.tz)) for a, b in state.get("failed_windows") or []]
    while pending:
        a, b = pending.pop(0)
        if a < start:
            yield from _window(run, a, min(b, start))
        _save(run, state, pending, start)

    # The walk: windows up to now; then further windows while they bring new records (a service
    # whose clock or data is ahead of ours), ending at the first window past now with nothing new.
    a = start
    while True:
        run.probing = a >= now
        b = a + window if run.probing else min(a + window, now)
        before = run.stats["records"]
        yield from _window(run, a, b)
        _save(run, state, [], b)
        if run.probing and (run.probe_refused or run.stats["records"] == before):
            break
        a = b
    _save(run, state, [], None)
    elapsed = time.perf_counter() - started
    logger.info("%s: %d requests in %d windows, %d pages, %d splits, %d rejected, %d HTTP requests "
                "(%d retries) in %.1f s", entry.name, run.stats["records"], run.stats["windows"],
                run.stats["pages"], run.stats["splits"], run.stats["rejected"], client.stats["requests"],
                client.stats["retries"], elapsed)
