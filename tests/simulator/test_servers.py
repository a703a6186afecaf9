"""The sandbox department servers over small hand-built stores, through real HTTP."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
import sqlalchemy as sa

from simulator.servers import HotlineServer, Open311Server, SandboxServers
from simulator.sqlsync import copy_sqlite_to_postgres
from simulator.stores import HOTLINE_DDL, OPEN311_DDL, ZHUJIAN_DDL, create_store

BEIJING = timezone(timedelta(hours=8))
DAY = 86400
T0 = int(datetime(2024, 3, 1, 9, 0, tzinfo=BEIJING).timestamp())
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LATE_ROW = 13  # an order whose only version is recorded long after the others

INTAKE_FIELDS = set(
    "order_no channel_code demand_type_code urgency title content category_code district_code"
    " street_code community_code address caller_name caller_phone caller_id_no confidential"
    " external_ref received_at".split()
)
VERSION_FIELDS = set(
    "status lead_dept_code assist_dept_codes is_direct_answer due_at closed_at reply_content"
    " parent_order_no updated_at".split()
)
OPEN311_REQUEST_FIELDS = set(
    "service_request_id status status_notes service_name service_code description agency_responsible"
    " service_notice requested_datetime updated_datetime expected_datetime address address_id zipcode"
    " lat long media_url".split()
)
OPEN311_SERVICE_FIELDS = set("service_code service_name description metadata type keywords group".split())


def beijing(ts: int) -> str:
    return datetime.fromtimestamp(ts, BEIJING).isoformat()


def utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def order_no(row_id: int) -> str:
    return f"HB2024{row_id:04d}"


# --- stores ---------------------------------------------------------------------------------------


def received_ts(row_id: int) -> int:
    return T0 + (row_id - 1) // 2 * 600  # pairs share a time: the cursor must break ties


def hotline_versions() -> list[tuple]:
    """(row_id, recorded_ts, status, lead, assists, is_direct_answer, due_at, closed_at, reply, parent)."""
    versions = []
    for row_id in range(1, LATE_ROW):
        received = received_ts(row_id)
        versions.append((row_id, received, "accepted", None, None, 0, None, None, None, None))
        if row_id % 2:
            versions.append((row_id, received + DAY, "handling", "CGJ", "ZJJ,JTJ", 0, None, None, None, None))
        if row_id % 4 == 1:
            closed = beijing(received + 2 * DAY)
            versions.append(
                (row_id, received + 2 * DAY, "closed", "CGJ", "ZJJ,JTJ", 0, None, closed, "已处理", None)
            )
    versions.append((LATE_ROW, T0 + 10 * DAY, "accepted", None, None, 1, None, None, None, None))
    return versions


def expected_orders(visible_until: int = 2**62) -> list[tuple[int, int, str]]:
    """(recorded_ts, row_id, status) of each order's latest visible version, in API order."""
    latest: dict[int, tuple[int, int, str]] = {}
    for row_id, ts, status, *_ in hotline_versions():
        if ts <= visible_until and (row_id not in latest or ts > latest[row_id][0]):
            latest[row_id] = (ts, row_id, status)
    return sorted(latest.values())


def build_hotline_store(path) -> None:
    conn = create_store(path, HOTLINE_DDL)
    for row_id in range(1, LATE_ROW + 1):
        received = received_ts(row_id)
        conn.execute(
            "INSERT INTO orders VALUES (?, ?, '01', 'TS', '一般', '路灯不亮', '小区门口路灯坏了', 'CX0101',"
            " '370901', '370901001', '370901001001', '人民路1号', '张三', '13812345678', NULL, 0, NULL, ?, ?)",
            (row_id, order_no(row_id), beijing(received), received),
        )
    versions = hotline_versions()
    conn.executemany("INSERT INTO order_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", versions)
    conn.executemany(
        "INSERT INTO events VALUES (?, ?, ?, 'CGJ', 'lead', ?, ?, NULL)",
        [
            (f"E{row_id:03d}-{status}", order_no(row_id), status, beijing(ts), ts)
            for row_id, ts, status, *_ in versions
        ],
    )
    conn.commit()
    conn.close()


O0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())


def open311_requests() -> list[dict]:
    """Twenty requests ten days apart; the odd ones close after two days, recorded after five."""
    rows = []
    for k in range(20):
        requested = O0 + k * 10 * DAY
        closed = requested + 2 * DAY if k % 2 else None
        rows.append(
            {
                "service_request_id": f"R{k:03d}",
                "service_code": "ROAD" if k % 3 else "LIGHT",
                "description": f"问题{k}",
                "agency_responsible": "市城市管理局",
                "address": f"人民路{k}号",
                "zipcode": "266000",
                "lat": 36.06 + k / 1000,
                "long": 120.38,
                "requested_datetime": utc(requested),
                "requested_ts": requested,
                "expected_datetime": utc(requested + 7 * DAY),
                "closed_ts": closed,
                "closed_status_notes": "已修复" if closed else None,
                "recorded_closed_ts": closed + 3 * DAY if closed else None,
            }
        )
    return rows


def build_open311_store(path) -> None:
    conn = create_store(path, OPEN311_DDL)
    conn.executemany(
        "INSERT INTO services VALUES (?, ?, ?, ?, ?)",
        [
            ("LIGHT", "路灯故障", "路灯不亮或闪烁", "市政设施", "路灯,照明"),
            ("ROAD", "道路破损", "路面坑洼", "市政设施", "道路,坑洼"),
        ],
    )
    rows = open311_requests()
    columns = ", ".join(rows[0])
    values = ", ".join(f":{column}" for column in rows[0])
    conn.executemany(f"INSERT INTO requests ({columns}) VALUES ({values})", rows)
    conn.commit()
    conn.close()


@pytest.fixture(scope="module")
def sandbox_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox")
    build_hotline_store(root / "systems" / "hotline.sqlite")
    build_open311_store(root / "systems" / "open311.sqlite")
    return root


@pytest.fixture(scope="module")
def hotline_store(sandbox_dir):
    return sandbox_dir / "systems" / "hotline.sqlite"


@pytest.fixture(scope="module")
def hotline(hotline_store):
    with HotlineServer(hotline_store, token=TOKEN) as server:
        yield server


@pytest.fixture
def hotline_api(hotline):
    """The shared hotline server, its clock and faults reset after each test."""
    yield hotline
    hotline.set_clock(None)
    hotline.set_faults(rate_limit_per_second=None, error_rate=0.0, throttle_rate=0.0, drop_rate=0.0)


@pytest.fixture(scope="module")
def open311_server(sandbox_dir):
    with Open311Server(sandbox_dir / "systems" / "open311.sqlite") as server:
        yield server


@pytest.fixture
def open311(open311_server):
    yield open311_server
    open311_server.set_clock(None)


def get(url: str, **params) -> requests.Response:
    return requests.get(url, params=params, headers=AUTH, timeout=5)


def walk(url: str, **params) -> tuple[list[dict], int]:
    """Every item of a cursor-paginated list, and the number of pages fetched."""
    items, pages, cursor = [], 0, None
    while True:
        body = get(url, **params, **({"cursor": cursor} if cursor else {})).json()
        items += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        assert body["has_more"] == (cursor is not None)
        if cursor is None:
            return items, pages


# --- hotline --------------------------------------------------------------------------------------


def test_hotline_refuses_requests_without_the_right_bearer_token(hotline_api):
    url = hotline_api.url + "/api/v1/orders"
    assert requests.get(url, timeout=5).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=5)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == 401
    assert get(url).status_code == 200


def test_cursor_pagination_walks_every_order_once_in_update_order(hotline_api):
    items, pages = walk(hotline_api.url + "/api/v1/orders", page_size=5)
    expected = expected_orders()
    assert pages == 3
    assert [item["order_no"] for item in items] == [order_no(row_id) for _, row_id, _ in expected]
    assert [item["updated_at"] for item in items] == [beijing(ts) for ts, _, _ in expected]


def test_page_pagination_reports_totals(hotline_api):
    url = hotline_api.url + "/api/v1/orders"
    pages = [get(url, page=page, page_size=5).json() for page in (1, 2, 3, 4)]
    assert [(p["page"], p["page_size"], p["total"], p["has_more"]) for p in pages] == [
        (1, 5, 13, True),
        (2, 5, 13, True),
        (3, 5, 13, False),
        (4, 5, 13, False),
    ]
    assert [len(p["data"]) for p in pages] == [5, 5, 3, 0]
    paged = [item["order_no"] for p in pages for item in p["data"]]
    assert paged == [item["order_no"] for item in walk(url, page_size=5)[0]]


def test_an_order_carries_its_intake_fields_and_latest_version(hotline_api):
    item = get(hotline_api.url + f"/api/v1/orders/{order_no(1)}").json()
    assert set(item) == INTAKE_FIELDS | VERSION_FIELDS
    assert item["status"] == "closed"
    assert item["assist_dept_codes"] == ["ZJJ", "JTJ"]
    assert item["is_direct_answer"] is False
    assert item["updated_at"] == beijing(T0 + 2 * DAY)
    assert item["closed_at"] == beijing(T0 + 2 * DAY)
    assert get(hotline_api.url + "/api/v1/orders/HB-unknown").status_code == 404


def test_updated_since_is_inclusive_in_any_offset(hotline_api):
    url = hotline_api.url + "/api/v1/orders"
    boundary = T0 + 600 + DAY  # order 3 began handling then
    expected = [order_no(row_id) for ts, row_id, _ in expected_orders() if ts >= boundary]
    as_utc = datetime.fromtimestamp(boundary, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    as_naive_beijing = datetime.fromtimestamp(boundary, BEIJING).replace(tzinfo=None).isoformat()
    for since in (beijing(boundary), as_utc, as_naive_beijing):
        items, _ = walk(url, updated_since=since, page_size=4)
        assert [item["order_no"] for item in items] == expected
    assert items[0]["updated_at"] == beijing(boundary)


@pytest.mark.parametrize(
    "params",
    [
        {"updated_since": "yesterday"},
        {"cursor": "not-a-cursor"},
        {"page_size": "0"},
        {"page_size": "5000"},
        {"page": "1", "cursor": "x"},
    ],
)
def test_bad_list_parameters_are_rejected_with_a_message(hotline_api, params):
    response = get(hotline_api.url + "/api/v1/orders", **params)
    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_events_are_listed_by_recorded_time(hotline_api):
    url = hotline_api.url + "/api/v1/events"
    items, _ = walk(url, page_size=7)
    expected = sorted((ts, f"E{row_id:03d}-{status}") for row_id, ts, status, *_ in hotline_versions())
    assert [item["event_id"] for item in items] == [event_id for _, event_id in expected]
    assert items[0]["recorded_at"] == beijing(T0)
    assert "recorded_ts" not in items[0]
    since = get(url, updated_since=beijing(T0 + 2 * DAY), page=1, page_size=100).json()
    assert since["total"] == sum(1 for ts, _ in expected if ts >= T0 + 2 * DAY)


def test_the_clock_hides_later_versions_and_events(hotline_api):
    clock = T0 + DAY + 3600  # after order 1 began handling, before it closed
    response = requests.post(hotline_api.url + "/_sandbox/clock", json={"as_of": beijing(clock)}, timeout=5)
    assert response.json() == {"as_of": beijing(clock)}
    items, _ = walk(hotline_api.url + "/api/v1/orders")
    assert [(item["order_no"], item["status"]) for item in items] == [
        (order_no(row_id), status) for _, row_id, status in expected_orders(clock)
    ]
    assert order_no(LATE_ROW) not in {item["order_no"] for item in items}
    assert get(hotline_api.url + f"/api/v1/orders/{order_no(1)}").json()["status"] == "handling"
    assert get(hotline_api.url + f"/api/v1/orders/{order_no(LATE_ROW)}").status_code == 404
    events, _ = walk(hotline_api.url + "/api/v1/events")
    assert max(event["recorded_at"] for event in events) <= beijing(clock)

    hotline_api.set_clock(T0 - 1)
    assert walk(hotline_api.url + "/api/v1/orders")[0] == []
    requests.post(hotline_api.url + "/_sandbox/clock", json={"as_of": None}, timeout=5)
    assert len(walk(hotline_api.url + "/api/v1/orders")[0]) == 13


def test_rate_limit_answers_429_with_retry_after(hotline_store):
    with HotlineServer(hotline_store, token=TOKEN, rate_limit_per_second=2) as server:
        statuses = [get(server.url + "/api/v1/orders", page_size=1) for _ in range(6)]
        limited = [r for r in statuses if r.status_code == 429]
        assert limited and all(r.status_code == 200 for r in statuses[:2])
        assert int(limited[0].headers["Retry-After"]) >= 1
        assert server.stats["rate_limited"] == len(limited)


def test_injected_faults(hotline_api):
    url = hotline_api.url + "/api/v1/orders"
    hotline_api.reset_stats()
    hotline_api.set_faults(error_rate=1.0)
    assert {get(url).status_code for _ in range(5)} <= {500, 502, 503}

    response = requests.post(
        hotline_api.url + "/_sandbox/faults", json={"error_rate": 0, "throttle_rate": 1}, timeout=5
    )
    assert response.json()["throttle_rate"] == 1
    throttled = get(url)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"

    hotline_api.set_faults(throttle_rate=0.0, drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        get(url)

    stats = requests.get(hotline_api.url + "/_sandbox/stats", timeout=5).json()
    assert (stats["requests"], stats["injected_errors"], stats["throttled"], stats["dropped"]) == (7, 5, 1, 1)
    assert sum(stats.get(f"http_{status}", 0) for status in (500, 502, 503)) == 5
    bad = requests.post(hotline_api.url + "/_sandbox/faults", json={"explode": True}, timeout=5)
    assert bad.status_code == 400


def test_random_faults_are_reproducible_with_a_seed(hotline_store):
    def statuses() -> list[int]:
        with HotlineServer(hotline_store, token=TOKEN, error_rate=0.5, seed=7) as server:
            return [get(server.url + "/api/v1/orders", page_size=1).status_code for _ in range(12)]

    first = statuses()
    assert first == statuses()
    assert 200 in first and set(first) - {200}


# --- Open311 --------------------------------------------------------------------------------------


def test_open311_services_in_json_and_xml(open311):
    services = requests.get(open311.endpoint + "/services.json", timeout=5).json()
    assert [s["service_code"] for s in services] == ["LIGHT", "ROAD"]
    assert all(set(s) == OPEN311_SERVICE_FIELDS for s in services)
    assert services[0]["metadata"] is False and services[0]["type"] == "realtime"

    root = ET.fromstring(requests.get(open311.endpoint + "/services.xml", timeout=5).content)
    assert root.tag == "services"
    assert [{child.tag for child in service} for service in root] == [OPEN311_SERVICE_FIELDS] * 2
    assert root.find("service/metadata").text == "false"


def test_open311_requests_default_to_the_90_days_before_the_newest(open311):
    items = requests.get(open311.endpoint + "/requests.json", timeout=5).json()
    assert [item["service_request_id"] for item in items] == [f"R{k:03d}" for k in range(10, 20)]
    assert all(set(item) == OPEN311_REQUEST_FIELDS for item in items)
    closed = items[1]  # R011
    assert (closed["status"], closed["status_notes"]) == ("closed", "已修复")
    assert closed["updated_datetime"] == utc(O0 + 110 * DAY + 2 * DAY)
    assert items[0]["updated_datetime"] == items[0]["requested_datetime"] == utc(O0 + 100 * DAY)
    assert closed["service_name"] == "道路破损"

    root = ET.fromstring(requests.get(open311.endpoint + "/requests.xml", timeout=5).content)
    assert root.tag == "service_requests"
    assert [r.findtext("service_request_id") for r in root] == [item["service_request_id"] for item in items]
    assert all({child.tag for child in request} == OPEN311_REQUEST_FIELDS for request in root)


def test_open311_windows_may_not_span_more_than_90_days(open311):
    url = open311.endpoint + "/requests"
    too_long = {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-04-01T00:00:01Z"}
    response = requests.get(url + ".json", params=too_long, timeout=5)
    assert response.status_code == 400
    assert response.json()[0]["code"] == 400 and "90 days" in response.json()[0]["description"]
    error = ET.fromstring(requests.get(url + ".xml", params=too_long, timeout=5).content)
    assert (error.tag, error.findtext("error/code")) == ("errors", "400")

    exactly_90 = {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-03-31T00:00:00Z"}
    ids = [
        item["service_request_id"]
        for item in requests.get(url + ".json", params=exactly_90, timeout=5).json()
    ]
    assert ids == [f"R{k:03d}" for k in range(10)]
    only_start = requests.get(
        url + ".json", params={"start_date": "2024-04-09T08:00:00+08:00"}, timeout=5
    ).json()
    assert [item["service_request_id"] for item in only_start] == [f"R{k:03d}" for k in range(10, 19)]
    assert requests.get(url + ".json", params={"end_date": "someday"}, timeout=5).status_code == 400


def test_open311_filters_by_status_service_code_and_id(open311):
    url = open311.endpoint + "/requests.json"

    def ids(**params) -> list[str]:
        return [item["service_request_id"] for item in requests.get(url, params=params, timeout=5).json()]

    assert ids(status="closed") == [f"R{k:03d}" for k in range(11, 20, 2)]
    assert ids(status="open") == [f"R{k:03d}" for k in range(10, 20, 2)]
    assert ids(status="open,closed") == ids()
    assert requests.get(url, params={"status": "pending"}, timeout=5).status_code == 400
    assert ids(service_code="LIGHT") == ["R012", "R015", "R018"]
    # ids override every other filter, the date window included
    assert ids(service_request_id="R001,R015", status="open") == ["R001", "R015"]
    pages = [ids(page=page, page_size=4) for page in (1, 2, 3)]
    assert sum(pages, []) == ids()


def test_open311_single_request_and_404(open311):
    one = requests.get(open311.endpoint + "/requests/R003.json", timeout=5).json()
    assert len(one) == 1 and one[0]["service_request_id"] == "R003"
    root = ET.fromstring(requests.get(open311.endpoint + "/requests/R003.xml", timeout=5).content)
    assert root.findtext("request/service_request_id") == "R003"
    missing = requests.get(open311.endpoint + "/requests/R999.json", timeout=5)
    assert missing.status_code == 404 and missing.json()[0]["code"] == 404


def test_open311_status_follows_the_clock(open311):
    requested = O0 + 30 * DAY  # R003: closed two days later, the close recorded five days later
    open311.set_clock(requested + 3 * DAY)
    [item] = requests.get(open311.endpoint + "/requests/R003.json", timeout=5).json()
    assert (item["status"], item["status_notes"]) == ("open", None)
    window = requests.get(open311.endpoint + "/requests.json", timeout=5).json()
    assert window[-1]["service_request_id"] == "R003"

    requests.post(open311.url + "/_sandbox/clock", json={"as_of": utc(requested + 5 * DAY)}, timeout=5)
    [item] = requests.get(open311.endpoint + "/requests/R003.json", timeout=5).json()
    assert (item["status"], item["updated_datetime"]) == ("closed", utc(requested + 2 * DAY))
    assert requests.get(open311.endpoint + "/requests/R019.json", timeout=5).status_code == 404


# --- both servers, and the department SQL database --------------------------------------------------


def test_sandbox_servers_start_both_systems_from_a_directory(sandbox_dir, monkeypatch):
    monkeypatch.setenv("CV_SANDBOX_HOTLINE_TOKEN", "from-env")
    with SandboxServers(sandbox_dir, hotline_port=0, open311_port=0) as servers:
        orders = servers.hotline_url + "/api/v1/orders"
        assert (
            requests.get(orders, headers={"Authorization": "Bearer from-env"}, timeout=5).status_code == 200
        )
        assert requests.get(servers.open311_url + "/services.json", timeout=5).status_code == 200
        servers.set_clock(T0 - 1)
        assert (
            requests.get(orders, headers={"Authorization": "Bearer from-env"}, timeout=5).json()["data"] == []
        )
    with pytest.raises(requests.ConnectionError):
        requests.get(orders, timeout=5)


def test_copy_sqlite_to_postgres(tmp_path, postgres_url):
    store = tmp_path / "zhujian.sqlite"
    conn = create_store(store, ZHUJIAN_DDL)
    tricky = "第一行\t制表\n第二行 \\ 反斜杠"
    conn.executemany(
        "INSERT INTO gd_main (bjbh, gdbh, slsj, nr, hfnr, bjzt) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (f"ZJ{i:05d}", order_no(i), "2024-03-01 09:00:00", tricky if i == 7 else f"内容{i}", None, "")
            for i in range(1, 301)
        ],
    )
    conn.executemany(
        "INSERT INTO gd_lz (lzid, bjbh, czlx) VALUES (?, ?, '签收')",
        [(i, f"ZJ{i:05d}") for i in range(1, 51)],
    )
    conn.commit()
    conn.close()

    assert copy_sqlite_to_postgres(store, postgres_url) == {"gd_lz": 50, "gd_main": 300}
    assert copy_sqlite_to_postgres(store, postgres_url) == {"gd_lz": 50, "gd_main": 300}  # replaces

    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as pg:
            assert pg.execute(sa.text("SELECT count(*) FROM zhujian.gd_main")).scalar() == 300
            assert pg.execute(sa.text("SELECT count(*) FROM zhujian.gd_lz")).scalar() == 50
            row = pg.execute(
                sa.text("SELECT nr, hfnr, bjzt FROM zhujian.gd_main WHERE bjbh = 'ZJ00007'")
            ).one()
            assert tuple(row) == (tricky, None, "")
            lzid_type = pg.execute(
                sa.text(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema = 'zhujian'"
                    " AND table_name = 'gd_lz' AND column_name = 'lzid'"
                )
            ).scalar()
            assert lzid_type == "bigint"
    finally:
        engine.dispose()
