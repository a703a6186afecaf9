"""The privacy gate: every published file and serving table is scanned before it is released.

What counts as a hit
* a phone or ID number by shape (citizen_voice.privacy.find_personal_data: mobile and landline
  numbers, 18-digit IDs with a valid check digit, 15-digit IDs with a plausible birth date; masks
  such as 138****5678 are not hits), in any text or integer cell;
* when a sandbox manifest is present (<CV_SANDBOX>/truth/personal_values.parquet), any of the
  city's known phone or ID numbers inside a cell (separators ignored), and any cell that equals a
  known name (in HTML/text files: a known name of 3+ characters anywhere in the text).

Tabular data (Parquet, CSV, DuckDB tables) is scanned in DuckDB: only distinct values with at
least 7 digits (and not a plain date/time) reach the Python checks, names are matched by a join.
A hit raises PersonalDataFound naming the file or table, the column, the kind and the count.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from citizen_voice import settings
from citizen_voice.privacy import PSEUDONYM_HEX_CHARS, find_personal_data, mask

PERSONAL_VALUES = Path("truth") / "personal_values.parquet"
TABULAR_SUFFIXES = {".parquet", ".csv"}
TEXT_SUFFIXES = {".json", ".html", ".htm", ".xml", ".txt", ".md"}
SCANNED_TYPES = re.compile(r"^(VARCHAR|JSON|BIGINT|HUGEINT|UBIGINT|UHUGEINT|INTEGER|DOUBLE|FLOAT|DECIMAL\(\d+,\d+\))$")
# Fractions (rates such as 0.3770491803278690) are not numbers anyone dials: only whole values of
# floating-point and decimal columns are read, as integers.
FRACTIONAL_TYPES = re.compile(r"^(DOUBLE|FLOAT|DECIMAL\(\d+,[1-9]\d*\))$")
MIN_DIGITS = 7  # the shortest number find_personal_data reports has more
# A value that is only a date or time cannot hold a phone or ID number: skip it cheaply.
PLAIN_TIME = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}(:?\d{2})?|Z)?)?$"
_DIGIT_RUN_JOINERS = re.compile(r"[\s\-\u00a0\u3000()（）+]")
_FULLWIDTH = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789Xx")
_NUMBER_RUN = re.compile(r"[0-9]+[Xx]?")
MIN_TEXT_NAME_LENGTH = 3
FRACTION_DIGITS = re.compile(r"(?<=[0-9])\.[0-9]+")
# Keyed pseudonyms (ph_/id_/nm_ + hex) and hex digests (text hashes: 24+ hex digits, at least one
# letter) are not read as numbers; a run of digits alone is never exempt.
HASHES = re.compile(rf"\b(?:(?:ph|id|nm)_[0-9a-f]{{{PSEUDONYM_HEX_CHARS}}}|(?=[0-9a-f]*[a-f])[0-9a-f]{{24,}})\b")


@dataclass(frozen=True)
class Hit:
    location: str  # file path or schema.table
    column: str
    kind: str  # phone, id_no, known_phone, known_id_no, known_name
    count: int  # distinct values
    sample: str  # masked

    def __str__(self) -> str:
        return f"{self.location} column {self.column!r}: {self.count} {self.kind} (e.g. {self.sample})"


class PersonalDataFound(RuntimeError):
    """Personal data in output about to be published."""

    def __init__(self, hits: list[Hit]):
        self.hits = hits
        shown = "; ".join(str(h) for h in hits[:10])
        more = f"; and {len(hits) - 10} more" if len(hits) > 10 else ""
        super().__init__(f"privacy gate: personal data found in {len({h.location for h in hits})} "
                         f"location(s): {shown}{more}")


@dataclass(frozen=True)
class KnownValues:
    """The sandbox city's personal values (ground truth), for an exact check on top of the shapes."""

    names: frozenset[str]
    numbers: dict[str, str]  # value -> phone | id_no
    number_lengths: frozenset[int] = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "number_lengths", frozenset(len(v) for v in self.numbers))


def load_known_values(sandbox_dir: Path | None = None) -> KnownValues | None:
    """The sandbox manifest's personal values, or None when there is no sandbox manifest."""
    path = Path(sandbox_dir or settings.sandbox_dir()) / PERSONAL_VALUES
    if not path.exists():
        return None
    rows = pq.read_table(path, columns=["kind", "value"]).to_pylist()
    names = frozenset(r["value"].strip() for r in rows if r["kind"] == "name" and r["value"])
    numbers = {r["value"].strip().upper(): r["kind"] for r in rows
               if r["kind"] in ("phone", "id_no") and r["value"]}
    return KnownValues(names, numbers)


def _known_numbers_in(value: str, known: KnownValues) -> list[tuple[str, str]]:
    text = _DIGIT_RUN_JOINERS.sub("", value.translate(_FULLWIDTH))
    found = []
    for run in _NUMBER_RUN.findall(text):
        run = run.upper()
        for length in known.number_lengths:
            for start in range(len(run) - length + 1):
                candidate = run[start:start + length]
                if candidate in known.numbers:
                    found.append((known.numbers[candidate], candidate))
    return found


def classify(value: str, known: KnownValues | None) -> list[tuple[str, str]]:
    """(kind, masked sample) for each piece of personal data in one value (names excluded).
    Pseudonyms and hex digests are not read as numbers (HASHES), nor the digits after a decimal
    point (a rate such as 0.3770491803278690 in a CSV or JSON file)."""
    value = FRACTION_DIGITS.sub("", HASHES.sub(" ", value))
    hits = [(f.kind, f.sample) for f in find_personal_data(value)]
    if known is not None:
        hits += [(f"known_{kind}", mask(number, kind)) for kind, number in _known_numbers_in(value, known)]
    return hits


def tally(location: str, column: str, values: Iterable[str], known: KnownValues | None) -> list[Hit]:
    counts: Counter[str] = Counter()
    samples: dict[str, str] = {}
    for value in values:
        for kind in {kind for kind, _ in classify(value, known)}:
            counts[kind] += 1
            samples.setdefault(kind, next(s for k, s in classify(value, known) if k == kind))
    return [Hit(location, column, kind, n, samples[kind]) for kind, n in sorted(counts.items())]


# ----------------------------------------------------------------------------------------------------
# tabular data in DuckDB


def scan_relation(con: duckdb.DuckDBPyConnection, relation: str, location: str,
                  known: KnownValues | None) -> tuple[list[Hit], int]:
    """Scan one relation (a table name or a table function such as read_parquet(...)) in two
    queries over its unpivoted cells. Returns the hits and the number of columns scanned."""
    described = [(name, dtype) for name, dtype, *_ in con.execute(f"describe select * from {relation}").fetchall()
                 if SCANNED_TYPES.match(dtype)]
    if not described:
        return [], 0
    columns = [name for name, _ in described]
    casts = ", ".join(
        (f'case when "{c}" = trunc("{c}") then cast(try_cast("{c}" as hugeint) as varchar) end as "{c}"'
         if FRACTIONAL_TYPES.match(dtype) else f'cast("{c}" as varchar) as "{c}"') for c, dtype in described)
    names = ", ".join(f'"{c}"' for c in columns)
    con.execute(f"create or replace temp table _cv_cells as select distinct name, value from "
                f"(unpivot (select {casts} from {relation}) on {names} into name name value value)")
    try:
        candidates = con.execute(
            f"select name, value from _cv_cells "
            f"where length(regexp_replace(value, '[^0-9０-９]', '', 'g')) >= {MIN_DIGITS} "
            f"and not regexp_matches(value, '{PLAIN_TIME}') order by name").fetchall()
        by_column: dict[str, list[str]] = {}
        for name, value in candidates:
            by_column.setdefault(name, []).append(value)
        hits = [h for name, values in by_column.items() for h in tally(location, name, values, known)]
        if known is not None and known.names:
            con.register("_cv_known_names", pa.table({"known": sorted(known.names)}))
            for name, count, sample in con.execute(
                    "select name, count(distinct trim(value)), min(trim(value)) from _cv_cells "
                    "where trim(value) in (select known from _cv_known_names) group by name order by name"
            ).fetchall():
                hits.append(Hit(location, name, "known_name", count, mask(sample, "name")))
    finally:
        con.execute("drop table if exists _cv_cells")
    return hits, len(columns)


def scan_duckdb_tables(con: duckdb.DuckDBPyConnection, schemas: Iterable[str], known: KnownValues | None,
                       catalog: str | None = None) -> tuple[list[Hit], int]:
    """Scan every table and view of `schemas` (in `catalog`, default the current database)."""
    prefix = f'"{catalog}".' if catalog else ""
    where_catalog = f"and table_catalog = '{catalog}'" if catalog else ""
    hits: list[Hit] = []
    tables = 0
    for schema in schemas:
        names = [r[0] for r in con.execute(
            f"select table_name from information_schema.tables where table_schema = ? {where_catalog} "
            "order by 1", [schema]).fetchall()]
        for table in names:
            found, _ = scan_relation(con, f'{prefix}"{schema}"."{table}"', f"{schema}.{table}", known)
            hits += found
            tables += 1
    return hits, tables


# ----------------------------------------------------------------------------------------------------
# files


def _json_strings(value, path: str = "$") -> Iterable[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item, f"{path}[]")
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield path, str(value)


def scan_text_file(path: Path, known: KnownValues | None) -> list[Hit]:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    location = str(path)
    if path.suffix == ".json":
        try:
            pairs = list(_json_strings(json.loads(text)))
        except json.JSONDecodeError:
            pairs = [("text", line) for line in text.splitlines()]
    else:
        pairs = [("text", line) for line in text.splitlines()]
    by_column: dict[str, list[str]] = {}
    for column, value in pairs:
        by_column.setdefault(column, []).append(value)
    hits = [h for column, values in by_column.items() for h in tally(location, column, set(values), known)]
    if known is not None:
        if path.suffix == ".json":
            names = {v.strip() for _, v in pairs if v.strip() in known.names}
        else:
            names = {n for n in known.names if len(n) >= MIN_TEXT_NAME_LENGTH and n in text}
        if names:
            hits.append(Hit(location, "text" if path.suffix != ".json" else "values", "known_name", len(names),
                            mask(min(names), "name")))
    return hits


def scan_file(path: Path, known: KnownValues | None, con: duckdb.DuckDBPyConnection | None = None) -> list[Hit]:
    suffix = path.suffix.lower()
    if suffix in TABULAR_SUFFIXES:
        own = con is None
        con = con or duckdb.connect()
        try:
            literal = str(path).replace("'", "''")
            relation = (f"read_parquet('{literal}')" if suffix == ".parquet"
                        else f"read_csv('{literal}', header = true, all_varchar = true)")
            return scan_relation(con, relation, str(path), known)[0]
        finally:
            if own:
                con.close()
    if suffix in TEXT_SUFFIXES:
        return scan_text_file(path, known)
    return []


@dataclass
class GateReport:
    files: int = 0
    tables: int = 0

    def as_metadata(self) -> dict[str, int]:
        return {"privacy_gate_files": self.files, "privacy_gate_tables": self.tables}


def gate_files(paths: Iterable[Path], known: KnownValues | None = None, *, use_manifest: bool = True) -> GateReport:
    """Scan files (folders recursively); raise PersonalDataFound on any hit."""
    if known is None and use_manifest:
        known = load_known_values()
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    hits: list[Hit] = []
    with duckdb.connect() as con:
        for file in files:
            hits += scan_file(file, known, con)
    if hits:
        raise PersonalDataFound(hits)
    return GateReport(files=len(files))


def gate_duckdb(path: Path, schemas: Iterable[str], known: KnownValues | None = None, *,
                use_manifest: bool = True) -> GateReport:
    """Scan the tables of `schemas` in a DuckDB file; raise PersonalDataFound on any hit."""
    if known is None and use_manifest:
        known = load_known_values()
    with duckdb.connect(str(path), read_only=True) as con:
        hits, tables = scan_duckdb_tables(con, schemas, known)
    if hits:
        raise PersonalDataFound(hits)
    return GateReport(tables=tables)
