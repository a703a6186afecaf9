"""Alerts: a record of every failed run or failed blocking check, optionally posted to a webhook.

Records live in a small SQLite file (CV_OPS_DIR/alerts.sqlite), not in the warehouse: an alert is
raised exactly when a warehouse writer may have failed mid-way, and it must never wait for (or block)
the DuckDB file. Delivery to the webhook is best effort; its outcome is stored with the alert.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

from citizen_voice import settings

WEBHOOK_FORMATS = ("json", "wecom", "dingtalk")

SCHEMA = """
create table if not exists alerts (
    alert_id integer primary key autoincrement,
    raised_at text not null,
    kind text not null,
    job text,
    run_id text,
    assets text not null,
    checks text not null,
    error text not null,
    link text,
    delivery text not null
)
"""


@dataclass
class Alert:
    kind: str  # run_failure | check_failure
    error: str
    job: str | None = None
    run_id: str | None = None
    assets: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    link: str | None = None
    raised_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def summary(self) -> str:
        what = "运行失败 run failed" if self.kind == "run_failure" else "阻断性检查未通过 blocking check failed"
        lines = [f"[citizen-voice] {what}: {self.job or '-'}"]
        if self.assets:
            lines.append("资产 assets: " + ", ".join(self.assets))
        if self.checks:
            lines.append("检查 checks: " + ", ".join(self.checks))
        lines.append("错误 error: " + self.error[:500])
        if self.link:
            lines.append(self.link)
        return "\n".join(lines)


def run_link(run_id: str) -> str:
    return f"{settings.dagster_ui_url()}/runs/{run_id}"


class AlertStore:
    def __init__(self, path: Path | None = None):
        self.path = path or settings.ops_dir() / "alerts.sqlite"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute(SCHEMA)
        return con

    def add(self, alert: Alert, delivery: str) -> int:
        with self._connect() as con:
            cursor = con.execute(
                "insert into alerts (raised_at, kind, job, run_id, assets, checks, error, link, delivery) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (alert.raised_at, alert.kind, alert.job, alert.run_id, json.dumps(alert.assets, ensure_ascii=False),
                 json.dumps(alert.checks, ensure_ascii=False), alert.error, alert.link, delivery))
            return cursor.lastrowid

    def recent(self, limit: int = 20) -> list[dict]:
        if not self.path.exists():
            return []
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            rows = con.execute("select * from alerts order by alert_id desc limit ?", (limit,)).fetchall()
        return [{**dict(row), "assets": json.loads(row["assets"]), "checks": json.loads(row["checks"])}
                for row in rows]


def webhook_payload(alert: Alert, fmt: str) -> dict:
    if fmt == "wecom":
        return {"msgtype": "text", "text": {"content": alert.summary()}}
    if fmt == "dingtalk":
        return {"msgtype": "text", "text": {"content": alert.summary()}}
    if fmt == "json":
        return {"text": alert.summary(), "alert": asdict(alert)}
    raise ValueError(f"CV_ALERT_WEBHOOK_FORMAT must be one of {', '.join(WEBHOOK_FORMATS)}, not {fmt!r}")


def post_webhook(url: str, alert: Alert, fmt: str = "json", timeout: float = 10.0) -> str:
    """Post the alert; returns the delivery outcome as text (never raises for network trouble)."""
    payload = webhook_payload(alert, fmt)
    try:
        response = requests.post(url, json=payload, timeout=timeout)
    except requests.RequestException as exc:
        return f"failed: {type(exc).__name__}: {exc}"
    if response.status_code >= 400:
        return f"failed: HTTP {response.status_code}"
    return f"delivered: HTTP {response.status_code}"


def raise_alert(alert: Alert, store: AlertStore | None = None) -> tuple[int, str]:
    """Record the alert and post it to the configured webhook, if any. Returns (alert id, delivery)."""
    url = settings.alert_webhook_url()
    delivery = post_webhook(url, alert, settings.alert_webhook_format()) if url else "not configured"
    return (store or AlertStore()).add(alert, delivery), delivery
