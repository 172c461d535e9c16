"""Hand-derived integer traces for each piece of Loihi 2 arithmetic (no Lava needed): every expected number
below is worked out in the comment next to it from Lava's equations, not computed by the code under test."""

import numpy as np
import pytest
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron

M = 1 << 23  # 2**23 = 8388608, Lava's max_uv_val
VTH_MAX = (1 << 17) - 1


def one_neuron(weight: int, *, weight_exp=0, du=4095, dv=0, vth=VTH_MAX, kind="lif", bias_mant=0, bias_exp=0, v0=0):
    synapse = DenseSynapse(np.array([[weight]]), weight_exp=weight_exp)
    return Network(
        [Layer(synapse, Neuron(du=du, dv=dv, vth=vth, kind=kind, bias_mant=bias_mant, bias_exp=bias_exp, v0=v0))]
    )


def spikes_at(steps: int, *ts: int) -> np.ndarray:
    """One input, spiking at the (1-based) steps ``ts``: shape (1, steps, 1)."""
    x = np.zeros((1, steps, 1), np.int8)
    for t in ts:
        x[0, t - 1, 0] = 1
    return x


# -- decay -------------------------------------------------------------------------------------------------


def test_du_2047_halves_u_every_step() -> None:
    # u decays by (du + 1) / 4096 = 2048 / 4096 = 1/2. An input spike at step 1 with weight 100 arrives at step 2
    # (one-step synaptic delay) as 100 << 6 = 6400, then halves: 3200, 1600, 800.
    trace = one_neuron(100, du=2047).run(spikes_at(5, 1))
    assert trace.u[0][0, :, 0].tolist() == [0, 6400, 3200, 1600, 800]


def test_du_4095_empties_u_and_dv_0_keeps_v() -> None:
    # du = 4095: factor 4096 - 4096 = 0, u is the input alone; dv = 0: v integrates u without leak.
    trace = one_neuron(3).run(spikes_at(4, 1, 2))
    assert trace.u[0][0, :, 0].tolist() == [0, 192, 192, 0]  # 3 << 6 = 192
    assert trace.v[0][0, :, 0].tolist() == [0, 192, 384, 384]


def test_decay_rounds_toward_zero() -> None:
    # factor 2048/4096: -3 * 2048 = -6144, |.| >> 12 = 1, so -1 (flooring would give -2); -1 -> 0 (not -1)
    assert fp.decay(np.array([-3, -1, 3, 1, -4097]), 2048).tolist() == [-1, 0, 1, 0, -2048]
    # factor 4095/4096 (d = 1): -1 * 4095 / 4096 -> 0; -4096 * 4095 / 4096 = -4095 exactly
    assert fp.decay(np.array([-1, -4096, 4097]), 1).tolist() == [0, -4095, 4095]  # 4097 * 4095 / 4096 = 4095.99


def test_negative_u_decays_toward_zero_in_the_network() -> None:
    # weight -77: u = -77 << 6 = -4928 at step 2, then halves exactly: -2464, -1232, -616, -308, -154, -77,
    # then -77 * 2048 / 4096 = -38.5 -> -38 (toward zero), -19, -9 (not -10), -4, -2, -1, 0 (not -1).
    trace = one_neuron(-77, du=2047, dv=4095).run(spikes_at(15, 1))
    assert trace.u[0][0, :, 0].tolist() == [0, -4928, -2464, -1232, -616, -308, -154, -77, -38, -19, -9, -4, -2, -1, 0]


# -- u: 24-bit fold ----------------------------------------------------------------------------------------


def test_u_folds_once_past_plus_and_minus_2pow23() -> None:
    # du = 4095, so u is the input alone: a_in << 6.
    a_in = np.array([(1 << 17) + 1, 1 << 17, -(1 << 17), -(1 << 17) - 1, 3 << 17])
    u = fp.current_update(np.zeros(5, np.int64), a_in, 4095)
    assert u.tolist() == [
        M + 64 - 2 * M,  # 2**23 + 64 > 2**23: folds to -2**23 + 64
        M,  # exactly 2**23: not > 2**23, stays (outside 24-bit range)
        M,  # exactly -2**23: <= -2**23, folds to +2**23
        -M - 64 + 2 * M,  # -2**23 - 64 folds to 2**23 - 64
        3 * M - 2 * M,  # 3 * 2**23 folds once, to 2**23, and no further
    ]


def test_input_shift_wraps_at_32_bits() -> None:
    # a_in = 2**25: a_in << 6 = 2**31, which int32 wraps to -2**31; -2**31 <= -2**23 folds to -2**31 + 2**24
    assert fp.current_update(np.zeros(1, np.int64), np.array([1 << 25]), 4095).tolist() == [-(1 << 31) + (1 << 24)]


def test_u_fold_in_the_network() -> None:
    # weight 128, weight_exp 10: a_in = 2**17, u = 2**23 exactly (kept); weight 129: 129 * 1024 << 6 =
    # 8454144 > 2**23, folds to 8454144 - 16777216 = -8323072.
    assert one_neuron(128, weight_exp=10).run(spikes_at(2, 1)).u[0][0, 1, 0] == M
    assert one_neuron(129, weight_exp=10).run(spikes_at(2, 1)).u[0][0, 1, 0] == -8323072


# -- v: saturation -----------------------------------------------------------------------------------------


def test_v_saturates_at_plus_minus_2pow23_minus_1() -> None:
    v = fp.voltage_update(np.array([M - 10, -M + 10, M - 10]), np.array([100, -100, 9]), np.zeros(3, np.int64), 0)
    assert v.tolist() == [M - 1, -M + 1, M - 1]  # M - 10 + 9 = M - 1 exactly: at the limit, not past it


def test_bias_drives_v_into_saturation() -> None:
    # bias -4096 << 7 = -524288 a step: v = -524288 t until it would pass -(2**23 - 1) at t = 16 (-8388608)
    trace = one_neuron(0, bias_mant=-4096, bias_exp=7).run(np.zeros((1, 17, 1), np.int8))
    v = trace.v[0][0, :, 0]
    assert v[:15].tolist() == [-524288 * t for t in range(1, 16)]
    assert v[15:].tolist() == [-M + 1, -M + 1]
    assert trace.v_saturations[0].tolist() == [2]


# -- threshold, spikes and resets --------------------------------------------------------------------------


def test_spike_needs_v_strictly_above_vth_shifted_by_6() -> None:
    # vth 1: threshold 1 << 6 = 64. weight 1 every step: u = 64 from step 2, v = 64 (equal: no spike), 128 (spike,
    # reset to 0), 64, 128 (spike) ...
    x = np.ones((1, 6, 1), np.int8)
    trace = one_neuron(1, vth=1).run(x)
    assert trace.v[0][0, :, 0].tolist() == [0, 64, 0, 64, 0, 64]
    assert trace.spikes[0][0, :, 0].tolist() == [False, False, True, False, True, False]
    assert fp.spikes_of(np.array([63, 64, 65]), 64).tolist() == [False, False, True]


def test_subtractive_reset_keeps_the_charge_above_threshold() -> None:
    # vth 1 (threshold 64), weight 3 every step: u = 192 from step 2. v: 192 > 64 -> spike, 192 - 64 = 128;
    # 128 + 192 = 320 -> spike, 256; 256 + 192 = 448 -> 384. The LIF resets to 0 instead.
    x = np.ones((1, 5, 1), np.int8)
    sub = one_neuron(3, vth=1, kind="subtractive").run(x)
    lif = one_neuron(3, vth=1).run(x)
    assert sub.v[0][0, :, 0].tolist() == [0, 128, 256, 384, 512]
    assert lif.v[0][0, :, 0].tolist() == [0, 0, 0, 0, 0]
    assert sub.spikes[0][0, 1:, 0].all()
    assert lif.spikes[0][0, 1:, 0].all()
    assert fp.reset_by_subtraction(np.array([100, 50]), np.array([True, False]), 64).tolist() == [36, 50]


def test_initial_v_is_half_the_threshold() -> None:
    # IF neuron of the conversion: vth 2 (threshold 128), v(0) = 64. Input 1 (64 a step, from step 2):
    # v = 64, 128 (equal: no spike), 192 -> spike -> 64, 128, 192 -> 64
    x = np.ones((1, 6, 1), np.int8)
    trace = one_neuron(1, vth=2, kind="subtractive", v0=64).run(x)
    assert trace.v[0][0, :, 0].tolist() == [64, 128, 64, 128, 64, 128]
    assert trace.spikes[0][0, :, 0].tolist() == [False, False, True, False, True, False]


def test_bias_is_mantissa_shifted_by_exponent() -> None:
    assert fp.effective_bias(np.array([3, -5, 4095]), np.array([2, 0, 7])).tolist() == [12, -5, 524160]
    trace = one_neuron(0, bias_mant=-5, bias_exp=3).run(np.zeros((1, 3, 1), np.int8))
    assert trace.v[0][0, :, 0].tolist() == [-40, -80, -120]


def test_each_layer_adds_one_step_of_delay() -> None:
    # an input spike at step 1 reaches layer 1's neurons at step 2 (they spike: 100 << 6 > 64), whose spike
    # reaches layer 2 at step 3 and layer 3 at step 4.
    layers = [Layer(DenseSynapse(np.array([[100]])), Neuron(du=4095, dv=4095, vth=1)) for _ in range(3)]
    trace = Network(layers).run(spikes_at(5, 1))
    assert [np.flatnonzero(s[0, :, 0]).tolist() for s in trace.spikes] == [[1], [2], [3]]


# -- Dense weights -----------------------------------------------------------------------------------------


def test_sign_mode_from_weights() -> None:
    assert fp.determine_sign_mode(np.array([0, 3])) == fp.SignMode.EXCITATORY
    assert fp.determine_sign_mode(np.array([0, 0])) == fp.SignMode.EXCITATORY
    assert fp.determine_sign_mode(np.array([-1, 0])) == fp.SignMode.INHIBITORY
    assert fp.determine_sign_mode(np.array([-1, 1])) == fp.SignMode.MIXED


def test_weight_clipping_per_sign_mode() -> None:
    w = np.array([-300, -256, -7, 7, 255, 300])
    assert fp.clip_weights(w, fp.SignMode.MIXED).tolist() == [-256, -256, -7, 7, 255, 255]
    assert fp.clip_weights(w, fp.SignMode.EXCITATORY).tolist() == [0, 0, 0, 7, 255, 255]
    assert fp.clip_weights(w, fp.SignMode.INHIBITORY).tolist() == [-255, -255, -7, 0, 0, 0]


def test_weight_truncation_per_sign_mode() -> None:
    w = np.array([-7, -3, 3, 7, 255])
    # MIXED, 8 bits: 8 - 8 + 1 = 1 bit dropped, as signed numbers: -7 -> -8, -3 -> -4, 3 -> 2, 7 -> 6, 255 -> 254
    assert fp.truncate_weights(w, fp.SignMode.MIXED, 8).tolist() == [-8, -4, 2, 6, 254]
    # EXCITATORY, 6 bits: 2 bits dropped: 3 -> 0, 7 -> 4, 255 -> 252 (negatives were clipped before)
    assert fp.truncate_weights(w[2:], fp.SignMode.EXCITATORY, 6).tolist() == [0, 4, 252]
    # INHIBITORY, 6 bits: the magnitude is truncated: -7 -> -4, -3 -> 0 (toward zero, not -4 and -4)
    assert fp.truncate_weights(w[:2], fp.SignMode.INHIBITORY, 6).tolist() == [-4, 0]
    # MIXED, 3 bits: 6 bits dropped: -7 -> -64, 255 -> 192
    assert fp.truncate_weights(w, fp.SignMode.MIXED, 3).tolist() == [-64, -64, 0, 0, 192]


def test_dense_effective_weights_clip_then_truncate() -> None:
    syn = DenseSynapse(np.array([[300, -300, 5]]), num_weight_bits=7, sign_mode=fp.SignMode.MIXED)
    # clip to [-256, 255], then drop 8 - 7 + 1 = 2 bits: 255 -> 252, -256 -> -256, 5 -> 4
    assert syn.effective_weights.tolist() == [[252, -256, 4]]
    # no sign mode: all non-negative -> EXCITATORY, 8 bits: nothing dropped, 300 clipped to 255
    assert DenseSynapse(np.array([[300, 0, 5]])).effective_weights.tolist() == [[255, 0, 5]]


def test_weight_exp_shifts_the_sum_and_floors_negatives() -> None:
    spikes = np.array([[1, 1]], bool)
    # sum 3 - 6 = -3: exp -1 -> -3 >> 1 = -2 (floor); exp 2 -> -12; sum 5 exp -1 -> 2
    assert fp.dense_accumulate(spikes, np.array([[3, -6]]), -1).tolist() == [[-2]]
    assert fp.dense_accumulate(spikes, np.array([[3, -6]]), 2).tolist() == [[-12]]
    assert fp.dense_accumulate(spikes, np.array([[3, 2]]), -1).tolist() == [[2]]


def test_dense_message_wraps_at_32_bits() -> None:
    # 2 * 128 * 2**23 = 2**31 wraps in the int32 port to -2**31
    assert fp.dense_accumulate(np.ones((1, 2), bool), np.array([[128, 128]]), 23).tolist() == [[-(1 << 31)]]


# -- Conv --------------------------------------------------------------------------------------------------


def test_conv_impulse_response_is_the_lava_kernel_unflipped() -> None:
    # Lava convolves (scipy.signal.convolve2d), so a single spike in the middle of a 3x3 input with padding 1
    # reproduces the kernel itself, weight[c_out, x, y, c_in], at output (x, y).
    kernel = np.arange(1, 10).reshape(1, 3, 3, 1)
    spikes = np.zeros((1, 3, 3, 1), bool)
    spikes[0, 1, 1, 0] = True
    out = fp.conv_accumulate(spikes, kernel, (1, 1), (1, 1), (1, 1), 1)
    assert out[0, :, :, 0].tolist() == kernel[0, :, :, 0].tolist()


def test_conv_kernel_from_onnx_layout() -> None:
    # ONNX cross-correlation, weight (O, I, kH, kW) = w[0, 0] = [[1, 2], [3, 4]] (rows are H): on a (C, H, W)
    # input with one spike at (h=0, w=0), output (h, w) = w[0, 0, -h, -w] -> only (0, 0) gets w[0,0,0,0] = 1 with
    # no padding; with an input of ones every output is 1 + 2 + 3 + 4 = 10.
    onnx = np.array([[[[1, 2], [3, 4]]]])
    lava = fp.conv_weight_from_oihw(onnx)
    assert lava.shape == (1, 2, 2, 1)  # (C_out, kW, kH, C_in)
    # flipped in space and transposed: lava[0, x, y, 0] = onnx[0, 0, 1 - y, 1 - x]
    assert lava[0, :, :, 0].tolist() == [[4, 2], [3, 1]]
    ones = np.ones((1, 3, 2, 1), bool)  # (X=3, Y=2, C=1): H = 2 rows, W = 3 columns
    assert fp.conv_accumulate(ones, lava, (1, 1), (0, 0), (1, 1), 1)[..., 0].tolist() == [[[10], [10]]]
    spike = np.zeros((1, 1, 2, 3), bool)
    spike[0, 0, 0, 0] = True  # (c=0, h=0, w=0)
    out = fp.conv_accumulate(fp.chw_to_xyc(spike), lava, (1, 1), (0, 0), (1, 1), 1)  # (1, X=2, Y=1, 1)
    assert fp.xyc_to_chw(out)[0, 0].tolist() == [[1, 0]]  # output (h=0, w=0) = onnx[0,0,0,0]; (0, 1) gets 0


def _correlate_chw(x, w, stride, pads, dilation, groups):
    """Direct ONNX Conv (cross-correlation), (B, C, H, W) with w (O, C/g, kH, kW), symmetric pads (pH, pW)."""
    b, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[0]), (pads[1], pads[1])))
    oh = (h + 2 * pads[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pads[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((b, o, oh, ow), np.int64)
    for n in range(b):
        for k in range(o):
            g = k // (o // groups)
            for i in range(oh):
                for j in range(ow):
                    for ci in range(cg):
                        for a in range(kh):
                            for d in range(kw):
                                hh, ww = i * stride[0] + a * dilation[0], j * stride[1] + d * dilation[1]
                                out[n, k, i, j] += xp[n, g * cg + ci, hh, ww] * w[k, ci, a, d]
    return out


@pytest.mark.parametrize(
    ("stride", "pads", "dilation", "groups"),
    [((1, 1), (0, 0), (1, 1), 1), ((2, 1), (1, 0), (1, 2), 2), ((1, 2), (1, 1), (2, 1), 4)],
)
def test_conv_equals_onnx_cross_correlation_after_layout_change(stride, pads, dilation, groups) -> None:
    rng = np.random.default_rng(groups)
    x = rng.random((2, 4, 6, 5)) < 0.5  # (B, C, H, W)
    w = rng.integers(-256, 256, (4, 4 // groups, 3, 2))  # (O, C/g, kH, kW)
    expected = _correlate_chw(x.astype(np.int64), w, stride, pads, dilation, groups)
    lava_w = fp.conv_weight_from_oihw(w)
    out = fp.conv_accumulate(fp.chw_to_xyc(x), lava_w, stride[::-1], pads[::-1], dilation[::-1], groups)
    np.testing.assert_array_equal(fp.xyc_to_chw(out), expected)


def test_conv_accumulation_wraps_at_24_bits() -> None:
    # a 1x1 kernel over 40000 channels of weight 255: 10200000 > 2**23 wraps to 10200000 - 2**24 = -6577216
    syn = ConvSynapse(np.full((1, 1, 1, 40000), 255), (1, 1, 40000))
    assert syn.accumulate(np.ones((1, 1, 1, 40000), bool)).tolist() == [[[[-6577216]]]]
    assert fp.wrap(np.array([M, -M - 1, M - 1]), 24).tolist() == [-M, M - 1, M - 1]
