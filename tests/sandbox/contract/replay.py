"""Replays CumulusCI's recorded real-org traffic (VCR cassettes, BSD licence in LICENSE-CumulusCI) against
the sandbox org and compares each answer with what Salesforce answered: status, Content-Type and the
JSON shape (top-level type; the recorded top-level keys, or the keys of the first list item, must all
be there; each composite subrequest's status and each sObject Collections record's success flag too).

Each cassette runs on a fresh org whose schema is built from the recorded describe calls
(``schema_from_describes``), so the objects and fields the traffic uses exist. Record Ids Salesforce
returned are mapped to the Ids the sandbox returned, so later calls that reuse them address the same
records. Known differences are read from the table in docs/sandbox.md ("Contract suite: known
differences"): rows marked ``not emulated`` are endpoints the sandbox does not claim (left out of the
match rate), ``hand-edited`` rows are cassettes CumulusCI edited by hand to simulate failures (not an org's
answer, also left out), rows marked ``difference`` count as mismatches.

Run ``python tests/sandbox/contract/replay.py`` for the figures; tests/sandbox/test_contract.py asserts them.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import yaml

HERE = Path(__file__).parent
CASSETTES = HERE / "cassettes"
SHARED = CASSETTES / "shared"
DOCS = HERE.parents[2] / "docs" / "sandbox.md"
VERSION = "62.0"
RECORDED_ORG_ID = "00D0xORGID00000000"
KINDS = ("not emulated", "hand-edited", "difference")
EXCLUDED = ("not emulated", "hand-edited")
_ID = re.compile(r"\b([a-zA-Z0-9]{3}[a-zA-Z0-9]{12}(?:[a-zA-Z0-9]{3})?)\b")


@dataclass(frozen=True)
class Interaction:
    cassette: str
    index: int
    method: str
    uri: str
    body: str | None
    status: int
    content_type: str | None
    response: str

    @property
    def key(self) -> str:
        return f"{self.cassette}#{self.index}"

    @property
    def path(self) -> str:
        return urlsplit(self.uri).path

    @property
    def text(self) -> str:
        """``METHOD path?query`` as the known-difference rules match it."""
        u = urlsplit(self.uri)
        return f"{self.method} {u.path}" + (f"?{u.query}" if u.query else "")


@dataclass
class Rule:
    kind: str  # "not emulated", "hand-edited" (both left out of the rate) or "difference" (a mismatch)
    pattern: re.Pattern
    reason: str
    used: int = 0


@dataclass
class Outcome:
    interaction: Interaction
    matched: bool
    detail: str = ""
    rule: Rule | None = None


@dataclass
class Figures:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def claimed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not (o.rule and o.rule.kind in EXCLUDED)]

    @property
    def rate(self) -> float:
        claimed = self.claimed
        return sum(o.matched for o in claimed) / len(claimed) if claimed else 0.0


# ----------------------------------------------------------------------------------------------- loading
def _interaction_from(doc: dict, cassette: str, index: int) -> Interaction:
    req, resp = doc["request"], doc["response"]
    headers = resp.get("headers") or {}
    if "Response-Headers" in headers and isinstance(headers["Response-Headers"], dict):
        headers = headers["Response-Headers"]
    ctype = headers.get("Content-Type") if isinstance(headers, dict) else None
    if isinstance(ctype, list):
        ctype = ctype[0]
    body = resp.get("body") or {}
    return Interaction(cassette, index, req["method"], req["uri"], req.get("body"), int(resp["status"]["code"]),
                       ctype, body.get("string") or "" if isinstance(body, dict) else "")


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: the describes are large


@lru_cache(maxsize=None)
def _yaml(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


def load_cassette(path: Path) -> list[Interaction]:
    doc = _yaml(path)
    out = []
    for n, item in enumerate(doc.get("interactions") or []):
        if "include_file" in item:
            item = _yaml(SHARED / item["include_file"])
        out.append(_interaction_from(item, path.name, n))
    return out


def all_interactions() -> list[Interaction]:
    return [i for p in sorted(CASSETTES.glob("*.yaml")) for i in load_cassette(p)]


def load_rules(docs: Path = DOCS) -> list[Rule]:
    """The known-difference table of docs/sandbox.md: | kind | `regex` | reason |."""
    text = docs.read_text(encoding="utf-8")
    section = text.split("### Contract suite: known differences", 1)[1]
    rules = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in KINDS and cells[1].startswith("`"):
            rules.append(Rule(cells[0], re.compile(cells[1].strip("`").replace("\\|", "|")), cells[2]))
        elif rules and not line.strip().startswith("|"):
            break
    return rules


def rule_for(inter: Interaction, rules: list[Rule]) -> Rule | None:
    target = f"{inter.cassette} {inter.text}"
    return next((r for r in rules if r.pattern.search(target)), None)


# ----------------------------------------------------------------------------------------------- schema
_TYPES = {"combobox": "picklist", "encryptedstring": "string", "base64": "textarea", "time": "string",
          "long": "int", "anyType": "string", "complexvalue": "textarea"}
_STORED = {"id", "string", "textarea", "picklist", "multipicklist", "email", "phone", "url", "reference", "boolean",
           "int", "double", "currency", "percent", "date", "datetime"}
_SYSTEM = {"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp",
           "OwnerId"}


def schema_from_describes(existing: set[str]) -> dict:
    """A sandbox schema document from the recorded ``sobjects/X/describe`` answers (new fields only for
    objects the sandbox already has: its own definitions of those stay)."""
    objects: dict[str, dict] = {}
    used_prefixes: set[str] = set()
    for path in sorted(SHARED.glob("GET_sobjects_*_describe.yaml")):
        if "Global" in path.name:
            continue
        inter = load_cassette_single(path)
        d = json.loads(inter.response)
        fields = {}
        for f in d["fields"]:
            t = _TYPES.get(f["type"], f["type"])
            if f["name"] in _SYSTEM or t not in _STORED:
                continue  # the sandbox defines the system fields itself; compound fields are not stored
            spec = {"type": t, "label": f["label"], "nillable": f["nillable"], "createable": f["createable"],
                    "updateable": f["updateable"], "externalId": f["externalId"], "unique": f["unique"],
                    "defaultedOnCreate": f["defaultedOnCreate"], "idLookup": f["idLookup"]}
            if t in ("string", "textarea", "email", "phone", "url", "picklist", "multipicklist"):
                spec["length"] = f["length"] or 255
            if t in ("double", "currency", "percent"):
                spec["precision"], spec["scale"] = f["precision"], f["scale"]
            if t in ("picklist", "multipicklist"):
                spec["values"] = [v["value"] for v in f["picklistValues"] if v["active"]]
                spec["restricted"] = f["restrictedPicklist"]
            if t == "reference":
                spec["referenceTo"] = f["referenceTo"]
                spec["relationshipName"] = f["relationshipName"]
            if f["calculated"] or f["autoNumber"]:
                spec["createable"] = spec["updateable"] = False
            fields[f["name"]] = spec
        obj: dict = {"fields": fields, "label": d["label"], "owned": "OwnerId" in {f["name"] for f in d["fields"]}}
        if d["name"] not in existing and d.get("keyPrefix") and d["keyPrefix"] not in used_prefixes:
            obj["keyPrefix"] = d["keyPrefix"]
            used_prefixes.add(d["keyPrefix"])
        if d["name"] in existing:
            obj = {"fields": fields}
        objects[d["name"]] = obj
    return {"objects": objects}


def load_cassette_single(path: Path) -> Interaction:
    return _interaction_from(_yaml(path), path.name, 0)


# ----------------------------------------------------------------------------------------------- replay
def _version(text: str) -> str:
    return re.sub(r"/v(?:xx|\d+)\.0\b", f"/v{VERSION}", text, flags=re.I)


def _shape(payload) -> tuple:
    if isinstance(payload, dict):
        return ("object", frozenset(payload))
    if isinstance(payload, list):
        first = payload[0] if payload else None
        return ("list", frozenset(first) if isinstance(first, dict) else type(first).__name__ if payload else None)
    return (type(payload).__name__, None)


def compare(inter: Interaction, status: int, ctype: str | None, body: bytes) -> tuple[bool, str]:
    if status != inter.status:
        return False, f"status {status}, recorded {inter.status}: {body[:300]!r}"
    want = (inter.content_type or "").split(";")[0].strip().lower()
    got = (ctype or "").split(";")[0].strip().lower()
    if want and body and got != want:
        return False, f"Content-Type {got!r}, recorded {want!r}"
    if want != "application/json" or not inter.response.strip():
        return True, ""
    try:
        recorded, answered = json.loads(inter.response), json.loads(body or b"null")
    except ValueError as e:
        return False, f"not JSON: {e}"
    rs, ans = _shape(recorded), _shape(answered)
    if rs[0] != ans[0]:
        return False, f"JSON {ans[0]}, recorded {rs[0]}"
    if isinstance(rs[1], frozenset):
        if not isinstance(ans[1], frozenset):
            return False, f"list items {ans[1]}, recorded objects"
        missing = sorted(rs[1] - ans[1])
        if missing:
            return False, f"missing keys {missing[:12]}"
    # One level deeper where the top level hides the outcome: each composite subrequest's status, and
    # each sObject Collections record's success flag.
    if isinstance(recorded, dict) and isinstance(recorded.get("compositeResponse"), list):
        want_codes = [x.get("httpStatusCode") for x in recorded["compositeResponse"]]
        got_codes = [x.get("httpStatusCode") for x in answered.get("compositeResponse") or []]
        if want_codes != got_codes:
            return False, f"subrequest statuses {got_codes}, recorded {want_codes}"
    if isinstance(recorded, list) and recorded and all(isinstance(x, dict) and "success" in x for x in recorded):
        want = [x["success"] for x in recorded]
        got = [x.get("success") if isinstance(x, dict) else None for x in answered]
        if want != got:
            return False, f"record success flags {got}, recorded {want}: {body[:300]!r}"
    return True, ""


class IdMap:
    """Recorded Salesforce Ids -> the Ids the sandbox gave the same records."""

    def __init__(self, org_id: str):
        self.ids = {RECORDED_ORG_ID: org_id}

    def learn(self, recorded: str, answered: bytes) -> None:
        try:
            rec, ans = json.loads(recorded), json.loads(answered)
        except ValueError:
            return
        if isinstance(rec, dict) and isinstance(ans, dict):
            rec, ans = [rec], [ans]
        if isinstance(rec, list) and isinstance(ans, list) and len(rec) == len(ans):
            for r, a in zip(rec, ans):
                if isinstance(r, dict) and isinstance(a, dict):
                    for k in ("id", "Id"):
                        if isinstance(r.get(k), str) and isinstance(a.get(k), str):
                            self.ids[r[k]] = a[k]

    def apply(self, text: str) -> str:
        return _ID.sub(lambda m: self.ids.get(m.group(1), m.group(1)), text)


def replay(rules: list[Rule] | None = None, only: str | None = None) -> Figures:
    from crmbridge.sandbox.server import start_sandbox
    import tempfile

    rules = load_rules() if rules is None else rules
    figures = Figures()
    with tempfile.TemporaryDirectory() as tmp:
        schema_file = Path(tmp) / "recorded-org.yml"
        from crmbridge.sandbox.schema import load_schema

        existing = set(load_schema().objects)
        schema_file.write_text(yaml.safe_dump(schema_from_describes(existing)), encoding="utf-8")
        for n, path in enumerate(sorted(CASSETTES.glob("*.yaml"))):
            if only and only not in path.name:
                continue
            handle = start_sandbox(Path(tmp) / f"org{n}.db", schema_files=[schema_file])
            try:
                figures.outcomes.extend(_replay_cassette(handle, load_cassette(path), rules))
            finally:
                handle.stop()
    return figures


def _replay_cassette(handle, interactions: list[Interaction], rules: list[Rule]) -> list[Outcome]:
    session = handle.session()
    session.headers["Authorization"] = f"Bearer {handle.new_session()}"
    ids = IdMap(handle.store.org_id)
    out = []
    for inter in interactions:
        rule = rule_for(inter, rules)
        if rule:
            rule.used += 1
        if rule and rule.kind in EXCLUDED:
            out.append(Outcome(inter, False, rule.kind, rule))
            continue
        u = urlsplit(inter.uri)
        if inter.method == "GET" and "/query" in u.path and inter.status == 200:
            _seed_from_query(handle, session, inter, ids)
        url = handle.instance_url + ids.apply(_version(u.path)) + (f"?{ids.apply(_version(u.query))}" if u.query
                                                                   else "")
        body = ids.apply(_version(inter.body)) if inter.body else None
        headers = {"Content-Type": "application/json"} if body else {}
        r = session.request(inter.method, url, data=body.encode("utf-8") if body else None, headers=headers)
        ok, detail = compare(inter, r.status_code, r.headers.get("Content-Type"), r.content)
        if r.ok:
            ids.learn(inter.response, r.content)
        out.append(Outcome(inter, ok and not rule, detail if not ok else ("known difference" if rule else ""),
                           rule))
    return out


def _seed_from_query(handle, session, inter: Interaction, ids: IdMap) -> None:
    """Records a recorded query returned that the cassette never created existed in the recorded org
    before the recording started: create them (with the values the answer shows) so that later calls
    naming their Ids find them."""
    try:
        records = json.loads(inter.response).get("records") or []
    except (ValueError, AttributeError):
        return
    schema = handle.store.schema
    for rec in records:
        rid, obj = rec.get("Id"), schema.get((rec.get("attributes") or {}).get("type") or "")
        if not rid or obj is None or rid in ids.ids:
            continue
        values = {k: v for k, v in rec.items() if k not in ("attributes", "Id") and not isinstance(v, dict)
                  and v is not None and obj.field(k) is not None and obj.field(k).createable
                  and obj.field(k).type != "reference"}
        values.update({f.name: f"Seeded {rid}" for f in obj.fields.values()
                       if f.required_on_create and f.computed is None and f.name not in values
                       and f.type in ("string", "textarea")})
        url = f"{handle.instance_url}/services/data/v{VERSION}/sobjects/{obj.name}"
        r = session.post(url, json=values)
        if r.status_code == 201:
            ids.ids[rid] = r.json()["id"]


def main(argv: list[str]) -> int:
    figures = replay(only=argv[1] if len(argv) > 1 else None)
    claimed = figures.claimed
    for o in figures.outcomes:
        if not o.matched:
            tag = o.rule.kind if o.rule else "MISMATCH"
            print(f"{tag:13} {o.interaction.key:70} {o.interaction.text[:90]} {o.detail[:200]}")
    print(f"interactions: {len(figures.outcomes)}; on claimed endpoints: {len(claimed)}; "
          f"matched: {sum(o.matched for o in claimed)} ({figures.rate:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
