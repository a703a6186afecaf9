"""The demo: the whole pipeline on the sandbox city, from department systems to the bulletin."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, timedelta

from citizen_voice import settings, warehouse

SHOWN_TABLES = ("raw_hotline.orders", "raw_hotline.events", "raw_app311.requests", "raw_zhujian.gd_main",
                "raw_chengguan.tickets", "raw_gongdian.tickets", "raw_survey.visits", "quality.quarantine",
                "marts.fct_work_orders", "marts.fct_work_order_events", "text.classifications", "text.hot_topics",
                "text.early_warnings", "text.repeat_demands", "indicators.indicator_values", "indicators.rankings",
                "quality.scorecard_ranking")
PUBLISHED_ASSETS = {("publish", "bulletin_monthly"): "monthly bulletin", ("publish", "bulletin_weekly"): "weekly brief",
                    ("publish", "department_shares"): "department shares", ("publish", "open_data"): "open data",
                    ("publish", "serving_snapshot"): "BI snapshot"}


def ensure_sandbox(params, echo: Callable[[str], None]) -> dict:
    from simulator.manifest import MANIFEST_VERSION, build_sandbox, load_manifest

    folder = settings.sandbox_dir()
    wanted = {**asdict(params), "start": params.start.isoformat(), "end": params.end.isoformat()}
    if (folder / "manifest.json").exists() and load_manifest(folder)["params"] == wanted \
            and load_manifest(folder).get("manifest_version") == MANIFEST_VERSION:
        echo(f"reusing the sandbox city in {folder}")
        return load_manifest(folder)
    echo(f"generating the sandbox city in {folder} ({params.days} days, ~{params.orders_per_day} orders/day)")
    if folder.exists():
        shutil.rmtree(folder)
    return build_sandbox(params, folder)


def fresh_warehouse() -> None:
    """The demo starts from an empty warehouse and empty dlt state."""
    path = settings.warehouse_path()
    for leftover in (path, path.with_suffix(path.suffix + ".wal"), path.parent / ".dlt_pipelines"):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        elif leftover.exists():
            leftover.unlink()


def demo_periods(start: date, end: date) -> tuple[date, list[str], date]:
    """What the demo publishes: the daily update as of the sandbox's last day, a bulletin for every month
    it covers, and the weekly brief of its last complete week (Monday to Sunday)."""
    months = sorted({f"{start + timedelta(days=i):%Y-%m}" for i in range((end - start).days + 1)})
    last_sunday = end if end.isoweekday() == 7 else end - timedelta(days=end.isoweekday())
    return end, months, last_sunday


def run_demo(params, echo: Callable[[str], None] = print) -> dict:
    from orchestration.run import run_pipeline
    from simulator.servers import SandboxServers

    manifest = ensure_sandbox(params, echo)
    fresh_warehouse()
    with SandboxServers(settings.sandbox_dir(), hotline_port=0, open311_port=0,
                        hotline_token=settings.hotline_token()) as servers:
        os.environ["CV_HOTLINE_URL"] = servers.hotline_url
        os.environ["CV_OPEN311_URL"] = servers.open311_url
        echo(f"sandbox servers up: {servers.hotline_url} (12345 API), {servers.open311_url} (Open311)")
        day, months, week_of = demo_periods(params.start, params.end)
        runs = run_pipeline(day=day, months=months, week_of=week_of)
    for job, key, run in runs:
        echo(f"run {job} [{key}]: {'succeeded' if run.success else 'FAILED'} ({run.run_id[:8]})")
    success = all(run.success for _, _, run in runs)
    tables = {}
    loads = []
    published: list[tuple[str, str]] = []
    if success:
        with warehouse.connect(read_only=True) as con:
            for table in SHOWN_TABLES:
                tables[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
            loads = con.execute("select source, received, loaded, quarantined, rejected_units, reconciles "
                                "from ops.load_log order by source").fetchall()
        events = [e for _, _, run in runs for e in run.get_asset_materialization_events()]
        for event in events:
            what = PUBLISHED_ASSETS.get(tuple(event.asset_key.path))
            if what:
                metadata = event.materialization.metadata
                shown = next((metadata[k].value for k in ("pdf", "html", "folder", "path") if k in metadata), "")
                published.append((what, str(shown)))
    return {
        "success": success,
        "sandbox_dir": str(settings.sandbox_dir()),
        "sandbox": manifest["counts"],
        "warehouse": str(settings.warehouse_path()),
        "tables": tables,
        "loads": loads,
        "published": sorted(published),
        "dagster_home": str(settings.dagster_home()),
    }
