"""Few-spike codes fitted to an activation that is no ReLU: SiLU (Swish), as Stöckl & Maass fitted theirs.

A few-spike neuron (:class:`~neurodeploy.ir.neurons.FewSpike`) answers a window's mean input r (in units of its
threshold θ) with K steps of

    z_j = 1 if r >= T_j else 0,     r = r - h_j·z_j,     output Σ_j d_j·z_j

For a ReLU the code is exact (binary digits, ``fs_digits``). For SiLU it is fitted, as in Stöckl & Maass, "Optimized
spiking neurons can classify images with high accuracy through temporal coding with two spikes" (Nature Machine
Intelligence 3:230, 2021), whose code (``find_coeffs.py``, ``fs_weights.py`` in christophstoeckl/FS-neurons)
fits T, h and d to Swish by gradient descent through the spike function with a surrogate gradient, from random
starts, and keeps every value free in sign. Two things differ here:

* **The fit is per layer, in the units the neuron sees.** Convert-to-snn gives a layer the scale λ of its
  activation (the calibration statistic of its output), so the neuron's r is x / λ for the ANN's x, and its output
  must be SiLU(x) / λ: g(r) = SiLU(λ·r) / λ. SiLU is not positively homogeneous (SiLU(λx) ≠ λ·SiLU(x)), so the code
  depends on λ and is fitted for each layer, over the range of r its calibration inputs reach (to r = 1, the
  statistic: above it the code saturates, as a ReLU's does at λ), weighted by where they fall (80%, their
  histogram) and evenly (20%, so that no part of the range is left unfitted).
* **It is deterministic.** The starting codes are solved, not drawn: for m = 0..3 (m < K) the first m steps write
  SiLU's descending left branch (from 0 down to its minimum -0.2785 at x = -1.2785) in binary digits of negative
  value and the other K - m steps its rising branch from the minimum (m = 0: from 0, its negative part left out),
  the digits' boundaries T_j + Σ_{i<j} h_i·z_i set in least squares to where g reaches each level, and d in least
  squares on the grid. Then :data:`FIT_ITERATIONS` steps of Adam descend the mean squared error (weighted as
  above) with the spike's gradient taken through a logistic of temperature falling from 1/30 to 1/900 of the range
  (straight-through: the forward pass is the hard code), every start at three step sizes, all in parallel; every
  :data:`FIT_CHECK_EVERY` steps d is solved exactly in least squares for the hard code, and the best code seen is
  kept.

**SiLU's negative part** is sent as the paper's code sends it: with negative spike values d_j, and thresholds at or
below 0 where the code needs them, so that a neuron whose input is a little below 0 spikes (a neuron far below 0,
where SiLU is 0 again, does not). A target needs signed graded spikes for that; the reference target has them.
The alternatives were worse: SiLU - min SiLU is positive, but a constant offset in the output needs a spike on
every input (z = 0 sends 0), and folding it into the next layer's bias is wrong at a convolution's zero padding;
leaving the negative part out (the m = 0 start) errs by up to 0.2785 / λ where the data are densest.

The fit's errors, in units of λ (what a spike of value 1 is worth), of the float32 code against g over the range
(``max_error``, ``mean_error``: a grid of :data:`EVAL_POINTS`) and over the calibration values (``data_error``)
go into the neuron's meta and the pass record. They fall with K: for λ = 5 over r in [-1.2, 1] (x in [-6, 5]),
evenly weighted, the mean error is 0.0066 (at most 0.031) at K = 8 and 0.0033 (0.012) at K = 16; the paper's
published K = 16 Swish code, fitted once for every layer, errs there by 0.0080 on average (0.031 at most).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import SILU_MINIMUM_AT, silu

FIT_POINTS = 512
"""Grid points the fit is computed on (evenly spaced over the range)."""
FIT_ITERATIONS = 600
"""Adam steps of the surrogate-gradient descent."""
FIT_RATES = (1e-3, 2e-3, 4e-3)
"""Adam's step sizes (for T and h, times the range's width): every starting code descends at each."""
FIT_CHECK_EVERY = 20
"""Steps between exact checks (d solved for the hard code, the best code kept)."""
EVAL_POINTS = 16385
"""Grid points the recorded errors are measured on."""
DATA_WEIGHT = 0.8
"""The share of the fit's weight given to where the calibration values fall (the rest is spread evenly)."""
FAR_BELOW = -16.0
"""The lowest input (in the ANN's units) a fit range reaches: SiLU is within 2e-6 of 0 below it."""
MAX_SAMPLES = 1 << 16
"""Calibration values kept per layer (a fixed-seed sample beyond it)."""


@dataclass(frozen=True)
class FewSpikeFit:
    """A few-spike code fitted to an activation for one layer, in units of the neuron's θ (inputs) and λ
    (outputs), and how well it fits."""

    activation: str
    scale: float
    """λ: the layer's activation scale the code is fitted for (g(r) = SiLU(λ·r) / λ)."""
    thresholds: np.ndarray
    resets: np.ndarray
    spike_values: np.ndarray
    low: float
    high: float
    """The fit range of r = x / λ."""
    max_error: float
    mean_error: float
    data_error: float | None
    """Mean |error| over the calibration values within the range (None without calibration data)."""

    def record(self) -> dict[str, Any]:
        """What the neuron's meta and the pass record keep."""
        return {
            "activation": self.activation,
            "steps": int(self.thresholds.shape[0]),
            "lambda": self.scale,
            "range": [round(self.low, 6), round(self.high, 6)],
            "max_error": round(self.max_error, 6),
            "mean_error": round(self.mean_error, 6),
            "data_error": None if self.data_error is None else round(self.data_error, 6),
            "method": "surrogate-gradient descent from solved starts (neurodeploy.conversion.few_spike)",
        }


def silu_target(scale: float) -> Callable[[np.ndarray], np.ndarray]:
    """g(r) = SiLU(λ·r) / λ: what a neuron at scale λ must send for an input r (in units of θ), in float64."""
    lam = np.float64(scale)
    return lambda r: silu(np.asarray(r, np.float64) * lam) / lam


def few_spike_output(r: np.ndarray, thresholds: np.ndarray, resets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The window's result Σ_j d_j·z_j for inputs ``r`` in units of θ, computed as :meth:`FewSpike.forward` does
    (float32, θ = 1)."""
    a = np.array(r, np.float32)
    out = np.zeros_like(a)
    for t, h, d in zip(np.asarray(thresholds, np.float32), np.asarray(resets, np.float32), values):
        z = a >= t
        a -= z * h
        out += z * np.float32(d)
    return out


# -- the fit -------------------------------------------------------------------------------------------------------


def _codes(r: np.ndarray, thresholds: np.ndarray, resets: np.ndarray) -> np.ndarray:
    """The spikes z (B, N, K) of B codes ((B, K) thresholds and resets) on the inputs r (N,)."""
    batch, steps = thresholds.shape
    v = np.broadcast_to(r, (batch, r.shape[0])).copy()
    z = np.empty((batch, r.shape[0], steps))
    for j in range(steps):
        fire = v >= thresholds[:, j : j + 1]
        v -= resets[:, j : j + 1] * fire
        z[:, :, j] = fire
    return z


def _solve_values(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The spike values (B, K) that fit ``y`` best in weighted least squares, given the spikes z (B, N, K)."""
    root = np.sqrt(w)
    return np.stack([np.linalg.lstsq(zb * root[:, None], y * root, rcond=None)[0] for zb in z])


def _bisect(g: Callable[[np.ndarray], np.ndarray], low: float, high: float, y: np.ndarray) -> np.ndarray:
    """x in [low, high] with g(x) = y, for g monotone on the interval (to float64 precision)."""
    a, b = np.full_like(y, low), np.full_like(y, high)
    rising = bool(g(np.array(high)) > g(np.array(low)))
    for _ in range(64):
        mid = 0.5 * (a + b)
        below = (g(mid) < y) == rising
        a, b = np.where(below, mid, a), np.where(below, b, mid)
    return 0.5 * (a + b)


def _branch(bits: int, first: int, steps: int, fired: int) -> tuple[np.ndarray, np.ndarray]:
    """Levels 1 .. 2^bits - 1 of a branch written in binary by steps ``first`` .. ``first + bits - 1``, and for each
    the row of the boundary system: the threshold T_j of the step j that sets its lowest digit, plus the resets
    h_i of the digits set before it (and of the ``fired`` steps before the branch, which all fired)."""
    levels = np.arange(1, 2**bits)
    digits = (levels[:, None] >> (bits - 1 - np.arange(bits))[None, :]) & 1
    lowest = bits - 1 - np.log2(levels & -levels).astype(np.int64)
    rows = np.zeros((levels.shape[0], 2 * steps - 1))
    rows[np.arange(levels.shape[0]), first + lowest] = 1.0
    for i in range(bits):
        if first + i < steps - 1:
            rows[:, steps + first + i] = digits[:, i] * (i < lowest)
    rows[:, steps : steps + fired] = 1.0
    return levels, rows


def _start(g: Callable[[np.ndarray], np.ndarray], scale: float, steps: int, left: int, high: float) -> np.ndarray:
    """A starting code (thresholds, resets) with ``left`` steps for SiLU's descending branch (see the module
    docstring): boundaries solved in least squares."""
    bottom = SILU_MINIMUM_AT / scale
    floor = float(g(np.array(bottom)))
    far = FAR_BELOW / scale
    rows, targets = [], []
    base, lowest = 0.0, 0.0
    if left:
        levels, block = _branch(left, 0, steps, 0)
        targets.append(_bisect(g, far, bottom, floor * (levels - 0.5) / (2**left - 1)))
        rows.append(block)
        base, lowest = floor, bottom
    right = steps - left
    levels, block = _branch(right, left, steps, left)
    top = float(g(np.array(high)))
    targets.append(_bisect(g, lowest, high, base + (top - base) * (levels - 0.5) / (2**right - 1)))
    rows.append(block)
    solution = np.linalg.lstsq(np.concatenate(rows), np.concatenate(targets), rcond=None)[0]
    return np.concatenate([solution[:steps], solution[steps:], [0.0]])


def _descend(
    r: np.ndarray, y: np.ndarray, w: np.ndarray, thresholds: np.ndarray, resets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adam on the weighted squared error of B codes at once, each at every rate of :data:`FIT_RATES` (spikes
    straight-through a logistic); the best hard code seen, with its exact spike values."""
    rate = np.repeat(np.asarray(FIT_RATES), thresholds.shape[0])[:, None]
    thresholds, resets = np.tile(thresholds, (len(FIT_RATES), 1)), np.tile(resets, (len(FIT_RATES), 1))
    values = _solve_values(_codes(r, thresholds, resets), y, w)
    batch, steps = thresholds.shape
    span = float(r[-1] - r[0])
    params = [thresholds, resets, values]
    rates = [rate * span, rate * span, rate]
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    best_error, best = np.inf, (thresholds[0].copy(), resets[0].copy(), values[0].copy())
    for it in range(FIT_ITERATIONS + 1):
        if it % FIT_CHECK_EVERY == 0 or it == FIT_ITERATIONS:
            z = _codes(r, thresholds, resets)
            values[...] = _solve_values(z, y, w)
            errors = (((np.einsum("bnk,bk->bn", z, values) - y) ** 2) * w).sum(axis=1)
            b = int(np.argmin(errors))
            if errors[b] < best_error:
                best_error, best = float(errors[b]), (thresholds[b].copy(), resets[b].copy(), values[b].copy())
        if it == FIT_ITERATIONS:
            break
        tau = span / 30.0 * (1.0 / 30.0) ** (it / FIT_ITERATIONS)
        v = np.broadcast_to(r, (batch, r.shape[0])).copy()
        out = np.zeros_like(v)
        spikes, slopes = [], []
        for j in range(steps):
            u = (v - thresholds[:, j : j + 1]) / tau
            z = (u >= 0).astype(np.float64)
            s = 1.0 / (1.0 + np.exp(-np.clip(u, -30.0, 30.0)))
            spikes.append(z)
            slopes.append(s * (1.0 - s) / tau)
            out += values[:, j : j + 1] * z
            v -= resets[:, j : j + 1] * z
        grad_out = 2.0 * (out - y) * w
        grads = [np.zeros_like(p) for p in params]
        grad_v = np.zeros_like(v)  # d error / d v after step j
        for j in range(steps - 1, -1, -1):
            z, s = spikes[j], slopes[j]
            grads[2][:, j] = (grad_out * z).sum(axis=1)
            grads[1][:, j] = -(grad_v * z).sum(axis=1)
            grad_z = grad_out * values[:, j : j + 1] - grad_v * resets[:, j : j + 1]
            grads[0][:, j] = -(grad_z * s).sum(axis=1)
            grad_v = grad_v + grad_z * s
        for p, g, m, v2, size in zip(params, grads, first, second, rates):
            m *= 0.9
            m += 0.1 * g
            v2 *= 0.999
            v2 += 0.001 * g * g
            p -= size * (m / (1 - 0.9 ** (it + 1))) / (np.sqrt(v2 / (1 - 0.999 ** (it + 1))) + 1e-12)
    return best


def _spikes(r: np.ndarray, thresholds: np.ndarray, resets: np.ndarray) -> np.ndarray:
    """The spikes z (N, K) of one float32 code on the inputs r, computed as :func:`few_spike_output` does."""
    a = np.array(r, np.float32)
    z = np.empty((a.shape[0], thresholds.shape[0]))
    for j, (t, h) in enumerate(zip(thresholds, resets)):
        fire = a >= t
        a -= fire * h
        z[:, j] = fire
    return z


@lru_cache(maxsize=64)
def _fit_cached(scale: float, steps: int, low: float, high: float, histogram: bytes | None) -> FewSpikeFit:
    g = silu_target(scale)
    r = np.linspace(low, high, FIT_POINTS)
    y = g(r)
    w = np.full(FIT_POINTS, 1.0 / FIT_POINTS)
    if histogram is not None:
        counts = np.frombuffer(histogram, np.int64)
        w = (1 - DATA_WEIGHT) * w + DATA_WEIGHT * counts / counts.sum()
    starts = np.stack([_start(g, scale, steps, left, high) for left in range(min(3, steps - 1) + 1)])
    thresholds, resets, _ = _descend(r, y, w, starts[:, :steps].copy(), starts[:, steps:].copy())
    thresholds, resets = thresholds.astype(np.float32), resets.astype(np.float32)
    # the spike values for the float32 code the neuron runs
    r32 = r.astype(np.float32)
    values = _solve_values(_spikes(r32, thresholds, resets)[None], g(r32), w)[0].astype(np.float32)
    grid = np.linspace(low, high, EVAL_POINTS).astype(np.float32)
    error = np.abs(few_spike_output(grid, thresholds, resets, values) - g(grid))
    return FewSpikeFit(
        "SiLU", scale, thresholds, resets, values, low, high, float(error.max()), float(error.mean()), None
    )


def fit_silu(scale: float, steps: int, samples: np.ndarray | None = None, low: float | None = None) -> FewSpikeFit:
    """A K-step (``steps``) few-spike code for SiLU at activation scale λ = ``scale``: fitted over r = x / λ from the
    calibration inputs' lowest value (``samples``, the SiLU's inputs x) or ``low`` (in the ANN's units, from weight
    bounds), never below -16 / λ and never above 0, to 1 (see the module docstring). ``data_error``: the mean error
    over the samples within that range. Deterministic: the same arguments give the same code (a cached one)."""
    lam = float(scale)
    if not (np.isfinite(lam) and lam > 0):
        raise ValueError(f"the activation scale must be positive and finite, got {scale}")
    r = None if samples is None else np.asarray(samples, np.float64).reshape(-1) / lam
    if r is not None and not r.size:
        r = None
    lowest = float(r.min()) if r is not None else (0.0 if low is None else float(low) / lam)
    start = round(min(max(lowest, FAR_BELOW / lam), 0.0), 9)
    if r is None:
        return _fit_cached(lam, int(steps), start, 1.0, None)
    counts, _ = np.histogram(np.clip(r, start, 1.0), bins=FIT_POINTS, range=(start, 1.0))
    fit = _fit_cached(lam, int(steps), start, 1.0, counts.astype(np.int64).tobytes())
    inside = r[(r >= start) & (r <= 1.0)].astype(np.float32)
    sent = few_spike_output(inside, fit.thresholds, fit.resets, fit.spike_values)
    return replace(fit, data_error=float(np.abs(sent - silu_target(lam)(inside)).mean()) if inside.size else None)


def activation_inputs(
    graph: Graph, values: list[str], calibration: np.ndarray, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """The values ``values`` take over the calibration inputs (the inputs of the activations to fit), each a flat
    float32 array of at most :data:`MAX_SAMPLES` (a fixed-seed sample of each batch beyond it, so that memory stays
    bounded on large layers)."""
    types = graph.types()
    rng = np.random.default_rng(0)
    keep = {v: min(1.0, 2 * MAX_SAMPLES / max(1, types[v].size * len(calibration))) for v in values}
    found: dict[str, list[np.ndarray]] = {v: [] for v in values}

    def observe(value: str, array: np.ndarray) -> None:
        if value in found:
            flat = np.asarray(array, np.float32).reshape(-1)
            found[value].append(flat if keep[value] >= 1.0 else flat[rng.random(flat.size) < keep[value]])

    for i in range(0, len(calibration), batch_size):
        interpret.run(graph, calibration[i : i + batch_size], observe=observe)
    result = {}
    for value, parts in found.items():
        flat = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        if flat.size > MAX_SAMPLES:
            flat = flat[np.sort(rng.choice(flat.size, MAX_SAMPLES, replace=False))]
        result[value] = flat
    return result
