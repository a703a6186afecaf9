"""Extractor for a department's own SQL database (any SQLAlchemy URL), read as Arrow tables.

`extract(entry, state)` reads every table declared in `entry.system.tables` (a SqlDatabaseSource)
and yields `Batch(table, pa.Table, origin)` chunks of at most `chunk_size` rows:

* backend `pyarrow`: SQLAlchemy streams the rows (server-side cursor where the driver has one),
  `fetchmany(chunk_size)` blocks become Arrow columns typed from the reflected column types;
* backend `connectorx`: connectorx streams Arrow record batches itself (SQLite, PostgreSQL,
  MySQL, SQL Server, Oracle); the same Arrow schema is applied, so both backends give the same tables.

Column types come from the database's declared types, never from the values a driver happens to
return: text columns are Arrow strings and integer columns int64 even when a chunk is all NULL
or the text looks like a number.

Incremental reads with a lookback: a table with `cursor_field` keeps the newest cursor value it
has yielded in `state["tables"][<table>]`; the next run reads rows whose cursor is at or after
(newest - lookback_days) ordered by cursor then primary key, then rows whose cursor is NULL.
Text cursors (`cursor_format`, which must sort like time, e.g. "%Y-%m-%d %H:%M:%S") get a lower
bound in the same text format; timestamp and date columns get a timestamp/date bound; integer
cursors declared `epoch_seconds` in `types` get a bound in seconds; other numeric cursors are
re-read from the newest value. The framework merges on the primary key, so re-reading the window
is idempotent and catches rows committed late with an older cursor. A row committed later than
the lookback with a cursor value older than the window is not re-read (choose lookback_days
longer than the longest commit delay). A table without cursor_field is read whole every run.
The state only advances for chunks the consumer has taken (after `yield` returns).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from ingestion.core import Batch, Rejected
from ingestion.registry import SourceEntry, SqlDatabaseSource, SqlTable

log = logging.getLogger(__name__)

# connectorx speaks these database families (SQLAlchemy dialect name -> connectorx scheme)
CONNECTORX_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql",
                      "mssql": "mssql", "oracle": "oracle"}
# strftime directives that may appear in a text cursor, in the only order that sorts like time
SORTABLE_DIRECTIVES = ("Y", "m", "d", "H", "M", "S", "f")


class SqlDatabaseError(RuntimeError):
    """A department database could not be read; the message names the source and the table and never
    contains the password."""


# --------------------------------------------------------------------------------------------
# URLs and error messages without passwords

_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)([^\s/]+)@")


def mask(text: str, url: sa.URL | None = None) -> str:
    """`text` with any URL password (and the given URL's password, raw or encoded) replaced by ***."""
    text = str(text)
    if url is not None and url.password:
        for secret in sorted({str(url.password), quote(str(url.password), safe="")}, key=len, reverse=True):
            if len(secret) >= 3:  # replacing 1-2 characters would garble messages and hide nothing
                text = text.replace(secret, "***")
    return _URL_PASSWORD.sub(r"\1***@", text)


def _resolve_url(entry: SourceEntry) -> sa.URL:
    system = entry.system
    raw = system.url.resolve(f"source {entry.name}: url")
    unset = re.findall(r"\$\{(\w+)\}", raw)
    if unset:
        raise SqlDatabaseError(f"source {entry.name}: url: environment variable(s) {', '.join(unset)} not set")
    try:
        url = sa.engine.make_url(raw)
    except sa.exc.ArgumentError:
        given = f"environment variable {system.url.env}" if system.url.env and os.environ.get(system.url.env) \
            else "the registry value"
        # the text itself is not shown: a malformed URL may still hold a password
        raise SqlDatabaseError(f"source {entry.name}: url ({given}) is not a SQLAlchemy URL "
                               "(e.g. sqlite:////path/to/file.sqlite, "
                               "postgresql+psycopg2://user:password@host:5432/database)") from None
    return url


def _connectorx_url(url: sa.URL) -> str:
    dialect = url.get_backend_name()
    scheme = CONNECTORX_SCHEMES.get(dialect)
    if scheme is None:
        raise ValueError(f"connectorx does not read {dialect} databases; use backend: pyarrow")
    if scheme == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ValueError("connectorx reads SQLite files only (sqlite:////absolute/path); use backend: pyarrow")
        return "sqlite://" + quote(os.path.abspath(database))
    return url.set(drivername=scheme).render_as_string(hide_password=False)


def _check_sqlite_file(url: sa.URL) -> None:
    """SQLite would silently create an empty database at a wrong path; say so instead."""
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:") and not os.path.isfile(database):
        raise FileNotFoundError(f"SQLite database file not found: {os.path.abspath(database)}")


# --------------------------------------------------------------------------------------------
# Types: Arrow types from the declared column types


def arrow_type(column_type: sa.types.TypeEngine) -> pa.DataType | None:
    """The Arrow type for a reflected column type; None when it must be inferred from the values."""
    kind = column_type
    if isinstance(kind, sa.Boolean):
        return pa.bool_()
    if isinstance(kind, sa.Integer):
        return pa.int64()
    if isinstance(kind, sa.Float):
        return pa.float64()
    if isinstance(kind, sa.Numeric):
        precision, scale = kind.precision, kind.scale
        if precision and scale is not None and precision <= 38:
            return pa.decimal128(precision, scale)
        # bare NUMERIC: what connectorx gives too; a value that does not fit falls back to inference
        return pa.decimal128(38, 10) if precision is None and scale is None else None
    if isinstance(kind, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if kind.timezone else None)
    if isinstance(kind, sa.Date):
        return pa.date32()
    if isinstance(kind, sa.Time):
        return pa.time64("us")
    if isinstance(kind, sa.Interval):
        return pa.duration("us")
    if isinstance(kind, sa.String | sa.Uuid | sa.JSON):  # Text, VARCHAR, CHAR, Enum, UUID, JSON -> text
        return pa.string()
    if isinstance(kind, sa.LargeBinary | sa.types._Binary):
        return pa.binary()
    return None


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _to_array(values: list | tuple, kind: pa.DataType | None) -> pa.Array:
    if kind is not None:
        try:
            return pa.array(values, type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            if pa.types.is_string(kind):
                return pa.array([_as_text(v) for v in values], type=pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        # mixed values in a column without a usable type (SQLite allows it): keep them, as text
        return pa.array([_as_text(v) for v in values], type=pa.string())


def rows_to_arrow(rows: list, names: list[str], types: list[pa.DataType | None]) -> pa.Table:
    """Row tuples -> Arrow table: one pass through a struct array when every type is known,
    else column by column (with inference, and text as the last resort for mixed values)."""
    if all(kind is not None for kind in types):
        try:
            struct = pa.array(rows, type=pa.struct([pa.field(n, t) for n, t in zip(names, types, strict=True)]))
            return pa.Table.from_arrays(struct.flatten(), names=names)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            pass
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return pa.Table.from_arrays([_to_array(c, t) for c, t in zip(columns, types, strict=True)], names=names)


def conform(table: pa.Table, names: list[str], types: list[pa.DataType | None]) -> pa.Table:
    """Cast an Arrow table (connectorx) to the declared types, so both backends agree."""
    arrays = []
    for name, kind in zip(names, types, strict=True):
        column = table.column(name)
        if kind is None:
            if pa.types.is_large_string(column.type):
                column = column.cast(pa.string())
        elif column.type != kind:
            try:
                column = column.cast(kind)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                if not pa.types.is_string(kind):
                    raise
                column = pa.chunked_array([_to_array(column.to_pylist(), kind)], type=kind)
        arrays.append(column)
    return pa.Table.from_arrays(arrays, names=names)


# --------------------------------------------------------------------------------------------
# Cursors


@dataclass
class Cursor:
    """How a table's cursor column is compared, bounded and remembered."""

    field: str
    kind: str  # text | timestamp | date | epoch_seconds | number
    text_format: str | None = None

    def parse(self, stored: str) -> Any:
        """A value as kept in state -> the value compared in SQL."""
        if self.kind == "text":
            datetime.strptime(stored, self.text_format)  # reject a value the format no longer reads
            return stored
        if self.kind == "timestamp":
            return datetime.fromisoformat(stored)
        if self.kind == "date":
            return date.fromisoformat(stored)
        number = float(stored)
        return int(number) if number.is_integer() else number

    def dump(self, value: Any) -> str:
        return value.isoformat() if isinstance(value, date) else str(value)

    def lower_bound(self, newest: Any, lookback_days: float) -> Any:
        if self.kind == "text":
            earlier = datetime.strptime(newest, self.text_format) - timedelta(days=lookback_days)
            return earlier.strftime(self.text_format)
        if self.kind == "timestamp":
            return newest - timedelta(days=lookback_days)
        if self.kind == "date":
            return newest - timedelta(days=math.ceil(lookback_days))
        if self.kind == "epoch_seconds":
            bound = newest - lookback_days * 86400
            return int(bound) if float(bound).is_integer() else bound
        return newest  # a sequence number: no notion of days; >= re-reads the newest value's rows

    def newest(self, column: pa.ChunkedArray) -> Any:
        """The newest cursor value in a chunk (None if it has none usable)."""
        if self.kind != "text":
            value = pc.max(column).as_py()
            return value
        # text sorts like time (checked), so the largest value that round-trips through the format
        # is the newest; malformed values ("", "N/A") are skipped so they cannot poison the state
        candidates = pc.unique(column.drop_null())
        for index in pc.array_sort_indices(candidates, order="descending").to_pylist():
            value = candidates[index].as_py()
            try:
                if datetime.strptime(value, self.text_format).strftime(self.text_format) == value:
                    return value
            except ValueError:
                continue
        return None


def _check_sortable(text_format: str) -> bool:
    directives = re.findall(r"%(.)", text_format)
    return bool(directives) and tuple(directives) == SORTABLE_DIRECTIVES[: len(directives)]


def _cursor(spec: SqlTable, column: sa.Column, where: str) -> Cursor:
    field = spec.cursor_field
    declared = spec.types.get(field, "")
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return Cursor(field, "timestamp")
    if isinstance(kind, sa.Date):
        return Cursor(field, "date")
    if isinstance(kind, sa.Integer | sa.Numeric):
        return Cursor(field, "epoch_seconds" if declared == "epoch_seconds" else "number")
    if spec.cursor_format is None:
        raise SqlDatabaseError(f"{where}: cursor_field {field} is a {kind} column; set cursor_format "
                               '(the strftime format of its text, e.g. "%Y-%m-%d %H:%M:%S")')
    if not _check_sortable(spec.cursor_format):
        raise SqlDatabaseError(f"{where}: cursor_format {spec.cursor_format!r} does not sort like time as "
                               "text; a text cursor needs %Y then %m %d %H %M %S (%f) in that order")
    return Cursor(field, "text", spec.cursor_format)


# --------------------------------------------------------------------------------------------
# Reading


def _reflect(connection: sa.Connection, spec: SqlTable, schema: str | None, where: str) -> sa.Table:
    try:
        table = sa.Table(spec.name, sa.MetaData(schema=schema), autoload_with=connection)
    except sa.exc.NoSuchTableError:
        try:
            known = sorted(sa.inspect(connection).get_table_names(schema=schema))
        except sa.exc.SQLAlchemyError:
            known = []
        hint = f"; tables there: {', '.join(known)}" if known else "; no tables there"
        raise SqlDatabaseError(f"{where}: table not found in the database"
                               f"{f' (schema {schema})' if schema else ''}{hint}") from None
    columns = set(table.columns.keys())
    missing = [f"primary key column {key}" for key in spec.primary_key if key not in columns]
    if spec.cursor_field and spec.cursor_field not in columns:
        missing.append(f"cursor column {spec.cursor_field}")
    if missing:
        raise SqlDatabaseError(f"{where}: the table has no {', no '.join(missing)}; "
                               f"its columns: {', '.join(table.columns.keys())}")
    return table


def _queries(table: sa.Table, spec: SqlTable, cursor: Cursor | None, bound: Any) -> list[tuple[str, sa.Select]]:
    """(origin label, query) pairs for one run of a table."""
    # JSON comes as the database's own text (drivers would parse it and each re-serialise differently)
    select = sa.select(*(sa.cast(column, sa.Text).label(column.name) if isinstance(column.type, sa.JSON)
                         else column for column in table.columns))
    keys = [table.c[key] for key in spec.primary_key]
    if cursor is None:
        return [("(all)", select.order_by(*keys))]
    column = table.c[cursor.field]
    if bound is None:
        return [("(all)", select.order_by(column, *keys))]
    # two queries rather than `>= bound OR IS NULL`: each is a plain index range, whereas the OR
    # makes PostgreSQL walk the whole index for a server-side cursor
    return [(f"cursor>={cursor.dump(bound)}", select.where(column >= bound).order_by(column, *keys)),
            ("cursor IS NULL", select.where(column.is_(None)).order_by(*keys))]


def _pyarrow_chunks(connection: sa.Connection, query: sa.Select, chunk_size: int, names, types):
    result = connection.execution_options(stream_results=True, yield_per=chunk_size).execute(query)
    try:
        while rows := result.fetchmany(chunk_size):
            yield rows_to_arrow([tuple(row) for row in rows], names, types)
    finally:
        result.close()


def _connectorx_chunks(url: sa.URL, dialect: sa.Dialect, query: sa.Select, chunk_size: int, names, types):
    import connectorx

    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    reader = connectorx.read_sql(_connectorx_url(url), sql, return_type="arrow_stream", batch_size=chunk_size)
    for record_batch in reader:
        if record_batch.num_rows:
            yield conform(pa.Table.from_batches([record_batch]), names, types)


def _table_state(state: dict, spec: SqlTable) -> dict:
    tables = state.setdefault("tables", {})
    return tables.setdefault(spec.name, {})


def _engine(url: sa.URL) -> sa.Engine:
    connect_args = {}
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg2" \
            and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 15
    return sa.create_engine(url, connect_args=connect_args)


def _read_table(entry: SourceEntry, url: sa.URL, engine: sa.Engine, spec: SqlTable,
                state: dict) -> Iterator[Batch | Rejected]:
    system: SqlDatabaseSource = entry.system
    where = f"source {entry.name} ({url.render_as_string(hide_password=True)}), table {spec.name}"
    table_state = _table_state(state, spec)
    with engine.connect() as connection:
        table = _reflect(connection, spec, system.db_schema, where)
        names = list(table.columns.keys())
        types = [arrow_type(column.type) for column in table.columns]
        cursor = _cursor(spec, table.c[spec.cursor_field], where) if spec.cursor_field else None

        newest = bound = None
        if cursor is not None and table_state.get("cursor_field") == cursor.field \
                and table_state.get("last_value") is not None:
            try:
                newest = cursor.parse(table_state["last_value"])
                bound = cursor.lower_bound(newest, entry.lookback_days)
            except (ValueError, TypeError):
                log.warning("%s: stored cursor %r does not fit the %s column; reading the whole table",
                            where, table_state["last_value"], cursor.kind)
                newest = bound = None
        elif cursor is not None and table_state.get("last_value") is not None:
            log.warning("%s: stored cursor was for %s, now %s; reading the whole table",
                        where, table_state.get("cursor_field"), cursor.field)
        queries = _queries(table, spec, cursor, bound)
        log.info("%s: reading rows %s with %s in chunks of %d", where, queries[0][0], system.backend,
                 system.chunk_size)
        number = 0
        for label, query in queries:
            if system.backend == "connectorx":
                chunks = _connectorx_chunks(url, engine.dialect, query, system.chunk_size, names, types)
            else:
                chunks = _pyarrow_chunks(connection, query, system.chunk_size, names, types)
            while True:
                try:
                    rows = next(chunks)
                except StopIteration:
                    break
                except sa.exc.SQLAlchemyError as exc:
                    raise SqlDatabaseError(f"{where}: reading failed: {mask(exc, url)}") from None
                except BaseException as exc:  # connectorx raises RuntimeError, ValueError and Rust panics
                    panic = type(exc).__name__ == "PanicException"  # pyo3's, a BaseException
                    if system.backend != "connectorx" or not (isinstance(exc, Exception) or panic):
                        raise
                    raise SqlDatabaseError(f"{where}: connectorx failed ({type(exc).__name__}: "
                                           f"{mask(exc, url)}); backend: pyarrow reads any SQLAlchemy "
                                           "database") from None
                number += 1
                chunk_newest = cursor.newest(rows.column(cursor.field)) if cursor is not None else None
                yield Batch(table=spec.name, rows=rows, origin=f"{spec.name} rows {label} chunk {number}")
                # the consumer has taken the chunk: only now may the cursor move past its rows
                if chunk_newest is not None and (newest is None or chunk_newest > newest):
                    newest = chunk_newest
                    table_state.update(cursor_field=cursor.field, last_value=cursor.dump(newest))


def extract(entry: SourceEntry, state: dict) -> Iterator[Batch | Rejected]:
    """Read every table of a sql_database source entry as Arrow chunks (see the module docstring)."""
    system = entry.system
    if not isinstance(system, SqlDatabaseSource):
        raise TypeError(f"source {entry.name} is a {system.kind} source, not sql_database")
    if system.chunk_size < 1:
        raise SqlDatabaseError(f"source {entry.name}: chunk_size must be at least 1, not {system.chunk_size}")
    url = _resolve_url(entry)
    shown = url.render_as_string(hide_password=True)
    try:
        _check_sqlite_file(url)
        engine = _engine(url)
    except (FileNotFoundError, ImportError, sa.exc.SQLAlchemyError) as exc:
        first = system.tables[0].name if system.tables else "-"
        problem = f"no driver for {url.drivername} is installed ({exc})" \
            if isinstance(exc, ImportError | sa.exc.NoSuchModuleError) else str(exc)
        raise SqlDatabaseError(f"source {entry.name} ({shown}), table {first}: "
                               f"cannot open the database: {mask(problem, url)}") from None
    try:
        for spec in system.tables:
            try:
                yield from _read_table(entry, url, engine, spec, state)
            except SqlDatabaseError:
                raise
            except sa.exc.OperationalError as exc:
                raise SqlDatabaseError(f"source {entry.name} ({shown}), table {spec.name}: cannot connect "
                                       f"to or read the database: {mask(exc.orig or exc, url)}") from None
            except sa.exc.SQLAlchemyError as exc:
                raise SqlDatabaseError(f"source {entry.name} ({shown}), table {spec.name}: "
                                       f"{mask(exc, url)}") from None
    finally:
        engine.dispose()
