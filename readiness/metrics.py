"""The metric catalogue: every figure a readiness gate can test, computed from the project's records.

Each metric says what it measures, where the number comes from and how it is computed (the same
text is in docs/readiness.md and in ``crmbridge readiness metrics``). A metric returns
:class:`Unknown` (or ``None``) when its source does not exist yet (no rehearsal, no sync run ...): the
gate is then ``unknown``, which never counts as passed, and the gate says why.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

from crmbridge.readiness import history as H


@dataclass(frozen=True)
class Metric:
    name: str
    what: str
    source: str
    how: str
    fn: Callable[["Facts", str | None], float | None]
    per_entity: bool = False
    unit: str = ""  # "rate" (0..1, shown as %), "hours", "" (a count)

    def as_dict(self) -> dict:
        return {"name": self.name, "what": self.what, "source": self.source, "how": self.how,
                "per_entity": self.per_entity, "unit": self.unit}


class Unknown:
    """No value yet; ``reason`` says why, in words the project lead can act on."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return f"Unknown({self.reason!r})"


NO_REHEARSAL = Unknown("no rehearsal yet: no migrate run has reached the load (`crmbridge migrate`); "
                       "configuration errors and runs stopped before the load do not count")


class Facts:
    """Lazy, cached reads of the project's records for one evaluation."""

    def __init__(self, project, engine):
        self.project = project
        self.engine = engine

    @cached_property
    def rehearsals(self) -> list[H.Rehearsal]:
        return H.rehearsals(self.engine)

    @cached_property
    def last_rehearsal(self) -> H.Rehearsal | None:
        return self.rehearsals[-1] if self.rehearsals else None

    @cached_property
    def sync_nights(self) -> list[H.SyncNight]:
        return H.sync_nights(self.engine)

    @cached_property
    def definition(self):
        from crmbridge.validation.definition import load_definition

        path = self.project.path(self.project.config.definitions_dir) / "customer.yml"
        return load_definition(path) if path.exists() else None

    def latest(self, stage: str) -> tuple[str, dict] | None:
        return H.latest_with_stage(self.engine, stage)

    def run_file(self, run_id: str, rel: str) -> dict | None:
        return H.read_json(self.project.runs_dir / run_id / rel)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


# ------------------------------------------------------------------------------------ metric functions


def _definition_signed(f: Facts, _e) -> float | Unknown:
    d = f.definition
    if d is None:
        return Unknown(f"no {f.project.config.definitions_dir}/customer.yml in the project")
    if not d.owners:
        return Unknown("the customer definition lists no owner departments")
    return sum(o.signed_on is not None for o in d.owners) / len(d.owners)


NO_EXTRACT = Unknown("no extract has succeeded yet (`crmbridge extract` or `crmbridge migrate`)")


def _unprofiled(f: Facts, _e) -> float | Unknown:
    got = f.latest("extract")
    if got is None:
        return NO_EXTRACT
    prof = f.run_file(got[0], "extract/profile.json")
    if prof is None:
        return Unknown(f"the newest extract (run {got[0]}) has no extract/profile.json")
    return float(sum(1 for e in f.project.entities if e not in prof.get("entities", {})))


def _extract_rejected(f: Facts, e) -> float | Unknown:
    got = f.latest("extract")
    if got is None:
        return NO_EXTRACT
    man = f.run_file(got[0], "extract/manifest.json")
    if man is None:
        return Unknown(f"the newest extract (run {got[0]}) has no extract/manifest.json")
    src = [s for s in man.get("sources", []) if e is None or s.get("entity") == e]
    value = _ratio(sum(int(s.get("rows_rejected", 0)) for s in src), sum(int(s.get("rows_read", 0)) for s in src))
    return Unknown(f"the newest extract (run {got[0]}) read no rows" + (f" of entity '{e}'" if e else "")) \
        if value is None else value


def _blocking_rate(f: Facts, e) -> float | Unknown:
    got = f.latest("validate")
    if got is None:
        return Unknown("no validation has succeeded yet (`crmbridge validate` or `crmbridge migrate`)")
    ents = [v for k, v in got[1].get("entities", {}).items() if e is None or k == e]
    value = _ratio(sum(int(v.get("rows_quarantined", 0)) for v in ents), sum(int(v.get("rows_in", 0)) for v in ents))
    return Unknown(f"the newest validation (run {got[0]}) had no rows" + (f" of entity '{e}'" if e else "")) \
        if value is None else value


def _map_check(key: str):
    def fn(f: Facts, _e) -> float | Unknown:
        got = f.latest("map")
        if got is None:
            return Unknown("no map stage has succeeded yet (`crmbridge map` or `crmbridge migrate`)")
        check = got[1].get("check") or f.run_file(got[0], "map/check.json")
        return float(check[key]) if check and key in check else \
            Unknown(f"the newest mapped run ({got[0]}) has no mapping check result")

    return fn


def _rehearsals(f: Facts, _e) -> float | None:
    return float(sum(1 for r in f.rehearsals if r.status == "succeeded"))


def _failed(r: H.Rehearsal) -> Unknown:
    return Unknown(f"the last rehearsal (run {r.run_id}) failed: `crmbridge runs show {r.run_id}` says why")


def _last_rate(what: str):
    def fn(f: Facts, e) -> float | Unknown:
        r = f.last_rehearsal
        if r is None:
            return NO_REHEARSAL
        if r.status != "succeeded":
            return _failed(r)
        value = r.rate(what, e)
        if value is None:
            return Unknown(f"the last rehearsal (run {r.run_id}) " + (f"has no entity '{e}'" if e and e not in
                                                                       r.entities else "extracted 0 rows"))
        return value

    return fn


def _last_mismatches(f: Facts, _e) -> float | Unknown:
    r = f.last_rehearsal
    if r is None:
        return NO_REHEARSAL
    if r.reconcile_mismatches is None:
        return Unknown(f"the last rehearsal (run {r.run_id}) did not finish its reconcile stage")
    return float(r.reconcile_mismatches)


def _last_hours(f: Facts, _e) -> float | Unknown:
    r = f.last_rehearsal
    if r is None:
        return NO_REHEARSAL
    if r.status != "succeeded" or r.hours is None:
        return _failed(r)
    return r.hours


def _window_share(f: Facts, e) -> float | Unknown:
    h = _last_hours(f, e)
    return h if isinstance(h, Unknown) else h / f.project.config.cutover_window_hours


def _delta_hours(f: Facts, _e) -> float | Unknown:
    deltas = [r for r in f.rehearsals if r.delta and r.status == "succeeded"]
    if not deltas:
        return Unknown("no delta run yet: a rehearsal after a successful one, whose load found the records "
                       "already in the org")
    return deltas[-1].hours


def _clean_nights(f: Facts, _e) -> float | None:
    return float(H.consecutive_clean_nights(f.sync_nights))


def _open_conflicts(f: Facts, _e) -> float | Unknown:
    if not f.sync_nights:  # no sync has run: an empty queue says nothing yet
        return Unknown("no sync has run yet (`crmbridge sync`)")
    n = H.open_conflicts(f.engine)
    return float(n) if n is not None else Unknown("the sync part is not installed in this build")


def _kpis_captured(f: Facts, _e) -> float | None:
    from crmbridge.readiness.store import count_kpi_snapshots

    return float(count_kpi_snapshots(f.engine, source="legacy"))


# ------------------------------------------------------------------------------------ the catalogue

_M = [
    Metric("definition_signed_share", "share of the definition's owner departments that have signed it",
           "definitions/customer.yml (owners[].signed_on)", "signed owners / all owners", _definition_signed,
           unit="rate"),
    Metric("unprofiled_entities", "project entities without a profile in the newest extract",
           "runs/<id>/extract/profile.json of the newest run whose extract succeeded",
           "entities of crmbridge.yml sources missing from the profile", _unprofiled),
    Metric("extract_rejected_rate", "share of source rows the extract could not read",
           "runs/<id>/extract/manifest.json of the newest extract", "rows_rejected / rows_read over the sources",
           _extract_rejected, per_entity=True, unit="rate"),
    Metric("blocking_failure_rate", "share of rows failing a blocking rule of the definition (quarantined)",
           "run_stages 'validate' result of the newest validated run", "rows_quarantined / rows_in",
           _blocking_rate, per_entity=True, unit="rate"),
    Metric("mapping_check_errors", "errors found by the mapping check (offline and against the org)",
           "run_stages 'map' result / runs/<id>/map/check.json of the newest mapped run", "check.errors",
           _map_check("errors")),
    Metric("mapping_check_warnings", "warnings found by the mapping check", "as mapping_check_errors",
           "check.warnings", _map_check("warnings")),
    Metric("rehearsals", "completed rehearsals (non-dry migrate runs that reached the load and succeeded)",
           "runs table (kind migrate)", "count of migrate runs with dry_run 0 and a load stage that succeeded, "
           "rolled back afterwards or not", _rehearsals),
    Metric("rehearsal_quarantine_rate", "share of extracted rows quarantined for data quality in the last "
           "rehearsal", "runs.summary of the newest finished migrate run",
           "quarantined / extracted (extract+validate+map; rows left out by mapping filters not included)",
           _last_rate("quarantined"), per_entity=True, unit="rate"),
    Metric("rehearsal_filtered_rate", "share of extracted rows a mapping's filters left out on purpose in "
           "the last rehearsal (apart from data-quality quarantine)", "runs.summary of the newest finished migrate run",
           "filtered / extracted", _last_rate("filtered"), per_entity=True, unit="rate"),
    Metric("rehearsal_rejected_rate", "share of extracted rows Salesforce rejected in the last rehearsal",
           "runs.summary of the newest finished migrate run", "rejected / extracted", _last_rate("rejected"),
           per_entity=True, unit="rate"),
    Metric("rehearsal_reconcile_mismatches", "reconcile mismatches of the last rehearsal",
           "run_stages 'reconcile' result of the newest finished migrate run",
           "mismatches (missing, duplicate, field differences)", _last_mismatches),
    Metric("rehearsal_duration_hours", "wall-clock duration of the last rehearsal", "runs.created_at/finished_at",
           "finished_at - created_at of the newest finished migrate run (unknown if it failed)", _last_hours,
           unit="hours"),
    Metric("rehearsal_window_share", "last rehearsal's duration as a share of the cutover window",
           "runs table and cutover_window_hours in crmbridge.yml", "rehearsal_duration_hours / cutover_window_hours",
           _window_share, unit="rate"),
    Metric("delta_run_hours", "duration of the newest delta run (a rehearsal whose load found records in the org)",
           "runs table and run_stages 'load' result", "finished_at - created_at of the newest migrate run "
           "whose load updated or left unchanged at least one record", _delta_hours, unit="hours"),
    Metric("clean_sync_nights", "consecutive clean sync nights up to now",
           "runs table (kind sync, summary.totals)", "distinct UTC days of sync runs with status succeeded, "
           "0 conflicts and 0 errors, counted back from the newest until an unclean run", _clean_nights),
    Metric("open_sync_conflicts", "conflicts waiting in the sync conflict queue", "sync_conflicts table",
           "rows with status open (unknown before the first sync run)", _open_conflicts),
    Metric("baseline_kpis_captured", "KPI snapshots taken from the legacy data (the before figures)",
           "kpi_snapshots table", "count of snapshots with source legacy", _kpis_captured),
]
CATALOGUE: dict[str, Metric] = {m.name: m for m in _M}


def suggest(name: str) -> str | None:
    hits = difflib.get_close_matches(name, list(CATALOGUE) + ["manual"], n=1)
    return hits[0] if hits else None


def measure(facts: Facts, metric: str, entity: str | None = None) -> float | None:
    """The value of ``metric`` (optionally for one entity) or ``None`` when its source is missing."""
    value = measure_why(facts, metric, entity)
    return None if isinstance(value, Unknown) else value


def measure_why(facts: Facts, metric: str, entity: str | None = None) -> float | Unknown:
    """The value of ``metric``, or :class:`Unknown` saying why there is none."""
    m = CATALOGUE[metric]
    value = m.fn(facts, entity)
    if value is None:
        return Unknown(f"no data yet in {m.source}")
    return value
