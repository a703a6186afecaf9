"""The default classifier of the platform and the stored predictions (`text.classifications`).

The default model is trained on the warehouse's own labelled history (the recorded level-3
category of valid orders; invalid calls carry no matter and are left out), its most recent
`TRAINING_ORDERS` orders, evaluated on a held-out part of them first, and saved as an artifact
under `<models dir>/classifier/<version>/` with its metrics. The models dir is $CV_MODELS, else
`models/` next to the warehouse (the data folder). Predictions are made for orders whose text or
model changed since their last prediction, a batch at a time.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from citizen_voice import settings
from citizen_voice.text import classify, store
from citizen_voice.text.segment import Segmenter
from citizen_voice.text.tokens import SCHEMA, TEXTS, document_text, ensure_schema
from citizen_voice.text.tokens import TABLE as TOKENS

TABLE = f"{SCHEMA}.classifications"
# The default model learns from the most recent labelled orders only: memory and time of training stay
# bounded however long the history grows, and the model follows the current way of categorising.
TRAINING_ORDERS = 200_000
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


def training_data(con, limit: int | None = None) -> tuple[list[str], list[str], dict]:
    """(tokens, level-3 labels, category tree {code: (l2, l1)}) of the labelled history: its most recent
    `limit` orders (default TRAINING_ORDERS), in order_no order."""
    limit = TRAINING_ORDERS if limit is None else limit
    # the most recent labelled orders first (narrow columns), then their tokens: nothing is joined or
    # sorted over the whole history but keys
    rows = con.execute(f"""
        with recent as (
            select order_no, category_code, category_l2_code, category_l1_code from {TEXTS}
            where demand_type_code is distinct from 'WX' and category_code is not null
              and order_no in (select order_no from {TOKENS})
            order by received_at desc nulls last, order_no desc
            limit {int(limit)}
        )
        select k.tokens, r.category_code, r.category_l2_code, r.category_l1_code
        from recent as r join {TOKENS} as k on k.order_no = r.order_no
        order by r.order_no""").fetchall()
    tree = {code: (l2, l1) for _, code, l2, l1 in rows}
    return [r[0] for r in rows], [r[1] for r in rows], tree


def train_default(con, vocabulary, root: Path | None = None, test_share: float = 0.2,
                  limit: int | None = None) -> tuple[Path, dict]:
    """Evaluate on a held-out split of the training set (the most recent `limit` labelled orders, default
    TRAINING_ORDERS), train on all of it, save the artifact; returns (folder, metrics)."""
    limit = TRAINING_ORDERS if limit is None else limit
    return train_and_save(*training_data(con, limit), vocabulary, root, test_share, limit)


def train_and_save(docs: list[str], labels: list[str], tree: dict, vocabulary, root: Path | None = None,
                   test_share: float = 0.2, limit: int | None = None) -> tuple[Path, dict]:
    """train_default on training data already read (so the warehouse connection can be closed before the
    fit: at 1M its buffers held 360 MB through the training)."""
    limit = TRAINING_ORDERS if limit is None else limit
    if len(set(labels)) < 2:
        raise ValueError("the warehouse has fewer than two labelled categories: nothing to learn")
    evaluation = classify.evaluate(docs, labels, vocabulary, test_share=test_share, category_tree=tree)
    model = classify.train(docs, labels, vocabulary, meta={"source": "warehouse labelled history",
                                                           "label": "category_code (level 3)",
                                                           "training_limit": limit,
                                                           "training_set": f"the most recent {limit:,} labelled "
                                                                           "orders (by received_at)",
                                                           "category_tree": tree})
    folder = (root or classifier_dir()) / model.version
    metrics = evaluation.as_dict()
    model.save(folder, metrics)
    return folder, metrics


def update_classifications(con, model: classify.TextClassifier) -> dict:
    """Predict the orders whose text or model changed since their last prediction, `store.TEXT_BATCH`
    orders at a time (each batch its own transaction); orphans removed."""
    ensure_schema(con)
    con.execute(DDL)
    vocabulary_matches = model.meta.get("vocabulary_version") == con.execute(
        f"select any_value(vocabulary_version) from {TOKENS}").fetchall()[0][0]
    segmenter = None
    pending_sql = f"""
        select k.order_no, k.text_hash, k.tokens, t.title, t.content, t.category_code
        from {TOKENS} as k join {TEXTS} as t on t.order_no = k.order_no
        left join {TABLE} as c on c.order_no = k.order_no and c.text_hash = k.text_hash and c.model_version = ?
        where c.order_no is null"""
    classified = 0
    for pending in store.read_batches(con, pending_sql, [model.version]):
        if vocabulary_matches:
            docs = pending["tokens"].to_pylist()
        else:  # the model segments as it was trained
            segmenter = segmenter or Segmenter(model.vocabulary)
            docs = segmenter.segment([document_text(t, c) for t, c in zip(
                pending["title"].to_pylist(), pending["content"].to_pylist(), strict=True)])
        prediction = model.predict_tokens(docs)
        parents = [model.parents(label) for label in prediction.labels]
        recorded = pending["category_code"].to_pylist()
        store.replace_rows(con, TABLE, pa.table({
            "order_no": pending["order_no"], "text_hash": pending["text_hash"],
            "model_version": pa.array([model.version] * len(docs), pa.string()),
            "predicted_category_code": pa.array(prediction.labels, pa.string()),
            "predicted_l2_code": pa.array([p[0] for p in parents], pa.string()),
            "predicted_l1_code": pa.array([p[1] for p in parents], pa.string()),
            "confidence": pa.array(prediction.confidence.astype(float), pa.float64()),
            "needs_review": pa.array(prediction.needs_review.astype(bool), pa.bool_()),
            "recorded_category_code": pa.array(recorded, pa.string()),
            "agrees_with_recorded": pa.array([None if r is None else r == p for r, p in zip(
                recorded, prediction.labels, strict=True)], pa.bool_()),
            "classified_at": pa.array([datetime.now().replace(microsecond=0)] * len(docs), pa.timestamp("us")),
        }))
        classified += len(docs)
    removed = store.delete_orphans(con, TABLE, TOKENS)
    summary = con.execute(f"""select count(*), avg(needs_review::int), avg(agrees_with_recorded::int)
                              from {TABLE} where model_version = ?""", [model.version]).fetchall()[0]
    return {"classified": classified, "removed": removed, "model_version": model.version, "total": summary[0],
            "needs_review_share": round(summary[1] or 0, 4), "agreement_with_recorded": round(summary[2] or 0, 4)}
