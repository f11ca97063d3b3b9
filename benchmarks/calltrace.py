"""Which Salesforce API calls a run made, and when: every ``requests`` response this process received,
kept with the stage it came in, the time since that stage began and, for a Bulk job's status, the
state and processed figure it showed. For ``migrate_100k.py``: how many status looks each Bulk job took.

    with CallTrace() as trace: ... trace.stage("load") ... ; print(trace.report(["load", "reconcile"]))
"""

from __future__ import annotations

import re
import time

# /services/data/vXX.X/jobs/<kind>/<id>[/<what>]
_JOB = re.compile(r"/jobs/(ingest|query)(?:/([^/?]+))?(?:/([^/?]+))?")


def kind_of(method: str, path: str) -> tuple[str, str | None]:
    """(what the call was, the Bulk job's id if any) for one request."""
    m = _JOB.search(path)
    if m is None:
        return ("login" if "oauth2" in path else f"{method} {path.split('/services/data/')[-1][:40]}"), None
    kind, job, what = m.groups()
    if job is None:
        return f"{kind} create", None
    if what is None:
        return {"GET": f"{kind} status", "PATCH": f"{kind} close", "DELETE": f"{kind} delete"}.get(
            method, f"{kind} {method}"), job
    return f"{kind} {what}", job


class CallTrace:
    """Records the calls made while active (``with``); ``stage(name)`` marks where a stage begins."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self._stage, self._t0 = "", time.perf_counter()
        self._send = None
        self.walls: dict[str, float] = {}  # each stage's start, wall clock (to place the org's own job times)
        self.org_jobs: dict[str, tuple[float, float]] = {}  # job id -> (start, end) on the org, wall clock

    def stage(self, name: str) -> None:
        self._stage, self._t0 = name, time.perf_counter()
        self.walls[name] = time.time()

    def read_org(self, db) -> None:
        """When the org (a sandbox database file) started and ended each Bulk job: its end stamp (ms)
        minus its processing time."""
        import datetime as dt
        import sqlite3

        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            for job, stamp, ms in c.execute("SELECT id, system_modstamp, processing_ms FROM _sandbox_jobs"):
                try:
                    end = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
                except (TypeError, ValueError):
                    continue
                self.org_jobs[job] = (end - (ms or 0) / 1000, end)

    def __enter__(self) -> "CallTrace":
        import requests

        self._send = send = requests.Session.send
        trace = self

        def traced(session, request, **kwargs):
            response = send(session, request, **kwargs)
            trace._note(request, response)
            return response

        requests.Session.send = traced
        return self

    def __exit__(self, *exc) -> None:
        import requests

        requests.Session.send = self._send

    def _note(self, request, response) -> None:
        from urllib.parse import urlsplit

        path = urlsplit(request.url).path
        if path.endswith("/limits"):
            return  # the benchmark's own reads of the org's counter
        what, job = kind_of(request.method, path)
        entry = {"stage": self._stage, "t": time.perf_counter() - self._t0, "what": what, "job": job,
                 "status": response.status_code}
        if what.endswith(" status") and response.status_code == 200:
            try:
                info = response.json()
                entry["state"], entry["done"] = info.get("state"), info.get("numberRecordsProcessed")
            except ValueError:
                pass
        self.calls.append(entry)

    def report(self, stages: list[str]) -> list[str]:
        """One line per stage: its calls by kind, then per Bulk job its status looks and when they came."""
        lines = []
        mine = [c for c in self.calls if c["stage"] in stages]
        for stage in stages:
            calls = [c for c in self.calls if c["stage"] == stage]
            kinds: dict[str, int] = {}
            for c in calls:
                kinds[c["what"]] = kinds.get(c["what"], 0) + 1
            lines.append(f"    {stage}: {len(calls)} calls: " + ", ".join(f"{k} {n}" for k, n in kinds.items()))
        for job in dict.fromkeys(c["job"] for c in mine if c["job"]):
            jc = [c for c in mine if c["job"] == job]
            looks = [c for c in jc if c["what"].endswith(" status")]
            steps = " ".join(_step(c) for c in jc)
            if job in self.org_jobs and jc[0]["stage"] in self.walls:
                a, b = (t - self.walls[jc[0]["stage"]] for t in self.org_jobs[job])
                steps += f"; org ran it {jc[0]['stage'][:1].upper()}+{a:.1f}s..{b:.1f}s"
            lines.append(f"    {jc[0]['what'].split()[0]} job ..{job[-5:]}: {len(looks)} status look(s); {steps}")
        return lines


def _step(c: dict) -> str:
    short, at = c["what"].split(" ", 1)[1], f"{c['stage'][:1].upper()}+{c['t']:.1f}s"
    if short == "status":
        return f"status@{at}[{c.get('state')}:{c.get('done')}]"
    return f"{short}@{at}" + ("" if c["status"] < 300 else f"({c['status']})")
