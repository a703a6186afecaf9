"""Run suites with Great Expectations over dataframes read from DuckDB.

GX's SQL datasources do not work against DuckDB (every metric errors and only success=False shows),
so each suite's frame is read through a read-only DuckDB connection into pandas and validated as a
dataframe batch of an ephemeral context. Results are asked for in the COMPLETE format with the
record key as the index column, so every failing record is known by its key; GX's exception_info is
always read: an expectation that raised is an error of the suite, never a silent pass or fail.

Memory does not grow with history: a frame longer than CHUNK_ROWS is read and validated chunk by chunk
and the results are summed. Uniqueness is the one rule a chunk cannot see, so for a chunked frame the
query counts each key's copies over the whole table and the chunk expects at most one copy.

Work does not grow with history either (`remember=True`): every check then judges a row by the row
alone (uniqueness as its count of copies; cross-table rules are columns the frame query computes), so
a row that passed every check before passes again as long as its content, its key's copies and the
suite's rules are the same. The rows that passed are remembered as digests (citizen_voice.digest) of the whole frame row
(ops.validated_rows, per suite and fingerprint of its rules); a later run validates only rows whose
hash is not remembered — new and changed records, and every record that failed — and the rows of a
repeated key, and counts the others as passing. The result is the same as validating everything
(tested). The table is updated, not rewritten: a day adds the hashes of its new passing rows and drops
those of rows gone or failing.

A scoped suite (Suite.scope: the hotline's orders and events, raw and in the facts, by order) does not
even read the parts of its frame that nothing new touched. Its memory (ops.scoped_rows: per frame row the
key, part, day, hash and verdict; ops.scoped_loads: the loads its inputs held) tells which parts changed:
the parts of rows from loads not seen before (for the facts: the orders the builds not seen before list
in intermediate.int_touched_log), the parts those records were in before, the parts sharing a unique
value with them, and every part with a failing row. Only those are read and validated (their rows
remembered as passing are skipped as above); the others are counted from the memory. The memory is
rebuilt from the whole frame when there is none, when the rules, the scope, the reference seeds or the
dbt code changed, when an input no longer holds any load the memory saw (the log is pruned), and when
the memory and the main input disagree on the number of rows (a row gone outside any load). The result
is the whole frame's (tested).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import itertools
import json
import logging
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import great_expectations as gx
import pandas as pd
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    ColumnPairMapExpectation,
    MulticolumnMapExpectation,
)

from citizen_voice import settings
from citizen_voice.digest import columns_of, row_digest_sql
from citizen_voice.memory import release_unused, use_system_allocator
from citizen_voice.warehouse import has_table
from expectations.core import RECORD_KEY, TOUCHED_SCOPES, Check, Suite


@dataclass
class CheckResult:
    check: Check
    success: bool
    element_count: int = 0
    unexpected_count: int = 0
    failing: list[dict] = field(default_factory=list)  # {"record_key", "value"} per failing record
    error: str | None = None  # the exception GX caught, if the expectation could not be evaluated

    @property
    def failed(self) -> bool:
        return not self.success


@dataclass
class ScopedState:
    """A scoped suite's memory after this run (written by remember_passes)."""
    fingerprint: str
    rows_file: str  # Parquet: key_hash, scope_hash, record_day, row_hash, passed of every row read now
    touched: object | None  # pyarrow table of the scope hashes whose rows rows_file replaces (None: all)
    loads: list[tuple[str, str]]  # every (relation, load id) the suite's inputs hold now


@dataclass(eq=False)
class SuiteResult:
    suite: Suite
    rows: int
    results: list[CheckResult]
    seconds: float
    failing_rows: pd.DataFrame | None = None  # the frame's rows of every record that failed a check
    day_counts: Counter = field(default_factory=Counter)  # distinct records per record_day, if the frame has it
    error: str | None = None  # the frame could not be read (missing table or column: a schema failure)
    remembered: int = 0  # rows counted as passing because they passed before, unchanged (remember=True)
    # pyarrow tables (row_hash) with remember=True: rows newly passing, and remembered rows gone or failing now
    passed_hashes: object = None
    forgotten_hashes: object = None
    scoped_state: ScopedState | None = None  # a scoped suite's memory as it is now (remember=True)

    @property
    def errors(self) -> list[str]:
        found = [f"{self.suite.name}: {self.error}"] if self.error else []
        return found + [f"{r.check.name}: {r.error}" for r in self.results if r.error]

    def failed(self, severity: str | None = None) -> list[CheckResult]:
        return [r for r in self.results if r.failed and (severity is None or r.check.severity == severity)]


def _context():
    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except (ImportError, AttributeError):  # only cosmetic
        pass
    return context


def _exception(result) -> str | None:
    info = result.exception_info or {}
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    # per-metric form: {metric_id: {"raised_exception": ..., "exception_message": ...}}
    messages = [v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    return "; ".join(m or "error" for m in messages) or None


def _failing(check: Check, result: dict) -> list[dict]:
    rows = []
    for item in result.get("unexpected_index_list") or []:
        if not isinstance(item, dict):
            continue
        key = item.get(RECORD_KEY)
        if check.column and check.column in item:
            value = item[check.column]
        else:
            value = next((v for k, v in item.items() if k != RECORD_KEY), None)
        rows.append({"record_key": None if pd.isna(key) else str(key), "value": _shortened(_plain(value))})
    return rows


MAX_VALUE_CHARS = 120


def _shortened(value):
    """Failing values are kept for people to read, not whole 20,000-character texts."""
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return f"{value[:MAX_VALUE_CHARS]}…（共 {len(value)} 字）"
    return value


def _plain(value):
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if isinstance(value, pd.Timestamp) else value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


# A validated chunk's frame stays referenced from reference cycles in GX's objects until Python's full
# collection, which runs ever more rarely as the process's heap grows: with the platform loaded the whole-year
# events suite grew by ~13 MB per chunk (1,466 MB alone; 1,053 MB collecting every 5 chunks, +2.9 s).
COLLECT_EVERY_CHUNKS = 5
CHUNK_ROWS = 100_000  # the whole-year events suite at 1M peaks at 1,735 MB alone (1,918 MB with 200k), no slower
VECTOR_ROWS = 2048  # DuckDB hands results over in vectors of this many rows


def read_frame(con, suite: Suite) -> pd.DataFrame:
    return con.execute(suite.frame_sql).df()


def _copies_column(column: str) -> str:
    return f"{column}__copies"


def _unique_columns(suite: Suite) -> dict[str, str]:
    return {c.name: c.expectation.column for c in suite.checks
            if isinstance(c.expectation, gx.expectations.ExpectColumnValuesToBeUnique)}


def _for_chunks(suite: Suite, counted: bool = False) -> tuple[Suite, dict[str, str]]:
    """The suite with each uniqueness rule restated on a whole-table count of the key's copies
    (`counted`: the frame query already has the counts)."""
    unique = _unique_columns(suite)
    if not unique:
        return suite, {}
    checks = tuple(replace(c, expectation=gx.expectations.ExpectColumnValuesToBeBetween(
        column=_copies_column(unique[c.name]), max_value=1)) if c.name in unique else c for c in suite.checks)
    frame_sql = suite.frame_sql if counted else _counted_sql(suite.frame_sql, sorted(set(unique.values())))
    return replace(suite, frame_sql=frame_sql, checks=checks), unique


def _copies_sql(frame_sql: str, column: str) -> str:
    """The values of `column` with more than one copy in the frame, and their number of copies."""
    return f'select "{column}" as copied, count(*) as copies from ({frame_sql}) group by 1 having count(*) > 1'


def _counted_sql(frame_sql: str, columns: list[str], copies: list[str] | None = None) -> str:
    """The frame with each column's count of copies over the whole frame (null for a null value);
    `copies`: per column, a relation of its repeated values (_copies_sql) if already counted.
    A join on a grouped count, not `count(*) over (partition by …)`: a window drags every column of
    the frame through its partitioning, the grouped count reads only the one column. Only the values
    with copies are joined (every other value has one): for the 5.4 M events at 1M the join's other
    side is a handful of rows instead of 5.4 M (the frame in 3.9 s instead of 5.5 s)."""
    copies = copies or [f"({_copies_sql(frame_sql, column)})" for column in columns]
    counts = ", ".join(f'case when suite_rows."{column}" is not null then coalesce(copies_{i}.copies, 1) end '
                       f'as "{_copies_column(column)}"' for i, column in enumerate(columns))
    joins = " ".join(f'left join {relation} as copies_{i} on copies_{i}.copied = suite_rows."{column}"'
                     for i, (column, relation) in enumerate(zip(columns, copies, strict=True)))
    return f"select suite_rows.*, {counts} from ({frame_sql}) as suite_rows {joins}"


def _merge(total: list[CheckResult] | None, chunk: list[CheckResult]) -> list[CheckResult]:
    if total is None:
        return chunk
    for into, part in zip(total, chunk, strict=True):
        into.success = into.success and part.success
        into.element_count += part.element_count
        into.unexpected_count += part.unexpected_count
        into.failing += part.failing
        into.error = into.error or part.error
    return total


def _failing_rows(frame: pd.DataFrame, results: list[CheckResult]) -> pd.DataFrame:
    keys = {f["record_key"] for r in results for f in r.failing}
    if keys:
        return frame[frame[RECORD_KEY].astype(str).isin(keys)]
    # built from the dtypes: an empty slice, even copied, shares the chunk's Arrow buffers and so kept every
    # chunk of a suite alive until the suite ended (1.3 GB for the 5.4 M events at 1M)
    return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in frame.dtypes.items()})


def _validate_chunks(con, suite: Suite, context, chunk_rows: int, restated: bool = False
                     ) -> tuple[int, list[CheckResult], pd.DataFrame]:
    """Validate the frame chunk by chunk; `restated`: the suite's uniqueness rules are already counts of copies."""
    rows = con.execute(f"select count(*) from ({suite.frame_sql})").fetchall()[0][0]
    chunked, unique = (suite, {}) if rows <= chunk_rows and not restated else _for_chunks(suite, restated)
    by_name = {c.name: c for c in suite.checks}
    with _memory_limit(con, SCAN_MEMORY_LIMIT if rows > chunk_rows else None):
        con.execute(chunked.frame_sql)
        total, failing = _validate_stream(con, chunked, context, chunk_rows, by_name, unique)
    columns = [c for c in failing[0].columns if not c.endswith("__copies")]
    return rows, total, pd.concat(failing, ignore_index=True)[columns]


@contextlib.contextmanager
def _memory_limit(con, limit: str | None):
    """DuckDB's limit lowered to `limit` (None: left as it is) until the block ends. DuckDB shows a limit
    rounded to 0.1 MiB, so the one set back can be up to 0.1 MiB lower than the one read."""
    if limit is None:
        yield
        return
    before = con.execute("select current_setting('memory_limit')").fetchone()[0]
    con.execute(f"set memory_limit = '{limit}'")
    try:
        yield
    finally:
        con.execute(f"set memory_limit = '{before}'")


def _validate_stream(con, chunked: Suite, context, chunk_rows: int, by_name: dict, unique: dict
                     ) -> tuple[list[CheckResult], list[pd.DataFrame]]:
    """The chunks of the query just executed on `con`, validated one after the other."""
    total, failing = None, []
    for chunks in itertools.count(1):
        if chunks % COLLECT_EVERY_CHUNKS == 0:
            gc.collect()
        frame = con.fetch_df_chunk(max(1, chunk_rows // VECTOR_ROWS))
        if total is not None and not len(frame):
            break
        results = validate_frame(chunked, frame, context)
        for result in results:
            result.check = by_name[result.check.name]
            if result.check.name in unique and result.failing:  # report the repeated key, not its count
                values = dict(zip(frame[RECORD_KEY].astype(str), frame[unique[result.check.name]], strict=True))
                result.failing = [{**f, "value": _plain(values.get(f["record_key"]))} for f in result.failing]
        failing.append(_failing_rows(frame, results))
        total = _merge(total, results)
        if not len(frame):
            break
    return total, failing


def _day_counts(con, suite: Suite) -> Counter:
    columns = {r[0] for r in con.execute(f"describe select * from ({suite.frame_sql})").fetchall()}
    if "record_day" not in columns:
        return Counter()
    return Counter(dict(con.execute(f"select record_day, count(distinct {RECORD_KEY}) from ({suite.frame_sql}) "
                                    "group by all").fetchall()))


ROW_BY_ROW = (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)


def _columns_of(expectation) -> set[str]:
    named = [getattr(expectation, name, None) for name in ("column", "column_A", "column_B")]
    return {c for c in named + list(getattr(expectation, "column_list", None) or []) if c}


def _passed_without_rows(check: Check, columns) -> bool:
    """A row-by-row check on a frame without rows passes with nothing evaluated, as GX judges it, when
    the frame has its columns (a missing column is GX's error). A daily run of a table with no new rows
    (`remember`) asks exactly this, and each GX validation costs 0.07-0.3 s even without rows."""
    return isinstance(check.expectation, ROW_BY_ROW) and _columns_of(check.expectation) <= set(columns)


def validate_frame(suite: Suite, frame: pd.DataFrame, context=None) -> list[CheckResult]:
    if not len(frame):
        passed = [c for c in suite.checks if _passed_without_rows(c, frame.columns)]
        rest = tuple(c for c in suite.checks if c not in passed)
        results = [CheckResult(c, True) for c in passed] + (
            _validate(replace(suite, checks=rest), frame, context) if rest else [])
        return sorted(results, key=lambda r: suite.checks.index(r.check))
    return _validate(suite, frame, context)


def _validate(suite: Suite, frame: pd.DataFrame, context=None) -> list[CheckResult]:
    context = context or _context()
    source_name = f"frames-{id(frame)}"
    source = context.data_sources.add_pandas(source_name)
    try:
        batch = source.add_dataframe_asset(name=suite.name).add_batch_definition_whole_dataframe("whole") \
            .get_batch(batch_parameters={"dataframe": frame})
        gx_suite = gx.ExpectationSuite(name=suite.name)
        for check in suite.checks:
            gx_suite.add_expectation(check.configured())
        validation = batch.validate(gx_suite, result_format={"result_format": "COMPLETE",
                                                             "unexpected_index_column_names": [RECORD_KEY],
                                                             "return_unexpected_index_query": False})
    finally:  # the context keeps every data source and its frame: without this, memory grows chunk by chunk
        context.data_sources.delete(source_name)
    by_name = {check.name: check for check in suite.checks}
    results = []
    for item in validation.results:
        check = by_name[item.expectation_config.meta["name"]]
        error = _exception(item)
        result = item.result or {}
        results.append(CheckResult(
            check=check, success=bool(item.success) and error is None,
            element_count=int(result.get("element_count") or len(frame)),
            unexpected_count=int(result.get("unexpected_count") or (0 if item.success else 1)),
            failing=_failing(check, result), error=error))
    missing = set(by_name) - {r.check.name for r in results}
    results += [CheckResult(by_name[name], False, error="GX returned no result for this expectation")
                for name in sorted(missing)]
    return sorted(results, key=lambda r: [c.name for c in suite.checks].index(r.check.name))


FRAME_TABLE = "suite_frame"
REMEMBERED_TABLE = "ops.validated_rows"
REMEMBERED_ROWS = "remembered_rows"  # the temporary table of the hashes remembered for the suite run now
ROW_HASH = "__row_hash"
RULES_VERSION = 3  # raise when the way rows are judged changes: every remembered pass is then forgotten


def fingerprint(suite: Suite) -> str:
    """What a remembered pass depends on besides the row: the frame query and every check's rules
    (value sets included). A check marked `bound_only_widens` (a 'not in the future' bound that moves
    with the clock) enters by name only: a row inside yesterday's bound is inside today's."""
    rules = [[c.name, c.severity, c.action, c.column] + ([] if c.bound_only_widens else [
        c.expectation.dict(exclude_none=True, exclude={"id", "meta", "severity", "rendered_content"})])
        for c in suite.checks]
    text = json.dumps([RULES_VERSION, suite.frame_sql, rules], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _remembered(con, suite: Suite, rules: str) -> str:
    """A temporary table of the row hashes remembered as passing for this suite and its rules."""
    exists = has_table(con, *REMEMBERED_TABLE.split("."))
    source = (f"select row_hash from {REMEMBERED_TABLE} where suite = $suite and fingerprint = $rules" if exists
              else "select null::ubigint as row_hash where false")
    con.execute(f"create or replace temp table {REMEMBERED_ROWS} as {source}",
                {"suite": suite.name, "rules": rules} if exists else None)
    return REMEMBERED_ROWS


NEW_ROWS_TABLE = "suite_new_rows"
NEW_HASHES_TABLE = "suite_new_hashes"  # hash and record key of the rows not remembered
COPIES_TABLE = "suite_copies"  # per unique column: its repeated values (remember=True)


def _remembered_changes(con, failing_rows: pd.DataFrame, validated: str):
    """What ops.validated_rows gains and loses now (as pyarrow tables of row_hash): it gains the rows
    validated now (`validated`: a table of their hashes and record keys) whose record has no failing check,
    and loses the remembered rows that are gone (changed or deleted) and those of a record failing now.
    Only these change, so the daily write is a day's worth, and what stays remembered is exactly what a
    rewrite would keep: every row passing now."""
    keys = pd.DataFrame({"record_key": failing_rows[RECORD_KEY].dropna().astype(str).unique()})
    con.register("failing_keys", keys)
    failing = f"({RECORD_KEY} is null or cast({RECORD_KEY} as varchar) in (select record_key from failing_keys))"
    try:
        gained = con.sql(f"select distinct {ROW_HASH} as row_hash from {validated} where not {failing} "
                         f"and {ROW_HASH} not in (select row_hash from {REMEMBERED_ROWS})").to_arrow_table()
        lost = con.sql(f"select row_hash from {REMEMBERED_ROWS} where row_hash not in (select {ROW_HASH} from "
                       f"{FRAME_TABLE} where not {failing})").to_arrow_table()
    finally:
        con.unregister("failing_keys")
    return gained, lost


def run_suite(con, suite: Suite, context=None, chunk_rows: int = CHUNK_ROWS, remember: bool = False) -> SuiteResult:
    """Validate the suite's records; the frame query runs once, into a temporary table (allowed on a
    read-only connection) that the counts and the chunks then read. With `remember`, only rows not
    remembered as passing are validated (copied once into a temporary table of their own), and the
    result carries what to remember and forget now (write it with remember_passes); a scoped suite
    (Suite.scope) then reads only the parts of its frame that new loads touched."""
    started = time.perf_counter()
    unique = sorted(set(_unique_columns(suite).values()))
    copies_tables = [f"{COPIES_TABLE}_{i}" for i in range(len(unique))]
    parts = None
    try:
        if remember:
            parts = _read_scoped(con, suite, unique, copies_tables) if suite.scope else None
            if parts is None or not parts.partial:
                # a row's hash is of the frame row alone; its key's copies are counted on the frame table after
                # (a scan of one column instead of the frame query run again: 2 s of the 5.4 M events at 1M), and
                # every row of a repeated key is validated again, whatever its hash: a copy added beside a
                # remembered row fails both
                con.execute(f"create or replace temp table {FRAME_TABLE} as select *, "
                            f"{row_digest_sql(columns_of(con, suite.frame_sql))} as {ROW_HASH} from ({suite.frame_sql})")
                for column, table in zip(unique, copies_tables, strict=True):
                    copies = _copies_sql(f"select * from {FRAME_TABLE}", column)
                    con.execute(f"create or replace temp table {table} as {copies}")
            repeated = " or ".join(f'"{column}" in (select copied from {table})'
                                   for column, table in zip(unique, copies_tables, strict=True)) or "false"
            remembered = REMEMBERED_ROWS if parts else _remembered(con, suite, fingerprint(suite))
            if con.execute(f"select count(*) from {remembered}").fetchone()[0]:
                # the new hashes first (a scan of two columns), then their rows: 1.2 s instead of 1.8 s
                # for the 5.4 M events at 1M, and what is gained is then looked up among the new rows only
                con.execute(f"create or replace temp table {NEW_HASHES_TABLE} as select {ROW_HASH}, {RECORD_KEY} "
                            f"from {FRAME_TABLE} where {ROW_HASH} not in (select row_hash from {remembered}) "
                            f"or {repeated}")
                con.execute(f"create or replace temp table {NEW_ROWS_TABLE} as select * exclude ({ROW_HASH}) "
                            f"from {FRAME_TABLE} where {ROW_HASH} in (select {ROW_HASH} from {NEW_HASHES_TABLE})")
                rows_sql, validated = f"select * from {NEW_ROWS_TABLE}", NEW_HASHES_TABLE
            else:  # nothing remembered (a first run, a rebuild, new rules): every row, without a second copy
                rows_sql, validated = f"select * exclude ({ROW_HASH}) from {FRAME_TABLE}", FRAME_TABLE
            to_check = replace(suite, frame_sql=_counted_sql(rows_sql, unique, copies_tables) if unique else rows_sql)
        else:  # the copies are counted once, here: chunks then only scan the table (no join held in memory)
            counted, _ = _for_chunks(suite)
            con.execute(f"create or replace temp table {FRAME_TABLE} as {counted.frame_sql}")
            to_check = replace(suite, frame_sql=f"select * from {FRAME_TABLE}")
        day_counts = _day_counts(con, replace(suite, frame_sql=f"select * from {FRAME_TABLE}"))
        rows = con.execute(f"select count(*) from {FRAME_TABLE}").fetchall()[0][0]
        if parts:
            day_counts.update(parts.outside_days)
            rows += parts.outside_rows
        checked, results, failing_rows = _validate_chunks(con, to_check, context or _context(), chunk_rows,
                                                          restated=True)
        gained, lost, state = None, None, None
        if parts:
            state = _scoped_state(con, suite, parts, failing_rows)
        elif remember:
            gained, lost = _remembered_changes(con, failing_rows, validated)
    except Exception as error:  # noqa: BLE001 - a missing table/column is the suite's schema failure
        return SuiteResult(suite, 0, [], time.perf_counter() - started, error=f"frame could not be read: {error}")
    finally:
        for table in (FRAME_TABLE, NEW_ROWS_TABLE, NEW_HASHES_TABLE, CHANGED_TABLE, OTHERS_TOUCHED, TOUCHED_SCOPES,
                      REMEMBERED_ROWS, *copies_tables):
            con.execute(f"drop table if exists {table}")
    for result in results:  # the rows not checked again passed every check before, unchanged
        result.element_count += rows - checked
    return SuiteResult(suite, rows, results, time.perf_counter() - started, failing_rows=failing_rows,
                       day_counts=day_counts, remembered=rows - checked, passed_hashes=gained, forgotten_hashes=lost,
                       scoped_state=state)


SCOPED_ROWS = "ops.scoped_rows"  # a scoped suite's memory: every frame row's key, part, day, hash and verdict
SCOPED_LOADS = "ops.scoped_loads"  # the loads its inputs held when it last ran
CHANGED_TABLE = "suite_changed_rows"  # the main input's rows from loads the memory has not seen
OTHERS_TOUCHED = "suite_touched_by_others"  # the parts the other inputs' new loads touched
MEMORY_MARK = ""  # a scoped suite's memory exists: its loads hold this relation (with no load)


@dataclass
class _Parts:
    fingerprint: str
    loads: list[tuple[str, str]]
    partial: bool = False  # only the touched parts were read (else the whole frame, memory rebuilt)
    outside_rows: int = 0  # rows of the parts not touched (from the memory)
    outside_days: Counter = field(default_factory=Counter)


@functools.cache
def _dbt_code() -> str:
    """The dbt project's models and macros: what turns raw rows into the rows the frames read."""
    project = settings.dbt_project_dir()
    files = sorted(p for folder in ("models", "macros") for p in (project / folder).rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.relative_to(project).as_posix().encode() + p.read_bytes() for p in files)
                          ).hexdigest()


def scoped_fingerprint(con, suite: Suite) -> str:
    """What a scoped suite's memory depends on besides the loads: the rules (fingerprint), the scope, the
    reference seeds the models join and the dbt code; a change revalidates every part once."""
    tables = [t for (t,) in con.execute("select table_name from information_schema.tables "
                                        "where table_schema = 'reference' order by 1").fetchall()]
    seeds = con.execute(" union all ".join(
        f"select '{t}', md5(coalesce(string_agg(cast(r as varchar), '|' order by cast(r as varchar)), '')) "
        f"from reference.{t} as r" for t in tables)).fetchall() if tables else []
    text = json.dumps([fingerprint(suite), repr(suite.scope), sorted(seeds), _dbt_code()], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _execute(con, sql: str, params: dict) -> None:
    """`sql` with those of `params` it names (DuckDB refuses a parameter a statement does not use)."""
    con.execute(sql, {name: value for name, value in params.items() if f"${name}" in sql} or None)


def _exists(con, relation: str) -> bool:
    schema, _, table = relation.rpartition(".")
    return has_table(con, schema or "main", table)


def _read_scoped(con, suite: Suite, unique: list[str], copies_tables: list[str]) -> _Parts:
    """For a scoped suite with its memory: the touched parts of the frame into FRAME_TABLE, the copies
    of their unique values counted over the whole main input, and their rows remembered as passing into
    REMEMBERED_ROWS. Without a usable memory (none, an input that no longer holds any load it saw, or a
    number of rows the main input disagrees with: a row gone outside any load), an empty REMEMBERED_ROWS
    and parts.partial False: the caller reads the whole frame and the memory is rebuilt from it."""
    scope = suite.scope
    by_column = dict(scope.unique)
    if missing := [c for c in unique if c not in by_column]:
        raise ValueError(f"{suite.name}: the scope does not say how to count copies of {missing}")
    # an input not built yet (the facts' change log before the first build that writes it) has no loads
    parts = _Parts(scoped_fingerprint(con, suite), sorted(
        {(MEMORY_MARK, MEMORY_MARK)} | {(i.relation, load) for i in (scope.main, *scope.others)
                                        if i.load and _exists(con, i.relation)
                                        for (load,) in con.execute(f"select distinct cast({i.load} as varchar) "
                                                                   f"from {i.relation} where {i.load} is not null")
                                        .fetchall()}))
    params = {"suite": suite.name, "fp": parts.fingerprint}
    con.execute(f"create or replace temp table {REMEMBERED_ROWS} as select null::ubigint as row_hash where false")
    if not has_table(con, *SCOPED_LOADS.split(".")):
        return parts
    seen: dict[str, set[str]] = {}
    for relation, load in con.execute(f"select relation, load_id from {SCOPED_LOADS} where suite = $suite "
                                      "and fingerprint = $fp", params).fetchall():
        seen.setdefault(relation, set()).add(load)
    present = {relation: {load for r, load in parts.loads if r == relation} for relation in seen}
    # no memory; or an input kept none of the loads the memory saw (a log that keeps only its latest
    # loads was pruned past them, or rebuilt): the loads in between cannot be known
    if MEMORY_MARK not in seen or any(loads and not loads & present[relation]
                                      for relation, loads in seen.items() if relation != MEMORY_MARK):
        return parts
    memory = f"from {SCOPED_ROWS} where suite = $suite and fingerprint = $fp"

    def written_anew(source) -> str:  # rows a load wrote that the memory has not seen
        return (f"{source.load} is null or cast({source.load} as varchar) not in (select load_id from "
                f"{SCOPED_LOADS} where suite = $suite and fingerprint = $fp and relation = '{source.relation}')")

    main = scope.main
    by_others = " union all ".join(f"select hash({other.scope}) from {other.relation} where {written_anew(other)}"
                                   for other in scope.others if _exists(con, other.relation))
    by_others = by_others or "select null::ubigint where false"
    _execute(con, f"create or replace temp table {OTHERS_TOUCHED} as select distinct scope_hash from ({by_others}) "
                  "as touched(scope_hash)", params)
    # the main input's changed rows: written by a new load, or in a part another input touched
    changed = " or ".join([written_anew(main)] * bool(main.load) + [
        f"hash({main.scope}) in (select scope_hash from {OTHERS_TOUCHED})"] * bool(scope.others)) or "false"
    _execute(con, f"create or replace temp table {CHANGED_TABLE} as select hash({main.scope}) as scope_hash, "
                  f"md5_number_lower(cast({scope.key} as varchar)) as key_hash"
                  + "".join(f", {expr} as unique_{n}" for n, (_, expr) in enumerate(scope.unique))
                  + f" from {main.relation} where {changed}", params)
    touched = [f"select scope_hash from {OTHERS_TOUCHED}", f"select scope_hash from {CHANGED_TABLE}",
               # the part a changed record was in, and every part with a failing row (validated again)
               f"select scope_hash {memory} and (not passed or key_hash in (select key_hash from {CHANGED_TABLE}))",
               # a new copy of a unique value fails the rows it copies, wherever they are
               *(f"select hash({main.scope}) from {main.relation} where {expr} in (select unique_{n} from {CHANGED_TABLE})"
                 for n, (_, expr) in enumerate(scope.unique))]
    con.execute(f"create or replace temp table {TOUCHED_SCOPES} as select distinct scope_hash from "
                f"({' union all '.join(touched)}) as touched(scope_hash)", params)
    columns = columns_of(con, scope.frame_sql)
    con.execute(f"create or replace temp table {FRAME_TABLE} as select *, "
                f"{row_digest_sql(columns)} as {ROW_HASH} from ({scope.frame_sql})")
    outside = con.execute(f"select record_day, count(distinct key_hash), count(*) {memory} and scope_hash not in "
                          f"(select scope_hash from {TOUCHED_SCOPES}) group by all", params).fetchall()
    outside_rows = sum(n for *_, n in outside)
    main_rows = con.execute(f"select count(*) from {main.relation}").fetchone()[0]
    if main_rows != outside_rows + con.execute(f"select count(*) from {FRAME_TABLE}").fetchone()[0]:
        return parts
    for column, table in zip(unique, copies_tables, strict=True):
        expr = by_column[column]
        con.execute(f"create or replace temp table {table} as select {expr} as copied, count(*) as copies "
                    f'from {main.relation} where {expr} in (select "{column}" from {FRAME_TABLE}) '
                    "group by 1 having count(*) > 1")
    con.execute(f"insert into {REMEMBERED_ROWS} select row_hash {memory} and passed and scope_hash in "
                f"(select scope_hash from {TOUCHED_SCOPES})", params)
    parts.partial, parts.outside_rows = True, outside_rows
    if any(name == "record_day" for name, _ in columns):
        parts.outside_days = Counter({day: records for day, records, _ in outside})
    return parts


def _scoped_state(con, suite: Suite, parts: _Parts, failing_rows: pd.DataFrame) -> ScopedState:
    """The memory of the rows read now (spilled to Parquet: a whole frame is millions of rows)."""
    keys = pd.DataFrame({"record_key": failing_rows[RECORD_KEY].dropna().astype(str).unique()})
    handle, path = tempfile.mkstemp(prefix="scoped-rows-", suffix=".parquet", dir=_spill_dir())
    os.close(handle)
    con.register("failing_keys", keys)
    try:
        day = "record_day" if "record_day" in failing_rows.columns else "null::date"
        con.execute(f"copy (select md5_number_lower(cast({RECORD_KEY} as varchar)) as key_hash, "
                    f'hash("{suite.scope.column}") as scope_hash, {day} as record_day, {ROW_HASH} as row_hash, '
                    f"{RECORD_KEY} is not null and cast({RECORD_KEY} as varchar) not in "
                    f"(select record_key from failing_keys) as passed from {FRAME_TABLE}) to '{path}' (format parquet)")
        touched = con.sql(f"select scope_hash from {TOUCHED_SCOPES}").to_arrow_table() if parts.partial else None
    finally:
        con.unregister("failing_keys")
    return ScopedState(parts.fingerprint, path, touched, parts.loads)


@functools.cache
def _spill_directory() -> tempfile.TemporaryDirectory:
    """For this process's spilled memories; removed when the process ends."""
    return tempfile.TemporaryDirectory(prefix="citizen-voice-suites-")


def _spill_dir() -> str:
    return _spill_directory().name


# DuckDB keeps memory it freed for reuse (about 500 MB after a 1M-row suite, released only when the
# database closes), carried into the next suite: hand freed memory back to the system sooner
ALLOCATOR_FLUSH = {"allocator_flush_threshold": "32MB", "allocator_background_threads": "true"}


# The suites' frame tables spill, and DuckDB fills its whole limit with their blocks read back as the chunks
# scan them. At 512 MB the whole-year events suite at 1M peaks at 1,276 MB instead of 1,727 MB (43 % slower:
# 62 s instead of 43 s); its daily run (only new rows validated) at 877 MB instead of 1,351 MB (10.7 s, 9.5 s).
SUITE_MEMORY_LIMIT = "512MB"
# While a frame of more than one chunk streams through the checks (a first or whole-year run), DuckDB reads
# the spilled frame back and keeps what it read up to its limit (this and the cycles of COLLECT_EVERY_CHUNKS took the
# whole-year run at 1M to 2,055 MB in the raw events suite). The events suite alone: 1,296 MB at 512 MB,
# 1,044 MB at 256 MB (40.3 s, 42.7 s). A daily run validates only new rows, within one chunk: not lowered.
SCAN_MEMORY_LIMIT = "256MB"


def run_suites(con, suites: list[Suite], remember: bool = False) -> list[SuiteResult]:
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    for name, value in ALLOCATOR_FLUSH.items():
        con.execute(f"set {name} = '{value}'")
    use_system_allocator()
    try:
        context, results = _context(), []
        for suite in suites:  # each suite starts from the memory the one before it freed
            con.execute(f"set memory_limit = '{SUITE_MEMORY_LIMIT}'")
            results.append(run_suite(con, suite, context, remember=remember))
            release_unused()
    finally:  # the platform's limit (DuckDB reports a limit rounded, so the one read before is not exact)
        con.execute(f"set memory_limit = '{settings.duckdb_config()['memory_limit']}'")
    return results


def remember_passes(con, results: list[SuiteResult]) -> int:
    """Per suite, add the hashes of the rows newly passing and drop those no longer passing (and every
    hash remembered under other rules); a suite that could not run keeps nothing, so its next run
    validates everything. A scoped suite's memory is replaced part by part (_remember_parts).
    Returns the number of hashes added."""
    con.execute("create schema if not exists ops")
    con.execute(f"create table if not exists {REMEMBERED_TABLE} (suite varchar, fingerprint varchar, row_hash ubigint)")
    con.execute(f"create table if not exists {SCOPED_ROWS} (suite varchar, fingerprint varchar, key_hash ubigint, "
                "scope_hash ubigint, record_day date, row_hash ubigint, passed boolean)")
    con.execute(f"create table if not exists {SCOPED_LOADS} (suite varchar, fingerprint varchar, relation varchar, "
                "load_id varchar)")
    added = 0
    for result in results:
        if result.suite.scope is not None:
            added += _remember_parts(con, result)
            continue
        if result.passed_hashes is None or result.errors:
            con.execute(f"delete from {REMEMBERED_TABLE} where suite = ?", [result.suite.name])
            continue
        rules = fingerprint(result.suite)
        con.execute(f"delete from {REMEMBERED_TABLE} where suite = ? and fingerprint <> ?", [result.suite.name, rules])
        con.register("passed_rows", result.passed_hashes)
        con.register("forgotten_rows", result.forgotten_hashes)
        try:
            if result.forgotten_hashes.num_rows:
                con.execute(f"delete from {REMEMBERED_TABLE} where suite = ? and fingerprint = ? "
                            "and row_hash in (select row_hash from forgotten_rows)", [result.suite.name, rules])
            con.execute(f"insert into {REMEMBERED_TABLE} select ?, ?, row_hash from passed_rows",
                        [result.suite.name, rules])
        finally:
            con.unregister("passed_rows")
            con.unregister("forgotten_rows")
        added += result.passed_hashes.num_rows
    return added


def _remember_parts(con, result: SuiteResult) -> int:
    """A scoped suite's memory: the rows of the parts read now replace those remembered for them (every
    part, after a whole-frame run), and the loads seen are the inputs' loads now. Returns the rows passing."""
    name, state = result.suite.name, result.scoped_state
    con.execute(f"delete from {REMEMBERED_TABLE} where suite = ?", [name])  # remembered in the scoped tables only
    try:
        if state is None or result.errors:
            for table in (SCOPED_ROWS, SCOPED_LOADS):
                con.execute(f"delete from {table} where suite = ?", [name])
            return 0
        for table in (SCOPED_ROWS, SCOPED_LOADS):
            con.execute(f"delete from {table} where suite = ? and fingerprint <> ?", [name, state.fingerprint])
        if state.touched is None:
            con.execute(f"delete from {SCOPED_ROWS} where suite = ?", [name])
        else:
            con.register("touched_parts", state.touched)
            try:
                con.execute(f"delete from {SCOPED_ROWS} where suite = ? and scope_hash in "
                            "(select scope_hash from touched_parts)", [name])
            finally:
                con.unregister("touched_parts")
        con.execute(f"insert into {SCOPED_ROWS} select ?, ?, key_hash, scope_hash, record_day, row_hash, passed "
                    "from read_parquet(?)", [name, state.fingerprint, state.rows_file])
        con.execute(f"delete from {SCOPED_LOADS} where suite = ?", [name])
        con.executemany(f"insert into {SCOPED_LOADS} values (?, ?, ?, ?)",
                        [[name, state.fingerprint, relation, load] for relation, load in state.loads])
        return con.execute("select count(*) filter (where passed) from read_parquet(?)", [state.rows_file]).fetchone()[0]
    finally:
        if state is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(state.rows_file)
