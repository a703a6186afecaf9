"""Quarantine: run the raw-layer suites, and keep every record that fails a critical expectation out
of the warehouse's intermediate layer and marts, with the failed expectation and its (protected) values.

Written, each run from scratch (the raw layer is merged on keys, so the quarantine follows it):
  quality.quarantine      one row per (record, failed critical expectation) — the GX failures plus the
                          records the ingestion boundary already rejected (raw_<source>._quarantine),
                          named as the boundary.* expectations
  quality.warnings        the same for warning-severity failures (records stay in the warehouse)
  quality.record_counts   per source, table and day: received = clean + quarantined
  quality.check_results   per expectation: records checked, failed, masked examples, GX errors

The intermediate models read quality.quarantine: action `exclude` keeps the record out, `withhold`
keeps only the failing column's value out (the next system in the field precedence supplies it),
`not_loaded` marks a record the ingestion boundary kept out of the raw table: there is nothing to
exclude, and a version of the same record loaded before (or the first of a conflicting repeat) stays.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd

from citizen_voice import privacy
from citizen_voice.warehouse import has_table, transaction
from expectations import raw
from expectations.core import ValueSets
from expectations.runner import SuiteResult, remember_passes, run_suites

SCHEMA = "quality"
FAILURE_COLUMNS = (
    ("source", "varchar"), ("table_name", "varchar"), ("record_key", "varchar"), ("record_id", "varchar"),
    ("order_no", "varchar"), ("record_day", "date"), ("expectation", "varchar"), ("severity", "varchar"),
    ("dimension", "varchar"), ("action", "varchar"), ("column_name", "varchar"), ("raw_value", "varchar"),
    ("detected_by", "varchar"), ("load_id", "varchar"), ("quarantined_at", "timestamp"),
)
# keep in step with the dbt on-run-start hook (dbt_project/macros/quality_quarantine.sql)
FAILURE_DDL = ", ".join(f"{name} {kind}" for name, kind in FAILURE_COLUMNS)
RECORD_COUNTS_DDL = ("source varchar, table_name varchar, record_day date, received bigint, clean bigint, "
                     "quarantined bigint, quarantined_at_boundary bigint, quarantined_by_expectations bigint, "
                     "withheld_only bigint")
CHECK_RESULTS_DDL = ("suite varchar, asset_key varchar, expectation varchar, severity varchar, dimension varchar, "
                     "source varchar, table_name varchar, description varchar, evaluated bigint, failed bigint, "
                     "examples varchar, error varchar, checked_at timestamp")
MAX_RAW_VALUE_CHARS = 300
NATURAL_ID = {"raw_hotline.orders": "order_no", "raw_hotline.events": "event_id",
              "raw_app311.requests": "request_id", "raw_zhujian.gd_main": "ticket_id",
              "raw_zhujian.gd_lz": "log_id", "raw_survey.visits": "visit_id"}
# the registry's primary key of each boundary-quarantined record, when the payload still has it
BOUNDARY_IDS = {("hotline", "orders"): "order_no", ("hotline", "events"): "event_id",
                ("app311", "requests"): "service_request_id", ("app311", "services"): "service_code",
                ("zhujian", "gd_main"): "bjbh", ("zhujian", "gd_lz"): "lzid", ("survey", "visits"): "visit_id"}
ORDER_FIELDS = ("order_no", "gdbh", "工单编号", "ticket_no", "ticket")
TIME_FIELDS = ("updated_at", "gxsj", "recorded_at", "更新时间", "update_time", "updated_datetime", "received_at", "slsj")
_DAY_IN_NAME = re.compile(r"(\d{4})(\d{2})(\d{2})")


def protect(value) -> str | None:
    """A value as it may be shown to people: personal data masked, long text shortened."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = privacy.scrub_text(text) or text
    if len(text) > MAX_RAW_VALUE_CHARS:
        text = f"{text[:MAX_RAW_VALUE_CHARS]}…（共 {len(text)} 字）"
    return text


def _load_day(load_id) -> date | None:
    try:
        return datetime.fromtimestamp(float(load_id), UTC).astimezone(_SHANGHAI).date()
    except (TypeError, ValueError):
        return None


def _shanghai():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


_SHANGHAI = _shanghai()


def _day_from_text(text: str | None) -> date | None:
    if not text:
        return None
    match = _DAY_IN_NAME.search(text) or re.search(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})", text)
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


@dataclass
class QuarantineRun:
    failures: list[dict] = field(default_factory=list)  # critical (quarantine) rows
    warnings: list[dict] = field(default_factory=list)
    counts: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    suite_results: list[SuiteResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def errors(self) -> list[str]:
        return [e for r in self.suite_results for e in r.errors]

    def totals(self) -> dict[str, int]:
        return {k: sum(c[k] for c in self.counts) for k in ("received", "clean", "quarantined")}


def _failure_rows(result: SuiteResult, now: datetime) -> tuple[list[dict], list[dict]]:
    suite = result.suite
    frame = result.failing_rows
    by_key = {}
    if frame is not None and len(frame):
        id_column = NATURAL_ID.get(suite.name)
        columns = ["record_key", "order_no", "record_day", "load_id"] + ([id_column] if id_column else [])
        for row in frame[[c for c in columns if c in frame.columns]].itertuples(index=False):
            by_key[row.record_key] = row
    critical, warning = [], []
    for check_result in result.results:
        check = check_result.check
        for failing in check_result.failing:
            row = by_key.get(failing["record_key"])
            id_column = NATURAL_ID.get(suite.name)
            record = {
                "source": suite.source, "table_name": suite.table, "record_key": failing["record_key"],
                "record_id": _text(getattr(row, id_column, None)) if row is not None and id_column else None,
                "order_no": _text(getattr(row, "order_no", None)) if row is not None else None,
                "record_day": _as_date(getattr(row, "record_day", None)) if row is not None else None,
                "expectation": check.name, "severity": check.severity, "dimension": check.dimension,
                "action": check.action, "column_name": check.column, "raw_value": protect(failing["value"]),
                "detected_by": "expectations", "load_id": _text(getattr(row, "load_id", None)) if row is not None
                else None, "quarantined_at": now,
            }
            (critical if check.severity == "critical" else warning).append(record)
    return critical, warning


def _text(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value)


def _as_date(value) -> date | None:
    if value is None or pd.isna(value):
        return None
    return value.date() if hasattr(value, "date") else value


def boundary_rows(con, sources: list[tuple[str, str]], now: datetime) -> list[dict]:
    """The ingestion boundary's quarantine, as rows of quality.quarantine."""
    rows = []
    for source, dataset in sources:
        if not has_table(con, dataset, "_quarantine"):
            continue
        for record_hash, table, origin, reason, payload_text, load_id in con.execute(
                f"select record_hash, table_name, origin, reason, payload, _dlt_load_id from {dataset}._quarantine "
                "order by record_hash").fetchall():
            payload = json.loads(payload_text) if payload_text else {}
            name, dimension, _ = raw.boundary_rule(reason)
            is_unit = set(payload) == {"unit", "records"}
            if "_source_file" in payload:
                key = f"{payload['_source_file']}:{payload.get('_source_line')}"
            elif is_unit:
                key = origin
            else:
                id_field = BOUNDARY_IDS.get((source, table))
                # the whole digest: a 16-digit prefix can be all digits and read as a phone number
                key = f"{id_field}={payload[id_field]}" if id_field and payload.get(id_field) else \
                    f"record_hash={record_hash}"
            day = _day_from_text(payload.get("_source_file") or (origin if is_unit else None))
            for time_field in TIME_FIELDS:
                if day is None and payload.get(time_field):
                    day = _day_from_text(str(payload[time_field]))
            id_field = BOUNDARY_IDS.get((source, table))
            rows.append({
                "source": source, "table_name": table, "record_key": key,
                "record_id": _text(payload.get(id_field)) if id_field else None,
                "order_no": next((str(payload[f]) for f in ORDER_FIELDS if payload.get(f)), None),
                "record_day": day or _load_day(load_id), "expectation": name, "severity": "critical",
                "dimension": dimension, "action": "not_loaded",
                "column_name": None,
                "raw_value": protect({"reason": reason, **({"records": payload["records"]} if is_unit else
                                                           {k: v for k, v in payload.items()
                                                            if not k.endswith("_pseudonym")})}),
                "detected_by": "boundary", "load_id": load_id, "quarantined_at": now,
                "_records": int(payload.get("records") or 1) if is_unit else 1,
            })
    return rows


def _record_counts(results: list[SuiteResult], failures: list[dict], boundary: list[dict]) -> list[dict]:
    """Per source, table and day: what arrived (records in the warehouse plus records the boundary
    rejected), what is clean (records with no critical failure, counted from the records themselves)
    and what is quarantined (distinct records with a critical failure, plus the boundary's)."""
    failing_keys: dict[tuple, set[str]] = defaultdict(set)
    actions: dict[tuple, set[str]] = defaultdict(set)
    for row in failures:
        failing_keys[(row["source"], row["table_name"])].add(row["record_key"])
        actions[(row["source"], row["table_name"], row["record_key"])].add(row["action"])
    counts: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for result in results:
        source, table = result.suite.source, result.suite.table
        for day, records in result.day_counts.items():
            counts[(source, table, _as_date(day))]["in_warehouse"] += records
        bad_keys = failing_keys[(source, table)]
        if not bad_keys or result.failing_rows is None or not len(result.failing_rows):
            continue
        failing = result.failing_rows[["record_key", "record_day"]].drop_duplicates("record_key")
        for key, day in zip(failing["record_key"].astype(str), failing["record_day"].map(_as_date), strict=True):
            if key in bad_keys:
                bucket = counts[(source, table, day)]
                bucket["quarantined_by_expectations"] += 1
                bucket["withheld_only"] += actions[(source, table, key)] == {"withhold"}
    for row in boundary:
        counts[(row["source"], row["table_name"], row["record_day"])]["quarantined_at_boundary"] += row["_records"]
    rows = []
    for (source, table, day), c in sorted(counts.items(), key=lambda item: (item[0][0], item[0][1], str(item[0][2]))):
        rows.append({
            "source": source, "table_name": table, "record_day": day,
            "received": c["in_warehouse"] + c["quarantined_at_boundary"],
            "clean": c["in_warehouse"] - c["quarantined_by_expectations"],
            "quarantined": c["quarantined_by_expectations"] + c["quarantined_at_boundary"],
            "quarantined_at_boundary": c["quarantined_at_boundary"],
            "quarantined_by_expectations": c["quarantined_by_expectations"], "withheld_only": c["withheld_only"],
        })
    return rows


def check_rows(results: list[SuiteResult], now: datetime, examples: int = 5) -> list[dict]:
    rows = []
    for result in results:
        suite = result.suite
        if result.error:
            rows.append({"suite": suite.name, "asset_key": "/".join(suite.asset_key), "expectation": f"{suite.name}.schema",
                         "severity": "critical", "dimension": "schema", "source": suite.source,
                         "table_name": suite.table, "description": "数据表可读取", "evaluated": 0, "failed": 0,
                         "examples": "[]", "error": result.error, "checked_at": now})
        for r in result.results:
            shown = [{"record_key": f["record_key"], "value": protect(f["value"])} for f in r.failing[:examples]]
            rows.append({"suite": suite.name, "asset_key": "/".join(suite.asset_key), "expectation": r.check.name,
                         "severity": r.check.severity, "dimension": r.check.dimension, "source": suite.source,
                         "table_name": suite.table, "description": r.check.description,
                         "evaluated": r.element_count, "failed": r.unexpected_count,
                         "examples": json.dumps(shown, ensure_ascii=False), "error": r.error, "checked_at": now})
    return rows


def evaluate(con, sources: list[tuple[str, str]] | None = None, remember: bool = False) -> QuarantineRun:
    """Run the raw suites on a (read-only) connection; nothing is written. `remember`: validate only
    records not remembered as passing unchanged (expectations.runner), with the same outcome."""
    started = time.perf_counter()
    now = datetime.now(UTC).replace(tzinfo=None)
    suites = raw.build(ValueSets(con))
    results = run_suites(con, suites, remember=remember)
    run = QuarantineRun(suite_results=results)
    for result in results:
        critical, warning = _failure_rows(result, now)
        run.failures += critical
        run.warnings += warning
    if sources is None:
        sources = sorted({(s.source, f"raw_{s.source}") for s in suites})
    boundary = boundary_rows(con, sources, now)
    run.counts = _record_counts(results, run.failures, boundary)
    run.failures += boundary
    run.checks = check_rows(results, now)
    run.seconds = time.perf_counter() - started
    return run


def _replace(con, table: str, ddl: str, rows: list[dict], columns: list[str]) -> None:
    con.execute(f"create table if not exists {SCHEMA}.{table} ({ddl})")
    con.execute(f"delete from {SCHEMA}.{table}")
    if rows:
        frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)
        con.register("incoming_rows", frame)
        con.execute(f"insert into {SCHEMA}.{table} ({', '.join(columns)}) select {', '.join(columns)} "
                    "from incoming_rows")
        con.unregister("incoming_rows")


def write(con, run: QuarantineRun) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    failure_columns = [name for name, _ in FAILURE_COLUMNS]
    with transaction(con):
        _replace(con, "quarantine", FAILURE_DDL, run.failures, failure_columns)
        _replace(con, "warnings", FAILURE_DDL, run.warnings, failure_columns)
        _replace(con, "record_counts", RECORD_COUNTS_DDL, run.counts,
                 [c.split()[0] for c in RECORD_COUNTS_DDL.split(", ")])
        _replace(con, "check_results", CHECK_RESULTS_DDL, run.checks,
                 [c.split()[0] for c in CHECK_RESULTS_DDL.split(", ")])
        remember_passes(con, run.suite_results)


def run_quarantine(warehouse_path=None) -> QuarantineRun:
    """Evaluate on a read-only connection, then write the quality tables (one writer, briefly)."""
    from citizen_voice import warehouse

    with warehouse.connect(warehouse_path, read_only=True) as con:
        run = evaluate(con, remember=True)
    with warehouse.connect(warehouse_path) as con:
        write(con, run)
    return run
