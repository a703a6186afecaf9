"""Labelled histories from files: CSV (UTF-8, UTF-8 with BOM, or GB18030/GBK, detected) or XLSX,
with any column names (Chinese headers included)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

ENCODINGS = ("utf-8-sig", "gb18030")  # utf-8-sig reads plain UTF-8 too; GB18030 is a superset of GBK/GB2312


class InputError(ValueError):
    """The input file cannot be used as asked (unreadable, unknown encoding, missing columns)."""


def detect_encoding(raw: bytes) -> str:
    for encoding in ENCODINGS:
        try:
            raw.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    raise InputError("the file is neither UTF-8 nor GB18030/GBK text")


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        try:
            return pd.read_excel(path, dtype=str, keep_default_na=False)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds; report them as one
            raise InputError(f"{path}: not a readable XLSX file ({exc})") from exc
    if suffix not in (".csv", ".tsv", ".txt"):
        raise InputError(f"{path}: expected a .csv, .tsv or .xlsx file")
    raw = path.read_bytes()
    text = raw.decode(detect_encoding(raw))
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                           sep="\t" if suffix == ".tsv" else None, engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from exc


def require_columns(frame: pd.DataFrame, columns: list[str], path: str | Path = "input") -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: no column {', '.join(map(repr, missing))}; columns are "
                         f"{', '.join(map(repr, frame.columns))}")


def texts_of(frame: pd.DataFrame, text_columns: list[str]) -> list[str]:
    """The text columns joined with '。' (empty parts skipped)."""
    parts = frame[text_columns].fillna("").astype(str)
    return ["。".join(p.strip() for p in row if p.strip()) for row in parts.itertuples(index=False)]
