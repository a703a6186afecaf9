"""The work measured in a child process (`python -m bench.stage TASK`): one function per task.

A task takes its arguments (a dict from JSON), does its imports first, then times only its work in a
`Work` block, and returns a JSON-able dict with at least `seconds` (the work) and `rows`.
Instrumentation is cheap and per batch (never per row), so it does not change what it measures;
`--profile` (cProfile) does, and results measured with it are marked as profiled.
"""

from __future__ import annotations

import gc
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

TASKS: dict[str, Callable[[dict], dict]] = {}
PROFILER = None  # a cProfile.Profile when the harness asked for a profile (bench.stage --profile)


def task(name: str):
    def register(function):
        TASKS[name] = function
        return function
    return register


def maxrss_mb() -> float:
    divisor = 1024 * 1024 if sys.platform == "darwin" else 1024
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / divisor, 1)


def tree_rss_mb(root: int) -> float:
    """Resident memory of the process `root` and all its descendants, in MB (0 for a vanished process)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pages, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            pass
        todo += parents.get(pid, [])
    return pages * resource.getpagesize() / 2**20


class RssSampler:
    """The resident memory of this process and every process under it (Linux /proc) every `interval`
    seconds while the block runs, as (unix time, MB): which part of a run holds the peak. The processes
    are summed, so while dbt's CLI or jieba's workers run, the figure is the machine's cost of the run
    (pages shared between them counted in each: an upper bound).
    Once a second: sampling every 0.1 s slowed the run (the 12345 API load at 1M took 21 s instead of 10 s)."""

    def __init__(self, interval: float = 1.0):
        self.interval, self.samples = interval, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), tree_rss_mb(os.getpid())))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self, start: float, end: float) -> float | None:
        within = [mb for at, mb in self.samples if start <= at <= end]
        return round(max(within), 1) if within else None


class Work:
    """Times (and when asked, profiles) the measured part of a task."""

    seconds: float = 0.0

    def __enter__(self) -> Work:
        gc.collect()
        self.rss_before_mb = maxrss_mb()
        if PROFILER is not None:
            PROFILER.enable()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self.started
        if PROFILER is not None:
            PROFILER.disable()

    def result(self, rows: int, **extra) -> dict:
        return {"seconds": round(self.seconds, 4), "rows": int(rows), "rss_before_work_mb": self.rss_before_mb,
                "rss_after_work_mb": maxrss_mb(), **extra}


def _sql_string(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _sql_list(paths) -> str:
    return "[" + ", ".join(_sql_string(p) for p in paths) + "]"


# -- generate ----------------------------------------------------------------------------------------------------
@task("generate")
def generate(args: dict) -> dict:
    from bench.harness import sandbox_params
    from simulator.manifest import build_sandbox

    params = sandbox_params(args["params"])
    with Work() as work:
        manifest = build_sandbox(params, Path(args["out_dir"]))
    counts = manifest["counts"]
    return work.result(counts["work_orders"], events=counts["events"], system_records=counts["system_records"],
                       build_seconds=manifest["seconds"])


# -- ingest: one registered source through the platform's own pipeline -----------------------------------------
class _Timer:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1
        return timed

    def wrap_generator(self, name: str, function):
        """Time spent inside a generator (between its yields), not in its consumer."""
        def timed(*args, **kwargs):
            iterator = function(*args, **kwargs)
            try:
                while True:
                    started = time.perf_counter()
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                    finally:
                        self.seconds[name] += time.perf_counter() - started
                    self.calls[name] += 1
                    yield item
            finally:
                iterator.close()
        return timed


@task("ingest_source")
def ingest_source(args: dict) -> dict:
    """`ingestion.pipeline.run(source, warehouse)`, exactly as the platform runs it, with per-batch timers
    on the connector's extractor, the boundary and privacy, and dlt's own step times from its trace."""
    import importlib

    import dlt

    from ingestion import boundary, pipeline
    from ingestion.registry import load_registry

    source = args["source"]
    warehouse = Path(args["warehouse"])
    entry = load_registry().get(source)
    connector = importlib.import_module(pipeline.extractor_for(entry.kind).__module__)  # imported before timing
    import citizen_voice.privacy  # noqa: F401 - imported before timing

    timer = _Timer()
    connector.extract = timer.wrap_generator("connector", connector.extract)
    boundary.process = timer.wrap("boundary", boundary.process)
    boundary.Protector.protect = timer.wrap("privacy", boundary.Protector.protect)

    with Work() as work:
        record = pipeline.run(source, warehouse)
    counts = json.loads(record["counts"])
    steps = {}
    try:
        attached = dlt.attach(pipeline_name=f"cv_{entry.dataset}", pipelines_dir=str(warehouse.parent / ".dlt_pipelines"))
        trace = attached.last_trace
        for step in trace.steps if trace else []:
            if step.finished_at and step.started_at:
                steps[step.step] = round((step.finished_at - step.started_at).total_seconds(), 3)
    except Exception as exc:  # noqa: BLE001 - the trace is informative only
        steps["error"] = f"{type(exc).__name__}: {exc}"
    return work.result(
        record["received"], kind=entry.kind, received=record["received"], loaded=record["loaded"],
        quarantined=record["quarantined"], rejected_units=record["rejected_units"], reconciles=record["reconciles"],
        tables={t: {"received": n, "loaded": counts["loaded"].get(t, 0), "quarantined": counts["quarantined"].get(t, 0)}
                for t, n in counts["received"].items()},
        rejected=[{k: u[k] for k in ("table", "origin", "reason", "records")} for u in counts["rejected_units"]],
        breakdown_seconds={
            "connector": round(timer.seconds["connector"], 3),  # inside the extractor (reading, parsing, HTTP)
            "boundary_checks": round(timer.seconds["boundary"] - timer.seconds["privacy"], 3),
            "privacy": round(timer.seconds["privacy"], 3),  # pseudonyms, masks, free-text scrubbing
            **{f"dlt_{name}": value for name, value in steps.items()},
        },
        batches=timer.calls["connector"], pipeline_seconds=record.get("seconds"))


# -- floors: the same data read as directly as possible --------------------------------------------------------
def _duckdb_threads(con) -> int:
    return int(con.execute("select current_setting('threads')").fetchone()[0])


@task("floor_duckdb_csv")
def floor_duckdb_csv(args: dict) -> dict:
    """DuckDB's read_csv of the drop files into a table of a fresh database file (all columns as text, like
    the connector). DuckDB reads UTF-8, UTF-16 and Latin-1 itself; other encodings (GBK) need its
    `encodings` extension: when that cannot be loaded, the files are first transcoded to UTF-8 copies
    (timed apart, not part of the floor)."""
    import duckdb

    files = [Path(f) for f in args["files"]]
    database = Path(args["database"])
    utf8_dir = Path(args["utf8_dir"])
    database.unlink(missing_ok=True)
    con = duckdb.connect(str(database))
    con.execute("set autoinstall_known_extensions = false")
    native = None
    try:
        con.execute("load encodings")
        native = args.get("encoding_name", "gb18030")
    except duckdb.Error:
        pass
    transcoded = 0
    started = time.perf_counter()
    readable = []
    if native is None:
        utf8_dir.mkdir(parents=True, exist_ok=True)
        for path in files:
            data = path.read_bytes()
            try:
                data.decode("utf-8")
                readable.append(path)
            except UnicodeDecodeError:
                copy = utf8_dir / path.name
                copy.write_text(data.decode("gb18030", errors="replace"), encoding="utf-8")
                readable.append(copy)
                transcoded += 1
    else:
        readable = files
    transcode_seconds = time.perf_counter() - started
    options = "header = true, all_varchar = true, ignore_errors = true, filename = true"
    if native:
        options += f", encoding = {_sql_string(native)}"
    with Work() as work:
        con.execute(f"create table floor as select * from read_csv({_sql_list(readable)}, {options})")
        rows = con.execute("select count(*) from floor").fetchone()[0]
        threads = _duckdb_threads(con)
        con.close()
    how = f"encoding {native} (encodings extension)" if native else \
        f"{transcoded} of {len(files)} files transcoded GBK→UTF-8 first ({transcode_seconds:.2f} s, not in the floor)"
    return work.result(rows, files=len(files), transcoded=transcoded, transcode_seconds=round(transcode_seconds, 3),
                       how=how, duckdb_threads=threads,
                       input_mb=round(sum(f.stat().st_size for f in files) / 2**20, 1))


@task("floor_duckdb_json")
def floor_duckdb_json(args: dict) -> dict:
    """DuckDB's read_json of the export files into a table of a fresh database file."""
    import duckdb

    files = [Path(f) for f in args["files"]]
    database = Path(args["database"])
    database.unlink(missing_ok=True)
    with Work() as work:
        con = duckdb.connect(str(database))
        con.execute(f"create table floor as select * from read_json({_sql_list(files)}, format = 'auto', "
                    "ignore_errors = true, filename = true)")
        rows = con.execute("select count(*) from floor").fetchone()[0]
        threads = _duckdb_threads(con)
        con.close()
    return work.result(rows, files=len(files), duckdb_threads=threads, how="read_json, format auto",
                       input_mb=round(sum(f.stat().st_size for f in files) / 2**20, 1))


def _arrow_column(values):
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


@task("floor_sqlite")
def floor_sqlite(args: dict) -> dict:
    """The SQLite tables into a fresh DuckDB file: with DuckDB's sqlite scanner when it can be loaded
    (it is not bundled and cannot be installed offline), else a plain sqlite3 → Arrow → DuckDB read."""
    import sqlite3

    import duckdb
    import pyarrow as pa

    sqlite_path = Path(args["sqlite"])
    tables = args["tables"]
    database = Path(args["database"])
    database.unlink(missing_ok=True)
    con = duckdb.connect(str(database))
    con.execute("set autoinstall_known_extensions = false")
    scanner = True
    try:
        con.execute("load sqlite_scanner")
    except duckdb.Error:
        scanner = False
    per_table = {}
    with Work() as work:
        rows = 0
        if scanner:
            for name in tables:
                con.execute(f'create table "{name}" as select * from sqlite_scan({_sql_string(sqlite_path)}, '
                            f"{_sql_string(name)})")
                per_table[name] = con.execute(f'select count(*) from "{name}"').fetchone()[0]
        else:
            source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
            for name in tables:
                cursor = source.execute(f'select * from "{name}"')
                names = [d[0] for d in cursor.description]
                records = cursor.fetchall()
                columns = list(zip(*records, strict=True)) if records else [()] * len(names)
                arrow = pa.Table.from_arrays([_arrow_column(list(c)) for c in columns], names=names)  # noqa: F841
                con.execute(f'create table "{name}" as select * from arrow')
                per_table[name] = len(records)
            source.close()
        rows = sum(per_table.values())
        con.close()
    how = "DuckDB sqlite_scan" if scanner else "sqlite3 → Arrow → DuckDB (DuckDB's sqlite scanner is not available offline)"
    extra = {}
    try:  # for comparison: connectorx (the connector's backend) reading the same tables into Arrow, nothing else
        import connectorx

        started = time.perf_counter()
        for name in tables:
            connectorx.read_sql(f"sqlite://{sqlite_path}", f'select * from "{name}"', return_type="arrow")
        extra["connectorx_to_arrow_seconds"] = round(time.perf_counter() - started, 3)
    except Exception as exc:  # noqa: BLE001 - informative only
        extra["connectorx_to_arrow_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return work.result(rows, how=how, tables=per_table, scanner=scanner, **extra)


@task("floor_xlsx")
def floor_xlsx(args: dict) -> dict:
    """The XLSX drops read with openpyxl (read-only, values only) into a DuckDB table. DuckDB's own XLSX
    reader (the excel extension) is not bundled and cannot be installed offline."""
    import duckdb
    import openpyxl
    import pyarrow as pa

    files = [Path(f) for f in args["files"]]
    database = Path(args["database"])
    database.unlink(missing_ok=True)
    with Work() as work:
        records: list[tuple] = []
        header = None
        broken = 0
        for path in files:
            try:
                book = openpyxl.load_workbook(path, read_only=True, data_only=True)
                rows = book.worksheets[0].iter_rows(values_only=True)
                first = next(rows, None)
                header = header or first
                records.extend(rows)
                book.close()
            except Exception:  # noqa: BLE001 - a truncated file: skipped, like ignore_errors
                broken += 1
        width = len(header or ())
        records = [tuple(r[:width]) + (None,) * (width - len(r)) for r in records]
        columns = list(zip(*records, strict=True)) if records else [()] * width
        arrow = pa.Table.from_arrays([_arrow_column(list(c)) for c in columns],  # noqa: F841
                                     names=[str(h) for h in header or ()])
        con = duckdb.connect(str(database))
        con.execute("create table floor as select * from arrow")
        con.close()
    return work.result(len(records), files=len(files), unreadable_files=broken,
                       how="openpyxl read_only → Arrow → DuckDB (DuckDB's excel extension is not available offline)")


@task("floor_http_paging")
def floor_http_paging(args: dict) -> dict:
    """The HTTP source's floor is its server: a plain client that pages through every endpoint as the
    registry describes it (same page size and pagination) and decodes the JSON — nothing else."""
    import requests

    base = args["base_url"].rstrip("/")
    rows = pages = 0
    with Work() as work:
        session = requests.Session()
        if args.get("token"):
            session.headers["Authorization"] = f"Bearer {args['token']}"
        for endpoint in args["endpoints"]:
            page, offset, token = 1, 0, None
            while True:
                params = {"page_size": endpoint["page_size"]}
                if endpoint["pagination"] == "page":
                    params["page"] = page
                elif endpoint["pagination"] == "offset":
                    params["offset"] = offset
                elif token:
                    params["cursor"] = token
                response = session.get(f"{base}/{endpoint['path'].lstrip('/')}", params=params, timeout=120)
                response.raise_for_status()
                body = response.json()
                data = body
                for part in filter(None, endpoint["data_selector"].split(".")):
                    data = data.get(part) if isinstance(data, dict) else None
                count = len(data or [])
                rows += count
                pages += 1
                if endpoint["pagination"] == "cursor":
                    token = body.get(endpoint["next_cursor_field"]) if isinstance(body, dict) else None
                    if not token:
                        break
                elif count < endpoint["page_size"]:
                    break
                page += 1
                offset += count
        session.close()
    return work.result(rows, pages=pages, how="plain paging client (requests + JSON decode only): the server's own rate")


# -- transform ---------------------------------------------------------------------------------------------------
def _dbt(args: dict, *extra: str) -> subprocess.CompletedProcess:
    import os

    from citizen_voice import settings

    project = str(settings.dbt_project_dir())
    return subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), *extra, "--project-dir", project, "--profiles-dir", project,
         "--target-path", args["target_path"], "--log-path", args["target_path"] + "-logs"],
        env={**os.environ, "CV_WAREHOUSE": args["warehouse"]}, capture_output=True, text=True)


@task("transform_dbt")
def transform_dbt(args: dict) -> dict:
    """`dbt build` (seeds, models, data and unit tests) on the ingested warehouse: `--full-refresh` for
    mode=full, a plain (incremental) build for mode=incremental."""
    import duckdb

    extra = ["--full-refresh"] if args["mode"] == "full" else []
    with Work() as work:
        result = _dbt(args, "build", *extra)
    if result.returncode != 0:
        raise RuntimeError(f"dbt build failed: {result.stdout[-2000:]}")
    with duckdb.connect(args["warehouse"], read_only=True) as con:
        orders = con.execute("select count(*) from marts.fct_work_orders").fetchone()[0]
        events = con.execute("select count(*) from marts.fct_work_order_events").fetchone()[0]
    summary = next((line for line in result.stdout.splitlines() if "Done. PASS=" in line), "")
    summary = re.sub(r"^\d{2}:\d{2}:\d{2}\s+", "", re.sub(r"\x1b\[[0-9;]*m", "", summary))
    return work.result(orders, fct_work_orders=orders, fct_work_order_events=events, dbt_summary=summary.strip())


def _models_in_order(manifest: dict) -> list[dict]:
    nodes = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    ordered, seen = [], set()

    def visit(key: str) -> None:
        if key in seen or key not in nodes:
            return
        seen.add(key)
        for parent in nodes[key]["depends_on"]["nodes"]:
            visit(parent)
        ordered.append(nodes[key])

    for key in sorted(nodes):
        visit(key)
    return ordered


@task("floor_transform_sql")
def floor_transform_sql(args: dict) -> dict:
    """The floor: every model's compiled SQL (from the dbt build's manifest, full-refresh form) run
    directly in DuckDB as `create or replace table` (views as views), in dependency order, no dbt, no
    tests."""
    import duckdb

    manifest = json.loads((Path(args["target_path"]) / "manifest.json").read_text(encoding="utf-8"))
    models = _models_in_order(manifest)
    missing = [m["name"] for m in models if not m.get("compiled_code")]
    if missing:
        raise RuntimeError(f"manifest has no compiled SQL for {missing}")
    # the compiled SQL names the catalog after the warehouse file's stem, so the copy is attached under it
    con = duckdb.connect()
    con.execute(f"attach {_sql_string(args['warehouse'])} as {Path(args['catalog']).stem}")
    con.execute(f"use {Path(args['catalog']).stem}")
    with Work() as work:
        for model in models:
            relation = f'"{model["schema"]}"."{model["alias"]}"'
            kind = "view" if model["config"]["materialized"] == "view" else "table"
            con.execute(f"create or replace {kind} {relation} as {model['compiled_code']}")
    orders = con.execute("select count(*) from marts.fct_work_orders").fetchone()[0]
    con.close()
    return work.result(orders, models=len(models), how="compiled model SQL run directly in DuckDB")
