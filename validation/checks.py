"""Checks no great-expectations built-in expresses, computed in pandas as derived columns.

Each function returns a Series of ``True`` (conforms), ``False`` (violates) or ``None`` (value
missing: not this rule's business; ``required`` rules catch missing values). A GX expectation
(``expect_column_values_to_be_in_set([True])``) then asserts the derived column, so every rule still
runs through GX and its failing rows come back by ``_row_id``. Work is done once per distinct value:
legacy columns repeat values a lot, which keeps a million rows fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from crmbridge.validation.columntext import present_texts

if TYPE_CHECKING:
    import pyarrow as pa

# GB 32100-2015: registration authority (1-9, A, N, Y), category, 6-digit region, 9-char
# organisation code, check character. Alphabet excludes I, O, S, V, Z.
_USCC = re.compile(r"^[0-9ANY][0-9A-HJ-NPQRTUWXY]\d{6}[0-9A-HJ-NPQRTUWXY]{9}[0-9A-HJ-NPQRTUWXY]$")

def by_distinct(series: pd.Series, fn: Callable[[str], bool]) -> pd.Series:
    """Apply ``fn`` once per distinct present value; missing values give ``None``."""
    present = series.notna()
    out = np.full(len(series), None, dtype=object)
    if present.any():
        codes, uniques = pd.factorize(series[present])
        res = np.array([bool(fn(str(u))) for u in uniques] + [False], dtype=object)
        out[present.to_numpy()] = res[codes]
    return pd.Series(out, index=series.index, dtype=object)


@lru_cache(maxsize=None)
def _stdnum_uscc():
    from stdnum.cn import uscc

    return uscc


def uscc_valid(value: str) -> bool:
    """Unified social credit code with a correct check character.

    python-stdnum's ``is_valid`` rejects codes whose first character is A, N or Y, which
    GB 32100-2015 allows; its ``calc_check_digit`` handles them, so those go through it directly.
    """
    uscc = _stdnum_uscc()
    # The value as it stands: stdnum would accept "9131 0000 ..." after compacting, but the spaced
    # text is what would be loaded. Declare a ``replace`` normaliser to remove separators.
    if not _USCC.match(value):
        return False
    try:
        if value[0] in ("A", "N", "Y"):
            return uscc.calc_check_digit(value[:17]) == value[17]
        return bool(uscc.is_valid(value))
    except ValueError:  # a digit outside ASCII (the pattern's \d takes any): no check character to compute
        return False


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], dtype=np.int32)


def uscc_valid_many(values) -> np.ndarray:
    """``uscc_valid`` for many values (str, or an Arrow string array) in a few Arrow and numpy passes: the
    same shape rule, the same digits-only registration prefix that stdnum's ``validate`` demands (except for
    A, N, Y), the same weighted check character. Values that are not ASCII (``\\d`` matches any Unicode digit in Python)
    go through ``uscc_valid`` itself, once per distinct value. Proved equal value by value in
    tests/validation/test_checks.py."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from crmbridge.mappings.transforms_arrow import flags, strings

    # an Arrow string array (``uscc_check``'s Arrow text) as it is; str values converted, and kept for the
    # values Arrow cannot hold (a lone surrogate, null there), which go to uscc_valid as they are
    vals = None if isinstance(values, pa.Array) else np.asarray(values, dtype=object)
    arr = values if vals is None else strings(vals)
    wide = ~flags(pc.string_is_ascii(arr))
    # re.match like uscc_valid: its "$" also accepts one trailing newline, which stdnum then strips.
    shape = _USCC.pattern.removesuffix("$") + r"\n?$"
    ok = flags(pc.match_substring_regex(arr, shape)) & ~wide
    out = np.zeros(len(arr), dtype=bool)
    if wide.any():
        rest = arr.filter(wide).to_numpy(zero_copy_only=False) if vals is None else vals[wide]
        out[wide] = by_distinct(pd.Series(rest, dtype=object), uscc_valid).to_numpy(dtype=bool)
    if not ok.any():
        return out
    # The first 18 bytes of each shaped value, read from the Arrow buffers (the shape makes them ASCII):
    # a view when every value is 18 bytes (no trailing newline), else gathered.
    shaped = arr.filter(ok)
    offsets = np.frombuffer(shaped.buffers()[1], dtype=np.int32)[shaped.offset:shaped.offset + len(shaped) + 1]
    data = np.frombuffer(shaped.buffers()[2], dtype=np.uint8)
    if offsets[-1] - offsets[0] == 18 * len(shaped):
        chars = data[offsets[0]:offsets[-1]].reshape(-1, 18)
    else:
        chars = data[offsets[:-1, None] + np.arange(18)]
    idx = np.take(_uscc_table(), chars)
    check = np.mod(31 - idx[:, :17].astype(np.int32) @ _USCC_WEIGHTS, 31)
    good = check == idx[:, 17]
    first = chars[:, 0]
    any_prefix = (first == ord("A")) | (first == ord("N")) | (first == ord("Y"))
    # stdnum's is_valid: the first 8 characters are digits (the regex already fixes 0 and 2-7).
    digit2 = (chars[:, 1] >= ord("0")) & (chars[:, 1] <= ord("9"))
    out[ok] = good & (any_prefix | digit2)
    return out


@lru_cache(maxsize=1)
def _uscc_table() -> np.ndarray:
    """Byte -> the character's value in the USCC alphabet (0 for bytes outside it)."""
    table = np.zeros(256, dtype=np.uint8)
    for i, ch in enumerate(_USCC_ALPHABET):
        table[ord(ch)] = i
    return table


def uscc_check(series: pd.Series, arrow=None) -> pd.Series:
    """``uscc_valid`` per row, computed in one vectorised pass over the present values' text (``arrow``: the
    column as Arrow text, ``columntext.arrow_text``)."""
    from crmbridge.mappings.transforms_arrow import flags

    if arrow is not None:
        present = flags(arrow.is_valid())
        text = arrow.filter(present) if present.any() else None
    else:
        present, text = present_texts(series)
        text = text[present]
    out = np.full(len(series), None, dtype=object)
    if present.any():
        out[present] = uscc_valid_many(text).astype(object)
    return pd.Series(out, index=series.index, dtype=object)


def email_valid(value: str) -> bool:
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def text_dictionary(series: pd.Series, arrow=None) -> tuple[np.ndarray, "pa.Array", np.ndarray]:
    """(present, the distinct texts (``texts``) as an Arrow dictionary, each row's position in it, -1 where
    missing): for fast paths that read only a value's text, so values with one text share a verdict. Text
    UTF-8 cannot hold counts as missing here, which leaves it to the library. ``arrow``: the column as Arrow
    text (``columntext.arrow_text``), read as it is."""
    import pyarrow.compute as pc

    from crmbridge.mappings.transforms_arrow import flags, strings

    if arrow is not None:
        present = flags(arrow.is_valid())
    else:
        present, text = present_texts(series)
        arrow = strings(text)
    enc = arrow.dictionary_encode()
    return present, enc.dictionary, pc.fill_null(enc.indices, -1).to_numpy()


def _email_fast(series: pd.Series, arrow=None) -> tuple[np.ndarray, np.ndarray]:
    """(present, True for plainly written ASCII addresses email-validator accepts as they stand (the e-mail
    transform's fast path, ``transforms_contact.plain_emails``); False for every value left to it)."""
    from crmbridge.mappings.transforms_contact import plain_emails

    present, distinct, at = text_dictionary(series, arrow)
    return present, np.append(plain_emails(distinct), False)[at]


def email_check(series: pd.Series, arrow=None) -> pd.Series:
    """``email_valid`` per row (``arrow``: the column as Arrow text, ``columntext.arrow_text``)."""
    present, fast = _email_fast(series, arrow)
    return combine_verdicts(series, present, fast, fast, lambda rest: by_distinct(series[rest], email_valid))


def combine_verdicts(series: pd.Series, present: np.ndarray, decided: np.ndarray, valid: np.ndarray,
                     slow: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``valid`` where a fast path ``decided``, the library's verdict (``slow`` of the mask of the rows left)
    for the other ``present`` values, else None."""
    out = np.full(len(series), None, dtype=object)
    out[decided] = valid[decided]
    rest = present & ~decided
    if rest.any():
        out[rest] = slow(pd.Series(rest, index=series.index)).to_numpy(dtype=object)
    return pd.Series(out, index=series.index, dtype=object)


def reference_check(series: pd.Series, valid_keys) -> pd.Series:
    """True where the value is among ``valid_keys`` (the referenced entity's valid rows): a
    ``mappings.keyindex.KeyIndex`` (built batch by batch by the stage) or a Series/set of keys."""
    from crmbridge.mappings.keyindex import KeyIndex

    present = series.notna()
    out = pd.Series(None, index=series.index, dtype=object)
    if isinstance(valid_keys, KeyIndex):
        out[present] = valid_keys.contains(series[present].to_numpy(dtype=object)).astype(object)
        return out
    keys = pd.Index(pd.unique(pd.Series(list(valid_keys) if isinstance(valid_keys, set) else valid_keys).dropna()))
    out[present] = series[present].isin(keys).astype(object)
    return out


# --------------------------------------------------------------------------- key indexes (cross-row rules)
#
# Uniqueness and references look at every row of an entity, but the stage holds one batch at a time.
# Uniqueness keeps 32- or 64-bit hashes (4 or 8 bytes a row) plus, where a hash alone could be wrong, the exact
# text: a hash only nominates candidates, the verdict always compares the values themselves. A
# reference's valid parent keys are a ``mappings.keyindex.KeyIndex`` (sorted, exact), the index map uses.


def _hash(values: np.ndarray) -> np.ndarray:
    """uint64 per value (pandas' siphash of the text), not categorized: the same hashes, 5x cheaper."""
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False)


_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd (2^64 / golden ratio): mixes a compound key's column hashes


def _key_columns(df: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[pd.Series]]:
    cols = [df[c] if c in df.columns else pd.Series(None, index=df.index, dtype=object) for c in columns]
    present = np.ones(len(df), dtype=bool)
    for c in cols:
        present &= c.notna().to_numpy()
    return present, cols


def _column_text(column: pd.Series, present: np.ndarray) -> np.ndarray:
    """A key column's present values as ``key_text`` writes them: pandas' ``astype(str)``, which leaves a
    ``str`` as it is (NULs included), so a column of ``str`` is its own text. (A key of one column once
    went through numpy's ``astype(str)``, which drops trailing NULs: ``C001\\0`` counted as ``C001``.)"""
    values = column.to_numpy(dtype=object)[present]
    if pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty"):
        return values
    return column[present].astype(str).to_numpy(dtype=object)


def table_presence(t, columns: list[str]) -> np.ndarray:
    """``_key_columns``' rows with every key column present, for the frame an Arrow table ``t`` converts to
    without making missing values of present ones (text and integers, ``parquetsink.ParquetSink.exact``; a
    float NaN would be valid in Arrow): its rows valid in every key column, none where ``t`` lacks one."""
    present = np.ones(t.num_rows, dtype=bool)
    for c in columns:
        if c not in t.column_names:
            present[:] = False
        else:
            present &= t.column(c).is_valid().to_numpy(zero_copy_only=False)
    return present


def key_text(df: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(present, text): rows with every key column present, and one exact text per such row. Several
    columns are joined length-prefixed (``3:abc2:de``), so no value can fake a separator."""
    present, cols = _key_columns(df, columns)
    if len(cols) == 1:
        return present, _column_text(cols[0], present)
    parts = []
    for c in cols:
        t = pd.Series(_column_text(c, present), dtype=object)
        parts.append(t.str.len().astype(str) + ":" + t)
    return present, sum(parts[1:], parts[0]).to_numpy(dtype=object)


class DuplicateFinder:
    """Finds the key values that occur more than once over many batches: ``add`` every batch (hashes
    only), then ``confirm`` every batch again for the few rows whose hash repeats, then ``index``.

    ``hash_bits=32`` keeps 4 bytes a row instead of 8: a hash only nominates candidates, so a shorter
    one costs more rows to confirm (about n²/2³³ colliding pairs: some 3,000 at 5M rows), which is cheap
    when ``confirm`` reads a local spill (the pandas stage) and not when it reads a database again.
    ``same_rows``: ``confirm`` sees the rows ``add`` saw, in order: it reuses their hashes, kept in row order."""

    def __init__(self, columns: list[str], hash_bits: int = 64, *, same_rows: bool = False):
        self.columns = list(columns)
        self._dtype = {32: np.uint32, 64: np.uint64}[hash_bits]
        self._hashes: list[np.ndarray] = []
        self._candidates: np.ndarray | None = None
        self._texts: list[np.ndarray] = []
        self._same_rows, self._kept, self._at = same_rows, None, 0  # _at: rows of _kept confirm has seen

    def _hash_of(self, text: np.ndarray) -> np.ndarray:
        return _hash(text).astype(self._dtype, copy=False)  # 32 bits: the low half of siphash

    def _row_hashes(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(present, a hash per present row) without the key text: a compound key's columns hashed one by
        one and mixed (the length-prefixed join is one-to-one, so equal keys get equal hashes)."""
        present, cols = _key_columns(df, self.columns)
        if len(cols) == 1:
            return present, self._hash_of(_column_text(cols[0], present))
        h = np.zeros(int(present.sum()), dtype=np.uint64)
        for c in cols:
            h = h * _MIX ^ _hash(_column_text(c, present))
        return present, (h ^ (h >> np.uint64(32))).astype(self._dtype, copy=False)

    def add(self, df: pd.DataFrame) -> None:
        self._hashes.append(self._row_hashes(df)[1])

    @property
    def needs_confirm(self) -> bool:
        """True when some hash repeats (then ``confirm`` must see every batch again)."""
        if self._candidates is None:
            h = np.concatenate(self._hashes) if self._hashes else np.zeros(0, dtype=self._dtype)
            self._hashes = []
            if self._same_rows:  # sorted as a copy: confirm reads the kept hashes in row order
                self._kept, h = h, np.sort(h)
            else:
                h.sort()  # in place: no second copy
            rep = h[1:] == h[:-1]
            self._candidates = np.unique(h[1:][rep])
        return bool(len(self._candidates))

    def confirm(self, df: pd.DataFrame) -> None:
        if not self.needs_confirm:
            return
        if self._kept is None:
            present, hashes = self._row_hashes(df)
        else:
            present, hashes = self._next_kept(_key_columns(df, self.columns)[0])
        self._nominated(present, hashes, lambda rows: df.iloc[rows])

    def confirm_rows(self, present: np.ndarray, rows_of) -> None:
        """``confirm`` (``same_rows`` only) of a batch given as ``present``, its rows with every key column
        present, and ``rows_of(positions)``, its rows there as ``df.iloc`` gives them: validate's spill tells
        presence in Arrow (``table_presence``) and converts only the nominated rows."""
        if not self._same_rows:
            raise ValueError("DuplicateFinder.confirm_rows needs same_rows=True: it reuses add's hashes")
        if self.needs_confirm:
            self._nominated(*self._next_kept(present), rows_of)

    def _nominated(self, present: np.ndarray, hashes: np.ndarray, rows_of) -> None:
        hit = np.isin(hashes, self._candidates)
        if hit.any():  # the text of the nominated rows only (key_text is row by row)
            rows = np.flatnonzero(present)[hit]
            self._texts.append(key_text(rows_of(rows), self.columns)[1])

    def _next_kept(self, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._at += int(present.sum())
        return present, self._kept[self._at - int(present.sum()):self._at]

    def index(self) -> "DuplicateIndex":
        if self.needs_confirm and self._kept is not None and self._at != len(self._kept):
            raise RuntimeError(f"DuplicateFinder(same_rows=True): confirm saw {self._at} keys, add {len(self._kept)}")
        texts = pd.Series(np.concatenate(self._texts) if self._texts else np.zeros(0, dtype=object), dtype=object)
        counts = texts.value_counts()
        return DuplicateIndex(self.columns, pd.Index(counts.index[counts.to_numpy() > 1], dtype=object))


@dataclass
class DuplicateIndex:
    """The exact key texts (``key_text``) that occur more than once in the whole entity."""

    columns: list[str]
    values: pd.Index
    # ``keycheck``'s per-column parts of ``values`` (Arrow arrays), by number of columns: read once, not per batch
    parts: dict[int, list | None] = field(default_factory=dict, repr=False, compare=False)


def unique_check(df: pd.DataFrame, columns: list[str], index: DuplicateIndex | None = None) -> pd.Series:
    """Per row: True (its key is unique), False (it occurs again), None (a key column is missing, the
    rows GX's unique expectations skip). Without ``index`` the rows given are the whole population."""
    out = np.full(len(df), None, dtype=object)
    present, text = key_text(df, columns)
    if index is None:
        dup = pd.Series(text, dtype=object).duplicated(keep=False).to_numpy()
    else:
        dup = pd.Series(text, dtype=object).isin(index.values).to_numpy()
    out[present] = ~dup
    return pd.Series(out, index=df.index, dtype=object)


@lru_cache(maxsize=1)
def iso_countries() -> tuple[str, ...]:
    """Every ISO 3166-1 alpha-2 code (pycountry)."""
    import pycountry

    return tuple(sorted(c.alpha_2 for c in pycountry.countries))


def as_dates(series: pd.Series) -> pd.Series:
    """ISO dates (what the ``date`` transform writes) as datetime64; anything else becomes NaT."""
    return pd.to_datetime(series.astype(object), format="%Y-%m-%d", errors="coerce")


def as_numbers(series: pd.Series) -> pd.Series:
    """Normalised numbers as float; anything else becomes NaN."""
    fast = _plain_integers(series)
    if fast is not None:
        return fast
    return pd.to_numeric(series.astype(object), errors="coerce").astype("float64")


# Integers of at most 15 digits, the way the ``number`` transform writes whole numbers ("-0" and leading
# zeros aside). pandas reads such a column as int64 (beside a missing value: as floats parsed digit by
# digit), Arrow casts them to int64: below 2**53 each is the same float either way.
_PLAIN_INT = r"^(?:0|-?[1-9][0-9]{0,14})$"


def _plain_integers(series: pd.Series) -> pd.Series | None:
    """``as_numbers`` of a text column whose present values are all plain integers, in one Arrow cast;
    None for any other column. Proved equal, bit for bit, in tests/validation/test_checks.py."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from crmbridge.mappings.transforms_arrow import flags

    if series.dtype != object and not pd.api.types.is_string_dtype(series.dtype):
        return None
    try:
        arr = pa.array(series.array if series.dtype != object else series.to_numpy(), type=pa.string(), from_pandas=True)
    except (pa.ArrowException, UnicodeEncodeError):  # not all text (or text UTF-8 cannot hold)
        return None
    valid = flags(arr.is_valid())
    if int(flags(pc.match_substring_regex(arr, _PLAIN_INT)).sum()) != int(valid.sum()):
        return None
    out = np.full(len(series), np.nan)
    out[valid] = pc.cast(arr.filter(valid), pa.int64()).to_numpy().astype(np.float64)
    return pd.Series(out, index=series.index, name=series.name, dtype="float64")
