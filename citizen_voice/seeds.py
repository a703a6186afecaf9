"""Reference seeds are loaded only when they change.

The seeds (区县, 街道, 承办单位, code maps, the calendar …) change a few times a year, but a daily
build that loads them again also re-runs their tests and reports them: at 1M orders that is a fifth
of the staging step's nodes. The warehouse records the fingerprint of the seed definitions it was
last seeded with; a build whose fingerprint matches leaves the reference schema as it is.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb

from citizen_voice.warehouse import has_table, transaction

# What decides the content of the reference tables: the seed files and their YAML, the project's
# seed configuration, and the macros (schema naming)
_DEFINITION_PATHS = ("seeds", "macros", "dbt_project.yml")


def seed_fingerprint(project_dir: Path) -> str:
    digest = hashlib.sha256()
    for relative in _DEFINITION_PATHS:
        root = project_dir / relative
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            digest.update(path.relative_to(project_dir).as_posix().encode())
            digest.update(b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def seeded_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    """The fingerprint the warehouse's reference tables were last loaded with, if recorded."""
    if not has_table(con, "ops", "reference_seeds"):
        return None
    row = con.execute("select fingerprint from ops.reference_seeds").fetchone()
    return row[0] if row else None


def record_seeded(con: duckdb.DuckDBPyConnection, fingerprint: str) -> None:
    with transaction(con):
        con.execute("create schema if not exists ops")
        con.execute("create or replace table ops.reference_seeds (fingerprint varchar not null, "
                    "seeded_at timestamptz not null)")
        con.execute("insert into ops.reference_seeds values (?, now())", [fingerprint])


def all_seeds_succeeded(run_results: Path, manifest: Path) -> bool:
    """Whether a dbt invocation loaded every seed of the project and all their tests passed (a
    subset run, or one with a failing seed test, must not mark the reference tables current)."""
    nodes = json.loads(manifest.read_text(encoding="utf-8"))["nodes"]
    seeds = {uid for uid, node in nodes.items() if node["resource_type"] == "seed"}
    seed_tests = {uid for uid, node in nodes.items() if node["resource_type"] == "test"
                  and set(node["depends_on"]["nodes"]) <= seeds}
    status = {r["unique_id"]: r["status"] for r in json.loads(run_results.read_text(encoding="utf-8"))["results"]}
    return (all(status.get(uid) == "success" for uid in seeds)
            and all(status.get(uid) == "pass" for uid in seed_tests))
