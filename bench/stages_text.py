"""The text stage: segmentation, keywords, classification and the rest of citizen_voice.text on the
transformed warehouse, against a plain single-process `jieba.lcut` loop over the same texts.

Parent side: `@stage("text")` (registered when bench.stages imports this module). Child side: the
tasks below, registered in bench.tasks and run by `python -m bench.stage TASK` in their own process.
The measured work runs on a copy of the warehouse, so the benchmark's warehouse stays as the
transform stage left it.
"""

from __future__ import annotations

import os
import shutil
import time

from bench.harness import Context, Floor, Stage, stage
from bench.tasks import Work, task


@stage("text")
def text(ctx: Context) -> list[Stage]:
    if not ctx.warehouse.exists():
        return [Stage(name="text", notes="skipped: no transformed warehouse (run ingest and transform first)")]
    floor_m = ctx.measure("text_floor_jieba", {"warehouse": str(ctx.warehouse)}, label="floor-text")
    floor = Floor(name="jieba.lcut loop, 1 process", seconds=floor_m.seconds, rows=floor_m.rows,
                  peak_rss_mb=floor_m.peak_rss_mb) if floor_m.ok else None
    copy = ctx.work_dir / "text-warehouse.duckdb"
    shutil.copyfile(ctx.warehouse, copy)
    m = ctx.measure("text_stage", {"warehouse": str(copy), "models": str(ctx.work_dir / "models"), "workers": 2},
                    label="text-stage")
    copy.unlink(missing_ok=True)
    if not m.ok:
        return [Stage(name="text", peak_rss_mb=m.peak_rss_mb, notes=f"failed: {m.error[:300]}")]
    r = m.result
    steps = r["steps"]
    records = [Stage.measured("text", m.seconds, m.rows, m.peak_rss_mb, floor=floor,
                              notes=f"all steps on {m.rows:,} orders (2 segmentation workers); the floor only "
                                    "segments; model training not included (below)", details=r)]
    parts = {"segmentation": ["order_tokens"], "keywords": ["term_document_frequency", "order_keywords",
                                                            "topic_keywords"],
             "classification": ["classifications"], "repeats": ["repeat_demands"], "hot topics": ["hot_topics"],
             "early warnings": ["early_warnings"]}
    for name, keys in parts.items():
        seconds = sum(steps[k]["seconds"] for k in keys)
        records.append(Stage.measured(f"text · {name}", seconds, m.rows, None,
                                      floor=floor if name == "segmentation" else None,
                                      notes="; ".join(f"{k}: {steps[k]}" for k in keys)[:400]))
    records.append(Stage.measured("text · model training", r["train_seconds"], r["training_documents"], None,
                                  notes=f"held-out evaluation + final fit; macro-F1 {r['macro_f1']}"))
    inc = r["increment"]
    records.append(Stage.measured("text · daily increment", inc["seconds"], inc["new_orders"], None,
                                  notes=f"the last day's {inc['new_orders']:,} orders as new: segmented "
                                        f"{inc['segmented']:,}, keyworded {inc['keyworded']:,}, classified "
                                        f"{inc['classified']:,}; repeats, hot topics and warnings recomputed",
                                  details=inc))
    return records


# -- child side ---------------------------------------------------------------------------------------------------
def _texts(con) -> list[str]:
    from citizen_voice.text.tokens import TEXTS, document_text

    return [document_text(t, c) for t, c in con.execute(f"select title, content from {TEXTS} order by order_no"
                                                        ).fetchall()]


@task("text_floor_jieba")
def text_floor_jieba(args: dict) -> dict:
    """The floor: a plain single-process jieba.lcut loop (default dictionary and settings) over the texts."""
    import duckdb
    import jieba

    with duckdb.connect(args["warehouse"], read_only=True) as con:
        texts = _texts(con)
    jieba.initialize()
    with Work() as work:
        for text in texts:
            jieba.lcut(text)
    return work.result(len(texts), how="for text in texts: jieba.lcut(text)")


@task("text_stage")
def text_stage(args: dict) -> dict:
    import duckdb

    from citizen_voice import settings
    from citizen_voice.text import keywords, pipeline, predictions, tokens
    from citizen_voice.text.classify import TextClassifier

    os.environ["CV_MODELS"] = args["models"]
    shutil.rmtree(args["models"], ignore_errors=True)
    with duckdb.connect(args["warehouse"], config=settings.duckdb_config()) as con:  # as the platform connects
        orders = con.execute(f"select count(*) from {tokens.TEXTS}").fetchall()[0][0]
        # the model is trained on the history before the timed run (training is not per-document work)
        vocabulary = tokens.warehouse_vocabulary(con)
        tokens.update_order_tokens(con, vocabulary, workers=args["workers"])
        started = time.perf_counter()
        folder, metrics = predictions.train_default(con, vocabulary)
        train_seconds = time.perf_counter() - started
        model = TextClassifier.load(folder)
        con.execute(f"drop table {tokens.TABLE}")
        with Work() as work:
            steps = pipeline.run(con, model=model, workers=args["workers"])
        # a daily increment: the last day's orders arrive new
        last_day = con.execute(f"select max(received_date) from {tokens.TEXTS}").fetchall()[0][0]
        new = con.execute(f"select count(*) from {tokens.TEXTS} where received_date = ?", [last_day]).fetchall()[0][0]
        for table in (tokens.TABLE, keywords.ORDER_TABLE, predictions.TABLE):
            con.execute(f"delete from {table} where order_no in (select order_no from {tokens.TEXTS} "
                        f"where received_date = ?)", [last_day])
        increment_started = time.perf_counter()
        increment = pipeline.run(con, model=model, workers=args["workers"])
        increment_seconds = time.perf_counter() - increment_started
    segmentation = steps["order_tokens"]
    return work.result(orders, steps=steps, train_seconds=round(train_seconds, 3),
                       training_documents=model.meta["training_documents"], macro_f1=metrics["macro_f1"],
                       segment_docs_per_second=segmentation.get("docs_per_second"),
                       increment={"seconds": round(increment_seconds, 3), "new_orders": new,
                                  "segmented": increment["order_tokens"]["segmented"],
                                  "keyworded": increment["order_keywords"]["keyworded"],
                                  "classified": increment["classifications"]["classified"], "steps": increment})

