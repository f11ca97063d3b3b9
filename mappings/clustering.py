"""Scored pairs + the steward's decisions -> one company label per row.

Union-find over the pairs, strongest evidence first: pairs a steward accepted, then exact keys whose
names agree, then fuzzy pairs at or above the merge threshold (highest score first). A union is refused
when it would put two different credit codes into one company or join rows a steward kept apart, so
a chain of weaker links can never merge what the strongest evidence says are two companies. Pairs in
the review band (and exact keys with contradicting names) that did not end up in one company go to the
steward's queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # company label per row (the smallest row position in the company)
    merged: pd.DataFrame  # pairs that joined two companies: l, r, score, kind, evidence
    review: pd.DataFrame  # pairs for the steward: not merged, not decided
    refused: pd.DataFrame  # pairs above the threshold (or accepted) that a constraint kept apart, with why


class _UnionFind:
    def __init__(self, n: int, codes):
        self.parent = list(range(n))
        self.codes = codes  # row -> credit code (rows that can merge); a company's code is set on union
        self.code: dict[int, str] = {}
        self.apart: dict[int, set[int]] = {}  # root -> roots it must never join (steward rejections)

    def code_of(self, root: int) -> str | None:
        c = self.code.get(root)
        if c is None:
            c = self.codes.get(root) if isinstance(self.codes, dict) else self.codes[root]
        return c if isinstance(c, str) and c else None

    def find(self, x: int) -> int:
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:
            p[x], x = root, p[x]
        return root

    def keep_apart(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        self.apart.setdefault(ra, set()).add(rb)
        self.apart.setdefault(rb, set()).add(ra)

    def union(self, a: int, b: int) -> str | None:
        """Join the companies of a and b; returns why not when a constraint forbids it."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        ca, cb = self.code_of(ra), self.code_of(rb)
        if ca and cb and ca != cb:
            return f"different credit codes ({ca} / {cb})"
        fa, fb = self.apart.get(ra, set()), self.apart.get(rb, set())
        if any(self.find(x) == rb for x in fa) or any(self.find(x) == ra for x in fb):
            return "a steward rejected merging these companies"
        if ra > rb:
            ra, rb = rb, ra
        self.parent[rb] = ra
        if cb and not ca or ca and not cb:
            self.code[ra] = ca or cb
        if fa or fb:
            self.apart[ra] = fa | fb
        return None

    def labels(self) -> np.ndarray:
        """The root of every row, by pointer jumping in numpy (a Python find per row costs seconds at 1M)."""
        p = np.asarray(self.parent, dtype=np.int64)
        while True:
            q = p[p]
            if np.array_equal(q, p):
                return p
            p = q


def cluster(n: int, pairs: pd.DataFrame, *, codes, merge_threshold: float, review_threshold: float,
            accepted: set[tuple[int, int]] = frozenset(), rejected: set[tuple[int, int]] = frozenset()) -> Clustering:
    """See module docstring. ``pairs``: l < r row positions, score, kind (exact/ambiguous/fuzzy), evidence;
    ``codes``: row -> credit code (array or dict of the rows in pairs);
    ``accepted``/``rejected``: row-position pairs (l < r) the steward decided."""
    uf = _UnionFind(n, codes)
    for a, b in rejected:
        uf.keep_apart(a, b)
    key = list(zip(pairs["l"].tolist(), pairs["r"].tolist()))
    decided = pd.Series([k in accepted or k in rejected for k in key], index=pairs.index, dtype=bool) \
        if (accepted or rejected) else pd.Series(False, index=pairs.index)
    strong = pairs[~decided & ((pairs["kind"] == "exact") |
                               ((pairs["kind"] == "fuzzy") & (pairs["score"] >= merge_threshold)))]
    strong = strong.assign(_o=(strong["kind"] != "exact").astype(int)).sort_values(
        ["_o", "score", "l", "r"], ascending=[True, False, True, True], kind="stable")
    acc = pd.DataFrame([(a, b, 1.0, "steward", "accepted by a steward") for a, b in sorted(accepted)],
                       columns=["l", "r", "score", "kind", "evidence"])
    merged, refused = [], []
    for frame in (acc, strong):
        for l, r, s, k, e in zip(frame["l"], frame["r"], frame["score"], frame["kind"], frame["evidence"]):
            if uf.find(l) == uf.find(r):
                continue
            why = uf.union(int(l), int(r))
            (refused if why else merged).append((l, r, s, k, e if not why else f"{e} -- not merged: {why}"))
    labels = uf.labels()
    cols = ["l", "r", "score", "kind", "evidence"]
    band = pairs[~decided & (((pairs["kind"] == "fuzzy") & (pairs["score"] >= review_threshold) &
                              (pairs["score"] < merge_threshold)) | (pairs["kind"] == "ambiguous"))]
    band = band[labels[band["l"].to_numpy()] != labels[band["r"].to_numpy()]] if len(band) else band
    refused_df = pd.DataFrame(refused, columns=cols)
    review = pd.concat([band[cols], refused_df[refused_df["kind"] != "steward"]], ignore_index=True)
    review = review.drop_duplicates(["l", "r"]).sort_values(["score", "l"], ascending=[False, True])
    return Clustering(labels, pd.DataFrame(merged, columns=cols), review.reset_index(drop=True), refused_df)
