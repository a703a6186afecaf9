"""File-drop connector: daily files a department puts in a folder (CSV, XLSX, JSON).

`extract(entry, state)` reads every file of every family (`FileFamily` in the registry) that is new
by content, and yields one `Batch` per file (or per CHUNK_ROWS rows) of all-text Arrow columns plus
`_source_file` and `_source_line`, so that every record can be traced back to its line. A file that
cannot be read as a whole (undecodable, truncated, wrong columns, unparsable) is moved to
`<folder>/_rejected/` with a `<name>.reason.txt` beside it and reported as `Rejected`; the rest keep
loading. Row-level problems are not judged here: every data row of a good file is passed through.

State (committed by the framework together with the load):

    state["ledger"][sha256] = {"file", "family", "status": "loaded" | "rejected", "records",
                               "encoding", "bytes", "at"}
    state["last_run"] = {"at", "loaded": [...], "rejected": [...], "already_loaded": n,
                         "skipped_duplicates": [{"file", "same_as", "status"}], "unmatched": [...],
                         "warnings": [...], "counts": {...}}

A file is added to the ledger just before its (last) batch or its `Rejected` is yielded.
See README.md in this folder.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ingestion.core import Batch, Rejected
from ingestion.registry import FileDropSource, FileFamily, SourceEntry

log = logging.getLogger(__name__)

REJECTED_DIR = "_rejected"
CHUNK_ROWS = 50_000
SOURCE_FILE = "_source_file"
SOURCE_LINE = "_source_line"
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # how XLSX date-time cells are rendered
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
HEADER_SCAN_CHARS = 1 << 20  # a CSV header must end within the first MiB

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


class FileProblem(Exception):
    """A whole file that cannot be loaded: why (in English and in Chinese), and how many of its
    records could be read (none of them are loaded)."""

    def __init__(self, kind: str, reason: str, zh: str, records: int = 0, encoding: str | None = None):
        super().__init__(reason)
        self.kind = kind  # undecodable | empty | truncated | malformed | wrong_columns | unreadable
        self.reason = reason
        self.zh = zh
        self.records = records
        self.encoding = encoding


@dataclass
class ReadResult:
    table: pa.Table  # data columns as text, then _source_file (string) and _source_line (int64)
    encoding: str | None  # text encoding used (None for XLSX)
    warnings: list[str] = field(default_factory=list)


# -- text encodings --------------------------------------------------------------------------------------------
def _cut_at_end(error: UnicodeDecodeError, size: int) -> bool:
    """The bytes end inside a multi-byte character (the file was cut), not a wrong encoding."""
    return error.end == size and size - error.start <= 3 and error.reason in (
        "unexpected end of data", "incomplete multibyte sequence")


def decode(data: bytes, encoding: str = "auto") -> tuple[str, str, bool]:
    """Decode a text file: (text without BOM, encoding used, cut: ends inside a multi-byte character).

    `auto`: a UTF-8/UTF-16 BOM decides; otherwise UTF-8, then GB18030 (a superset of GBK and GB2312);
    charset-normalizer's guess only when both fail (and only if the result is plain text). Raises
    FileProblem("undecodable") when nothing fits.
    """
    if encoding != "auto":
        try:
            return data.decode(encoding).removeprefix("\ufeff"), encoding, False
        except UnicodeDecodeError as exc:
            if _cut_at_end(exc, len(data)):
                return data[:exc.start].decode(encoding).removeprefix("\ufeff"), encoding, True
            raise _undecodable(f"not valid {encoding} at byte {exc.start}",
                               f"文件不是有效的 {encoding} 编码（第 {exc.start} 字节起无法解码）") from None
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig", False
        except UnicodeDecodeError as exc:
            if _cut_at_end(exc, len(data) - 3):
                return data[3:3 + exc.start].decode("utf-8"), "utf-8-sig", True
            raise _undecodable(f"starts with a UTF-8 BOM but is not valid UTF-8 at byte {exc.start + 3}",
                               f"文件以 UTF-8 BOM 开头，但第 {exc.start + 3} 字节起不是有效的 UTF-8") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16").removeprefix("\ufeff"), "utf-16", False
        except UnicodeDecodeError:
            pass
    failures = []
    if b"\x00" not in data:  # text in UTF-8 or GB18030 never holds NUL bytes
        for candidate in ("utf-8", "gb18030"):
            if candidate == "utf-8" and len(data) > HEADER_SCAN_CHARS and _utf8_prefix(data) is None:
                failures.append("utf-8 fails in the first MiB")  # spare a full decode attempt
                continue
            try:
                return data.decode(candidate), candidate, False
            except UnicodeDecodeError as exc:
                if _cut_at_end(exc, len(data)):
                    return data[:exc.start].decode(candidate), candidate, True
                failures.append(f"{candidate} fails at byte {exc.start}")
    else:
        failures.append("contains NUL bytes")
    from charset_normalizer import from_bytes

    guess = from_bytes(data).best()
    if guess is not None:
        text = str(guess).removeprefix("\ufeff")
        if not _CONTROL.search(text):
            return text, f"{guess.encoding} (guessed)", False
    raise _undecodable(f"not UTF-8, GB18030/GBK or any recognisable text encoding ({'; '.join(failures)})",
                       "无法识别文件编码：既不是 UTF-8，也不是 GB18030/GBK，也不像其他文本编码（可能不是文本文件或已损坏）")


def _undecodable(reason: str, zh: str) -> FileProblem:
    return FileProblem("undecodable", f"undecodable: {reason}", zh)


# -- CSV -------------------------------------------------------------------------------------------------------
def _csv_header(text: str) -> list[str]:
    try:
        for row in csv.reader(io.StringIO(text[:HEADER_SCAN_CHARS], newline="")):
            if row:
                return row
    except csv.Error as exc:
        raise FileProblem("malformed", f"the CSV header cannot be read: {exc}", f"CSV 表头无法读取：{exc}") from None
    return []


def _csv_lines(text: str, expected: int) -> list[int] | None:
    """The physical line on which each record starts (blank lines and newlines inside quoted values
    make it differ from the record number). Slow path, only for such files."""
    reader = csv.reader(io.StringIO(text, newline=""))
    lines: list[int] = []
    before = 0
    header_seen = False
    try:
        for row in reader:
            start, before = before + 1, reader.line_num
            if not row:
                continue
            if not header_seen:
                header_seen = True
                continue
            lines.append(start)
    except csv.Error:  # e.g. a value beyond the csv module's field size limit: fall back to record numbers
        return None
    return lines if len(lines) == expected else None


def _utf8_prefix(data: bytes) -> str | None:
    """The file's first MiB decoded, if it looks like UTF-8 (the rest is checked by pyarrow), else None."""
    prefix = data[:HEADER_SCAN_CHARS]
    if b"\x00" in prefix:
        return None
    try:
        return prefix.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(prefix) == HEADER_SCAN_CHARS and _cut_at_end(exc, len(prefix)):
            return prefix[:exc.start].decode("utf-8")
        return None


def _csv_utf8(data: bytes, encoding: str, trust_prefix: bool) -> tuple[bytes, str, str, bool, bool]:
    """(UTF-8 bytes for pyarrow, text holding at least the header, encoding used, cut, fully checked).
    UTF-8 input is handed to pyarrow as it is (pyarrow checks it while parsing, much faster than a
    Python decode); other encodings are decoded once and re-encoded."""
    if encoding == "auto" and trust_prefix:
        body = data[3:] if data.startswith(codecs.BOM_UTF8) else data
        prefix = _utf8_prefix(body)
        if prefix is not None:
            return body, prefix, "utf-8-sig" if body is not data else "utf-8", False, False
    text, used, cut = decode(data, encoding)
    if used in ("utf-8", "utf-8-sig") and not cut:
        return (data[3:] if data.startswith(codecs.BOM_UTF8) else data), text, used, False, True
    return text.encode("utf-8"), text, used, cut, True


def _parse_csv(utf8: bytes, header: list[str], bad: list) -> pa.Table:
    def on_invalid(row) -> str:
        bad.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    return pacsv.read_csv(
        pa.py_buffer(utf8),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()),
                                             strings_can_be_null=True, null_values=[""], check_utf8=True),
    )


def _line_of(utf8: bytes, row_text: str) -> int | str:
    at = utf8.find(row_text.encode("utf-8")) if row_text else -1
    return "?" if at < 0 else utf8.count(b"\n", 0, at) + 1


def read_csv(data: bytes, encoding: str = "auto") -> tuple[list[str], pa.Table, list[int] | None, str, list[str]]:
    """Parse CSV bytes: (header as sent, all-text table, start line of each record or None when it is
    the record number + 1, encoding used, warnings). Raises FileProblem for a file that is not whole."""
    utf8, text, used, cut, checked = _csv_utf8(data, encoding, trust_prefix=True)
    if not utf8 or utf8.isspace():
        raise FileProblem("empty", "empty file: no header, no records", "空文件：没有表头，也没有数据", encoding=used)
    bad: list[tuple[int | None, int, int, str]] = []
    header = _csv_header(text)
    try:
        table = _parse_csv(utf8, header, bad)
    except pa.ArrowInvalid as exc:
        if checked or "utf8" not in str(exc).lower():
            raise FileProblem("malformed", f"CSV cannot be parsed: {exc}", f"CSV 文件无法解析：{exc}",
                              encoding=used) from None
        # looked like UTF-8 at the start but is not: decode it properly (GB18030, a cut character, ...)
        utf8, text, used, cut, checked = _csv_utf8(data, encoding, trust_prefix=False)
        bad.clear()
        header = _csv_header(text)
        try:
            table = _parse_csv(utf8, header, bad)
        except pa.ArrowInvalid as exc2:
            raise FileProblem("malformed", f"CSV cannot be parsed: {exc2}", f"CSV 文件无法解析：{exc2}",
                              encoding=used) from None
    readable = table.num_rows
    ends_with_newline = utf8.endswith((b"\n", b"\r"))
    if bad:
        last_text = bad[-1][3].encode("utf-8")
        if len(bad) == 1 and not ends_with_newline and last_text and utf8.endswith(last_text):
            line = utf8.count(b"\n", 0, len(utf8) - len(last_text)) + 1
            _, expected, actual, _ = bad[0]
            raise FileProblem(
                "truncated",
                f"truncated: the last record (line {line}) has {actual} of {expected} fields and the file has "
                f"no final newline; {readable} complete records before it",
                f"文件被截断：最后一条记录（第 {line} 行）不完整，只有 {actual} 个字段（表头有 {expected} 个），"
                f"且文件末尾没有换行符；此前有 {readable} 条完整记录",
                records=readable, encoding=used)
        located = [(n or _line_of(utf8, row_text), a) for n, _, a, row_text in bad[:3]]
        shown = "; ".join(f"line {n}: {a} fields" for n, a in located)
        shown_zh = "；".join(f"第 {n} 行 {a} 个字段" for n, a in located)
        raise FileProblem(
            "malformed",
            f"malformed: {len(bad)} record(s) do not have the header's {bad[0][1]} fields ({shown})",
            f"文件格式错误：有 {len(bad)} 条记录的字段数与表头（{bad[0][1]} 个）不一致（{shown_zh}）",
            records=readable, encoding=used)
    if cut:
        readable = max(readable - 1, 0)
        raise FileProblem(
            "truncated",
            f"truncated: the file ends inside a character (its last record is cut); {readable} complete records",
            f"文件被截断：文件在一个字符中间结束（最后一条记录不完整）；此前有 {readable} 条完整记录",
            records=readable, encoding=used)
    warnings = []
    if not ends_with_newline:
        warnings.append("no final newline: the last record has all its fields and was taken as complete")
    lines_in_file = utf8.count(b"\n") + (0 if utf8.endswith(b"\n") else 1)
    lines = None
    if lines_in_file != table.num_rows + 1:
        lines = _csv_lines(text if checked else utf8.decode("utf-8"), table.num_rows)
    if lines_in_file != table.num_rows + 1 and lines is None:
        warnings.append("could not map records to lines; _source_line is the record number + 1")
    return header, table, lines, used, warnings


# -- XLSX ------------------------------------------------------------------------------------------------------
def cell_text(value) -> str | None:
    """Raw-layer rendering of a spreadsheet cell."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        if value.microsecond >= 500_000:
            value += timedelta(seconds=1)
        return value.strftime(DATETIME_FORMAT)
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    return str(value)


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def read_xlsx(data: bytes, sheet: str | None = None) -> tuple[list[str], dict[str, pa.Array], list[int], list[str]]:
    """Parse XLSX bytes: (header, text columns, sheet row number of each record, warnings)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, XML and openpyxl errors all mean "not a readable workbook"
        raise FileProblem("unreadable", f"cannot be opened as an XLSX workbook ({type(exc).__name__}: {exc})",
                          f"无法作为 Excel（XLSX）工作簿打开（文件可能被截断或已损坏）：{type(exc).__name__}") from None
    records: list[tuple] = []
    numbers: list[int] = []
    blank = 0
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise FileProblem("wrong_columns", f"no sheet {sheet!r}; sheets: {', '.join(book.sheetnames)}",
                              f"找不到工作表“{sheet}”；文件中的工作表：{'、'.join(book.sheetnames)}")
        worksheet = book[sheet] if sheet is not None else book.worksheets[0]
        worksheet.reset_dimensions()  # never trust the stored dimension: it can hide rows
        rows = worksheet.iter_rows(values_only=True)
        header_row = next(rows, None)
        for number, row in enumerate(rows, start=2):
            if any(value is not None and value != "" for value in row):
                records.append(row)
                numbers.append(number)
            else:
                blank += 1
    except FileProblem:
        raise
    except Exception as exc:  # noqa: BLE001
        raise FileProblem("unreadable", f"XLSX cannot be read past record {len(records)} ({type(exc).__name__}: {exc})",
                          f"Excel 文件读取到第 {len(records)} 条记录后出错（文件可能被截断或已损坏）：{type(exc).__name__}",
                          records=len(records)) from None
    finally:
        book.close()
    if header_row is None or all(v is None for v in header_row):
        raise FileProblem("empty", "empty sheet: no header row", "空工作表：第一行没有表头", records=len(records))
    header = [(cell_text(v) or "").strip() for v in header_row]
    width = max([len(header), *map(len, records)])

    def in_use(i: int) -> bool:
        return bool(i < len(header) and header[i]) or any(i < len(r) and r[i] not in (None, "") for r in records)

    while width and not in_use(width - 1):  # trailing columns without a name and without data
        width -= 1
    header = [name or f"column_{_column_letter(i)}" for i, name in enumerate((header + [""] * width)[:width])]
    padded = [row[:width] + (None,) * (width - len(row)) if len(row) != width else row for row in records]
    columns: dict[str, pa.Array] = {}
    for name, values in zip(header, zip(*padded, strict=True) if padded else [()] * width, strict=True):
        kinds = set(map(type, values))
        if kinds <= {str, type(None)}:
            text = [v or None for v in values] if "" in values else list(values)
        else:
            text = [cell_text(v) for v in values]
        columns[name] = pa.array(text, type=pa.string())
    warnings = [f"{blank} blank row(s) skipped"] if blank else []
    return header, columns, numbers, warnings


# -- JSON ------------------------------------------------------------------------------------------------------
class _Number(str):
    """A JSON number kept as the text it was sent as."""


_DECODER = json.JSONDecoder(parse_float=_Number, parse_constant=_Number)  # ints: exact already, and fast


def _json_nested(value) -> str:
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_json_nested(v)}"
                              for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(_json_nested, value)) + "]"
    return json.dumps(value, ensure_ascii=False)


def json_text(value) -> str | None:
    """Raw-layer rendering of a JSON value: text and numbers as sent, true/false, objects/arrays as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _json_nested(value)


def _json_problem(exc: json.JSONDecodeError, text: str, records: int, used: str) -> FileProblem:
    at_end = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
    if at_end:
        return FileProblem("truncated", f"truncated: the JSON ends before it is complete (line {exc.lineno}); "
                                        f"{records} complete records before it",
                           f"文件被截断：JSON 在第 {exc.lineno} 行处提前结束；此前有 {records} 条完整记录",
                           records=records, encoding=used)
    return FileProblem("malformed", f"JSON cannot be parsed: {exc.msg} at line {exc.lineno} column {exc.colno}; "
                                    f"{records} complete records before it",
                       f"JSON 无法解析：第 {exc.lineno} 行第 {exc.colno} 列（{exc.msg}）；此前有 {records} 条完整记录",
                       records=records, encoding=used)


def _not_an_object(index: int, line: int, records: int, used: str) -> FileProblem:
    return FileProblem("malformed", f"record {index} (line {line}) is not a JSON object",
                       f"第 {index} 条记录（第 {line} 行）不是 JSON 对象", records=records, encoding=used)


def read_json(data: bytes, encoding: str = "auto", lines_format: bool = False) -> tuple[list[dict], list[int], str]:
    """Parse a JSON array of objects (or JSON Lines): (records, start line of each, encoding used)."""
    text, used, cut = decode(data, encoding)
    records: list[dict] = []
    numbers: list[int] = []
    if lines_format:
        lines = text.splitlines()
        last = max((i for i, line in enumerate(lines, start=1) if line.strip()), default=0)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = _DECODER.decode(line)
            except json.JSONDecodeError as exc:
                if number == last and (cut or not text.endswith(("\n", "\r"))):
                    raise FileProblem("truncated", f"truncated: the last line ({number}) is not complete JSON; "
                                                   f"{len(records)} complete records before it",
                                      f"文件被截断：最后一行（第 {number} 行）不是完整的 JSON；此前有 {len(records)} 条完整记录",
                                      records=len(records), encoding=used) from None
                raise FileProblem("malformed", f"line {number} is not JSON: {exc.msg}",
                                  f"第 {number} 行不是有效的 JSON：{exc.msg}", records=len(records), encoding=used) from None
            if not isinstance(record, dict):
                raise _not_an_object(len(records) + 1, number, len(records), used)
            records.append(record)
            numbers.append(number)
        if cut:
            raise FileProblem("truncated", "truncated: the file ends inside a character", "文件被截断：文件在一个字符中间结束",
                              records=max(len(records) - 1, 0), encoding=used)
        return records, numbers, used
    pos = _JSON_SPACE.match(text, 0).end()
    if pos == len(text):
        raise FileProblem("empty", "empty file", "空文件", encoding=used)
    if text[pos] != "[":
        raise FileProblem("malformed", "the top level is not a JSON array of records",
                          "JSON 顶层不是记录数组（应为 [ {...}, {...} ]）", encoding=used)
    pos = _JSON_SPACE.match(text, pos + 1).end()
    line, counted = 1, 0
    closed = text.startswith("]", pos)
    if closed:
        pos += 1
    while not closed:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            record, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise _json_problem(exc, text, len(records), used) from None
        if not isinstance(record, dict):
            raise _not_an_object(len(records) + 1, line, len(records), used)
        records.append(record)
        numbers.append(line)
        pos = _JSON_SPACE.match(text, pos).end()
        separator = text[pos:pos + 1]
        if separator == "]":
            closed, pos = True, pos + 1
        elif separator == ",":
            pos = _JSON_SPACE.match(text, pos + 1).end()
        elif separator == "":
            raise FileProblem("truncated", f"truncated: the JSON array is not closed; {len(records)} complete records",
                              f"文件被截断：JSON 数组没有结束符“]”；有 {len(records)} 条完整记录",
                              records=len(records), encoding=used)
        else:
            exc = json.JSONDecodeError("Expecting ',' or ']'", text, pos)
            raise _json_problem(exc, text, len(records), used)
    if text[pos:].strip():
        raise FileProblem("malformed", "data after the end of the JSON array",
                          "JSON 数组结束后还有多余内容", records=len(records), encoding=used)
    if cut:
        raise FileProblem("truncated", "truncated: the file ends inside a character", "文件被截断：文件在一个字符中间结束",
                          records=len(records), encoding=used)
    return records, numbers, used


def _json_column(values: list) -> pa.Array:
    kinds = set(map(type, values))
    if kinds <= {str, type(None)}:
        return pa.array(values, type=pa.string())
    if kinds <= {int, type(None)}:
        try:
            return pa.array(values, type=pa.int64()).cast(pa.string())
        except (OverflowError, pa.ArrowException):
            pass
    return pa.array([json_text(v) for v in values], type=pa.string())


def _json_columns(records: list[dict]) -> dict[str, pa.Array]:
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return {name: _json_column([r.get(name) for r in records]) for name in names}


# -- one file --------------------------------------------------------------------------------------------------
def _check_header(header: list[str], family: FileFamily, records: int, encoding: str | None) -> None:
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise FileProblem("malformed", f"duplicate column names: {', '.join(duplicates)}",
                          f"表头有重复的列名：{'、'.join(duplicates)}", records=records, encoding=encoding)
    reserved = [n for n in header if n in (SOURCE_FILE, SOURCE_LINE)]
    if reserved:
        raise FileProblem("malformed", f"reserved column names in the header: {', '.join(reserved)}",
                          f"表头使用了保留列名：{'、'.join(reserved)}", records=records, encoding=encoding)
    missing = [c for c in family.columns or [] if c not in header]
    if missing:
        raise FileProblem("wrong_columns", f"missing columns: {', '.join(missing)} (the header has: {', '.join(header)})",
                          f"缺少列：{'、'.join(missing)}（文件表头为：{'、'.join(header)}）",
                          records=records, encoding=encoding)


def _with_origin(columns: dict[str, pa.Array], rows: int, name: str, lines) -> pa.Table:
    columns = dict(columns)
    columns[SOURCE_FILE] = pa.repeat(pa.scalar(name, pa.string()), rows)
    if lines is None:
        columns[SOURCE_LINE] = pa.array(np.arange(2, rows + 2, dtype=np.int64))
    else:
        columns[SOURCE_LINE] = pa.array(lines, type=pa.int64())
    return pa.table(columns)


def read_file(data: bytes, name: str, family: FileFamily, encoding: str = "auto") -> ReadResult:
    """Read one dropped file of a family into an all-text table with _source_file and _source_line.
    Raises FileProblem when the file cannot be loaded as a whole."""
    result = _read_file(data, name, family, encoding)
    if result.encoding and result.encoding.endswith("(guessed)"):
        result.warnings.append(f"encoding guessed by charset-normalizer: {result.encoding.removesuffix(' (guessed)')}; check the text")
    return result


def _read_file(data: bytes, name: str, family: FileFamily, encoding: str) -> ReadResult:
    if family.format == "csv":
        header, table, lines, used, warnings = read_csv(data, encoding)
        names = [h.strip() or f"column_{i + 1}" for i, h in enumerate(table.column_names)]
        _check_header(names, family, table.num_rows, used)
        columns = {new: (col if pa.types.is_string(col.type) else col.cast(pa.string()))
                   for new, col in zip(names, table.columns, strict=True)}
        return ReadResult(_with_origin(columns, table.num_rows, name, lines), used, warnings)
    if family.format == "xlsx":
        header, columns, numbers, warnings = read_xlsx(data, family.sheet)
        _check_header(header, family, len(numbers), None)
        return ReadResult(_with_origin(columns, len(numbers), name, numbers), None, warnings)
    records, numbers, used = read_json(data, encoding, name.lower().endswith(JSON_LINES_SUFFIXES))
    columns = _json_columns(records)
    if records:
        _check_header(list(columns), family, len(records), used)
    else:  # an empty export: the declared columns, no rows
        columns = {c: pa.array([], type=pa.string()) for c in family.columns or []}
    return ReadResult(_with_origin(columns, len(records), name, numbers), used, [])


# -- the folder ------------------------------------------------------------------------------------------------
def matches(name: str, pattern: str) -> bool:
    """Glob match on the file name, case-insensitive (a department's .CSV is still a .csv)."""
    return fnmatch.fnmatchcase(name.casefold(), pattern.casefold())


def new_drop_files(entry: SourceEntry, files: dict[str, list], hashes: set[str]) -> list[str]:
    """Files in a drop folder whose content was never seen — what a watcher triggers a load for.

    `files` (name → [size, mtime_ns, sha256]) and `hashes` (every content seen) are the watcher's memory
    and are updated in place; a file is hashed again only when its size or time changed. A file dropped
    again, under its own or another name, has a known hash and is not new."""
    system = entry.system
    if not isinstance(system, FileDropSource):
        raise TypeError(f"{entry.name}: not a file_drop source")
    folder = Path(system.folder.resolve(f"{entry.name}: system.folder"))
    if not folder.is_dir():
        return []
    present: dict[str, list] = {}
    new: list[str] = []
    for item in sorted(os.scandir(folder), key=lambda e: e.name):
        if not item.is_file() or not any(matches(item.name, f.pattern) for f in system.files):
            continue
        stat = item.stat()
        previous = files.get(item.name)
        if previous and previous[0] == stat.st_size and previous[1] == stat.st_mtime_ns:
            present[item.name] = previous
            continue
        try:
            sha = hashlib.sha256(Path(item.path).read_bytes()).hexdigest()
        except OSError:
            continue  # vanished or unreadable: looked at again next time
        present[item.name] = [stat.st_size, stat.st_mtime_ns, sha]
        if sha not in hashes:
            new.append(item.name)
            hashes.add(sha)
    files.clear()
    files.update(present)
    return new


def reason_text(name: str, entry: SourceEntry, family: FileFamily, problem: FileProblem, sha: str, size: int,
                when: datetime, moved_to: str | None) -> str:
    where = f"已移到 {REJECTED_DIR}/{moved_to}" if moved_to else "未能移走，仍在原处（已记录，不会重复读取）"
    return "\n".join([
        f"文件：{name}",
        f"来源：{entry.name}（{entry.description}）数据表 {family.name}",
        f"时间：{when:%Y-%m-%d %H:%M:%S %z}",
        f"问题：{problem.zh}",
        f"可读记录：{problem.records} 条（整个文件未入库，{where}）",
        "处理：请重新导出完整、正确的文件并重新投放；内容不同的新文件会被自动读取，内容相同的文件会被跳过。",
        "",
        f"file: {name}",
        f"source: {entry.name}, table {family.name}",
        f"when: {when.isoformat(timespec='seconds')}",
        f"reason: {problem.reason}",
        f"readable records: {problem.records} (nothing from this file was loaded)",
        f"encoding: {problem.encoding or 'n/a'}",
        f"bytes: {size}",
        f"sha256: {sha}",
        "",
    ])


def _set_aside(path: Path, sha: str) -> tuple[str | None, str | None]:
    """Move a bad file to _rejected/ (never overwriting another rejected file): (new name, error)."""
    target_dir = path.parent / REJECTED_DIR
    try:
        target_dir.mkdir(exist_ok=True)
        target = target_dir / path.name
        if target.exists():
            target = target_dir / f"{path.stem}.{sha[:12]}{path.suffix}"
        os.replace(path, target)
        return target.name, None
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc}"


def extract(entry: SourceEntry, state: dict) -> Iterator[Batch | Rejected]:
    """Yield the new files of every family of a file-drop source (see the module docstring)."""
    system = entry.system
    if not isinstance(system, FileDropSource):
        raise TypeError(f"{entry.name}: the file-drop connector reads file_drop sources, not {system.kind}")
    folder = Path(system.folder.resolve(f"{entry.name}: system.folder"))
    if not folder.is_dir():
        raise FileNotFoundError(f"{entry.name}: drop folder {folder} does not exist")
    if system.encoding != "auto":
        try:
            codecs.lookup(system.encoding)
        except LookupError:
            raise ValueError(f"{entry.name}: system.encoding: unknown encoding {system.encoding!r}") from None
    zone = ZoneInfo(entry.timezone)
    ledger: dict = state.setdefault("ledger", {})
    run = state["last_run"] = {
        "at": datetime.now(zone).isoformat(timespec="seconds"), "loaded": [], "rejected": [],
        "already_loaded": 0, "skipped_duplicates": [], "unmatched": [], "warnings": [],
        "counts": {"files_loaded": 0, "records_loaded": 0, "files_rejected": 0, "skipped_duplicates": 0},
    }
    yield from _uncommitted_rejections(folder, system, entry, ledger, run, zone)
    names = sorted(e.name for e in os.scandir(folder) if e.is_file())  # not recursive: _rejected/ is skipped
    claimed: set[str] = set()
    for family in system.files:
        for name in names:
            if name in claimed or not matches(name, family.pattern):
                continue
            claimed.add(name)
            yield from _one_file(folder / name, family, entry, system.encoding, ledger, run, zone)
    run["unmatched"] = [n for n in names if n not in claimed and not n.startswith(".")]


def _uncommitted_rejections(folder: Path, system: FileDropSource, entry: SourceEntry, ledger: dict, run: dict,
                            zone: ZoneInfo) -> Iterator[Rejected]:
    """Files a crashed run set aside before its load committed: report them again, once."""
    rejected_dir = folder / REJECTED_DIR
    if not rejected_dir.is_dir():
        return
    for path in sorted(p for p in rejected_dir.iterdir() if p.is_file() and not p.name.endswith(".reason.txt")):
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        family = next((f for f in system.files if matches(path.name, f.pattern)), None)
        if sha in ledger or family is None:
            continue
        try:
            read_file(data, path.name, family, system.encoding)
            continue  # readable after all (e.g. put there by hand): leave it to the operator
        except FileProblem as problem:
            ledger[sha] = {"file": path.name, "family": family.name, "bytes": len(data), "status": "rejected",
                           "records": problem.records, "encoding": problem.encoding, "reason": problem.reason,
                           "moved_to": path.name, "at": datetime.now(zone).isoformat(timespec="seconds")}
            run["rejected"].append(path.name)
            run["counts"]["files_rejected"] += 1
            yield Rejected(table=family.name, origin=path.name, reason=problem.reason, records=problem.records)


def _one_file(path: Path, family: FileFamily, entry: SourceEntry, encoding: str, ledger: dict, run: dict,
              zone: ZoneInfo) -> Iterator[Batch | Rejected]:
    name = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:  # gone or unreadable now: not recorded, so it is read on the next run
        run["warnings"].append(f"{name}: cannot be read ({type(exc).__name__}: {exc}); left for the next run")
        return
    sha = hashlib.sha256(data).hexdigest()
    seen = ledger.get(sha)
    if seen is not None:
        if seen["file"] == name and seen["family"] == family.name and seen["status"] == "loaded":
            run["already_loaded"] += 1
        else:
            run["skipped_duplicates"].append({"file": name, "same_as": seen["file"], "status": seen["status"]})
            run["counts"]["skipped_duplicates"] += 1
            log.info("%s: %s has the same content as %s (%s); skipped", entry.name, name, seen["file"], seen["status"])
        return
    now = datetime.now(zone)
    record = {"file": name, "family": family.name, "bytes": len(data), "at": now.isoformat(timespec="seconds")}
    try:
        result = read_file(data, name, family, encoding)
    except FileProblem as problem:
        moved, error = _set_aside(path, sha)
        text = reason_text(name, entry, family, problem, sha, len(data), now, moved)
        if error:
            text += f"could not move the file: {error}\n"
        try:
            (path.parent / REJECTED_DIR / f"{moved or name}.reason.txt").write_text(text, encoding="utf-8")
        except OSError as exc:
            run["warnings"].append(f"{name}: reason file not written ({exc})")
        ledger[sha] = {**record, "status": "rejected", "records": problem.records, "encoding": problem.encoding,
                       "reason": problem.reason, "moved_to": moved}
        run["rejected"].append(name)
        run["counts"]["files_rejected"] += 1
        log.warning("%s: %s rejected: %s", entry.name, name, problem.reason)
        yield Rejected(table=family.name, origin=name, reason=problem.reason, records=problem.records)
        return
    table = result.table
    run["warnings"].extend(f"{name}: {w}" for w in result.warnings)
    for start in range(0, max(table.num_rows, 1), CHUNK_ROWS):
        if start + CHUNK_ROWS >= table.num_rows:  # the file's last batch: record it as loaded
            ledger[sha] = {**record, "status": "loaded", "records": table.num_rows, "encoding": result.encoding}
            run["loaded"].append(name)
            run["counts"]["files_loaded"] += 1
            run["counts"]["records_loaded"] += table.num_rows
        yield Batch(table=family.name, rows=table.slice(start, CHUNK_ROWS), origin=name)
