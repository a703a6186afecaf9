"""Repeat demands (重复诉求) and 并单 suggestions.

Two orders are linked when, within a window,
* the same pseudonymous caller (fct_work_orders.caller_key) comes back (within `caller_window_days`)
  about the same matter: the same level-2 category or the same community; or
* their texts are near-duplicates about the same place: the same community (the street when the
  community is unknown), within `text_window_days`, and SimHash fingerprints (64 bits over the
  jieba tokens, idf-weighted) at most `max_hamming` bits apart. Candidates are found by banding
  the fingerprint into `max_hamming + 1` bands (two fingerprints that close share a band).

Invalid calls (无效) and praise (表扬) are never linked. Linked orders form repeat groups (connected components). Contract of `text.repeat_demands`
(read by the indicators for 重复投诉率): one row per order of marts.fct_work_orders,
  order_no, repeat_group_id (the group's first order; NULL for an order in no group),
  is_repeat (true for every order of a group except its earliest), match_reason
  ('same_caller', 'similar_text' or 'same_caller+similar_text': how the order was linked to an
  earlier one; NULL for first and ungrouped orders), first_order_no (the group's earliest order).
`text.merge_suggestions` proposes 并单 links: a repeat whose group's first order was still open
when it arrived (and within `merge_window_hours`) could be merged into it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from citizen_voice.text.tokens import SCHEMA, TEXTS, ensure_schema
from citizen_voice.text.tokens import TABLE as TOKENS

TABLE = f"{SCHEMA}.repeat_demands"
SUGGESTIONS = f"{SCHEMA}.merge_suggestions"
BITS = 64
NOT_DEMANDS = ("WX", "BY")  # invalid calls and praise carry no demand to repeat
MIN_TEXT_TOKENS = 5  # shorter texts are too alike by chance to call near-duplicates


@dataclass(frozen=True)
class RepeatSettings:
    caller_window_days: int = 30
    text_window_days: int = 7
    max_hamming: int = 3
    merge_window_hours: int = 48


def _token_bits(vocabulary: list[str]) -> np.ndarray:
    """+1/-1 per bit for each token, from a stable hash (not Python's salted hash())."""
    raw = np.frombuffer(b"".join(hashlib.blake2b(t.encode(), digest_size=8).digest() for t in vocabulary),
                        dtype=">u8").astype(np.uint64)
    bits = (raw[:, None] >> np.arange(BITS, dtype=np.uint64)) & np.uint64(1)
    return bits.astype(np.float32) * 2 - 1


def simhash(token_docs: list[str]) -> np.ndarray:
    """64-bit SimHash per document (idf-weighted token set), as uint64."""
    index: dict[str, int] = {}
    rows, cols = [], []
    for r, joined in enumerate(token_docs):
        for token in set(joined.split()):
            rows.append(r)
            cols.append(index.setdefault(token, len(index)))
    if not index:
        return np.zeros(len(token_docs), dtype=np.uint64)
    matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                               shape=(len(token_docs), len(index)))
    df = np.asarray(matrix.sum(axis=0)).ravel()
    idf = np.log((1 + len(token_docs)) / (1 + df)) + 1
    vocabulary = [None] * len(index)
    for token, i in index.items():
        vocabulary[i] = token
    sums = (matrix @ sparse.diags(idf.astype(np.float32))) @ _token_bits(vocabulary)
    bits = (np.asarray(sums) > 0).astype(np.uint64)
    return (bits << np.arange(BITS, dtype=np.uint64)).sum(axis=1).astype(np.uint64)


def _hamming(a: np.uint64, b: np.uint64) -> int:
    return int(a ^ b).bit_count()


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)  # rows are in time order: the root is the earliest


def find_repeats(orders: pd.DataFrame, settings: RepeatSettings = RepeatSettings()) -> pd.DataFrame:
    """Repeat groups of `orders` (order_no, received_at, demand_type_code, caller_key, category_l2_code,
    street_code, community_code, tokens); invalid calls and praise are never linked. Returns the
    contract columns plus `linked_to` (the earlier order the order was linked to)."""
    orders = orders.sort_values(["received_at", "order_no"], kind="stable").reset_index(drop=True)
    n = len(orders)
    received = orders["received_at"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    reasons: dict[int, set[str]] = {}
    linked_to: dict[int, int] = {}
    uf = _UnionFind(n)

    def link(later: int, earlier: int, reason: str) -> None:
        uf.union(later, earlier)
        reasons.setdefault(later, set()).add(reason)
        linked_to.setdefault(later, earlier)

    caller_window = settings.caller_window_days * 86400
    is_demand = ~orders["demand_type_code"].isin(NOT_DEMANDS).to_numpy()
    times = received.tolist()
    l2 = orders["category_l2_code"].astype(object).where(orders["category_l2_code"].notna(), None).tolist()
    community = orders["community_code"].astype(object).where(orders["community_code"].notna(), None).tolist()
    callers = orders[orders["caller_key"].notna() & is_demand]
    callers = callers[callers["caller_key"].duplicated(keep=False)]
    for members in callers.groupby("caller_key", sort=False).indices.values():
        rows = sorted(callers.index[members].tolist())
        for pos, i in enumerate(rows):
            for j in reversed(rows[:pos]):
                if times[i] - times[j] > caller_window:
                    break
                if l2[i] == l2[j] or (community[i] is not None and community[i] == community[j]):
                    link(i, j, "same_caller")
                    break

    place_series = orders["community_code"].fillna(orders["street_code"])
    place = place_series.astype(object).where(place_series.notna(), None).tolist()
    fingerprints = [int(f) for f in simhash(orders["tokens"].fillna("").tolist())]
    bands = settings.max_hamming + 1
    width = BITS // bands
    mask = (1 << width) - 1
    text_window = settings.text_window_days * 86400
    buckets: dict[tuple, list[int]] = {}
    has_text = ((orders["tokens"].fillna("").str.count(" ").to_numpy() + 1 >= MIN_TEXT_TOKENS) & is_demand).tolist()
    for i in range(n):
        if place[i] is None or not has_text[i]:
            continue
        fp = fingerprints[i]
        best = None
        for b in range(bands):
            bucket = buckets.setdefault((place[i], b, (fp >> (b * width)) & mask), [])
            for j in reversed(bucket):
                if times[i] - times[j] > text_window:
                    break
                if (best is None or j > best) and (fp ^ fingerprints[j]).bit_count() <= settings.max_hamming:
                    best = j
                    break
            bucket.append(i)
        if best is not None:
            link(i, best, "similar_text")

    roots = [uf.find(i) for i in range(n)]
    sizes = Counter(roots)
    order_nos = orders["order_no"].tolist()
    grouped = [sizes[r] > 1 for r in roots]
    return pd.DataFrame({
        "order_no": order_nos,
        "repeat_group_id": [order_nos[r] if g else None for r, g in zip(roots, grouped, strict=True)],
        "is_repeat": [g and r != i for i, (r, g) in enumerate(zip(roots, grouped, strict=True))],
        "match_reason": ["+".join(sorted(reasons[i])) if i in reasons else None for i in range(n)],
        "first_order_no": [order_nos[r] if g else None for r, g in zip(roots, grouped, strict=True)],
        "linked_to": [order_nos[linked_to[i]] if i in linked_to else None for i in range(n)],
    })


def load_orders(con) -> pd.DataFrame:
    return con.execute(f"""
        select f.order_no, f.received_at, f.demand_type_code, f.caller_key, t.category_l2_code, f.street_code, f.community_code,
               k.tokens
        from marts.fct_work_orders f
        left join {TEXTS} t on t.order_no = f.order_no
        left join {TOKENS} k on k.order_no = f.order_no""").df()


def refresh(con, settings: RepeatSettings = RepeatSettings()) -> dict:
    """Recompute text.repeat_demands and text.merge_suggestions (idempotent)."""
    ensure_schema(con)
    groups = find_repeats(load_orders(con), settings)
    con.execute("begin")
    try:
        con.register("repeat_frame", groups)
        con.execute(f"""
            create or replace table {TABLE} as
            select order_no::varchar as order_no, repeat_group_id::varchar as repeat_group_id,
                   is_repeat::boolean as is_repeat, match_reason::varchar as match_reason,
                   first_order_no::varchar as first_order_no
            from repeat_frame order by order_no""")
        con.execute(f"""
            create or replace table {SUGGESTIONS} as
            select r.order_no, r.first_order_no as suggested_parent_order_no, r.match_reason,
                   round(date_diff('second', p.received_at, o.received_at) / 3600.0, 1) as hours_after_parent,
                   coalesce(o.parent_order_no = r.first_order_no, false) as already_merged
            from repeat_frame r
            join marts.fct_work_orders o on o.order_no = r.order_no
            join marts.fct_work_orders p on p.order_no = r.first_order_no
            where r.is_repeat
              and (p.closed_at is null or p.closed_at > o.received_at)
              and o.received_at <= p.received_at + interval {int(settings.merge_window_hours)} hour
            order by r.order_no""")
        con.unregister("repeat_frame")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    repeats = int(groups["is_repeat"].sum())
    suggestions = con.execute(f"select count(*), count(*) filter (where already_merged) from {SUGGESTIONS}").fetchall()[0]
    return {"orders": len(groups), "repeat_orders": repeats, "groups": int(groups["repeat_group_id"].nunique()),
            "repeat_rate": round(repeats / len(groups), 4) if len(groups) else None,
            "merge_suggestions": suggestions[0], "merge_suggestions_already_merged": suggestions[1]}


def evaluate(predicted: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Order-level precision/recall of is_repeat, and pairwise precision/recall of the groups,
    against truth (order_no, repeat_of, repeat_group) on the orders both contain."""
    merged = predicted.merge(truth[["order_no", "repeat_of", "repeat_group"]], on="order_no")
    true_repeat = merged["repeat_of"].notna()
    pred_repeat = merged["is_repeat"].astype(bool)
    tp = int((true_repeat & pred_repeat).sum())

    def pairs(group_column: str) -> set[tuple[str, str]]:
        out = set()
        for _, members in merged[merged[group_column].notna()].groupby(group_column)["order_no"]:
            m = sorted(members)
            out.update((a, b) for i, a in enumerate(m) for b in m[i + 1:])
        return out

    predicted_pairs, true_pairs = pairs("repeat_group_id"), pairs("repeat_group")
    common = len(predicted_pairs & true_pairs)
    return {"orders": len(merged), "true_repeats": int(true_repeat.sum()), "predicted_repeats": int(pred_repeat.sum()),
            "precision": tp / int(pred_repeat.sum()) if pred_repeat.any() else None,
            "recall": tp / int(true_repeat.sum()) if true_repeat.any() else None,
            "pair_precision": common / len(predicted_pairs) if predicted_pairs else None,
            "pair_recall": common / len(true_pairs) if true_pairs else None}
