"""The Open311 GeoReport v2 connector against the real sandbox server (and variants of it that page
differently, refuse windows or record what they are asked), over the pipeline city's store."""

from __future__ import annotations

import socket
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

import ingestion.open311 as open311
import simulator.servers.open311 as open311_server
from ingestion.core import Batch, Rejected
from ingestion.http import SourceUnavailable
from ingestion.registry import EnvValue, load_registry
from simulator.servers import HttpError, Open311Server
from simulator.servers.base import datetime_param

URL_ENV = "CV_OPEN311_URL"


# --- helpers -----------------------------------------------------------------------------------


class Result:
    def __init__(self, items: list[Batch | Rejected]):
        self.batches = [i for i in items if isinstance(i, Batch)]
        self.rejected = [i for i in items if isinstance(i, Rejected)]
        self.requests = [row for b in self.batches if b.table == "requests" for row in b.rows.to_pylist()]
        self.services = [row for b in self.batches if b.table == "services" for row in b.rows.to_pylist()]
        self.origins = [b.origin for b in self.batches if b.table == "requests"]

    @property
    def ids(self) -> list[str]:
        return [row["service_request_id"] for row in self.requests]

    @property
    def by_id(self) -> dict[str, dict]:
        return {row["service_request_id"]: row for row in self.requests}


def run(entry, state: dict | None = None) -> Result:
    return Result(list(open311.extract(entry, {} if state is None else state)))


def store_view(store, as_of: int | None = None) -> dict[str, str]:
    """service_request_id -> status as the server shows it at `as_of` (None: everything)."""
    until = 2**62 if as_of is None else as_of
    with sqlite3.connect(store) as con:
        rows = con.execute(
            "SELECT service_request_id, closed_ts <= :t AND COALESCE(recorded_closed_ts, closed_ts) <= :t"
            " FROM requests WHERE requested_ts <= :t", {"t": until}).fetchall()
    return {rid: "closed" if closed else "open" for rid, closed in rows}


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def assert_exactly_once(result: Result, store, as_of: int | None = None) -> None:
    assert not result.rejected, [r.reason for r in result.rejected]
    duplicates = [rid for rid, n in Counter(result.ids).items() if n > 1]
    assert duplicates == []
    assert sorted(result.ids) == sorted(store_view(store, as_of))


@pytest.fixture(scope="module")
def store(pipeline_city):
    return pipeline_city[0] / "systems" / "open311.sqlite"


@pytest.fixture(scope="module")
def first_date(store) -> str:
    """A few days before the store's first request, so the walk starts before the data."""
    with sqlite3.connect(store) as con:
        first = con.execute("SELECT MIN(requested_ts) FROM requests").fetchone()[0]
    return (datetime.fromtimestamp(first, UTC) - timedelta(days=5)).date().isoformat()


@pytest.fixture
def app311(first_date):
    """The registry's app311 entry with system fields replaced (first_date set to the store's data)."""
    entry = load_registry().get("app311")

    def make(**system):
        return entry.model_copy(update={"system": entry.system.model_copy(update={"first_date": first_date,
                                                                                  **system})})
    return make


@pytest.fixture
def serve(store, monkeypatch):
    """Start an Open311 server class over the store and point CV_OPEN311_URL at it."""
    servers = []

    def start(server_class=Open311Server, **kwargs):
        server = server_class(store, port=0, **kwargs).start()
        servers.append(server)
        monkeypatch.setenv(URL_ENV, server.endpoint)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(serve):
    return serve(seed=11)


# --- completeness ------------------------------------------------------------------------------


def test_every_request_arrives_once_and_json_and_xml_agree(server, store, app311):
    as_json = run(app311())
    assert_exactly_once(as_json, store)
    as_xml = run(app311(format="xml"))
    assert_exactly_once(as_xml, store)
    assert sorted(as_xml.requests, key=lambda r: r["service_request_id"]) == \
        sorted(as_json.requests, key=lambda r: r["service_request_id"])
    assert as_xml.services == as_json.services
    row = as_json.requests[0]
    assert all(value is None or isinstance(value, str) for value in row.values())  # values as sent, as text
    float(row["lat"]), float(row["long"])


def test_services_table_matches_the_store(server, store, app311):
    services = run(app311()).services
    with sqlite3.connect(store) as con:
        expected = con.execute('SELECT service_code, service_name, description, "group", keywords FROM services'
                               " ORDER BY service_code").fetchall()
    assert [(s["service_code"], s["service_name"], s["description"], s["group"], s["keywords"])
            for s in services] == expected
    assert {s["metadata"] for s in services} == {"false"}


@pytest.mark.parametrize(("window_days", "page_size"), [(7, 50), (30, 10)])
def test_small_windows_and_pages_still_complete(server, store, app311, window_days, page_size):
    result = run(app311(window_days=window_days, page_size=page_size))
    assert_exactly_once(result, store)
    assert all(b.rows.num_rows <= page_size for b in result.batches if b.table == "requests")
    if page_size == 10:
        assert any(origin.endswith("page 3") for origin in result.origins)


def test_a_service_refusing_our_page_size_is_read_by_splitting_windows(serve, store, app311, monkeypatch):
    """page_size above the service's maximum (25 here) is refused; the windows are split instead."""
    monkeypatch.setattr(open311_server, "MAX_PAGE_SIZE", 25)
    serve()
    result = run(app311(page_size=1000))
    assert_exactly_once(result, store)
    assert all(origin.endswith("(unpaged)") for origin in result.origins)
    assert max(b.rows.num_rows for b in result.batches if b.table == "requests") <= 25


class PageIgnoringServer(Open311Server):
    """Honours page_size but ignores page: every page is the first one."""

    def _requests(self, query):
        return super()._requests({k: v for k, v in query.items() if k != "page"})


def test_a_service_ignoring_page_is_read_by_splitting_windows(serve, store, app311):
    serve(PageIgnoringServer)
    result = run(app311(page_size=20))
    assert_exactly_once(result, store)
    assert any(origin.endswith("(unpaged)") for origin in result.origins)


def test_a_service_whose_clock_is_ahead_of_ours_is_read_to_its_newest_data(server, store, app311, first_date,
                                                                            monkeypatch):
    monkeypatch.setattr(open311, "_now", lambda: epoch(first_date + "T00:00:00+00:00") + 10 * 86400)
    assert_exactly_once(run(app311(window_days=14)), store)


# --- incremental ---------------------------------------------------------------------------------


def test_late_closes_are_caught_and_nothing_is_lost(server, store, app311, pipeline_city):
    horizon = epoch(pipeline_city[1]["horizon"])
    early = horizon - 10 * 86400
    entry = app311(window_days=7, page_size=50)

    server.set_clock(early)
    state: dict = {}
    first = run(entry, state)
    assert_exactly_once(first, store, early)
    assert {rid: row["status"] for rid, row in first.by_id.items()} == store_view(store, early)
    assert set(state) == {"newest_requested", "earliest_open", "failed_windows"}
    saved = dict(state)
    open_early = {rid for rid, row in first.by_id.items() if row["status"] == "open"}
    assert epoch(saved["earliest_open"]) == min(epoch(first.by_id[rid]["requested_datetime"]) for rid in open_early)

    server.set_clock(horizon)
    second = run(entry, state)
    assert not second.rejected
    walk_start = min(epoch(saved["earliest_open"]), epoch(saved["newest_requested"]) - 3 * 86400)
    assert second.origins[0].startswith(f"GET requests.json {open311._iso(walk_start)}..")

    at_horizon = store_view(store, horizon)
    closed_between = {rid for rid in open_early if at_horizon[rid] == "closed"}
    assert closed_between, "the city should close some requests in the last 10 days"
    assert all(second.by_id[rid]["status"] == "closed" for rid in closed_between)
    merged = {**first.by_id, **second.by_id}  # merge on key: the newer version replaces the older
    assert {rid: row["status"] for rid, row in merged.items()} == at_horizon
    assert epoch(state["newest_requested"]) >= epoch(saved["newest_requested"])


class RefusingServer(Open311Server):
    """Answers 400 to a request listing whose window contains `refuse_at` (while it is set)."""

    refuse_at: float | None = None

    def _requests(self, query):
        start, end = datetime_param(query, "start_date"), datetime_param(query, "end_date")
        if self.refuse_at is not None and start is not None and start <= self.refuse_at <= end:
            raise HttpError(400, "simulated refusal of this window")
        return super()._requests(query)


def test_a_refused_window_is_rejected_and_asked_again_next_run(serve, store, app311):
    server = serve(RefusingServer)
    with sqlite3.connect(store) as con:
        server.refuse_at = con.execute("SELECT MIN(requested_ts) FROM requests").fetchone()[0]
    entry = app311(window_days=7)
    state: dict = {}
    first = run(entry, state)
    assert len(first.rejected) == 1
    assert "HTTP 400" in first.rejected[0].reason and "simulated refusal" in first.rejected[0].reason
    assert first.services  # the other tables and windows go on
    missing = set(store_view(store)) - set(first.ids)
    assert missing
    assert len(state["failed_windows"]) == 1

    server.refuse_at = None
    second = run(entry, state)
    assert not second.rejected
    assert missing <= set(second.ids)
    assert state["failed_windows"] == []


def test_fault_storm_still_complete(server, store, app311):
    server.set_faults(error_rate=0.3, throttle_rate=0.2)
    result = run(app311(window_days=30, page_size=50, max_attempts=12))
    assert_exactly_once(result, store)
    stats = server.stats
    assert stats["injected_errors"] > 0 and stats["throttled"] > 0


# --- configuration and failures -------------------------------------------------------------------


class RecordingServer(Open311Server):
    def route(self, request):
        self.queries = [*getattr(self, "queries", []), (request.path, dict(request.query))]
        return super().route(request)


def test_api_key_and_jurisdiction_id_are_sent(serve, app311, monkeypatch):
    server = serve(RecordingServer)
    monkeypatch.setenv("CV_TEST_OPEN311_KEY", "k-123")
    run(app311(api_key=EnvValue(env="CV_TEST_OPEN311_KEY"), jurisdiction_id="haibin.example.gov.cn"))
    assert {path for path, _ in server.queries} == {"/open311/v2/services.json", "/open311/v2/requests.json"}
    assert all(q["api_key"] == "k-123" and q["jurisdiction_id"] == "haibin.example.gov.cn"
               for _, q in server.queries)


def test_windows_the_service_refuses_are_rejected_with_its_error_text(server, app311):
    result = run(app311(window_days=120))  # the standard (and the sandbox) cap a window at 90 days
    assert result.services and result.rejected
    assert all("may not span more than 90 days" in r.reason for r in result.rejected)


def test_unreachable_service_raises_source_unavailable(app311, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{port}/open311/v2")
    with pytest.raises(SourceUnavailable, match="app311: the Open311 service .* is unreachable"):
        run(app311(max_attempts=2))


def test_wrong_endpoint_raises_with_a_hint(server, app311, monkeypatch):
    monkeypatch.setenv(URL_ENV, server.url + "/georeport/v2")
    with pytest.raises(SourceUnavailable, match="refused services.json .*404.*check base_url"):
        run(app311())
