"""Look-only commands never rewrite a run's evidence: ``map --preview`` writes to a scratch folder,
validating or mapping a loaded run again is refused without --force, and reconciling a finished run
again writes a new check next to its artifacts instead of over them."""

from __future__ import annotations

import hashlib
import json

import pytest

from crmbridge import cli


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    from crmbridge.migrations.demo import run_demo

    root = tmp_path_factory.mktemp("evidence") / "proj"
    out = run_demo(root, customers=120)
    assert out["reconcile_ok"], out
    yield root, out["run_id"]
    from crmbridge.state import dispose_all

    dispose_all()


def _call(capsys, root, *args):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(["--project", str(root), *args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _fingerprint(run_dir) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for stage in ("validate", "map", "reconcile") for p in sorted((run_dir / stage).rglob("*")) if p.is_file()}


def _stages(root, run_id):
    from crmbridge.config import load_project
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state

    engine = open_state(load_project(root).state_url)
    return {s: (R.stage_status(engine, run_id, s), json.dumps(R.stage_result(engine, run_id, s), sort_keys=True))
            for s in ("validate", "map", "reconcile")}


def test_look_only_commands_leave_the_evidence_alone(migrated, capsys):
    root, run_id = migrated
    run_dir = root / "runs" / run_id
    before, stages = _fingerprint(run_dir), _stages(root, run_id)
    assert any(k.startswith("map/") for k in before) and "reconcile/summary.json" in before

    code, out, err = _call(capsys, root, "map", "--run", run_id, "--preview", "2")
    assert code == 0, err
    scratch = root / ".crmbridge" / "preview" / run_id / "map"
    assert f"map/ is unchanged; the preview's files are in {scratch}" in out
    assert (scratch / "plan.json").exists() and "#1" in out

    for cmd in (["validate", "--run", run_id], ["map", "--run", run_id], ["validate"], ["map"]):
        code, _, err = _call(capsys, root, *cmd)
        assert code == 2, (cmd, err)
        assert f"run {run_id} has started loading" in err and "--force" in err and "crmbridge migrate --new" in err

    code, out, err = _call(capsys, root, "reconcile", "--run", run_id)
    assert code == 0, err
    checks = list((run_dir / "reconcile" / "checks").iterdir())
    assert len(checks) == 1 and (checks[0] / "summary.json").exists() and str(checks[0]) in out

    after = {k: v for k, v in _fingerprint(run_dir).items() if not k.startswith("reconcile/checks/")}
    assert after == before  # not one byte of validate/, map/ or reconcile/ changed
    assert _stages(root, run_id) == stages


def test_force_validates_a_loaded_run_again(migrated, capsys):
    root, run_id = migrated
    code, _, err = _call(capsys, root, "validate", "--run", run_id, "--force", "--json")
    assert code in (0, 1), err  # 1: blocking rules failed (the demo data has defects on purpose)
    assert "has started loading" not in err
