"""The implemented stages (parent side): what each measures, in which process, against which floor.

A stage function takes the run's Context and returns Stage records: the stage as a whole first,
then its sub-measurements (named `<stage> · <part>`). Later issues add theirs here (or in a module
imported from here) with `@stage("transform")`, etc.; until then the harness reports them as skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

import yaml

from bench.harness import Context, Floor, Measurement, Stage, stage

BENCH_HOTLINE_TOKEN = "bench-token"


# -- generate ----------------------------------------------------------------------------------------------------
@stage("generate")
def generate(ctx: Context) -> list[Stage]:
    ctx.ensure_city()
    counts = ctx.manifest()["counts"]
    files = ", ".join(f"{k} {v:,}" for k, v in counts["system_records"].items())
    what = f"{counts['events']:,} events; system records: {files}"
    if ctx.generated is not None:
        m = ctx.generated
        return [Stage.measured("generate", m.seconds, m.rows, m.peak_rss_mb, notes=what,
                               details={**m.result, "process_seconds": round(m.process_seconds, 3)})]
    built = ctx.city_dir / "bench-generate.json"
    if not built.exists():
        return [Stage(name="generate", rows=counts["work_orders"],
                      notes=f"cached city built outside the harness: not measured; {what}")]
    record = json.loads(built.read_text(encoding="utf-8"))
    return [Stage.measured("generate", record["seconds"], record["result"]["rows"], record["peak_rss_mb"],
                           notes=f"cached city: figures from its build at {record['built_at']}; {what}",
                           details={**record["result"], "cached": True})]


# -- ingest ------------------------------------------------------------------------------------------------------
def _link_tree(source: Path, target: Path, skip: set[str]) -> None:
    """A copy of the city made of hard links (instant, no space): the file-drop connector moves rejected
    files aside, so each run gets its own folder and the cached city stays as it was generated."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts[0] in skip:
            continue
        destination = target / relative
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copy2(path, destination)


def _env_names(value, found: set[str]) -> None:
    """Every environment variable named by the registry (addresses, folders, credentials)."""
    if isinstance(value, dict):
        if isinstance(value.get("env"), str):
            found.add(value["env"])
        for item in value.values():
            _env_names(item, found)
    elif isinstance(value, list):
        for item in value:
            _env_names(item, found)


def _bench_registry(ctx: Context, registry_path: Path) -> tuple[Path, set[str]]:
    """The registry as it is, except: an Open311 source's `first_date` is the city's first day (the bench
    cities hold a year of history ending in the past, which may start before the registry's first_date)."""
    raw = yaml.safe_load(registry_path.read_text(encoding="utf-8"))
    for entry in raw.get("sources", []):
        system = entry.get("system", {})
        if system.get("kind") == "open311":
            system["first_date"] = ctx.params["start"]
    path = ctx.work_dir / "sources.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    names: set[str] = set()
    _env_names(raw, names)
    return path, names


@contextlib.contextmanager
def _environment(env: dict[str, str]):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _floor_task(ctx: Context, entry, env: dict[str, str]) -> tuple[str, dict] | tuple[None, str]:
    """(task, args) of the floor of a source, or (None, why there is none)."""
    import sqlalchemy as sa

    from ingestion.registry import FileDropSource, SqlDatabaseSource

    floors = ctx.work_dir / "floors"
    database = str(floors / f"{entry.name}.duckdb")
    system = entry.system
    if isinstance(system, FileDropSource):
        with _environment(env):
            folder = Path(system.folder.resolve(f"{entry.name}: folder"))
        formats = {family.format for family in system.files}
        files = sorted({str(p) for family in system.files for p in folder.glob(family.pattern) if p.is_file()})
        if not files:
            return None, "no files to read"
        if formats == {"csv"}:
            return "floor_duckdb_csv", {"files": files, "database": database,
                                        "utf8_dir": str(floors / f"{entry.name}-utf8")}
        if formats == {"json"}:
            return "floor_duckdb_json", {"files": files, "database": database}
        if formats == {"xlsx"}:
            return "floor_xlsx", {"files": files, "database": database}
        return None, f"no floor for a mix of formats ({', '.join(sorted(formats))})"
    if isinstance(system, SqlDatabaseSource):
        with _environment(env):
            url = sa.engine.make_url(system.url.resolve(f"{entry.name}: url"))
        if url.get_backend_name() != "sqlite" or not url.database:
            return None, f"no floor for {url.get_backend_name()} (only SQLite files)"
        return "floor_sqlite", {"sqlite": url.database, "tables": [t.name for t in system.tables],
                                "database": database}
    if entry.kind == "rest_api":
        with _environment(env):
            base_url = system.base_url.resolve(f"{entry.name}: base_url")
            token = system.auth.token.resolve(f"{entry.name}: token") \
                if system.auth.type == "bearer" and system.auth.token is not None else None
        if system.auth.type == "basic":
            return None, "HTTP source with basic auth: no floor"
        endpoints = [{"path": e.path, "pagination": e.pagination, "page_size": e.page_size,
                      "data_selector": e.data_selector, "next_cursor_field": e.next_cursor_field}
                     for e in system.endpoints]
        return "floor_http_paging", {"base_url": base_url, "token": token, "endpoints": endpoints}
    return None, "HTTP source (Open311 date windows): bounded by the sandbox server, no floor"


def _source_notes(m: Measurement) -> str:
    r = m.result
    tables = ", ".join(f"{name} {t['received']:,}" for name, t in r["tables"].items())
    parts = [f"received {tables}", f"quarantined {r['quarantined']:,}"]
    if r["rejected_units"]:
        parts.append(f"rejected units {r['rejected_units']}")
    return "; ".join(parts)


@stage("ingest")
def ingest(ctx: Context) -> list[Stage]:
    """Every registered source through `ingestion.pipeline.run`, one process each, into one fresh warehouse
    (each source into its own fresh raw_<name> dataset); HTTP sources served by SandboxServers from this
    process. Before each file or SQL source, its floor reads the same files/tables in its own process."""
    from ingestion.registry import DEFAULT_REGISTRY, load_registry
    from simulator.servers import SandboxServers

    city = ctx.ensure_city()
    sandbox = ctx.work_dir / "sandbox"
    _link_tree(city, sandbox, skip={"truth"})
    for leftover in (ctx.warehouse, ctx.warehouse.with_suffix(".duckdb.wal"), ctx.root / ".dlt_pipelines",
                     ctx.work_dir / "floors"):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink(missing_ok=True)
    (ctx.work_dir / "floors").mkdir(parents=True)
    registry_path, env_names = _bench_registry(ctx, Path(os.environ.get("CV_SOURCE_REGISTRY") or DEFAULT_REGISTRY))
    registry = load_registry(registry_path)

    env = {k: v for k, v in ctx.base_env().items() if k not in env_names}  # never the caller's real systems
    env.update({"CV_SANDBOX": str(sandbox), "CV_SOURCE_REGISTRY": str(registry_path)})
    records: list[Stage] = []
    with SandboxServers(sandbox, hotline_port=0, open311_port=0, hotline_token=BENCH_HOTLINE_TOKEN) as servers:
        for entry in registry.sources:
            system = entry.system
            if entry.kind == "rest_api":
                if system.base_url.env:
                    env[system.base_url.env] = servers.hotline_url
                if system.auth.token is not None and system.auth.token.env:
                    env[system.auth.token.env] = BENCH_HOTLINE_TOKEN
            elif entry.kind == "open311" and system.base_url.env:
                env[system.base_url.env] = servers.open311_url
        ctx.log(f"[bench] sandbox servers: {servers.hotline_url} (12345 API), {servers.open311_url} (Open311)")
        for entry in registry.sources:
            floor = None
            floor_note = ""
            task, floor_args = _floor_task(ctx, entry, env)
            if task is None:
                floor_note = floor_args
            else:
                fm = ctx.measure(task, floor_args, label=f"floor-{entry.name}", env=env)
                if fm.ok:
                    floor = Floor(name=_floor_name(task, fm.result), seconds=fm.seconds, rows=fm.rows,
                                  peak_rss_mb=fm.peak_rss_mb, notes=fm.result.get("how", ""))
                    floor_note = f"floor: {fm.result.get('how', task)}"
                else:
                    floor_note = f"floor failed: {fm.error[:200]}"
            m = ctx.measure("ingest_source", {"source": entry.name, "warehouse": str(ctx.warehouse)},
                            label=f"ingest-{entry.name}", env=env)
            name = f"ingest · {entry.name}"
            if not m.ok:
                records.append(Stage(name=name, peak_rss_mb=m.peak_rss_mb, notes=f"failed: {m.error[:300]}"))
                continue
            details = {**m.result, "process_seconds": round(m.process_seconds, 3), "floor_result": None}
            if task is not None and floor is not None:
                details["floor_result"] = fm.result
            records.append(Stage.measured(name, m.seconds, m.rows, m.peak_rss_mb, floor=floor,
                                          notes=f"{entry.kind}; {_source_notes(m)}"
                                                + (f"; {floor_note}" if floor_note else ""),
                                          details=details))
        stats = {"hotline": _server_stats(servers.hotline), "open311": _server_stats(servers.open311)}
    measured = [r for r in records if r.seconds is not None]
    total = Stage.measured(
        "ingest", sum(r.seconds for r in measured), sum(r.rows for r in measured),
        max((r.peak_rss_mb or 0 for r in records), default=None),
        notes=f"{len(measured)} of {len(records)} sources, one process each, one after another into one fresh "
              "warehouse; ratios per source below",
        details={"warehouse": str(ctx.warehouse), "server_stats": _jsonable(stats)})
    return [total, *records]


def _server_stats(server) -> dict | None:
    stats = getattr(server, "stats", None)
    return stats() if callable(stats) else stats


def _floor_name(task: str, result: dict) -> str:
    if task == "floor_duckdb_csv":
        return "duckdb read_csv" + (" (UTF-8 copy)" if result.get("transcoded") else "")
    if task == "floor_duckdb_json":
        return "duckdb read_json"
    if task == "floor_sqlite":
        return "duckdb sqlite_scan" if result.get("scanner") else "sqlite3→Arrow→duckdb"
    if task == "floor_xlsx":
        return "openpyxl→Arrow→duckdb"
    if task == "floor_http_paging":
        return "server: plain paging client"
    return re.sub(r"^floor_", "", task)


def _jsonable(value):
    try:
        json.dumps(value, default=str)
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


# -- transform ---------------------------------------------------------------------------------------------------
@stage("transform")
def transform(ctx: Context) -> list[Stage]:
    """dbt build of the ingested warehouse: full refresh, then the floor (the same compiled SQL run
    directly in DuckDB on a copy), then an incremental build with no new data (the fixed cost of a
    daily run: dbt start-up, tests, the rebuilt intermediates and open orders)."""
    if not ctx.warehouse.exists():
        return [Stage(name="transform", notes="skipped: no ingested warehouse (run the ingest stage first)")]
    target = str(ctx.work_dir / "dbt_target")
    args = {"warehouse": str(ctx.warehouse), "target_path": target}
    full = ctx.measure("transform_dbt", {**args, "mode": "full"}, label="transform-full")
    if not full.ok:
        return [Stage(name="transform", peak_rss_mb=full.peak_rss_mb, notes=f"failed: {full.error[:300]}")]
    floor_copy = ctx.work_dir / "floor-transform.duckdb"
    shutil.copyfile(ctx.warehouse, floor_copy)
    fm = ctx.measure("floor_transform_sql", {"warehouse": str(floor_copy), "target_path": target,
                                              "catalog": str(ctx.warehouse)},
                     label="floor-transform")
    floor_copy.unlink(missing_ok=True)
    floor = None
    if fm.ok:
        floor = Floor(name="model SQL in DuckDB", seconds=fm.seconds, rows=fm.rows, peak_rss_mb=fm.peak_rss_mb,
                      notes=fm.result.get("how", ""))
    incremental = ctx.measure("transform_dbt", {**args, "mode": "incremental"}, label="transform-incremental")
    records = [Stage.measured("transform", full.seconds, full.rows, full.peak_rss_mb, floor=floor,
                              notes=f"dbt build --full-refresh (models, seeds, data and unit tests); "
                                    f"{full.result.get('dbt_summary', '')}"
                                    + ("" if fm.ok else f"; floor failed: {fm.error[:200]}"),
                              details=full.result)]
    if incremental.ok:
        records.append(Stage.measured("transform · incremental", incremental.seconds, incremental.rows,
                                      incremental.peak_rss_mb,
                                      notes="dbt build after no new loads: the fixed cost of a daily run",
                                      details=incremental.result))
    else:
        records.append(Stage(name="transform · incremental", notes=f"failed: {incremental.error[:300]}"))
    return records
# the other stages register themselves on import
from bench import scenario_increment, stages_checks, stages_indicators, stages_publish, stages_text  # noqa: E402,F401
