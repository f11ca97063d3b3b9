"""Arrow twins of mapped text columns: the records writer takes them instead of converting the column.

A mapped text field is an object column of Python strings (the engine's transforms work on those), and
the records writer converted it back to Arrow value by value, after a pass over the values for their
types (``output.RecordsWriter``). Most of these columns came *from* Arrow: the rows a chain leaves
unchanged are the input's Arrow array (``unchanged.py``), the others are a few distinct values spread
by codes (``distinct.Encoded``). Their twin is built from those in Arrow's C loops: the same values
(a ``str`` per present value, checked by exact type; missing as null) as the column, row for row.

A ``number`` chain on plain whole numbers (``plainnumbers.py``) gives its column of Python floats a
``float64`` twin the same way.

``twin_table`` is then ``pa.Table.from_pandas`` of the records with the twins put in: each twin column
is what ``from_pandas`` makes of an object column of ``str`` (``string``, "unicode"/"object" in the
pandas metadata) or of Python floats (``double``, "float64"/"object"). Proved against ``from_pandas``
in tests/mappings/test_twins.py.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pandas as pd

_TEXT = {str, type(None)}


def _text_only(values: np.ndarray) -> bool:
    """Every value a ``str`` (not a subclass: numpy's ``str_`` is written otherwise) or None."""
    return set(map(type, values)) <= _TEXT


def encoded_twin(codes: np.ndarray, uniques: pd.Series):
    """The twin of ``uniques[codes]`` (``distinct.Encoded``), None when a distinct value is not text."""
    import pyarrow as pa

    values = uniques.to_numpy(dtype=object)
    if not _text_only(values):
        return None
    return pa.array(values, type=pa.string()).take(pa.array(codes))


def patched_twin(arr, rows: np.ndarray, values: np.ndarray):
    """The twin of the column ``arr`` (the input's Arrow text, as ``to_numpy`` gives it to the chain)
    with the chain's ``values`` in the rows of the mask ``rows``; None when one of those is not text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.string())
    if not rows.any():
        return arr
    if not _text_only(values):
        return None
    return pc.replace_with_mask(arr, pa.array(rows), pa.array(values, type=pa.string()))


def text_twin(arr):
    """``arr`` when it is a text twin (a ``number`` chain's twin holds floats), else None."""
    import pyarrow as pa

    return arr if arr is not None and arr.type == pa.string() else None


def twin_rows(twins: dict, index: pd.Index, rows: pd.Index) -> dict:
    """``twins`` (one value per label of ``index``) at the labels ``rows``."""
    import pyarrow as pa

    if rows.equals(index):
        return twins
    at = pa.array(index.get_indexer(rows))
    return {c: a.take(at) for c, a in twins.items()}


def strip_twin(arr):
    """``textops.strip_text`` of a twin's values, as a twin (Python's ``str.strip`` whitespace)."""
    import pyarrow.compute as pc

    from crmbridge.mappings.textfast import PY_WHITESPACE

    return pc.utf8_trim(arr, characters=PY_WHITESPACE)


def missing_twin(arr) -> np.ndarray:
    """``transforms_base.is_missing`` of a twin's values: null, empty or only whitespace."""
    import pyarrow.compute as pc

    from crmbridge.mappings.textfast import flags

    blank = pc.equal(pc.binary_length(strip_twin(arr)), 0)
    return arr.is_null().to_numpy(zero_copy_only=False) | flags(blank)


_SAMPLE = {"string": "x", "double": 1.0}  # a value of what an object column holds, by its twin's Arrow type


@lru_cache(maxsize=256)
def _object_entry(name: str, kind: str) -> str:
    """The pandas metadata entry ``from_pandas`` writes for an object column named ``name`` of ``str``
    (``kind``: its twin's type, "string") or of Python floats ("double")."""
    import pyarrow as pa

    meta = pa.Table.from_pandas(pd.DataFrame({name: pd.Series([_SAMPLE[kind]], dtype=object)}),
                                preserve_index=False).schema.metadata[b"pandas"]
    return json.dumps(json.loads(meta)["columns"][0])


def twin_table(df: pd.DataFrame, twins: dict):
    """``pa.Table.from_pandas(df, preserve_index=False)`` with the columns of ``twins`` taken from them."""
    import pyarrow as pa

    rest = pa.Table.from_pandas(df.drop(columns=list(twins)), preserve_index=False)
    meta = json.loads(rest.schema.metadata[b"pandas"])
    entries = {e["name"]: e for e in meta["columns"]}
    meta["columns"] = [json.loads(_object_entry(c, str(twins[c].type))) if c in twins else entries[c]
                       for c in df.columns]
    fields = [pa.field(c, twins[c].type) if c in twins else rest.schema.field(c) for c in df.columns]
    columns = [pa.chunked_array([twins[c]]) if c in twins else rest.column(c) for c in df.columns]
    schema = pa.schema(fields, metadata={b"pandas": json.dumps(meta).encode()})
    return pa.Table.from_arrays(columns, schema=schema)
