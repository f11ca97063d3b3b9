"""Before-images: the org's values of the fields a load batch will overwrite, read before the write so
that a rollback can restore them (only when the org may hold records the run did not create)."""

from __future__ import annotations

from crmbridge.migrations import ledger as L

# SOQL statements are limited to 100,000 characters; 200 quoted external IDs stay well inside that.
IN_CHUNK = 200


def existing_images(ctx, keys: list[str]) -> list[dict]:
    """Query the org for the records with these external ids: the values the batch will overwrite."""
    desc = {f["name"]: f for f in ctx.conn.describe(ctx.sobject)["fields"]}
    rel_fields = {f.get("relationshipName"): f["name"] for f in desc.values() if f.get("relationshipName")}
    cols = []
    for f in ctx.fields:
        name = rel_fields.get(f.split(".")[0]) if "." in f else f
        if name and name in desc and desc[name].get("updateable", True) and name not in cols and name != "Id":
            cols.append(name)
    if ctx.ext not in cols:
        cols.append(ctx.ext)
    out = []
    for i in range(0, len(keys), IN_CHUNK):
        part = keys[i:i + IN_CHUNK]
        quoted = ",".join("'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'" for k in part)
        soql = f"SELECT Id, {', '.join(cols)} FROM {ctx.sobject} WHERE {ctx.ext} IN ({quoted})"
        for rec in ctx.conn.query(soql):
            image = {c: rec.get(c) for c in cols if c != ctx.ext}
            out.append({"sf_id": rec["Id"], "external_id": str(rec.get(ctx.ext)), "image": image})
    return out


def need_images(ctx) -> bool:
    """Whether the org may hold records this run did not create (then before-images must be read)."""
    in_org = ctx.conn.count(f"SELECT COUNT() FROM {ctx.sobject} WHERE {ctx.ext} != null")
    ours = L.created_by_run(ctx.engine, ctx.run.run_id, ctx.sobject)
    return in_org > ours
