"""What happens to every batch at the boundary of the raw layer, whatever the connector:

1. records missing a required field, or whose declared type does not hold, are quarantined with
   the reason (never dropped);
2. personal data is replaced: name/phone/ID fields by their display mask plus a keyed pseudonym
   column, free text scrubbed (citizen_voice.privacy); quarantined payloads are protected too;
3. the batch is counted: received = loaded + quarantined.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from ingestion.registry import TableSpec

QUARANTINE_SCHEMA = pa.schema([
    ("record_hash", pa.string()), ("table_name", pa.string()), ("origin", pa.string()),
    ("reason", pa.string()), ("payload", pa.string()), ("quarantined_at", pa.timestamp("us", tz="UTC")),
])
INTEGER = re.compile(r"^\s*[-+]?\d+\s*$")
NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
BOOLEAN = {"true", "false", "0", "1", "t", "f", "yes", "no"}
ISO_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


@dataclass
class BoundaryResult:
    clean: pa.Table
    quarantine: pa.Table
    identities: pa.Table | None = None
    received: int = 0
    clean_mask: pa.Array | None = None  # per received record: true when it is in `clean`

    @property
    def loaded(self) -> int:
        return self.clean.num_rows

    @property
    def quarantined(self) -> int:
        return self.quarantine.num_rows


@dataclass
class Protector:
    """Applies citizen_voice.privacy to tables; keys are loaded once per run."""

    store_identities: bool = False
    _keys: tuple = field(default=(), init=False)

    def protect(self, table: pa.Table, spec: TableSpec) -> tuple[pa.Table, pa.Table | None]:
        personal = spec.personal_data
        if not personal.fields and not personal.text_fields:
            return table, None
        from citizen_voice import privacy

        if not self._keys:
            identity_key = privacy.IdentityKey.load() if self.store_identities else None
            self._keys = (privacy.PseudonymKey.load(), identity_key)
        pseudonym_key, identity_key = self._keys
        protected = privacy.protect_table(table, personal, pseudonym_key, identity_key=identity_key)
        return protected.table, protected.identities


def _is_valid(value: str, declared: str) -> bool:
    if declared == "integer" or declared == "epoch_seconds":
        return bool(INTEGER.match(value))
    if declared == "number":
        return bool(NUMBER.match(value))
    if declared == "boolean":
        return value.strip().lower() in BOOLEAN
    if declared == "iso_timestamp":
        if not ISO_TIMESTAMP.match(value.strip()):
            return False
        try:
            datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return True
        except ValueError:
            return False
    if declared.startswith("timestamp:"):
        try:
            datetime.strptime(value.strip(), declared.removeprefix("timestamp:"))
            return True
        except ValueError:
            return False
    raise ValueError(f"unknown declared type {declared}")


def _problems(table: pa.Table, spec: TableSpec) -> list[str | None]:
    """One reason per row (None when the row is fine); the first problem found wins."""
    reasons: list[str | None] = [None] * table.num_rows
    for column in [*spec.primary_key, *spec.required]:
        if column not in table.column_names:
            return [f"missing required field {column} (column absent)"] * table.num_rows
        values = table.column(column)
        missing = pc.or_(pc.is_null(values), pc.equal(pc.utf8_trim_whitespace(pc.cast(values, pa.string())), ""))
        for index in pc.indices_nonzero(pc.fill_null(missing, True)).to_pylist():
            reasons[index] = reasons[index] or f"missing required field {column}"
    for column, declared in spec.types.items():
        if column not in table.column_names:
            continue
        values = pc.cast(table.column(column), pa.string())
        # a strict vectorized pattern vouches for most values; the rest get the exact Python check
        vouched = pc.fill_null(pc.match_substring_regex(values, _vouching_pattern(declared)), False)
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), True)
        to_check = pc.indices_nonzero(pc.invert(pc.or_(vouched, blank))).to_pylist()
        for index in to_check:
            value = values[index].as_py()
            if reasons[index] is None and not _is_valid(value, declared):
                reasons[index] = f"field {column}: {value[:60]!r} is not {declared}"
    _conflicting_duplicates(table, spec, reasons)
    return reasons


def _conflicting_duplicates(table: pa.Table, spec: TableSpec, reasons: list[str | None]) -> None:
    """A key sent twice in one batch for the same update (same cursor value) with different values is a
    conflict the department must resolve: the first record is kept, each differing repeat is quarantined.
    (Exact repeats are harmless: merge-on-key keeps one.)"""
    cursor = getattr(spec, "cursor_field", None)
    keys = [*spec.primary_key, *([cursor] if cursor else [])]
    if table.num_rows < 2 or not all(c in table.column_names for c in keys):
        return
    counts = table.select(keys).group_by(keys).aggregate([([], "count_all")])
    if not pc.any(pc.greater(counts["count_all"], 1)).as_py():
        return
    first_of: dict[tuple, int] = {}
    for index, key in enumerate(zip(*(table.column(c).to_pylist() for c in keys), strict=True)):
        if reasons[index] is not None or any(part is None for part in key):
            continue
        first = first_of.setdefault(key, index)
        if first != index and table.slice(index, 1).to_pylist() != table.slice(first, 1).to_pylist():
            shown = ", ".join(f"{c}={v}" for c, v in zip(keys, key, strict=True))
            reasons[index] = f"conflicting duplicate: {shown} sent again with different values"


# Patterns that only match valid values (days up to 28: the 29th-31st are checked exactly).
_FIELD_PATTERNS = {"%Y": r"\d{4}", "%m": r"(0?[1-9]|1[0-2])", "%d": r"(0?[1-9]|1\d|2[0-8])",
                   "%H": r"(0?\d|1\d|2[0-3])", "%M": r"[0-5]?\d", "%S": r"[0-5]?\d"}
_NEVER = r"^\b$"


def _vouching_pattern(declared: str) -> str:
    if declared in ("integer", "epoch_seconds"):
        return INTEGER.pattern
    if declared == "number":
        return NUMBER.pattern
    if declared == "boolean":
        return r"(?i)^\s*(true|false|0|1|t|f|yes|no)\s*$"
    if declared == "iso_timestamp":
        return (r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?"
                r"(Z|[+-]\d{2}:?\d{2})?$")
    fmt = declared.removeprefix("timestamp:")
    pattern = ""
    for token in re.split(r"(%.)", fmt):
        if token.startswith("%"):
            if token not in _FIELD_PATTERNS:
                return _NEVER  # an unusual directive: leave every value to the exact check
            pattern += _FIELD_PATTERNS[token]
        else:
            pattern += re.escape(token)
    return f"^\\s*{pattern}\\s*$"


def _quarantine_rows(table: pa.Table, reasons: list[str], table_name: str, origin: str) -> pa.Table:
    now = datetime.now(UTC)
    payloads = [json.dumps(row, ensure_ascii=False, sort_keys=True, default=str) for row in table.to_pylist()]
    hashes = [hashlib.sha256(f"{table_name}\x00{p}".encode()).hexdigest() for p in payloads]
    return pa.table({
        "record_hash": hashes, "table_name": [table_name] * len(payloads), "origin": [origin] * len(payloads),
        "reason": reasons, "payload": payloads, "quarantined_at": pa.array([now] * len(payloads),
                                                                           type=pa.timestamp("us", tz="UTC")),
    }, schema=QUARANTINE_SCHEMA)


def process(table: pa.Table, spec: TableSpec, origin: str, protector: Protector) -> BoundaryResult:
    received = table.num_rows
    reasons = _problems(table, spec)
    bad_mask = pa.array([r is not None for r in reasons], type=pa.bool_())
    clean = table.filter(pc.invert(bad_mask))
    bad = table.filter(bad_mask)
    clean, identities = protector.protect(clean, spec) if clean.num_rows else (clean, None)
    if bad.num_rows:
        bad, _ = protector.protect(bad, spec)
        quarantine = _quarantine_rows(bad, [r for r in reasons if r is not None], spec.name, origin)
    else:
        quarantine = QUARANTINE_SCHEMA.empty_table()
    return BoundaryResult(clean=clean, quarantine=quarantine, identities=identities, received=received,
                          clean_mask=pc.invert(bad_mask))


def rejected_unit(table_name: str, origin: str, reason: str, records: int) -> pa.Table:
    """A quarantine record for a whole unit (file, window) that could not be read."""
    payload = json.dumps({"unit": origin, "records": records}, ensure_ascii=False)
    return _quarantine_rows(pa.table({"unit": [origin]}), [reason], table_name, origin).set_column(
        4, "payload", pa.array([payload]))
