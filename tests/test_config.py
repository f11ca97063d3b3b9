import pytest

from crmbridge.config import load_project
from crmbridge.errors import ConfigError, UsageError


def write(tmp_path, text):
    (tmp_path / "crmbridge.yml").write_text(text, encoding="utf-8")


def test_defaults_to_embedded_sandbox(tmp_path):
    write(tmp_path, "name: acme\n")
    p = load_project(tmp_path)
    assert p.config.salesforce.target == "sandbox"
    assert p.state_url.startswith("sqlite:///")


def test_unknown_field_names_line_and_suggestion(tmp_path):
    write(tmp_path, "name: acme\nsources:\n  - name: s1\n    type: csv\n    entity: customers\n    pathh: a.csv\n")
    with pytest.raises(ConfigError) as ei:
        load_project(tmp_path)
    msg = str(ei.value)
    assert "crmbridge.yml:6" in msg and "pathh" in msg and "did you mean 'path'" in msg


def test_invalid_yaml_names_line(tmp_path):
    write(tmp_path, "name: acme\nsources: [\n  - oops: : :\n")
    with pytest.raises(ConfigError) as ei:
        load_project(tmp_path)
    assert "invalid YAML" in str(ei.value) and "crmbridge.yml:" in str(ei.value)


def test_literal_secret_in_url_is_refused(tmp_path):
    write(tmp_path, "erp:\n  url: postgresql://u:hunter22@localhost/erp\n")
    with pytest.raises(ConfigError) as ei:
        load_project(tmp_path)
    assert "hunter22" not in str(ei.value)
    assert "{env: NAME}" in str(ei.value)


def test_password_target_needs_env_reference(tmp_path):
    write(tmp_path, "salesforce:\n  target: password\n  username: a@b.c\n  password: plain\n")
    with pytest.raises(ConfigError):
        load_project(tmp_path)


def test_missing_project_file(tmp_path):
    with pytest.raises(UsageError):
        load_project(tmp_path / "nowhere")


def test_impossible_date_is_a_config_error_with_line(tmp_path):
    from pydantic import BaseModel, ConfigDict
    import datetime as dt

    from crmbridge.yamlconf import load_model

    class M(BaseModel):
        model_config = ConfigDict(extra="forbid")
        signed_on: dt.date

    f = tmp_path / "x.yml"
    f.write_text("signed_on: 2026-02-30\n", encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load_model(f, M)
    assert "x.yml:1" in str(ei.value) and "signed_on" in str(ei.value)
    f.write_text("signed_on: 2026-02-28\n", encoding="utf-8")
    assert load_model(f, M).signed_on == dt.date(2026, 2, 28)
