"""ingestion.http against a real sandbox server: raw bodies, refusals, retries."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ingestion.http import JsonApiClient, RequestRefused, RetryPolicy, SourceUnavailable
from simulator.servers import Open311Server


@pytest.fixture
def server(pipeline_city):
    with Open311Server(pipeline_city[0] / "systems" / "open311.sqlite", port=0) as server:
        yield server


def test_get_and_get_bytes(server):
    client = JsonApiClient(server.endpoint)
    services = client.get("services.json")
    root = ET.fromstring(client.get_bytes("/services.xml"))
    assert [s["service_code"] for s in services] == [e.findtext("service_code") for e in root]


def test_a_client_error_is_refused_at_once_with_status_and_body(server):
    client = JsonApiClient(server.endpoint)
    with pytest.raises(RequestRefused) as refused:
        client.get("requests.json", {"page_size": "0"})
    assert isinstance(refused.value, SourceUnavailable)
    assert refused.value.status == 400 and "page_size" in refused.value.body
    assert client.stats == {"requests": 1, "retries": 0}


def test_throttling_is_retried_then_reported_unavailable(server):
    server.set_faults(throttle_rate=1.0)
    client = JsonApiClient(server.endpoint, retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05))
    with pytest.raises(SourceUnavailable, match="failed 3 times; last problem: HTTP 429") as failed:
        client.get("services.json")
    assert not isinstance(failed.value, RequestRefused)
    assert server.stats["throttled"] == 3
