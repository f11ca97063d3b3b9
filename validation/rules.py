"""Compile one entity's section of the definition into rules: each a GX expectation plus, where no
built-in expectation fits, the pandas-derived column it asserts.

A ``Rule`` is pure data (no great_expectations import here): ``expectation`` names the GX class and
``kwargs`` its arguments; ``gxsuite`` turns the list into an ``ExpectationSuite``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from crmbridge.errors import UsageError
from crmbridge.validation import checks, controlchars, keycheck, regionchecks
from crmbridge.validation.columntext import arrow_text
from crmbridge.validation.definition import Allowed, CrossField, EntityRules, Format, Reference, Required

# Markup in a legacy value: a tag opener (``<b``, ``</b``, ``<!--``, ``<script``), not a lone "<".
MARKUP_REGEX = r"<[A-Za-z/!][^>]*>?"
NUMBER_REGEX = r"^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$"
INTEGER_REGEX = r"^-?\d+$"
_OPS = {"eq": "=", "ne": "≠", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@dataclass
class RuleContext:
    """What a rule needs beyond its own rows: valid keys of the entities it references, why the
    referenced entities' quarantined rows were quarantined (so a child's reason can say so), and the
    key values that occur more than once in the whole entity (so uniqueness holds across batches).

    ``valid_keys`` values: a ``mappings.keyindex.KeyIndex`` (what the streaming stage builds) or any
    Series/set of keys. ``duplicates``: (entity, rule_id) -> ``checks.DuplicateIndex``; a unique rule without one
    judges the rows it is given (the whole entity when run on a whole frame)."""

    valid_keys: dict[tuple[str, str], Any] = field(default_factory=dict)
    quarantined: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    duplicates: dict[tuple[str, str], Any] = field(default_factory=dict)

    def remember_quarantined(self, entity: str, key: str, quarantine: pd.DataFrame) -> None:
        """Key value -> the first quarantined row's reasons, for the rows of ``entity`` validation
        refused; called once per batch, in row order (an earlier batch's row stays first)."""
        known = self.quarantined.setdefault((entity, key), {})
        if key not in quarantine.columns or "_reasons" not in quarantine.columns:
            return
        q = quarantine[[key, "_reasons"]].dropna(subset=[key])
        q = q.drop_duplicates(subset=[key])
        for k, why in zip(q[key].astype(str), q["_reasons"].astype(str)):
            known.setdefault(k, why)


Derive = Callable[[pd.DataFrame, RuleContext], dict[str, pd.Series]]
# A derive also given the Arrow table the frame was read from (validate's spilled batch), to read it there
ArrowDerive = Callable[[pd.DataFrame, Any, RuleContext], dict[str, pd.Series]]


@dataclass(frozen=True)
class Rule:
    """One compiled rule of one entity."""

    rule_id: str
    kind: str  # required, unique, format, allowed, cross_field, reference
    severity: str
    mostly: float | None
    description: str
    expectation: str
    kwargs: dict[str, Any]
    fields: tuple[str, ...]
    message: str  # per-row reason; {value}, {left}, {right} are replaced by the row's values
    derive: Derive | None = None
    derive_arrow: ArrowDerive | None = None  # what ``derive`` gives, read from the Arrow table where there is one
    key_fields: tuple[str, ...] = ()  # control_chars: fields where even tab and line breaks are refused
    target: tuple[str, str] | None = None  # reference: (entity, key) it points to
    unique_on: tuple[str, ...] = ()  # unique: the columns judged together (with _department per department)

    @property
    def level(self) -> str:
        """``row``: failing rows are quarantined (blocking) or warned; ``dataset``: judged by ``mostly``."""
        return "dataset" if self.mostly is not None else "row"

    @property
    def blocking(self) -> bool:
        return self.severity == "blocking"


def compile_rules(entity: str, rules: EntityRules) -> list[Rule]:
    """All rules of ``entity`` in a stable order; duplicate rule ids are a usage error."""
    out: list[Rule] = []
    out += _identity(entity, rules)
    out += [_required(r) for r in rules.required if r.field not in rules.identity.key]
    out += [_format(entity, i, f) for i, f in enumerate(rules.formats)]
    out += [_allowed(a) for a in rules.allowed_values]
    out += [_cross(entity, i, c) for i, c in enumerate(rules.cross_field)]
    out += [_reference(entity, i, r) for i, r in enumerate(rules.references)]
    out.append(_control_chars(rules))
    seen: set[str] = set()
    for r in out:
        if r.rule_id in seen:
            raise UsageError(f"definition: entity '{entity}' has two rules with id '{r.rule_id}'",
                             hint="give one of them its own 'id:'")
        seen.add(r.rule_id)
    return out


def referenced_columns(rules: list[Rule]) -> list[str]:
    """Data columns the rules read (for adding absent ones as empty columns)."""
    cols: list[str] = []
    for r in rules:
        for f in r.fields:
            if f not in cols and not f.startswith("_"):
                cols.append(f)
    return cols


def read_columns(rules: list[Rule]) -> set[str]:
    """Every column the rules read from a batch, their derives included: ``_row_id``, fields, key fields and
    expectation columns (some derived, absent from the batch). Not the text columns the control-characters
    rule scans, which it reads from the batch's Arrow table (``controlchars.control_chars_check``)."""
    from crmbridge.validation.gxdistinct import rule_columns

    return {"_row_id", *(c for r in rules for c in (*r.fields, *r.key_fields, *r.unique_on, *rule_columns(r)))}


def _sev(rule, default_id: str, **kw) -> dict[str, Any]:
    return dict(rule_id=rule.id or default_id, severity=rule.severity, mostly=rule.mostly, **kw)


def _identity(entity: str, rules: EntityRules) -> list[Rule]:
    ident = rules.identity
    out: list[Rule] = []
    for k in ident.key:
        listed = next((x for x in rules.required if x.field == k), None)
        out.append(_required(listed) if listed else Rule(
            rule_id=f"required.{k}", kind="required", severity=ident.severity, mostly=None,
            description=f"{k} (record key) is present", expectation="ExpectColumnValuesToNotBeNull",
            kwargs={"column": k}, fields=(k,), message=f"{k} (record key) is missing"))
    scope = ident.scope
    groups = [list(ident.key)] + [[a] for a in ident.alternate_keys]
    for cols in groups:
        name = "+".join(cols)
        where = "within each department" if scope == "department" else "across all rows"
        column_list = (["_department"] if scope == "department" else []) + cols
        rule_id = f"unique.{name}"
        col = _derived_name(rule_id)
        msg = f"{name} {{value}} is not unique {where}"
        out.append(Rule(rule_id=rule_id, kind="unique", severity=ident.severity, mostly=None,
                        description=f"{name} is unique {where}", expectation="ExpectColumnValuesToBeInSet",
                        kwargs={"column": col, "value_set": [True]}, fields=tuple(cols), message=msg,
                        derive=_unique_derive(entity, rule_id, col, column_list), unique_on=tuple(column_list)))
    return out


def _unique_derive(entity: str, rule_id: str, col: str, columns: list[str]) -> Derive:
    """The uniqueness verdict per row as a derived column (None where a key column is missing, as GX's
    own unique expectations skip those rows): judged against the whole entity's duplicate index when
    the stage built one (``RuleContext.duplicates``), else within the given rows."""
    def derive(df: pd.DataFrame, ctx: RuleContext) -> dict[str, pd.Series]:
        index = ctx.duplicates.get((entity, rule_id)) if ctx is not None else None
        return {col: keycheck.unique_check(df, columns, index)}

    return derive


def _required(r: Required) -> Rule:
    return Rule(**_sev(r, f"required.{r.field}"), kind="required", description=f"{r.field} is present",
                expectation="ExpectColumnValuesToNotBeNull", kwargs={"column": r.field}, fields=(r.field,),
                message=r.message or f"{r.field} is missing")


def _derived_name(rule_id: str, part: str = "") -> str:
    """The derived column's name: readable in Data Docs (``_format__email``), never a data column."""
    return "_" + rule_id.replace(".", "__") + (f"__{part}" if part else "")


def _derived(col: str, fn: Callable[[pd.DataFrame, Any], pd.Series]) -> tuple[Derive, ArrowDerive]:
    """The derive of ``col`` and its Arrow twin: ``fn(df, table)``, ``table`` None where there is none."""
    return (lambda df, ctx: {col: fn(df, None)}), (lambda df, table, ctx: {col: fn(df, table)})


def _format(entity: str, i: int, f: Format) -> Rule:
    fld, kind = f.field, f.format
    col = _derived_name(f.id or f"format.{fld}")
    country = f.country_field
    derive: Derive | None = None
    derive_arrow: ArrowDerive | None = None
    exp, kwargs = "ExpectColumnValuesToBeInSet", {"column": col, "value_set": [True]}
    fields: tuple[str, ...] = (fld,) + ((country,) if country else ())
    if kind == "email":
        derive, derive_arrow = _derived(col, lambda df, t: checks.email_check(df[fld], arrow_text(t, fld)))
        text = "a valid e-mail address"
    elif kind == "uscc":
        derive, derive_arrow = _derived(col, lambda df, t: checks.uscc_check(df[fld], arrow_text(t, fld)))
        text = "a unified social credit code with a correct check character"
    elif kind == "phone":
        derive, derive_arrow = _derived(col, lambda df, t: regionchecks.phone_check(
            df[fld], region=f.region, country=df[country] if country else None, arrow=arrow_text(t, fld)))
        text = f"a valid phone number (default region {f.region})"
    elif kind == "postal_code":
        derive, derive_arrow = _derived(col, lambda df, t: regionchecks.postal_check(
            df[fld], region=f.region, country=df[country] if country else None, arrow=arrow_text(t, fld),
            country_arrow=arrow_text(t, country) if country else None))
        text = "a postal code of the row's country" if country else f"a {f.region} postal code"
    elif kind == "iso_country":
        exp, kwargs, text = "ExpectColumnValuesToBeInSet", {"column": fld, "value_set": list(checks.iso_countries())}, \
            "an ISO 3166-1 alpha-2 country code"
    elif kind == "date":
        exp, kwargs, text = "ExpectColumnValuesToMatchStrftimeFormat", \
            {"column": fld, "strftime_format": "%Y-%m-%d"}, "a date (YYYY-MM-DD after normalisation)"
    elif kind in ("number", "integer"):
        exp, kwargs = "ExpectColumnValuesToMatchRegex", \
            {"column": fld, "regex": NUMBER_REGEX if kind == "number" else INTEGER_REGEX}
        text = "a number" if kind == "number" else "a whole number"
    elif kind == "regex":
        exp, kwargs, text = "ExpectColumnValuesToMatchRegex", {"column": fld, "regex": f.pattern}, \
            f"matching {f.pattern}"
    else:  # no_markup
        exp, kwargs, text = "ExpectColumnValuesToNotMatchRegex", {"column": fld, "regex": MARKUP_REGEX}, \
            "free of HTML markup"
    return Rule(**_sev(f, f"format.{fld}"), kind="format", description=f"{fld} is {text}", expectation=exp,
                kwargs=kwargs, fields=fields, message=f.message or f"{fld} {{value}} is not {text}", derive=derive,
                derive_arrow=derive_arrow)


def _allowed(a: Allowed) -> Rule:
    shown = ", ".join(a.values[:8]) + (" ..." if len(a.values) > 8 else "")
    return Rule(**_sev(a, f"allowed.{a.field}"), kind="allowed", description=f"{a.field} is one of {shown}",
                expectation="ExpectColumnValuesToBeInSet", kwargs={"column": a.field, "value_set": list(a.values)},
                fields=(a.field,), message=a.message or f"{a.field} {{value}} is not one of {shown}")


def _cross(entity: str, i: int, c: CrossField) -> Rule:
    conv = checks.as_dates if c.type == "date" else checks.as_numbers
    op = _OPS[c.op]
    if c.right is None:
        default_id = f"cross.{c.left}_{c.op}_{c.value:g}"
        text = f"{c.left} {op} {c.value:g}"
        a = _derived_name(c.id or default_id, c.left)
        derive: Derive = lambda df, ctx: {a: conv(df[c.left])}
        v = c.value
        exp, kwargs = {
            "ge": ("ExpectColumnValuesToBeBetween", {"column": a, "min_value": v}),
            "gt": ("ExpectColumnValuesToBeBetween", {"column": a, "min_value": v, "strict_min": True}),
            "le": ("ExpectColumnValuesToBeBetween", {"column": a, "max_value": v}),
            "lt": ("ExpectColumnValuesToBeBetween", {"column": a, "max_value": v, "strict_max": True}),
            "eq": ("ExpectColumnValuesToBeBetween", {"column": a, "min_value": v, "max_value": v}),
            "ne": ("ExpectColumnValuesToNotBeInSet", {"column": a, "value_set": [v]}),
        }[c.op]
        fields: tuple[str, ...] = (c.left,)
        message = f"{c.left} {{left}} violates {text}"
    else:
        default_id = f"cross.{c.left}_{c.op}_{c.right}"
        a, b = _derived_name(c.id or default_id, c.left), _derived_name(c.id or default_id, c.right)
        text = f"{c.left} {op} {c.right}"
        derive = lambda df, ctx: {a: conv(df[c.left]), b: conv(df[c.right])}
        skip = "either_value_is_missing"
        if c.op == "eq":
            exp, kwargs = "ExpectColumnPairValuesToBeEqual", {"column_A": a, "column_B": b, "ignore_row_if": skip}
        else:
            first, second = (a, b) if c.op in ("gt", "ge") else (b, a)
            exp, kwargs = "ExpectColumnPairValuesAToBeGreaterThanB", {
                "column_A": first, "column_B": second, "or_equal": c.op in ("ge", "le"), "ignore_row_if": skip}
        fields = (c.left, c.right)
        message = f"{c.left} {{left}} violates {text} ({c.right} {{right}})"
    return Rule(**_sev(c, default_id), kind="cross_field", description=text, expectation=exp, kwargs=kwargs,
                fields=fields, message=c.message or message, derive=derive)


CONTROL_RULE_ID = "control_chars"


def _control_chars(rules: EntityRules) -> Rule:
    """Every data column of every row: no NUL or other control character (keys and reference fields:
    not even tab or line breaks). Always blocking; ``strip_control`` under ``normalise`` removes them
    before this rule runs where the definition says so. The per-row reason is built in
    ``outcome.messages`` because it names whichever column holds the character."""
    ident = rules.identity
    keys = tuple(dict.fromkeys([*ident.key, *ident.alternate_keys, *ident.match_on,
                                *(r.field for r in rules.references)]))
    col = _derived_name(CONTROL_RULE_ID)
    return Rule(rule_id=CONTROL_RULE_ID, kind="control_chars", severity="blocking", mostly=None,
                description="no value holds a control character (NUL, ESC ...; keys not even tab or line breaks)",
                expectation="ExpectColumnValuesToBeInSet", kwargs={"column": col, "value_set": [True]},
                fields=(), derive=lambda df, ctx: {col: controlchars.control_chars_check(df, keys)},
                derive_arrow=lambda df, table, ctx: {col: controlchars.control_chars_check(df, keys, table)},
                message="a value holds a control character", key_fields=keys)


def _reference(entity: str, i: int, r: Reference) -> Rule:
    col = _derived_name(r.id or f"ref.{r.field}")

    def derive(df: pd.DataFrame, ctx: RuleContext) -> dict[str, pd.Series]:
        keys = ctx.valid_keys.get((r.entity, r.key))
        if keys is None:
            raise UsageError(f"definition: entity '{entity}' references '{r.entity}', which this run does not hold",
                             hint=f"extract the '{r.entity}' entity, or remove the reference")
        return {col: checks.reference_check(df[r.field], keys)}

    return Rule(**_sev(r, f"ref.{r.field}"), kind="reference",
                description=f"{r.field} points to a valid {r.entity} row ({r.key})",
                expectation="ExpectColumnValuesToBeInSet", kwargs={"column": col, "value_set": [True]},
                fields=(r.field,), derive=derive, target=(r.entity, r.key),
                message=r.message or f"{r.field} {{value}} matches no valid {r.entity} row ({r.key})")
