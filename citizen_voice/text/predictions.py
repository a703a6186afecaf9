"""The default classifier of the platform and the stored predictions (`text.classifications`).

The default model is trained on the warehouse's own labelled history (the recorded level-3
category of every valid order; invalid calls carry no matter and are left out), evaluated on a
held-out part first, and saved as an artifact under `<models dir>/classifier/<version>/` with its
metrics. The models dir is $CV_MODELS, else `models/` next to the warehouse (the data folder).
Predictions are made for orders whose text or model changed since their last prediction.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from citizen_voice import settings
from citizen_voice.text import classify
from citizen_voice.text.tokens import SCHEMA, TEXTS, ensure_schema
from citizen_voice.text.tokens import TABLE as TOKENS

TABLE = f"{SCHEMA}.classifications"
DDL = f"""
create table if not exists {TABLE} (
    order_no varchar not null,
    text_hash varchar not null,
    model_version varchar not null,
    predicted_category_code varchar,     -- 三级分类 (predicted)
    predicted_l2_code varchar,           -- 二级分类
    predicted_l1_code varchar,           -- 一级分类
    confidence double not null,          -- probability of the predicted category
    needs_review boolean not null,       -- confidence below the model's review threshold
    recorded_category_code varchar,      -- the category the hotline recorded
    agrees_with_recorded boolean,
    classified_at timestamp not null
)"""


def models_dir() -> Path:
    value = os.environ.get("CV_MODELS")
    return Path(value).resolve() if value else settings.warehouse_path().parent / "models"


def classifier_dir() -> Path:
    return models_dir() / "classifier"


def latest_model_folder(root: Path | None = None) -> Path | None:
    root = root or classifier_dir()
    versions = sorted(p for p in root.glob("*") if (p / "model.json").exists()) if root.exists() else []
    return versions[-1] if versions else None


def training_data(con) -> tuple[list[str], list[str], dict]:
    """(tokens, level-3 labels, category tree {code: (l2, l1)}) of the labelled history."""
    rows = con.execute(f"""
        select k.tokens, t.category_code, t.category_l2_code, t.category_l1_code
        from {TOKENS} as k join {TEXTS} as t on t.order_no = k.order_no
        where t.demand_type_code is distinct from 'WX' and t.category_code is not null
        order by k.order_no""").fetchall()
    tree = {code: (l2, l1) for _, code, l2, l1 in rows}
    return [r[0] for r in rows], [r[1] for r in rows], tree


def train_default(con, vocabulary, root: Path | None = None, test_share: float = 0.2) -> tuple[Path, dict]:
    """Evaluate on a held-out split, train on everything, save the artifact; returns (folder, metrics)."""
    docs, labels, tree = training_data(con)
    if len(set(labels)) < 2:
        raise ValueError("the warehouse has fewer than two labelled categories: nothing to learn")
    evaluation = classify.evaluate(docs, labels, vocabulary, test_share=test_share, category_tree=tree)
    model = classify.train(docs, labels, vocabulary, meta={"source": "warehouse labelled history",
                                                           "label": "category_code (level 3)",
                                                           "category_tree": tree})
    folder = (root or classifier_dir()) / model.version
    metrics = evaluation.as_dict()
    model.save(folder, metrics)
    return folder, metrics


def update_classifications(con, model: classify.TextClassifier) -> dict:
    """Predict the orders whose text or model changed since their last prediction."""
    ensure_schema(con)
    con.execute(DDL)
    vocabulary_matches = model.meta.get("vocabulary_version") == con.execute(
        f"select any_value(vocabulary_version) from {TOKENS}").fetchall()[0][0]
    pending = con.sql(f"""
        select k.order_no, k.text_hash, k.tokens, t.title, t.content, t.category_code
        from {TOKENS} as k join {TEXTS} as t on t.order_no = k.order_no
        left join {TABLE} as c on c.order_no = k.order_no and c.text_hash = k.text_hash and c.model_version = ?
        where c.order_no is null order by k.order_no""", params=[model.version]).to_arrow_table()
    if vocabulary_matches:
        docs = pending["tokens"].to_pylist()
    else:  # the model segments as it was trained
        from citizen_voice.text.tokens import document_text

        docs = classify.segment_for(model.vocabulary, [document_text(t, c) for t, c in zip(
            pending["title"].to_pylist(), pending["content"].to_pylist(), strict=True)])
    prediction = model.predict_tokens(docs)
    parents = [model.parents(label) for label in prediction.labels]
    recorded = pending["category_code"].to_pylist()
    batch = pa.table({
        "order_no": pending["order_no"], "text_hash": pending["text_hash"],
        "model_version": pa.array([model.version] * len(docs), pa.string()),
        "predicted_category_code": pa.array(prediction.labels, pa.string()),
        "predicted_l2_code": pa.array([p[0] for p in parents], pa.string()),
        "predicted_l1_code": pa.array([p[1] for p in parents], pa.string()),
        "confidence": pa.array(prediction.confidence.astype(float), pa.float64()),
        "needs_review": pa.array(prediction.needs_review.astype(bool), pa.bool_()),
        "recorded_category_code": pa.array(recorded, pa.string()),
        "agrees_with_recorded": pa.array([None if r is None else r == p for r, p in zip(recorded, prediction.labels,
                                                                                         strict=True)], pa.bool_()),
        "classified_at": pa.array([datetime.now().replace(microsecond=0)] * len(docs), pa.timestamp("us")),
    })
    con.execute("begin")
    try:
        con.register("classified_batch", batch)
        con.execute(f"delete from {TABLE} where order_no in (select order_no from classified_batch)")
        con.execute(f"insert into {TABLE} select * from classified_batch")
        con.unregister("classified_batch")
        removed = con.execute(f"delete from {TABLE} where order_no not in (select order_no from {TOKENS})"
                              ).fetchall()[0][0]
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    summary = con.execute(f"""select count(*), avg(needs_review::int), avg(agrees_with_recorded::int)
                              from {TABLE} where model_version = ?""", [model.version]).fetchall()[0]
    return {"classified": len(docs), "removed": removed, "model_version": model.version, "total": summary[0],
            "needs_review_share": round(summary[1] or 0, 4), "agreement_with_recorded": round(summary[2] or 0, 4)}
