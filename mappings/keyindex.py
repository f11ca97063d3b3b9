"""Compact, exact sets of key values for the cross-row checks of validate (a reference's valid parent
keys) and map (duplicate external IDs, parents' mapped and quarantined keys).

A Python ``set`` of 5M short strings costs about 400 MB; the same keys as a sorted NumPy array of
fixed-width UTF-8 bytes cost their longest key's length each (11 bytes for ``C0000001``) and answer a
membership question for a whole batch with one vectorised ``searchsorted``. Exact: no hashing; each
key ends in a 0x01 byte, because fixed-width arrays drop trailing NULs (``"a\0"`` would equal ``"a"``).
NumPy's variable-width ``StringDType`` would need no marker, but its ``searchsorted`` failed here
("Failed to load string in string comparison") and missed keys (numpy 2.4.6).

Fixed-width bytes were chosen over sorted 64-bit hashes + the values (to confirm a hash): for the keys
these projects hold (customer numbers, credit codes, external IDs of 8 to 20 characters) a key costs
its length + 1 byte instead of 8 bytes of hash + the text and its offset (about 20 to 36 bytes). So
that one garbage key of 200 characters cannot widen every slot to 200 bytes, keys longer than
``WIDEST`` bytes (rare: keys are short) are kept apart, exactly, in a Python set (``long``).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np
import pandas as pd

STRINGS = np.dtype("S1")
_END = b"\x01"
WIDEST = 64  # bytes of a key in the sorted array (UTF-8 + the end marker); longer keys go to ``long``


def _strings(values) -> np.ndarray:
    """Present values as a fixed-width bytes array, each UTF-8 encoded + 0x01 (None / NaN left out)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "S":
        return values
    s = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    s = s[s.notna()]
    if not len(s):
        return np.array([], dtype=STRINGS)
    values = s.to_numpy(dtype=object)
    fast = _utf8_rows(values)
    if fast is not None:
        return fast
    return np.array([str(v).encode("utf-8", "surrogatepass") + _END for v in values], dtype=bytes)


def _utf8_rows(values: np.ndarray) -> np.ndarray | None:
    """``_strings`` of an object array of ``str`` without a Python call per value: Arrow encodes them as
    UTF-8 (None when a value is not a ``str``, or holds a lone surrogate: the per-value path keeps
    those), and the bytes are laid out in fixed-width slots by NumPy, each slot ending in the marker."""
    import pyarrow as pa

    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowException, UnicodeError):
        return None
    return _slots(arr)


def arrow_keys(arr) -> np.ndarray:
    """``_strings`` of an Arrow ``string`` array (its present values)."""
    arr = arr.drop_null()
    fast = _slots(arr) if len(arr) else None
    return fast if fast is not None else _strings(pd.Series(arr.to_pylist(), dtype=object))


def _slots(arr) -> np.ndarray | None:
    """An Arrow ``string`` array without nulls laid out as ``_strings`` does (None: not such an array)."""
    import pyarrow as pa

    if not isinstance(arr, pa.Array) or arr.type != pa.string() or arr.null_count:  # (a ChunkedArray: past 2 GiB)
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else \
        np.zeros(0, dtype=np.uint8)
    lens = np.diff(offsets)
    width = int(lens.max()) + 1
    out = np.zeros((len(arr), width), dtype=np.uint8)
    if len(data) and lens.min() == width - 1:  # keys of one length (customer numbers): their bytes row by row
        out[:, :-1] = data[offsets[0]:offsets[-1]].reshape(len(arr), width - 1)
    elif len(data):
        rows = np.repeat(np.arange(len(arr)), lens)
        cols = np.arange(int(offsets[-1] - offsets[0])) - np.repeat(offsets[:-1] - offsets[0], lens)
        out[rows, cols] = data[offsets[0]:offsets[-1]]
    out[np.arange(len(arr)), lens] = 1  # the end marker
    return out.view(f"S{width}").ravel()


def _short(keys: np.ndarray) -> np.ndarray | None:
    """Which keys have at most ``WIDEST`` bytes (None: all of them)."""
    return None if keys.dtype.itemsize <= WIDEST else np.char.str_len(keys) <= WIDEST


def _narrow(keys: np.ndarray) -> np.ndarray:
    return keys.astype(f"S{max(1, int(np.char.str_len(keys).max()))}") if len(keys) else keys.astype(STRINGS)


def _split(keys: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
    """(the keys of at most ``WIDEST`` bytes, as narrow as they allow; the longer ones, as bytes)."""
    short = _short(keys)
    if short is None:
        return keys, []
    return _narrow(keys[short]), keys[~short].tolist()


def _sorted_distinct(arrays: list[np.ndarray]) -> np.ndarray:
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return np.array([], dtype=STRINGS)
    allk = np.concatenate(arrays)
    del arrays
    allk.sort()  # in place: no second copy of every key, as np.unique would make
    first = np.ones(len(allk), dtype=bool)
    first[1:] = allk[1:] != allk[:-1]
    return allk[first]


def _sorted_all(parts: Iterable[np.ndarray]) -> tuple[np.ndarray, Counter]:
    """(every key of ``parts`` of at most ``WIDEST`` bytes, sorted, repeats kept; the longer ones counted)."""
    arrays, long = [], Counter()
    for p in parts:
        keys, more = _split(p)
        arrays.append(keys)
        long.update(more)
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return np.array([], dtype=STRINGS), long
    allk = np.concatenate(arrays)
    del arrays
    allk.sort()  # in place: no second copy of every key
    return allk, long


class KeyIndex:
    """Distinct keys (strings): a sorted fixed-width array (``keys``) and the rare longer ones (``long``)."""

    __slots__ = ("keys", "long")

    def __init__(self, keys: np.ndarray, long: frozenset = frozenset()):
        self.keys, self.long = _split(keys)
        self.long = frozenset(self.long) | long

    @classmethod
    def of(cls, values) -> "KeyIndex":
        """The distinct present values of ``values`` (a Series, array or iterable of strings)."""
        keys, long = _split(_strings(values))
        return cls(_sorted_distinct([keys]), frozenset(long))

    @classmethod
    def union(cls, parts: Iterable["KeyIndex | np.ndarray"]) -> "KeyIndex":
        arrays, long = [], set()
        for p in parts:
            keys, more = (p.keys, p.long) if isinstance(p, KeyIndex) else _split(_strings(p))
            arrays.append(keys)
            long.update(more)
        return cls(_sorted_distinct(arrays), frozenset(long))

    @classmethod
    def duplicates(cls, parts: Iterable[np.ndarray]) -> "KeyIndex":
        """The values occurring more than once across all of ``parts`` (arrays of keys, repeats kept)."""
        allk, long = _sorted_all(parts)
        same = allk[1:] == allk[:-1]
        return cls(np.unique(allk[1:][same]), frozenset(k for k, n in long.items() if n > 1))

    @classmethod
    def tally(cls, parts: Iterable[np.ndarray]) -> tuple["KeyIndex", "KeyIndex"]:
        """``(duplicates(parts), union(parts))`` from one sort of the keys."""
        allk, long = _sorted_all(parts)
        same = allk[1:] == allk[:-1]
        first = np.ones(len(allk), dtype=bool)
        first[1:] = ~same
        return (cls(np.unique(allk[1:][same]), frozenset(k for k, n in long.items() if n > 1)),
                cls(allk[first], frozenset(long)))

    def __len__(self) -> int:
        return len(self.keys) + len(self.long)

    def __contains__(self, value) -> bool:
        return bool(self.contains(pd.Series([value], dtype=object))[0])

    def contains(self, values) -> np.ndarray:
        """One bool per value of ``values`` (missing values are never in the index)."""
        s = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
        out = np.zeros(len(s), dtype=bool)
        if not len(self) or not len(s):
            return out
        present = s.notna().to_numpy()
        out[present] = self.contains_strings(_strings(s[present]))
        return out

    def contains_strings(self, q: np.ndarray) -> np.ndarray:
        """``contains`` of keys already laid out by ``_strings`` (a fixed-width bytes array)."""
        if not len(self) or not len(q):
            return np.zeros(len(q), dtype=bool)
        if q.dtype.itemsize > self.keys.dtype.itemsize:  # longer than every key in ``keys``
            fits = np.char.str_len(q) <= self.keys.dtype.itemsize
            hit = np.array([not f and k in self.long for f, k in zip(fits, q.tolist())], dtype=bool) \
                if self.long else np.zeros(len(q), dtype=bool)
            q = np.where(fits, q, b"").astype(self.keys.dtype)
        else:
            fits, hit = None, np.zeros(len(q), dtype=bool)
            q = q.astype(self.keys.dtype)
        if len(self.keys):
            pos = np.searchsorted(self.keys, q)
            found = self.keys[np.minimum(pos, len(self.keys) - 1)] == q
            hit |= found if fits is None else found & fits
        return hit

    def __iter__(self):
        return (k[:-1].decode("utf-8", "surrogatepass") for k in [*self.keys.tolist(), *sorted(self.long)])


class KeyCollector:
    """A ``KeyIndex`` built batch by batch: ``add`` each batch's values (only that batch's distinct keys
    are kept), then ``freeze`` once for the index (what validate does with a parent's valid keys)."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[KeyIndex] = []

    def add(self, values) -> None:
        part = KeyIndex.of(values)
        if len(part):
            self._parts.append(part)

    def freeze(self) -> KeyIndex:
        parts, self._parts = self._parts, []
        return KeyIndex.union(parts)


class KeyedText:
    """A compact ``{key: text}`` (the reason of each quarantined parent key): keys sorted as in
    ``KeyIndex``, texts in one Arrow string array. Built from parts added in order; for a key added
    twice the later text wins, as with ``dict.update``. Keys longer than ``WIDEST`` bytes: ``long``."""

    __slots__ = ("keys", "texts", "long")

    def __init__(self, keys: np.ndarray | None = None, texts=None, long: dict | None = None):
        import pyarrow as pa

        self.keys = keys if keys is not None else np.array([], dtype=STRINGS)
        self.texts = texts if texts is not None else pa.array([], type=pa.large_string())
        self.long = long or {}

    @classmethod
    def build(cls, parts: Iterable[tuple[np.ndarray, list[str]]]) -> "KeyedText":
        """``parts``: (keys as ``_strings`` arrays, their texts: a list or an Arrow string array), in the
        order a dict would be updated."""
        import pyarrow as pa

        parts = [(k, t) for k, t in parts if len(k)]
        long: dict[bytes, str] = {}
        for i, (k, t) in enumerate(parts):
            short = _short(k)
            if short is not None:  # in order, so that a later text wins here too
                t = t.to_pylist() if isinstance(t, pa.Array) else t
                long.update(zip(k[~short].tolist(), [x for x, s in zip(t, short) if not s]))
                parts[i] = (_narrow(k[short]), [x for x, s in zip(t, short) if s])
        parts = [(k, t) for k, t in parts if len(k)]
        if not parts:
            return cls(long=long)
        keys = np.concatenate([k for k, _ in parts])
        texts = pa.chunked_array([t.cast(pa.large_string()) if isinstance(t, pa.Array)
                                  else pa.array(t, type=pa.large_string()) for _, t in parts]).combine_chunks()
        del parts
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = keys[1:] != keys[:-1]
        keep = order[last]
        return cls(keys[last], texts.take(pa.array(keep)), long)

    def update(self, other: "KeyedText | dict") -> None:
        if isinstance(other, dict):
            other = KeyedText.build([(_strings(pd.Series(list(other), dtype=object)), list(other.values()))])
        self.long = {**self.long, **other.long}
        if not len(self.keys):
            self.keys, self.texts = other.keys, other.texts
            return
        merged = KeyedText.build([(self.keys, self.texts.to_pylist()), (other.keys, other.texts.to_pylist())])
        self.keys, self.texts = merged.keys, merged.texts

    def __len__(self) -> int:
        return len(self.keys) + len(self.long)

    def get(self, key, default=None):
        if key is None or not len(self):
            return default
        q = str(key).encode("utf-8", "surrogatepass") + _END
        if len(q) > WIDEST:
            return self.long.get(q, default)
        if len(q) > self.keys.dtype.itemsize or not len(self.keys):
            return default
        i = int(np.searchsorted(self.keys, np.array(q, dtype=self.keys.dtype)))
        if i < len(self.keys) and self.keys[i] == q:
            return self.texts[i].as_py()
        return default

    def key_index(self) -> KeyIndex:
        return KeyIndex(self.keys, frozenset(self.long))
