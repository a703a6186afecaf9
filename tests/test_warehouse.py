"""An in-memory scratch database (the privacy gate's scans, the Open311 API's table) works under the
platform's DuckDB settings and spills beside the warehouse, not into the working directory."""


from support.duckdb_settings import memory_limit_as_shown

from citizen_voice import warehouse


def test_a_scratch_database_spills_beside_the_warehouse_under_the_platforms_limit(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("CV_WAREHOUSE", str(tmp_path / "data" / "warehouse.duckdb"))
    monkeypatch.setenv("CV_DUCKDB_MEMORY_LIMIT", "64MB")
    monkeypatch.chdir(tmp_path / "elsewhere")
    with warehouse.scratch_connection() as con:
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == memory_limit_as_shown("64MB")
        # twice the limit: the table's blocks must go to disk
        con.execute("create table wide as select range as id, md5(range::varchar) || md5((range + 1)::varchar) as text "
                    "from range(2000000)")
        spilled = [row[0] for row in con.execute("select path from duckdb_temporary_files()").fetchall()]
        assert spilled and all(path.startswith(str(tmp_path / "data" / "scratch.tmp")) for path in spilled)
        assert con.execute("select count(distinct text) from wide").fetchone()[0] == 2_000_000
    assert list((tmp_path / "elsewhere").iterdir()) == []
