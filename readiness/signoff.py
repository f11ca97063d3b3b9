"""Sign-offs of manual gates (``metric: manual``): who, which department, when; revocable."""

from __future__ import annotations

from crmbridge.errors import UsageError
from crmbridge.readiness import store
from crmbridge.readiness.plan import load_plan


def sign_gate(project, gate_id: str, *, by: str, dept: str, note: str | None = None, revoke: bool = False) -> dict:
    """Record a sign-off (or its revocation) for a manual gate of the project's plan."""
    plan = load_plan(project)
    found = plan.gate(gate_id)
    if found is None:
        manual = [g.id for p in plan.phases for g in p.gates if g.manual]
        raise UsageError(f"no gate '{gate_id}' in {project.config.readiness_file}",
                         hint="manual gates: " + (", ".join(manual) or "none"))
    if not found[1].manual:
        raise UsageError(f"gate '{gate_id}' is measured by metric '{found[1].metric}', not signed off",
                         hint="only gates with `metric: manual` take a sign-off")
    if not by.strip() or not dept.strip():
        raise UsageError("--by and --dept must not be empty")
    engine = store.engine_for(project)
    if revoke and gate_id not in store.current_signoffs(engine):
        raise UsageError(f"gate '{gate_id}' has no sign-off to revoke")
    row = store.add_signoff(engine, gate_id, by.strip(), dept.strip(), note, revoked=revoke)
    row["signed_at"] = row["signed_at"].isoformat()
    row["revoked"] = bool(row["revoked"])
    return row
