"""Alerts: a failed run and a failed blocking check are recorded and posted to a real webhook."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from citizen_voice.ops.alerts import Alert, AlertStore, post_webhook, webhook_payload
from orchestration.defs.operations import alert_for_failed_run, alert_on_failure


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps what it receives."""

    def __init__(self, status: int = 200):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@dg.asset
def good_table():
    return 1


@dg.asset_check(asset=good_table, blocking=True)
def rows_valid():
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"failing_rows": 3})


@dg.asset
def broken_table():
    raise RuntimeError("department system returned garbage")


def _failed_run(instance, assets, checks=()):
    job = dg.Definitions(assets=assets, asset_checks=list(checks)).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return result


def test_failed_run_alert_names_step_and_error(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = _failed_run(instance, [broken_table])
        alert = alert_for_failed_run(instance, result.dagster_run, "run failed")
    assert alert.kind == "run_failure"
    assert "department system returned garbage" in alert.error
    assert "broken_table" in alert.error
    assert alert.link.endswith(f"/runs/{result.run_id}")


def test_failed_blocking_check_alert_names_the_check(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = _failed_run(instance, [good_table], [rows_valid])
        alert = alert_for_failed_run(instance, result.dagster_run, "run failed")
    assert alert.kind == "check_failure"
    assert alert.checks == ["good_table:rows_valid (blocking)"]


def test_sensor_records_alert_and_posts_webhook(tmp_path, monkeypatch):
    monkeypatch.setenv("CV_OPS_DIR", str(tmp_path / "ops"))
    with Receiver() as receiver, dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        monkeypatch.setenv("CV_ALERT_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("CV_ALERT_WEBHOOK_FORMAT", "wecom")
        result = _failed_run(instance, [broken_table])
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            sensor_name="alert_on_failure", dagster_event=failure, dagster_instance=instance,
            dagster_run=result.dagster_run).for_run_failure()
        alert_on_failure(context)
    stored = AlertStore(tmp_path / "ops" / "alerts.sqlite").recent()
    assert len(stored) == 1 and stored[0]["run_id"] == result.run_id
    assert stored[0]["delivery"] == "delivered: HTTP 200"
    assert len(receiver.received) == 1
    assert receiver.received[0]["msgtype"] == "text"
    assert "department system returned garbage" in receiver.received[0]["text"]["content"]


def test_webhook_failure_is_recorded_not_raised():
    alert = Alert(kind="run_failure", error="boom", job="daily")
    with Receiver(status=500) as receiver:
        assert post_webhook(receiver.url, alert) == "failed: HTTP 500"
    assert post_webhook("http://127.0.0.1:9/none", alert, timeout=2).startswith("failed:")


def test_unknown_webhook_format_is_a_clear_error():
    with pytest.raises(ValueError, match="CV_ALERT_WEBHOOK_FORMAT"):
        webhook_payload(Alert(kind="run_failure", error="x"), "slackish")
