"""``finish_rows`` with each batch's lineage texts taken once (``merge.Lineage``) and the candidate keys of
pass 1 reused, against the previous ``finish_rows`` and ``combine`` (kept below as the reference): the
same records (values and dtypes), quarantine, counts and reasons, on awkward rows with duplicates within
the batch and from other batches, missing keys and names, golden records standing for several source
rows, rows without a ``_source_key`` column, and rows a filter leaves out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crmbridge.mappings.engine import (OrgRefs, _per_source_row, _required, finish_rows, map_rows, reason_counts)
from crmbridge.mappings.keyindex import KeyIndex
from crmbridge.mappings.merge import _field_order
from crmbridge.mappings.models import load_mappings
from crmbridge.mappings.textops import count_char, strip_text
from crmbridge.mappings.transforms import as_text, is_missing

from .test_stream_early_finish import TEMPLATES, awkward_rows, self_lookup_step


def source_rows(df):
    """``merge.source_rows`` before this change."""
    ids = as_text(df["_row_id"])
    if "_merged_row_ids" in df.columns:
        merged = as_text(df["_merged_row_ids"])
        ids = merged.where(~is_missing(merged), ids)
    return ids


def _reference_combine(loaded, df, out, reasons, duplicated):
    """``merge.combine`` before this change."""
    step = loaded.step
    ext = step.external_id
    key = strip_text(out[ext])
    out = out.assign(**{ext: key})
    dup_mask = pd.Series(np.asarray(duplicated(key), dtype=bool), index=key.index)
    if dup_mask.any():
        dup_rows = dup_mask.index[dup_mask.to_numpy()]
        reasons.add(pd.Series(df.index.isin(dup_rows), index=df.index),
                    (f"duplicate_external_id: {ext}=" + key.fillna("")).reindex(df.index, fill_value=""))
    records = out[~dup_mask].copy()
    assert not any(spec.aggregate for spec in step.fields.values())  # (no aggregate in these steps)
    merged = source_rows(df.loc[records.index])
    rows_out = count_char(merged, ";") + len(records) if len(records) else 0
    records["_row_id"] = as_text(df.loc[records.index, "_row_id"]).values
    records["_merged_row_ids"] = merged.values
    records["_entity"] = step.entity
    records["_source_key"] = (as_text(df.loc[records.index, "_source_key"]).values
                              if "_source_key" in df.columns else records[ext].values)
    records["_step"] = loaded.name
    ordered = [c for c in _field_order(loaded) if c in records.columns]
    lineage = ["_row_id", "_merged_row_ids", "_entity", "_source_key", "_step"]
    return records[ordered + lineage], dup_mask, rows_out


def _reference_finish(loaded, part, duplicates):
    """``engine.finish_rows`` before this change."""
    df, out, reasons = part.df, part.out, part.reasons
    ok_idx = reasons.text.index[~reasons.bad]
    records, _, rows_out = _reference_combine(loaded, df, out.loc[out.index.intersection(ok_idx)], reasons,
                                              duplicates.contains)
    records, rows_out = _required(loaded, df, records, rows_out, reasons)
    records = records.reset_index(drop=True)
    bad = reasons.bad.to_numpy()
    quarantine = _per_source_row(df[bad].copy())
    quarantine["_reason"] = reasons.text[bad].reindex(quarantine.index).to_numpy()
    quarantine["_step"] = loaded.name
    rows_in = (count_char(source_rows(df), ";") + len(df)) if len(df) else 0
    return records, quarantine.reset_index(drop=True), rows_in, rows_out, reason_counts(quarantine["_reason"].tolist())


def _rows(n: int, seed: int, lineage: str) -> pd.DataFrame:
    df = awkward_rows(n, seed)
    df["_row_id"] = [f"src:{i + 2}" for i in range(n)]
    df.loc[df.index % 37 == 4, "customer_no"] = [" ", "\u3000", "", "\t\x1c"][seed % 4]  # blank keys
    if lineage == "golden":  # resolve's golden records: some stand for several source rows
        df["_merged_row_ids"] = [f"src:{i + 2};other:{i}" if i % 5 == 1 else (None if i % 7 else "") for i in range(n)]
        df["_source_key"] = df["customer_no"]
    elif lineage == "plain":
        df["_source_key"] = [None if i % 11 == 0 else f"K{i}" for i in range(n)]
    return df.astype({c: "str" for c in ("_row_id", "_source_key") if c in df.columns})


def _steps(tmp_path):
    account = load_mappings(TEMPLATES).by_name("Account")
    return {"template": account, "self_lookup": self_lookup_step(tmp_path)}


REFS = OrgRefs(owners={"R001": "ann@x.cn", "R002": "bob@x.cn"},
               users={"ann@x.cn": "005000000000000001", "admin@sandbox.crmbridge": "005000000000000009"})


@pytest.mark.parametrize("lineage", ["golden", "plain", "none"])
@pytest.mark.parametrize("step", ["template", "self_lookup"])
@pytest.mark.parametrize("others", [False, True])
def test_finish_rows_equals_the_previous_code(tmp_path, lineage, step, others):
    loaded = _steps(tmp_path)[step]
    batch = _rows(600, 3, lineage)
    parents = {("account", "Legacy_Id__c"): ParentKeysFor(batch)} if step == "self_lookup" else None
    new, ref = (map_rows(loaded, batch, refs=REFS, parents=parents) for _ in range(2))
    keys = new.candidate_keys()
    extra = ["C00010", "C00020"] if others else []  # keys other batches hold too
    duplicates = KeyIndex.of(pd.concat([keys[keys.duplicated(keep=False)], pd.Series(extra, dtype=object)]))
    got = finish_rows(loaded, new, duplicates)
    records, quarantine, rows_in, rows_out, reasons = _reference_finish(loaded, ref, duplicates)
    pd.testing.assert_frame_equal(got.records, records, check_exact=True)
    pd.testing.assert_frame_equal(got.quarantine, quarantine, check_exact=True)
    assert (got.rows_in, got.rows_out, got.reasons) == (rows_in, rows_out, reasons)
    assert new.reasons.text.tolist() == ref.reasons.text.tolist()
    assert len(got.records) and len(got.quarantine)
    # what lets _required skip the external ID: no record's key is missing (rows without one were quarantined)
    assert not is_missing(as_text(got.records[loaded.step.external_id])).any()
    assert "missing_external_id" in " ".join(got.reasons)


def test_every_row_a_record_takes_the_batch_as_it_is(tmp_path):
    loaded = _steps(tmp_path)["template"]
    batch = _rows(400, 5, "golden")
    batch["customer_no"] = [f"K{i:05d}" for i in range(400)]
    batch["name"] = "甲"
    batch["status"] = "活跃"
    batch["sales_rep"] = "R001"
    batch["annual_revenue"] = "1,000"
    new, ref = (map_rows(loaded, batch, refs=REFS) for _ in range(2))
    got = finish_rows(loaded, new, KeyIndex.of([]))
    records, quarantine, rows_in, rows_out, _ = _reference_finish(loaded, ref, KeyIndex.of([]))
    assert len(got.records) == 400 and got.quarantine.empty
    pd.testing.assert_frame_equal(got.records, records, check_exact=True)
    assert (got.rows_in, got.rows_out) == (rows_in, rows_out) == (480, 480)


def ParentKeysFor(batch):
    from crmbridge.mappings.engine import ParentKeys

    return ParentKeys(KeyIndex.of(batch["customer_no"].dropna().head(100)), KeyIndex.of(["C00003", "C99999"]))


@pytest.mark.parametrize("unique", [False, True])
def test_the_stream_mapped_keys_are_the_written_records_keys(tmp_path, unique):
    """The mapped keys handed to the children: a batch whose candidates all became records gives its candidate
    keys (computed in pass 1) as they are, the others the keys of their records."""
    import pyarrow.parquet as pq

    from crmbridge.mappings.stream import map_step_stream

    loaded = _steps(tmp_path)["template"]
    rows = _rows(900, 8, "plain")
    if unique:
        rows["customer_no"] = [f"K{i:05d}" for i in range(900)]
        rows[["name", "status", "sales_rep", "annual_revenue"]] = ["甲", "活跃", "R001", "1,000"]
    res = map_step_stream(loaded, lambda: [rows.iloc[i:i + 200] for i in range(0, 900, 200)], refs=REFS,
                          records_path=tmp_path / "r.parquet", quarantine_path=tmp_path / "q.csv", spill=tmp_path / "s")
    written = pq.read_table(tmp_path / "r.parquet").column("Legacy_Id__c").to_pylist()
    assert list(res.mapped) == sorted(set(written), key=lambda k: k.encode() + b"\x01")
    assert (res.rows_quarantined == 0) == unique


@pytest.mark.parametrize("lineage", ["golden", "plain", "none"])
def test_a_batch_with_no_record_left(tmp_path, lineage):
    """Every key held elsewhere too: no record; the empty records frame has the previous dtypes."""
    loaded = _steps(tmp_path)["template"]
    batch = _rows(300, 9, lineage)
    new, ref = (map_rows(loaded, batch, refs=REFS) for _ in range(2))
    duplicates = KeyIndex.of(new.candidate_keys())
    got = finish_rows(loaded, new, duplicates)
    records, quarantine, rows_in, rows_out, reasons = _reference_finish(loaded, ref, duplicates)
    assert got.records.empty
    pd.testing.assert_frame_equal(got.records, records, check_exact=True)
    pd.testing.assert_frame_equal(got.quarantine, quarantine, check_exact=True)
    assert (got.rows_in, got.rows_out, got.reasons) == (rows_in, rows_out, reasons)
