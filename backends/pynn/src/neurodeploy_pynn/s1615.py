"""The s16.15 fixed-point arithmetic of sPyNNaker 1!7.4.1's ARM build, on raw bits.

sPyNNaker's ``REAL`` is GCC's ``accum``: a signed 16.15 number held in an int32. Every function here takes and
returns the raw bits (``int32``; ``uint32`` for the u0.32 ``unsigned long fract`` decays), as numpy scalars or
arrays, elementwise; value = bits / 2**15. The rules (see ``docs/spinnaker-arithmetic.md``):

* :func:`mul` is ``accum * accum`` as GCC compiles it in ARM mode (``smull``, then bits 15..46 of the product):
  floor (round toward minus infinity) and wrap modulo 2**32, no saturation.
* :func:`add`, :func:`sub` and :func:`neg` wrap modulo 2**32.
* :func:`kdivk` and :func:`kdivui` are sPyNNaker's unsigned 64-bit divisions (``common/maths-util.h``),
  truncating; :func:`decay_s1615` and :func:`decay_s1615_to_u032` are ``neuron/decay.h``'s products with a u0.32
  factor, floor.
* :func:`expk` and :func:`expulr` are spinn_common 7.4.1's table algorithms (``src/stdfix-exp.c``: a table of
  e**k for the integer part, one of e**(-j/16) - 1 for the top 4 fraction bits, a 3-term series for the rest,
  with ``scale64``'s rounding), which differ from ``exp`` in the last bits; ``expulr(0) == 0``.
* :func:`encode` is the host's S1615 encoding of a parameter (``DataType.S1615.encode_as_int`` in
  spinnfrontendcommon 1!7.4.1).
* :func:`lif_constants`, :func:`exp_synapse_constants` and :func:`delta_input_scale` are the constants the chip
  computes from those encoded parameters when it loads a population (``neuron_model_lif_impl.h``,
  ``exp_synapse_utils.h``, ``input_type_delta.h``).
* :func:`ring_buffer_shift`, :func:`weight_scale` and :func:`weight_words` are the host's weight rounding
  (``population_vertex.py`` and ``synapse_dynamics_static.py`` in the spynnaker 1!7.4.1 wheel).

How it is checked (``backends/pynn/tests``): ``expk`` and ``expulr`` against a digest of spinn_common's own
functions over every input where they are not saturated, and against sampled values; the multiply, divisions
and decays against the same operations written in C with GCC's ``accum`` type, compiled for ARM and run under
qemu-arm (``test_spinnaker_arm.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

FRACTION_BITS = 15
#: 1.0 in s16.15 raw bits.
ONE = 1 << FRACTION_BITS
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
UINT32_MAX = (1 << 32) - 1
#: The host's accepted range for an S1615 parameter, inclusive (``DataType.S1615``).
S1615_MIN = Decimal("-65536")
S1615_MAX = Decimal("65535.999969482421875")
#: ``expk``/``expulr`` saturate above this raw argument (to INT32_MAX) and return 0 below ``EXP_ZERO_BELOW``.
EXP_SATURATE_ABOVE = 363408
EXP_ZERO_BELOW = -340695
#: The ring buffer's slots are 16 bits wide.
WEIGHT_WORD_MAX = 0xFFFF

_M32 = np.uint64(0xFFFFFFFF)
_U15 = np.uint64(15)
_U17 = np.uint64(17)
_U32 = np.uint64(32)

# spinn_common 7.4.1 src/stdfix-exp.c: __exp_hi[k + 13] = round(e**k * 2**32) for k = -13..12, __expm1_mid[j] =
# round((1 - e**(-j/16)) * 2**32), and the series coefficients for 1 - exp(-x/2**15) on the low 11 fraction bits.
_EXP_HI = np.array(
    [
        9708,
        26389,
        71733,
        194991,
        530041,
        1440801,
        3916503,
        10646160,
        28939262,
        78665070,
        213833830,
        581260615,
        1580030169,
        4294967296,
        11674931555,
        31735754293,
        86266724208,
        234497268814,
        637429664642,
        1732713474316,
        4710003551159,
        12803117065094,
        34802480465680,
        94602950235157,
        257157480542844,
        699026506411923,
    ],
    dtype=np.uint64,
)
_EXPM1_MID = np.array(
    [
        0,
        260218914,
        504671961,
        734314346,
        950043403,
        1152702096,
        1343082321,
        1521927990,
        1689937949,
        1847768698,
        1996036966,
        2135322113,
        2266168400,
        2389087112,
        2504558555,
        2613033936,
    ],
    dtype=np.uint64,
)
_SERIES_0 = np.uint64(5294)
_SERIES_1 = np.uint64(4293434720)
_SERIES_2 = np.uint64(2081624032)


# ----------------------------------------------------------------------------------------------------------------
# Raw-bit plumbing


def _raw(x: Any, lo: int, hi: int, what: str) -> np.ndarray:
    """``x`` as an int64 array, refused unless it is integer-valued and within [lo, hi]."""
    a = np.asarray(x)
    if a.dtype.kind == "b" or a.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integer raw bits, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        raise ValueError(f"{what} outside [{lo}, {hi}]")
    return a


def _k(x: Any) -> np.ndarray:
    return _raw(x, INT32_MIN, INT32_MAX, "s16.15 raw bits")


def _ulr(x: Any) -> np.ndarray:
    return _raw(x, 0, UINT32_MAX, "u0.32 raw bits")


def _out(a: np.ndarray, dtype: type) -> Any:
    """``a`` converted to ``dtype`` by keeping its low 32 bits (a C cast), a numpy scalar for a 0-d result."""
    r = np.asarray(a).astype(np.int64).astype(np.uint32).astype(dtype)
    return r[()] if r.ndim == 0 else r


def wrap32(x: Any) -> Any:
    """The low 32 bits of integer ``x`` as int32 (two's complement), elementwise."""
    a = np.asarray(x)
    if a.dtype.kind == "b" or a.dtype.kind not in "iu":
        raise TypeError(f"wrap32 takes integers, got dtype {a.dtype}")
    if a.dtype == np.uint64:
        return _out((a & _M32).astype(np.int64), np.int32)
    return _out(a.astype(np.int64), np.int32)


def to_float(bits: Any) -> Any:
    """The value of s16.15 raw bits, as float64 (exact)."""
    return np.asarray(bits, dtype=np.float64) / ONE


# ----------------------------------------------------------------------------------------------------------------
# Host encoding


def encode(value: float) -> int:
    """The host's S1615 encoding of one parameter value: ``round(Decimal(str(value)) * 32768)``, ties to even.

    Raises ValueError outside [-65536, 65535.999969482421875] (the largest s16.15 value), or for NaN; the decimal
    string of the value is what is rounded, so ``encode(0.1)`` is 3277 (0.1 * 32768 = 3276.8)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("encode takes a number, not a bool")
    if isinstance(value, np.integer):
        value = int(value)
    elif isinstance(value, np.floating):
        value = float(value)
    if not isinstance(value, (int, float)):
        raise TypeError(f"encode takes a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"value {value} cannot be encoded as S1615")
    if not (S1615_MIN <= value <= S1615_MAX):
        raise ValueError(f"value {value} cannot be encoded as S1615: outside [-65536, 65535.999969482421875]")
    return round(Decimal(str(value)) * ONE)


def encode_array(values: Any) -> np.ndarray:
    """:func:`encode` of every element, as an int32 array of the same shape."""
    a = np.asarray(values)
    flat = [encode(v.item() if isinstance(v, np.generic) else v) for v in a.reshape(-1)]
    return np.array(flat, dtype=np.int32).reshape(a.shape)


# ----------------------------------------------------------------------------------------------------------------
# Arithmetic


def mul(a: Any, b: Any) -> Any:
    """``accum * accum`` in ARM mode: bits 15..46 of the exact 64-bit product, i.e. ``floor(a*b / 2**15)``
    wrapped to int32. 3 x 0.5 (raw 3 and 16384) gives 1, -3 x 0.5 gives -2."""
    return _out((_k(a) * _k(b)) >> 15, np.int32)


def add(a: Any, b: Any) -> Any:
    """``accum + accum``, wrapping modulo 2**32."""
    return _out(_k(a) + _k(b), np.int32)


def sub(a: Any, b: Any) -> Any:
    """``accum - accum``, wrapping modulo 2**32."""
    return _out(_k(a) - _k(b), np.int32)


def neg(a: Any) -> Any:
    """``-accum``, wrapping (the negation of -65536 is -65536)."""
    return _out(-_k(a), np.int32)


def kdivk(a: Any, b: Any) -> Any:
    """sPyNNaker's ``kdivk(a, b)``: ``(uint32)(((uint64)bits(a) << 15) / (uint64)bits(b))``, truncating.

    The casts sign-extend, so the quotient is a / b only for a >= 0 and b > 0; other signs give what the chip
    gives. Raises ZeroDivisionError for b == 0 (undefined on the chip)."""
    ua = _k(a).astype(np.uint64)  # two's complement, as (uint64_t)(int32_t)
    ub = _k(b).astype(np.uint64)
    if np.any(ub == 0):
        raise ZeroDivisionError("kdivk by zero")
    return _out(((ua << _U15) // ub) & _M32, np.int32)


def kdivui(a: Any, n: Any) -> Any:
    """sPyNNaker's ``kdivui(a, n)``: ``(uint32)((uint64)bits(a) / n)`` for an unsigned integer n, truncating."""
    ua = _k(a).astype(np.uint64)
    un = _raw(n, 1, UINT32_MAX, "kdivui divisor").astype(np.uint64)
    return _out((ua // un) & _M32, np.int32)


def decay_s1615(x: Any, d: Any) -> Any:
    """``neuron/decay.h`` ``decay_s1615``: ``(int64(bits(x)) * int64(bits_u032(d))) >> 32``, floor."""
    return _out((_k(x) * _ulr(d)) >> 32, np.int32)


def decay_s1615_to_u032(x: Any, d: Any) -> Any:
    """``neuron/decay.h`` ``decay_s1615_to_u032``: ``((uint64)bits(x) * (uint64)d) >> 15``, low 32 bits, as u0.32."""
    ux = _k(x).astype(np.uint64)
    ud = _ulr(d).astype(np.uint64)
    return _out(((ux * ud) >> _U15) & _M32, np.uint32)


def ceil_accum(x: Any) -> Any:
    """``lif_ceil_accum``: the integer part of s16.15 ``x`` (floor), plus one when any fraction bit is set."""
    k = _k(x)
    return _out((k >> 15) + ((k & 0x7FFF) > 0), np.int32)


# ----------------------------------------------------------------------------------------------------------------
# Exponentials (spinn_common 7.4.1 src/stdfix-exp.c)


def _round64(x: np.ndarray) -> np.ndarray:
    # utils.h round64: the high word, plus one when the low word is at least 0x7FFFFFFF
    return (x >> _U32) + ((x & _M32) >= np.uint64(0x7FFFFFFF)).astype(np.uint64)


def _scale64(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # utils.h scale64: x * y / 2**32 for a u0.32 y, low word rounded by round64
    return _round64((x & _M32) * y) + (x >> _U32) * y


def _coef_mult(c: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (c * x) >> _U32


def _exp_series(x: np.ndarray) -> np.ndarray:
    tmp = (_SERIES_1 - _coef_mult(_SERIES_2, x)) & _M32
    tmp = _coef_mult(tmp, x)
    return (tmp + _SERIES_0) & _M32


def _expi64(n: np.ndarray) -> np.ndarray:
    """``__expi64``: e**(n / 2**15) * 2**32 as uint64, for int64 ``n`` within the unsaturated range."""
    z = n >> 15  # floor
    f = n - (z << 15)  # in [0, 2**15)
    frac = f > 0
    z = np.where(frac, z + 1, z)
    f = np.where(frac, (1 << 15) - f, 0)
    tmp = _EXP_HI[13 + z]
    tmp_f = tmp - _scale64(tmp, _EXPM1_MID[f >> 11])
    y = ((f & 0x7FF) << 17).astype(np.uint64)
    tmp_f = tmp_f - _scale64(tmp_f, _exp_series(y))
    return np.where(frac, tmp_f, tmp)


def _exp_args(x: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = _k(x)
    high = n > EXP_SATURATE_ABOVE
    low = n < EXP_ZERO_BELOW
    inside = np.clip(n, EXP_ZERO_BELOW, EXP_SATURATE_ABOVE)
    return n, high, low, _expi64(np.atleast_1d(inside)).reshape(n.shape)


def expk(x: Any) -> Any:
    """spinn_common's ``expk``: e**x for s16.15 ``x``, s16.15 raw bits: ``__expi64(n) >> 17``, truncating.
    INT32_MAX above raw 363408, 0 below raw -340695. ``expk(-1.0)`` is raw 12054, ``expk(-0.2)`` raw 26827."""
    _, high, low, t = _exp_args(x)
    r = np.where(high, INT32_MAX, np.where(low, 0, (t >> _U17).astype(np.int64)))
    return _out(r, np.int32)


def expulr(x: Any) -> Any:
    """spinn_common's ``expulr``: e**x as u0.32 raw bits, the low 32 bits of ``__expi64(n)``. 0x7FFFFFFF above raw
    363408, 0 below raw -340695, and 0 at x = 0 (e**0 * 2**32 has zero low bits)."""
    _, high, low, t = _exp_args(x)
    r = np.where(high, 0x7FFFFFFF, np.where(low, 0, (t & _M32).astype(np.int64)))
    return _out(r, np.uint32)


# ----------------------------------------------------------------------------------------------------------------
# Constants computed on the chip


@dataclass(frozen=True)
class LifConstants:
    """The LIF constants ``neuron_model_initialise`` computes (raw bits, elementwise over the inputs):
    ``ts = kdivui(time_step, n_steps)``, ``r_membrane = kdivk(tau_m, c_m)``, ``exp_tc = expk(-kdivk(ts, tau_m))``,
    ``t_refract = ceil_accum(kdivk(T_refract_ms, ts))`` (an integer count of steps, not s16.15)."""

    ts: Any
    r_membrane: Any
    exp_tc: Any
    t_refract: Any


def lif_constants(
    time_step: Any, tau_m: Any, c_m: Any, t_refract_ms: Any, n_steps_per_timestep: int = 1
) -> LifConstants:
    """The on-chip LIF constants from S1615-encoded ``time_step`` (ms), ``tau_m`` (ms), ``c_m`` (nF) and
    ``T_refract_ms`` (PyNN's ``tau_refrac``, ms). PyNN's default tau_refrac 0.1 ms at ts = 1 ms gives one step."""
    ts = kdivui(time_step, n_steps_per_timestep)
    return LifConstants(
        ts=ts,
        r_membrane=kdivk(tau_m, c_m),
        exp_tc=expk(neg(kdivk(ts, tau_m))),
        t_refract=ceil_accum(kdivk(t_refract_ms, ts)),
    )


def exp_synapse_constants(time_step: Any, tau_syn: Any, n_steps_per_timestep: int = 1) -> tuple[Any, Any]:
    """``(decay, init)`` of an exponential synapse (``exp_synapse_utils.h`` ``decay_and_init``), both u0.32:
    ``decay = expulr(-kdivk(ts, tau))``, ``init = decay_s1615_to_u032(kdivk(tau, ts), 0xFFFFFFFF - decay)``
    (``1.0ulr`` is 0xFFFFFFFF). An input w adds ``decay_s1615(w, init)``, about w * tau/ts * (1 - e**(-ts/tau))."""
    ts = kdivui(time_step, n_steps_per_timestep)
    decay = expulr(neg(kdivk(ts, tau_syn)))
    inv_decay = np.uint32(UINT32_MAX) - np.asarray(decay, dtype=np.uint32)
    init = decay_s1615_to_u032(kdivk(tau_syn, ts), inv_decay)
    return decay, init


def delta_input_scale(time_step: Any, n_steps_per_timestep: int = 1) -> Any:
    """``IF_curr_delta``'s input scale ``kdivk(1.0, ts)`` = floor(2**30 / bits(ts)), s16.15 (1/ts)."""
    return kdivk(np.full(np.shape(time_step), ONE, dtype=np.int64), kdivui(time_step, n_steps_per_timestep))


# ----------------------------------------------------------------------------------------------------------------
# Host weight rounding


def ring_buffer_shift(max_summed_weight: float) -> int:
    """The ring-buffer left shift for one synapse type from the largest expected summed weight ``a`` (in weight
    units times the input type's global scale), as ``PopulationVertex.get_ring_buffer_shifts``:
    ``0 if a <= 0 else ceil(max(0, log2(a)))``, plus one where ``2**shift <= a``. So a < 1 gives 0, a = 1 gives 1,
    a = 50 gives 6. No upper clamp: a >= 2**16 gives a shift >= 17 and a weight scale below 1."""
    a = float(max_summed_weight)
    if not math.isfinite(a):
        raise ValueError(f"max summed weight must be finite, got {max_summed_weight}")
    shift = 0 if a <= 0 else math.ceil(max(0.0, math.log2(a)))
    if 2.0**shift <= a:
        shift += 1
    return int(shift)


def weight_scale(shift: int, global_scale: float = 1.0) -> float:
    """``2**(16 - (shift + 1))`` times the input type's global scale (1 for current and delta inputs): a weight
    w becomes the 16-bit word ``rint(|w| * scale)``, and the word enters the synapse state as ``word << shift``
    raw bits, i.e. ``word * 2**(shift - 15)`` = w to within the resolution ``2**(shift - 15) / global_scale``."""
    return float(2.0 ** (16 - (int(shift) + 1))) * float(global_scale)


@dataclass(frozen=True)
class WeightWords:
    """Weights as 16-bit ring-buffer words, and what the rounding did to them.

    ``words``: uint16, ``rint(|w| * scale) & 0xFFFF``. ``zeroed``: nonzero weights whose ``rint`` is 0 (below half
    the resolution; sPyNNaker drops them silently). ``wrapped``: weights whose ``rint`` is 65536 or more (the host
    keeps the low 16 bits, no clipping, so the word is much smaller than the weight, or 0)."""

    words: np.ndarray
    scale: float
    resolution: float
    zeroed: np.ndarray
    wrapped: np.ndarray

    @property
    def n_zeroed(self) -> int:
        return int(self.zeroed.sum())

    @property
    def n_wrapped(self) -> int:
        return int(self.wrapped.sum())


def weight_words(weights: Any, shift: int, global_scale: float = 1.0) -> WeightWords:
    """sPyNNaker's host rounding of weights for one synapse type (``SynapseDynamicsStatic.get_static_synaptic_data``):
    ``numpy.rint(numpy.abs(w * scale)).astype(uint32) & 0xFFFF`` with ``scale = weight_scale(shift, global_scale)``,
    ties to even. The sign is the receptor: pass magnitudes of one receptor's weights (a negative weight gives
    the word of its magnitude). Raises ValueError for non-finite weights or ``|w| * scale >= 2**32`` (where the
    uint32 cast is undefined)."""
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    scale = weight_scale(shift, global_scale)
    r = np.rint(np.abs(w * scale))
    if r.size and float(r.max()) >= 2.0**32:
        raise ValueError(
            f"a weight of {float(np.abs(w).max())} at shift {shift} rounds to {float(r.max()):.0f}, beyond the "
            "host's uint32 cast; raise the shift"
        )
    ri = r.astype(np.uint64)
    return WeightWords(
        words=(ri & np.uint64(WEIGHT_WORD_MAX)).astype(np.uint16),
        scale=scale,
        resolution=1.0 / scale,
        zeroed=(w != 0) & (ri == 0),
        wrapped=ri > WEIGHT_WORD_MAX,
    )
