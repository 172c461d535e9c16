"""Value scales, as convert-to-snn tracks them: the spiking graph carries x / s for the ANN's value x.

A scale is stored in the smallest array equal to it broadcast over the value's per-sample shape (a scalar, one
value per channel, or the full shape). What each op does with the scales of its inputs is the op's own
:meth:`~neurodeploy.ir.op.Op.carry_scales`.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

from neurodeploy.errors import ConversionError

ScaleValue: TypeAlias = np.ndarray | np.float32
"""A scale or threshold: a float32 scalar, or an array broadcast over the value's per-sample shape."""


def compress(scale: ScaleValue, shape: tuple[int, ...]) -> np.ndarray:
    """The smallest array equal to ``scale`` broadcast over ``shape``: a scalar, one per channel, or full."""
    full = np.broadcast_to(np.asarray(scale, np.float32), shape)
    if np.all(full == full.flat[0]):
        return np.asarray(full.flat[0], np.float32)
    if len(shape) == 3:
        per_channel = full[:, :1, :1]
        if np.array_equal(np.broadcast_to(per_channel, shape), full):
            return np.ascontiguousarray(per_channel)
    return np.ascontiguousarray(full)


def channel_vector(scale: ScaleValue, shape: tuple[int, ...], axis: int, what: str) -> np.ndarray:
    """The scale as one value per index of ``axis``; a ConversionError naming ``what`` if it varies along other
    axes."""
    full = np.broadcast_to(scale, shape)
    moved = np.moveaxis(full, axis, 0).reshape(shape[axis], -1)
    if not np.all(moved == moved[:, :1]):
        raise ConversionError(
            f"{what}: its input's scale varies within a channel; this cannot be folded into the weights"
        )
    return moved[:, 0].astype(np.float32)
