"""Automatic classification of work orders into the category tree.

The model is a linear classifier (multinomial logistic regression, scikit-learn for the fit) over
TF-IDF weighted jieba tokens and token bigrams. It is trained on any labelled history; the
default model learns the level-3 category from the platform's own history, and levels 2 and 1
follow from the tree (a leaf determines its parents), so one model serves all three levels.

A model is a folder (an artifact, versioned, no pickle): `model.json` (metadata, labels, the
category tree when known, training parameters), `weights.npz` (coefficients, intercepts, idf),
`features.txt` (one feature per line, the row order of the weights), `vocabulary/` (the
segmenter's terms and stopwords, so predictions segment exactly as training did) and
`metrics.json` (its held-out evaluation). Prediction needs numpy/scipy only and downloads nothing.

`confidence` is the predicted class's probability; predictions below `review_threshold` are
flagged for a person to check.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from scipy import sparse

from citizen_voice.text.segment import Segmenter, Vocabulary, segment_texts

MIN_DOCUMENT_FREQUENCY = 2
REVIEW_THRESHOLD = 0.6
REGULARIZATION_C = 20.0
SMALL_CORPUS = 500
BIGRAM_JOIN = "\u2009"  # a thin space: never inside a token


def _features_of(tokens: Sequence[str]) -> list[str]:
    return [*tokens, *(a + BIGRAM_JOIN + b for a, b in zip(tokens, tokens[1:], strict=False))]


def _split(joined: str) -> list[str]:
    return joined.split() if joined else []


def fit_features(token_docs: Sequence[str], min_df: int = MIN_DOCUMENT_FREQUENCY) -> tuple[list[str], np.ndarray]:
    """Features seen in at least `min_df` documents, and their smoothed idf."""
    df: dict[str, int] = {}
    for joined in token_docs:
        for feature in set(_features_of(_split(joined))):
            df[feature] = df.get(feature, 0) + 1
    features = sorted(f for f, n in df.items() if n >= min_df)
    n_docs = len(token_docs)
    idf = np.array([np.log((1 + n_docs) / (1 + df[f])) + 1 for f in features], dtype=np.float32)
    return features, idf


def vectorize(token_docs: Sequence[str], index: dict[str, int], idf: np.ndarray) -> sparse.csr_matrix:
    """Sublinear tf * idf, rows L2-normalised (unknown features ignored)."""
    # typed arrays, not lists: 4 bytes per entry instead of a pointer and an int object
    indptr = array("q", [0])
    indices = array("i")
    values = array("f")
    for joined in token_docs:
        counts: dict[int, int] = {}
        for feature in _features_of(_split(joined)):
            i = index.get(feature)
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
        indices.extend(counts)
        values.extend(counts.values())
        indptr.append(len(indices))
    data = np.frombuffer(values, dtype=np.float32).copy()
    cols = np.frombuffer(indices, dtype=np.int32)
    data = (1 + np.log(data, where=data > 0, out=np.zeros_like(data))) * idf[cols] if len(data) else data
    matrix = sparse.csr_matrix((data, cols, np.frombuffer(indptr, dtype=np.int64)),
                               shape=(len(token_docs), len(idf)), dtype=np.float32)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1
    return sparse.diags(1 / norms).astype(np.float32) @ matrix


@dataclass
class Prediction:
    labels: list[str]
    confidence: np.ndarray
    needs_review: np.ndarray


@dataclass
class TextClassifier:
    labels: list[str]
    features: list[str]
    idf: np.ndarray
    coef: np.ndarray  # (classes, features)
    intercept: np.ndarray
    vocabulary: Vocabulary
    meta: dict = field(default_factory=dict)
    review_threshold: float = REVIEW_THRESHOLD

    def __post_init__(self):
        self._index = {f: i for i, f in enumerate(self.features)}
        self._coef_t = np.ascontiguousarray(self.coef.T)

    @property
    def version(self) -> str:
        return self.meta.get("version", "unversioned")

    def probabilities(self, token_docs: Sequence[str]) -> np.ndarray:
        scores = vectorize(token_docs, self._index, self.idf) @ self._coef_t + self.intercept
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        return scores / scores.sum(axis=1, keepdims=True)

    def predict_tokens(self, token_docs: Sequence[str]) -> Prediction:
        if not len(token_docs):
            return Prediction([], np.zeros(0), np.zeros(0, dtype=bool))
        probabilities = self.probabilities(token_docs)
        best = probabilities.argmax(axis=1)
        confidence = probabilities[np.arange(len(best)), best]
        return Prediction([self.labels[i] for i in best], confidence, confidence < self.review_threshold)

    def predict_texts(self, texts: Sequence[str | None], workers: int = 1) -> Prediction:
        return self.predict_tokens(segment_texts(texts, self.vocabulary, workers=workers))

    def parents(self, label: str) -> tuple[str | None, str | None]:
        """(level-2, level-1) of a level-3 label when the model knows the category tree."""
        tree = self.meta.get("category_tree") or {}
        return tuple(tree.get(label, (None, None)))  # type: ignore[return-value]

    # -- the artifact -----------------------------------------------------------------------------------------
    def save(self, folder: Path, metrics: dict | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "weights.npz", coef=self.coef.astype(np.float32), intercept=self.intercept,
                            idf=self.idf)
        (folder / "features.txt").write_text("\n".join(self.features) + "\n", encoding="utf-8")
        self.vocabulary.save(folder / "vocabulary")
        meta = {**self.meta, "labels": self.labels, "review_threshold": self.review_threshold}
        (folder / "model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        if metrics is not None:
            (folder / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path) -> TextClassifier:
        folder = Path(folder)
        if not (folder / "model.json").exists():
            raise FileNotFoundError(f"no classifier model in {folder} (model.json missing)")
        meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        weights = np.load(folder / "weights.npz")
        features = (folder / "features.txt").read_text(encoding="utf-8").split("\n")[:-1]
        if len(features) != weights["coef"].shape[1]:
            raise ValueError(f"{folder}: {len(features)} features but weights for {weights['coef'].shape[1]}")
        return cls(labels=meta.pop("labels"), features=features, idf=weights["idf"], coef=weights["coef"],
                   intercept=weights["intercept"], vocabulary=Vocabulary.load(folder / "vocabulary"),
                   review_threshold=meta.pop("review_threshold", REVIEW_THRESHOLD), meta=meta)


def train(token_docs: Sequence[str], labels: Sequence[str], vocabulary: Vocabulary, *,
          c: float = REGULARIZATION_C, min_df: int = MIN_DOCUMENT_FREQUENCY, meta: dict | None = None,
          review_threshold: float = REVIEW_THRESHOLD) -> TextClassifier:
    from sklearn.linear_model import LogisticRegression

    if len(token_docs) != len(labels):
        raise ValueError("as many labels as documents are needed")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"at least two classes are needed to train, got {classes}")
    if len(token_docs) < SMALL_CORPUS:
        min_df = 1  # every word counts in a small history
    features, idf = fit_features(token_docs, min_df)
    if not features:
        raise ValueError("the texts contain no usable words (all empty or stopwords)")
    matrix = vectorize(token_docs, {f: i for i, f in enumerate(features)}, idf)
    model = LogisticRegression(C=c, max_iter=300, tol=1e-3)
    model.fit(matrix, np.asarray(labels))
    if list(model.classes_) != classes:
        raise AssertionError("unexpected class order")
    digest = hashlib.sha256()
    for joined, label in zip(token_docs, labels, strict=True):
        digest.update(f"{label}\t{joined}\n".encode())
    digest.update(f"{c} {min_df} {vocabulary.version}".encode())
    meta = {"version": f"{datetime.now():%Y%m%d}-{digest.hexdigest()[:8]}", "created_at": datetime.now().isoformat(
        timespec="seconds"), "training_documents": len(token_docs), "classes": len(classes),
        "features": len(features), "c": c, "min_df": min_df, "vocabulary_version": vocabulary.version,
        "method": "multinomial logistic regression on TF-IDF of jieba tokens and bigrams", **(meta or {})}
    coef = model.coef_.astype(np.float32)
    intercept = model.intercept_.astype(np.float32)
    return TextClassifier(labels=classes, features=features, idf=idf, coef=coef, intercept=intercept,
                          vocabulary=vocabulary, meta=meta, review_threshold=review_threshold)


# -- evaluation ---------------------------------------------------------------------------------------------------
@dataclass
class Evaluation:
    labels: list[str]
    per_class: list[dict]  # label, precision, recall, f1, support
    macro_f1: float
    accuracy: float
    confusion: np.ndarray  # rows true, columns predicted (order of labels)
    documents: int
    method: str
    by_level: dict = field(default_factory=dict)  # level -> {"macro_f1", "accuracy"} when a tree is known
    review: dict = field(default_factory=dict)
    excluded_classes: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"method": self.method, "documents": self.documents, "macro_f1": round(self.macro_f1, 4),
                "accuracy": round(self.accuracy, 4), "per_class": self.per_class, "by_level": self.by_level,
                "review": self.review, "excluded_classes": self.excluded_classes,
                "confusion": {"labels": self.labels, "matrix": self.confusion.tolist()}}


def scores(true: Sequence[str], predicted: Sequence[str]) -> tuple[list[str], list[dict], float, float, np.ndarray]:
    labels = sorted(set(true) | set(predicted))
    position = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(true, predicted, strict=True):
        confusion[position[t], position[p]] += 1
    per_class = []
    f1s = []
    true_labels = set(true)
    for i, label in enumerate(labels):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i, :].sum() if confusion[i, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append({"label": label, "precision": round(float(precision), 4), "recall": round(float(recall), 4),
                          "f1": round(float(f1), 4), "support": int(confusion[i, :].sum())})
        if label in true_labels:  # macro average over the classes that occur
            f1s.append(f1)
    accuracy = float(np.trace(confusion) / max(1, confusion.sum()))
    return labels, per_class, float(np.mean(f1s)) if f1s else 0.0, accuracy, confusion


def _stratified_folds(labels: Sequence[str], k: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for members in by_label.values():
        members = rng.permutation(members)
        start = rng.integers(k)
        for j, i in enumerate(members):
            fold_of[i] = (start + j) % k
    return [np.flatnonzero(fold_of == f) for f in range(k)]


def evaluate(token_docs: Sequence[str], labels: Sequence[str], vocabulary: Vocabulary, *, folds: int = 0,
             test_share: float = 0.2, seed: int = 7, category_tree: dict | None = None,
             review_threshold: float = REVIEW_THRESHOLD, **train_options) -> Evaluation:
    """Held-out split (stratified, `test_share`) or stratified k-fold when `folds` >= 2.

    Classes with too few examples to appear on both sides (fewer than 2, or than `folds`) are left
    out and listed in `excluded_classes`."""
    needed = max(2, folds)
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    excluded = {label: n for label, n in counts.items() if n < needed}
    keep = [i for i, label in enumerate(labels) if label not in excluded]
    docs = [token_docs[i] for i in keep]
    labs = [labels[i] for i in keep]
    if len(set(labs)) < 2:
        raise ValueError("fewer than two classes with enough examples to evaluate")
    if folds >= 2:
        test_sets = _stratified_folds(labs, folds, seed)
        method = f"stratified {folds}-fold cross-validation"
    else:
        if not 0 < test_share < 1:
            raise ValueError("test_share must be between 0 and 1")
        k = max(2, round(1 / test_share))
        test_sets = _stratified_folds(labs, k, seed)[:1]
        method = f"stratified held-out split ({1 / k:.0%} test)"
    true: list[str] = []
    predicted: list[str] = []
    confidence: list[float] = []
    for test in test_sets:
        train_mask = np.ones(len(labs), dtype=bool)
        train_mask[test] = False
        train_idx = np.flatnonzero(train_mask)
        model = train([docs[i] for i in train_idx], [labs[i] for i in train_idx], vocabulary,
                      review_threshold=review_threshold, **train_options)
        prediction = model.predict_tokens([docs[i] for i in test])
        true += [labs[i] for i in test]
        predicted += prediction.labels
        confidence += prediction.confidence.tolist()
    label_list, per_class, macro_f1, accuracy, confusion = scores(true, predicted)
    by_level = {}
    if category_tree:
        for level, position in (("level2", 0), ("level1", 1)):
            t = [category_tree.get(x, (None, None))[position] or x for x in true]
            p = [category_tree.get(x, (None, None))[position] or x for x in predicted]
            _, _, level_f1, level_accuracy, _ = scores(t, p)
            by_level[level] = {"macro_f1": round(level_f1, 4), "accuracy": round(level_accuracy, 4)}
        by_level["level3"] = {"macro_f1": round(macro_f1, 4), "accuracy": round(accuracy, 4)}
    conf = np.asarray(confidence)
    right = np.asarray(true) == np.asarray(predicted)
    flagged = conf < review_threshold
    review = {"threshold": review_threshold, "flagged_share": round(float(flagged.mean()), 4),
              "accuracy_flagged": round(float(right[flagged].mean()), 4) if flagged.any() else None,
              "accuracy_not_flagged": round(float(right[~flagged].mean()), 4) if (~flagged).any() else None}
    return Evaluation(labels=label_list, per_class=per_class, macro_f1=macro_f1, accuracy=accuracy,
                      confusion=confusion, documents=len(true), method=method, by_level=by_level, review=review,
                      excluded_classes=excluded)


def format_report(evaluation: Evaluation, full_matrix_up_to: int = 20) -> str:
    """Per-class precision/recall/F1, macro-F1 and the confusion table (the full matrix for up to
    `full_matrix_up_to` classes; beyond that, every off-diagonal cell as true -> predicted: count)."""
    width = max(8, *(len(label) for label in evaluation.labels))
    lines = [f"evaluation: {evaluation.method}, {evaluation.documents} documents", "",
             f"{'class':<{width}}  precision  recall     f1  support"]
    for row in evaluation.per_class:
        lines.append(f"{row['label']:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}"
                     f"  {row['support']:7d}")
    lines += ["", f"macro-F1 {evaluation.macro_f1:.4f}   accuracy {evaluation.accuracy:.4f}"]
    for level, figures in evaluation.by_level.items():
        lines.append(f"{level}: macro-F1 {figures['macro_f1']:.4f}   accuracy {figures['accuracy']:.4f}")
    if evaluation.review:
        r = evaluation.review
        lines.append(f"review: {r['flagged_share']:.1%} flagged below confidence {r['threshold']}; accuracy "
                     f"flagged {r['accuracy_flagged']}, not flagged {r['accuracy_not_flagged']}")
    if evaluation.excluded_classes:
        lines.append(f"left out (too few examples): {evaluation.excluded_classes}")
    lines += ["", "confusion (rows: true, columns: predicted)" if len(evaluation.labels) <= full_matrix_up_to
              else "confusion (true -> predicted: count, off-diagonal cells)"]
    labels, matrix = evaluation.labels, evaluation.confusion
    if len(labels) <= full_matrix_up_to:
        cell = max(5, width)
        lines.append(" " * width + "".join(f"  {label:>{cell}}" for label in labels))
        for i, label in enumerate(labels):
            lines.append(f"{label:<{width}}" + "".join(f"  {int(v):>{cell}}" for v in matrix[i]))
    else:
        cells = [(int(matrix[i, j]), labels[i], labels[j]) for i in range(len(labels)) for j in range(len(labels))
                 if i != j and matrix[i, j]]
        for count, t, p in sorted(cells, key=lambda c: (-c[0], c[1], c[2])):
            lines.append(f"{t:<{width}} -> {p:<{width}} {count}")
        if not cells:
            lines.append("(no confusions)")
    return "\n".join(lines)


def segment_for(vocabulary: Vocabulary, texts: Sequence[str | None], workers: int = 1) -> list[str]:
    return segment_texts(texts, vocabulary, workers=workers, segmenter=Segmenter(vocabulary) if workers <= 1 else None)
