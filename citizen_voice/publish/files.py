"""Writing published tables: Parquet, CSV (UTF-8 with BOM, so Excel opens Chinese correctly) and a
data dictionary whose Chinese names and descriptions come from the dbt column descriptions.

Files are written to a temporary name in the target folder and renamed into place, so a reader
never sees half a file; a whole publication folder is replaced the same way (`replace_folder`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from citizen_voice import settings
from citizen_voice.publish.config import Dictionary

BOM = "\ufeff".encode()
_CJK = re.compile(r"[\u4e00-\u9fff]")
_NAME_END = re.compile(r"\s+[—–-]\s+|[.。(（:：]|\s")
DICTIONARY_COLUMNS = ("table", "column", "name_zh", "type", "description")


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
            column = pc.strftime(column.cast(pa.timestamp("s"), safe=False), format="%Y-%m-%d %H:%M:%S")
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
