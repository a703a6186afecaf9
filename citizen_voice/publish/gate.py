"""The privacy gate: every published file and serving table is scanned before it is released.

What counts as a hit
* a phone or ID number by shape (citizen_voice.privacy.find_personal_data: mobile and landline
  numbers, 18-digit IDs with a valid check digit, 15-digit IDs with a plausible birth date; masks
  such as 138****5678 are not hits), in any text or integer cell;
* when a sandbox manifest is present (<CV_SANDBOX>/truth/personal_values.parquet), any of the
  city's known phone or ID numbers inside a cell (separators ignored; in a code such as
  GD20260731002943-01, the digits after the letters only as a whole), and any cell that equals a
  known name (in HTML/text files: a known name of 3+ characters anywhere in the text).

Tabular data (Parquet, CSV, DuckDB tables) is scanned in DuckDB: the distinct cells of each
relation (two relations read at once) are gathered in an in-memory table, cells equal to a known
name flagged by a join, cells with at least 7 digits that are not a plain date/time kept as
candidates. The candidates are then checked once per distinct value (an order number in four files
is looked at once), and only a value DuckDB cannot rule out reaches classify() in Python: one with
a run that may start a phone or ID number, one classify() rewrites first (a digest, pseudonym or
fraction inside it), or one holding a known number among its digits. Codes such as
GD20261001000123 and masks such as 138****5678 are ruled out in DuckDB. Each condition is a superset
of what classify() finds (see the constants below), so ruling out loses no hit.
A hit raises PersonalDataFound naming the file or table, the column, the kind and the count.

Incremental publishing: a file or table carried over unchanged from the previous publication was
gated before. What it was gated against is recorded as `known_fingerprint(known)` (the gate's
version and the known values); `regate_plan` says what it still needs: nothing (same
fingerprint), a scan for the known values that are new since (`known_only=True`: the shape checks
give the same answer on the same content), or a full scan (the gate changed, or the earlier known
values are not on record). The record of earlier known values is kept beside the sandbox manifest
they come from (<CV_SANDBOX>/.privacy_gate/, as digests only), never in a publication.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from queue import Queue

import duckdb

from citizen_voice import settings, warehouse
from citizen_voice.privacy import PSEUDONYM_HEX_CHARS, find_personal_data, mask

PERSONAL_VALUES = Path("truth") / "personal_values.parquet"
# Bump when the gate finds more than before: every recorded `gated_against` then asks for a full scan.
# (Not when it finds less, as when windows of codes' digits stopped counting: what passed passes again.)
GATE_VERSION = "gate-2"
NO_KNOWN_VALUES = f"{GATE_VERSION}:none"
KNOWN_VALUES_RECORDS = ".privacy_gate"  # under the sandbox folder: the known values gated against
KEPT_RECORDS = 4
TABULAR_SUFFIXES = {".parquet", ".csv"}
TEXT_SUFFIXES = {".json", ".html", ".htm", ".xml", ".txt", ".md"}
SCANNED_TYPES = re.compile(r"^(VARCHAR|JSON|BIGINT|HUGEINT|UBIGINT|UHUGEINT|INTEGER|DOUBLE|FLOAT|DECIMAL\(\d+,\d+\))$")
# Fractions (rates such as 0.3770491803278690) are not numbers anyone dials: only whole values of
# floating-point and decimal columns are read, as integers.
FRACTIONAL_TYPES = re.compile(r"^(DOUBLE|FLOAT|DECIMAL\(\d+,[1-9]\d*\))$")
MIN_DIGITS = 7  # the shortest number find_personal_data reports has more
# A value that is only a date or time cannot hold a phone or ID number: skip it cheaply.
PLAIN_TIME_BODY = r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}(:?\d{2})?|Z)?)?"
PLAIN_TIME = f"^{PLAIN_TIME_BODY}$"
# the same in DuckDB, faster: a LIKE first, then a full match (RE2's $ is the end of the text)
NOT_PLAIN_TIME_SQL = f"not (value like '____-__-__%' and regexp_full_match(value, '{PLAIN_TIME_BODY}'))"
_DIGIT_RUN_JOINERS = re.compile(r"[\s\-\u00a0\u3000()（）+]")
_FULLWIDTH = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789Xx")
_NUMBER_RUN = re.compile(r"[0-9]+[Xx]?")
# The digits right after an ASCII letter belong to a code (GD20260731002943-01), as in the shape check
# (privacy._CANDIDATE_RE): a known number counts there only as the code's whole digits (TEL15012345678).
# A window inside a longer code is chance at scale: of the 1M city's 7.05 M order, event and visit ids,
# 19 held one of its 1.88 M known numbers so (none as a code's whole digits).
_CODE_DIGITS = re.compile(r"(?<=[A-Za-z])[0-9]+[Xx]?")
MIN_TEXT_NAME_LENGTH = 3
FRACTION_DIGITS = re.compile(r"(?<=[0-9])\.[0-9]+")
# Keyed pseudonyms (ph_/id_/nm_ + hex) and hex digests (text hashes: 24+ hex digits, at least one
# letter) are not read as numbers; a run of digits alone is never exempt.
HASHES = re.compile(rf"\b(?:(?:ph|id|nm)_[0-9a-f]{{{PSEUDONYM_HEX_CHARS}}}|(?=[0-9a-f]*[a-f])[0-9a-f]{{24,}})\b")

# MIN_DIGITS digits (ASCII or full-width) anywhere: much faster in DuckDB than counting them
ENOUGH_DIGITS = f"(?:[0-9０-９][^0-9０-９]*){{{MIN_DIGITS}}}"
# DuckDB (RE2) conditions; a candidate matching none of them has no hit in classify():
# * a whole pseudonym or hex digest (24+ characters): classify() reads it as one space, no candidate;
WHOLE_HASH = rf"(?:ph|id|nm)_[0-9a-f]{{{PSEUDONYM_HEX_CHARS}}}|[0-9a-f]*[a-f][0-9a-f]*"
# * classify() rewrites a value holding a digest, pseudonym or fraction (HASHES, FRACTION_DIGITS):
#   such a value always reaches it; any other reaches it unchanged, so the raw value can be judged:
REWRITTEN = r"[0-9a-f]{24}|[0-9]\.[0-9]"
# * every phone/ID match of find_personal_data lies in a privacy._CANDIDATE_RE run, which starts
#   where the character before is no ASCII digit or letter; widened to the raw text (it folds
#   full-width digits, ＋, －, （）, the ideographic space before matching);
MAY_START_NUMBER = (r"(^|[^0-9A-Za-z])[0-9０-９+＋(（][0-9０-９+＋()（）\-－ \x{00a0}\x{3000}]{5,}[0-9０-９]{4}")
# * a known number _known_numbers_in finds (digits, maybe a final X) is also a substring of the
#   value's digits and Xs alone (KNOWN_NUMBER_TEXT over KEPT_FOR_NUMBERS): found by a join of that
#   text's windows with the known numbers.
KNOWN_NUMBER_SHAPE = re.compile(r"[0-9]+X?")
KNOWN_NUMBER_TEXT = ("replace(case when regexp_matches(kept, '[０-９Ｘｘ]') "  # translate() is slow: only if needed
                     "then translate(kept, '０１２３４５６７８９Ｘｘ', '0123456789XX') else kept end, 'x', 'X')")
KEPT_FOR_NUMBERS = "regexp_replace(value, '[^0-9０-９XxＸｘ]', '', 'g')"


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
    """The sandbox city's personal values (ground truth), for an exact check on top of the shapes.
    The lookup structures derived from them are built once per object (cached properties)."""

    names: frozenset[str]
    numbers: dict[str, str]  # value -> phone | id_no
    number_lengths: frozenset[int] = frozenset()
    source_dir: Path | None = None  # the sandbox folder they were read from (where gated sets are recorded)

    def __post_init__(self):
        object.__setattr__(self, "number_lengths", frozenset(len(v) for v in self.numbers))

    @property
    def empty(self) -> bool:
        return not (self.names or self.numbers)

    @cached_property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.names):
            digest.update(b"n\0" + name.encode() + b"\0")
        for number, kind in sorted(self.numbers.items()):
            digest.update(f"{kind}\0{number}\0".encode())
        return f"{GATE_VERSION}:{digest.hexdigest()[:24]}"

    @cached_property
    def findable_numbers(self) -> list[str]:
        """The numbers _known_numbers_in can find (digits, maybe a final X): no other can equal a window."""
        return [n for n in self.numbers if KNOWN_NUMBER_SHAPE.fullmatch(n)]

    @cached_property
    def text_names_by_length(self) -> dict[int, frozenset[str]]:
        by_length: dict[int, set[str]] = {}
        for name in self.names:
            if len(name) >= MIN_TEXT_NAME_LENGTH:
                by_length.setdefault(len(name), set()).add(name)
        return {length: frozenset(names) for length, names in by_length.items()}

    def names_in_text(self, text: str) -> set[str]:
        """The known names of MIN_TEXT_NAME_LENGTH+ characters that occur in `text`."""
        found: set[str] = set()
        for length, names in self.text_names_by_length.items():
            found.update(window for window in (text[i:i + length] for i in range(len(text) - length + 1))
                         if window in names)
        return found


def load_known_values(sandbox_dir: Path | None = None) -> KnownValues | None:
    """The sandbox manifest's personal values, or None when there is no sandbox manifest."""
    path = Path(sandbox_dir or settings.sandbox_dir()) / PERSONAL_VALUES
    if not path.exists():
        return None
    with duckdb.connect() as con:
        rows = con.execute("select kind, value from read_parquet(?)", [str(path)]).fetchall()
    names = frozenset(value.strip() for kind, value in rows if kind == "name" and value)
    numbers = {value.strip().upper(): kind for kind, value in rows if kind in ("phone", "id_no") and value}
    return KnownValues(names, numbers, source_dir=path.parent.parent)


def known_fingerprint(known: KnownValues | None) -> str:
    """What a scan with `known` was gated against (recorded per published file or table)."""
    return NO_KNOWN_VALUES if known is None else known.fingerprint


def _record_path(source_dir: Path, fingerprint: str) -> Path:
    return source_dir / KNOWN_VALUES_RECORDS / f"{fingerprint.replace(':', '_')}.parquet"


def _digest(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:32]


def _digests(known: KnownValues) -> list[str]:
    return sorted([_digest("name", n) for n in known.names] + [_digest("number", v) for v in known.numbers])


def record_known_values(known: KnownValues | None) -> None:
    """Keep digests of the known values a publication was gated against (never the values), so that
    the next incremental run can scan carried-over files for the values that are new since (a few
    newest records are kept)."""
    if known is None or known.source_dir is None:
        return
    path = _record_path(known.source_dir, known.fingerprint)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        literal = str(tmp).replace("'", "''")
        with duckdb.connect() as con:
            con.execute(f"copy (select unnest(?::varchar[]) as digest) to '{literal}' (format parquet)",
                        [_digests(known)])
        tmp.replace(path)
    else:
        path.touch()  # the newest in use: kept by the pruning below
    older = sorted(path.parent.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in older[KEPT_RECORDS:]:
        stale.unlink(missing_ok=True)


def _recorded_digests(source_dir: Path, fingerprint: str) -> set[str] | None:
    path = _record_path(source_dir, fingerprint)
    if not path.exists():
        return None
    with duckdb.connect() as con:
        return {r[0] for r in con.execute("select digest from read_parquet(?)", [str(path)]).fetchall()}


def regate_plan(gated_against: str | None, known: KnownValues | None) -> KnownValues | None:
    """For content unchanged since it was gated against `gated_against`: the known values it must
    still be scanned for (known_only; empty: nothing to scan), or None when it needs a full scan."""
    if gated_against == known_fingerprint(known):
        return KnownValues(frozenset(), {})
    if not gated_against or not gated_against.startswith(f"{GATE_VERSION}:"):
        return None  # gated by another gate version (or never): scan it all again
    if known is None:
        return KnownValues(frozenset(), {})  # no known values now; the shapes were checked
    if gated_against == NO_KNOWN_VALUES:
        return known
    earlier = _recorded_digests(known.source_dir, gated_against) if known.source_dir else None
    if earlier is None:
        return None
    return KnownValues(frozenset(n for n in known.names if _digest("name", n) not in earlier),
                       {n: k for n, k in known.numbers.items() if _digest("number", n) not in earlier})


def _known_numbers_in(value: str, known: KnownValues) -> list[tuple[str, str]]:
    found = []

    def code(match: re.Match) -> str:
        digits = match[0].upper()
        if digits in known.numbers:
            found.append((known.numbers[digits], digits))
        return "|"  # ends the run: a code's digits are never joined to the digits after it

    text = _DIGIT_RUN_JOINERS.sub("", _CODE_DIGITS.sub(code, value.translate(_FULLWIDTH)))
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
        found = classify(value, known)
        for kind in {kind for kind, _ in found}:
            counts[kind] += 1
            samples.setdefault(kind, next(s for k, s in found if k == kind))
    return [Hit(location, column, kind, n, samples[kind]) for kind, n in sorted(counts.items())]


# ----------------------------------------------------------------------------------------------------
# tabular data in DuckDB


CELLS_PER_BATCH = 2_000_000  # candidate cells gathered before their checks run (bounded memory)
SCAN_WORKERS = 2  # relations read at once: DuckDB reads a small file on one thread
SCAN_CHUNK = 16  # relations read between two looks at the batch size
SCRATCH = "_cv_gate_scratch"  # in-memory database of the gathered cells, shared by the readers' cursors


def _cells_sql(relation: str, described: list[tuple[str, str]] | None) -> str:
    """The distinct (column, value) cells of the scanned columns, as text. described None: every
    column, all of them text already (a CSV file read all_varchar); its rows are materialized first,
    UNPIVOT straight over the CSV reader being much slower."""
    if described is None:
        return (f"with _cv_rows as materialized (select * from {relation}) select distinct name, value from "
                f"(unpivot _cv_rows on columns(*) into name name value value)")
    casts = ", ".join(
        (f'case when "{c}" = trunc("{c}") then cast(try_cast("{c}" as hugeint) as varchar) end as "{c}"'
         if FRACTIONAL_TYPES.match(dtype) else f'cast("{c}" as varchar) as "{c}"') for c, dtype in described)
    names = ", ".join(f'"{c}"' for c, _ in described)
    return (f"select distinct name, value from "
            f"(unpivot (select {casts} from {relation}) on {names} into name name value value)")


@dataclass(frozen=True)
class _Relation:
    sql: str  # a table name or a table function such as read_parquet(...)
    location: str  # as hits name it
    all_text: bool = False  # every column VARCHAR (a CSV file read all_varchar): not described first


class _TabularScan:
    """Scans relations into one table of the cells that may hold personal data (in an in-memory
    database attached to `con`, so that SCAN_WORKERS cursors read relations at once): known names
    are flagged as the cells are read, numbers are checked batch by batch over distinct values (an
    order number in four files is looked at once), and only values DuckDB cannot rule out reach
    classify(). Hits keep the order of the locations (per location: numbers by column, then names).
    `con` must be able to attach an in-memory database (not a read-only connection)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, known: KnownValues | None, *, shapes: bool = True):
        self.con, self.known, self.shapes = con, known, shapes
        self.locations: list[str] = []
        self.hits: dict[int, list[Hit]] = {}
        self.columns: dict[int, int | None] = {}
        self.queued: list[tuple[int, _Relation]] = []
        self.pending = 0
        self.has_names = known is not None and bool(known.names)
        self.number_lengths = sorted({len(n) for n in known.findable_numbers}) if known is not None else []
        self.attached = False

    def _attach(self) -> None:
        """The scratch database, when there is a first relation to read."""
        con = self.con
        con.execute(f"attach ':memory:' as {SCRATCH}")
        self.attached = True
        con.execute(f"create table {SCRATCH}.cells "
                    "(location_no integer, name varchar, value varchar, is_name boolean, is_candidate boolean)")
        if self.has_names:
            con.execute(f"create table {SCRATCH}.known_names as select unnest(?::varchar[]) as known",
                        [list(self.known.names)])
        if self.number_lengths:
            con.execute(f"create table {SCRATCH}.known_numbers as select unnest(?::varchar[]) as number",
                        [self.known.findable_numbers])

    def __enter__(self) -> _TabularScan:
        return self

    def __exit__(self, *exc) -> None:
        if self.attached:
            self.con.execute(f"detach {SCRATCH}")

    def add_location(self, location: str, hits: list[Hit]) -> int:
        """A location, with the hits found elsewhere (a text file), so that hits keep its order."""
        self.locations.append(location)
        self.hits[len(self.locations) - 1] = list(hits)
        return len(self.locations) - 1

    def add_relation(self, relation: _Relation) -> None:
        """A relation to read (at finish, with the others)."""
        self.queued.append((self.add_location(relation.location, []), relation))

    def _read_queued(self) -> None:
        """Gather the cells of the queued relations, checking them whenever a batch is full."""
        queued, self.queued = self.queued, []
        if not queued:
            return
        if not self.attached:
            self._attach()
        # cursors made here: a connection refuses a call while another thread's call runs on it
        cursors: Queue[duckdb.DuckDBPyConnection] = Queue()
        for _ in range(min(SCAN_WORKERS, len(queued))):
            cursors.put(self.con.cursor())

        def gather(numbered: tuple[int, _Relation]) -> tuple[int, int | None, int]:
            cur = cursors.get()
            try:
                return self._gather(cur, *numbered)
            finally:
                cursors.put(cur)

        try:
            with ThreadPoolExecutor(cursors.qsize()) as pool:
                for start in range(0, len(queued), SCAN_CHUNK):
                    for location_no, columns, inserted in pool.map(gather, queued[start:start + SCAN_CHUNK]):
                        self.columns[location_no] = columns
                        self.pending += inserted
                    if self.pending >= CELLS_PER_BATCH:
                        self.check()
        finally:
            while not cursors.empty():
                cursors.get().close()

    def _gather(self, cur: duckdb.DuckDBPyConnection, location_no: int,
                relation: _Relation) -> tuple[int, int | None, int]:
        """(location number, columns scanned (None when all_text), cells kept) of one relation."""
        described = None if relation.all_text else [
            (name, dtype) for name, dtype, *_ in cur.execute(f"describe select * from {relation.sql}").fetchall()
            if SCANNED_TYPES.match(dtype)]
        if described == []:
            return location_no, 0, 0
        is_name = f"trim(value) in (select known from {SCRATCH}.known_names)" if self.has_names else "false"
        inserted = cur.execute(
            f"insert into {SCRATCH}.cells select {location_no}, name, value, is_name, is_candidate from ("
            f"select name, value, {is_name} as is_name, "
            f"regexp_matches(value, '{ENOUGH_DIGITS}') and {NOT_PLAIN_TIME_SQL} "
            f"and not (length(value) >= 24 and regexp_full_match(value, '{WHOLE_HASH}')) as is_candidate "
            f"from ({_cells_sql(relation.sql, described)})) where is_name or is_candidate").fetchone()[0]
        return location_no, None if described is None else len(described), inserted

    def _known_number_values_sql(self) -> str:
        if not self.number_lengths:
            return "select null::varchar as value where false"
        lengths = ", ".join(f"({n})" for n in self.number_lengths)
        return (f"select distinct value from (select value, digits, len, "
                f"unnest(generate_series(1, length(digits) - len + 1)) as start from "
                f"(select value, {KNOWN_NUMBER_TEXT} as digits from "
                f"(select value, {KEPT_FOR_NUMBERS} as kept from candidates)) "
                f"cross join (values {lengths}) lengths(len) where length(digits) >= len) "
                f"where substr(digits, start, len) in (select number from {SCRATCH}.known_numbers)")

    def check(self) -> None:
        """Check the gathered cells and empty the table."""
        if not self.pending:
            return
        by_shape = (f"select value from candidates where regexp_matches(value, '{MAY_START_NUMBER}') "
                    f"or regexp_matches(value, '{REWRITTEN}') union " if self.shapes else "")
        rows = self.con.execute(
            f"with candidates as materialized (select distinct value from {SCRATCH}.cells where is_candidate), "
            f"flagged as ({by_shape}{self._known_number_values_sql()}) "
            f"select location_no, 0 as part, name, value, null::bigint as count from {SCRATCH}.cells "
            f"where is_candidate and value in (select value from flagged) "
            f"union all select location_no, 1, name, min(trim(value)), count(distinct trim(value)) "
            f"from {SCRATCH}.cells where is_name group by location_no, name "
            f"order by location_no, part, name, value").fetchall()
        numbers: dict[tuple[int, str], list[str]] = {}
        names: list[tuple[int, Hit]] = []
        for location_no, part, name, value, count in rows:
            if part == 0:
                numbers.setdefault((location_no, name), []).append(value)
            else:
                names.append((location_no, Hit(self.locations[location_no], name, "known_name", count,
                                               mask(value, "name"))))
        for (location_no, name), values in numbers.items():
            self.hits[location_no] += tally(self.locations[location_no], name, values, self.known)
        for location_no, hit in names:
            self.hits[location_no].append(hit)
        self.con.execute(f"delete from {SCRATCH}.cells")
        self.pending = 0

    def finish(self) -> list[Hit]:
        """Read the queued relations; all hits, in the order of the locations."""
        self._read_queued()
        self.check()
        return [hit for location_no in range(len(self.locations)) for hit in self.hits[location_no]]


def scan_relation(con: duckdb.DuckDBPyConnection, relation: str, location: str,
                  known: KnownValues | None) -> tuple[list[Hit], int]:
    """Scan one relation (a table name or a table function such as read_parquet(...)).
    Returns the hits and the number of columns scanned."""
    with _TabularScan(con, known) as scan:
        scan.add_relation(_Relation(relation, location))
        return scan.finish(), scan.columns[0]


def scan_duckdb_tables(con: duckdb.DuckDBPyConnection, schemas: Iterable[str], known: KnownValues | None,
                       catalog: str | None = None, *, only: set[str] | None = None,
                       known_only: bool = False) -> tuple[list[Hit], int]:
    """Scan every table and view of `schemas` (in `catalog`, default the current database), or only
    those named in `only` (schema.table); `known_only`: for known values only (see regate_plan).
    `con` must not be read-only (see _TabularScan): attach a read-only file as `catalog`."""
    prefix = f'"{catalog}".' if catalog else ""
    where_catalog = f"and table_catalog = '{catalog}'" if catalog else ""
    relations = []
    for schema in schemas:  # listed before the scan's scratch database is attached
        names = [r[0] for r in con.execute(
            f"select table_name from information_schema.tables where table_schema = ? {where_catalog} "
            "order by 1", [schema]).fetchall()]
        relations += [_Relation(f'{prefix}"{schema}"."{table}"', f"{schema}.{table}") for table in names
                      if only is None or f"{schema}.{table}" in only]
    with _TabularScan(con, known, shapes=not known_only) as scan:
        for relation in relations:
            scan.add_relation(relation)
        return scan.finish(), len(relations)


def gate_relations(con: duckdb.DuckDBPyConnection, relations: list[tuple[str, str]], known: KnownValues | None,
                   *, known_only: bool = False) -> int:
    """Scan relations given as (SQL relation, location hits name: e.g. the changed rows of a table,
    named as the table) through `con` (not read-only; attached catalogs are shared with its cursors);
    raise PersonalDataFound on any hit. Returns how many were scanned."""
    if not relations or (known_only and (known is None or known.empty)):
        return 0
    with _TabularScan(con, known, shapes=not known_only) as scan:
        for sql, location in relations:
            scan.add_relation(_Relation(sql, location))
        hits = scan.finish()
    if hits:
        raise PersonalDataFound(hits)
    return len(relations)


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
            names = known.names_in_text(text)
        if names:
            hits.append(Hit(location, "text" if path.suffix != ".json" else "values", "known_name", len(names),
                            mask(min(names), "name")))
    return hits


# The dialect the publications' CSV files are written in (files.write_csv): DuckDB's sniffing of it took two
# thirds of the time to read them (276 department-share parts at 1M: 9.3 s sniffed, 3.2 s given). A file in
# another dialect is still read as text, a line in one cell at worst, or fails the gate with DuckDB's error.
CSV_DIALECT = "delim = ',', quote = '\"', escape = '\"'"


def _tabular_relation(path: Path) -> str:
    literal = str(path).replace("'", "''")
    # the file's own columns only (no `month` column from a month=YYYY-MM folder)
    return (f"read_parquet('{literal}', hive_partitioning = false)" if path.suffix.lower() == ".parquet"
            else f"read_csv('{literal}', header = true, all_varchar = true, hive_partitioning = false, {CSV_DIALECT})")


def scan_file(path: Path, known: KnownValues | None, con: duckdb.DuckDBPyConnection | None = None) -> list[Hit]:
    suffix = path.suffix.lower()
    if suffix in TABULAR_SUFFIXES:
        own = con is None
        con = con or warehouse.scratch_connection()
        try:
            return scan_relation(con, _tabular_relation(path), str(path), known)[0]
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


def gate_files(paths: Iterable[Path], known: KnownValues | None = None, *, use_manifest: bool = True,
               known_only: bool = False) -> GateReport:
    """Scan files (folders recursively); raise PersonalDataFound on any hit. `known_only`: tabular
    files for the given known values only (content gated before, see regate_plan)."""
    if known is None and use_manifest and not known_only:
        known = load_known_values()
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if known_only and (known is None or known.empty):
        return GateReport()
    with warehouse.scratch_connection() as con, _TabularScan(con, known, shapes=not known_only) as scan:
        for file in files:
            if file.suffix.lower() in TABULAR_SUFFIXES:
                scan.add_relation(_Relation(_tabular_relation(file), str(file), all_text=file.suffix.lower() == ".csv"))
            else:
                scan.add_location(str(file), scan_file(file, known))
        hits = scan.finish()
    if hits:
        raise PersonalDataFound(hits)
    return GateReport(files=len(files))


def gate_duckdb(path: Path, schemas: Iterable[str], known: KnownValues | None = None, *,
                use_manifest: bool = True, only: set[str] | None = None, known_only: bool = False) -> GateReport:
    """Scan the tables of `schemas` (or those of them in `only`) in a DuckDB file; raise
    PersonalDataFound on any hit. `known_only`: see gate_files."""
    if known is None and use_manifest and not known_only:
        known = load_known_values()
    if (known_only and (known is None or known.empty)) or only == set():
        return GateReport()
    literal = str(path).replace("'", "''")
    with duckdb.connect() as con:  # in memory, attaching the file: the scan needs a scratch database
        con.execute(f"attach '{literal}' as _cv_gated (read_only)")
        hits, tables = scan_duckdb_tables(con, schemas, known, catalog="_cv_gated", only=only,
                                          known_only=known_only)
    if hits:
        raise PersonalDataFound(hits)
    return GateReport(tables=tables)
