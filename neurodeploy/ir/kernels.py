"""Batched float32 numpy kernels for the spatial ops (convolution and pooling).

Layout is NCHW throughout. Padding is explicit ``(top, left, bottom, right)``; ``auto_pad`` is resolved by the
frontend. All kernels return float32.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]


def pool_output_size(
    size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int, ceil_mode: bool
) -> int:
    """Output length of a convolution or pooling window along one axis (ONNX and PyTorch agree on this).

    With ``ceil_mode`` a last, partial window is kept unless it would start inside the end padding.
    """
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def kernel_taps(size: int, out: int, kernel: int, stride: int, pad_begin: int, dilation: int) -> np.ndarray:
    """Where a window's taps land along one axis: (out, kernel, size) int64, 1 where tap k of output window o
    reads input position i (o * stride - pad_begin + k * dilation; a tap on padding reads nothing).

    Summed over the windows it is (kernel, size): whether tap k of some window lands on position i (fan-out);
    over taps and positions, (out,): how many taps of each window read the input (fan-in)."""
    positions = np.arange(out)[:, None] * stride - pad_begin + np.arange(kernel)[None, :] * dilation
    return (positions[:, :, None] == np.arange(size)[None, None, :]).astype(np.int64)


def _windows(x: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_hw: Pair) -> np.ndarray:
    """View of shape (N, C, OH, OW, kh, kw) over an already padded input."""
    kh, kw = kernel
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    win = sliding_window_view(x, (eh, ew), axis=(2, 3))
    win = win[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]
    return win[:, :, : out_hw[0], : out_hw[1]]


def _pad(x: np.ndarray, pads: Pads, extra: Pair = (0, 0), value: float = 0.0) -> np.ndarray:
    top, left, bottom, right = pads
    if not any(pads) and not any(extra):
        return x
    widths = ((0, 0), (0, 0), (top, bottom + extra[0]), (left, right + extra[1]))
    return np.pad(x, widths, mode="constant", constant_values=value)


def conv2d(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, padding: Pads, dilation: Pair, groups: int
) -> np.ndarray:
    """2-D cross-correlation, as ONNX Conv and torch.nn.Conv2d compute it."""
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh = pool_output_size(h, kh, stride[0], padding[0], padding[2], dilation[0], False)
    ow = pool_output_size(w, kw, stride[1], padding[1], padding[3], dilation[1], False)
    if groups == 1:
        # Channels-last im2col: the window view of an NHWC copy reshapes to (N*OH*OW, C*kh*kw) rows in memory
        # order, so one matrix product does the work (faster than contracting NCHW windows).
        top, left, bottom, right = padding
        xt = np.zeros((n, h + top + bottom, w + left + right, c), np.float32)
        xt[:, top : top + h, left : left + w, :] = x.transpose(0, 2, 3, 1)
        sn, sh, sw, sc = xt.strides  # the windows as one strided view: (N, OH, OW, C, kh, kw)
        shape = (n, oh, ow, c, kh, kw)
        win = as_strided(xt, shape, (sn, sh * stride[0], sw * stride[1], sc, sh * dilation[0], sw * dilation[1]))
        cols = win.reshape(n * oh * ow, c * kh * kw)
        out = (cols @ weight.reshape(o, -1).T).reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    else:
        win = _windows(_pad(x, padding), (kh, kw), stride, dilation, (oh, ow))
        og = o // groups
        win_g = win.reshape(n, groups, cg, oh, ow, kh, kw)
        w_g = weight.reshape(groups, og, cg, kh, kw)
        out = np.einsum("ngchwij,gocij->ngohw", win_g, w_g, optimize=True).reshape(n, o, oh, ow)
    out = np.ascontiguousarray(out, dtype=np.float32)
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


def pool_geometry(
    hw: Pair, kernel: Pair, stride: Pair, padding: Pads, dilation: Pair, ceil_mode: bool
) -> tuple[Pair, Pair]:
    """The output size (OH, OW) of a pooling window over an (H, W) input, and the cells needed past the end
    padding (bottom, right) that ``ceil_mode`` reads (they hold no data and are never counted)."""
    h, w = hw
    oh = pool_output_size(h, kernel[0], stride[0], padding[0], padding[2], dilation[0], ceil_mode)
    ow = pool_output_size(w, kernel[1], stride[1], padding[1], padding[3], dilation[1], ceil_mode)
    need_h = (oh - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
    need_w = (ow - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
    extra = (max(0, need_h - (h + padding[0] + padding[2])), max(0, need_w - (w + padding[1] + padding[3])))
    return (oh, ow), extra


def _window_reduce(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_hw: Pair, reduce) -> np.ndarray:
    """Reduce every window of an already padded input with ``reduce`` (np.add or np.maximum), one kernel tap at
    a time: kh*kw strided slices, which numpy combines far faster than a reduction over small trailing axes."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    acc = None
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            tap = xp[:, :, ky * dh : ky * dh + (oh - 1) * sh + 1 : sh, kx * dw : kx * dw + (ow - 1) * sw + 1 : sw]
            if acc is None:
                acc = tap.astype(np.float32, copy=True)
            else:
                reduce(acc, tap, out=acc)
    if acc is None:
        raise ValueError(f"kernel {kernel} has no taps")
    return acc


def avg_pool_divisors(
    hw: Pair, kernel: Pair, stride: Pair, padding: Pads, dilation: Pair, ceil_mode: bool, count_include_pad: bool
) -> np.ndarray:
    """What average pooling divides each window's sum by, (1, 1, OH, OW) float32: the input cells in the window,
    plus the explicit padding cells when ``count_include_pad`` (cells added only by ``ceil_mode`` never count);
    at least 1 (a window over padding alone averages nothing: 0, as onnxruntime gives)."""
    (oh, ow), extra = pool_geometry(hw, kernel, stride, padding, dilation, ceil_mode)
    mask = np.ones((1, 1, *hw), np.float32)
    if count_include_pad:
        mask = _pad(mask, padding, value=1.0)
        mask = _pad(mask, (0, 0, 0, 0), extra)
    else:
        mask = _pad(mask, padding, extra)
    return np.maximum(_window_reduce(mask, kernel, stride, dilation, (oh, ow), np.add), np.float32(1))


def avg_pool2d(
    x: np.ndarray, kernel: Pair, stride: Pair, padding: Pads, dilation: Pair, ceil_mode: bool, count_include_pad: bool
) -> np.ndarray:
    """Average pooling: each window's sum over :func:`avg_pool_divisors`."""
    hw = (x.shape[2], x.shape[3])
    (oh, ow), extra = pool_geometry(hw, kernel, stride, padding, dilation, ceil_mode)
    sums = _window_reduce(_pad(x, padding, extra), kernel, stride, dilation, (oh, ow), np.add)
    divisors = avg_pool_divisors(hw, kernel, stride, padding, dilation, ceil_mode, count_include_pad)
    return np.ascontiguousarray(sums / divisors, dtype=np.float32)


def max_pool2d(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pads, dilation: Pair, ceil_mode: bool) -> np.ndarray:
    """Max pooling; padding cells hold the lowest float32 so they never win (a window over padding alone gives
    that value, as onnxruntime does)."""
    (oh, ow), extra = pool_geometry((x.shape[2], x.shape[3]), kernel, stride, padding, dilation, ceil_mode)
    lowest = float(np.finfo(np.float32).min)
    return _window_reduce(_pad(x, padding, extra, value=lowest), kernel, stride, dilation, (oh, ow), np.maximum)
