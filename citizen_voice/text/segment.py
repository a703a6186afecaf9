"""Segmentation with jieba: a domain vocabulary, a stopword list and a fast, exact segmenter.

The vocabulary is the platform's own: place names (districts, streets, communities), department
names and the category tree from the warehouse's dimensions, plus the hotline terms bundled in
``hotline_terms.txt``; ``stopwords.txt`` lists what is dropped. Its version (a hash of the terms,
the stopwords and the HMM setting) is stored with every segmented text, so a changed vocabulary
re-segments everything once and an unchanged one never re-segments an unchanged text.

Speed (the reasons for the choices below):
* HMM (new-word discovery) is off by default: ~1.4x faster, and the domain vocabulary already
  names what matters.
* jieba cuts each run of Han characters/letters/digits between punctuation independently of the
  rest of the text, so the segmenter caches the cut of each run: the result is identical to
  ``jieba.lcut`` (tested) and the many recurring phrases of hotline texts are cut once.
* ``segment_texts(..., workers=2)`` and ``SegmentationPool`` spread large batches over processes that
  each load the vocabulary once (jieba's own parallel mode gains nothing on 2 cores); the pool
  serves a whole stream of batches with a bounded number of chunks in flight.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import signal
import unicodedata
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import jieba

from citizen_voice.warehouse import has_table

PACKAGE_DIR = Path(__file__).resolve().parent
STOPWORDS_FILE = PACKAGE_DIR / "stopwords.txt"
HOTLINE_TERMS_FILE = PACKAGE_DIR / "hotline_terms.txt"
PARALLEL_MIN_TEXTS = 20_000  # below this, starting worker processes costs more than it saves
CACHE_LIMIT = 500_000  # cached runs before the cache is emptied (bounds memory on huge corpora)

# Dimension columns whose values are domain terms (table -> columns).
DIMENSION_TERMS = {
    "marts.dim_district": ("district_name",),
    "marts.dim_street": ("street_name",),
    "marts.dim_community": ("community_name",),
    "marts.dim_department": ("department_name",),
    "marts.dim_category": ("category_name", "category_l2_name", "category_l1_name"),
}


def read_word_list(path: Path) -> list[str]:
    """Words of a list file: one per line (first field), '#' comments and blank lines ignored."""
    words = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(line.split()[0])
    return words


def normalize(text: str | None) -> str:
    """NFKC (full-width letters/digits/punctuation to half-width) and lower-case Latin letters."""
    return unicodedata.normalize("NFKC", text or "").lower()


@dataclass(frozen=True)
class Vocabulary:
    terms: tuple[str, ...]
    stopwords: frozenset[str]
    hmm: bool = False

    @property
    def version(self) -> str:
        digest = hashlib.sha256()
        digest.update("\n".join(self.terms).encode())
        digest.update(b"\0" + "\n".join(sorted(self.stopwords)).encode())
        digest.update(b"\0hmm" if self.hmm else b"\0nohmm")
        return digest.hexdigest()[:12]

    @classmethod
    def build(cls, extra_terms: Iterable[str] = (), hmm: bool = False) -> Vocabulary:
        """The bundled hotline terms and stopwords plus `extra_terms` (e.g. from the warehouse)."""
        terms = {normalize(t).strip() for t in [*read_word_list(HOTLINE_TERMS_FILE), *extra_terms]}
        terms = {t for t in terms if t and " " not in t}
        return cls(terms=tuple(sorted(terms)), stopwords=frozenset(normalize(w) for w in read_word_list(STOPWORDS_FILE)),
                   hmm=hmm)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "terms.txt").write_text("\n".join(self.terms) + "\n", encoding="utf-8")
        (folder / "stopwords.txt").write_text("\n".join(sorted(self.stopwords)) + "\n", encoding="utf-8")
        (folder / "segmenter.txt").write_text(f"hmm {int(self.hmm)}\nversion {self.version}\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Vocabulary:
        settings = dict(line.split() for line in (folder / "segmenter.txt").read_text(encoding="utf-8").splitlines())
        vocabulary = cls(terms=tuple(read_word_list(folder / "terms.txt")),
                         stopwords=frozenset(read_word_list(folder / "stopwords.txt")), hmm=settings["hmm"] == "1")
        if vocabulary.version != settings["version"]:
            raise ValueError(f"vocabulary in {folder} does not match its recorded version {settings['version']}")
        return vocabulary


def warehouse_terms(con) -> list[str]:
    """Place, department and category names from the warehouse's dimensions (those that exist)."""
    terms: list[str] = []
    for table, columns in DIMENSION_TERMS.items():
        schema, name = table.split(".")
        if not has_table(con, schema, name):
            continue
        for column in columns:
            terms += [row[0] for row in con.execute(f"select distinct {column} from {table} where {column} is not null")
                      .fetchall()]
    return terms


def _is_word(token: str) -> bool:
    return any(ch.isalnum() for ch in token) and not token.isdigit()


class Segmenter:
    """Cuts texts into tokens with the vocabulary; stopwords, punctuation and bare numbers dropped."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        self.tokenizer = jieba.Tokenizer()
        self.tokenizer.initialize()
        for term in vocabulary.terms:
            self.tokenizer.add_word(term)
        self._cache: dict[str, tuple[str, ...]] = {}
        self.cache_hits = 0
        self.cache_misses = 0

    def _cut_run(self, run: str) -> tuple[str, ...]:
        cached = self._cache.get(run)
        if cached is not None:
            self.cache_hits += 1
            return cached
        self.cache_misses += 1
        stop = self.vocabulary.stopwords
        kept = tuple(t for t in self.tokenizer.cut(run, HMM=self.vocabulary.hmm) if t not in stop and _is_word(t))
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[run] = kept
        return kept

    def tokens(self, text: str | None) -> list[str]:
        out: list[str] = []
        # jieba.cut splits on the same pattern and cuts each matching run on its own
        for i, part in enumerate(jieba.re_han_default.split(normalize(text))):
            if i % 2 and part:
                out.extend(self._cut_run(part))
        return out

    def segment(self, texts: Iterable[str | None]) -> list[str]:
        """Space-joined tokens per text (tokens never contain spaces)."""
        return [" ".join(self.tokens(t)) for t in texts]


_worker: Segmenter | None = None


def _init_worker(vocabulary: Vocabulary) -> None:
    # Pool.terminate() stops its workers with SIGTERM; a worker that inherited it ignored (a process started
    # in the background by some launchers does) cannot be stopped, and terminate() then waits for it forever
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    global _worker
    _worker = Segmenter(vocabulary)


def _segment_chunk(texts: list[str | None]) -> list[str]:
    return _worker.segment(texts)


class SegmentationPool:
    """Segments a stream of (tag, texts) chunks in order: in `workers` processes started once for the
    whole stream (each loading the vocabulary once), or in this process when `workers` <= 1. At most
    two chunks per worker are in flight, so memory stays bounded however long the stream is, and the
    workers keep cutting while the caller writes what came back."""

    def __init__(self, vocabulary: Vocabulary, workers: int = 1, segmenter: Segmenter | None = None):
        self.vocabulary = vocabulary
        self.workers = workers
        self._segmenter = segmenter
        self._pool = None

    def segment(self, chunks: Iterable[tuple[object, Sequence[str | None]]]) -> Iterator[tuple[object, list[str]]]:
        if self.workers <= 1:
            self._segmenter = self._segmenter or Segmenter(self.vocabulary)
            for tag, texts in chunks:
                yield tag, self._segmenter.segment(texts)
            return
        if self._pool is None:
            # spawn, not fork: the caller may hold DuckDB connections and threads (Dagster) a fork would copy
            self._pool = multiprocessing.get_context("spawn").Pool(self.workers, initializer=_init_worker,
                                                                  initargs=(self.vocabulary,))
        in_flight: deque = deque()
        for tag, texts in chunks:
            in_flight.append((tag, self._pool.apply_async(_segment_chunk, (list(texts),))))
            if len(in_flight) >= 2 * self.workers:
                done_tag, result = in_flight.popleft()
                yield done_tag, result.get()
        while in_flight:
            done_tag, result = in_flight.popleft()
            yield done_tag, result.get()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def __enter__(self) -> SegmentationPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def segment_texts(texts: Sequence[str | None], vocabulary: Vocabulary, workers: int = 1,
                  segmenter: Segmenter | None = None, chunk_size: int = 5_000) -> list[str]:
    """Segment many texts, in `workers` processes when the batch is large enough."""
    if not len(texts):
        return []
    if workers <= 1 or len(texts) < PARALLEL_MIN_TEXTS:
        return (segmenter or Segmenter(vocabulary)).segment(texts)
    with SegmentationPool(vocabulary, workers) as pool:
        chunks = ((i, texts[i:i + chunk_size]) for i in range(0, len(texts), chunk_size))
        return [joined for _, chunk in pool.segment(chunks) for joined in chunk]
