"""Benchmark: CPU seconds of one validate batch, part by part: each rule's derived columns, the frames of
distinct values, great-expectations on those frames and on 3 rows of each (GX's fixed cost per batch).

    python benchmarks/pipeline_local.py --rows 200000 --keep /tmp/gx200   # builds and extracts a project
    python benchmarks/validate_batch_parts.py /tmp/gx200                   # the first entity's first batch

The batch is the first ``--batch-rows`` rows of the first entity the definition validates, normalised
and passed through the stage's Parquet spill (so the dtypes are the ones ``SuiteRunner.run`` gets).
Uniqueness is judged against the batch's own duplicate index; an entity with references cannot be
measured alone (the referenced entity's valid keys are missing). Each part runs once to warm up
(imports, phone metadata), then ``--repeat`` times; the median is printed, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _cpu(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def _batch(root: Path, rows: int):
    from crmbridge.config import load_project
    from crmbridge.migrations.extracted import iter_entity_batches, list_entities
    from crmbridge.migrations.runs import latest_run
    from crmbridge.state import open_state
    from crmbridge.validation.definition import load_definition
    from crmbridge.validation.normalise import LINEAGE, normalise
    from crmbridge.validation.rules import compile_rules, referenced_columns
    from crmbridge.validation.stage import _ParquetSink, default_definition_path

    project = load_project(root)
    run = latest_run(open_state(project.state_url), project.runs_dir)
    definition = load_definition(default_definition_path(project))
    present = list_entities(run.dir)
    entity = next(e for e in definition.entity_order() if e in present)
    rules = compile_rules(entity, definition.entities[entity])
    raw = next(iter_entity_batches(run.dir, entity, rows))
    for col in LINEAGE:
        if col not in raw.columns:
            raw[col] = None
    norm = normalise(raw, definition.entities[entity], referenced_columns(rules), prune=False).frame
    with tempfile.TemporaryDirectory() as tmp:
        sink = _ParquetSink(Path(tmp) / "spill.parquet")
        sink.write(norm)
        frame = next(sink.batches())
    return entity, rules, frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="a project folder kept by pipeline_local.py --keep")
    ap.add_argument("--batch-rows", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from crmbridge.validation import gxdistinct
    from crmbridge.validation.checks import DuplicateFinder
    from crmbridge.validation.gxsuite import SuiteRunner, derive_columns
    from crmbridge.validation.rules import RuleContext

    entity, rules, frame = _batch(a.root, a.batch_rows)
    ctx = RuleContext()
    for r in rules:
        if r.kind == "unique":
            finder = DuplicateFinder(list(r.unique_on))
            finder.add(frame)
            finder.confirm(frame)
            ctx.duplicates[(entity, r.rule_id)] = finder.index()
    print(f"{entity}: {len(frame):,} rows, {len(rules)} rules; load average {os.getloadavg()[0]:.2f} at start")
    for r in rules:
        if r.derive is not None:
            print(f"  derive {r.rule_id:38} {_cpu(lambda: r.derive(frame, ctx), a.repeat):6.3f} CPU-s")
    with SuiteRunner(entity, rules) as runner:
        data = derive_columns(frame, rules, ctx).reset_index(drop=True)
        dframe = gxdistinct.distinct_frame(data, rules)
        sizes = "+".join(f"{len(f):,}" for f in dframe.frames)
        split = gxdistinct.frames_and_rules(dframe, rules)
        parts = [("derive_columns (all rules)", lambda: derive_columns(frame, rules, ctx)),
                 (f"distinct_frame ({sizes} rows)", lambda: gxdistinct.distinct_frame(data, rules)),
                 ("great-expectations on it", lambda: [runner._validate(f, runner._suite_of(rs)) for f, rs in split]),
                 ("great-expectations on 3 rows of each", lambda: [runner._validate(f.head(3), runner._suite_of(rs))
                                                                   for f, rs in split]),
                 ("SuiteRunner.run (all of the above)", lambda: runner.run(frame, ctx))]
        for label, fn in parts:
            print(f"{label:45} {_cpu(fn, a.repeat):6.3f} CPU-s")
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
