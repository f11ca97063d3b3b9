"""Which rows are the same real company: normalised features, exact-key pairs and scored fuzzy pairs.

Pure functions from a DataFrame to DataFrames of pairs; the stage (resolve.py) decides what to merge.

* Names are compared on their *core*: NFKC (full-width -> half-width), lower case, bracketed parts,
  punctuation, spaces, a branch (``…有限公司北京分公司``) and the legal form (our own list in
  ``legal_forms.yml``: 有限公司, 有限责任公司, 股份有限公司, Ltd ...) removed. The work runs in Arrow
  compute (RE2), so a million names take about a second.
* Exact pairs: rows sharing a value of an ``identity.match_on`` field. A shared key is confirmed by the
  names (Jaro-Winkler on the cores, or a name missing on one side); a shared key with clearly different
  names is ambiguous (a data-entry slip, a recycled number) and goes to the steward, never merged.
* Fuzzy pairs: splink (DuckDB backend) with fixed Fellegi-Sunter parameters on name (Jaro-Winkler,
  which compares characters, where DuckDB's levenshtein counts UTF-8 bytes), phone, address, city and
  the credit code. Blocking on the name core's first and last characters, phone and address.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

NAME_CONFIRM = 0.80  # Jaro-Winkler on name cores from which a shared exact key counts as the same company
BLOCK_MAX = 200  # a blocking value shared by more rows than this (a switchboard, "有限公司") blocks nothing
ALL_PAIRS_MAX = 12  # exact-key groups up to this size compare every pair; larger ones each row to the first
PRIOR = 1e-6  # splink's probability that two random rows are the same company
PAIR_COLUMNS = ["l", "r", "score", "kind", "evidence"]

# Fellegi-Sunter parameters (m: share among true matches, u: among random pairs), one per level from the
# most specific down to "else". Fixed, not trained: a migration must give the same answer on every rerun,
# and EM on one project's data would drift. Calibrated on benchmarks/match_1m.py (see docs/steward.md).
NAME_LEVELS = (0.95, 0.88, 0.80)
NAME_M = [0.70, 0.15, 0.08, 0.04, 0.03]
NAME_U = [2e-6, 2e-5, 2e-4, 2e-3, 1 - 2.222e-3]
CODE_M, CODE_U = [0.95, 0.05], [1e-7, 1 - 1e-7]
PHONE_M, PHONE_U = [0.55, 0.45], [1e-5, 1 - 1e-5]
ADDR_LEVELS = (0.92,)
ADDR_M, ADDR_U = [0.45, 0.30, 0.25], [1e-5, 1e-4, 1 - 1.1e-4]
CITY_M, CITY_U = [0.95, 0.05], [0.05, 0.95]


@lru_cache(maxsize=1)
def _forms() -> tuple[list[str], list[str]]:
    import yaml

    data = yaml.safe_load((Path(__file__).parent / "legal_forms.yml").read_text("utf-8"))
    by_len = lambda xs: sorted({str(x).lower() for x in xs}, key=len, reverse=True)  # noqa: E731
    return by_len(data["suffixes"]), by_len(data["branches"])


def _alt(words: list[str]) -> str:
    import re

    return "|".join(re.escape(w) for w in words)


def name_core(values: pd.Series) -> pd.Series:
    """Company names reduced to what identifies them (see module docstring); empty -> None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    suffixes, branches = _forms()
    cjk = [s for s in suffixes if not s.isascii()]
    latin = [s.replace(" ", r"\s+") for s in suffixes if s.isascii()]
    arr = pa.array(values.astype(object).where(values.notna(), None), pa.string())
    a = pc.utf8_lower(pc.utf8_normalize(arr, "NFKC"))
    a = pc.replace_substring_regex(a, r"[(\[【][^)\]】]*[)\]】]", "")
    a = pc.replace_substring_regex(a, r"[\p{P}\p{S}]+", " ")
    latin_alt = "|".join(latin)
    for _ in range(2):  # "co., ltd." is two forms
        a = pc.replace_substring_regex(a, rf"\s+(?:{latin_alt})\s*$", "")
    a = pc.replace_substring_regex(a, r"\s+", "")
    a = pc.replace_substring_regex(a, rf"^(.+?(?:{_alt(cjk)})).+?(?:{_alt(branches)})$", r"\1")
    a = pc.replace_substring_regex(a, rf"(?:{_alt(branches)})$", "")
    a = pc.replace_substring_regex(a, rf"(?:{_alt(cjk)})$", "")
    a = pc.if_else(pc.equal(pc.utf8_length(a), 0), pa.scalar(None, pa.string()), a)
    return pd.Series(a.to_pylist(), index=values.index, dtype=object)


def _plain(values: pd.Series) -> pd.Series:
    """NFKC, lower case, no spaces or punctuation: for addresses and codes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(values.astype(object).where(values.notna(), None), pa.string())
    a = pc.replace_substring_regex(pc.utf8_lower(pc.utf8_normalize(arr, "NFKC")), r"[\s\p{P}\p{S}]+", "")
    a = pc.if_else(pc.equal(pc.utf8_length(a), 0), pa.scalar(None, pa.string()), a)
    return pd.Series(a.to_pylist(), index=values.index, dtype=object)


def features(frame: pd.DataFrame, compare, match_on: list[str]) -> pd.DataFrame:
    """One row per input row (positional ``uid``): name core, phone, address, city, code and exact keys."""
    n = len(frame)
    out = pd.DataFrame({"uid": np.arange(n, dtype=np.int64)})

    def col(name):
        if name and name in frame.columns:
            return frame[name].reset_index(drop=True)
        return pd.Series([None] * n, dtype=object)

    out["name"] = col(compare.name).astype(object)
    out["name_core"] = name_core(col(compare.name))
    out["phone"] = _plain(col(compare.phone)).values
    out["address"] = _plain(col(compare.address)).values
    out["city"] = _plain(col(compare.city)).values
    code = compare.credit_code or next((f for f in match_on if "credit" in f or "uscc" in f), None)
    out["credit_code"] = _plain(col(code)).str.upper().values
    for i, f in enumerate(match_on):
        out[f"key{i}"] = _plain(col(f)).str.upper().values  # keys compare case-blind, shown as codes are
    return out


def name_similarity(a, b) -> np.ndarray:
    """Jaro-Winkler on name cores, 1.0 where equal, nan where either is missing."""
    from rapidfuzz.distance import JaroWinkler

    sim = JaroWinkler.normalized_similarity
    return np.array([np.nan if x is None or y is None or x != x or y != y else sim(x, y) for x, y in zip(a, b)],
                    dtype=float)


# ----------------------------------------------------------------------------- exact keys


def exact_pairs(feat: pd.DataFrame, match_on: list[str]) -> pd.DataFrame:
    """Pairs of rows sharing a key value: ``kind`` ``exact`` (names agree) or ``ambiguous`` (they do not)."""
    frames = []
    for i, f in enumerate(match_on):
        key = feat[f"key{i}"]
        dup = key.notna() & key.duplicated(keep=False)
        if not dup.any():
            continue
        sub = pd.DataFrame({"uid": feat["uid"][dup].values, "k": key[dup].values})
        size = sub.groupby("k")["uid"].transform("size")
        small = sub[size <= ALL_PAIRS_MAX]
        pairs = small.merge(small, on="k", suffixes=("_l", "_r"))
        pairs = pairs[pairs["uid_l"] < pairs["uid_r"]]
        big = sub[size > ALL_PAIRS_MAX]
        if len(big):
            first = big.groupby("k")["uid"].transform("min")
            star = pd.DataFrame({"k": big["k"].values, "uid_l": first.values, "uid_r": big["uid"].values})
            pairs = pd.concat([pairs, star[star["uid_l"] != star["uid_r"]]])
        pairs = pairs.assign(field=f)
        frames.append(pairs[["uid_l", "uid_r", "k", "field"]])
    if not frames:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    pairs = pd.concat(frames, ignore_index=True)
    # one pair per row pair: all shared keys in its evidence
    pairs = pairs.groupby(["uid_l", "uid_r"], sort=False).agg(
        k=("k", lambda s: list(s)), field=("field", lambda s: list(s))).reset_index()
    l, r = pairs["uid_l"].to_numpy(), pairs["uid_r"].to_numpy()
    core = feat["name_core"].to_numpy(dtype=object)
    sim = name_similarity(core[l], core[r])
    codes = feat["credit_code"].to_numpy(dtype=object)
    cl, cr = codes[l], codes[r]
    clash = pd.notna(cl) & pd.notna(cr) & (cl != cr)
    agree = (np.isnan(sim) | (sim >= NAME_CONFIRM)) & ~clash
    names = feat["name"].to_numpy(dtype=object)
    ev = []
    for fields, keys, s, c, a, x, y in zip(pairs["field"], pairs["k"], sim, clash, agree, names[l], names[r]):
        shared = ", ".join(f"same {f} {k}" for f, k in zip(fields, keys))
        if c:
            ev.append(f"{shared}; different credit codes: not the same company without a steward")
        elif a:
            ev.append(shared + ("; a name is missing" if s != s else f"; names agree (Jaro-Winkler {s:.2f})"))
        else:
            ev.append(f"{shared}; names differ (Jaro-Winkler {s:.2f}: {x} / {y})")
    return pd.DataFrame({"l": l, "r": r, "score": np.where(agree, 1.0, np.nan_to_num(sim, nan=0.0)).round(4),
                         "kind": np.where(agree, "exact", "ambiguous"), "evidence": ev})


# ----------------------------------------------------------------------------- fuzzy (splink)


def _blockable(s: pd.Series) -> pd.Series:
    counts = s.map(s.value_counts())
    return s.where(counts <= BLOCK_MAX, None)


def _settings():
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    comparisons = [
        cl.JaroWinklerAtThresholds("name_core", list(NAME_LEVELS)).configure(m_probabilities=NAME_M,
                                                                             u_probabilities=NAME_U),
        cl.ExactMatch("credit_code").configure(m_probabilities=CODE_M, u_probabilities=CODE_U),
        cl.ExactMatch("phone").configure(m_probabilities=PHONE_M, u_probabilities=PHONE_U),
        cl.JaroWinklerAtThresholds("address", list(ADDR_LEVELS)).configure(m_probabilities=ADDR_M,
                                                                           u_probabilities=ADDR_U),
        cl.ExactMatch("city").configure(m_probabilities=CITY_M, u_probabilities=CITY_U),
    ]
    return SettingsCreator(
        link_type="dedupe_only", unique_id_column_name="uid", comparisons=comparisons,
        blocking_rules_to_generate_predictions=[block_on("b_pre"), block_on("b_suf"), block_on("b_phone"),
                                                block_on("b_addr")],
        probability_two_random_records_match=PRIOR, retain_matching_columns=True,
        retain_intermediate_calculation_columns=False)


def fuzzy_pairs(feat: pd.DataFrame, min_score: float, *, threads: int | None = None) -> pd.DataFrame:
    """Scored candidate pairs at or above ``min_score`` (splink ``match_probability``), with evidence."""
    if len(feat) < 2 or feat["name_core"].notna().sum() < 2:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    import duckdb
    from splink import DuckDBAPI, Linker

    core = feat["name_core"]
    inp = feat[["uid", "name_core", "credit_code", "phone", "address", "city"]].copy()
    inp["b_pre"] = _blockable(core.str[:4].where(core.str.len() >= 4, core))
    inp["b_suf"] = _blockable(core.str[-4:].where(core.str.len() >= 4, None))
    inp["b_phone"] = _blockable(inp["phone"])
    inp["b_addr"] = _blockable(inp["address"])
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    db = DuckDBAPI(con)
    linker = Linker(db.register(inp), _settings(), log_level=None)
    pred = linker.inference.predict(threshold_match_probability=min_score, warning_mode="never")
    res = pred.as_pandas_dataframe()
    con.close()
    if res.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    l, r = res["uid_l"].to_numpy(np.int64), res["uid_r"].to_numpy(np.int64)
    swap = l > r
    l, r = np.where(swap, r, l), np.where(swap, l, r)
    codes = inp["credit_code"].to_numpy(dtype=object)
    clash = pd.notna(codes[l]) & pd.notna(codes[r]) & (codes[l] != codes[r])
    res = res.assign(l=l, r=r)[~clash]
    return pd.DataFrame({"l": res["l"].to_numpy(), "r": res["r"].to_numpy(),
                         "score": res["match_probability"].astype(float).round(4).to_numpy(),
                         "kind": "fuzzy", "evidence": _evidence(res, core)})


def _evidence(res: pd.DataFrame, core: pd.Series) -> list[str]:
    cores = core.to_numpy(dtype=object)
    sims = name_similarity(cores[res["l"].to_numpy()], cores[res["r"].to_numpy()])
    out = []
    for s, gp, ga, gc, gk, nl, nr in zip(sims, res["gamma_phone"], res["gamma_address"], res["gamma_city"],
                                          res["gamma_credit_code"], res["name_core_l"], res["name_core_r"]):
        parts = [f"name {s:.2f} ({nl} / {nr})" if s == s else "name missing"]
        parts.append({1: "same phone", 0: "different phones"}.get(int(gp), "phone missing"))
        parts.append({2: "same address", 1: "similar address", 0: "different addresses"}.get(int(ga), "address missing"))
        parts.append({1: "same city", 0: "different cities"}.get(int(gc), "city missing"))
        parts.append({1: "same credit code", 0: "different credit codes"}.get(int(gk), "credit code missing"))
        out.append("; ".join(parts))
    return out
