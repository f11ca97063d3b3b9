"""Reconcile a run: the mapped source, the ledger and what the org really holds, field by field.

For every step: record counts (source records, ledger rows, records found in the org by external ID),
duplicates in the org, records the ledger says were loaded but the org lacks, and per written field a
checksum of the source values and of the org values plus the records that differ. Every mismatch is
listed in ``reconcile/<step>_mismatches.csv``; ``reconcile/summary.json`` holds the counts.
Values are compared in one canonical form (numbers as numbers, datetimes in UTC) because the org
hands back ``1234.0`` for a mapped ``"1234"`` and ``+0000`` for a mapped ``Z``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache

from crmbridge import progress
from crmbridge.locks import locked
from crmbridge.migrations import ledger as L
from crmbridge.migrations.hashing import canonical, canonical_column
from crmbridge.migrations.mapped import read_plan, read_step_frame
from crmbridge.gcscope import paused as gc_paused
from crmbridge.migrations.runs import Run, finish_stage, start_stage

_DT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")


_NUM_START = frozenset("0123456789+-.")
_NULL_TEXT = frozenset(("nan", "NaT", "<NA>", "None"))
_TEXT_OR_NULL = frozenset((str, type(None), float))  # float: NaN only (checked apart)


def norm(value) -> str:
    """The comparison form of a value: canonical text, numbers rounded to 6 places, datetimes in UTC."""
    if type(value) is str and value and value[0] not in _NUM_START and value not in _NULL_TEXT \
            and not value.isspace() and "\x1f" not in value:
        return value  # plain text (most cells): already canonical, neither a number nor a datetime
    return _norm_text(canonical(value))


@lru_cache(maxsize=1 << 18)  # legacy data repeats itself (cities, statuses, industries): cache the work
def _norm_text(s: str) -> str:
    if not s:
        return ""
    if _NUM.match(s) and not (len(s) > 1 and s[0] == "0" and s[1] != "."):  # keep codes like 000123 as text
        x = round(float(s), 6)
        return str(int(x)) if x.is_integer() else repr(x)
    if _DT.match(s):
        t = s.replace("Z", "+00:00")
        if re.search(r"[+-]\d{4}$", t):
            t = t[:-2] + ":" + t[-2:]
        try:
            d = datetime.fromisoformat(t)
            d = d.replace(tzinfo=d.tzinfo or timezone.utc).astimezone(timezone.utc)
            return d.strftime("%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return s
    return s


def _checksum(values) -> str:
    """Order-independent checksum of a column: the sum of 64-bit hashes of its values (mod 2**64)."""
    from crmbridge.migrations.compare import cell_hashes, checksum_of

    return checksum_of(cell_hashes(values if hasattr(values, "to_numpy") else list(values)))


@dataclass(frozen=True)
class StepReconcile:
    step: str
    object: str
    source_records: int
    source_rows: int
    ledger_rows: int
    ledger_loaded: int
    ledger_failed: int
    org_found: int
    missing_in_org: int
    duplicates_in_org: int
    field_mismatches: int
    fields: dict[str, dict] = field(default_factory=dict)
    mismatch_file: str | None = None
    read_by: str = ""  # how the org's records were read back (by key, or time window + unchanged by key)

    @property
    def ok(self) -> bool:
        return (self.ledger_rows == self.source_rows and self.missing_in_org == 0 and self.duplicates_in_org == 0
                and self.field_mismatches == 0 and self.org_found == self.ledger_loaded)

    def as_dict(self) -> dict:
        return {**self.__dict__, "ok": self.ok}


@dataclass(frozen=True)
class ReconcileResult:
    run_id: str
    steps: tuple[StepReconcile, ...]
    summary_file: str

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def mismatches(self) -> int:
        return sum(s.missing_in_org + s.duplicates_in_org + s.field_mismatches for s in self.steps)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "ok": self.ok, "mismatches": self.mismatches,
                "summary_file": self.summary_file, "steps": [s.as_dict() for s in self.steps]}


def _compared(conn, step: dict, fields: list[str]) -> list[str]:
    """The fields of ``step`` compared with the org (the external ID aside: it is the key)."""
    ext = step["external_id_field"]
    names = {f["name"] for f in conn.describe(step["object"])["fields"]}
    return [f for f in fields if f != ext and ("." in f or f in names)]


def prefetch(conn, engine, run: Run, step: dict, fields: list[str], written: list[str], unchanged: list[str]) -> bool:
    """Start reconcile's time-window read of ``step`` now (called by the load once its last write is
    done), so that the org runs the query while the load records its results; reconcile then reads
    that job if its own query is the same (``readback``). ``written``/``unchanged``: the keys the load
    wrote and left alone. Returns whether a query was started."""
    from crmbridge.migrations.readback import window_query

    if not hasattr(conn, "prefetch_bulk_query"):
        return False
    window = window_query(conn, step["object"], step["external_id_field"], _compared(conn, step, fields), written,
                          unchanged, L.first_journaled(engine, run.run_id, step["step"]))
    return window is not None and conn.prefetch_bulk_query(window[0])


def _lower_keys(values) -> list[str]:
    """The comparison form of external IDs: Salesforce external IDs are case-insensitive."""
    return [k.lower() for k in _normed(values)]


def _org_records(conn, engine, run: Run, step: dict, fields: list[str],
                 per_record) -> tuple[list[tuple], list[str], str]:
    """The org's records for the run's loaded keys of ``step`` (see ``readback``), and the compared fields."""
    from crmbridge.migrations.readback import read_back

    sobject, ext = step["object"], step["external_id_field"]
    cols = _compared(conn, step, fields)
    action = per_record["action"]
    written = [str(k) for k in per_record.index[action.isin(["created", "updated"])]]
    unchanged = [str(k) for k in per_record.index[action == "unchanged"]]
    first = L.first_journaled(engine, run.run_id, step["step"])
    rows, how = read_back(conn, sobject, ext, cols, written, unchanged, first, _lower_keys)
    return rows, cols, how


# Screens for cells that ``norm`` certainly returns as they are (Arrow's RE2 patterns). A cell is
# plain when its first character is none that Python's str.isspace() knows (so it is neither empty nor
# blank), it is no number for ``_NUM`` (the same pattern, Unicode digits as Python's \\d; Python's ``$``
# also matches before a final newline) and does not start like a ``_DT`` datetime. Conservative on
# purpose: the rest takes ``norm`` itself. (Phone numbers like 021-6234 5678 are plain text.)
_BLANK_START = ("^[\\x00-\\x20\\x7f-\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
                "\\x{202f}\\x{205f}\\x{3000}]")
_NUMBER_LIKE = "^[+\\-]?(\\p{Nd}+\\.?\\p{Nd}*|\\.\\p{Nd}+)\\n?$"
_DATETIME_LIKE = "^\\p{Nd}{4}-\\p{Nd}{2}-\\p{Nd}{2}T"


def _plain_mask(values):
    """For a column of text cells (nulls allowed): a numpy bool array, True where ``norm`` returns the cell
    unchanged for certain; None when the column holds anything but text (then every cell takes ``norm``)."""
    kinds = set(map(type, values))  # the cells' types, at C speed (most columns: str alone)
    if not kinds <= _TEXT_OR_NULL or (float in kinds and any(type(v) is float and v == v for v in values)):
        return None
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(values, type=pa.string(), from_pandas=True)
    odd = pc.is_in(arr, value_set=pa.array(sorted(_NULL_TEXT)))
    for test in (pc.match_substring(arr, "\x1f"), pc.match_substring_regex(arr, _BLANK_START),
                 pc.match_substring_regex(arr, _NUMBER_LIKE), pc.match_substring_regex(arr, _DATETIME_LIKE)):
        odd = pc.or_(odd, test)
    mask = pc.invert(odd)
    return np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _normed(values) -> list[str]:
    """``norm`` of every value of a column (same result). Text columns are screened in one Arrow pass:
    cells that are certainly plain text (most of them) are kept as they are, the rest take ``norm``'s
    own rules; other columns go cell by cell."""
    if hasattr(values, "to_numpy"):
        values = values.to_numpy(dtype=object)
    if len(values) > 1000:
        mask = _plain_mask(values)
        if mask is not None:
            out = list(values)
            rest = (~mask).nonzero()[0].tolist()
            for i, r in zip(rest, _normed_cells([out[i] for i in rest])):
                out[i] = r
            return out
    return _normed_cells(values)


def _normed_cells(values) -> list[str]:
    ns, nt = _NUM_START, _NULL_TEXT
    memo: dict = {}
    out = []
    append = out.append
    for v in values:
        if type(v) is str and v and v[0] not in ns and v not in nt and not v.isspace() and "\x1f" not in v:
            append(v)  # plain text: already canonical, neither a number nor a datetime
            continue
        t = type(v)
        if t is str:  # a str never equals a number, so the memo cannot mix 1, 1.0 and True up
            r = memo.get(v)
            if r is None:
                r = memo[v] = _norm_text(_canonical_text(v))
            append(r)
        elif t is float:
            append("" if v != v else _norm_text(str(int(v)) if v.is_integer() else repr(v)))
        else:
            append(_norm_text(canonical(v)))
    return out


def _canonical_text(v: str) -> str:
    """``canonical`` of a str (same result, without its type checks)."""
    if v in _NULL_TEXT or not v.strip():
        return ""
    return v.replace("\x1f", " ")


@dataclass(frozen=True)
class SourceSide:
    """The mapped records' side of the comparison, row by row in the load file's order: the canonical
    external IDs, their lower-cased comparison form, and per compared field ``norm`` of its cells with
    their hashes (``compare.FieldSide``)."""

    stamp: tuple  # the load file it was computed from (path, size, mtime) and the compared fields
    keys: list
    lowered: list
    fields: dict


_AHEAD: dict[tuple[str, str], SourceSide] = {}  # (run id, step) -> computed while the load waited


def _stamp(run: Run, step: dict, cols: list[str]) -> tuple:
    from crmbridge.migrations.mapped import step_file

    path = step_file(run, step)
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns, step["external_id_field"], tuple(cols)


def source_side(run: Run, step: dict, df, cols: list[str]) -> SourceSide:
    """``SourceSide`` of the step's load file ``df``: the one ``prepare`` computed ahead for the same file
    and fields (taken once), or computed now."""
    stamp = _stamp(run, step, cols)
    ahead = _AHEAD.pop((run.run_id, step["step"]), None)
    if ahead is not None and ahead.stamp == stamp and len(ahead.keys) == len(df):
        return ahead
    from crmbridge.migrations.compare import field_side

    keys = canonical_column(df[step["external_id_field"]].to_numpy(dtype=object))
    return SourceSide(stamp, keys, _lower_keys(keys),
                      {f: field_side(df[f].to_numpy(dtype=object), _normed(df[f]), _normed)
                       for f in cols if f in df.columns})


def prepare(conn, run: Run, step: dict, df, fields: list[str]) -> None:
    """Compute reconcile's ``SourceSide`` of ``step`` now (the load calls it while its job runs in the
    org, with the load file it read): reconcile then neither reads nor normalises the file again."""
    side = source_side(run, step, df, _compared(conn, step, fields))
    for key in [k for k in _AHEAD if k[0] != run.run_id]:
        del _AHEAD[key]  # another run's, never read
    _AHEAD[(run.run_id, step["step"])] = side


def reconcile_step(engine, conn, run: Run, step: dict, out_dir=None) -> StepReconcile:
    import pandas as pd

    from crmbridge.migrations.compare import compare

    sobject, name = step["object"], step["step"]
    df, fields = read_step_frame(run, step, hashes=False)
    side = source_side(run, step, df, _compared(conn, step, fields))
    led = L.ledger_frame(engine, run.run_id, name, ["row_id", "external_id", "sf_id", "action"])
    led = led[led["action"] != "quarantined"]
    per_record = led.drop_duplicates("external_id").set_index("external_id")
    loaded_keys = set(per_record.index[per_record["action"].isin(["created", "updated", "unchanged"])])
    org_rows, cols, how = _org_records(conn, engine, run, step, fields, per_record)
    res = compare(side, loaded_keys, per_record["sf_id"], org_rows, cols, _normed,
                  _lower_keys([r[1] for r in org_rows]))
    out = (out_dir or run.stage_dir("reconcile")) / f"{name}_mismatches.csv"
    from crmbridge.csvout import write_frame  # for people: formula-like values neutralised

    write_frame(pd.DataFrame(res.problems, columns=["external_id", "kind", "field", "source", "org", "sf_id"]), out)
    return StepReconcile(name, sobject, len(df), int(sum(len(r) for r in df["_rows"])), len(led), len(loaded_keys),
                         int((per_record["action"] == "failed").sum()), res.found, res.missing, res.duplicates,
                         sum(v["mismatches"] for v in res.fields.values()), res.fields, str(out), how)


@locked("reconcile")
def run_reconcile(project, run: Run, *, connector=None) -> ReconcileResult:
    """Reconcile every step of a loaded run; records stage ``reconcile`` (ok or not, it succeeded).

    A run whose reconcile already finished keeps its artifacts: checking it again (say after someone
    edited the org) writes to ``reconcile/checks/<UTC time>/`` and leaves the stage record alone."""
    from crmbridge.migrations.runs import stage_status
    from crmbridge.state import open_state

    engine = open_state(project.state_url)
    recheck = stage_status(engine, run.run_id, "reconcile") == "succeeded"
    out_dir = run.stage_dir("reconcile")
    if recheck:
        out_dir = out_dir / "checks" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        out_dir.mkdir(parents=True)
    own = connector is None
    if own:
        from crmbridge.connectors.salesforce import connect

        connector = connect(project)
    if not recheck:
        start_stage(engine, run.run_id, "reconcile")
    L.seed_pace(engine, connector)
    try:
        plan = read_plan(run)
        progress.current().expect(len(plan))
        steps = []
        for s in plan:
            with progress.tracked(f"{s['object']} (steps)", 1) as task:
                with gc_paused():  # the org's rows and both sides' normalised cells: ~1M objects per 100k
                    steps.append(reconcile_step(engine, connector, run, s, out_dir))
                task.advance(1)
        steps = tuple(steps)
        L.save_pace(engine, connector)
        summary = out_dir / "summary.json"
        result = ReconcileResult(run.run_id, steps, str(summary))
        summary.write_text(json.dumps(result.as_dict(), ensure_ascii=False, indent=2, default=str), "utf-8")
    except BaseException as exc:
        if not recheck:
            finish_stage(engine, run.run_id, "reconcile", status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if own:
            connector.close()
    if not recheck:
        finish_stage(engine, run.run_id, "reconcile", result.as_dict())
    return result
