"""Text intelligence as assets (group "text"): tokens, keywords, the default classifier and its
predictions, repeat demands, hot topics and early warnings. The logic is citizen_voice.text;
these assets only open the warehouse, call it and report figures."""

import json

import dagster as dg

from citizen_voice import warehouse
from citizen_voice.memory import release_unused
from citizen_voice.text import early_warning, hot_topics, keywords, predictions, repeats, tokens
from citizen_voice.text.classify import TextClassifier
from orchestration.defs import WAREHOUSE_POOL

TEXTS = dg.AssetKey(["marts", "fct_work_order_texts"])
FACTS = dg.AssetKey(["marts", "fct_work_orders"])
DIMENSIONS = [dg.AssetKey(["marts", name]) for name in
              ("dim_district", "dim_street", "dim_community", "dim_department", "dim_category")]


class SegmentationConfig(dg.Config):
    workers: int = 2  # processes for large batches (a daily increment stays in one)


class ClassifierConfig(dg.Config):
    retrain: bool = False  # train a new default model even when one exists


class RecomputeConfig(dg.Config):
    full: bool = False  # recompute the whole table instead of only what the changes since the last run reach


class EarlyWarningConfig(dg.Config):
    sensitivity: str = "medium"  # low | medium | high (citizen_voice.text.early_warning.WarningSettings)


def _result(figures: dict, **extra) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={**{k: v for k, v in figures.items() if v is not None}, **extra})


@dg.asset(key=["text", "order_tokens"], deps=[TEXTS, *DIMENSIONS], group_name="text", pool=WAREHOUSE_POOL,
          description="jieba tokens per work order (domain vocabulary, stopwords); only new or changed texts "
                      "are segmented.")
def order_tokens(config: SegmentationConfig) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        return _result(tokens.update_order_tokens(con, workers=config.workers))


@dg.asset(key=["text", "order_keywords"], deps=[dg.AssetKey(["text", "order_tokens"])], group_name="text",
          pool=WAREHOUSE_POOL,
          description="Corpus document frequencies (following the changed orders) and TF-IDF keywords per order "
                      "(new texts only).")
def order_keywords() -> dg.MaterializeResult:
    with warehouse.connect() as con:
        terms = keywords.refresh_document_frequencies(con)
        return _result(keywords.update_order_keywords(con), terms=terms)


@dg.asset(key=["text", "topic_keywords"], deps=[dg.AssetKey(["text", "order_tokens"]), TEXTS], group_name="text",
          pool=WAREHOUSE_POOL, description="Top terms per level-3 and level-2 category (c-TF-IDF).")
def topic_keywords() -> dg.MaterializeResult:
    with warehouse.connect() as con:
        return _result({"rows": keywords.refresh_topic_keywords(con)})


@dg.asset(key=["text", "classifier_model"], deps=[dg.AssetKey(["text", "order_tokens"]), TEXTS], group_name="text",
          pool=WAREHOUSE_POOL,
          description="The default category classifier, trained on the warehouse's labelled history and saved "
                      "with its held-out metrics under <models dir>/classifier/<version>/.")
def classifier_model(config: ClassifierConfig) -> dg.MaterializeResult:
    folder = predictions.latest_model_folder()
    trained = False
    if folder is None or config.retrain:
        with warehouse.connect(read_only=True) as con:
            training, vocabulary = predictions.training_data(con), tokens.warehouse_vocabulary(con)
        release_unused()  # the closed connection's buffers, before the fit
        folder, _ = predictions.train_and_save(*training, vocabulary)
        trained = True
    model = TextClassifier.load(folder)
    metrics = folder / "metrics.json"
    figures = json.loads(metrics.read_text(encoding="utf-8")) if metrics.exists() else {}
    return _result({"version": model.version, "trained_now": trained, "classes": len(model.labels),
                    "training_documents": model.meta.get("training_documents"),
                    "heldout_macro_f1": figures.get("macro_f1"), "heldout_accuracy": figures.get("accuracy")},
                   path=dg.MetadataValue.path(str(folder)))


@dg.asset(key=["text", "classifications"], deps=[dg.AssetKey(["text", "order_tokens"]),
                                                  dg.AssetKey(["text", "classifier_model"])],
          group_name="text", pool=WAREHOUSE_POOL,
          description="Predicted category (levels 3/2/1) per order with confidence; low confidence flagged for "
                      "review.")
def classifications() -> dg.MaterializeResult:
    folder = predictions.latest_model_folder()
    if folder is None:
        raise FileNotFoundError("no classifier model: materialize text/classifier_model first")
    model = TextClassifier.load(folder)
    with warehouse.connect() as con:
        return _result(predictions.update_classifications(con, model))


@dg.asset(key=["text", "repeat_demands"], deps=[dg.AssetKey(["text", "order_tokens"]), FACTS, TEXTS],
          group_name="text", pool=WAREHOUSE_POOL,
          description="Repeat groups (same caller or near-duplicate text about the same place) and 并单 "
                      "suggestions; feeds 重复投诉率. Incremental: only the orders a change can reach are re-linked.")
def repeat_demands(config: RecomputeConfig) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        return _result(repeats.refresh(con, full=config.full))


@dg.asset(key=["text", "hot_topics"], deps=[dg.AssetKey(["text", "topic_keywords"]), TEXTS], group_name="text",
          pool=WAREHOUSE_POOL,
          description="Top topics per day/week/month, city/district/street, with growth and representative titles. "
                      "Incremental: only the periods a change can reach are recomputed.")
def hot_topics_asset(config: RecomputeConfig) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        return _result(hot_topics.refresh(con, full=config.full))


@dg.asset(key=["text", "early_warnings"], deps=[dg.AssetKey(["text", "repeat_demands"]), TEXTS], group_name="text",
          pool=WAREHOUSE_POOL,
          description="Significant rises of a category in a street or district against its own baseline "
                      "(预警 / 未诉先办), with evidence.")
def early_warnings(config: EarlyWarningConfig) -> dg.MaterializeResult:
    settings = early_warning.WarningSettings.preset(config.sensitivity)
    with warehouse.connect() as con:
        figures = early_warning.refresh(con, settings)
        latest = con.execute(f"select max(first_alert_date) from {early_warning.TABLE}").fetchall()[0][0]
    return _result(figures, sensitivity=config.sensitivity, latest_alert=str(latest) if latest else None)


def build_defs() -> dg.Definitions:
    return dg.Definitions(assets=[order_tokens, order_keywords, topic_keywords, classifier_model, classifications,
                                  repeat_demands, hot_topics_asset, early_warnings])
