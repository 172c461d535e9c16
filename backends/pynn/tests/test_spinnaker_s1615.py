"""neurodeploy_pynn.s1615: sPyNNaker 1!7.4.1's s16.15 arithmetic, the host's encoding and weight rounding.

The exponentials are compared with the outputs of spinn_common 7.4.1's own ``expk`` and ``expulr``
(``src/stdfix-exp.c`` at commit bc838c18, compiled with ``arm-linux-gnueabihf-gcc -O2 -marm -march=armv5te+fp``
and run under qemu-arm): sampled values below, and a SHA-256 digest of both functions over every raw argument
from -340695 to 363408 (the whole range where they are not saturated). Other examples are the ones
docs/spinnaker-arithmetic.md states; the ARM behaviour of the multiply and divisions is also compared with GCC's
``accum`` code in test_spinnaker_arm.py.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from neurodeploy_pynn import s1615

# (raw argument, expk raw, expulr raw) from spinn_common 7.4.1's functions
VENDOR_EXP = [
    (-340700, 0, 0),
    (-340696, 0, 0),
    (-340695, 1, 131075),
    (-340694, 1, 131079),
    (-327680, 1, 194991),
    (-300000, 3, 453812),
    (-98304, 1631, 213833830),
    (-65536, 4434, 581260615),
    (-32769, 12054, 1579980021),
    (-32768, 12054, 1580030169),
    (-32767, 12055, 1580080444),
    (-30720, 12832, 1681931287),
    (-30719, 12832, 1681986876),
    (-16384, 19874, 2605026136),
    (-6554, 26827, 3516383004),
    (-6553, 26828, 3516490311),
    (-3277, 29649, 3886220541),
    (-2048, 30782, 4034743409),
    (-2047, 30783, 4034876763),
    (-1638, 31170, 4085544196),
    (-1, 32766, 4294830979),
    (0, 32768, 0),
    (1, 32769, 136662),
    (2047, 34880, 276856484),
    (2048, 34881, 276995958),
    (16384, 54025, 2786227913),
    (32767, 89069, 3084626415),
    (32768, 89072, 3084996963),
    (32769, 89075, 3085368448),
    (65536, 242124, 1670983221),
    (100000, 693125, 655051506),
    (200000, 14661335, 1840197438),
    (363407, 2147368115, 2036853091),
    (363408, 2147433656, 2037480179),
    (363409, 2147483647, 2147483647),
    (363413, 2147483647, 2147483647),
]
# sha256(expk as little-endian int32 || expulr as little-endian uint32) over raw -340695 .. 363408
VENDOR_EXP_DIGEST = "e634d55bfa7ab31d47a0fd8ae60280516a54240733d561648f082cddc1c9d11e"


# ----------------------------------------------------------------------------------------------------------------
# Encoding


def test_encode_rounds_the_decimal_string_half_to_even() -> None:
    assert s1615.encode(1.0) == 32768
    assert s1615.encode(-65.0) == -2129920
    assert s1615.encode(0.1) == 3277  # 3276.8
    assert s1615.encode(-0.2) == -6554  # -6553.6
    assert s1615.encode(2**-16) == 0  # 0.5 -> 0 (even)
    assert s1615.encode(3 * 2**-16) == 2  # 1.5 -> 2
    assert s1615.encode(5 * 2**-16) == 2  # 2.5 -> 2
    assert s1615.encode(-(2**-16)) == 0
    assert s1615.encode(-3 * 2**-16) == -2
    assert s1615.encode(np.float64(0.5)) == 16384
    assert s1615.encode(np.int64(3)) == 3 * 32768
    np.testing.assert_array_equal(s1615.encode_array([[0.1, -0.2], [1.0, 2.5]]), [[3277, -6554], [32768, 81920]])


def test_encode_range_is_the_hosts() -> None:
    assert s1615.encode(-65536) == s1615.INT32_MIN
    assert s1615.encode(65535.999969482421875) == s1615.INT32_MAX
    for bad in (65536, 65535.99998, -65536.00001, 1e9, float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="S1615"):
            s1615.encode(bad)
    with pytest.raises(TypeError):
        s1615.encode(True)
    with pytest.raises(TypeError):
        s1615.encode("1.0")


# ----------------------------------------------------------------------------------------------------------------
# Multiply, add, divisions, decays


def test_multiply_floors_and_wraps_as_arm_mode() -> None:
    half = 16384
    assert s1615.mul(3, half) == 1
    assert s1615.mul(-3, half) == -2
    assert s1615.mul(half, -3) == -2
    assert s1615.mul(-1, 1) == -1  # -2**-30 floors to -1 LSB
    assert s1615.mul(1, 1) == 0
    assert s1615.mul(0x7FFFFFFF, 65536) == -2  # as qemu-arm gives
    assert s1615.mul(2 * s1615.ONE, 3 * s1615.ONE) == 6 * s1615.ONE
    assert s1615.mul(256 * s1615.ONE, 256 * s1615.ONE) == s1615.INT32_MIN  # 65536.0 wraps
    a = np.array([[3, -3], [5, -5]], dtype=np.int32)
    np.testing.assert_array_equal(s1615.mul(a, half), [[1, -2], [2, -3]])
    assert s1615.mul(a, half).dtype == np.int32
    assert isinstance(s1615.mul(3, half), np.int32)


def test_add_sub_neg_wrap() -> None:
    assert s1615.add(s1615.INT32_MAX, 1) == s1615.INT32_MIN
    assert s1615.sub(s1615.INT32_MIN, 1) == s1615.INT32_MAX
    assert s1615.neg(s1615.INT32_MIN) == s1615.INT32_MIN
    assert s1615.neg(5) == -5
    np.testing.assert_array_equal(s1615.add([1, -1], [2, -2]), [3, -3])


def test_raw_bits_are_checked() -> None:
    with pytest.raises(ValueError, match="outside"):
        s1615.mul(2**31, 1)
    with pytest.raises(TypeError, match="integer"):
        s1615.mul(1.5, 1)
    with pytest.raises(TypeError, match="integer"):
        s1615.add(np.array([True]), 1)
    with pytest.raises(ValueError, match=r"u0\.32"):
        s1615.decay_s1615(1, -1)


def test_divisions_truncate() -> None:
    one = s1615.ONE
    assert s1615.kdivk(one, 3 * one) == 10922  # 10922.67
    assert s1615.kdivk(20 * one, one) == 20 * one
    assert s1615.kdivk(one, 20 * one) == 1638  # ts / tau_m = 0.05 -> 1638.4
    assert s1615.kdivk(one, 3277) == 327660  # 1 / 0.1 (encoded 3277) = 9.9994
    assert s1615.kdivk(3277, 3277) == one
    with pytest.raises(ZeroDivisionError):
        s1615.kdivk(one, 0)
    assert s1615.kdivui(one, 3) == 10922
    assert s1615.kdivui(3277, 1) == 3277
    assert s1615.kdivui(one, 2) == 16384
    np.testing.assert_array_equal(s1615.kdivk([one, 2 * one], [3 * one, 3 * one]), [10922, 21845])


def test_decays_floor() -> None:
    half_u032 = 1 << 31
    assert s1615.decay_s1615(65536, half_u032) == 32768
    assert s1615.decay_s1615(1, half_u032) == 0
    assert s1615.decay_s1615(-1, half_u032) == -1  # floor(-0.5)
    assert s1615.decay_s1615(-3, half_u032) == -2
    assert s1615.decay_s1615(s1615.INT32_MIN, s1615.UINT32_MAX) == s1615.INT32_MIN  # -2**31 * (1 - 2**-32), floored
    assert s1615.decay_s1615(12345, 0) == 0
    # tau / ts = 5.0 times (1 - decay): ((uint64)163840 * d) >> 15, low 32 bits
    d = 0xFFFFFFFF - 3516490311
    assert s1615.decay_s1615_to_u032(5 * s1615.ONE, d) == (163840 * d) >> 15
    assert s1615.decay_s1615_to_u032(s1615.ONE, half_u032) == half_u032
    assert s1615.decay_s1615_to_u032(2 * s1615.ONE, half_u032) == 0  # 1.0 does not fit u0.32: low 32 bits


def test_ceil_accum() -> None:
    np.testing.assert_array_equal(
        s1615.ceil_accum([0, 1, 32767, 32768, 32769, -1, -32768, -32769, 327660]), [0, 1, 1, 1, 2, 0, -1, -1, 10]
    )


# ----------------------------------------------------------------------------------------------------------------
# Exponentials


def test_expk_and_expulr_match_spinn_common_samples() -> None:
    args = np.array([a for a, _, _ in VENDOR_EXP], dtype=np.int32)
    np.testing.assert_array_equal(s1615.expk(args), [k for _, k, _ in VENDOR_EXP])
    np.testing.assert_array_equal(s1615.expulr(args), [u for _, _, u in VENDOR_EXP])
    assert s1615.expk(args).dtype == np.int32
    assert s1615.expulr(args).dtype == np.uint32


def test_expk_and_expulr_match_spinn_common_everywhere() -> None:
    n = np.arange(s1615.EXP_ZERO_BELOW, s1615.EXP_SATURATE_ABOVE + 1, dtype=np.int32)
    k = s1615.expk(n).astype("<i4")
    u = s1615.expulr(n).astype("<u4")
    assert hashlib.sha256(k.tobytes() + u.tobytes()).hexdigest() == VENDOR_EXP_DIGEST


def test_exp_values_the_doc_states() -> None:
    assert s1615.expk(s1615.encode(-0.2)) == 26827  # exp gives 26827.87
    assert s1615.expk(s1615.encode(-1.0)) == 12054
    assert s1615.expulr(0) == 0
    assert s1615.expk(0) == s1615.ONE
    assert s1615.expk(363408) == 2147433656
    assert s1615.expk(363409) == s1615.INT32_MAX
    assert s1615.expk(s1615.INT32_MAX) == s1615.INT32_MAX
    assert s1615.expk(-340695) == 1
    assert s1615.expk(-340696) == 0
    assert s1615.expk(s1615.INT32_MIN) == 0
    assert s1615.expulr(363409) == 0x7FFFFFFF
    assert s1615.expulr(-340696) == 0
    assert s1615.expk(np.zeros((2, 3), dtype=np.int32)).shape == (2, 3)


def test_expk_is_within_two_lsb_of_exp() -> None:
    """Below x = 2 the table algorithm stays within 2 LSB of e**x (truncation and the series); above, where the
    result has up to 31 bits, within 6e-6 relative."""
    n = np.arange(s1615.EXP_ZERO_BELOW, s1615.EXP_SATURATE_ABOVE + 1, 97, dtype=np.int64)
    got = s1615.expk(n.astype(np.int32)).astype(np.float64)
    exact = np.array([math.exp(x / 32768.0) * 32768.0 for x in n.tolist()])
    small = n <= 2 * s1615.ONE
    assert np.abs(got[small] - exact[small]).max() <= 2.0
    assert (np.abs(got[~small] - exact[~small]) / exact[~small]).max() <= 6e-6
    assert (got[small] <= exact[small] + 0.5).all()  # truncation: never above by more than the series error


# ----------------------------------------------------------------------------------------------------------------
# Constants computed on the chip


def test_lif_constants_for_pynn_defaults() -> None:
    """tau_m 20 ms, cm 1 nF, tau_refrac 0.1 ms at ts = 1 ms: R = 20 MOhm, exp_TC = expk(-1638) = 31170
    (ts / tau_m truncates to 1638), one refractory step."""
    c = s1615.lif_constants(s1615.encode(1.0), s1615.encode(20.0), s1615.encode(1.0), s1615.encode(0.1))
    assert (c.ts, c.r_membrane, c.exp_tc, c.t_refract) == (32768, 20 * 32768, 31170, 1)
    # at ts = 0.1 ms (3277): 1 ms of refractory time is 32768 / 3277 = 9.9994 steps, ceil 10
    c = s1615.lif_constants(3277, s1615.encode(20.0), s1615.encode(1.0), s1615.encode(1.0))
    assert (c.ts, c.t_refract) == (3277, 10)
    assert c.exp_tc == s1615.expk(-((3277 << 15) // (20 << 15)))
    c = s1615.lif_constants(s1615.encode(1.0), s1615.encode(20.0), s1615.encode(1.0), 0, n_steps_per_timestep=2)
    assert (c.ts, c.t_refract) == (16384, 0)
    arr = s1615.lif_constants(np.full(3, 32768), [655360, 327680, 32768], [32768, 16384, 32768], [3277, 0, 32769])
    np.testing.assert_array_equal(arr.r_membrane, [655360, 655360, 32768])
    np.testing.assert_array_equal(arr.t_refract, [1, 0, 2])


def test_exp_synapse_constants() -> None:
    """tau_syn 5 ms at ts = 1 ms: decay = expulr(-6553) (ts / tau truncated), init = 5.0 x (0xFFFFFFFF - decay)
    >> 15, about 5 (1 - e**-0.2) = 0.906."""
    decay, init = s1615.exp_synapse_constants(s1615.encode(1.0), s1615.encode(5.0))
    assert decay == 3516490311
    assert init == ((5 * 32768) * (0xFFFFFFFF - 3516490311)) >> 15
    assert abs(int(init) / 2**32 - 5 * (1 - math.exp(-0.2))) < 1e-4
    decay, init = s1615.exp_synapse_constants(np.array([32768, 32768]), np.array([163840, 32768]))
    assert decay.dtype == np.uint32
    assert init.shape == (2,)


def test_delta_input_scale() -> None:
    assert s1615.delta_input_scale(s1615.encode(1.0)) == s1615.ONE
    assert s1615.delta_input_scale(s1615.encode(0.1)) == 327660  # 2**30 // 3277
    assert s1615.delta_input_scale(s1615.encode(2.0)) == 16384
    assert s1615.delta_input_scale(s1615.encode(1.0), n_steps_per_timestep=2) == 2 * s1615.ONE


# ----------------------------------------------------------------------------------------------------------------
# Host weight rounding


def test_ring_buffer_shift() -> None:
    cases = {50.0: 6, 0.0: 0, -3.0: 0, 0.5: 0, 0.999: 0, 1.0: 1, 1.5: 1, 2.0: 2, 63.9: 6, 64.0: 7, 65536.0: 17}
    for a, shift in cases.items():
        assert s1615.ring_buffer_shift(a) == shift, a
    with pytest.raises(ValueError):
        s1615.ring_buffer_shift(float("inf"))


def test_weight_words_doc_example() -> None:
    """100 inputs of 0.5 nA, at most one spike per tick each: a = 50, shift 6, scale 2**9, resolution 0.00195 nA;
    every weight becomes the word 256, and 256 << 6 raw bits is 0.5 exactly."""
    shift = s1615.ring_buffer_shift(100 * 0.5)
    assert shift == 6
    assert s1615.weight_scale(shift) == 2.0**9
    ww = s1615.weight_words(np.full(100, 0.5), shift)
    assert ww.words.dtype == np.uint16
    assert (ww.words == 256).all()
    assert ww.resolution == pytest.approx(0.001953125)
    assert (ww.n_zeroed, ww.n_wrapped) == (0, 0)
    assert (256 << shift) == s1615.encode(0.5)
    assert s1615.weight_scale(3, global_scale=1024.0) == 2.0**12 * 1024


def test_weight_words_round_half_to_even_zero_and_wrap() -> None:
    lsb = 1.0 / 512  # shift 6
    w = np.array([0.5 * lsb, 0.9 * lsb, 1.5 * lsb, 2.5 * lsb, -3.0 * lsb, 0.0, 0.2 * lsb, 128.0, 130.0, 127.99])
    ww = s1615.weight_words(w, 6)
    np.testing.assert_array_equal(ww.words, [0, 1, 2, 2, 3, 0, 0, 0, 1024, 65531])
    np.testing.assert_array_equal(ww.zeroed, [True, False, False, False, False, False, True, False, False, False])
    np.testing.assert_array_equal(ww.wrapped, [False] * 7 + [True, True, False])
    assert (ww.n_zeroed, ww.n_wrapped) == (2, 2)
    with pytest.raises(ValueError, match="uint32"):
        s1615.weight_words([2.0**26], 6)
    with pytest.raises(ValueError, match="finite"):
        s1615.weight_words([float("nan")], 6)
