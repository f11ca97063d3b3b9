"""Salesforce record Ids: 15-character case-sensitive Ids and their 18-character case-safe form.

An Id is a 3-character key prefix (the object), a 2-character instance part, a reserved character and
a 9-character base-62 counter. The 18-character form appends a 3-character suffix that encodes which
of the 15 characters are upper case, 5 characters per suffix character, so the Id survives
case-insensitive tools such as spreadsheets.
"""

from __future__ import annotations

import re

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
INSTANCE = "Sb"  # the sandbox "pod"; real orgs have e.g. "5g", "Hs"
_ID_RE = re.compile(r"^[0-9A-Za-z]{15}(?:[A-Z0-5]{3})?$")


def checksum(id15: str) -> str:
    """The 3-character case-safe suffix of a 15-character Id."""
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(SUFFIX_CHARS[bits])
    return "".join(out)


def make_id(prefix: str, counter: int) -> str:
    """The 18-character Id of record number ``counter`` of the object with key ``prefix``."""
    digits = []
    n = counter
    for _ in range(9):
        n, r = divmod(n, 62)
        digits.append(BASE62[r])
    id15 = f"{prefix}{INSTANCE}0{''.join(reversed(digits))}"
    return id15 + checksum(id15)


def to18(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character Id, or None if ``value`` is not a well-formed Id.

    An 18-character Id whose first 15 characters lost their case (a spreadsheet upper-cased it) still
    names its record: the suffix spells the case, as Salesforce reads it.
    """
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    if len(value) == 15:
        return value + checksum(value)
    suffix = value[15:].upper()
    chars = list(value[:15])
    for chunk, s in enumerate(suffix):
        bits = SUFFIX_CHARS.index(s)
        for i in range(5):
            ch = chars[chunk * 5 + i]
            if bits >> i & 1:
                if not ch.isalpha():
                    return None
                chars[chunk * 5 + i] = ch.upper()
            else:
                chars[chunk * 5 + i] = ch.lower()
    return "".join(chars) + suffix


def is_id(value: str) -> bool:
    """True when ``value`` is a well-formed 15- or 18-character Id."""
    return to18(value) is not None
