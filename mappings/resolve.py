"""The ``resolve`` stage: one golden record per real company, between validate and map.

For every entity whose definition declares ``identity.match_on`` it reads
``runs/<id>/validate/<entity>.parquet``, finds the rows of one company (exact keys, then splink's
scored pairs: see matching.py and clustering.py), applies the steward's earlier decisions, builds the
golden records (survivorship.py) and re-points the children: every entity with a reference to the
resolved entity's key gets the survivor's key, so no child is lost or rejected because its parent row
was merged. Written into ``runs/<id>/resolve/`` (built in a temporary folder, swapped in at the end)::

    <entity>.parquet          golden records: the entity's columns + _merged_row_ids, _legacy_keys,
                              _departments, _company (map reads these instead of validate's rows)
    <entity>.rowmap.parquet   every source row -> its company and the survivor's key
    <child>.parquet           children with their reference re-pointed (_repointed_from keeps the old key)
    pairs/<entity>.parquet    every scored pair: score, kind, evidence, outcome
    matches.json              clusters, scores, evidence, names per department, the review queue
    report.html               the same for people (escaped, offline)

Rows in = rows out: every validated row is in exactly one golden record's ``_merged_row_ids``.
The open review pairs go to the state database (``crmbridge matches list``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmbridge.errors import RunFailed

STAGE = "resolve"


@dataclass(frozen=True)
class EntityResolution:
    entity: str
    rows_in: int
    companies: int
    rows_merged: int  # rows folded into another row's golden record
    pairs_exact: int
    pairs_fuzzy_merged: int
    pairs_review: int
    pairs_refused: int
    steward_accepted: int
    steward_rejected: int
    file: str
    rowmap_file: str

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.companies + self.rows_merged

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "balanced": self.balanced}


@dataclass(frozen=True)
class ChildRepoint:
    entity: str
    field: str
    parent: str
    rows: int
    repointed: int
    ambiguous: int
    file: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ResolveResult:
    run_id: str
    entities: tuple[EntityResolution, ...] = ()
    children: tuple[ChildRepoint, ...] = ()
    reports: dict[str, str] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return all(e.balanced for e in self.entities)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "balanced": self.balanced, "reports": self.reports,
                "entities": {e.entity: e.as_dict() for e in self.entities},
                "children": [c.as_dict() for c in self.children]}


# ----------------------------------------------------------------------------- pure part


@dataclass
class Resolved:
    golden: pd.DataFrame
    rowmap: pd.DataFrame
    pairs: pd.DataFrame  # every pair with its outcome
    review: pd.DataFrame  # l, r, score, kind, evidence (positions)
    stats: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase (benchmarks/match_1m.py)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # CPU time of this process per phase


def row_refs(frame: pd.DataFrame, positions=None) -> np.ndarray:
    """A stable reference per row (or per row at ``positions``) for steward decisions:
    ``<source>/<source key>``, else the row id."""
    sub = frame if positions is None else frame.iloc[np.asarray(positions, dtype=np.int64)]
    rid = sub["_row_id"].astype(str)
    if "_source" in sub.columns and "_source_key" in sub.columns:
        sk = sub["_source_key"]
        ok = sk.notna() & sub["_source"].notna()
        rid = rid.where(~ok, sub["_source"].astype(str) + "/" + sk.astype(str))
    return rid.to_numpy(dtype=object)


def resolve_frame(frame: pd.DataFrame, identity, *, entity: str, decisions: dict[str, dict] | None = None,
                  threads: int | None = None) -> Resolved:
    """Cluster ``frame``'s rows into companies and build their golden records (no I/O)."""
    from crmbridge.mappings.clustering import cluster
    from crmbridge.mappings.matching import PAIR_COLUMNS, exact_pairs, features, fuzzy_pairs
    from crmbridge.mappings.review import pair_id
    from crmbridge.mappings.survivorship import golden_records
    from crmbridge.validation.identity_rules import Resolution

    clock, cpu, seconds, cpu_seconds = time.perf_counter(), time.process_time(), {}, {}

    def lap(name: str) -> None:
        nonlocal clock, cpu
        now, now_cpu = time.perf_counter(), time.process_time()
        seconds[name], cpu_seconds[name] = round(now - clock, 3), round(now_cpu - cpu, 3)
        clock, cpu = now, now_cpu

    df = frame.reset_index(drop=True)
    res = identity.resolution or Resolution()
    match_on = [f for f in identity.match_on if f in df.columns]
    feat = features(df, res.compare, match_on)
    lap("features")
    pairs = [exact_pairs(feat, match_on, identity.key[0])]
    lap("exact")
    if res.fuzzy and res.compare.name and res.compare.name in df.columns:
        pairs.append(fuzzy_pairs(feat, res.review_threshold, threads=threads))
    lap("fuzzy")
    pairs = pd.concat([p for p in pairs if len(p)], ignore_index=True) if any(len(p) for p in pairs) else \
        pd.DataFrame(columns=PAIR_COLUMNS)
    # one line per row pair: an exact (or ambiguous) verdict outranks a fuzzy score for the same rows
    pairs = pairs.assign(_o=pairs["kind"].map({"exact": 0, "ambiguous": 1, "fuzzy": 2})) \
        .sort_values(["l", "r", "_o"], kind="stable").drop_duplicates(["l", "r"]).drop(columns="_o")
    pairs["l"], pairs["r"] = pairs["l"].astype(np.int64), pairs["r"].astype(np.int64)
    accepted, rejected = _decided(decisions or {}, df)
    involved = np.unique(np.concatenate([pairs["l"].to_numpy(), pairs["r"].to_numpy(),
                                         np.array([x for p in accepted | rejected for x in p], dtype=np.int64)]))
    codes = dict(zip(involved.tolist(), feat["credit_code"].iloc[involved].tolist()))  # only paired rows can merge
    cl = cluster(len(df), pairs, codes=codes,
                 merge_threshold=res.merge_threshold, review_threshold=res.review_threshold,
                 accepted=accepted, rejected=rejected)
    lap("cluster")
    key = identity.key[0]
    golden, rowmap = golden_records(df, cl.labels, key=key, resolution=res)
    lap("golden")
    lab = cl.labels
    pl, pr = pairs["l"].to_numpy(), pairs["r"].to_numpy()
    same = lab[pl] == lab[pr] if len(pairs) else np.zeros(0, dtype=bool)
    decided = {(a, b): "accepted" for a, b in accepted} | {(a, b): "rejected" for a, b in rejected}
    outcome = [decided.get((a, b)) or ("merged" if s else "separate") for a, b, s in zip(pl, pr, same)]
    ref = dict(zip(involved.tolist(), row_refs(df, involved).tolist()))
    pairs = pairs.assign(outcome=outcome, pair_id=[pair_id(entity, ref[a], ref[b]) for a, b in zip(pl.tolist(), pr.tolist())])
    rq = set(zip(cl.review["l"], cl.review["r"]))
    pairs.loc[[(a, b) in rq for a, b in zip(pl, pr)], "outcome"] = "review"
    stats = {"pairs_exact": int((pairs["kind"] == "exact").sum()),
             "pairs_fuzzy_merged": int(((pairs["kind"] == "fuzzy") & (pairs["outcome"] == "merged")).sum()),
             "pairs_review": len(cl.review), "pairs_refused": len(cl.refused),
             "steward_accepted": len(accepted), "steward_rejected": len(rejected)}
    lap("outcomes")
    return Resolved(golden, rowmap, pairs.reset_index(drop=True), cl.review, stats, seconds, cpu_seconds)


def _decided(decisions: dict[str, dict], df: pd.DataFrame) -> tuple[set, set]:
    if not decisions:
        return set(), set()
    wanted = {d[k] for d in decisions.values() for k in ("left_ref", "right_ref")}
    pos: dict[str, int] = {}
    for i, r in enumerate(row_refs(df)):
        if r in wanted:
            pos.setdefault(r, i)
    acc, rej = set(), set()
    for d in decisions.values():
        a, b = pos.get(d["left_ref"]), pos.get(d["right_ref"])
        if a is None or b is None or a == b:
            continue  # a row of the decision is gone from this run's data
        (acc if d["decision"] == "accept" else rej).add((min(a, b), max(a, b)))
    return acc, rej


def repoint(child: pd.DataFrame, fld: str, rowmap: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Children pointing at a merged row's key get the survivor's key; (frame, re-pointed, ambiguous).

    A key shared by rows of two companies (never merged: e.g. different credit codes) is ambiguous:
    the child keeps its key and the report counts it."""
    m = rowmap[rowmap["key"].notna()].drop_duplicates(["key", "survivor_key"])
    ambiguous_keys = set(m["key"][m["key"].duplicated(keep=False)])
    target = m[~m["key"].isin(ambiguous_keys)].set_index("key")["survivor_key"]
    cur = child[fld]
    new = cur.map(target)
    change = cur.notna() & new.notna() & (new != cur)
    out = child.copy()
    out["_repointed_from"] = cur.where(change, None)
    out.loc[change, fld] = new[change]
    return out, int(change.sum()), int(cur.isin(ambiguous_keys).sum())


# ----------------------------------------------------------------------------- the stage


def resolvable(definition) -> list[str]:
    return [e for e in definition.entity_order() if definition.entities[e].identity.match_on]


def run_resolve(project, run, *, threads: int | None = None) -> ResolveResult:
    """Resolve every entity of ``run`` that declares ``identity.match_on``; records stage ``resolve``."""
    from crmbridge.migrations import runs as R
    from crmbridge.state import open_state

    engine = open_state(project.state_url)
    R.start_stage(engine, run.run_id, STAGE)
    try:
        result = _resolve_into(project, run, engine, threads)
    except BaseException as exc:
        R.finish_stage(engine, run.run_id, STAGE, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    R.finish_stage(engine, run.run_id, STAGE, result.as_dict())
    return result


def _definition(project, run):
    from crmbridge.validation.definition import load_definition
    from crmbridge.validation.stage import default_definition_path

    summary = run.dir / "validate" / "summary.json"
    path = None
    if summary.exists():
        path = json.loads(summary.read_text("utf-8")).get("definition_path")
    path = Path(path) if path else default_definition_path(project)
    return load_definition(path) if path.exists() else None


def _resolve_into(project, run, engine, threads) -> ResolveResult:
    from crmbridge.mappings import match_report, review

    definition = _definition(project, run)
    tmp = run.dir / f".{STAGE}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "pairs").mkdir(parents=True)
    entities, children, report_data = [], [], {}
    rowmaps: dict[str, tuple[str, pd.DataFrame]] = {}
    for entity in (resolvable(definition) if definition else []):
        src = run.dir / "validate" / f"{entity}.parquet"
        if not src.exists():
            continue
        frame = pd.read_parquet(src)
        ident = definition.entities[entity].identity
        out = resolve_frame(frame, ident, entity=entity, decisions=review.decisions(engine, entity), threads=threads)
        out.golden.to_parquet(tmp / f"{entity}.parquet", index=False)
        out.rowmap.to_parquet(tmp / f"{entity}.rowmap.parquet", index=False)
        out.pairs.to_parquet(tmp / "pairs" / f"{entity}.parquet", index=False)
        rowmaps[entity] = (ident.key[0], out.rowmap)
        er = EntityResolution(entity, len(frame), len(out.golden), len(frame) - len(out.golden),
                              file=f"{STAGE}/{entity}.parquet", rowmap_file=f"{STAGE}/{entity}.rowmap.parquet",
                              **out.stats)
        if not er.balanced or out.rowmap["_company"].nunique() != len(out.golden):
            raise RunFailed(f"resolve does not balance for {entity} (a bug): {len(frame)} rows in, "
                            f"{len(out.golden)} golden records, {er.rows_merged} merged")
        entities.append(er)
        report_data[entity] = match_report.entity_data(frame, out, ident)
        review.replace_queue(engine, run.run_id, entity, match_report.queue_rows(frame, out, entity, ident))
    for entity in (definition.entity_order() if definition and rowmaps else []):
        for ref in definition.entities[entity].references:
            if ref.entity not in rowmaps or ref.key != rowmaps[ref.entity][0] or entity in rowmaps:
                continue
            src = run.dir / "validate" / f"{entity}.parquet"
            if not src.exists():
                continue
            frame = pd.read_parquet(src) if not (tmp / f"{entity}.parquet").exists() else \
                pd.read_parquet(tmp / f"{entity}.parquet")
            new, n, amb = repoint(frame, ref.field, rowmaps[ref.entity][1])
            new.to_parquet(tmp / f"{entity}.parquet", index=False)
            children.append(ChildRepoint(entity, ref.field, ref.entity, len(frame), n, amb, f"{STAGE}/{entity}.parquet"))
    reports = {}
    if entities:
        data = {"run_id": run.run_id, "entities": report_data, "children": [c.as_dict() for c in children]}
        (tmp / "matches.json").write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), "utf-8")
        (tmp / "report.html").write_text(match_report.render_html(data), "utf-8")
        reports = {"match_report": str(run.dir / STAGE / "report.html"),
                   "matches_json": str(run.dir / STAGE / "matches.json")}
    final = run.dir / STAGE
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return ResolveResult(run.run_id, tuple(entities), tuple(children), reports)
