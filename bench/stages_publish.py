"""The `publish` stage: the monthly bulletin (HTML + PDF), the department shares, the open data and the
BI snapshot, each with its privacy gate, on the warehouse the earlier stages left — the same
plain-Python functions the Dagster assets call (orchestration/defs/publish.py), each part in its own
process. Floors: DuckDB `COPY (select …) TO … (format parquet)` of the same rows straight from the
warehouse (shares, open data) and `COPY FROM DATABASE` (the snapshot). PostgreSQL serving is not
measured here (it needs a server; tests/publish covers it).

The work runs on a copy of the warehouse (work_dir/publish-warehouse.duckdb): the bench's text stage
works on its own copy, and no bench stage writes the data-quality scorecard, so the bulletin's inputs
missing from the warehouse are made on the copy first, untimed (`publish_prepare`). Outputs go under
work_dir/published (CV_PUBLISHED), the floors' files under work_dir/published-floor.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

from bench.harness import Context, Floor, Measurement, Stage, stage
from bench.tasks import Work, _Timer, task

PARTS = {"bulletin": "publish · bulletin", "shares": "publish · department shares",
         "open_data": "publish · open data", "snapshot": "publish · serving snapshot"}
FLOOR_NAMES = {"shares": "DuckDB COPY to Parquet", "open_data": "DuckDB COPY to Parquet",
               "snapshot": "DuckDB COPY FROM DATABASE"}


@stage("publish")
def publish(ctx: Context) -> list[Stage]:
    if not ctx.warehouse.exists():
        return [Stage(name="publish", notes="skipped: no warehouse (run ingest, transform, checks, text and "
                                            "indicators first)")]
    copy = ctx.work_dir / "publish-warehouse.duckdb"
    wal, copy_wal = Path(f"{ctx.warehouse}.wal"), Path(f"{copy}.wal")
    shutil.copyfile(ctx.warehouse, copy)
    if wal.exists():  # a warehouse not checkpointed at its last close
        shutil.copyfile(wal, copy_wal)
    try:
        return _measure_parts(ctx, copy)
    finally:
        copy.unlink(missing_ok=True)
        copy_wal.unlink(missing_ok=True)


def _measure_parts(ctx: Context, copy: Path) -> list[Stage]:
    published, floor_dir = ctx.work_dir / "published", ctx.work_dir / "published-floor"
    shutil.rmtree(published, ignore_errors=True)
    shutil.rmtree(floor_dir, ignore_errors=True)
    prepared = ctx.measure("publish_prepare", {"warehouse": str(copy), "models": str(ctx.work_dir / "models")},
                           label="publish-prepare")
    if not prepared.ok:
        return [Stage(name="publish", notes=f"failed preparing the bulletin's inputs: {prepared.error[:300]}")]
    prep = prepared.result
    args = {"warehouse": str(copy), "published": str(published), "period": prep["period"]}
    parts: dict[str, Measurement] = {}
    floor_runs: dict[str, Measurement] = {}
    for part in PARTS:
        parts[part] = ctx.measure("publish_part", {**args, "part": part}, label=f"publish-{part}")
        if part in FLOOR_NAMES:
            floor_runs[part] = ctx.measure("publish_floor", {**args, "part": part, "out": str(floor_dir / part)},
                                           label=f"floor-publish-{part}")
    floors = {part: _floor(m, FLOOR_NAMES[part]) for part, m in floor_runs.items()}

    records = []
    for part, name in PARTS.items():
        m = parts[part]
        floor_result = floor_runs[part].result if part in floor_runs and floor_runs[part].ok else None
        if not m.ok:
            records.append(Stage(name=name, peak_rss_mb=m.peak_rss_mb, notes=f"failed: {m.error[:300]}"))
            continue
        records.append(Stage.measured(name, m.seconds, m.rows, m.peak_rss_mb, floor=floors.get(part),
                                      notes=_notes(part, m.result, floor_result), details=m.result))
    done = [parts[p] for p in PARTS if parts[p].ok]
    prepared_note = ("; prepared untimed on the copy: " + ", ".join(prep["prepared"])) if prep["prepared"] else ""
    whole_notes = (f"sum of the {len(done)} parts below (of {len(PARTS)}), each in its own process; rows = all work "
                   f"orders in the warehouse ({prep['month_orders']:,} in the bulletin's month {prep['period']}); "
                   f"privacy gate passed in every part that ran{prepared_note}; PostgreSQL serving not measured "
                   "(needs a server; covered by tests/publish)")
    if len(done) < len(PARTS):
        whole_notes = "INCOMPLETE: " + whole_notes
    whole = Stage.measured("publish", sum(m.seconds for m in done), prep["orders"],
                           max((m.peak_rss_mb or 0 for m in done), default=0) or None, notes=whole_notes,
                           details={"period": prep["period"], "month_orders": prep["month_orders"],
                                    "prepare": prep, "parts_seconds": {p: parts[p].seconds for p in PARTS
                                                                       if parts[p].ok},
                                    "privacy_gate": {p: parts[p].result.get("privacy_gate") for p in PARTS
                                                     if parts[p].ok}})
    return [whole, *records]


def _floor(m: Measurement, name: str) -> Floor | None:
    if not m.ok:
        return None
    return Floor(name=name, seconds=m.seconds, rows=m.rows, peak_rss_mb=m.peak_rss_mb, notes=m.result.get("how", ""))


def _notes(part: str, r: dict, floor: dict | None) -> str:
    gate = r["privacy_gate"]
    gated = f"privacy gate {gate['status']} ({gate.get('files', 0)} files, {gate.get('tables', 0)} tables, " \
            f"{gate['seconds']:.2f} s)"
    if part == "bulletin":
        return (f"monthly bulletin {r['period']}: HTML render {r['render_seconds']:.2f} s, PDF (headless Chromium) "
                f"{r['pdf_seconds']:.2f} s, {gated}; rows = work orders of the month; HTML {r['html_bytes']:,} B, "
                f"PDF {r['pdf_bytes']:,} B; peak RSS is this process's (or Chromium's, if larger)")
    if part == "shares":
        return (f"{r['departments']} departments × {len(r['tables'])} tables, Parquet + CSV + dictionary + manifest; "
                f"{gated}; rows = rows shared over all departments and tables; floor: the same selections "
                "COPY'd to Parquet only")
    if part == "open_data":
        return (f"work_orders {r['dataset_rows']:,} rows (confidential left out {r['excluded_confidential']:,}, "
                f"community coarsened {r['coarsened_to_street']:,}) + {len(r['aggregates'])} aggregates, "
                f"Parquet + CSV; {gated}; rows = dataset + aggregate rows; floor: the same rows and aggregates "
                "(no truncation, coarsening or suppression) COPY'd to Parquet only")
    copied = f"; a plain file copy of the warehouse: {floor['file_copy_seconds']:.2f} s" if floor else ""
    return (f"{len(r['tables'])} tables of {', '.join(r['schemas'])}, {r['bytes'] / 2**20:,.1f} MiB; {gated}; "
            f"rows = rows copied; the floor copies every schema of the warehouse (raw and staging too){copied}")


# -- child side ---------------------------------------------------------------------------------------------------
def _month_figures(con) -> tuple:
    from bench.stages_indicators import _newest_complete_month

    month = _newest_complete_month(con)
    orders = con.execute("select count(*) from marts.fct_work_orders").fetchone()[0]
    month_orders = con.execute("select count(*) from marts.fct_work_orders where received_at >= ? and received_at < ?",
                               [month.start, month.end]).fetchone()[0]
    return month, orders, month_orders


@task("publish_prepare")
def publish_prepare(args: dict) -> dict:
    """Make what the bulletin reads and the warehouse lacks (untimed): the text tables, the data-quality
    scorecard, and the newest complete month's indicators (again after the text stage, as the platform
    orders them: repeat complaints come from the text stage)."""
    os.environ["CV_MODELS"] = args["models"]  # the text stage's model when it left one; else trained here
    from citizen_voice import warehouse
    from citizen_voice.indicators import service
    from citizen_voice.quality import scorecard
    from citizen_voice.text import pipeline

    prepared, seconds = [], {}
    text_tables = "text tables (citizen_voice.text.pipeline.run)"
    with warehouse.connect(Path(args["warehouse"])) as con:
        month, orders, month_orders = _month_figures(con)
        with Work() as work:  # not part of any figure; a Work block so that --profile covers it too
            started = time.perf_counter()
            if not all(warehouse.has_table(con, "text", t) for t in ("hot_topics", "early_warnings", "repeat_demands")):
                pipeline.run(con, workers=2)
                prepared.append(text_tables)
                seconds["text"] = round(time.perf_counter() - started, 3)
            started = time.perf_counter()
            if not warehouse.has_table(con, "quality", "scorecard_ranking"):
                scorecard.write(con, scorecard.compute(con))
                prepared.append("data-quality scorecard")
                seconds["scorecard"] = round(time.perf_counter() - started, 3)
            started = time.perf_counter()
            has_month = warehouse.has_table(con, "indicators", "indicator_values") and con.execute(
                "select count(*) from indicators.indicator_values where period_type = 'month' and period = ? "
                "and grain = 'city'", [month.label]).fetchone()[0] > 0
            if not has_month or text_tables in prepared:
                service.refresh(con, [month])
                prepared.append(f"indicators of {month.label}")
                seconds["indicators"] = round(time.perf_counter() - started, 3)
            con.execute("checkpoint")
    return work.result(orders, orders=orders, period=month.label, month_orders=month_orders, prepared=prepared,
                       prepared_seconds=seconds)


class _Timers(_Timer):
    """Seconds spent in the privacy gate and in Chromium, timed by wrapping the module functions the
    publish code looks up when it runs (a call each, not per row); the gate's reports are kept."""

    def __init__(self):
        from citizen_voice.bulletin import browser
        from citizen_voice.publish import gate

        super().__init__()
        self.gate_reports: list = []
        gate.gate_files = self._kept(self.wrap("gate", gate.gate_files))
        gate.gate_duckdb = self._kept(self.wrap("gate", gate.gate_duckdb))
        gate.gate_relations = self._counted(self.wrap("gate", gate.gate_relations))
        browser.print_pdf = self.wrap("pdf", browser.print_pdf)

    def _kept(self, function):
        def kept(*args, **kwargs):
            report = function(*args, **kwargs)
            self.gate_reports.append(report)
            return report
        return kept

    def _counted(self, function):
        """gate_relations (the snapshot's changed tables and rows) returns how many relations it scanned."""
        def counted(*args, **kwargs):
            scanned = function(*args, **kwargs)
            if scanned:
                self.gate_reports.append(SimpleNamespace(files=0, tables=scanned))
            return scanned
        return counted

    def gate(self) -> dict:
        # a hit raises PersonalDataFound (the part fails): reaching here means every scan passed
        return {"status": "passed" if self.gate_reports else "not run", "scans": len(self.gate_reports),
                "files": sum(r.files for r in self.gate_reports), "tables": sum(r.tables for r in self.gate_reports),
                "seconds": round(self.seconds["gate"], 3)}


@task("publish_part")
def publish_part(args: dict) -> dict:
    os.environ["CV_PUBLISHED"] = args["published"]
    from citizen_voice import warehouse
    from citizen_voice.bulletin import render
    from citizen_voice.publish import open_data, shares, snapshot

    part, path, published = args["part"], Path(args["warehouse"]), Path(args["published"])
    timers = _Timers()
    if part == "snapshot":
        with Work() as work:
            report = snapshot.publish_snapshot(path, published)
        return work.result(sum(report.tables.values()), privacy_gate=timers.gate(), schemas=report.schemas,
                           tables=report.tables, bytes=report.bytes, path=str(report.path))
    with warehouse.connect(path, read_only=True) as con:
        if part == "bulletin":
            month_orders = _month_figures(con)[2]
            with Work() as work:
                done = render.publish_bulletin(con, args["period"], published / "bulletins")
            render_seconds = work.seconds - timers.seconds["gate"] - timers.seconds["pdf"]
            return work.result(month_orders, privacy_gate=timers.gate(), period=args["period"],
                               html=str(done["html"]), pdf=str(done["pdf"]), html_bytes=done["html"].stat().st_size,
                               pdf_bytes=done["pdf"].stat().st_size, render_seconds=round(render_seconds, 3),
                               pdf_seconds=round(timers.seconds["pdf"], 3))
        if part == "shares":
            with Work() as work:
                report = shares.publish_shares(con, published)
            return work.result(sum(report.rows.values()), privacy_gate=timers.gate(), departments=report.departments,
                               tables=report.rows, skipped_tables=report.skipped_tables, folder=str(report.folder))
        if part == "open_data":
            with Work() as work:
                report = open_data.publish_open_data(con, published)
            aggregate_rows = sum(a["rows"] for a in report.aggregates.values())
            return work.result(report.rows + aggregate_rows, privacy_gate=timers.gate(), dataset_rows=report.rows,
                               excluded_confidential=report.excluded_confidential,
                               coarsened_to_street=report.coarsened_to_street, aggregates=report.aggregates,
                               folder=str(report.folder))
    raise ValueError(f"unknown publish part {part!r}")


def _copy_sql(query: str, target: Path) -> str:
    literal = str(target).replace("'", "''")
    return f"copy ({query}) to '{literal}' (format parquet, compression zstd)"


@task("publish_floor")
def publish_floor(args: dict) -> dict:
    """The same rows written as directly as DuckDB can: COPY … TO Parquet (zstd, as the platform's
    Parquet), or for the snapshot COPY FROM DATABASE into a fresh file. The queries are built before
    the timed part."""
    import duckdb

    from citizen_voice import warehouse
    from citizen_voice.publish import open_data, shares
    from citizen_voice.publish.config import load_config

    part, path, out = args["part"], Path(args["warehouse"]), Path(args["out"])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = load_config()
    if part == "snapshot":
        target = out / "warehouse.duckdb"
        with duckdb.connect(str(target)) as con:
            literal = str(path).replace("'", "''")
            con.execute(f"attach '{literal}' as source (read_only)")
            tables = con.execute("select schema_name, table_name, estimated_size from duckdb_tables() "
                                 "where database_name = 'source'").fetchall()
            rows = sum(con.execute(f'select count(*) from source."{s}"."{t}"').fetchone()[0] for s, t, _ in tables)
            with Work() as work:
                con.execute(f"copy from database source to {target.stem}")
                con.execute("checkpoint")
        started = time.perf_counter()  # for comparison: the warehouse's bytes alone
        shutil.copyfile(path, out / "file-copy.duckdb")
        file_copy_seconds = time.perf_counter() - started
        (out / "file-copy.duckdb").unlink()
        return work.result(rows, tables=len(tables), bytes=target.stat().st_size,
                           file_copy_seconds=round(file_copy_seconds, 3),
                           how="ATTACH the warehouse read-only; COPY FROM DATABASE into a fresh DuckDB file "
                               "(every schema)")
    copies: list[tuple[str, list]] = []
    with warehouse.connect(path, read_only=True) as con:
        if part == "shares":
            specs, _ = shares.available_specs(con, config)
            for department in shares.departments(con):
                folder = out / department.code
                folder.mkdir()
                for spec in specs:
                    value = shares.key_value(spec, department)
                    if value is not None:
                        sql, params = shares.share_query(con, spec, value)
                        copies.append((_copy_sql(sql, folder / f"{spec.name}.parquet"), params))
            how = "each department's share query COPY'd to Parquet (no CSV, dictionary, manifest or gate)"
        elif part == "open_data":
            rules = config.open_data
            open_data.create_source_view(con, config)
            names = ", ".join(rules.columns)
            copies.append((_copy_sql(f"select {names} from open_source where not coalesce(_confidential, false) "
                                     "order by order_no", out / f"{open_data.DATASET}.parquet"), []))
            measures = ", ".join(f"{expr} as {name}" for name, expr in open_data.MEASURES.items())
            for aggregate in rules.aggregates:
                keys = ", ".join(aggregate.group_by)
                copies.append((_copy_sql(f"select {keys}, {measures} from open_source group by all order by all",
                                         out / f"{aggregate.name}.parquet"), []))
            how = "the open dataset's rows and the aggregates' counts COPY'd to Parquet (no de-identification)"
        else:
            raise ValueError(f"unknown publish floor {part!r}")
        with Work() as work:
            rows = sum(con.execute(sql, params).fetchone()[0] for sql, params in copies)
    return work.result(rows, files=len(copies), how=how)
