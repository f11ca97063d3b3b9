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
NAME_U = [1e-5, 1e-4, 5e-4, 3e-3, 1 - 3.61e-3]
CODE_M, CODE_U = [0.95, 0.05], [1e-7, 1 - 1e-7]
PHONE_M, PHONE_U = [0.55, 0.45], [1e-5, 1 - 1e-5]
ADDR_LEVELS = (0.92,)
ADDR_M, ADDR_U = [0.45, 0.30, 0.25], [1e-4, 5e-4, 1 - 6e-4]  # office buildings hold many companies
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


def _arrow(values: pd.Series):
    """The column as an Arrow string array (free for Parquet-read text columns)."""
    import pyarrow as pa

    try:
        arr = pa.array(values, pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array(values.astype(object).where(values.notna(), None).map(
            lambda v: v if v is None else str(v)), pa.large_string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _nfkc_lower(a):
    """NFKC only where a value holds something else than ASCII and common CJK (utf8proc is the slow part)."""
    import pyarrow.compute as pc

    other = pc.invert(pc.fill_null(pc.string_is_ascii(a), True))
    if pc.any(other).as_py():
        odd = pc.and_(other, pc.fill_null(pc.match_substring_regex(a, r"[^\x00-\x7F\x{4E00}-\x{9FFF}]"), False))
        if pc.any(odd).as_py():
            a = pc.if_else(odd, pc.utf8_normalize(a, "NFKC"), a)
    return pc.utf8_lower(a)


def _on_subset(a, mask, fn):
    """``fn`` applied only to the values where ``mask`` holds (most names need no bracket or branch work)."""
    import pyarrow.compute as pc

    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return a
    return pc.replace_with_mask(a, mask, fn(pc.filter(a, mask)))


def _distinct(fn):
    """Run ``fn`` (Arrow array -> Arrow array) once per distinct value when values repeat (cities, codes)."""
    import pyarrow.compute as pc

    def wrapper(a):
        sample = a.slice(0, 20_000)
        if pc.count_distinct(sample).as_py() > len(sample) // 2:  # mostly distinct: encoding costs more
            return fn(a)
        enc = pc.dictionary_encode(a)
        return pc.take(fn(enc.dictionary), enc.indices)

    return wrapper


def _series(a, index) -> pd.Series:
    import pyarrow as pa
    import pyarrow.compute as pc

    a = pc.if_else(pc.equal(pc.utf8_length(a), 0), pa.scalar(None, a.type), a)
    return pd.Series(a.to_pandas(), index=index)


def name_core(values: pd.Series) -> pd.Series:
    """Company names reduced to what identifies them (see module docstring); empty -> missing."""
    return _series(_distinct(_core)(_arrow(values)), values.index)


def _core(a):
    import pyarrow.compute as pc

    suffixes, branches = _forms()
    cjk = [s for s in suffixes if not s.isascii()]
    latin = "|".join(s.replace(" ", r"\s+") for s in suffixes if s.isascii())
    a = _nfkc_lower(a)
    brackets = pc.or_(pc.match_substring(a, "("), pc.or_(pc.match_substring(a, "["), pc.match_substring(a, "【")))
    a = _on_subset(a, brackets, lambda x: pc.replace_substring_regex(x, r"[(\[【][^)\]】]*[)\]】]", ""))

    def latin_forms(x):
        x = pc.replace_substring_regex(x, r"[\p{P}\p{S}]+", " ")
        for _ in range(2):  # "co., ltd." is two forms
            x = pc.replace_substring_regex(x, rf"\s+(?:{latin})\s*$", "")
        return x

    a = _on_subset(a, pc.string_is_ascii(a), latin_forms)
    a = pc.replace_substring_regex(a, r"[\s\p{P}\p{S}]+", "")
    branch = pc.or_(pc.match_substring(a, "分"), pc.or_(pc.match_substring(a, "办事处"), pc.match_substring(a, "营业部")))
    a = _on_subset(a, branch, lambda x: pc.replace_substring_regex(pc.replace_substring_regex(
        x, rf"^(.+?(?:{_alt(cjk)})).+?(?:{_alt(branches)})$", r"\1"), rf"(?:{_alt(branches)})$", ""))
    return pc.replace_substring_regex(a, rf"(?:{_alt(cjk)})$", "")


def _plain(values: pd.Series) -> pd.Series:
    """NFKC, lower case, no spaces or punctuation: for addresses and codes."""
    import pyarrow.compute as pc

    a = _arrow(values)
    if pc.all(pc.fill_null(pc.ascii_is_alnum(a), True)).as_py():  # codes as validate left them: nothing to do
        return _series(pc.utf8_lower(a), values.index)
    plain = _distinct(lambda a: pc.replace_substring_regex(_nfkc_lower(a), r"[\s\p{P}\p{S}]+", ""))
    return _series(plain(a), values.index)


def features(frame: pd.DataFrame, compare, match_on: list[str]) -> pd.DataFrame:
    """One row per input row (positional ``uid``): name core, phone, address, city, code and exact keys."""
    n = len(frame)
    out = pd.DataFrame({"uid": np.arange(n, dtype=np.int64)})

    def col(name):
        if name and name in frame.columns:
            return frame[name].reset_index(drop=True)
        return pd.Series([None] * n, dtype=object)

    out["name"] = col(compare.name).values
    out["name_core"] = name_core(col(compare.name)).values
    out["phone"] = _plain(col(compare.phone)).values
    out["address"] = _plain(col(compare.address)).values
    out["city"] = _plain(col(compare.city)).values
    code = compare.credit_code or next((f for f in match_on if "credit" in f or "uscc" in f), None)
    out["credit_code"] = _plain(col(code)).str.upper().values
    for i, f in enumerate(match_on):  # keys compare case-blind, shown upper case as codes are written
        out[f"key{i}"] = _plain(col(f)).str.upper().values
    return out


def name_similarity(a, b) -> np.ndarray:
    """Jaro-Winkler on name cores, 1.0 where equal, nan where either is missing."""
    from rapidfuzz.distance import JaroWinkler

    sim = JaroWinkler.normalized_similarity
    return np.array([np.nan if x is None or y is None or x != x or y != y else sim(x, y) for x, y in zip(a, b)],
                    dtype=float)


# ----------------------------------------------------------------------------- exact keys


def exact_pairs(feat: pd.DataFrame, match_on: list[str], record_key: str | None = None) -> pd.DataFrame:
    """Pairs of rows sharing a key value: ``kind`` ``exact`` or ``ambiguous``.

    A shared key is confirmed when the names agree (or one is missing), when the rows share two keys
    (credit code *and* customer number), or when the key is the record key itself (``record_key``: the
    departments number the same customer alike, so a different name there is a rename, shown in the
    evidence). A lone shared credit code under another company's name is ambiguous (a mistyped code).
    Two different credit codes are always ambiguous."""
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
    pairs = pd.concat(frames, ignore_index=True).sort_values(["uid_l", "uid_r"], kind="stable")
    # one line per row pair, every shared key in its evidence
    l_all, r_all = pairs["uid_l"].to_numpy(np.int64), pairs["uid_r"].to_numpy(np.int64)
    starts = np.flatnonzero(np.r_[True, (l_all[1:] != l_all[:-1]) | (r_all[1:] != r_all[:-1])])
    ends = np.r_[starts[1:], len(l_all)].tolist()
    ks, fs = pairs["k"].astype(str).tolist(), pairs["field"].tolist()
    pairs = pd.DataFrame({"uid_l": l_all[starts], "uid_r": r_all[starts],
                          "k": [ks[a:b] for a, b in zip(starts.tolist(), ends)],
                          "field": [fs[a:b] for a, b in zip(starts.tolist(), ends)]})
    l, r = pairs["uid_l"].to_numpy(), pairs["uid_r"].to_numpy()
    at = lambda col, pos: feat[col].iloc[pos].to_numpy(dtype=object)  # noqa: E731  (only the paired rows)
    sim = name_similarity(at("name_core", l), at("name_core", r))
    cl, cr = at("credit_code", l), at("credit_code", r)
    clash = pd.notna(cl) & pd.notna(cr) & (cl != cr)
    strong = np.array([len(f) >= 2 or record_key in f for f in pairs["field"]], dtype=bool)
    named = np.isnan(sim) | (sim >= NAME_CONFIRM)
    agree = (named | strong) & ~clash
    ev = []
    for fields, keys, s, c, a, x, y in zip(pairs["field"], pairs["k"], sim, clash, agree, at("name", l), at("name", r)):
        shared = ", ".join(f"same {f} {k}" for f, k in zip(fields, keys))
        if c:
            ev.append(f"{shared}; different credit codes: not the same company without a steward")
        elif a and (s != s or s >= NAME_CONFIRM):
            ev.append(shared + ("; a name is missing" if s != s else f"; names agree (Jaro-Winkler {s:.2f})"))
        elif a:
            ev.append(f"{shared}; names differ (Jaro-Winkler {s:.2f}: {x} / {y}), the shared keys decide")
        else:
            ev.append(f"{shared}; names differ (Jaro-Winkler {s:.2f}: {x} / {y})")
    return pd.DataFrame({"l": l, "r": r, "score": np.where(agree, 1.0, np.nan_to_num(sim, nan=0.0)).round(4),
                         "kind": np.where(agree, "exact", "ambiguous"), "evidence": ev})


# ----------------------------------------------------------------------------- fuzzy (splink)


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


def _capped(arr):
    """A blocking key, or null where more than BLOCK_MAX rows share it (counted on Arrow dictionary codes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(arr)
    idx = pc.fill_null(enc.indices, -1).to_numpy()
    counts = np.bincount(idx[idx >= 0], minlength=max(1, len(enc.dictionary)))
    keep = (idx >= 0) & (counts[np.maximum(idx, 0)] <= BLOCK_MAX)
    return pc.if_else(pa.array(keep), arr, pa.scalar(None, arr.type))


def _match_input(feat: pd.DataFrame):
    """The compared columns and the blocking keys (first and last four characters of the name core,
    phone, address with the core's last character) as one Arrow table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = {c: pa.array(feat[c], pa.string()) for c in ("name_core", "credit_code", "phone", "address", "city")}
    core = cols["name_core"]
    long = pc.fill_null(pc.greater_equal(pc.utf8_length(core), 4), False)
    cols["b_pre"] = _capped(pc.utf8_slice_codeunits(core, 0, 4))
    cols["b_suf"] = _capped(pc.if_else(long, pc.utf8_slice_codeunits(core, -4), pa.scalar(None, pa.string())))
    cols["b_phone"] = _capped(cols["phone"])
    # same address *and* same last character of the name core: an office building holds many companies
    cols["b_addr"] = _capped(pc.binary_join_element_wise(cols["address"], pc.utf8_slice_codeunits(core, -1), "|"))
    return pa.table({"uid": pa.array(feat["uid"], pa.int64()), **cols})


def fuzzy_pairs(feat: pd.DataFrame, min_score: float, *, threads: int | None = None) -> pd.DataFrame:
    """Scored candidate pairs at or above ``min_score`` (splink ``match_probability``), with evidence."""
    if len(feat) < 2 or feat["name_core"].notna().sum() < 2:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    import duckdb
    from splink import DuckDBAPI, Linker

    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        db = DuckDBAPI(con)
        linker = Linker(db.register(_match_input(feat)), _settings(), log_level=None)
        pred = linker.inference.predict(threshold_match_probability=min_score, warning_mode="never")
        res = pred.as_pandas_dataframe()
    finally:
        con.close()
    if res.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    l, r = res["uid_l"].to_numpy(np.int64), res["uid_r"].to_numpy(np.int64)
    l, r = np.minimum(l, r), np.maximum(l, r)
    codes = feat["credit_code"]
    cl, cr = codes.iloc[l].to_numpy(dtype=object), codes.iloc[r].to_numpy(dtype=object)
    clash = pd.notna(cl) & pd.notna(cr) & (cl != cr)
    res = res.assign(l=l, r=r)[~clash]
    return pd.DataFrame({"l": res["l"].to_numpy(), "r": res["r"].to_numpy(),
                         "score": res["match_probability"].astype(float).round(4).to_numpy(),
                         "kind": "fuzzy", "evidence": _evidence(res, feat["name_core"])})


def _evidence(res: pd.DataFrame, core: pd.Series) -> list[str]:
    left = core.iloc[res["l"].to_numpy()].to_numpy(dtype=object)
    right = core.iloc[res["r"].to_numpy()].to_numpy(dtype=object)
    sims = name_similarity(left, right)
    out = []
    for s, gp, ga, gc, gk, nl, nr in zip(sims, res["gamma_phone"], res["gamma_address"], res["gamma_city"],
                                          res["gamma_credit_code"], left, right):
        parts = [f"name {s:.2f} ({nl} / {nr})" if s == s else "name missing"]
        parts.append({1: "same phone", 0: "different phones"}.get(int(gp), "phone missing"))
        parts.append({2: "same address", 1: "similar address", 0: "different addresses"}.get(int(ga), "address missing"))
        parts.append({1: "same city", 0: "different cities"}.get(int(gc), "city missing"))
        parts.append({1: "same credit code", 0: "different credit codes"}.get(int(gk), "credit code missing"))
        out.append("; ".join(parts))
    return out
