"""The lowered network in float arithmetic: the activations graded mode's scales and the binary weights' bias
correction are measured on (calibration data through the host graph and every population, no integers).

``float_forward`` gives each population's activation in lowered units (threshold 1): ReLU, or with ``rates`` the
rate an IF neuron can reach (clipped at one spike per step), and with ``staircase`` a QCFS population's trained
clip(floor(z L + φ), 0, L) / L; a population with a few-spike code fitted to an activation sends what its code
sends for a window of constant input."""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.
from typing import Any

import numpy as np

from neurodeploy.conversion.few_spike import few_spike_output
from neurodeploy.ir import interpret
from neurodeploy_loihi.lowering import DenseSpec, Lowered, SparseSpec


def conv2d_nchw(
    x: np.ndarray,
    w: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """Cross-correlation as ONNX defines it: x (B, C, H, W), w (O, C / groups, kH, kW), symmetric zero padding
    (pH, pW); float64 (exact for integers below 2**53)."""
    x = np.asarray(x, np.float64)
    b, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    taps = [
        xp[:, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    cols = np.stack(taps, axis=2).reshape(b, groups, cg * kh * kw, ho * wo)  # (B, g, C/g * taps, pixels)
    kernel = np.asarray(w, np.float64).reshape(groups, o // groups, cg * kh * kw)
    out = np.einsum("gok,bgkp->bgop", kernel, cols, optimize=True)
    return out.reshape(b, o, ho, wo)


def qcfs_levels(pop: Any) -> int:
    """L of a population converted from a QCFS activation (its IF's meta), else 0."""
    levels = pop.meta.get("levels", 0) if pop.role != "readout" else 0
    return int(levels) if isinstance(levels, (int, np.integer)) and not isinstance(levels, bool) else 0


def fitted_code(pop: Any) -> dict[str, Any] | None:
    """The float few-spike code fitted to an activation (thresholds T_j, resets h_j, values d_j in lowered units,
    start, fit range) of a hidden or input population, or None (no few-spike population, or a staircase's)."""
    meta = pop.meta.get("fs") if pop.role != "readout" else None
    return meta if isinstance(meta, dict) and "values" in meta else None


def float_forward(lowered: Lowered, x: np.ndarray, staircase: bool = False, rates: bool = False) -> list[np.ndarray]:
    """The lowered network's float activations (graph layout, float64): ReLU everywhere but the readout (``rates``:
    clipped at 1; ``staircase``: a QCFS population's clip(floor(z L + φ), 0, L) / L); a population sums its
    synapses from every source (main synapse and skips)."""
    current = interpret.run(lowered.host, np.asarray(x, np.float32))[lowered.host.outputs[0]]

    def act(pop: Any, z: np.ndarray) -> np.ndarray:
        fitted = fitted_code(pop)
        if fitted is not None:  # a few-spike code fitted to an activation (SiLU)
            code = (np.asarray(fitted[key], np.float32) for key in ("thresholds", "resets", "values"))
            return few_spike_output(z, *code).astype(np.float64)
        levels = qcfs_levels(pop) if staircase else 0
        if levels:
            return np.clip(np.floor(z * levels + float(pop.initial)), 0, levels) / levels
        if pop.role == "readout":
            return z
        return np.clip(z, 0, 1) if rates else np.maximum(z, 0)

    out = [act(lowered.populations[0], current.astype(np.float64))]
    for k, pop in enumerate(lowered.populations[1:], start=1):
        main = k - 1 if pop.source is None else pop.source
        inbound = [(main, pop.synapse), *((s.source, s.synapse) for s in pop.skips)]
        z = sum(float_synapse(spec, out[j]) for j, spec in inbound)
        out.append(act(pop, np.asarray(z).reshape(len(current), *pop.shape) + pop.bias.astype(np.float64)))
    return out


SPARSE_TERMS = 1 << 24
"""At most this many terms (batch x listed synapses) at once in :func:`float_synapse` (Inception v2 lists 23
million synapses into one population from one source: a batch of 64 calibration samples, 64 x 23 million x 16
bytes, would take 24 GB at once)."""


def float_synapse(spec: Any, a: np.ndarray) -> np.ndarray:
    """A float synapse (lowering spec) applied to activations a (B, *graph shape): (B, n_out) flat."""
    batch = len(a)
    if isinstance(spec, DenseSpec):
        return a.reshape(batch, -1) @ spec.weight.astype(np.float64).T
    if isinstance(spec, SparseSpec):  # a piece of the list at a time: its terms take batch x synapses x 16 bytes
        n, flat = int(np.prod(spec.shape)), a.reshape(batch, -1)
        out = np.zeros(batch * n, np.float64)
        step = max(1, SPARSE_TERMS // max(batch, 1))
        for lo in range(0, spec.weight.size, step):
            rows, cols = spec.rows[lo : lo + step], spec.cols[lo : lo + step]
            terms = flat[:, cols] * spec.weight[lo : lo + step].astype(np.float64)
            index = (rows[None, :] + n * np.arange(batch)[:, None]).reshape(-1)
            out += np.bincount(index, weights=terms.reshape(-1), minlength=batch * n)
        return out.reshape(batch, n)
    kernel = np.repeat(np.repeat(spec.weight.astype(np.float64), spec.pool[0], axis=2), spec.pool[1], axis=3)
    return conv2d_nchw(a, kernel, spec.stride, spec.padding, spec.dilation, spec.groups).reshape(batch, -1)


def mean_rates(lowered: Lowered, x: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    """Per population, its mean activation over the inputs x as a rate (``float_forward`` with ``rates`` and
    ``staircase``; the readout's mean input), computed ``batch`` samples at a time."""
    sums: list[np.ndarray] = []
    for start in range(0, len(x), batch):
        acts = float_forward(lowered, x[start : start + batch], staircase=True, rates=True)
        parts = [a.sum(axis=0) for a in acts]
        sums = parts if not sums else [s + p for s, p in zip(sums, parts)]
    return [s / len(x) for s in sums]
