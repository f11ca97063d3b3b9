"""Reconcile's column-wise comparison (``compare.compare``) gives what the previous row-frame path gave:
the same problems (so the same mismatches CSV, byte for byte), checksums and counts."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from crmbridge.csvout import write_frame
from crmbridge.migrations.compare import compare, field_side
from crmbridge.migrations.hashing import canonical_column
from crmbridge.migrations.reconcile import SourceSide, _checksum, _normed

COLUMNS = ["external_id", "kind", "field", "source", "org", "sf_id"]


def _problem(key, kind, sf_id, field="", source="", org="") -> dict:
    return {"external_id": key, "kind": kind, "field": field, "source": source, "org": org, "sf_id": sf_id}


def previous(df, side_normed, keys, lowered, per_record, loaded_keys, org_rows, ext, cols):
    """The comparison as reconcile_step did it before (commit af2bfac), on the same inputs."""
    org = pd.DataFrame(org_rows, columns=["Id", ext] + cols, dtype=object)
    org["_k"] = [k.lower() for k in _normed(org[ext])]
    holders = org["_k"].value_counts()
    dup_keys = set(holders.index[holders > 1])
    org_first = org.drop_duplicates("_k").set_index("_k")
    keep = np.fromiter((k in loaded_keys for k in keys), dtype=bool, count=len(keys))
    kept = np.flatnonzero(keep)
    src = df[keep].assign(_key=pd.Series([keys[i] for i in kept], index=df.index[keep], dtype=object), _pos=kept)
    src = src.assign(_k=pd.Series([lowered[i] for i in kept], index=src.index, dtype=object))
    src = src.set_index("_k")
    org_keys = set(org_first.index)
    in_org = np.fromiter((k in org_keys for k in src.index), dtype=bool, count=len(src))
    sf_ids = per_record["sf_id"]
    problems = [_problem(key, "missing_in_org", sf_ids.get(key)) for key in src["_key"][~in_org]]
    found = src[in_org]
    dup_idx = [k for k in found.index if k in dup_keys]
    if dup_idx:
        ids_by_key = org[org["_k"].isin(dup_keys)].groupby("_k")["Id"].agg(";".join)
        problems += [_problem(found.at[k, "_key"], "duplicate_in_org", sf_ids.get(found.at[k, "_key"]),
                              org=ids_by_key[k]) for k in dup_idx]
    org_first = org_first.reindex(found.index)
    fields_out = {}
    pos = found["_pos"].tolist()
    for f in cols:
        a = pd.Series([side_normed[f][i] for i in pos] if f in side_normed else [""] * len(found), index=found.index,
                      dtype=object)
        b = pd.Series(_normed(org_first[f]), index=found.index, dtype=object)
        diff = a != b
        for k in diff[diff].index:
            problems.append(_problem(found.at[k, "_key"], "field_mismatch", org_first.at[k, "Id"], f, a[k], b[k]))
        fields_out[f] = {"source_checksum": _checksum(a), "org_checksum": _checksum(b), "mismatches": int(diff.sum())}
    return problems, fields_out, len(found), int((~in_org).sum()), len(dup_idx)


TRICKY = ["", "  ", None, "nan", "None", "Acme", "acme", "１２３", "123", "123.0", "0123", "000123", "1e5", "-5", "+7",
          ".5", "0.50", "1234.0000001", "北京市朝阳区", "上海", "😀 emoji", "=1+1", "+SUM(A1)", "@cmd", "-2+3",
          "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000+0000", "2024-01-02T11:04:05+08:00", "2024-01-02",
          "true", "false", "True", "1", "0", "a\x1fb", "a b", "tab\there", "line\nbreak", "２０２４", "٣", "12\n",
          "021-6234 5678", "\u3000全角空格", "ＡＢＣ", "x" * 300, "+8675534849258", "37505000", "12345678901234567"]
CELLS = TRICKY + [37505000.0, 0.5, float("nan"), True, False, 1, 5, pd.NA]  # the load file's cells of other types
ORG_ONLY = ["1234.0", "0.5", "TRUE", "2024-01-02T03:04:05.000Z", "abc", "ACME", "Acme ", None, "", True, 1, 1234.0,
            "37505000.0", "5.0", "1.0", "12345678901234567.0"]


def _case(seed: int, n: int, cols: list[str]):
    rnd = random.Random(seed)
    ext = "Legacy_Id__c"
    raw_keys = [f"K{i:05d}" if rnd.random() < 0.9 else f"k-{i}-ß" for i in range(n)]
    df = pd.DataFrame({ext: raw_keys, **{f: [rnd.choice(CELLS) for _ in range(n)] for f in cols[:-1]}}, dtype=object)
    df["_rows"] = [[i] for i in range(n)]
    keys = canonical_column(df[ext].to_numpy(dtype=object))
    lowered = [k.lower() for k in _normed(keys)]
    side_normed = {f: _normed(df[f]) for f in cols if f in df.columns}
    actions = [rnd.choice(["created", "updated", "unchanged", "unchanged", "failed"]) for _ in range(n)]
    per_record = pd.DataFrame({"external_id": keys, "action": actions,
                               "sf_id": [None if a == "failed" else f"001{i:012d}" for i, a in enumerate(actions)]}
                              ).set_index("external_id")
    loaded = set(per_record.index[per_record["action"].isin(["created", "updated", "unchanged"])])
    org_rows = []
    for i, k in enumerate(keys):
        if k not in loaded or rnd.random() < 0.05:
            continue  # not loaded, or deleted in the org since
        holders = 2 if rnd.random() < 0.05 else 1  # a duplicate holder, perhaps in another case
        for h in range(holders):
            key = k if rnd.random() < 0.7 else (k.upper() if rnd.random() < 0.5 else k.lower())
            vals = []
            for f in cols:
                src = df.at[i, f] if f in df.columns else None
                src = None if src is pd.NA else src  # the org hands back text, JSON scalars or null
                r = rnd.random()
                normed = side_normed[f][i] if f in side_normed else ""
                vals.append(src if r < 0.4 else normed if r < 0.55 else normed + ".0" if r < 0.7
                            else rnd.choice(ORG_ONLY) if r < 0.85 else rnd.choice(TRICKY))
            org_rows.append((f"001X{i:08d}{h}", key, *vals))
    rnd.shuffle(org_rows)
    return df, ext, keys, lowered, side_normed, per_record, loaded, org_rows


def _csv_bytes(problems, tmp_path, name) -> bytes:
    out = tmp_path / name
    write_frame(pd.DataFrame(problems, columns=COLUMNS), out)
    return out.read_bytes()


@pytest.mark.parametrize("seed,n", [(1, 300), (2, 1_500), (3, 4_000)])
def test_column_wise_comparison_equals_the_previous_path(tmp_path, seed, n):
    cols = ["Name", "Phone", "AnnualRevenue", "Founded__c", "Active__c", "Description", "Not_Mapped__c"]
    df, ext, keys, lowered, side_normed, per_record, loaded, org_rows = _case(seed, n, cols)
    side = SourceSide((), keys, lowered, {f: field_side(df[f].to_numpy(dtype=object), v, _normed)
                                          for f, v in side_normed.items()})
    lower_keys = [k.lower() for k in _normed([r[1] for r in org_rows])]
    new = compare(side, loaded, per_record["sf_id"], org_rows, cols, _normed, lower_keys)
    problems, fields, found, missing, dups = previous(df, side_normed, keys, lowered, per_record, loaded, org_rows,
                                                       ext, cols)
    assert (new.found, new.missing, new.duplicates) == (found, missing, dups)
    assert new.fields == fields
    assert new.problems == problems
    assert _csv_bytes(new.problems, tmp_path, "new.csv") == _csv_bytes(problems, tmp_path, "old.csv")
    kinds = {p["kind"] for p in problems}
    assert missing and kinds == {"missing_in_org", "duplicate_in_org", "field_mismatch"}  # the case covers each
    assert sum(v["mismatches"] for v in fields.values()) > 0


def test_an_org_cell_equal_to_a_source_form_that_norm_changes_is_normalised():
    # the source's comparison form is "1234"; an org cell "1234" is equal; but were the source form not a
    # fixed point of norm, an equal org cell would have to be normalised: the fast path must check that
    side = SourceSide((), ["K1", "K2"], ["k1", "k2"], {"F": field_side(["+1234", 0.5], ["1234", "0.5"], _normed)})
    f = side.fields["F"]
    assert f.fixed.tolist() == [True, True] and f.alt[0] == "+1234" and f.alt[1] is not 0.5
    fake = SourceSide((), ["K1", "K2"], ["k1", "k2"],
                      {"F": field_side([None, "x"], ["1234.0", "x"], lambda v: list(v))})
    fake = SourceSide((), fake.keys, fake.lowered,
                      {"F": type(f)(fake.fields["F"].normed, fake.fields["F"].hashes, np.array([False, True]),
                                    np.array([None, None], dtype=object))})
    per = pd.Series(["a", "b"], index=["K1", "K2"])
    res = compare(fake, {"K1", "K2"}, per, [("I1", "K1", "1234.0"), ("I2", "K2", "x")], ["F"], _normed, ["k1", "k2"])
    assert [(p["source"], p["org"]) for p in res.problems] == [("1234.0", "1234")]


def test_an_integer_fixed_point_of_norm_with_dot_zero_normalises_to_itself():
    # what field_side relies on to take "<integer>.0" from the org as equal without norm
    rnd = random.Random(7)
    values = ["0", "-5", "999999999999999", "9999999999999999", "9007199254740993", "12345678901234567",
              "1" + "0" * 30, "-" + "9" * 25, "٣", "１２"]
    values += [str(rnd.randrange(-10 ** rnd.randrange(1, 40), 10 ** rnd.randrange(1, 40))) for _ in range(3_000)]
    forms = _normed(values)
    side = field_side(forms, forms, _normed)  # the load sent the forms: the org hands back "<it>.0"
    ints = [i for i, a in enumerate(side.normed) if isinstance(side.alt[i], str) and side.alt[i] == a + ".0"]
    assert len(ints) > 2_000 and all(side.fixed[i] for i in ints)
    assert side.fixed.tolist() == [f == a for f, a in zip(_normed(forms), forms)]  # short integers: no norm run
    dotted = [side.normed[i] + ".0" for i in ints]
    assert _normed(dotted) == [side.normed[i] for i in ints]
    per = pd.Series(["a"], index=["K1"])
    for org, expect in (("5.0", []), ("5.00", []), ("5.5", [("5", "5.5")]), ("+5", [])):
        one = SourceSide((), ["K1"], ["k1"], {"F": field_side(["5"], ["5"], _normed)})
        res = compare(one, {"K1"}, per, [("I1", "K1", org)], ["F"], _normed, ["k1"])
        assert [(p["source"], p["org"]) for p in res.problems] == expect
