"""BI serving: the DuckDB snapshot (atomic swap, readers undisturbed) and PostgreSQL serving with a
read role per department (row-level security, real server) and an analyst role."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from contextlib import closing

import duckdb
import psycopg2
import pytest

from citizen_voice.publish import gate, postgres, snapshot
from citizen_voice.publish.config import load_config

READER = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    query = "select snapshot_id, (select count(*) from marts.fct_work_orders) from meta.snapshot"
    print("before", *con.execute(query).fetchall()[0], flush=True)
    sys.stdin.readline()  # hold the snapshot open until the publisher has swapped a new one in
    print("after", *con.execute(query).fetchall()[0], flush=True)
    print("rows", con.execute("select count(*) from marts.fct_work_order_events").fetchall()[0][0], flush=True)
""")


def test_snapshot_copies_the_marts_and_indicators(publish_city, tmp_path):
    report = snapshot.publish_snapshot(publish_city["warehouse"], tmp_path, known=None, run_id="run-1")
    assert report.path == tmp_path / "serving" / "warehouse.duckdb"
    assert {"marts", "indicators"} <= set(report.schemas)
    assert not os.access(report.path, os.W_OK) or os.geteuid() == 0  # mode 0444
    assert oct(report.path.stat().st_mode & 0o777) == "0o444"
    with duckdb.connect(str(publish_city["warehouse"]), read_only=True) as source, \
            duckdb.connect(str(report.path), read_only=True) as copy:
        for qualified, rows in report.tables.items():
            assert source.execute(f"select count(*) from {qualified}").fetchall()[0][0] == rows
            assert copy.execute(f"select count(*) from {qualified}").fetchall()[0][0] == rows
        assert copy.execute("select snapshot_id from meta.snapshot").fetchall() == [("run-1",)]
        with pytest.raises(duckdb.Error):
            copy.execute("create table marts.x as select 1")
    assert sorted(p.name for p in report.path.parent.iterdir()) == ["warehouse.duckdb"]  # no temp files


def test_the_snapshot_works_within_the_platforms_memory_limit(publish_city, tmp_path, monkeypatch):
    """Its connection takes the platform's limit, not DuckDB's default of 80 % of the RAM (at 1M it held
    1.9 GB): under a limit far too small the copy runs out of memory, and no partial snapshot is left."""
    monkeypatch.setenv("CV_DUCKDB_MEMORY_LIMIT", "1MB")
    with pytest.raises(duckdb.OutOfMemoryException):
        snapshot.publish_snapshot(publish_city["warehouse"], tmp_path, known=None)
    assert not (tmp_path / "serving" / "warehouse.duckdb").exists()
    assert list((tmp_path / "serving").iterdir()) == []
    monkeypatch.setenv("CV_DUCKDB_MEMORY_LIMIT", "256MB")
    assert snapshot.publish_snapshot(publish_city["warehouse"], tmp_path, known=None).tables


def test_a_reader_keeps_its_snapshot_during_a_publish(publish_city, tmp_path):
    first = snapshot.publish_snapshot(publish_city["warehouse"], tmp_path, known=None, run_id="old")
    reader = subprocess.Popen([sys.executable, "-c", READER, str(first.path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        before = reader.stdout.readline().split()
        assert before[:2] == ["before", "old"]
        snapshot.publish_snapshot(publish_city["warehouse"], tmp_path, known=None, run_id="new")
        with duckdb.connect(str(first.path), read_only=True) as fresh:  # a new reader sees the new run
            assert fresh.execute("select snapshot_id from meta.snapshot").fetchall() == [("new",)]
        reader.stdin.write("go\n")
        reader.stdin.flush()
        out, err = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0, err
    after, rows = out.splitlines()
    assert after.split() == ["after", "old", before[2]]  # the previous snapshot, whole, no error
    assert int(rows.split()[1]) > 0


def test_planted_personal_data_keeps_the_previous_snapshot(publish_city, warehouse_copy, tmp_path):
    known = gate.load_known_values(publish_city["sandbox"])
    snapshot.publish_snapshot(warehouse_copy, tmp_path, known=known, run_id="clean")
    with duckdb.connect(str(warehouse_copy)) as con:
        con.execute("update marts.dim_channel set channel_name = '热线 13912345678' "
                    "where channel_code = (select min(channel_code) from marts.dim_channel)")
    with pytest.raises(gate.PersonalDataFound) as error:
        snapshot.publish_snapshot(warehouse_copy, tmp_path, known=known, run_id="dirty")
    assert [(h.location, h.column, h.kind, h.count) for h in error.value.hits] == \
        [("marts.dim_channel", "channel_name", "phone", 1)]
    path = snapshot.snapshot_path(tmp_path)
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("select snapshot_id from meta.snapshot").fetchall() == [("clean",)]
    assert sorted(p.name for p in path.parent.iterdir()) == ["warehouse.duckdb"]


# --- PostgreSQL ------------------------------------------------------------------------------------


def passwords(*roles: str) -> dict[str, str]:
    prefix = load_config().serving.postgres.password_env_prefix
    return {prefix + role.upper(): f"pw-{role}" for role in roles}


def connect_as(url: str, role: str):
    dsn = postgres.libpq_dsn(url).replace("://postgres@", f"://{role}:pw-{role}@")
    return closing(psycopg2.connect(dsn))


@pytest.fixture(scope="module")
def served(publish_city, postgres_url):
    roles = ("cv_dept_swj", "cv_dept_qzf01", "cv_dept_cgj", "cv_analyst")
    report = postgres.publish_postgres(postgres_url, publish_city["warehouse"], environ=passwords(*roles),
                                       known=gate.load_known_values(publish_city["sandbox"]))
    with duckdb.connect(str(publish_city["warehouse"]), read_only=True) as con:
        truth = {
            "lead": dict(con.execute("select order_no, lead_dept_code from marts.fct_work_orders").fetchall()),
            "assist": set(con.execute("select dept_code, order_no from marts.fct_work_order_events "
                                      "where role = 'assist'").fetchall()),
            "district": dict(con.execute("select department_code, district_code from marts.dim_department")
                             .fetchall()),
        }
    return report, postgres_url, truth


def test_every_serving_table_is_published(served, publish_city):
    report, url, _ = served
    with duckdb.connect(str(publish_city["warehouse"]), read_only=True) as con:
        for qualified, rows in report.tables.items():
            assert con.execute(f"select count(*) from {qualified}").fetchall()[0][0] == rows
    assert "marts.fct_work_orders" in report.tables and "indicators.district_monthly" in report.tables
    assert report.roles["cv_dept_swj"] == "login" and report.roles["cv_dept_gaj"] == "nologin"


@pytest.mark.parametrize("code", ["SWJ", "QZF01", "CGJ"])
def test_a_department_role_reads_only_its_own_rows(served, code):
    _, url, truth = served
    role = f"cv_dept_{code.lower()}"
    with connect_as(url, role) as con, con.cursor() as cur:
        cur.execute("select order_no, lead_dept_code from shares.work_orders")
        rows = cur.fetchall()
        own = {o for o, lead in truth["lead"].items() if lead == code}
        helped = {o for dept, o in truth["assist"] if dept == code}
        assert {o for o, _ in rows} == own | helped and own
        cur.execute("select count(*) from marts.fct_work_orders where lead_dept_code <> %s "
                    "and order_no not in (select order_no from marts.fct_work_order_events "
                    "where dept_code = %s and role = 'assist')", [code, code])
        assert cur.fetchone()[0] == 0  # another department's orders are invisible, also in the base table
        cur.execute("select distinct dept_code from shares.work_order_events")
        assert cur.fetchall() == [(code,)]
        cur.execute("select distinct district_code from shares.district_monthly")
        district = truth["district"][code]
        assert cur.fetchall() == ([(district,)] if district else [])
        cur.execute("select count(*) from marts.dim_department")
        assert cur.fetchone()[0] == len(truth["district"])  # reference tables in full
    with connect_as(url, role) as con, con.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("select caller_key from marts.fct_work_orders")


def test_the_analyst_reads_everything(served):
    _, url, truth = served
    with connect_as(url, "cv_analyst") as con, con.cursor() as cur:
        cur.execute("select count(*), count(caller_key) from marts.fct_work_orders")
        total, keys = cur.fetchone()
        assert total == len(truth["lead"]) and keys > 0


def test_a_role_without_a_password_cannot_log_in(served):
    _, url, _ = served
    with pytest.raises(psycopg2.OperationalError, match="not permitted to log in"):
        psycopg2.connect(postgres.libpq_dsn(url).replace("://postgres@", "://cv_dept_gaj@"))


def test_republishing_is_one_transaction_and_planted_data_rolls_back(served, publish_city, warehouse_copy):
    report, url, truth = served
    env = passwords("cv_dept_swj", "cv_dept_qzf01", "cv_dept_cgj", "cv_analyst")
    known = gate.load_known_values(publish_city["sandbox"])
    again = postgres.publish_postgres(url, warehouse_copy, environ=env, known=known)
    assert again.tables == report.tables  # idempotent
    leaked = next(v for v, kind in known.numbers.items() if kind == "id_no")
    with duckdb.connect(str(warehouse_copy)) as con:
        con.execute("update marts.fct_work_orders set caller_phone_masked = ? where order_no = "
                    "(select min(order_no) from marts.fct_work_orders)", [leaked])
        con.execute("delete from marts.fct_work_orders where lead_dept_code = 'SWJ'")
        con.execute("update marts.dim_channel set channel_name = ? "
                    "where channel_code = (select min(channel_code) from marts.dim_channel)", [f" {min(known.names)} "])
    with pytest.raises(gate.PersonalDataFound) as error:
        postgres.publish_postgres(url, warehouse_copy, environ=env, known=known)
    found = {(h.location, h.column, h.kind) for h in error.value.hits}
    assert ("marts.fct_work_orders", "caller_phone_masked", "known_id_no") in found
    assert ("marts.dim_channel", "channel_name", "known_name") in found  # as stored, by the gate's own scan
    with connect_as(url, "cv_dept_swj") as con, con.cursor() as cur:  # the previous publication stands
        cur.execute("select count(*) from shares.work_orders where lead_dept_code = 'SWJ'")
        assert cur.fetchone()[0] == sum(1 for lead in truth["lead"].values() if lead == "SWJ")


def test_not_configured_is_a_clear_error(publish_city):
    with pytest.raises(postgres.ServingNotConfigured, match="CV_SERVING_PG_URL"):
        postgres.publish_postgres(None, publish_city["warehouse"], environ={})
