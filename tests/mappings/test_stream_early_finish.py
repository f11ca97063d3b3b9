"""The map stream finishes each batch as soon as it is mapped (when it can read its batches again) and
finishes again only the batches holding a key another batch holds too. Its files must be byte for byte
those of finishing every batch after all keys are known (what it does with batches it cannot read
again, the previous way) and those of ``map_step`` on the whole frame, on generated awkward rows:
keys repeated within a batch, in the next batch and far away, keys that only match after trim and
NFKC, missing values, CJK and HTML text, numbers that fail to parse, an empty batch, a self-lookup
whose parent this very step quarantines."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from crmbridge.mappings.engine import OrgRefs, ParentKeys, map_step
from crmbridge.mappings.models import load_mappings
from crmbridge.mappings.output import write_quarantine, write_records
from crmbridge.mappings.stage import steward_view
from crmbridge.mappings.stream import map_step_stream, quarantined_keys

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "project" / "mappings"
COLUMNS = ["customer_no", "name", "credit_code", "phone", "address", "city", "province", "postal_code", "country",
           "industry", "status", "sales_rep", "annual_revenue", "parent_no"]


def awkward_rows(n: int = 240, seed: int = 14) -> pd.DataFrame:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        no = f"C{i:05d}"
        if i % 17 == 3:
            no = f"C{i - 1:05d}"  # the row before's key: same batch or the next one
        if i % 53 == 7:
            no = "C00001"  # far away from its first holder
        if i % 29 == 5:
            no = f" Ｃ{i:05d} "  # one key once trimmed and NFKC'd
        rows.append([
            None if i % 41 == 0 else no,
            rnd.choice(["上海明远贸易有限公司", "<b>北京华信</b>", None, "  深圳 腾达  ", "Acme &amp; Co", "甲"]),
            rnd.choice([None, "91310000MA1FL2XQ3A", "ｍａ1fl"]),
            rnd.choice(["021-62345678", "bad", None, "+86 138 0013 8000", "（010）12345678"]),
            rnd.choice([None, "浦东新区世纪大道100号"]), rnd.choice(["上海", "北京", None, "深圳"]),
            None, rnd.choice(["２００１２０", None]), rnd.choice(["CN", "中国", "China", None, "火星"]),
            rnd.choice(["制造业", "IT", None, "未知"]), rnd.choice(["活跃", "潜在", "停用", "prospect", None]),
            rnd.choice(["R001", "R002", "R009", None]),
            rnd.choice(["1,000", "x", None, "１２３", "¥1,234.50", ""]),
            rnd.choice([None, None, "C00001", f"C{rnd.randrange(n):05d}", "C99999"]),
        ])
    return pd.DataFrame(rows, columns=COLUMNS, dtype=object)


def self_lookup_step(tmp_path: Path):
    (tmp_path / "maps").mkdir(exist_ok=True)
    (tmp_path / "maps" / "account.yml").write_text(
        "steps:\n  Account:\n    entity: customers\n    object: Account\n    external_id: Legacy_Id__c\n"
        "    fields:\n      Legacy_Id__c: {column: customer_no, required: true, transforms: [trim, nfkc]}\n"
        "      Name: {column: name, required: true}\n"
        "      AnnualRevenue: {column: annual_revenue, transforms: [number], on_failure: keep}\n"
        "    lookups:\n      ParentId: {object: Account, external_id: Legacy_Id__c, column: parent_no}\n", "utf-8")
    return load_mappings(tmp_path / "maps").by_name("Account")


def parts(df: pd.DataFrame, size: int, empty_at: int | None) -> list[pd.DataFrame]:
    out = [df.iloc[i:i + size] for i in range(0, len(df), size)]
    if empty_at is not None:
        out.insert(empty_at, df.iloc[0:0])
    return out


def stream(step, batches, folder: Path, refs, parents, preview: int, finish_early: bool = True):
    folder.mkdir()
    reasons: dict = {}
    got = map_step_stream(step, batches, refs=refs, parents=parents, parent_reasons=reasons,
                          records_path=folder / "records.parquet", quarantine_path=folder / "quarantine.csv",
                          spill=folder / "spill", preview=preview, finish_early=finish_early)
    return got, reasons


@pytest.mark.parametrize("template", [True, False], ids=["account", "self_lookup"])
@pytest.mark.parametrize("size,empty_at", [(1000, None), (7, 3), (50, 1), (13, 0)])
def test_early_finish_gives_the_files_of_finishing_after_all_keys(tmp_path, template, size, empty_at):
    df = awkward_rows()
    if template:
        step = load_mappings(TEMPLATES).by_name("Account")
        users = {f"rep{i}@sandbox.crmbridge": f"005000000000{i:03d}AAA" for i in range(1, 6)}
        refs = OrgRefs(owners={f"R00{i}": f"rep{i}@sandbox.crmbridge" for i in range(1, 6)},
                       users={**users, "admin@sandbox.crmbridge": "005000000000999AAA"})
        parents = None
    else:
        step, refs = self_lookup_step(tmp_path), None
        parents = {("account", "Legacy_Id__c"): ParentKeys(frozenset(f"C{i:05d}" for i in range(0, 240, 2)),
                                                           frozenset({"C00001", "C00003"}))}
    batches = parts(df, size, empty_at)
    early, early_reasons = stream(step, lambda: iter(batches), tmp_path / "early", refs, parents, 4)
    after, after_reasons = stream(step, iter(batches), tmp_path / "after", refs, parents, 4)
    stream(step, lambda: iter(batches), tmp_path / "reread", refs, parents, 4, finish_early=False)
    for f in ("records.parquet", "quarantine.csv"):
        assert (tmp_path / "early" / f).read_bytes() == (tmp_path / "after" / f).read_bytes(), f
        assert (tmp_path / "reread" / f).read_bytes() == (tmp_path / "after" / f).read_bytes(), f
    for attr in ("rows_in", "rows", "rows_out", "rows_quarantined", "filtered", "reasons", "stats", "columns",
                 "preview"):
        assert getattr(early, attr) == getattr(after, attr), attr
    assert list(early.mapped) == list(after.mapped)
    for a, b in ((early.quarantined, after.quarantined),
                 (early_reasons["Account.Legacy_Id__c"], after_reasons["Account.Legacy_Id__c"])):
        assert list(a.key_index()) == list(b.key_index()) and len(a) == len(b)
        assert [a.get(k) for k in a.key_index()] == [b.get(k) for k in b.key_index()]
    assert not list((tmp_path / "early" / "spill").iterdir()) and not list((tmp_path / "after" / "spill").iterdir())
    # and both are map_step's on the whole frame
    whole = map_step(step, df, refs=refs, parents=parents)
    write_records(whole.records, tmp_path / "whole.parquet")
    write_quarantine(steward_view(step, whole.quarantine, None,
                                  {"Account.Legacy_Id__c": quarantined_keys(step, whole.quarantine)}),
                     tmp_path / "whole.csv")
    assert (tmp_path / "whole.csv").read_bytes() == (tmp_path / "early" / "quarantine.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "whole.parquet"),
                                  pd.read_parquet(tmp_path / "early" / "records.parquet"))
    assert (early.rows, early.rows_quarantined, early.reasons) == (len(whole.records), len(whole.quarantine),
                                                                   whole.reasons)
    assert early.reasons.get("duplicate_external_id: Legacy_Id__c", 0) > 0


def test_a_key_shared_with_a_later_batch_finishes_the_earlier_batch_again(tmp_path, monkeypatch):
    """The case the early finish cannot see coming: batch 0's key turns up again in batch 2."""
    import crmbridge.mappings.stream as S

    step = self_lookup_step(tmp_path)
    df = pd.DataFrame({"customer_no": ["C1", "C2", "C3", "C4", "C1"], "name": ["a", "b", "c", "d", "e"],
                       "annual_revenue": [None] * 5, "parent_no": [None] * 5}, dtype=object)
    finished = []
    real = S.finish_rows
    monkeypatch.setattr(S, "finish_rows", lambda loaded, part, dups, rows: finished.append(len(part.df)) or
                        real(loaded, part, dups, rows))
    got, _ = stream(step, lambda: iter(parts(df, 2, None)), tmp_path / "s", None, None, 0)
    assert finished == [2, 2, 1, 2, 1]  # batches 0 and 2 again
    assert got.reasons == {"duplicate_external_id: Legacy_Id__c": 2} and got.rows == 3


def test_batches_finish_early_when_resolved_or_from_one_source(tmp_path):
    import json
    from types import SimpleNamespace

    from crmbridge.mappings.stage import _keys_rarely_shared

    run = SimpleNamespace(dir=tmp_path)
    assert not _keys_rarely_shared(run, "customers")  # no extract: the previous way
    (tmp_path / "extract").mkdir()
    manifest = {"entities": {"customers": {"sources": ["sales", "service"]}, "contacts": {"sources": ["crm"]}}}
    (tmp_path / "extract" / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    assert not _keys_rarely_shared(run, "customers") and _keys_rarely_shared(run, "contacts")
    (tmp_path / "resolve").mkdir()
    (tmp_path / "resolve" / "customers.parquet").write_bytes(b"")
    assert _keys_rarely_shared(run, "customers")
