"""Hot topics and keywords on the processed city; the Dagster assets load and materialize."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd

from citizen_voice.privacy import find_personal_data
from citizen_voice.text import hot_topics, keywords


def test_hot_topics_count_growth_and_masked_titles(text_city):
    with duckdb.connect(str(text_city["warehouse"]), read_only=True) as con:
        top = con.execute(f"""select * from {hot_topics.TABLE} where grain = 'month' and area_level = 'city'
                              order by period_start desc, rank limit 1""").df().iloc[0]
        direct = con.execute("""select count(*) from marts.fct_work_order_texts where category_code = ?
                                and demand_type_code <> 'WX' and date_trunc('month', received_date) = ?""",
                             [top["topic_code"], top["period_start"]]).fetchall()[0][0]
        previous = con.execute("""select count(*) from marts.fct_work_order_texts where category_code = ?
                                  and demand_type_code <> 'WX'
                                  and date_trunc('month', received_date) = ? - interval 1 month""",
                               [top["topic_code"], top["period_start"]]).fetchall()[0][0]
        ranks = con.execute(f"""select max(rank), count(*) filter (where rank = 1) from {hot_topics.TABLE}
                                group by grain, period_start, area_level, area_code""").fetchall()
        titles = [r[0] for r in con.execute(f"select representative_titles from {hot_topics.TABLE}").fetchall()]
        grains = {r[0] for r in con.execute(f"select distinct grain || '/' || area_level from {hot_topics.TABLE}"
                                             ).fetchall()}
        topic_terms = keywords.topic_terms(con)
        order_keywords = con.execute(f"select count(*), count(keywords) from {keywords.ORDER_TABLE}").fetchall()[0]
    assert top["orders"] == direct and top["previous_orders"] == previous
    if previous:
        assert abs(top["growth_vs_previous"] - (direct / previous - 1)) < 1e-3
    assert pd.isna(top["last_year_orders"]) and pd.isna(top["growth_vs_last_year"])  # no year of history yet
    assert all(max_rank <= hot_topics.TOP_N and firsts == 1 for max_rank, firsts in ranks)
    assert grains == {f"{g}/{a}" for g in ("day", "week", "month") for a in ("city", "district", "street")}
    assert titles and not any(find_personal_data(t) for t in titles if t)
    assert "暖气" in topic_terms["GY0301"] or "供暖" in topic_terms["GY0301"]
    assert "电梯" in topic_terms["CX0101"]
    assert order_keywords[0] > 0 and order_keywords[1] / order_keywords[0] > 0.9


def test_text_assets_load_and_materialize_on_the_warehouse(warehouse_copy, text_city, monkeypatch, tmp_path):
    from orchestration.defs import WAREHOUSE_POOL
    from orchestration.defs import text as text_defs

    defs = text_defs.build_defs()
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    expected = {f"text/{name}" for name in ("order_tokens", "order_keywords", "topic_keywords", "classifier_model",
                                            "classifications", "repeat_demands", "hot_topics", "early_warnings")}
    assert expected <= keys
    for key in expected:
        node = graph.get(dg.AssetKey.from_user_string(key))
        assert node.group_name == "text" and node.pools == {WAREHOUSE_POOL}
    assert dg.AssetKey(["marts", "fct_work_order_texts"]) in graph.get(dg.AssetKey(["text", "order_tokens"])).parent_keys

    monkeypatch.setenv("CV_WAREHOUSE", str(warehouse_copy))
    monkeypatch.setenv("CV_MODELS", str(text_city["models"]))
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(assets, instance=dg.DagsterInstance.ephemeral(),
                            run_config={"ops": {"text__early_warnings": {"config": {"sensitivity": "low"}}}})
    assert result.success
    tokens_meta = result.asset_materializations_for_node("text__order_tokens")[0].metadata
    assert tokens_meta["segmented"].value == 0  # already segmented: nothing new
    classified = result.asset_materializations_for_node("text__classifier_model")[0].metadata
    assert classified["trained_now"].value is False
    warnings_meta = result.asset_materializations_for_node("text__early_warnings")[0].metadata
    assert warnings_meta["sensitivity"].value == "low"


def test_the_classifier_is_fitted_after_its_warehouse_connection_is_closed(warehouse_copy, monkeypatch, tmp_path):
    """The fit needs no warehouse: holding the connection through it kept DuckDB's buffers (360 MB at 1M)."""
    from citizen_voice.text import classify
    from orchestration.defs import text as text_defs

    monkeypatch.setenv("CV_WAREHOUSE", str(warehouse_copy))
    monkeypatch.setenv("CV_MODELS", str(tmp_path / "models"))
    writable_during_fit = []
    fit = classify.train

    def train_checking_the_warehouse(*args, **kwargs):
        with duckdb.connect(str(warehouse_copy)) as con:  # fails while this process holds it read-only
            writable_during_fit.append(con.execute("select 1").fetchone()[0] == 1)
        return fit(*args, **kwargs)

    monkeypatch.setattr(classify, "train", train_checking_the_warehouse)
    result = dg.materialize([text_defs.classifier_model], instance=dg.DagsterInstance.ephemeral(),
                            run_config={"ops": {"text__classifier_model": {"config": {"retrain": True}}}})
    assert result.success
    assert writable_during_fit and all(writable_during_fit)  # the held-out evaluation fits too
    assert result.asset_materializations_for_node("text__classifier_model")[0].metadata["trained_now"].value is True
