"""Loihi 2 fixed point for lowered populations: integer weights, thresholds, biases and initial voltages.

Every population has threshold 1 in float units (:mod:`neurodeploy_loihi.lowering`). On the chip its threshold
is ``vth << 6``, so one float unit of v is ``R = vth * 64`` integer units (the population's *scale*), and
everything that reaches v is multiplied by R:

* **Weights.** A spike through weight w adds ``w_int * 2**weight_exp << 6`` to u, hence to v, so
  ``w_int = W * vth / 2**weight_exp``. Weights are 8-bit: a Dense layer with weights of both signs is MIXED,
  whose Lava weights are even integers in [-256, 254] (Lava's ``truncate_weights`` drops the lowest bit of a
  MIXED weight at ``num_weight_bits=8``), one-signed layers are EXCITATORY ([0, 255]) or INHIBITORY
  ([-255, 0]). Conv weights, which Lava's Conv uses as they are (no ``weight_exp``, no truncation), get the
  MIXED grid too, so that the same numbers are valid on the chip and in a netx ``.net``. vth is chosen so that
  the largest weight lands on the top of the grid: ``vth = floor(254 / max|W|)``; a Dense layer whose largest
  weight exceeds 254 thresholds takes a positive ``weight_exp`` instead (a Conv cannot, and is refused).
* **Bias.** ``bias_mant << bias_exp`` is added to v every step, *without* the << 6 of synaptic input:
  ``bias = round(b * R)``, split into a 13-bit signed mantissa and the smallest exponent 0..7 that holds it.
* **Bias correction** (with calibration data; Nagel et al., ICCV 2019, "Data-Free Quantization Through Weight
  Equalization and Bias Correction", its empirical form). Rounding the weights to 8 bits moves each neuron's
  mean input by (W_q - W) · E[a], E[a] the source population's mean rate on the calibration data (the float
  network's activations clipped at one spike per step; a QCFS population's staircase). That shift is taken
  back from the bias: b' = b - (W_q - W) · E[a], per neuron, for every synapse into the population. On the
  CIFAR-10 ResNet-20 at T = 4 (3000 test images) it moves the binary program from 0.7 points below the float
  SNN to equal it.
* **The comparison.** The graph's IF neurons spike when ``v >= θ``; Loihi's when ``v > vth << 6``. Integer
  v >= R is v + 1 > R, so every v starts one unit higher: ``v0 = round(initial * R) + 1``. A subtractive reset
  keeps the offset; a reset to zero loses it (the neuron then needs v > R, one unit more, after its first
  spike).
* **The pipeline delay.** Each synapse delays spikes by one step, so population k (the input population is 0)
  receives its first input at step d + 1, d its depth (k in a chain; the longest path of synapses where
  residual branches join): population k at step t computes the graph's step t - d. A SubtractiveLIF (the
  exact profile) starts adding its bias at step d + 1 too (``bias_start = d``), so it starts from v0 exactly.
  Lava's LIF (the board profile) adds its bias from step 1, so its v0 is lowered by ``d * bias`` instead, so
  that at step d it holds exactly v0; where the bias is negative that v0 would fire before the first input, so
  it is capped (v0 + bias <= threshold), and those neurons start low by the difference (the report counts
  them as ``v0.clipped``; deep ResNets lose accuracy this way in the board profile).
* **Residual branches.** A population fed by several synapses has one scale R for all of them: vth is the
  smallest any of them allows, and each Dense then takes the smallest weight_exp >= 0 that keeps its weights
  on the 8-bit grid (a Conv needs none: its vth bound is without exponent).
* **The input population.** Its current c (float, one value per neuron and sample, computed on the host) is
  ``round(c * R)`` as bias. Values outside [-1, 1] thresholds per step are clipped: a neuron whose current is
  at least one threshold fires every step and one with a negative current never fires, whatever the value,
  so clipping costs nothing but the charge that never matters; R is as large as the bias range then allows.
* **Event input** (``--encoding events``). The first population reads the input through its own synapse on the
  chip, scaled as any hidden population's; each step's frame is sent as graded spikes whose payload is the
  pixel's event count (8 bits, :data:`INPUT_BITS`), which the synapse multiplies by its weights. The synapse
  delivers them one step late, so every population's depth is one more than with a host-computed current.
* **The readout** population integrates its input in v (du = 4095, dv = 0, no spike: vth at its maximum), so
  its v after T steps is R times the sum of its float inputs. R is chosen so that ``readout_steps`` steps of
  twice the largest calibration output fit in v's 24 bits; its weights then take a negative ``weight_exp``
  (Lava floors the shifted sum) and use the full 8 bits.

``netx=True`` (the conversion options ``reset=zero,initial=0``) keeps to what a netx ``.net`` can express:
v0 = 0 everywhere (no offset, no delay compensation), bias exponents fixed at 6 (netx's ``bias_exp``) and no
weight exponent other than 0.
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.

from dataclasses import dataclass, field, replace
from math import ceil, floor, log2
from typing import Any

import numpy as np

from neurodeploy.errors import ConversionError, NeurodeployError
from neurodeploy_loihi import _compiled
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron, Skip, SparseSynapse
from neurodeploy_loihi.floats import float_synapse
from neurodeploy_loihi.lowering import ConvSpec, DenseSpec, Lowered, Population, SparseSpec

VTH_MAX = (1 << fp.VTH_BITS) - 1
"""131071: the 17-bit threshold mantissa."""
MANT_MIN, MANT_MAX = -(1 << (fp.BIAS_MANT_BITS - 1)), (1 << (fp.BIAS_MANT_BITS - 1)) - 1
"""bias_mant: 13-bit signed, -4096..4095."""
EXP_MAX = (1 << fp.BIAS_EXP_BITS) - 1
"""bias_exp: 3-bit unsigned, 0..7."""
NETX_BIAS_EXP = 6
"""netx gives every neuron ``bias_exp = 6`` (``hdf5.py: get_neuron_params``)."""
MIXED_TOP = 254
"""The largest MIXED weight Lava keeps at 8 bits: [-256, 254] in steps of 2."""
ONE_SIGNED_TOP = (1 << fp.WEIGHT_BITS) - 1
"""255: EXCITATORY and INHIBITORY weights keep all 8 bits of magnitude."""
WEIGHT_EXP_RANGE = (-8, 7)
"""The weight exponents this target uses. Lava does not bound ``weight_exp``; Loihi 1's was a 4-bit signed
field (-8..7, Davies et al., IEEE Micro 2018), which we keep to as the published bound we know of."""
IF_DECAY_U = (1 << fp.DECAY_BITS) - 1
"""du = 4095: u decays by (4095 + 1) / 4096, so u holds this step's input only (an IF neuron has no current)."""
IF_DECAY_V = 0
"""dv = 0: v does not leak (integrate-and-fire)."""
INPUT_BITS = 8
"""Event input: each pixel's events in a step's frame are one graded spike whose payload is their count, 0..255
(Lava's ``num_message_bits = 8`` on the first synapse)."""
V_LIMIT = fp.STATE_LIMIT - 1
"""v saturates at +-(2**23 - 1)."""


class QuantizationError(NeurodeployError):
    """A layer's values do not fit Loihi 2's fixed-point fields; the message names the layer, field and limit."""


@dataclass
class Options:
    """``netx``: keep to what a netx .net expresses (see the module). ``readout_steps``: the number of steps the
    readout's v must hold without saturating (twice the largest calibration output per step)."""

    netx: bool = False
    readout_steps: int = 256
    means: list[np.ndarray] | None = None
    """Per population, its mean rate on calibration data (graph layout, spikes per step): the bias correction's
    input (see the module); None: no correction."""


@dataclass
class Quantized:
    """The integer network (Lava layout), per-layer facts for the artifact and the report."""

    network: Network
    scales: list[float]
    input_vth: int
    input_clip: tuple[int, int]
    input_bias_exp: int | None
    report: list[dict[str, Any]] = field(default_factory=list)


# -- layouts -------------------------------------------------------------------------------------------------


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A population's shape in Lava: (C, H, W) -> (X, Y, C) = (W, H, C); anything else flat (n,)."""
    if len(shape) == 3:
        c, h, w = shape
        return (w, h, c)
    return (int(np.prod(shape)),)


def lava_order(shape: tuple[int, ...]) -> np.ndarray:
    """For each neuron in Lava's flat order, its index in the graph's flat (C order) layout."""
    n = int(np.prod(shape))
    if len(shape) == 3:
        return np.arange(n).reshape(shape).transpose(2, 1, 0).reshape(-1)
    return np.arange(n)


def to_lava(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Per-neuron values (B, *shape) in the graph's layout -> (B, *lava_shape(shape))."""
    x = np.asarray(x)
    if len(shape) == 3:
        return fp.chw_to_xyc(x)
    return x.reshape(len(x), -1)


def to_graph(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(B, *lava_shape(shape)) -> (B, *shape)."""
    x = np.asarray(x)
    if len(shape) == 3:
        return fp.xyc_to_chw(x)
    return x.reshape(len(x), *shape)


# -- fields --------------------------------------------------------------------------------------------------


def split_bias(total: np.ndarray, fixed_exp: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer biases as (bias_mant, bias_exp, how many were clipped): the smallest exponent 0..7 whose mantissa
    ``round(b / 2**exp)`` fits 13 signed bits (or ``fixed_exp`` for all), the mantissa rounded half to even
    and clipped to [-4096, 4095] where even exp 7 does not hold it."""
    b = np.asarray(total, np.float64)
    compiled = _compiled.kernels()
    if compiled is not None:  # the same steps, one pass per value (the input's biases are split every run)
        flat = np.ascontiguousarray(b).reshape(-1)
        mant, exp = np.empty(flat.shape, np.int64), np.empty(flat.shape, np.int64)
        clipped = compiled["split_bias"](flat, -1 if fixed_exp is None else int(fixed_exp), mant, exp)
        return mant.reshape(b.shape), exp.reshape(b.shape), int(clipped)
    if fixed_exp is not None:
        exp = np.full(b.shape, fixed_exp, np.int64)
    else:
        # |b| < 2**k, so b / 2**(k - 12) is within 4096: the exponent is k - 12, give or take one (a mantissa of
        # -4096 fits one lower; one that rounds up to 4096 needs one more), clipped to 0..7
        exp = np.clip(np.frexp(b)[1].astype(np.int64) - (fp.BIAS_MANT_BITS - 1), 0, EXP_MAX)
        for step in (-1, 1):
            other = np.clip(exp + step, 0, EXP_MAX)
            fits = _fits(np.rint(b / np.exp2(other if step < 0 else exp)))
            exp = np.where(fits, other, exp) if step < 0 else np.where(fits, exp, other)
    mant = np.rint(b / np.exp2(exp))  # round half to even, deterministic
    clipped = int(np.count_nonzero((mant > MANT_MAX) | (mant < MANT_MIN)))
    return np.clip(mant, MANT_MIN, MANT_MAX).astype(np.int64), exp, clipped  # saturate, never wrap


def _fits(mant: np.ndarray) -> np.ndarray:
    return (mant <= MANT_MAX) & (mant >= MANT_MIN)


def max_bias(fixed_exp: int | None) -> int:
    """The largest bias a mantissa/exponent pair holds: 4095 << 7 (or << the fixed exponent)."""
    return MANT_MAX << (EXP_MAX if fixed_exp is None else fixed_exp)


def _grid(weight: np.ndarray, unit: float, sign_mode: fp.SignMode) -> tuple[np.ndarray, int]:
    """Round float weights times ``unit`` (integer units per float unit) onto the sign mode's 8-bit grid, int16 (the
    grid is 9-bit at most), a piece at a time (VGG-19's fc6 read through its last pool is 411 million weights, whose
    float64 and int64 copies took the machine's memory); count the clipped ones."""
    flat = np.asarray(weight).reshape(-1)
    out = np.empty(flat.size, np.int16)
    clipped = 0
    for lo in range(0, flat.size, GRID_PIECE):
        values = flat[lo : lo + GRID_PIECE].astype(np.float64) * unit
        if sign_mode == fp.SignMode.MIXED:
            w = 2 * np.rint(values / 2)  # even integers: Lava drops a MIXED weight's lowest bit
            low, high = -MIXED_TOP - 2, MIXED_TOP
        elif sign_mode == fp.SignMode.EXCITATORY:
            w, low, high = np.rint(values), 0, ONE_SIGNED_TOP
        else:
            w, low, high = np.rint(values), -ONE_SIGNED_TOP, 0
        clipped += int(np.count_nonzero((w < low) | (w > high)))
        out[lo : lo + GRID_PIECE] = np.clip(w, low, high)  # clip, as Lava's clip_weights
    return out.reshape(np.shape(weight)), clipped


GRID_PIECE = 1 << 22
"""Weights rounded at a time by :func:`_grid`."""


def _sign_mode(weight: np.ndarray, conv: bool) -> fp.SignMode:
    if conv:
        return fp.SignMode.MIXED  # Lava's Conv has no sign mode: weights are signed as given
    return fp.determine_sign_mode(np.sign(weight))


def _scale_for(top_abs: float, top: int, conv: bool, where: str, netx: bool, cap: int = VTH_MAX) -> tuple[int, int]:
    """(vth, weight_exp) of a spiking population whose largest float weight is ``top_abs`` thresholds, vth at most
    ``cap`` (what the bias allows, :func:`_bias_cap`): below the weights' own vth, they keep fewer bits."""
    if top_abs == 0:
        return min(1 << 10, cap), 0  # no weight: any threshold; 1024 leaves room for the bias's precision
    vth = floor(top / top_abs)
    weight_exp = 0
    if vth < 1:
        if conv or netx:
            raise QuantizationError(
                f"{where}: a single spike is worth {top_abs:.4g} thresholds, more than the {top} an 8-bit weight can "
                f"hold at vth = 1 ({'Lava Conv has no weight_exp' if conv else 'a .net has no weight exponent'}); "
                "lower the layer's weights or use norm=max"
            )
        weight_exp = ceil(log2(top_abs / top))
        if weight_exp > WEIGHT_EXP_RANGE[1]:
            raise QuantizationError(
                f"{where}: weight_exp {weight_exp} needed for weights of {top_abs:.4g} thresholds exceeds the "
                f"limit {WEIGHT_EXP_RANGE[1]}"
            )
        vth = floor(top * 2**weight_exp / top_abs)
    if vth > cap:  # the bias binds: the weights' exponent falls with vth where it can
        vth = cap
        weight_exp = 0 if top_abs * vth <= top else ceil(log2(top_abs * vth / top))
    return min(vth, VTH_MAX), weight_exp


BIAS_HEADROOM = 0.75
"""The share of the largest bias that a population's converted bias may take when it sets vth (:func:`_bias_cap`):
the rest is for the bias correction added after the weights are rounded."""


def _bias_cap(bias: np.ndarray, fixed_exp: int | None, where: str) -> int:
    """The largest vth at which the population's bias, ``max |bias|`` thresholds per step, fits the 13-bit mantissa
    and its exponent (VTH_MAX where the bias is no limit). Small weights against a large bias (a constant input,
    a BatchNorm's shift) would otherwise take vth to its maximum and the bias past its range."""
    top = float(np.abs(bias).max(initial=0))
    if top == 0:
        return VTH_MAX
    cap = floor(max_bias(fixed_exp) * BIAS_HEADROOM / (top * (1 << fp.VTH_SHIFT)))
    if cap < 1:
        raise QuantizationError(
            f"{where}: a bias of {top:.4g} thresholds per step needs more than {max_bias(fixed_exp)} (13-bit mantissa "
            f"<< {EXP_MAX if fixed_exp is None else fixed_exp}) even at vth 1; lower the layer's bias or raise its "
            "threshold (norm=max)"
        )
    return min(cap, VTH_MAX)


# -- layers --------------------------------------------------------------------------------------------------


def _lava_index(shape: tuple[int, ...]) -> np.ndarray:
    """Per graph flat index (C order of ``shape``), the neuron's index in Lava's flat order."""
    order = lava_order(shape)  # per Lava index, the graph index
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    return inverse


def lava_synapse(
    spec: ConvSpec | DenseSpec | SparseSpec,
    weight: np.ndarray,
    weight_exp: int,
    sign_mode: fp.SignMode,
    below: tuple[int, ...],
    out_shape: tuple[int, ...],
) -> DenseSynapse | ConvSynapse | SparseSynapse:
    """The emulator's synapse in Lava's layout from integer weights in the graph's layout."""
    if isinstance(spec, SparseSpec):  # the listed synapses, indices in Lava's flat orders
        rows = _lava_index(out_shape)[spec.rows]
        cols = _lava_index(below)[spec.cols]
        n = (int(np.prod(out_shape)), int(np.prod(below)))
        weights = np.asarray(weight).reshape(-1)
        return SparseSynapse(
            rows, cols, weights, n, weight_exp=weight_exp, num_weight_bits=fp.WEIGHT_BITS, sign_mode=sign_mode
        )
    if isinstance(spec, ConvSpec):
        return ConvSynapse(
            fp.conv_weight_from_oihw(np.asarray(weight, np.int64)),  # (O, kW, kH, C / groups): flipped and transposed
            lava_shape(spec.input_shape),
            stride=spec.stride[::-1],  # (H, W) -> (X, Y)
            padding=spec.padding[::-1],
            dilation=spec.dilation[::-1],
            groups=spec.groups,
            pool=spec.pool[::-1],
        )
    reordered = weight[lava_order(out_shape)][:, lava_order(below)]  # rows and columns in Lava's flat order
    return DenseSynapse(reordered, weight_exp=weight_exp, num_weight_bits=fp.WEIGHT_BITS, sign_mode=sign_mode)


def _weights_report(float_scaled: np.ndarray, weight: np.ndarray, clipped: int) -> dict[str, Any]:
    nonzero = float_scaled != 0
    zeroed = int(np.count_nonzero(nonzero & (weight == 0)))
    return {
        "count": int(weight.size),
        "zeroed": zeroed,
        "zeroed_fraction": zeroed / max(int(np.count_nonzero(nonzero)), 1),
        "clipped": clipped,
        "max_abs": int(np.abs(weight).max(initial=0)),
    }


def _kind(spec: ConvSpec | DenseSpec | SparseSpec) -> str:
    return "conv" if isinstance(spec, ConvSpec) else "sparse" if isinstance(spec, SparseSpec) else "dense"


def _static_headroom(synapse: DenseSynapse | ConvSynapse) -> dict[str, Any]:
    """The largest |u| a binary step can bring (every input spiking), against u's 24-bit fold: bits to spare."""
    if isinstance(synapse, ConvSynapse):
        per_out = np.abs(synapse.lava_weights).sum(axis=(1, 2, 3)).max(initial=0)  # a Conv wraps its sum at 24 bits
    elif isinstance(synapse, SparseSynapse):
        sums = np.bincount(synapse.rows, weights=np.abs(synapse.effective_weights), minlength=synapse.shape[0])
        per_out = sums.max(initial=0) * 2.0**synapse.weight_exp
    else:
        per_out = np.abs(synapse.effective_weights).sum(axis=1).max(initial=0) * 2.0**synapse.weight_exp
    worst = float(per_out) * (1 << fp.ACT_SHIFT)
    return {
        "u_worst_case": worst,
        "u_bits_to_spare": None if worst == 0 else round(log2(fp.STATE_LIMIT / worst), 2),
    }


def _v0(target: np.ndarray, bias: np.ndarray, depth: int, threshold: int, spiking: bool) -> tuple[np.ndarray, int]:
    """The initial v that compensates ``depth`` steps of bias before the first input arrives (see the module),
    kept within v's range and, for spiking neurons with a negative bias, low enough not to fire while it waits."""
    v0 = target - depth * bias
    high = np.full(v0.shape, V_LIMIT, np.int64)
    if spiking and depth > 0:
        high = np.where(bias < 0, np.minimum(high, threshold - bias), high)  # v0 + bias <= threshold: no spike
    clipped = int(np.count_nonzero((v0 > high) | (v0 < -V_LIMIT)))
    return np.clip(v0, -V_LIMIT, high), clipped


def _skip_synapses(pop, lowered: Lowered, vth: int, weight_exp: int, top_abs: float, top: int, where: str, options):
    """A population with residual branches: the vth every synapse allows (the smallest), the main synapse's
    weight_exp at that vth, and (source, spec, weight_exp, sign mode, delay, lag) per skip."""
    found = []
    for skip in pop.skips:
        conv = isinstance(skip.synapse, ConvSpec)
        mode = _sign_mode(skip.synapse.weight, conv)
        s_top = MIXED_TOP if mode == fp.SignMode.MIXED else ONE_SIGNED_TOP
        s_abs = float(np.abs(skip.synapse.weight).max(initial=0))
        s_vth, _ = _scale_for(
            s_abs, s_top, conv, f"{where} (skip from {lowered.populations[skip.source].name!r})", options.netx
        )
        vth = min(vth, s_vth)
        found.append((skip, mode, s_top, s_abs))

    def exponent(abs_max: float, grid_top: int) -> int:
        """The smallest weight_exp >= 0 that keeps ``abs_max`` thresholds on the grid at this vth."""
        return 0 if abs_max * vth <= grid_top else max(0, ceil(log2(abs_max * vth / grid_top)))

    skips = [(s.source, s.synapse, exponent(a, t), m, int(s.delay), int(s.lag)) for s, m, t, a in found]
    return vth, exponent(top_abs, top), skips


def _readout_synapses(pop, limit: float) -> tuple[float, int, list]:
    """A readout with several synapses (a Concat's inputs): the one scale every synapse's weights allow at
    weight_exp 0 (at most ``limit``), then per synapse the smallest weight_exp that keeps its weights on the grid
    (negative where they are small: more of the grid; 0 for a Conv); the main synapse's exponent and (source,
    spec, weight_exp, sign mode, delay, lag) per skip."""
    specs = [pop.synapse, *(skip.synapse for skip in pop.skips)]
    grids = []
    for spec in specs:
        conv = isinstance(spec, ConvSpec)
        mode = _sign_mode(spec.weight, conv)
        top = MIXED_TOP if mode == fp.SignMode.MIXED else ONE_SIGNED_TOP
        grids.append((conv, mode, top, float(np.abs(spec.weight).max(initial=0))))
    scale = min([limit] + [top * 64.0 / a for _, _, top, a in grids if a > 0])

    def exponent(conv: bool, top: int, abs_max: float) -> int:  # (no .net holds several synapses: netx's 0 aside)
        if conv or abs_max == 0:
            return 0
        return min(0, max(WEIGHT_EXP_RANGE[0], ceil(log2(abs_max * scale / (top * 64.0)))))

    exps = [exponent(conv, top, a) for conv, _, top, a in grids]
    skips = [
        (s.source, s.synapse, e, g[1], int(s.delay), int(s.lag)) for s, e, g in zip(pop.skips, exps[1:], grids[1:])
    ]
    return scale, exps[0], skips


def bias_correction(rounded: list, means: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Per neuron (graph layout, thresholds per step), minus the mean error the rounded weights add to its input
    on the calibration rates: -sum over synapses of (w_int / unit - W) applied to the source's mean rate.
    ``rounded``: (source population, float spec, integer weights in the graph's layout, integer units per float
    unit) per synapse into the population."""
    total = np.zeros(shape, np.float64)
    for source, spec, ints, unit in rounded:
        error = np.asarray(ints, np.float64).reshape(spec.weight.shape) / unit - spec.weight.astype(np.float64)
        total -= float_synapse(replace(spec, weight=error), np.asarray(means[source], np.float64)[None]).reshape(shape)
    return total


def require_finite(lowered: Lowered, readout_range: float) -> None:
    """Refuse NaN or Inf in anything quantize turns into integers (a ConversionError naming the layer): rounding
    them gives arbitrary integers, or numpy's error. The importer refuses such weights; graphs built through the
    Python API reach here unchecked."""
    if not np.isfinite(readout_range):
        raise ConversionError(f"the readout range is {readout_range}; it must be a finite number of float units")
    for op in lowered.host.ops:  # the input population's current, computed on the host
        for key, value in op.attributes().items():
            if isinstance(value, (np.ndarray, np.floating, float)) and not np.all(np.isfinite(np.asarray(value))):
                raise ConversionError(f"layer {op.name!r} (host): its {key} holds NaN or Inf")
    for pop in lowered.populations:
        parts = {"bias": pop.bias, "initial value": np.asarray(pop.initial, np.float64)}
        if pop.synapse is not None:
            parts["weights"] = pop.synapse.weight
        for skip in pop.skips:
            parts[f"weights from {lowered.populations[skip.source].name!r}"] = skip.synapse.weight
        for what, values in parts.items():
            values = np.asarray(values, np.float64)
            if not np.all(np.isfinite(values)):
                bad = int(np.count_nonzero(~np.isfinite(values)))
                raise ConversionError(
                    f"layer {pop.name!r}: its {what} hold {bad} NaN or Inf value(s) (after folding its thresholds); "
                    "check the model's weights and thresholds"
                )


def decays(pop: Population) -> tuple[int, int, dict[str, Any] | None]:
    """(du, dv) of a population and, for leaky neurons, what their rounding costs. Lava's decays are 12-bit: v keeps
    (4096 - dv) / 4096 of itself per step, u (4096 - du - 1) / 4096; an IF population keeps all of v and none of u
    (u is the step's input)."""
    if not pop.leaky:
        return IF_DECAY_U, IF_DECAY_V, None
    unity = 1 << fp.DECAY_BITS
    dv = min(max(round((1.0 - pop.decay) * unity), 0), unity - 1)
    du = IF_DECAY_U if pop.syn_decay is None else min(max(round((1.0 - pop.syn_decay) * unity) - 1, 0), unity - 1)
    note: dict[str, Any] = {"dv": dv, "v_decay": pop.decay, "v_decay_quantized": (unity - dv) / unity}
    if pop.syn_decay is not None:
        note |= {"du": du, "u_decay": pop.syn_decay, "u_decay_quantized": (unity - du - 1) / unity}
    return du, dv, note


def _offset(pop: Population) -> int:
    """What v starts above its target: 1 where the neurons compare v >= threshold on a chip that compares v > vth
    (integer v >= R is v + 1 > R); 0 for neurons that compare v > threshold themselves, and for leaky ones, whose
    offset would decay (they fire on v > threshold on the chip: the report says so)."""
    return 0 if pop.strict or pop.leaky else 1


def quantize(lowered: Lowered, readout_range: float, options: Options) -> Quantized:
    """The integer network of ``lowered``. ``readout_range`` bounds |readout output| per step in float units
    (the largest calibration output, or a bound from the weights)."""
    require_finite(lowered, readout_range)
    layers: list[Layer] = []
    report: list[dict[str, Any]] = []
    scales: list[float] = []
    fixed_exp = NETX_BIAS_EXP if options.netx else None
    kind = None
    input_vth, input_clip = 0, (0, 0)
    for depth, pop in enumerate(lowered.populations):
        where = f"layer {pop.name!r}"
        shape = lava_shape(pop.shape)
        entry: dict[str, Any] = {
            "name": pop.name,
            "role": pop.role,
            "shape": list(pop.shape),
            "lava_shape": list(shape),
        }
        if pop.role != "readout":
            kind = "lif" if pop.reset == "zero" else "subtractive"
        if pop.role == "input":
            top = max_bias(fixed_exp)
            input_vth = (top - 1) >> fp.VTH_SHIFT  # threshold + 1 must stay a representable bias
            threshold = fp.effective_threshold(input_vth)
            input_clip = (-threshold, top)
            target = 0 if options.netx else round(pop.initial * threshold) + _offset(pop)
            du, dv, note = decays(pop)
            neuron = Neuron(du=du, dv=dv, vth=input_vth, kind=kind, v0=target)
            if note is not None:
                entry["decay"] = note
            layers.append(Layer(None, neuron, pop.name, shape))
            scales.append(float(threshold))
            entry |= {"vth": input_vth, "threshold": threshold, "scale": threshold, "current_clip": list(input_clip)}
            report.append(entry)
            continue
        spec = pop.synapse
        conv = isinstance(spec, ConvSpec)
        weight = spec.weight
        sign_mode = _sign_mode(weight, conv)
        top = MIXED_TOP if sign_mode == fp.SignMode.MIXED else ONE_SIGNED_TOP
        top_abs = float(np.abs(weight).max(initial=0))
        skips = []
        if pop.role == "hidden":
            cap = _bias_cap(pop.bias, fixed_exp, where)
            vth, weight_exp = _scale_for(top_abs, top, conv, where, options.netx, cap)
            if pop.skips:
                vth, weight_exp, skips = _skip_synapses(pop, lowered, vth, weight_exp, top_abs, top, where, options)
            if vth == cap < VTH_MAX:  # the bias may have set vth: what the weights alone allow
                own = _scale_for(top_abs, top, conv, where, options.netx)[0]
                if own > vth:
                    entry["vth_lowered_for_bias"] = (
                        f"vth {vth}, below the {own} its weights allow, so that its bias of "
                        f"{float(np.abs(pop.bias).max()):.4g} thresholds per step fits: its weights keep fewer bits"
                    )
            threshold = fp.effective_threshold(vth)
            scale = float(threshold)
        else:  # readout: as large a scale as readout_steps steps allow, then the weights' exponent
            vth = VTH_MAX
            threshold = fp.effective_threshold(vth)
            limit = V_LIMIT / (options.readout_steps * 2.0 * max(readout_range, 1e-12))
            if pop.skips:  # a Concat's inputs: one scale, an exponent per synapse
                scale, weight_exp, skips = _readout_synapses(pop, limit)
            elif conv or options.netx or top_abs == 0:
                weight_exp = 0
                scale = limit if top_abs == 0 else min(limit, top * 64.0 / top_abs)
            else:
                weight_exp = min(0, floor(log2(limit * top_abs / (top * 64.0))))
                weight_exp = max(weight_exp, WEIGHT_EXP_RANGE[0])
                scale = top * 64.0 * 2.0**weight_exp / top_abs
        unit = scale / (1 << fp.ACT_SHIFT) / 2.0**weight_exp  # integer weight per float weight
        w_int, clipped = _grid(weight, unit, sign_mode)
        main = depth - 1 if pop.source is None else pop.source
        below = input_shape(lowered) if depth == 0 else lowered.populations[main].shape  # 0: it reads the input
        synapse = lava_synapse(spec, w_int, weight_exp, sign_mode, below, pop.shape)
        rounded = [(main, spec, w_int, unit)]  # every synapse's integer weights and units, for the bias correction
        skip_reports = []
        for source, s_spec, s_exp, s_mode, delay, lag in skips:
            s_unit = scale / (1 << fp.ACT_SHIFT) / 2.0**s_exp
            s_int, s_clipped = _grid(s_spec.weight, s_unit, s_mode)
            s_syn = lava_synapse(s_spec, s_int, s_exp, s_mode, lowered.populations[source].shape, pop.shape)
            skip_reports.append((Skip(source, s_syn, delay, lag), s_spec, s_int, s_clipped, s_exp, s_mode))
            rounded.append((source, s_spec, s_int, s_unit))
        pop_bias = pop.bias.astype(np.float64)
        if options.means is not None:  # the rounded weights' mean error on the calibration rates, taken back
            correction = bias_correction(rounded, options.means, pop.shape)
            if options.netx and len(pop.shape) == 3:  # a .net's conv layer has one bias per channel: their mean
                correction = np.broadcast_to(correction.mean(axis=(1, 2), keepdims=True), pop.shape)
            pop_bias = pop_bias + correction
            entry["bias_correction"] = {"max_abs": float(np.abs(correction).max(initial=0))}
        bias_total = np.rint(to_lava(pop_bias[None] * scale, pop.shape)[0])
        mant, exp, bias_clipped = split_bias(bias_total, fixed_exp)
        if bias_clipped and pop.role == "hidden" and options.means is not None:
            # vth leaves the converted bias room (_bias_cap); the correction is what passes the field's range. Its
            # integer size hardly depends on vth (a weight's rounding error is up to 1 integer unit whatever the
            # scale), so a lower vth would not help: the correction is clipped at the range, the rest taken back
            entry["bias_correction"]["clipped"] = bias_clipped
        elif bias_clipped and pop.role == "hidden":
            raise QuantizationError(
                f"{where}: bias_mant out of range for {bias_clipped} neuron(s): a bias of "
                f"{np.abs(pop.bias).max():.4g} thresholds per step needs more than {max_bias(fixed_exp)} "
                f"(13-bit mantissa << {EXP_MAX if fixed_exp is None else fixed_exp}) at vth {vth}"
            )
        bias_int = fp.effective_bias(mant, exp)
        spiking = pop.role == "hidden"
        neuron_kind = kind if spiking else "lif"
        bias_start = 0
        if options.netx:
            v0, v0_clipped = np.zeros(bias_int.shape, np.int64), 0
        elif neuron_kind == "subtractive":  # the bias waits for the first input: v0 needs no compensation
            v0, v0_clipped = np.full(bias_int.shape, round(pop.initial * threshold) + _offset(pop), np.int64), 0
            bias_start = int(pop.depth)
        elif pop.leaky:  # Lava's LIF adds the bias from step 1, decaying: no v0 takes the d steps back exactly
            v0, v0_clipped = np.zeros(bias_int.shape, np.int64), 0
            if pop.depth and np.any(bias_int):
                entry["bias_prefill"] = (
                    f"the bias runs {pop.depth} step(s) before the first input arrives (Lava's LIF adds it from step "
                    "1; leaky neurons cannot be given a v0 that undoes it)"
                )
        else:
            target = round(pop.initial * threshold) + _offset(pop) if spiking else 0
            v0, v0_clipped = _v0(np.full(bias_int.shape, target, np.int64), bias_int, pop.depth, threshold, spiking)
        du, dv, note = decays(pop) if spiking else (IF_DECAY_U, IF_DECAY_V, None)
        if note is not None:
            entry["decay"] = note
        neuron = Neuron(
            du=du,
            dv=dv,
            vth=vth,
            kind=neuron_kind,
            bias_mant=mant,
            bias_exp=exp,
            v0=compact(v0),
            bias_start=bias_start,
        )
        skips_ = tuple(r[0] for r in skip_reports)
        layers.append(Layer(synapse, neuron, pop.name, shape, int(pop.delay), skips_, pop.source, int(pop.lag)))
        scales.append(float(scale))
        entry |= {
            "vth": vth,
            "threshold": threshold,
            "scale": scale,
            "synapse": {
                "type": _kind(spec),
                "weight_exp": weight_exp,
                "num_weight_bits": fp.WEIGHT_BITS,
                "sign_mode": sign_mode.name,
                "weights": _weights_report(weight, w_int, clipped),
                **_static_headroom(synapse),
            },
            "bias": {"exp_max": int(exp.max(initial=0)), "clipped": bias_clipped},
            "v0": {"prefill_steps": 0 if options.netx else pop.depth, "clipped": v0_clipped},
            "bias_start": bias_start,
        }
        if pop.delay:
            entry["synapse"]["delay"] = int(pop.delay)
        if skip_reports:
            entry["skips"] = [
                {
                    "source": lowered.populations[skip.source].name,
                    "type": _kind(s_spec),
                    "delay": int(skip.delay),
                    "weight_exp": s_exp,
                    "sign_mode": s_mode.name,
                    "weights": _weights_report(s_spec.weight, s_int, s_clipped),
                    **_static_headroom(skip.synapse),
                }
                for skip, s_spec, s_int, s_clipped, s_exp, s_mode in skip_reports
            ]
        report.append(entry)
    first = lowered.populations[0]
    network = Network(layers, input_bits=INPUT_BITS if first.synapse is not None else 0)
    return Quantized(network, scales, input_vth, input_clip, fixed_exp, report)


def input_shape(lowered: Lowered) -> tuple[int, ...]:
    """The graph's input shape (no batch): what a first population that reads the input's spikes reads."""
    return tuple(lowered.host.types()[lowered.host.outputs[0]].shape)


def compact(values: np.ndarray) -> int | np.ndarray:
    """A scalar when every neuron has the same value."""
    flat = np.asarray(values).reshape(-1)
    return int(flat[0]) if flat.size and np.all(flat == flat[0]) else np.asarray(values)


def input_bias(
    currents: np.ndarray, shape: tuple[int, ...], vth: int, clip: tuple[int, int], fixed_exp: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The input population's per-sample (bias_mant, bias_exp), Lava layout, from host currents (B, *shape) in
    threshold units: ``round(c * (vth << 6))`` clipped to ``clip`` (see the module), then split."""
    threshold = fp.effective_threshold(vth)
    currents = np.asarray(currents)
    compiled = _compiled.kernels()
    if compiled is not None and currents.dtype == np.float32:
        # one compiled pass (the numpy steps took 54 us of a one-sample MNIST run, this 36 us)
        batch, size = len(currents), int(np.prod(shape))
        four = currents.reshape(batch, *shape) if len(shape) == 3 else currents.reshape(batch, 1, 1, size)
        mant, exp, scratch = (
            np.empty((batch, size), np.int64),
            np.empty((batch, size), np.int64),
            np.empty(size, np.int64),
        )
        exp_arg = -1 if fixed_exp is None else int(fixed_exp)
        low, high = float(clip[0]), float(clip[1])
        if not compiled["input_bias"](np.ascontiguousarray(four), threshold, low, high, exp_arg, scratch, mant, exp):
            return mant.reshape(batch, *lava_shape(shape)), exp.reshape(batch, *lava_shape(shape))
    total = np.clip(np.rint(to_lava(currents, shape).astype(np.float64) * threshold), clip[0], clip[1])
    mant, exp, _ = split_bias(total, fixed_exp)
    return mant, exp
