"""Mapping files: strict loading with file, line, step and field in every error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crmbridge.errors import ConfigError
from crmbridge.mappings.models import load_mappings

CASES = Path(__file__).with_name("cases")
TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "project" / "mappings"


def folder_with(tmp_path: Path, *cases: str) -> Path:
    d = tmp_path / "mappings"
    d.mkdir()
    for c in cases:
        shutil.copy(CASES / c, d / c)
    return d


def test_templates_load():
    m = load_mappings(TEMPLATES)
    assert [s.name for s in m.steps] == ["Account", "Contact", "Contract"]
    acc = m.by_name("Account").step
    assert acc.merge is None and acc.owner.default == "admin@sandbox.crmbridge"


def test_unknown_transform_names_file_line_step_field(tmp_path):
    d = folder_with(tmp_path, "mapping_field__unknown_transform.yml")
    with pytest.raises(ConfigError) as e:
        load_mappings(d)
    msg = str(e.value)
    assert "mapping_field__unknown_transform.yml:10" in msg
    assert "steps.Account.fields.Phone.transforms" in msg and "did you mean 'phone'" in msg


def test_typo_key_suggests(tmp_path):
    d = folder_with(tmp_path, "mapping_field__typo_key.yml")
    with pytest.raises(ConfigError, match=r"steps\.Account\.fields\.Name\.colum: unknown field 'colum' \(did you mean 'column'\?\)"):
        load_mappings(d)


def test_value_map_without_default_or_error_is_refused(tmp_path):
    d = folder_with(tmp_path, "mapping_value_map__no_default.yml")
    with pytest.raises(ConfigError, match="on_missing: error"):
        load_mappings(d)


def test_external_id_must_be_assigned(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "a.yml").write_text("steps:\n  A:\n    entity: customers\n    object: Account\n"
                             "    external_id: Legacy_Id__c\n    fields: {Name: name}\n", "utf-8")
    with pytest.raises(ConfigError, match="external_id 'Legacy_Id__c' must also be assigned"):
        load_mappings(d)


def test_duplicate_step_names_across_files(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(TEMPLATES / "account.yml", d / "a.yml")
    shutil.copy(TEMPLATES / "account.yml", d / "b.yml")
    with pytest.raises(ConfigError, match="step name already used in"):
        load_mappings(d)


def test_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no mapping files"):
        load_mappings(tmp_path)


def test_field_needs_exactly_one_source(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "a.yml").write_text("steps:\n  A:\n    entity: customers\n    object: Account\n"
                             "    external_id: Legacy_Id__c\n    fields:\n      Legacy_Id__c: customer_no\n"
                             "      Name: {column: name, value: x}\n", "utf-8")
    with pytest.raises(ConfigError, match=r"a.yml:8: steps\.A\.fields\.Name: .*only one of column, value"):
        load_mappings(d)


def test_merge_in_a_mapping_points_to_the_definition(tmp_path):
    (tmp_path / "a.yml").write_text("steps:\n  A:\n    entity: customers\n    object: Account\n"
                                    "    external_id: Legacy_Id__c\n    merge: {prefer: [sales]}\n"
                                    "    fields:\n      Legacy_Id__c: customer_no\n", "utf-8")
    with pytest.raises(ConfigError, match=r"a.yml:\d+: .*merge: is gone.*identity.resolution.prefer"):
        load_mappings(tmp_path)
