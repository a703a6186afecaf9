"""Writing published tables: Parquet, CSV (UTF-8 with BOM, so Excel opens Chinese correctly) and a
data dictionary whose Chinese names and descriptions come from the dbt column descriptions.

Files are written to a temporary name in the target folder and renamed into place, so a reader
never sees half a file; a whole publication folder is replaced the same way (`replace_folder`).

Row-level tables are written in parts: one per month (hive style `<table>/month=YYYY-MM/part.parquet`
and `part.csv`; `month=none` for rows without a month) or one for a whole small table
(`<table>.parquet|.csv`). Each part has a fingerprint computed in DuckDB over exactly the rows
written (count, bit_xor and sum of the row hashes, the schema and FORMAT_VERSION); a rerun writes
only the parts whose fingerprint changed and hard-links the others from the previous publication
into the new folder (`PartWriter`), which is then gated and swapped in whole as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from citizen_voice import settings
from citizen_voice.digest import row_digest_sql
from citizen_voice.publish import gate
from citizen_voice.publish.config import Dictionary

BOM = "\ufeff".encode()
_CJK = re.compile(r"[\u4e00-\u9fff]")
_NAME_END = re.compile(r"\s+[—–-]\s+|[.。(（:：]|\s")
DICTIONARY_COLUMNS = ("table", "column", "name_zh", "type", "description")
# Bump when the files written for the same rows change (format, CSV rendering): every part is rewritten.
FORMAT_VERSION = f"parts-1/duckdb-{duckdb.__version__}/pyarrow-{pa.__version__}"
MONTH_KEY = "month"
NO_MONTH = "none"
PART_SUFFIXES = (".parquet", ".csv")


@lru_cache(maxsize=2)
def dbt_column_descriptions(project_dir: Path | None = None) -> dict[str, dict[str, str]]:
    """{model: {column: description}} from every models/**/_*__models.yml of the dbt project."""
    project = Path(project_dir or settings.dbt_project_dir())
    found: dict[str, dict[str, str]] = {}
    for path in sorted((project / "models").rglob("_*__models.yml")):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models", []):
            found[model["name"]] = {c["name"]: (c.get("description") or "").strip()
                                    for c in model.get("columns", [])}
    return found


def chinese_name(description: str) -> str | None:
    """The Chinese term a dbt description starts with ('工单编号 — work-order number' -> '工单编号')."""
    head = _NAME_END.split(description.strip(), maxsplit=1)[0]
    return head if head and _CJK.search(head) else None


@dataclass(frozen=True)
class ColumnDoc:
    name_zh: str
    description: str


def describe_columns(columns: Iterable[tuple[str, str]], sources: dict[str, tuple[str, str]],
                     dictionary: Dictionary) -> list[tuple[str, str, str, str]]:
    """(column, 中文名, type, description) per (column, type).

    `sources` maps a published column to the (dbt model, column) it comes from; a column of a
    table dbt does not document is looked up under its own name in any model. The configuration's
    dictionary overrides names and describes the columns built outside dbt.
    """
    docs = dbt_column_descriptions()
    anywhere: dict[str, str] = {}  # a column documented in some mart, for tables built outside dbt
    for model_columns in docs.values():
        for name, text in model_columns.items():
            anywhere.setdefault(name, text)
    rows = []
    for column, dtype in columns:
        model, source_column = sources.get(column, (None, column))
        description = docs.get(model, {}).get(source_column, "") if model in docs else anywhere.get(column, "")
        description = dictionary.descriptions.get(column) or description
        name = dictionary.names.get(column) or chinese_name(description) or column
        rows.append((column, name, dtype, description or "(未说明 undocumented)"))
    return rows


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


EXCEL_TIME = "%Y-%m-%d %H:%M:%S"


def write_csv(table: pa.Table, path: Path) -> None:
    """CSV in UTF-8 with a BOM; timestamps as 'YYYY-MM-DD HH:MM:SS' (what Excel reads)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(BOM)
            pacsv.write_csv(_excel_friendly(table), handle)

    _atomic_write(path, write)


def _excel_friendly(table: pa.Table) -> pa.Table:
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            seconds = column.cast(pa.timestamp("s", tz=field.type.tz), safe=False)
            # a cast writes a zone's offset after the time: only zoned timestamps take the (20x slower) strftime
            column = pc.strftime(seconds, format=EXCEL_TIME) if field.type.tz else seconds.cast(pa.string())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def write_parquet(table: pa.Table, path: Path) -> None:
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def write_json(payload, path: Path) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8")

    _atomic_write(path, write)


def write_table(table: pa.Table, folder: Path, name: str) -> list[Path]:
    """<name>.parquet and <name>.csv in `folder`."""
    paths = [folder / f"{name}.parquet", folder / f"{name}.csv"]
    write_parquet(table, paths[0])
    write_csv(table, paths[1])
    return paths


def write_dictionary(rows: list[tuple[str, str, str, str, str]], folder: Path) -> list[Path]:
    """data_dictionary.csv (BOM) and data_dictionary.json: table, column, 中文名, type, description."""
    table = pa.table({name: [r[i] for r in rows] for i, name in enumerate(DICTIONARY_COLUMNS)})
    csv_path, json_path = folder / "data_dictionary.csv", folder / "data_dictionary.json"
    write_csv(table, csv_path)
    write_json([dict(zip(DICTIONARY_COLUMNS, r, strict=True)) for r in rows], json_path)
    return [csv_path, json_path]


def arrow_type_name(dtype: pa.DataType) -> str:
    return str(dtype)


def staging_folder(target: Path) -> Path:
    """A fresh folder beside `target` to build a publication in before `replace_folder`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.staging")
    staging.mkdir()
    return staging


def replace_folder(staging: Path, target: Path) -> None:
    """Swap `staging` in as `target`: rename the old one aside, rename the new one in, delete the old.
    (Two renames: between them `target` is briefly absent, never half-written.)"""
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def discard_folder(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------
# parts: month partitions of row-level tables, rewritten only when their rows change


def part_stem(table: str, month: str | None) -> str:
    """The path of a part below its publication folder, without suffix."""
    return table if month is None else f"{table}/{MONTH_KEY}={month}/part"


def month_of(column: str) -> str:
    """SQL: the YYYY-MM partition of a timestamp or date column (NO_MONTH when null)."""
    return f"coalesce(strftime(\"{column}\", '%Y-%m'), '{NO_MONTH}')"


@dataclass(frozen=True)
class Part:
    stem: str
    month: str | None
    rows: int
    fingerprint: str


@dataclass
class PartsReport:
    written: int = 0  # parts written
    carried: int = 0  # parts carried over unchanged
    gated_files: int = 0  # files scanned in full
    rescanned_files: int = 0  # carried files scanned for newly known values only
    unscanned_files: int = 0  # carried files gated before against the same known values


FETCH_ROWS = 500_000  # changed parts read per query, at most (bounded memory on a first full run)


@dataclass(frozen=True)
class Target:
    """Where one group's parts go: the folder being built, the same folder of the current
    publication, and its manifest entries {stem: {rows, fingerprint, gated_against}}."""
    folder: Path
    previous: Path
    previous_entries: dict


def _group_sql(group: str | None) -> str:
    return f'"{group}"' if group else "null::varchar"


def content_fingerprint(schema: str, count: int, xor, total) -> str:
    """Of rows summed in DuckDB as count(*), bit_xor(digest(row)), sum(digest(row)), and their schema."""
    return hashlib.sha256(f"{FORMAT_VERSION}|{schema}|{count}|{xor}|{total}".encode()).hexdigest()[:24]


def _chunks(changed: list[tuple[str | None, Part]], limit: int) -> list[list[tuple[str | None, Part]]]:
    """The changed parts in runs of at most `limit` rows (a bigger part alone)."""
    chunks: list[list[tuple[str | None, Part]]] = []
    size = 0
    for item in changed:
        if not chunks or (chunks[-1] and size + item[1].rows > limit):
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item[1].rows
    return chunks


class PartWriter:
    """Writes the parts of a publication being built aside (into each Target's folder), carrying
    unchanged ones over from the current publication as recorded in its manifest entries; then
    gates the new publication: every file written in full, each carried file as regate_plan says."""

    def __init__(self, con: duckdb.DuckDBPyConnection, known: gate.KnownValues | None):
        self.con, self.known = con, known
        self.gated_against = gate.known_fingerprint(known)
        self.carried: dict[str | None, list[Path]] = {}  # what they were gated against -> files
        self.report = PartsReport()

    def fingerprints(self, sql: str, params: list, table: str, month_sql: str | None,
                     hidden: tuple[str, ...] = (), group: str | None = None) -> dict[str | None, list[Part]]:
        """The parts of the rows `sql` selects, per value of its `group` column (None without one):
        per month (`month_sql`, an expression over its columns) or one for the whole table. `hidden`
        columns (and `group`) are selected but not written."""
        written = self._written_columns(sql, params, hidden, group)
        rows = self.con.execute(
            f"select _cv_group, _cv_part, count(*), bit_xor(_cv_hash), sum(_cv_hash::hugeint)::varchar from "
            f"(select {_group_sql(group)} as _cv_group, {month_sql or repr(NO_MONTH)} as _cv_part, "
            f"{row_digest_sql(written)} as _cv_hash from ({sql}) _cv_q) group by all order by 1, 2", params).fetchall()
        schema = json.dumps(written)
        parts: dict[str | None, list[Part]] = {}
        for key, month, count, xor, total in rows:
            month = month if month_sql else None
            parts.setdefault(key, []).append(Part(part_stem(table, month), month, count,
                                                  content_fingerprint(schema, count, xor, total)))
        return parts

    def _written_columns(self, sql: str, params: list, hidden: tuple[str, ...],
                         group: str | None) -> list[tuple[str, str]]:
        relation = self.con.sql(sql, params=params)
        return [(c, str(t)) for c, t in zip(relation.columns, relation.types, strict=True)
                if c not in hidden and c != group]

    def write(self, sql: str, params: list, table: str, month_sql: str | None, targets: dict[str | None, Target],
              hidden: tuple[str, ...] = (), group: str | None = None) -> dict[str | None, dict[str, dict]]:
        """Write or carry over every part of `table` for each target (by value of the `group`
        column; the key None without one); per target the manifest entries {stem: rows,
        fingerprint, gated_against}. Changed parts are read in one query per chunk of rows."""
        fingerprints = self.fingerprints(sql, params, table, month_sql, hidden, group)
        # a whole table is written even without rows (month parts only exist for months with rows)
        no_rows = [] if month_sql else [Part(table, None, 0, content_fingerprint(
            json.dumps(self._written_columns(sql, params, hidden, group)), 0, None, None))]
        entries: dict[str | None, dict[str, dict]] = {}
        changed: list[tuple[str | None, Part]] = []
        for key, target in targets.items():
            entries[key] = {}
            for part in fingerprints.get(key) or no_rows:
                before = target.previous_entries.get(part.stem) or {}
                entries[key][part.stem] = {"rows": part.rows, "fingerprint": part.fingerprint,
                                           "gated_against": self.gated_against}
                if before.get("fingerprint") == part.fingerprint and \
                        self._carry(target.previous, target.folder, part.stem):
                    self.carried.setdefault(before.get("gated_against"), []).extend(
                        self._paths(target.folder, part.stem))
                    self.report.carried += 1
                else:
                    changed.append((key, part))
        for chunk in _chunks(changed, FETCH_ROWS):
            rows = self.con.sql(
                f"select * from (select {_group_sql(group)} as _cv_group, {month_sql or repr(NO_MONTH)} as _cv_part, "
                f"* from ({sql}) _cv_q) join (select unnest(?::varchar[]) as _cv_g, unnest(?::varchar[]) as _cv_m) "
                f"on _cv_g is not distinct from _cv_group and _cv_m = _cv_part order by all",
                params=[*params, [key for key, _ in chunk], [part.month or NO_MONTH for _, part in chunk]],
            ).to_arrow_table()
            for key, part in chunk:
                mine = pc.equal(rows.column("_cv_part"), part.month or NO_MONTH)
                if group is not None:
                    mine = pc.and_(mine, pc.equal(rows.column("_cv_group"), key))
                written = rows.filter(mine).drop_columns(
                    ["_cv_group", "_cv_part", "_cv_g", "_cv_m", *hidden, *([group] if group else [])])
                parquet, csv = self._paths(targets[key].folder, part.stem)
                write_parquet(written, parquet)
                write_csv(written, csv)
                self.report.written += 1
        return entries

    def empty_schema(self, sql: str, params: list, hidden: tuple[str, ...] = ()) -> pa.Schema:
        """The schema of the written rows (for the dictionary when no part had to be written)."""
        table = self.con.sql(f"select * from ({sql}) _cv_q limit 0", params=params).to_arrow_table()
        return table.drop_columns(list(hidden)).schema

    @staticmethod
    def _paths(folder: Path, stem: str) -> list[Path]:
        return [folder / f"{stem}{suffix}" for suffix in PART_SUFFIXES]

    def _carry(self, previous: Path, folder: Path, stem: str) -> bool:
        """Hard-link (or copy) a part's files from the previous publication; False if one is missing."""
        sources = self._paths(previous, stem)
        if not all(p.is_file() for p in sources):
            return False
        for source, target in zip(sources, self._paths(folder, stem), strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)  # published files are never changed in place: a link is safe
            except OSError:
                shutil.copy2(source, target)
        return True

    def gate(self, staging: Path) -> PartsReport:
        """Gate the publication built in `staging` (raises gate.PersonalDataFound): the files written
        in full, the carried ones for what regate_plan asks; then record the known values gated against."""
        carried = {p for paths in self.carried.values() for p in paths}
        fresh = [p for p in sorted(staging.rglob("*")) if p.is_file() and p not in carried]
        gate.gate_files(fresh, self.known, use_manifest=False)
        self.report.gated_files = len(fresh)
        for gated_against, paths in self.carried.items():
            plan = gate.regate_plan(gated_against, self.known)
            if plan is None:
                gate.gate_files(paths, self.known, use_manifest=False)
                self.report.gated_files += len(paths)
            elif plan.empty:
                self.report.unscanned_files += len(paths)
            else:
                gate.gate_files(paths, plan, use_manifest=False, known_only=True)
                self.report.rescanned_files += len(paths)
        gate.record_known_values(self.known)
        return self.report


def previous_manifest(path: Path) -> dict:
    """A publication's manifest.json, or {} when there is none (or it is unreadable: rewrite all)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def published_files(folder: Path, table: str, suffix: str = ".parquet") -> list[Path]:
    """The files of a published table in `folder`: the whole file, or its month parts in month order."""
    whole = folder / f"{table}{suffix}"
    return [whole] if whole.exists() else sorted((folder / table).glob(f"{MONTH_KEY}=*/part{suffix}"))


def read_published(folder: Path, table: str) -> pa.Table:
    """A published table read back whole (its month parts concatenated in month order)."""
    paths = published_files(folder, table)
    if not paths:
        raise FileNotFoundError(f"no published table {table} in {folder}")
    return pa.concat_tables([pq.read_table(p) for p in paths])
