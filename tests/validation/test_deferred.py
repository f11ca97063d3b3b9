"""GX's start-up leaves ``scipy.stats`` and ``altair`` to be loaded on first use (``validation.deferred``),
and GX gives the same results through the stand-ins. Each case runs in a fresh interpreter: this one
has imported great_expectations already."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # the folder holding the crmbridge package

VALIDATE = """
import sys
sys.path.insert(0, sys.argv[1])
import test_gxdistinct as t
from crmbridge.validation import datadocs
every, distinct = t._both(t._rules(), t._frame())
page = datadocs.render_page(datadocs.sanitize_result(distinct.gx_result))
print(len(distinct.outcomes), len(page) > 1000, type(sys.modules["scipy.stats"]).__name__,
      type(sys.modules["altair"]).__name__)
"""

# GX's one expectation that calls scipy.stats (and renders with altair), run with the modules deferred
# or loaded at start-up; then the ways other code reaches scipy.stats
KL = """
import json, sys
from crmbridge.validation import gxsuite
if sys.argv[1] == "eager":
    gxsuite.DEFERRED = ()
ctx, ds = gxsuite._context()
import pandas as pd
import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.validator.v1_validator import Validator
df = pd.DataFrame({"x": [0.1, 0.5, 0.7, 1.2, 2.5, 3.1, 0.2, 0.9, 1.7, 2.2] * 3})
bd = ds.add_dataframe_asset("kl").add_batch_definition_whole_dataframe("all")
suite = gx.ExpectationSuite(name="kl")
suite.add_expectation(gxe.ExpectColumnKLDivergenceToBeLessThan(
    column="x", partition_object={"bins": [0, 1, 2, 4], "weights": [0.3, 0.3, 0.4]}, threshold=0.1))
res = Validator(batch_definition=bd, batch_parameters={"dataframe": df}, result_format="COMPLETE"
                ).validate_expectation_suite(suite).results[0]
res.render()
from scipy.stats import norm
import scipy.stats.distributions
from scipy import stats
print(json.dumps({"result": res.to_json_dict()["result"], "success": res.success, "exception": res.exception_info,
                  "rendered": [c.to_json_dict() for c in res.rendered_content or []],
                  "norm": norm.cdf(1.0), "dist": scipy.stats.distributions.norm.pdf(0.5),
                  "entropy": stats.entropy([0.5, 0.5], [0.9, 0.1]),
                  "loaded": [type(sys.modules[m]).__name__ for m in ("scipy.stats", "altair")]},
                 default=str, sort_keys=True))
"""


def _python(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GX_ANALYTICS_ENABLED": "false"}
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_gx_start_up_and_a_validation_leave_scipy_stats_and_altair_unloaded():
    """Fails when GX (a new version) or our validation path reads them: the start-up saving is then lost."""
    n, rendered, stats, alt = _python(VALIDATE, str(Path(__file__).parent)).split()
    assert int(n) > 10 and rendered == "True"
    assert (stats, alt) == ("Deferred", "Deferred")


def test_gx_results_through_the_stand_ins_equal_those_with_the_modules_loaded_at_start_up():
    eager, deferred = (json.loads(_python(KL, mode)) for mode in ("eager", "deferred"))
    assert eager["loaded"] == ["module", "module"]
    assert deferred["loaded"] == ["module", "module"]  # sys.modules holds the real modules once used
    assert not deferred["exception"]["raised_exception"]
    assert deferred["result"]["observed_value"] is not None
    assert deferred == eager


THREADS = """
import sys, threading
from crmbridge.validation.deferred import defer
defer("colorsys", "no_such_module_here")
kinds = [type(sys.modules["colorsys"]).__name__, "no_such_module_here" in sys.modules]
stand_in, out, start = sys.modules["colorsys"], [], threading.Barrier(8)
def use():
    start.wait()
    out.append(stand_in.rgb_to_hsv(0.2, 0.4, 0.4))
threads = [threading.Thread(target=use) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
import colorsys
print(kinds, len(out), len(set(out)), type(sys.modules["colorsys"]).__name__, colorsys.rgb_to_hsv is stand_in.rgb_to_hsv)
"""


def test_a_stand_in_read_from_threads_at_once_imports_its_module_once_and_answers_each():
    assert _python(THREADS) == "['Deferred', False] 8 1 module True"
