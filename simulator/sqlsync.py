"""Serve a department's SQL database on PostgreSQL: copy a SQLite store into a schema.

Each table is dropped and recreated with the store's columns (INTEGER stays an integer, REAL a
double, everything else TEXT; primary keys kept) and filled with COPY in batches, all in one
transaction so readers never see a half-copied schema.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa

BATCH_ROWS = 20_000


def _column_type(declared: str) -> sa.types.TypeEngine:
    # SQLite's type affinity rules: "INT" anywhere means integer; REAL/FLOA/DOUB mean real.
    declared = declared.upper()
    if "INT" in declared:
        return sa.BigInteger()
    if any(word in declared for word in ("REAL", "FLOA", "DOUB")):
        return sa.Double()
    return sa.Text()


def _read_tables(source: sqlite3.Connection, metadata: sa.MetaData) -> list[sa.Table]:
    names = [
        name
        for (name,) in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    tables = []
    for name in names:
        # PRAGMA table_info rows: (cid, name, type, notnull, default, pk)
        columns = [
            sa.Column(column, _column_type(declared), primary_key=pk > 0, autoincrement=False)
            for _, column, declared, _, _, pk in source.execute(f"PRAGMA table_info({_sqlite_quote(name)})")
        ]
        tables.append(sa.Table(name, metadata, *columns))
    return tables


def _sqlite_quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _copy_text(value: object) -> str:
    """A value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_rows(dbapi_connection, qualified_table: str, columns: list[str], rows: Iterable[tuple]) -> None:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(map(_copy_text, row)))
        buffer.write("\n")
    buffer.seek(0)
    with dbapi_connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {qualified_table} ({', '.join(columns)}) FROM STDIN", buffer)


def copy_sqlite_to_postgres(sqlite_path: str | Path, url: str, schema: str = "zhujian") -> dict[str, int]:
    """Copy every table of a SQLite store into `schema` (replacing the tables); returns row counts.

    `url` is a SQLAlchemy URL; with psycopg2 the rows go in by COPY, with other drivers by
    executemany.
    """
    sqlite_path = Path(sqlite_path).resolve()
    if not sqlite_path.is_file():
        raise FileNotFoundError(f"store not found: {sqlite_path}")
    source = sqlite3.connect(f"{sqlite_path.as_uri()}?mode=ro", uri=True)
    engine = sa.create_engine(url)
    counts: dict[str, int] = {}
    try:
        tables = _read_tables(source, sa.MetaData(schema=schema))
        with engine.begin() as target:
            target.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
            use_copy = target.dialect.driver == "psycopg2"
            preparer = target.dialect.identifier_preparer
            for table in tables:
                table.drop(target, checkfirst=True)
                table.create(target)
                names = [column.name for column in table.columns]
                quoted_names = [preparer.quote(name) for name in names]
                select = f"SELECT {', '.join(map(_sqlite_quote, names))} FROM {_sqlite_quote(table.name)}"
                rows = source.execute(select)
                counts[table.name] = 0
                while batch := rows.fetchmany(BATCH_ROWS):
                    if use_copy:
                        dbapi_connection = target.connection.dbapi_connection
                        _copy_rows(dbapi_connection, preparer.format_table(table), quoted_names, batch)
                    else:
                        target.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in batch])
                    counts[table.name] += len(batch)
    finally:
        source.close()
        engine.dispose()
    return counts
