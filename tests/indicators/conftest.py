"""A real warehouse for the indicator tests, built once per session: a small sandbox city served and
ingested (tests/warehouse/conftest.py's build_and_ingest), dbt-built to the marts, plus a
text.repeat_demands table made here with a simple documented rule (see REPEAT_RULE_SQL) so these tests
do not depend on the text helper's model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import pytest

WAREHOUSE_HELPERS = Path(__file__).resolve().parent.parent / "warehouse" / "conftest.py"

# Test-only rule: an order repeats an earlier demand when the same caller (caller_key) had another
# valid (non-无效) order received at most 30 days before it; the group is the caller's first order.
REPEAT_RULE_SQL = """
create schema if not exists text;
create or replace table text.repeat_demands as
with valid as (
    select order_no, caller_key, received_at from marts.fct_work_orders
    where demand_type_code <> 'WX' and caller_key is not null
),
earlier as (
    select later.order_no, min(first.order_no) as first_order_no
    from valid as later
    join valid as first on first.caller_key = later.caller_key and first.received_at < later.received_at
        and first.received_at >= later.received_at - interval 30 day
    group by later.order_no
)
select valid.order_no, coalesce(earlier.first_order_no, valid.order_no) as repeat_group_id,
       earlier.order_no is not null as is_repeat,
       case when earlier.order_no is not null then 'same caller within 30 days' end as match_reason,
       earlier.first_order_no
from valid left join earlier using (order_no)
"""


def _warehouse_helpers():
    spec = importlib.util.spec_from_file_location("warehouse_test_helpers", WAREHOUSE_HELPERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def indicator_city(tmp_path_factory):
    """{"work", "truth", "warehouse"}: a city of 45 days × 60 orders (two months) in a dbt-built warehouse
    with text.repeat_demands; the indicator tables are not computed yet."""
    from simulator.generator import SandboxParams

    helpers = _warehouse_helpers()
    work = tmp_path_factory.mktemp("indicators")
    city = helpers.build_and_ingest(work, SandboxParams(days=45, orders_per_day=60, seed=77))
    result = helpers.run_dbt(work, "build", "--exclude-resource-type", "test", "unit_test",
                             warehouse=city["warehouse"], timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    with duckdb.connect(str(city["warehouse"])) as con:
        con.execute(REPEAT_RULE_SQL)
    return {"work": work, "truth": city["truth"], "warehouse": city["warehouse"]}


@pytest.fixture
def warehouse_copy(indicator_city, tmp_path):
    """A private copy of the built warehouse (for tests that write to it)."""
    import shutil

    path = tmp_path / "warehouse.duckdb"
    shutil.copyfile(indicator_city["warehouse"], path)
    return path
