"""Arrow arrays and scalars to and from numpy arrays and Python values, built on the buffers.

pyarrow's own converters (``pa.array``, ``pa.scalar``, ``Array.to_numpy``, and a numpy array or a Python
value handed to a compute function) import pandas the first time they run, to check whether the value
is a pandas object. The extract stage has none, and importing pandas costs it 0.2 CPU-s (about 4% of a
million-row extract), so its CSV path converts through these functions instead.
``tests/test_arrowvals.py`` checks each against the pyarrow converter it replaces and that an extract
does not import pandas.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

_INT32_MAX = (1 << 31) - 1


def ints(values) -> pa.Array:
    """An int64 array of ``values`` (a numpy array of integers or a list of ints), as ``pa.array(values, pa.int64())``."""
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def bools(values) -> pa.BooleanArray:
    """A boolean array of ``values`` (a numpy bool array or a list of bools), as ``pa.array(values)``."""
    data = np.asarray(values, dtype=bool)
    bits = np.packbits(data, bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(data), [None, pa.py_buffer(bits)])


def strings(values: Sequence[str | None]) -> pa.Array:
    """A string array of ``values`` (None: null), as ``pa.array(values, pa.string())``."""
    n = len(values)
    data = [b"" if v is None else v.encode("utf-8") for v in values]
    lens = np.fromiter(map(len, data), dtype=np.int64, count=n)
    if int(lens.sum()) > _INT32_MAX:  # more than a string array holds: pyarrow's own chunking decides
        return pa.array(values, pa.string())
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    nulls = np.fromiter((v is None for v in values), dtype=bool, count=n)
    null_count = int(nulls.sum())
    validity = pa.py_buffer(np.packbits(~nulls, bitorder="little")) if null_count else None
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))],
                                 null_count=null_count)


def string(value: str | None) -> pa.Scalar:
    """``value`` as a string scalar (None: the null string), as ``pa.scalar(value, pa.string())``."""
    return strings([value])[0]


def to_numpy(arr: pa.Array, null=None) -> np.ndarray:
    """The values of an integer or boolean array as a numpy array (a view for integers without nulls);
    a null becomes ``null``, which must be given if the array has nulls."""
    valid, buf = arr.buffers()[:2]
    if pa.types.is_boolean(arr.type):
        out = _bits(buf, arr.offset, len(arr))
    else:
        dtype = np.dtype(str(arr.type))  # int64, uint32, ...: the same names in numpy
        out = np.frombuffer(buf, dtype, count=len(arr), offset=arr.offset * dtype.itemsize) if len(arr) else \
            np.zeros(0, dtype)
    if arr.null_count:
        if null is None:
            raise ValueError("to_numpy: the array has nulls and no value was given for them")
        out = out.copy()
        out[~_bits(valid, arr.offset, len(arr))] = null
    return out


def _bits(buf, offset: int, n: int) -> np.ndarray:
    if not n:
        return np.zeros(0, bool)
    return np.unpackbits(np.frombuffer(buf, np.uint8), count=offset + n, bitorder="little")[offset:].astype(bool)
