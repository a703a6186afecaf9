"""The Dagster definitions load and connect the lineage from the department systems to the bulletin."""

import dagster as dg
import pytest


@pytest.fixture(scope="module")
def asset_graph(dbt_manifest):
    from orchestration.definitions import defs

    return defs().resolve_asset_graph()


def key(path: str) -> dg.AssetKey:
    return dg.AssetKey(path.split("/"))


def upstream_closure(graph, asset_key: dg.AssetKey) -> set[dg.AssetKey]:
    seen, todo = set(), [asset_key]
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def test_every_layer_is_present(asset_graph):
    keys = {k.to_user_string() for k in asset_graph.get_all_asset_keys()}
    for expected in ("raw_hotline/orders", "raw_hotline/events", "raw_zhujian/gd_main", "staging/stg_hotline__orders",
                     "intermediate/int_work_orders_unified", "marts/fct_work_orders", "reference/ref_districts",
                     "indicators/district_monthly", "published/bulletin_monthly"):
        assert expected in keys


def test_lineage_runs_unbroken_from_sources_to_bulletin(asset_graph):
    upstream = upstream_closure(asset_graph, key("published/bulletin_monthly"))
    for source in ("raw_hotline/orders", "raw_zhujian/gd_main", "marts/fct_work_orders", "indicators/district_monthly"):
        assert key(source) in upstream
    # the dlt assets themselves are roots: no placeholder upstream assets
    assert not asset_graph.get(key("raw_hotline/orders")).parent_keys


def test_groups_follow_layers(asset_graph):
    groups = {k.to_user_string(): asset_graph.get(k).group_name for k in asset_graph.get_all_asset_keys()}
    assert groups["raw_hotline/orders"] == "ingestion"
    assert groups["staging/stg_hotline__orders"] == "staging"
    assert groups["marts/fct_work_orders"] == "marts"
    assert groups["reference/ref_districts"] == "reference"
    assert groups["published/bulletin_monthly"] == "publish"


def test_dbt_tests_are_asset_checks(asset_graph):
    checks = {c.name for c in asset_graph.asset_check_keys}
    assert "unique_fct_work_orders_order_no" in checks


def test_every_warehouse_writer_shares_one_pool(asset_graph):
    from orchestration.defs import WAREHOUSE_POOL

    for asset_key in asset_graph.get_all_asset_keys():
        node = asset_graph.get(asset_key)
        assert node.pools == {WAREHOUSE_POOL}, asset_key
