"""`citizen-voice classify`: train, evaluate and apply a classifier on any labelled history.

    citizen-voice classify train --input history.xlsx --text-col 标题 --text-col 内容 --label-col 类别
    citizen-voice classify evaluate --input history.csv --text-col 内容 --label-col 类别 [--folds 5]
    citizen-voice classify predict --input new.csv --text-col 内容 --output predicted.csv [--model DIR]

Rows with an empty text or label are skipped and counted. The model folder (default
<models dir>/classifier/<version>) holds everything prediction needs; no downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

classify_app = typer.Typer(help="Classify work orders into categories: train, evaluate, predict.",
                           no_args_is_help=True)

INPUT = typer.Option(..., "--input", help="CSV (UTF-8/GB18030, detected) or XLSX file.")
TEXT_COLS = typer.Option(..., "--text-col", help="Text column(s), repeat for several (joined).")
LABEL_COL = typer.Option(..., "--label-col", help="The label column (e.g. the category).")


def _labelled(input_path: Path, text_cols: list[str], label_col: str) -> tuple[list[str], list[str], int]:
    from citizen_voice.text.tables import InputError, read_table, require_columns, texts_of

    try:
        frame = read_table(input_path)
        require_columns(frame, [*text_cols, label_col], input_path)
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--input") from exc
    texts = texts_of(frame, text_cols)
    labels = frame[label_col].fillna("").astype(str).str.strip().tolist()
    keep = [i for i, (t, label) in enumerate(zip(texts, labels, strict=True)) if t and label]
    skipped = len(texts) - len(keep)
    if len(keep) < 2:
        raise typer.BadParameter(f"{input_path}: fewer than two rows with both a text and a label", param_hint="--input")
    return [texts[i] for i in keep], [labels[i] for i in keep], skipped


def _vocabulary():
    """The bundled vocabulary plus the warehouse's place/department/category names when it exists."""
    from citizen_voice import settings, warehouse
    from citizen_voice.text.segment import Vocabulary, warehouse_terms

    if settings.warehouse_path().exists():
        try:
            with warehouse.connect(read_only=True) as con:
                return Vocabulary.build(warehouse_terms(con))
        except Exception:  # noqa: BLE001 - a busy or foreign warehouse must not stop training on a file
            pass
    return Vocabulary.build()


@classify_app.command("train")
def train_command(
    input_path: Path = INPUT,
    text_col: list[str] = TEXT_COLS,
    label_col: str = LABEL_COL,
    output: Path = typer.Option(None, "--output", help="Model folder (default <models dir>/classifier/<version>)."),
    test_share: float = typer.Option(0.2, help="Share held out to measure the model before training on all rows."),
):
    """Train a classifier on a labelled file; save it with its held-out metrics."""
    from citizen_voice.text import classify
    from citizen_voice.text.predictions import classifier_dir

    texts, labels, skipped = _labelled(input_path, text_col, label_col)
    vocabulary = _vocabulary()
    docs = classify.segment_for(vocabulary, texts)
    metrics = None
    try:
        metrics = classify.evaluate(docs, labels, vocabulary, test_share=test_share).as_dict()
    except ValueError as exc:
        typer.echo(f"no held-out evaluation: {exc}")
    try:
        model = classify.train(docs, labels, vocabulary, meta={"source": str(input_path), "text_columns": text_col,
                                                              "label_column": label_col, "skipped_rows": skipped})
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--input") from exc
    folder = model.save(output or classifier_dir() / model.version, metrics)
    typer.echo(f"trained on {len(docs)} rows ({skipped} skipped: empty text or label), {len(model.labels)} classes")
    if metrics:
        typer.echo(f"held-out macro-F1 {metrics['macro_f1']:.4f}, accuracy {metrics['accuracy']:.4f}")
    typer.echo(f"model {model.version} saved to {folder}")


@classify_app.command("evaluate")
def evaluate_command(
    input_path: Path = INPUT,
    text_col: list[str] = TEXT_COLS,
    label_col: str = LABEL_COL,
    folds: int = typer.Option(0, help="k for stratified k-fold cross-validation (0: one held-out split)."),
    test_share: float = typer.Option(0.2, help="Held-out share when --folds is 0."),
    json_output: Path = typer.Option(None, "--json", help="Also write the evaluation as JSON here."),
):
    """Per-class precision/recall/F1, macro-F1 and the confusion table."""
    from citizen_voice.text import classify

    texts, labels, skipped = _labelled(input_path, text_col, label_col)
    if folds == 1 or folds < 0:
        raise typer.BadParameter("--folds must be 0 (held-out split) or at least 2", param_hint="--folds")
    vocabulary = _vocabulary()
    docs = classify.segment_for(vocabulary, texts)
    try:
        evaluation = classify.evaluate(docs, labels, vocabulary, folds=folds, test_share=test_share)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--input") from exc
    if skipped:
        typer.echo(f"{skipped} rows skipped (empty text or label)")
    typer.echo(classify.format_report(evaluation))
    if json_output:
        json_output.write_text(json.dumps(evaluation.as_dict(), ensure_ascii=False, indent=1), encoding="utf-8")


@classify_app.command("predict")
def predict_command(
    input_path: Path = INPUT,
    text_col: list[str] = TEXT_COLS,
    output: Path = typer.Option(..., "--output", help="CSV to write (UTF-8 with BOM, opens in Excel)."),
    model_dir: Path = typer.Option(None, "--model", help="Model folder (default: the newest default model)."),
):
    """Predict a label, its confidence and a review flag for every row."""
    from citizen_voice.text import classify
    from citizen_voice.text.predictions import latest_model_folder
    from citizen_voice.text.tables import InputError, read_table, require_columns, texts_of

    folder = model_dir or latest_model_folder()
    if folder is None:
        raise typer.BadParameter("no model found: train one first or pass --model", param_hint="--model")
    try:
        model = classify.TextClassifier.load(folder)
        frame = read_table(input_path)
        require_columns(frame, text_col, input_path)
    except (InputError, FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    prediction = model.predict_texts(texts_of(frame, text_col))
    frame["predicted_label"] = prediction.labels
    frame["confidence"] = prediction.confidence.round(4)
    frame["needs_review"] = prediction.needs_review
    frame.to_csv(output, index=False, encoding="utf-8-sig")
    typer.echo(f"{len(frame)} rows predicted with model {model.version}; "
               f"{int(prediction.needs_review.sum())} flagged for review; written to {output}")
