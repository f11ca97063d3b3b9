"""How the rows of one real company are found and merged: ``identity.resolution`` in the definition.

``match_on`` (on the identity) lists the exact keys; ``resolution`` adds the probabilistic comparison
(which columns hold the name, address, phone and city), the two score thresholds and the
survivorship rules that build one golden record per company::

    identity:
      key: customer_no
      match_on: [credit_code, customer_no]
      resolution:
        compare: {name: name, address: address, phone: phone, city: city}
        merge_threshold: 0.99      # at or above: merged
        review_threshold: 0.80     # from here up to merge_threshold: the steward decides
        prefer: [sales, finance, service]
        survivorship:
          "*": department          # first non-empty value in department order
          phone: {rule: newest, by: created_on}
          address: most_complete

Kept in a module of its own so the definition file stays about one thing per model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
RULES = ("department", "newest", "most_complete")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Survivorship(_Strict):
    """Which row's value a golden-record field takes.

    ``department``: the first non-empty value in department order (``prefer``, else the resolution's).
    ``newest``: the non-empty value of the row with the latest ``by`` date (ties: department order).
    ``most_complete``: the longest non-empty value (ties: department order)."""

    rule: Literal["department", "newest", "most_complete"] = "department"
    prefer: list[str] = Field(default_factory=list)
    by: str | None = Field(None, pattern=_IDENT, description="newest: the column holding the row's date")

    @model_validator(mode="after")
    def _by(self):
        if self.rule == "newest" and not self.by:
            raise PydanticCustomError("invalid", "rule 'newest' needs 'by': the column with the row's date")
        if self.rule != "newest" and self.by:
            raise PydanticCustomError("invalid", f"'by' only applies to rule 'newest', not '{self.rule}'")
        return self


class Compare(_Strict):
    """Columns compared probabilistically (any may be left out; ``name`` is needed for fuzzy matching)."""

    name: str | None = Field("name", pattern=_IDENT)
    address: str | None = Field(None, pattern=_IDENT)
    phone: str | None = Field(None, pattern=_IDENT)
    city: str | None = Field(None, pattern=_IDENT)
    credit_code: str | None = Field(None, pattern=_IDENT,
                                    description="the company registration code: two different codes never merge")


class Resolution(_Strict):
    compare: Compare = Field(default_factory=Compare)
    merge_threshold: float = Field(0.99, gt=0, le=1)
    review_threshold: float = Field(0.80, gt=0, le=1)
    prefer: list[str] = Field(default_factory=list, description="department order for survivorship")
    survivorship: dict[str, Survivorship] = Field(default_factory=dict)
    fuzzy: bool = Field(True, description="false: exact keys only, no probabilistic matching")

    @field_validator("survivorship", mode="before")
    @classmethod
    def _short_form(cls, v):
        if isinstance(v, dict):
            return {k: ({"rule": r} if isinstance(r, str) else r) for k, r in v.items()}
        return v

    @field_validator("survivorship")
    @classmethod
    def _field_names(cls, v):
        import re

        for f in v:
            if f != "*" and not re.match(_IDENT, f):
                raise PydanticCustomError("invalid", f"'{f}' is not a field name (or '*' for every field)")
        return v

    @model_validator(mode="after")
    def _band(self):
        if self.review_threshold > self.merge_threshold:
            raise PydanticCustomError("invalid", f"review_threshold {self.review_threshold} is above merge_threshold "
                                      f"{self.merge_threshold}: the review band runs from review_threshold up to "
                                      "merge_threshold")
        return self

    def rule_for(self, field: str) -> Survivorship:
        return self.survivorship.get(field) or self.survivorship.get("*") or Survivorship()
