"""Describe metadata, fetched once per connector (objects and fields do not change mid-run)."""

from __future__ import annotations

import difflib
import re
from typing import Callable

from crmbridge.errors import UsageError


class DescribeCache:
    """``describe_global`` and per-object ``describe`` results, cached; unknown objects are usage errors."""

    def __init__(self, call: Callable[[Callable[[], object], str], object], sf_getter: Callable[[], object]):
        self._call = call
        self._sf = sf_getter
        self._global: dict | None = None
        self._objects: dict[str, dict] = {}
        self._fields: dict[str, dict[str, dict]] = {}

    def describe_global(self) -> dict:
        if self._global is None:
            self._global = dict(self._call(lambda: self._sf().describe(), "describe global") or {})
        return self._global

    def object_names(self) -> list[str]:
        return [o["name"] for o in self.describe_global().get("sobjects", [])]

    def describe(self, sobject: str) -> dict:
        if not isinstance(sobject, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", sobject):
            raise UsageError(f"'{sobject}' is not a Salesforce object API name",
                             hint="API names look like Account or Inventory__c")
        if sobject not in self._objects:
            from simple_salesforce.exceptions import SalesforceResourceNotFound

            try:
                d = self._call(lambda: self._sf().restful(f"sobjects/{sobject}/describe"), f"describe {sobject}")
            except SalesforceResourceNotFound:
                raise self._unknown(sobject) from None
            if not d:
                raise self._unknown(sobject)
            self._objects[sobject] = dict(d)
        return self._objects[sobject]

    def field_map(self, sobject: str) -> dict[str, dict]:
        if sobject not in self._fields:
            self._fields[sobject] = {f["name"]: dict(f) for f in self.describe(sobject).get("fields", [])}
        return self._fields[sobject]

    def relationship_fields(self, sobject: str) -> dict[str, str]:
        """Relationship name -> lookup field (``Account`` -> ``AccountId``)."""
        return {f["relationshipName"]: name for name, f in self.field_map(sobject).items()
                if f.get("relationshipName")}

    def _unknown(self, sobject: str) -> UsageError:
        try:
            names = self.object_names()
        except Exception:  # noqa: BLE001 - the hint is a courtesy, the error stands without it
            names = []
        close = difflib.get_close_matches(sobject, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "check the object's API name (e.g. Account, Contact, Inventory__c)"
        return UsageError(f"Salesforce object '{sobject}' does not exist in this org", hint=hint)
