"""TensorProto -> numpy, checked: no external data, a numeric element type, data that matches the dims, and
(for floats) values that are finite in float32. Every failure is a ModelLoadError naming the tensor."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from neurodeploy.errors import ModelLoadError

_P = onnx.TensorProto
NUMERIC_TYPES = {
    _P.FLOAT,
    _P.DOUBLE,
    _P.FLOAT16,
    _P.BFLOAT16,
    _P.INT8,
    _P.INT16,
    _P.INT32,
    _P.INT64,
    _P.UINT8,
    _P.UINT16,
    _P.UINT32,
    _P.UINT64,
    _P.BOOL,
}
FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_RANK = 64
"""The most dimensions a tensor may have (numpy's own limit); also bounds shape and axes lists read from a model."""


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    """A shape for a message: in full up to rank 8, else its start and its rank."""
    shape = tuple(shape)
    return str(shape) if len(shape) <= 8 else f"({', '.join(map(str, shape[:8]))}, ...) (rank {len(shape)})"


def type_name(data_type: int) -> str:
    try:
        return _P.DataType.Name(data_type)
    except ValueError:
        return f"element type {data_type}"


def tensor_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """The tensor as a numpy array (bfloat16 widened to float32), or a ModelLoadError naming ``what``."""
    if tensor.data_location == _P.EXTERNAL:
        raise ModelLoadError(f"{what} keeps its data in an external file that was not loaded")
    if tensor.HasField("segment"):
        raise ModelLoadError(f"{what} is a segment of a tensor; segmented tensors are not supported")
    if tensor.data_type not in NUMERIC_TYPES:
        raise ModelLoadError(
            f"{what} has element type {type_name(tensor.data_type)}; only bool, integer and float tensors are supported"
        )
    dims = list(tensor.dims)
    if len(dims) > MAX_RANK:
        raise ModelLoadError(f"{what} has {len(dims):,} dimensions; at most {MAX_RANK} are supported")
    if any(d < 0 for d in dims):
        raise ModelLoadError(f"{what} has negative dimensions {shape_text(dims)}")
    count = math.prod(dims)
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
    if tensor.HasField("raw_data"):
        if len(tensor.raw_data) != count * dtype.itemsize:
            raise ModelLoadError(
                f"{what}: dims {shape_text(dims)} say {count:,} values ({count * dtype.itemsize:,} bytes), but its "
                f"raw data holds {len(tensor.raw_data):,} bytes"
            )
    else:
        field = helper.tensor_dtype_to_field(tensor.data_type)
        stored = len(getattr(tensor, field))
        if stored != count:
            raise ModelLoadError(f"{what}: dims {shape_text(dims)} say {count:,} values, but its data holds {stored:,}")
    try:
        array = numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError, OverflowError, MemoryError) as exc:
        raise ModelLoadError(f"{what}: cannot read its data: {exc}") from None
    if tensor.data_type == _P.BFLOAT16:
        array = array.astype(np.float32)
    return array


def non_finite(array: np.ndarray) -> str | None:
    """How many values of a float array are NaN, infinite, or too large for float32; None when all are fine
    (and for non-float arrays)."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        return None
    finite = np.isfinite(array)
    too_big = 0
    if array.dtype.itemsize > 4:
        with np.errstate(invalid="ignore"):
            too_big = int(np.count_nonzero(finite & (np.abs(array) > FLOAT32_MAX)))
    if too_big == 0 and finite.all():
        return None
    nan = int(np.count_nonzero(np.isnan(array)))
    inf = int(np.count_nonzero(np.isinf(array)))
    found = [(n, what) for n, what in ((nan, "NaN"), (inf, "infinite"), (too_big, "beyond float32's range")) if n]
    parts = [f"{n:,} {'is' if n == 1 else 'are'} {what}" for n, what in found]
    return f"{found[0][0]:,} of {array.size:,} values {parts[0].split(' ', 1)[1]}" + "".join(
        f", {p}" for p in parts[1:]
    )


def check_finite(array: np.ndarray, what: str) -> None:
    """Refuse a float array with NaN, infinite or beyond-float32 values; the message names ``what``."""
    problem = non_finite(array)
    if problem is not None:
        raise ModelLoadError(f"{what}: {problem}; neurodeploy needs finite float32 values")


def nbytes(shape: tuple[int, ...] | list[int], dtype: np.dtype | type) -> int:
    """The bytes an array of ``shape`` and ``dtype`` would take (exact Python ints: no overflow)."""
    return math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize
