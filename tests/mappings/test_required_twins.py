"""Required fields judged on the records' Arrow twins (``engine._required`` given ``twins``) against the
same batch finished without twins (every field judged on its pandas values by ``is_missing``): the same
records, quarantine, reasons and counts, and the twins left for the records writer are the records'
values. Names blank in every way Arrow and Python might read differently (Unicode whitespace, U+001C,
NULs, full-width space), missing, and present, on ``str`` and object input, with duplicates."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from crmbridge.mappings.engine import finish_rows, map_rows
from crmbridge.mappings.keyindex import KeyIndex
from crmbridge.mappings.models import load_mappings

from .test_finish_lineage import REFS, _rows, _steps

NAMES = ["甲", "  深圳 腾达  ", "<b>北京华信</b>", "", " ", "\u3000", "\t\n", "\x1c", "\x85", "\u200b", "\xa0",
         "\x00", " \x00 ", "<b> </b>", "<br>", "Acme &amp; Co", None, "ｆｕｌｌ"]


def account_step(tmp_path, external_id: str, fields: str):
    """An Account step of customers with ``fields`` (the YAML lines of its fields, indented by 6)."""
    (tmp_path / "maps").mkdir(exist_ok=True)
    (tmp_path / "maps" / "account.yml").write_text(
        "steps:\n  Account:\n    entity: customers\n    object: Account\n"
        f"    external_id: {external_id}\n    fields:\n{fields}", "utf-8")
    return load_mappings(tmp_path / "maps").by_name("Account")


def _step(tmp_path, name_transforms: str):
    """A step whose required Name keeps blanks (``nfkc`` and ``case`` leave whitespace as it is)."""
    return account_step(tmp_path, "Legacy_Id__c",
                        "      Legacy_Id__c: {column: customer_no, required: true, transforms: [trim, nfkc]}\n"
                        f"      Name: {{column: name, required: true, transforms: {name_transforms}}}\n"
                        "      Phone: {column: phone, required: true}\n")


STEPS = {"template": None, "nfkc": "[nfkc]", "upper": "[{case: {to: upper}}]",
         "trim_upper": "[trim, {case: {to: upper}}]"}


@pytest.mark.parametrize("dtype", ["object", "str"])
@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("distinct", [False, True])
@pytest.mark.parametrize("seed", range(2))
def test_required_on_twins_equals_required_on_values(tmp_path, dtype, step, distinct, seed):
    loaded = _steps(tmp_path)["template"] if STEPS[step] is None else _step(tmp_path, STEPS[step])
    rnd = random.Random(seed)
    batch = _rows(900, seed, "plain")
    # mostly distinct names (the unchanged-rows path) or a few repeated ones (the distinct-values path)
    batch["name"] = [f"名{i}" if distinct and rnd.random() < 0.9 else rnd.choice(NAMES) for i in range(len(batch))]
    batch = batch.astype({"name": dtype}) if dtype == "str" else batch
    with_twins, without = (map_rows(loaded, batch, refs=REFS) for _ in range(2))
    assert "Name" in with_twins.twins  # the twin path is the one compared
    without.twins = {}
    keys = with_twins.candidate_keys()
    duplicates = KeyIndex.of(keys[keys.duplicated(keep=False)])
    got, ref = finish_rows(loaded, with_twins, duplicates), finish_rows(loaded, without, duplicates)
    pd.testing.assert_frame_equal(got.records, ref.records, check_exact=True)
    pd.testing.assert_frame_equal(got.quarantine, ref.quarantine, check_exact=True)
    assert (got.rows_in, got.rows_out, got.reasons) == (ref.rows_in, ref.rows_out, ref.reasons)
    assert with_twins.reasons.text.tolist() == without.reasons.text.tolist()
    assert got.reasons.get("required_missing: Name", 0) > (5 if distinct else 20)
    for column, twin in got.twins.items():
        assert twin.to_pylist() == got.records[column].tolist()
