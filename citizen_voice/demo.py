"""The demo: the whole pipeline on the sandbox city, from department systems to the bulletin."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import asdict

from citizen_voice import settings, warehouse

SHOWN_TABLES = ("raw_hotline.orders", "raw_hotline.events", "raw_app311.requests", "raw_zhujian.gd_main",
                "raw_chengguan.tickets", "raw_gongdian.tickets", "raw_survey.visits", "marts.fct_work_orders",
                "indicators.district_monthly")


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


def run_demo(params, echo: Callable[[str], None] = print) -> dict:
    from orchestration.run import materialize_all
    from simulator.servers import SandboxServers

    manifest = ensure_sandbox(params, echo)
    fresh_warehouse()
    with SandboxServers(settings.sandbox_dir(), hotline_port=0, open311_port=0,
                        hotline_token=settings.hotline_token()) as servers:
        os.environ["CV_HOTLINE_URL"] = servers.hotline_url
        os.environ["CV_OPEN311_URL"] = servers.open311_url
        echo(f"sandbox servers up: {servers.hotline_url} (12345 API), {servers.open311_url} (Open311)")
        result = materialize_all(quiet=True)
    tables = {}
    loads = []
    bulletin_path = None
    if result.success:
        with warehouse.connect(read_only=True) as con:
            for table in SHOWN_TABLES:
                tables[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
            loads = con.execute("select source, received, loaded, quarantined, rejected_units, reconciles "
                                "from ops.load_log order by source").fetchall()
        bulletin_path = next(
            (str(event.materialization.metadata["path"].value)
             for event in result.get_asset_materialization_events()
             if event.asset_key.path == ["published", "bulletin_monthly"]), None)
    return {
        "success": result.success,
        "sandbox_dir": str(settings.sandbox_dir()),
        "sandbox": manifest["counts"],
        "warehouse": str(settings.warehouse_path()),
        "tables": tables,
        "loads": loads,
        "bulletin": bulletin_path,
        "dagster_home": str(settings.dagster_home()),
    }
