"""The Open311 GeoReport v2 read API over the published open dataset, queried over real HTTP with
`requests` and with the project's own Open311 connector (an existing GeoReport v2 client)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import duckdb
import pyarrow.parquet as pq
import pytest
import requests

from citizen_voice.publish import files, gate, open_data
from citizen_voice.publish.open311 import Open311Api

REQUEST_FIELDS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]
SERVICE_FIELDS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]


@pytest.fixture(scope="module")
def dataset(publish_city, tmp_path_factory):
    folder = tmp_path_factory.mktemp("open311_published")
    with duckdb.connect(str(publish_city["warehouse"]), read_only=True) as con:
        open_data.publish_open_data(con, folder, known=gate.load_known_values(publish_city["sandbox"]))
    path = folder / "work_orders.parquet"  # the month parts as one file (the API also reads the parts' folder)
    pq.write_table(files.read_published(folder / "open", "work_orders"), path)
    return path, {r["order_no"]: r for r in pq.read_table(path).to_pylist()}


@pytest.fixture(scope="module")
def api(dataset):
    with Open311Api(dataset[0], port=0) as server:
        yield server


def get(api, path, **params):
    return requests.get(f"{api.endpoint}/{path}", params=params, timeout=30)


def aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.utcoffset() == timedelta(hours=8), text
    return value


def test_services_list_every_category(api, dataset):
    answer = get(api, "services.json")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    services = answer.json()
    assert all(list(s) == SERVICE_FIELDS for s in services)
    assert {s["service_code"] for s in services} == {r["category_code"] for r in dataset[1].values()}
    assert all(s["metadata"] is False and s["type"] == "realtime" for s in services)
    xml = ET.fromstring(get(api, "services.xml").content)
    assert xml.tag == "services" and [e.tag for e in xml] == ["service"] * len(services)
    assert [e.findtext("service_code") for e in xml] == [s["service_code"] for s in services]


def test_default_request_window_and_cap(api, dataset):
    items = get(api, "requests.json").json()
    newest = max(r["received_at"] for r in dataset[1].values())
    expected = sorted((r for r in dataset[1].values() if r["received_at"] >= newest - timedelta(days=90)),
                      key=lambda r: (r["received_at"], r["order_no"]))[:1000]
    assert len(items) == min(1000, len(expected)) and len(items) > 500
    assert [i["service_request_id"] for i in items] == [r["order_no"] for r in expected]
    for item in items:
        assert list(item) == REQUEST_FIELDS
        assert item["status"] in ("open", "closed")
        aware(item["requested_datetime"]), aware(item["updated_datetime"])
        if item["expected_datetime"]:
            aware(item["expected_datetime"])


def test_requests_by_date_and_status(api, dataset):
    rows = dataset[1]
    start, end = "2026-08-10T00:00:00+08:00", "2026-08-20T00:00:00Z"  # the end in UTC: 08:00 Beijing time
    for status in ("open", "closed"):
        items = get(api, "requests.json", start_date=start, end_date=end, status=status).json()
        expected = {no for no, r in rows.items() if datetime(2026, 8, 10) <= r["received_at"] <= datetime(2026, 8, 20, 8)
                    and r["is_closed"] == (status == "closed")}
        assert {i["service_request_id"] for i in items} == expected and expected
        assert {i["status"] for i in items} == {status}
    both = get(api, "requests.json", start_date=start, end_date=end, status="open,closed").json()
    assert len(both) == len({no for no, r in rows.items()
                             if datetime(2026, 8, 10) <= r["received_at"] <= datetime(2026, 8, 20, 8)})
    code = both[0]["service_code"]
    by_code = get(api, "requests.json", start_date=start, end_date=end, service_code=code).json()
    assert by_code and {i["service_code"] for i in by_code} == {code}


def test_one_request_and_a_list_of_ids(api, dataset):
    order_no, row = next((no, r) for no, r in dataset[1].items() if r["is_closed"] and r["department_name"])
    items = get(api, f"requests/{order_no}.json").json()
    assert len(items) == 1
    item = items[0]
    assert item["service_request_id"] == order_no and item["status"] == "closed"
    assert item["agency_responsible"] == row["department_name"]
    assert aware(item["requested_datetime"]).replace(tzinfo=None) == row["received_at"]
    assert item["lat"] is None and item["long"] is None  # no coordinates are published
    xml = ET.fromstring(get(api, f"requests/{order_no}.xml").content)
    assert xml.tag == "service_requests" and xml.find("request/service_request_id").text == order_no
    assert xml.find("request/requested_datetime").text == item["requested_datetime"]
    others = sorted(dataset[1])[:3]
    listed = get(api, "requests.json", service_request_id=",".join(others), status="open").json()
    assert sorted(i["service_request_id"] for i in listed) == others  # ids override the other filters


@pytest.mark.parametrize(("path", "params", "status", "words"), [
    ("requests.json", {"start_date": "yesterday"}, 400, "start_date"),
    ("requests.xml", {"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-06-01T00:00:00+08:00"}, 400,
     "90 days"),
    ("requests.json", {"start_date": "2026-09-01", "end_date": "2026-08-01"}, 400, "before"),
    ("requests.json", {"status": "pending"}, 400, "status"),
    ("requests.json", {"page_size": "5000"}, 400, "page_size"),
    ("requests/GD00000000000000.json", {}, 404, "no service request"),
    ("requests/GD00000000000000.xml", {}, 404, "no service request"),
    ("tickets.json", {}, 404, "no endpoint"),
])
def test_errors_use_the_standard_format(api, path, params, status, words):
    answer = get(api, path, **params)
    assert answer.status_code == status
    if path.endswith(".xml"):
        root = ET.fromstring(answer.content)
        assert root.tag == "errors" and root.find("error/code").text == str(status)
        assert words in root.find("error/description").text
    else:
        assert answer.json() == [{"code": status, "description": answer.json()[0]["description"]}]
        assert words in answer.json()[0]["description"]


def test_writes_are_refused(api):
    answer = requests.post(f"{api.endpoint}/requests.json", data={"service_code": "x"}, timeout=30)
    assert answer.status_code == 405 and answer.json()[0]["code"] == 405


def test_an_existing_open311_client_reads_every_published_request(api, dataset, monkeypatch):
    """The project's own GeoReport v2 connector (date windows, paging) walks the whole dataset."""
    import ingestion.open311 as connector
    from ingestion.core import Batch, Rejected
    from ingestion.registry import load_registry

    monkeypatch.setenv("CV_OPEN311_URL", api.endpoint)
    first = min(r["received_at"] for r in dataset[1].values()).date() - timedelta(days=3)
    entry = load_registry().get("app311")
    for fmt in ("json", "xml"):
        configured = entry.model_copy(update={"system": entry.system.model_copy(
            update={"first_date": first.isoformat(), "format": fmt})})
        items = list(connector.extract(configured, {}))
        assert not [i for i in items if isinstance(i, Rejected)]
        ids = [row["service_request_id"] for b in items if isinstance(b, Batch) and b.table == "requests"
               for row in b.rows.to_pylist()]
        assert sorted(ids) == sorted(dataset[1])


def test_a_republished_dataset_is_picked_up(api, dataset, tmp_path):
    path, rows = dataset
    import pyarrow.compute as pc

    table = pq.read_table(path)
    kept = table.filter(pc.field("order_no") != sorted(rows)[0])
    pq.write_table(kept, tmp_path / "w.parquet")
    with Open311Api(tmp_path / "w.parquet", port=0) as other:
        assert get(other, f"requests/{sorted(rows)[0]}.json").status_code == 404
        (tmp_path / "w2.parquet").write_bytes(path.read_bytes())
        (tmp_path / "w2.parquet").replace(tmp_path / "w.parquet")  # the publication swaps files atomically
        assert get(other, f"requests/{sorted(rows)[0]}.json").status_code == 200
