"""Loihi 2 fixed-point arithmetic, exactly as Lava's bit-accurate (``fixed_pt``) process models compute it.

Pure numpy, no Lava import. State and spikes carry a leading batch axis; one call advances a whole batch.
Values are held in int64 and every place where Lava's int32 (or 24-bit) arithmetic wraps, saturates or
rounds is reproduced explicitly, with the Lava source it mirrors named next to it. The sources are those of
lava-nc 0.10.0 (``.venv-lava/lib/python3.10/site-packages/lava/``):

* ``proc/dense/models.py``: ``AbstractPyDenseModelBitAcc.run_spk`` (the model of ``PyDenseModelBitAcc``)
* ``utils/weightutils.py``: ``SignMode``, ``determine_sign_mode``, ``clip_weights``, ``truncate_weights``
* ``proc/conv/models.py``: ``AbstractPyConvModel.run_spk``, ``PyConvModelFixed.clamp_precision``
* ``proc/conv/utils.py``: ``conv``, ``conv_scipy``, ``output_shape``, ``signed_clamp``
* ``proc/lif/models.py``: ``AbstractPyLifModelFixed`` (``scale_bias``, ``subthr_dynamics``, ``reset_voltage``)
  and ``PyLifModelBitAcc`` (``scale_threshold``, ``spiking_activation``)
* ``magma/compiler/channels/pypychannel.py``: ``CspSendPort.send`` and
  ``magma/compiler/subcompilers/channel_builders_factory.py``: ``get_port_dtype`` (what a port carries)

Timing (``run_spk`` of the synapse models): a synapse first sends the accumulation it made in the previous
step, then accumulates this step's input spikes. A spike emitted at step t reaches the next neuron at t + 1.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

# -- bit widths: each declared once, next to the arithmetic that uses it -------------------------------------

MAX_MESSAGE_BITS = 24
"""A graded spike's payload is at most 24 bits wide (Lava's ports declare ``precision=24`` for graded spikes)."""
WEIGHT_BITS = 8
"""Dense weight magnitude bits: ``clip_weights(weights, sign_mode, num_bits=8)`` in ``run_spk`` and
``truncate_weights(..., max_num_weight_bits=8)``. MIXED weights get a sign bit on top: [-256, 255]."""

PORT_BITS = 32
"""Width of every synaptic message between the processes used here. A channel takes the dtype of its *source*
port (``get_port_dtype`` of the OutPort): Dense and Conv declare ``a_out`` as ``np.int32``; ``CspSendPort.send``
copies with ``array[:] = data``, which wraps Dense's int64 accumulation to 32 bits. The declared
``precision=16`` of Dense's ``a_out`` and of LIF's ``a_in`` (``np.int16``) is *not* enforced:
``PyInPortVectorDense.recv`` adds the int32 message to an int16 zero array, which gives int32."""

LIF_INT_BITS = 32
"""The LIF model holds u, v and the received a_in in np.int32 (``AbstractPyLifModelFixed``: u, v are
``LavaPyType(np.ndarray, np.int32, precision=24)``), so its shifts and sums wrap at 32 bits before the 24-bit
fold or saturation is applied."""

CONV_BITS = 24
"""Conv accumulation width: ``PyConvModelFixed.clamp_precision`` = ``signed_clamp(x, bits=24)``, which, despite
its name, wraps (two's complement) rather than saturates."""

STATE_BITS = 24
"""u and v of the LIF (``uv_bitwidth = 24``; ``max_uv_val = 2**23``)."""
STATE_LIMIT = 1 << (STATE_BITS - 1)
"""``max_uv_val``: u folds by 2**24 outside (-2**23, 2**23]; v saturates at +-(2**23 - 1)."""

DECAY_BITS = 12
"""du and dv are 12-bit unsigned (``precision=12``); decays multiply by (4096 - d) and shift right by 12."""
DECAY_UNITY = 1 << DECAY_BITS
DS_OFFSET = 1
"""Added to du (``ds_offset = 1``): the current decays by (du + 1) / 4096, so du = 4095 empties u every step."""
DM_OFFSET = 0
"""Added to dv (``dm_offset = 0``)."""

ACT_SHIFT = 6
"""Synaptic input is shifted left by 6 (``act_shift``, "MSB alignment") before it is added to u."""
VTH_SHIFT = 6
"""The threshold mantissa is shifted left by 6 (``vth_shift``): a neuron spikes when v > vth << 6."""
VTH_BITS = 17
"""vth is unsigned 17-bit (``PyLifModelBitAcc.vth``: ``precision=17``, 0..131071)."""

BIAS_MANT_BITS = 13
"""bias_mant is signed 13-bit (``precision=13``, -4096..4095)."""
BIAS_EXP_BITS = 3
"""bias_exp is unsigned 3-bit (``precision=3``, 0..7, per the ``PyLifModelBitAcc`` docstring)."""


class SignMode(IntEnum):
    """How a Dense weight matrix is encoded; the values are those of ``lava.utils.weightutils.SignMode``."""

    MIXED = 1
    EXCITATORY = 2
    INHIBITORY = 3


# -- integer helpers ---------------------------------------------------------------------------------------


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of int64 values to ``bits`` signed bits: (x + 2^(bits-1)) mod 2^bits - 2^(bits-1).

    This is ``lava/proc/conv/utils.py: signed_clamp`` and what int32 overflow does to numpy int32 arithmetic.
    Computed with a mask, which is the same modulo for negative values in two's complement (and faster)."""
    half = np.int64(1) << (bits - 1)
    return ((np.asarray(x, np.int64) + half) & ((half << 1) - 1)) - half  # keep the low bits


def shift(x: np.ndarray, exp: int) -> np.ndarray:
    """``x * 2**exp`` as Lava's Dense applies ``weight_exp``: a left shift for exp > 0, otherwise an arithmetic
    right shift, which rounds toward minus infinity (-3 >> 1 == -2)."""
    x = np.asarray(x, np.int64)
    return np.left_shift(x, exp) if exp > 0 else np.right_shift(x, -exp)  # arithmetic shift, floors negatives


def check_range(name: str, value: np.ndarray | int, low: int, high: int, where: str = "") -> None:
    """Raise ValueError naming ``name`` unless every element of ``value`` is an integer in [low, high]."""
    arr = np.asarray(value)
    if arr.size and (arr.dtype.kind not in "iub" or arr.min() < low or arr.max() > high):
        got = arr if arr.size <= 4 else f"values in [{arr.min()}, {arr.max()}]"
        raise ValueError(f"{where}{name} must be integers in [{low}, {high}], got {got}")


# -- Dense synapse -----------------------------------------------------------------------------------------


def determine_sign_mode(weights: np.ndarray) -> SignMode:
    """``weightutils.determine_sign_mode``: EXCITATORY if no weight is negative, INHIBITORY if none is positive
    (an all-zero matrix is EXCITATORY), MIXED otherwise. Used when a Dense gets no ``sign_mode``."""
    if np.min(weights) >= 0:
        return SignMode.EXCITATORY
    if np.max(weights) <= 0:
        return SignMode.INHIBITORY
    return SignMode.MIXED


def clip_weights(weights: np.ndarray, sign_mode: SignMode) -> np.ndarray:
    """``weightutils.clip_weights(weights, sign_mode, num_bits=8)``: INHIBITORY weights are negated, clipped to
    [0, 255] and negated back (positive weights become 0); EXCITATORY are clipped to [0, 255] (negative weights
    become 0); MIXED to [-256, 255]."""
    w = np.asarray(weights, np.int64)
    mixed = sign_mode == SignMode.MIXED
    if sign_mode == SignMode.INHIBITORY:
        w = -w  # clip the magnitude of inhibitory weights
    low = -(1 << WEIGHT_BITS) if mixed else 0  # min_wgt = (-2**num_bits) * mixed_flag
    high = (1 << WEIGHT_BITS) - 1  # max_wgt = 2**num_bits - 1 (learning_simulation is False)
    w = np.clip(w, low, high)  # clip, not wrap
    return -w if sign_mode == SignMode.INHIBITORY else w


def truncate_weights(weights: np.ndarray, sign_mode: SignMode, num_weight_bits: int) -> np.ndarray:
    """``weightutils.truncate_weights``: drop the 8 - num_weight_bits (+ 1 for MIXED) least significant bits.

    INHIBITORY weights are negated first, so their magnitude is truncated (toward zero); MIXED weights are
    shifted as signed numbers, so negative ones round toward minus infinity (-3 -> -4 at one dropped bit)."""
    w = np.asarray(weights, np.int64)
    if sign_mode == SignMode.INHIBITORY:
        w = -w
    dropped = WEIGHT_BITS - num_weight_bits + int(sign_mode == SignMode.MIXED)  # num_truncate_bits
    w = (w >> dropped) << dropped  # arithmetic shifts: clears the low bits, floors negatives
    return -w if sign_mode == SignMode.INHIBITORY else w


def dense_weights(weights: np.ndarray, sign_mode: SignMode | None, num_weight_bits: int) -> np.ndarray:
    """The weights Lava's Dense uses after its first step: clipped to 8 bits, then truncated
    (``AbstractPyDenseModelBitAcc.run_spk``, ``if not self.weights_set``). ``sign_mode=None`` determines the
    mode from the weights, as Lava does when the process gets none."""
    mode = determine_sign_mode(weights) if sign_mode is None else SignMode(sign_mode)
    return truncate_weights(clip_weights(weights, mode), mode, num_weight_bits)


def _exact_matmul(a: np.ndarray, b: np.ndarray, bound: float) -> np.ndarray:
    """a @ b for integer-valued arrays, exactly: in float32 when every partial sum is below 2**24 in magnitude
    (``bound`` bounds them), else in float64 (exact below 2**53). Returns int64."""
    dtype = np.float32 if bound < float(1 << 24) else np.float64
    return np.rint(np.matmul(a.astype(dtype, copy=False), b.astype(dtype, copy=False))).astype(np.int64)


def dense_accumulate(spikes: np.ndarray, weights: np.ndarray, weight_exp: int, graded: bool = False) -> np.ndarray:
    """One step of Dense's accumulation for spikes (B, n_in) with effective weights (n_out, n_in): (B, n_out)
    int64, the message the synapse sends at the *next* step.

    Binary (``graded=False``): ``a_accum = self.weights[:, s_in].sum(axis=1)`` (int32 weights summed into
    int64), spikes taken as booleans. Graded (``num_message_bits > 0``): ``a_accum = self.weights.dot(s_in)``
    with the integer payloads. Then ``left_shift(a_accum, weight_exp)`` if weight_exp > 0 else
    ``right_shift(a_accum, -weight_exp)`` (applied to the sum, not to each weight, so a negative exponent
    floors the sum), then the int32 port."""
    s = np.asarray(spikes, np.int64) if graded else np.asarray(spikes, bool)
    w = np.asarray(weights)
    top = float(np.abs(s).max(initial=0)) if graded else 1.0
    bound = top * float(np.abs(w).sum(axis=1).max(initial=0))
    acc = _exact_matmul(s, w.T, bound)  # exact: see _exact_matmul
    return wrap(shift(acc, weight_exp), PORT_BITS)  # the int32 channel wraps the int64 accumulation


# -- Conv synapse ------------------------------------------------------------------------------------------


def conv_output_shape(
    input_shape: tuple[int, int, int],
    out_channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int]:
    """``conv/utils.py: output_shape``, shapes in Lava's (X, Y, C) = (W, H, C) order."""
    size = [(input_shape[i] + 2 * padding[i] - dilation[i] * (kernel_size[i] - 1) - 1) // stride[i] + 1 for i in (0, 1)]
    if min(size) < 1:
        raise ValueError(
            f"convolution of input {tuple(input_shape)} with kernel {tuple(kernel_size)}, stride {tuple(stride)}, "
            f"padding {tuple(padding)}, dilation {tuple(dilation)} has no output (size {tuple(size)})"
        )
    return size[0], size[1], out_channels


def conv_accumulate(
    spikes: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    graded: bool = False,
) -> np.ndarray:
    """One step of Conv's accumulation: binary spikes (B, X, Y, C_in) and a kernel in Lava's layout
    (C_out, kX, kY, C_in // groups) give (B, X', Y', C_out) int64, wrapped to 24 bits.

    Lava (``conv_scipy``): for each group, output channel and input channel, ``scipy.signal.convolve2d`` of the
    zero-padded input with the dilated kernel in ``'valid'`` mode, every stride-th row and column kept. That is
    a true convolution (the kernel is flipped), accumulated in float64 and cast to int32 (exact: the sums are
    integers far below 2**31), then ``signed_clamp(x, 24)``. ``weight_exp`` and ``num_weight_bits`` are *not*
    applied by ``PyConvModelFixed``, and the weights are neither clipped nor truncated.

    ``graded=True`` (``num_message_bits > 0``): the input holds integer payloads, which Lava convolves as they
    are (``s_in`` is not cast to bool); the sum-pooled spike counts of a pooled synapse are such payloads."""
    s = np.asarray(spikes, np.int64) if graded else np.asarray(spikes, bool)
    batch = s.shape[0]
    c_out, kx, ky, per_group = weight.shape
    x_out, y_out, _ = conv_output_shape(s.shape[1:], c_out, (kx, ky), stride, padding, dilation)
    top = float(np.abs(s).max(initial=0)) if graded else 1.0
    dtype = (
        np.float32 if top * float(np.abs(weight).sum(axis=(1, 2, 3)).max(initial=0)) < float(1 << 24) else np.float64
    )
    padded = zero_pad(s, padding, dtype)
    # convolve2d flips the kernel: correlate with the kernel mirrored in x and y instead.
    flipped = np.asarray(weight, dtype)[:, ::-1, ::-1, :]
    cols = [
        padded[
            :,
            i * dilation[0] : i * dilation[0] + stride[0] * (x_out - 1) + 1 : stride[0],
            j * dilation[1] : j * dilation[1] + stride[1] * (y_out - 1) + 1 : stride[1],
            :,
        ]
        for i in range(kx)
        for j in range(ky)
    ]
    n = batch * x_out * y_out
    patches = np.stack(cols, axis=3).reshape(n, kx * ky, groups, per_group)  # (N, taps, groups, C_in / groups)
    patches = patches.transpose(2, 0, 1, 3).reshape(groups, n, kx * ky * per_group)
    per_out = c_out // groups
    kernel = flipped.reshape(groups, per_out, kx * ky, per_group).transpose(0, 2, 3, 1)
    kernel = kernel.reshape(groups, kx * ky * per_group, per_out)
    # Exact: float32 when |sum| <= max|input| * sum|w| < 2**24 (every partial sum is an integer float32 holds),
    # float64 otherwise (Lava sums in float64).
    out = np.rint(np.matmul(patches, kernel)).astype(np.int64)  # (groups, N, C_out / groups)
    out = out.transpose(1, 0, 2).reshape(batch, x_out, y_out, c_out)
    return wrap(out, CONV_BITS)  # signed_clamp(x, bits=24): a two's-complement wrap


def zero_pad(x: np.ndarray, padding: tuple[int, int], dtype: type) -> np.ndarray:
    """(B, X, Y, C) -> (B, X + 2 px, Y + 2 py, C) of ``dtype``, zeros around x (what ``np.pad`` with zeros gives,
    without its per-call overhead, which dominates at small batches)."""
    b, x_size, y_size, c = x.shape
    padded = np.zeros((b, x_size + 2 * padding[0], y_size + 2 * padding[1], c), dtype)
    padded[:, padding[0] : padding[0] + x_size, padding[1] : padding[1] + y_size] = x
    return padded


def conv_weight_from_oihw(weight: np.ndarray) -> np.ndarray:
    """An ONNX/PyTorch cross-correlation kernel (C_out, C_in / groups, kH, kW) as Lava's convolution kernel
    (C_out, kW, kH, C_in / groups): flipped in space and transposed, as lava-dl's netx does
    (``hdf5.py: Network.create_conv``: ``weight[:, :, ::-1, ::-1]`` then ``transpose((0, 3, 2, 1))``).
    Activations go with it from (C, H, W) to (W, H, C): :func:`chw_to_xyc`."""
    return np.ascontiguousarray(np.asarray(weight)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def chw_to_xyc(x: np.ndarray) -> np.ndarray:
    """Activations (..., C, H, W) in Lava's (..., X, Y, C) = (..., W, H, C) order."""
    x = np.asarray(x)
    return np.ascontiguousarray(np.moveaxis(x, (-3, -2, -1), (-1, -2, -3)))


def xyc_to_chw(x: np.ndarray) -> np.ndarray:
    """Lava's (..., W, H, C) activations in ONNX's (..., C, H, W) order."""
    x = np.asarray(x)
    return np.ascontiguousarray(np.moveaxis(x, (-1, -2, -3), (-3, -2, -1)))


# -- LIF neuron --------------------------------------------------------------------------------------------


def decay(x: np.ndarray, d: int) -> np.ndarray:
    """x * (4096 - d) / 4096, rounded toward zero: Lava's
    ``np.sign(x * (4096 - d)) * np.right_shift(np.abs(x * (4096 - d)), 12)`` in int64. The factors 0 (d = 4096,
    an IF neuron's u) and 1 (d = 0, its v) are exact shortcuts of the same formula."""
    x = np.asarray(x, np.int64)
    if d == DECAY_UNITY:
        return np.zeros_like(x)  # x * 0 >> 12
    if d == 0:
        return x  # x * 4096 >> 12 = x exactly (toward zero or not)
    product = x * (DECAY_UNITY - d)  # |u|, |v| < 2**31 and d <= 4096: no int64 overflow
    return np.sign(product) * (np.abs(product) >> DECAY_BITS)  # shift the magnitude: rounds toward zero


def effective_bias(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    """``scale_bias``: bias_mant << bias_exp (bias_exp in 0..7; a 13-bit mantissa stays within int32)."""
    return np.left_shift(np.asarray(bias_mant, np.int64), np.asarray(bias_exp, np.int64))  # mantissa * 2**exp


def effective_threshold(vth: int) -> int:
    """``PyLifModelBitAcc.scale_threshold``: vth << 6 (at most 2**23 - 64 for a 17-bit vth)."""
    return int(vth) << VTH_SHIFT  # MSB alignment with the 24-bit v


def current_sum(u: np.ndarray, a_in: np.ndarray, du: int) -> np.ndarray:
    """The new current before Lava's 24-bit fold (``subthr_dynamics``, "Update current"): u decayed by
    (du + 1) / 4096 toward zero, plus ``a_in << 6``, both in int32 (so the shift and the sum wrap at 32 bits, as
    numpy int32 arithmetic does)."""
    decayed = decay(u, du + DS_OFFSET)  # decay_const_u = du + ds_offset
    activation = wrap(np.asarray(a_in, np.int64) << ACT_SHIFT, LIF_INT_BITS)  # int32 left shift: wraps
    return wrap(decayed + activation, LIF_INT_BITS)  # decayed_curr += activation_in: int32 += int32, wraps


def fold_current(total: np.ndarray) -> np.ndarray:
    """Lava's 24-bit "wrap" of u, which is a single fold and asymmetric: d > 2**23 becomes d - 2**24 and
    d <= -2**23 becomes d + 2**24. So -2**23 becomes +2**23 (outside 24 bits), +2**23 stays, and a sum beyond
    +-3 * 2**23 stays out of range after the fold."""
    folded = np.where(total > STATE_LIMIT, total - 2 * STATE_LIMIT, total)  # first np.where: d > 2**23
    # the second np.where tests the result of the first but adds to the unfolded value, as Lava does
    return np.where(folded <= -STATE_LIMIT, total + 2 * STATE_LIMIT, folded)


def current_update(u: np.ndarray, a_in: np.ndarray, du: int) -> np.ndarray:
    """u[t] from u[t-1] and the synaptic message a_in: :func:`fold_current` of :func:`current_sum`."""
    return fold_current(current_sum(u, a_in, du))


def voltage_sum(v: np.ndarray, u: np.ndarray, bias: np.ndarray, dv: int) -> np.ndarray:
    """The new voltage before saturation (``subthr_dynamics``, "Update voltage"): v decayed by dv / 4096
    toward zero, plus the new u and the effective bias (int32 additions)."""
    decayed = decay(v, dv + DM_OFFSET)  # decay_const_v = dv + dm_offset
    total = decayed + np.asarray(u, np.int64) + bias
    return wrap(total, LIF_INT_BITS)  # decayed_volt + self.u + effective_bias: int32 sums, wrap


def saturate_voltage(total: np.ndarray) -> np.ndarray:
    """``np.clip(updated_volt, neg_voltage_limit, pos_voltage_limit)``: v saturates at +-(2**23 - 1)."""
    return np.clip(total, -STATE_LIMIT + 1, STATE_LIMIT - 1)  # saturate, not wrap


def voltage_update(v: np.ndarray, u: np.ndarray, bias: np.ndarray, dv: int) -> np.ndarray:
    """v[t] from v[t-1], the new u and the effective bias: :func:`saturate_voltage` of :func:`voltage_sum`."""
    return saturate_voltage(voltage_sum(v, u, bias, dv))


def spikes_of(v: np.ndarray, threshold: int) -> np.ndarray:
    """``spiking_activation``: v > vth << 6, a strict comparison (v equal to the threshold does not spike)."""
    return v > threshold


def reset_to_zero(v: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``reset_voltage`` of Lava's LIF: v = 0 where the neuron spiked (u is not reset)."""
    return np.where(s, 0, v)


def reset_by_subtraction(v: np.ndarray, s: np.ndarray, threshold: int) -> np.ndarray:
    """The subtractive reset of :class:`neurodeploy_loihi.lava_processes.SubtractiveLIF`: v -= vth << 6 where the
    neuron spiked. Since v > vth << 6 >= 0 there, the result lies in [1, 2**23 - 1]: no wrap, no saturation."""
    return np.where(s, v - threshold, v)
