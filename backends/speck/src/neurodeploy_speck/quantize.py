"""Float Speck layers to the chip's integers: one scale per layer shared by weights, bias, threshold and initial
value, so their ratios (what decides when a neuron fires) survive.

As sinabs' ``discretize.py`` (``determine_discretization_scale`` and ``_discretize_conv_spk_``):

    scale(x, bits) = |hi / max x|  if |min x| <= |max x| * |lo / hi|  else |lo / min x|,  lo, hi = -2^(b-1), 2^(b-1)-1
    s = min(scale(W, 8), scale(b, 8), scale(threshold, 16), scale(v0, 16))
    W_q = round(W s), b_q = round(b s), threshold_high = round(theta s), v0_q = round(v0 s)

Rounding is round-half-to-even (numpy and torch agree). One difference: sinabs folds its default lower bound
(-2^15, meant as an integer) into the threshold's float range, which caps s at 1 for thresholds below 2^15; here
the lower bound is the chip's most negative state, threshold_low = -2^15, outside the scaled quantities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy.errors import ConversionError, ResourceError
from neurodeploy_speck import chip
from neurodeploy_speck.lowering import Layer


def discretization_scale(x: np.ndarray, bits: int) -> float:
    """The largest s with round(x s) inside the signed ``bits`` range (sinabs' rule; inf for an all-zero x)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    x = np.asarray(x, np.float64)
    if x.size == 0 or not np.any(x):
        return float("inf")
    top, bottom = float(x.max()), float(x.min())
    if abs(bottom) <= abs(top) * abs(lo / hi):
        return abs(hi / top)
    return abs(lo / bottom)


BIAS_TO_HOST = 8.0
"""A readout whose bias would shrink its weights' 8-bit scale more than this many times leaves the bias to the
host (added to the output), where it costs nothing."""


def shared_scales(layer: Layer) -> dict[str, float]:
    """The largest scale each quantity of ``layer`` allows (8-bit weights and bias, 16-bit threshold and v(0));
    the layer's shared scale is the smallest of them."""
    return {
        "weights": discretization_scale(layer.weight, chip.WEIGHT_BITS),
        "bias": discretization_scale(layer.bias, chip.WEIGHT_BITS),
        "threshold": discretization_scale(np.array([layer.threshold]), chip.STATE_BITS),
        "initial value": discretization_scale(np.array([layer.initial * layer.threshold]), chip.STATE_BITS),
    }


def bias_to_host(layer: Layer) -> str | None:
    """Why ``layer`` (the readout) should leave its bias to the host, or None: with the bias, the shared scale would
    be more than :data:`BIAS_TO_HOST` times smaller than without it (a Dense after a global average pool over
    16 x 16 has weights 1/256 of the trained ones next to an undivided bias: on the chip they would round to 0), or
    one bias tick would add more than a threshold (the chip sends one spike per tick, so the readout would count
    less than its bias; a readout fired several times a step, ``readout_rate``, has a small threshold)."""
    if not np.any(layer.bias):
        return None
    scales = shared_scales(layer)
    others = min(value for what, value in scales.items() if what != "bias")
    if scales["bias"] * BIAS_TO_HOST < others:
        return f"on the chip it would shrink the readout's 8-bit weight scale more than {BIAS_TO_HOST:g} times"
    if float(np.max(layer.bias)) > layer.threshold:
        return (
            f"one bias tick would add up to {float(np.max(layer.bias)) / layer.threshold:.3g} thresholds, and the "
            "chip sends one spike per tick"
        )
    return None


@dataclass
class QuantizedLayer:
    weight: np.ndarray
    """(F, C, k, k) int64, in [-128, 127]."""
    bias: np.ndarray
    threshold_high: int
    threshold_low: int
    initial: int
    """neurons_initial_value of every neuron."""
    scale: float
    """Integer units per float unit."""
    report: dict


def quantize_layer(layer: Layer, floor: float | None = None) -> QuantizedLayer:
    """``floor``: threshold_low = -floor x threshold_high (at least the chip's -2^15), for the readout core; None
    leaves the chip's most negative state."""
    for what, values in (
        ("weights", layer.weight),
        ("bias", layer.bias),
        ("threshold", layer.threshold),
        ("initial value", layer.initial),
    ):
        values = np.asarray(values, np.float64)
        if not np.all(np.isfinite(values)):  # rounding NaN or Inf gives arbitrary integers, or numpy's error
            raise ConversionError(
                f"layer '{layer.name}': its {what} hold {int(np.count_nonzero(~np.isfinite(values)))} NaN or Inf "
                "value(s); check the model's weights and thresholds"
            )
    if not layer.threshold > 0:
        raise ConversionError(f"layer '{layer.name}': its threshold is {layer.threshold:g}; it must be positive")
    v0 = layer.initial * layer.threshold
    scales = shared_scales(layer)
    scale = min(scales.values())
    limited_by = min(("weights", "bias", "threshold"), key=scales.__getitem__)
    weight = np.rint(layer.weight * scale).astype(np.int64)
    bias = np.rint(layer.bias * scale).astype(np.int64)
    threshold = int(np.rint(layer.threshold * scale))
    if threshold < 1:
        raise ResourceError(
            f"layer '{layer.name}': its threshold ({layer.threshold:g}) quantizes to {threshold} next to weights up "
            f"to {np.abs(layer.weight).max():g} (8-bit weights, shared scale {scale:g}); the weights are over "
            "2^15 times the threshold: rebalance the thresholds (convert-to-snn norm options)"
        )
    low = chip.STATE_MIN if floor is None else max(chip.STATE_MIN, -int(np.rint(floor * threshold)))
    nonzero = layer.weight != 0
    zeroed = int(np.count_nonzero(nonzero & (weight == 0)))
    if zeroed and zeroed == int(np.count_nonzero(nonzero)):
        instead = (
            "retrain with smaller biases (or none: sinabs advises against Speck biases)"
            if limited_by == "bias"
            else "rebalance the thresholds (convert-to-snn norm options)"
        )
        raise ResourceError(
            f"layer '{layer.name}': every weight rounds to 0 in 8 bits: the scale it shares with its bias and "
            f"threshold ({scale:g}) is set by its {limited_by} (weights up to {np.abs(layer.weight).max():g}, bias "
            f"up to {np.abs(layer.bias).max():g}, threshold {layer.threshold:g}); the layer would compute its bias "
            f"alone: {instead}, or train without the pooling that divides these weights"
        )
    err = np.abs(weight / scale - layer.weight)
    report = {
        "layer": layer.name,
        "scale": scale,
        "limited_by": limited_by,
        "threshold_high": threshold,
        "weight_range": [int(weight.min()), int(weight.max())],
        "bias_range": [int(bias.min()), int(bias.max())],
        "zeroed_weights": zeroed,
        "zeroed_fraction": round(zeroed / max(1, int(np.count_nonzero(nonzero))), 6),
        "max_weight_error": float(err.max()) if err.size else 0.0,
        "threshold_bits_used": int(threshold).bit_length() + 1,
        "threshold_low": low,
        "spikes_per_event_max": -(-max(int(weight.max(initial=0)), 0) // threshold),
        "spikes_per_bias_tick_max": -(-max(int(bias.max(initial=0)), 0) // threshold),
    }
    return QuantizedLayer(
        weight=weight,
        bias=bias,
        threshold_high=threshold,
        threshold_low=low,
        initial=int(np.rint(v0 * scale)),
        scale=scale,
        report=report,
    )
