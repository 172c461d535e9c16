"""The input policy: which numbers neurodeploy takes as model inputs, labels and calibration data.

Every way in (``emulate`` on any target, ``evaluate``, ``--calibration`` data, the Python API's
``emulate_artifact`` and the backends' ``emulate``) applies these rules, so a hostile or mistaken array is
refused with a :class:`~neurodeploy.errors.DataError` instead of giving finite, meaningless outputs:

* Complex numbers, booleans, strings and objects are refused: the model takes real numbers.
* NaN and Inf are refused, naming how many there are and the first sample holding one.
* Magnitudes above ``MAX_MAGNITUDE`` (1e6) are refused.
* Compiling with calibration data records the calibration inputs' range ``[low, high]`` in the manifest
  (``inputs[0]["range"]``). Inputs beyond that range by more than its width on either side are refused,
  naming the range and the offending value.
* Integer inputs are scaled only in one case: when the recorded range lies within [0, 1] and the integers lie
  in 0..255 with some above 1 (8-bit pixels given to a model calibrated on [0, 1] images), they are divided by
  255, with a warning; pass floats to avoid it. Otherwise integers are used as they are and checked as above.
  Without a recorded range, integers above 1 are used as they are, with a warning that nothing can tell whether
  they are scaled as the model expects.
* ``events`` inputs (event frames) hold event counts: integers >= 0 are used as they are (no scaling, no range
  check, which describes the frames' mean); negative or non-finite counts are refused.

Labels (``check_labels``) are whole numbers (integers, or floats without a fractional part), one per sample
((N,) or (N, 1)), in [0, classes) where ``classes`` is the size of the model's output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from neurodeploy.errors import ArtifactError, DataError

log = logging.getLogger(__name__)

MAX_MAGNITUDE = 1e6
"""The largest |value| an input may hold (whatever the recorded range)."""

PIXEL_MAX = 255
"""8-bit pixels: integers in [0, PIXEL_MAX] given to a model calibrated on [0, 1] are divided by it."""

SUMMARY = (
    "Input policy: inputs must be real, finite numbers of magnitude at most 1e6 (complex, boolean, NaN and Inf "
    "are refused); when the artifact records its calibration inputs' range, inputs beyond it by more than its "
    "width are refused; integer images in 0..255 given to a model calibrated on [0, 1] are divided by 255 with a "
    "warning (pass floats to avoid it); events inputs are event counts >= 0, used as given."
)
"""One paragraph for ``--help`` and the README."""

_CHUNK = 1 << 22
"""Values scanned at a time (bounds the temporary boolean arrays)."""


def _rows(x: np.ndarray) -> int:
    """Samples per scan chunk, at least one."""
    per_sample = max(1, int(np.prod(x.shape[1:], dtype=np.int64))) if x.ndim > 1 else 1
    return max(1, _CHUNK // per_sample)


def _first(x: np.ndarray, bad) -> tuple[int, int | None]:
    """How many elements ``bad(chunk)`` marks, and the index (along axis 0) of the first sample holding one."""
    if x.ndim == 0:
        count = int(np.count_nonzero(bad(x)))
        return count, (0 if count else None)
    total, first, rows = 0, None, _rows(x)
    for start in range(0, len(x), rows):
        marks = bad(x[start : start + rows])
        n = int(np.count_nonzero(marks))
        if n and first is None:
            per_row = marks.reshape(len(marks), -1).any(axis=1) if marks.ndim > 1 else marks
            first = start + int(np.argmax(per_row))
        total += n
    return total, first


def _real_numbers(x: np.ndarray, where: str) -> None:
    if np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(
            f"{where} holds complex numbers ({x.dtype}); the model takes real numbers (pass x.real if the imaginary "
            "parts are meant to be dropped)"
        )
    if x.dtype.kind not in "iuf":
        raise DataError(f"{where} has dtype {x.dtype}; expected real numbers (integers or floats)")


def _finite(x: np.ndarray, where: str) -> None:
    if x.dtype.kind != "f":
        return
    count, first = _first(x, lambda c: ~np.isfinite(c))
    if count:
        raise DataError(
            f"{where} holds {count:,} non-finite value(s) (NaN or Inf), the first in sample {first}; replace or drop "
            "those samples"
        )


def _outside(x: np.ndarray, low: float, high: float) -> tuple[int, int | None]:
    return _first(x, lambda c: (c < low) | (c > high))


def _extremes(x: np.ndarray) -> tuple[float, float]:
    return float(x.min()), float(x.max())


def _value_at(x: np.ndarray, sample: int | None, low: float, high: float) -> float:
    """The value of ``x[sample]`` furthest outside [low, high]."""
    row = np.asarray(x[sample] if sample is not None and x.ndim else x, np.float64).reshape(-1)
    lo, hi = float(row.min()), float(row.max())
    return hi if hi - high >= low - lo else lo


def tolerance(low: float, high: float) -> tuple[float, float]:
    """The inputs accepted for a recorded range: beyond it by at most its width on either side (by at most its
    magnitude, or 1, when the range is a single value)."""
    width = high - low
    if width <= 0:
        width = max(abs(low), abs(high)) or 1.0
    return low - width, high + width


def input_range(x: np.ndarray) -> list[float]:
    """``[min, max]`` of (finite) inputs, as plain floats, for the manifest."""
    x = np.asarray(x)
    if x.size == 0:
        raise DataError("no inputs to take a range of (0 samples)")
    low, high = _extremes(x)
    return [low, high]


def recorded_range(manifest: dict[str, Any]) -> tuple[float, float] | None:
    """The first input's ``range`` from an artifact manifest, or None when the artifact records none (it was
    compiled without calibration data, or by an older neurodeploy)."""
    inputs = manifest.get("inputs")
    if not isinstance(inputs, list) or not inputs or not isinstance(inputs[0], dict):
        return None
    value = inputs[0].get("range")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not all(np.isfinite(v) for v in value)
        or value[0] > value[1]
    ):
        raise ArtifactError(f"the manifest's inputs[0].range is {value!r}; expected [low, high], finite, low <= high")
    return float(value[0]), float(value[1])


def check_values(
    x: Any,
    *,
    where: str = "the input",
    kind: str = "direct",
    recorded: Sequence[float] | None = None,
    role: str = "input",
) -> np.ndarray:
    """Apply the input policy (see the module) to ``x`` (batch first) and return it as float32.

    ``kind`` is the input encoding (``events`` inputs are event counts); ``recorded`` the artifact's recorded
    input range, if any. ``where`` names the array in messages (a file name, ``input 'x'``). ``role`` is
    ``calibration`` for calibration data, which defines the range rather than being checked against one."""
    x = np.asarray(x)
    _real_numbers(x, where)
    if x.size == 0:
        return _float32(x)
    if x.dtype.kind == "f" and kind != "events":  # the usual case in two passes: a NaN makes min and max NaN
        low, high = (-MAX_MAGNITUDE, MAX_MAGNITUDE) if recorded is None else tolerance(*map(float, recorded[:2]))
        if max(low, -MAX_MAGNITUDE) <= float(x.min()) and float(x.max()) <= min(high, MAX_MAGNITUDE):
            return _float32(x)
    _finite(x, where)
    if kind == "events":
        count, first = _outside(x, 0, np.inf)
        if count:
            raise DataError(
                f"{where} holds {count:,} negative event count(s), the first in sample {first}; events inputs are "
                "event counts per frame, >= 0"
            )
        _magnitude(x, where)
        return _float32(x)
    if x.dtype.kind in "iu":
        x = _integers(x, where, recorded, role)
    if recorded is not None:
        low, high = float(recorded[0]), float(recorded[1])
        accept_low, accept_high = tolerance(low, high)
        count, first = _outside(x, accept_low, accept_high)
        if count:
            value = _value_at(x, first, accept_low, accept_high)
            raise DataError(
                f"{where} holds {count:,} value(s) far outside the input range [{low:g}, {high:g}] recorded from the "
                f"calibration data at compile time (accepted: [{accept_low:g}, {accept_high:g}]), e.g. {value:g} in "
                f"sample {first}; scale the inputs as the calibration data was, or recompile with calibration data "
                "that covers them"
            )
    _magnitude(x, where)
    return _float32(x)


def _float32(x: np.ndarray) -> np.ndarray:
    """``x`` as C-contiguous float32, keeping its shape (``np.ascontiguousarray`` makes a 0-d array 1-d)."""
    y = np.asarray(x, dtype=np.float32)
    return y if y.flags.c_contiguous else np.ascontiguousarray(y)


def _magnitude(x: np.ndarray, where: str) -> None:
    count, first = _outside(x, -MAX_MAGNITUDE, MAX_MAGNITUDE)
    if count:
        value = _value_at(x, first, -MAX_MAGNITUDE, MAX_MAGNITUDE)
        raise DataError(
            f"{where} holds {count:,} value(s) of magnitude above {MAX_MAGNITUDE:g}, e.g. {value:g} in sample "
            f"{first}; inputs that large are not a model's inputs: scale them as the model was trained"
        )


def _integers(x: np.ndarray, where: str, recorded: Sequence[float] | None, role: str) -> np.ndarray:
    """Integer inputs as floats: 8-bit pixels divided by 255 for a model calibrated on [0, 1] (with a warning),
    anything else as it is (with a warning when no range is recorded and the values exceed 1)."""
    low, high = _extremes(x)
    if recorded is not None:
        if 0.0 <= recorded[0] and recorded[1] <= 1.0 and 0 <= low and high <= PIXEL_MAX and high > 1:
            log.warning(
                "%s holds %s integers in [%d, %d] and the model's recorded input range is [%g, %g]: dividing them "
                "by %d; pass float inputs to avoid this",
                where,
                x.dtype,
                low,
                high,
                recorded[0],
                recorded[1],
                PIXEL_MAX,
            )
            return x.astype(np.float32) / np.float32(PIXEL_MAX)
    elif high > 1 and role == "calibration":
        log.warning(
            "%s holds %s integers up to %d, used as they are (not scaled): thresholds are balanced for inputs of "
            "that scale, and emulation will expect them; if the model takes inputs in [0, 1], divide them by %d "
            "(pass float inputs to avoid this warning)",
            where,
            x.dtype,
            high,
            PIXEL_MAX,
        )
    elif high > 1:
        log.warning(
            "%s holds %s integers up to %d, used as they are (not scaled): the artifact records no input range to "
            "check them against (compile with --calibration to record one); pass float inputs to avoid this warning",
            where,
            x.dtype,
            high,
        )
    return x.astype(np.float32)


def check_labels(
    y: Any, *, samples: int | None = None, classes: int | None = None, where: str = "labels"
) -> np.ndarray:
    """Labels as int64 (N,): whole numbers, one per sample ((N,) or (N, 1)), in [0, ``classes``) when given;
    ``samples`` is the number of inputs they label. ``where`` names them in messages (e.g. the file)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where}: labels of shape {y.shape}; expected one class index per sample, (N,) or (N, 1)")
    if y.dtype.kind not in "iuf":
        raise DataError(f"{where}: labels of dtype {y.dtype}; expected integer class indices")
    if samples is not None and len(y) != samples:
        raise DataError(f"{where}: {len(y)} labels for {samples} inputs")
    if y.dtype.kind == "f":
        finite = np.isfinite(y)
        bad = ~finite | (np.abs(np.where(finite, y, 0)) >= 2.0**53) | (np.where(finite, y, 0) % 1 != 0)
        if np.any(bad):
            index = int(np.argmax(bad))
            raise DataError(
                f"{where}: {int(bad.sum()):,} label(s) are not class indices (whole numbers), the first "
                f"{float(y[index])!r} at index {index}"
            )
    if classes is not None:
        out = (y < 0) | (y >= classes)
        if np.any(out):
            index = int(np.argmax(out))
            raise DataError(
                f"{where}: {int(out.sum()):,} label(s) outside the model's {classes} classes (0 to {classes - 1}), "
                f"the first {int(y[index])} at index {index}"
            )
    return y.astype(np.int64)
