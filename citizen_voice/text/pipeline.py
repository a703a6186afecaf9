"""The whole text stage on a warehouse connection, in dependency order (what the Dagster assets do
one by one): tokens -> keywords -> classifications -> repeat demands -> hot topics -> early warnings."""

from __future__ import annotations

import time

from citizen_voice.text import early_warning, hot_topics, keywords, predictions, repeats, tokens
from citizen_voice.text.classify import TextClassifier


def run(con, model: TextClassifier | None = None, workers: int = 1) -> dict:
    """Run every step; trains and saves the default model when none exists. Returns figures per step."""
    figures: dict[str, dict] = {}

    def step(name, function, *args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        figures[name] = {**(result if isinstance(result, dict) else {"rows": result}),
                         "seconds": round(time.perf_counter() - started, 3)}
        return result

    vocabulary = tokens.warehouse_vocabulary(con)
    step("order_tokens", tokens.update_order_tokens, con, vocabulary, workers=workers)
    step("term_document_frequency", keywords.refresh_document_frequencies, con)
    step("order_keywords", keywords.update_order_keywords, con)
    step("topic_keywords", keywords.refresh_topic_keywords, con)
    if model is None:
        folder = predictions.latest_model_folder()
        if folder is None:
            folder, _ = predictions.train_default(con, vocabulary)
        model = TextClassifier.load(folder)
    step("classifications", predictions.update_classifications, con, model)
    step("repeat_demands", repeats.refresh, con)
    step("hot_topics", hot_topics.refresh, con)
    step("early_warnings", early_warning.refresh, con)
    return figures
