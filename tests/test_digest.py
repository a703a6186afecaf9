"""Row digests (citizen_voice.digest): every change of a text changes the digest, where DuckDB's own
hash() collides on near-identical texts."""

from __future__ import annotations

import itertools

import duckdb

from citizen_voice.digest import columns_of, needs_md5, row_digest_sql


def _two_digits_apart(length: int) -> list[str]:
    """Every text of `length` digits that is all zeros but for two positions."""
    found = set()
    for i, j in itertools.combinations(range(length), 2):
        for a, b in itertools.product("0123456789", repeat=2):
            text = ["0"] * length
            text[i], text[j] = a, b
            found.add("".join(text))
    return sorted(found)


def test_texts_two_digits_apart_all_get_their_own_digest():
    with duckdb.connect() as con:
        con.execute("create table t as select unnest(?::varchar[]) as code, 1 as n", [_two_digits_apart(20)])
        digest = row_digest_sql(columns_of(con, "select * from t"))
        rows, hashes, digests = con.execute(f"select count(*), count(distinct hash(code, n)), "
                                            f"count(distinct {digest}) from t").fetchone()
    assert digests == rows and hashes < rows  # DuckDB's hash alone: some of them collide


def test_a_null_an_empty_text_and_a_moved_value_differ():
    columns = [("a", "VARCHAR"), ("b", "VARCHAR")]
    with duckdb.connect() as con:
        digests = con.execute(f"select {row_digest_sql(columns)} from (values (null, ''), ('', null), ('x', null), "
                              "(null, 'x'), ('x', 'y'), ('y', 'x')) as v(a, b)").fetchall()
    assert len(set(digests)) == 6


def test_numbers_and_times_are_hashed_by_duckdb_and_everything_else_also_by_md5():
    assert not any(needs_md5(kind) for kind in ("INTEGER", "UBIGINT", "DOUBLE", "DECIMAL(18,3)", "DATE",
                                                "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "BOOLEAN", "UUID"))
    assert all(needs_md5(kind) for kind in ("VARCHAR", "JSON", "BLOB", "VARCHAR[]", "STRUCT(a INTEGER)",
                                            "MAP(VARCHAR, INTEGER)"))
