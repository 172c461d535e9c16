"""Choosing an artifact's readout delay on the calibration data (``--target-option readout_delay=auto``; see
:mod:`neurodeploy.readout` for what the delay is and how it is read)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neurodeploy.encoding import Encoding
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph
from neurodeploy.metrics import layer_macs
from neurodeploy.readout import Choice, readout_skip
from neurodeploy.simulate import readout_delay as pipeline_fill
from neurodeploy.simulate import simulate

CALIBRATION_STEPS = (2, 4, 8, 16, 32, 64)
"""The T over which ``auto`` averages the agreement with the ANN."""
CANDIDATES = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
"""The delays ``auto`` chooses among."""
CALIBRATION_SAMPLES = 128
"""Calibration samples ``auto`` runs at most (the first ones)."""
USABLE = 50.0
"""The agreement with the ANN (percent) some delay must reach at a T for that T to count in the choice: where no
delay makes the SNN agree on half the samples, a run that short is not what the SNN is for, and the swings of a
readout at chance level would decide."""
MIN_SAMPLES = 32
"""Fewer calibration samples than this choose nothing: ``auto`` keeps D = 0."""
BUDGET = 10**11
"""Multiply-accumulates ``auto`` may spend (samples x 64 steps x the ANN's MACs per sample, a few seconds here); a
larger network runs fewer samples, and one that cannot run MIN_SAMPLES within it keeps D = 0."""


Readout = Callable[[int, int], np.ndarray]
"""readout(skip, T): the output of a run of T steps that leaves out the first ``skip`` steps, (samples, ...)."""
Runner = Callable[[np.ndarray, int], Readout]
"""runner(x, steps): runs the calibration samples x for ``steps`` steps once and returns their :data:`Readout`
(any T and skip up to ``steps``)."""


def choose(
    option: int | str,
    snn: Graph,
    ann: Graph | None,
    calibration: np.ndarray | None,
    encoding: Encoding,
    runner: Runner | None = None,
    what: str = "",
) -> Choice:
    """The artifact's readout delay for the target option (``auto`` or steps; see the module). ``runner`` runs
    what the target runs (default: the float SNN, :func:`float_snn`), ``what`` names it in the choice's source."""
    if option != "auto":
        return Choice(int(option), "target option readout_delay")
    fill = pipeline_fill(snn)
    if fill:
        return Choice(0, f"auto: the readout already waits a pipeline fill of {fill} steps")
    if not any(op.is_stateful for op in snn.ops):
        return Choice(0, "auto: the network has no spiking layer")
    if ann is None:
        return Choice(0, "auto: no ANN to calibrate against (the model arrived spiking)")
    if calibration is None or len(calibration) == 0:
        return Choice(0, "auto: no calibration data")
    if encoding.kind != "direct":
        return Choice(0, f"auto: calibrated only for direct input (this artifact's input is {encoding.kind})")
    macs = max(1, sum(layer_macs(snn).values()))
    samples = min(CALIBRATION_SAMPLES, len(calibration), BUDGET // (macs * max(CALIBRATION_STEPS)))
    if samples < MIN_SAMPLES:
        why = (
            f"{len(calibration)} calibration samples"
            if len(calibration) < MIN_SAMPLES
            else f"a network of {macs:,} MACs per step (budget {BUDGET:.0e} for {MIN_SAMPLES} samples of 64 steps)"
        )
        return Choice(0, f"auto: not calibrated ({why}; it needs {MIN_SAMPLES}); set the target option readout_delay=N")
    return calibrate(snn, ann, calibration[:samples], runner, what)


def float_snn(snn: Graph) -> Runner:
    """The :data:`Runner` of the float SNN (:func:`neurodeploy.simulate.simulate`), read at the checkpoints every
    candidate needs."""

    def run(x: np.ndarray, top: int) -> Readout:
        marks = {readout_skip(d, t) for d in CANDIDATES for t in CALIBRATION_STEPS} | set(CALIBRATION_STEPS)
        sim = simulate(snn, {next(iter(snn.inputs)): x}, top, checkpoints=tuple(sorted(marks - {0})))
        out = snn.outputs[0]
        means = {t: outs[out] for t, outs in sim.checkpoints.items()}
        means[top] = sim.outputs[out]
        return lambda skip, t: delayed_mean(means[t], t, skip, means.get(skip))

    return run


def calibrate(snn: Graph, ann: Graph, x: np.ndarray, runner: Runner | None = None, what: str = "") -> Choice:
    """The candidate delay whose readout agrees most with the ANN on ``x``, averaged over CALIBRATION_STEPS, the
    readout computed by ``runner`` (default: the float SNN)."""
    target = interpret.run(ann, {next(iter(ann.inputs)): x})[ann.outputs[0]].reshape(len(x), -1).argmax(axis=1)
    readout = (runner or float_snn(snn))(x, max(CALIBRATION_STEPS))
    agreement: dict[int, dict[int, float]] = {}
    for d in CANDIDATES:
        row = {}
        for t in CALIBRATION_STEPS:
            late = readout(readout_skip(d, t), t)
            row[t] = 100.0 * float((late.reshape(len(x), -1).argmax(axis=1) == target).mean())
        agreement[d] = row
    # the T at which the SNN works at all: some delay agrees with the ANN on at least USABLE percent of samples
    usable = [t for t in CALIBRATION_STEPS if max(agreement[d][t] for d in CANDIDATES) >= USABLE]
    if not usable:
        return Choice(
            0,
            f"auto: calibrated on {len(x)} samples{what}; no delay agrees with the ANN on {USABLE:.0f}% of them at any "
            f"T up to {max(CALIBRATION_STEPS)}",
            agreement,
            len(x),
        )
    best = max(CANDIDATES, key=lambda d: (np.mean([agreement[d][t] for t in usable]), -d))
    mean = float(np.mean([agreement[best][t] for t in usable]))
    source = (
        f"auto: calibrated on {len(x)} samples{what} (agreement with the ANN over T = "
        f"{', '.join(map(str, usable))}: {mean:.1f}% on average)"
    )
    return Choice(best, source, agreement, len(x), chosen=True)


def delayed_mean(mean: np.ndarray, steps: int, skip: int, early: np.ndarray | None) -> np.ndarray:
    """The mean over steps skip+1..steps from the means over the first ``steps`` and the first ``skip`` steps
    (``early``), in float64, returned in ``mean``'s dtype."""
    if not skip:
        return mean
    assert early is not None
    late = (steps * mean.astype(np.float64) - skip * early.astype(np.float64)) / (steps - skip)
    return late.astype(mean.dtype)
