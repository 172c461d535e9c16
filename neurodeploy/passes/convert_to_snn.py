"""convert-to-snn: replace each ReLU / clipped ReLU with integrate-and-fire neurons, balancing thresholds.

Every value v gets a *scale* s(v): the spiking graph carries u = x / s(v), where x is the ANN's value. A
weighted layer absorbs the scale of its input and produces its output at the scale its activation wants:

    W' = W * s(in) / t,   b' = b / t        (t = λ of the activation the output feeds, per layer)

so an IF neuron after it has threshold λ / t = 1 and each of its spikes is worth λ. λ comes from calibration
data (the largest activation, ``norm=max``) or, without data, from weight bounds (``norm=weights``).
Pooling and reshapes pass scales through; branches meeting at an Add are brought to the Add's scale (a
``Scale`` op where a branch cannot absorb it); Concat keeps each branch's scale per channel. Outputs are
scaled back to the ANN's units, so the readout (the output's mean over time steps) estimates the ANN output.

A QCFS activation (Bu et al. 2022, trained with L levels) keeps its trained λ. How it spikes is the ``qcfs``
option:

* ``rate``: an IF neuron with v(0) = φ·θ (φ = 0.5), whatever ``initial`` says. With a constant input current it
  reproduces the QCFS output after exactly T = L steps (Bu et al.'s result), and only then: past L the rates
  get finer than the L levels the network was trained on, and accuracy slides toward that of the clipped-ReLU
  network without the quantization.
* ``window``: a :class:`~neurodeploy.ir.neurons.WindowIF`, which integrates over L-step windows and sends the
  window's QCFS level count as spikes in the next window. Every layer then computes its QCFS activation exactly,
  one window after the layer below, so the SNN's readout equals the quantized ANN at every T that is a whole
  number of windows, read after a fill of one window per spiking layer (the pipelined, layer-by-layer timing
  of few-spike and burst coding, here with the QCFS levels as the code). Needs every activation to be a QCFS
  of one L; the readout neurons of ``readout=spikes`` are no QCFS.
* ``auto`` (default): ``window`` where the model allows it, else ``rate`` with a warning saying why. Targets
  whose neurons are rate-coded IF only convert with ``rate`` (:meth:`neurodeploy.backends.base.Backend.pipeline`).

The neurons' meta and the pass record keep L (``levels``).

MaxPool has no exact rate-coded equivalent with IF neurons alone: ``maxpool=avg`` replaces it with AvgPool2d (and
warns), ``maxpool=error`` refuses, ``maxpool=exact`` replaces it with :class:`~neurodeploy.ir.ops.SpikeMaxPool2d`,
the max pooling of spike counts (Wang et al. 2023's pooling with memory; reference target).

``coding`` chooses the neurons: ``rate`` (IF, or WindowIF as ``qcfs`` says), ``signed``
(:class:`~neurodeploy.ir.neurons.SignedIF`: signed spikes, a neuron takes back spikes it sent in excess) or ``fs``
(:class:`~neurodeploy.ir.neurons.FewSpike`: few-spike coding, K = ``fs-steps`` steps per layer).

SiLU (:class:`~neurodeploy.ir.ops.SiLU`) converts with ``coding=fs`` only: its few-spike code is fitted for each
layer at the layer's λ over the range its calibration inputs reach (:func:`~neurodeploy.conversion.few_spike.fit_silu`;
one λ per layer, so ``granularity=layer``), and the fit's errors go into the neuron's meta and the pass record
(``fs_fit``). IF neurons (the other codings) have no SiLU: they are refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from neurodeploy.conversion.few_spike import FewSpikeFit, activation_inputs, fit_silu
from neurodeploy.conversion.statistics import ASSUMED_INPUT_RANGE, activation_statistics, value_bounds, weight_bounds
from neurodeploy.errors import ConversionError
from neurodeploy.ir.graph import Graph, GraphEditor, GraphIndex
from neurodeploy.ir.neurons import IF, FewSpike, SignedIF, WindowIF, fs_digits
from neurodeploy.ir.op import Op, StatefulOp
from neurodeploy.ir.ops import (
    QCFS,
    AvgPool2d,
    BatchNorm,
    Clip,
    Conv2d,
    Dense,
    MaxPool2d,
    Relu,
    Scale,
    SiLU,
    Softmax,
    SpikeMaxPool2d,
)
from neurodeploy.ir.scales import ScaleValue, channel_vector, compress
from neurodeploy.passes.base import Pass, PassContext
from neurodeploy.simulate import settled, simulate  # the float SNN simulator

SPIKE_NORM_SAMPLES = 256

MAX_FS_STEPS = 16
"""The most steps a few-spike layer may take: 2^16 - 1 levels, beyond float32's resolution of a window sum."""

MAX_MSE_STEPS = 4096
"""The most time steps ``norm=mse`` fits thresholds for."""

QCFS_CODINGS = ("auto", "window", "rate")
"""Values of the ``qcfs`` option: how QCFS activations spike (see the module docstring)."""


FS_ACTIVATIONS = "ReLU, clipped ReLU Clip(0, a), QCFS (exact codes) and SiLU (a fitted code)"
"""What few-spike coding has a code for."""


def is_activation(op: Op) -> bool:
    """ReLU, a clipped ReLU Clip(0, a), a QCFS, or a SiLU: the activations neurons replace (SiLU with few-spike
    neurons only)."""
    return isinstance(op, (Relu, QCFS, SiLU)) or (isinstance(op, Clip) and op.low == 0.0)


def _clip_value(op: Op) -> float | None:
    """The finite upper bound of a clipped ReLU Clip(0, a), or None (a ReLU, or Clip(0, inf): no saturation)."""
    if isinstance(op, Clip) and op.high is not None and np.isfinite(op.high):
        return float(op.high)
    return None


def _require_finite(lam: ScaleValue, act: Op, norm: str) -> None:
    """λ measured (or bounded) for ``act`` must be a finite number; NaN or Inf comes from non-finite weights or
    inputs, and would make every threshold after it meaningless."""
    flat = np.asarray(lam, np.float64).reshape(-1)
    if not np.all(np.isfinite(flat)):
        source = "the calibration data" if norm in ("max", "percentile", "mse", "spike") else "the weight bounds"
        raise ConversionError(
            f"{act.op_type} '{act.name}': its threshold scale λ from {source} ({norm} normalization) is "
            f"{flat[~np.isfinite(flat)][0]}; the ANN computes NaN or Inf there: check the weights before it and the "
            "calibration data"
        )


def _check_converted(graph: Graph) -> None:
    """Every weight, bias, threshold and scale of the converted graph is finite, and every threshold positive
    (a λ so small that the rescaled weights overflow float32 ends here too)."""
    for op in graph.ops:
        for key, value in op.attributes().items():
            if isinstance(value, (np.ndarray, np.floating, float)) and not isinstance(value, bool):
                array = np.asarray(value)
                if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                    raise ConversionError(
                        f"{op.op_type} '{op.name}': its {key} is not finite after conversion (NaN or Inf): the "
                        "thresholds of the layers around it are degenerate or the weights are not finite"
                    )
        if isinstance(op, (IF, WindowIF, SignedIF, FewSpike)) and not np.all(np.asarray(op.threshold) > 0):
            raise ConversionError(f"{op.op_type} '{op.name}': its threshold is not positive after conversion")


def _schedule(graph: Graph) -> None:
    """Give each windowed neuron (WindowIF, FewSpike) the step after which its input has settled, so that it
    sends nothing for the windows before (the pipeline's fill costs no spikes)."""
    ready = settled(graph)
    for op in graph.ops:
        if isinstance(op, (WindowIF, FewSpike)):
            op.start = max((ready.get(v, 0) for v in op.inputs), default=0)


@dataclass(frozen=True)
class ConvertToSNN(Pass):
    name = "convert-to-snn"
    preserves_semantics = False

    norm: str = "percentile"
    percentile: float = 99.9
    granularity: str = "layer"
    zeros: str = "exclude"
    reset: str = "subtract"
    initial: float = 0.5
    maxpool: str = "avg"
    readout: str = "membrane"
    spike_steps: int = 64
    clip: str = "auto"
    qcfs: str = "auto"
    coding: str = "rate"
    fs_steps: int = 8
    mse_steps: int = 4

    def __post_init__(self) -> None:
        for option, value, allowed in (
            ("norm", self.norm, ("max", "percentile", "mse", "spike", "weights")),
            ("granularity", self.granularity, ("layer", "channel")),
            ("zeros", self.zeros, ("exclude", "include")),
            ("reset", self.reset, IF.RESETS),
            ("maxpool", self.maxpool, ("avg", "error", "exact")),
            ("readout", self.readout, ("membrane", "spikes")),
            ("clip", self.clip, ("auto", "trained")),
            ("qcfs", self.qcfs, QCFS_CODINGS),
            ("coding", self.coding, ("rate", "signed", "fs")),
        ):
            if value not in allowed:
                raise ValueError(f"{option} must be one of {', '.join(allowed)}, got {value!r}")
        if not 1 <= self.mse_steps <= MAX_MSE_STEPS:
            raise ValueError(f"mse-steps must be in [1, {MAX_MSE_STEPS}], got {self.mse_steps}")
        if not 1 <= self.fs_steps <= MAX_FS_STEPS:
            raise ValueError(f"fs-steps must be in [1, {MAX_FS_STEPS}], got {self.fs_steps}")
        if self.spike_steps < 1:
            raise ValueError(f"spike-steps must be at least 1, got {self.spike_steps}")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")

    # -- steps ------------------------------------------------------------------------------------------------
    def _check_ops(self, graph: Graph, ctx: PassContext) -> None:
        replaced = []
        edit = graph.edit()
        for op in graph:
            if isinstance(op, Softmax):
                raise ConversionError(
                    f"Softmax '{op.name}' has no spiking equivalent; run drop-softmax first (the "
                    "default pipelines do) so the readout is an argmax"
                )
            if isinstance(op, BatchNorm):
                raise ConversionError(f"BatchNorm '{op.name}' is left over; run fold-batchnorm first")
            if isinstance(op, Clip) and not is_activation(op) and self.coding == "fs":
                raise ConversionError(
                    f"Clip '{op.name}' with low={op.low}: few-spike coding (coding=fs) has a code for "
                    f"{FS_ACTIVATIONS} only"
                )
            if isinstance(op, Clip) and not is_activation(op):
                raise ConversionError(
                    f"Clip '{op.name}' with low={op.low} has no spiking equivalent: IF neurons "
                    "only represent non-negative values (Clip(0, a) and ReLU convert)"
                )
            if isinstance(op, MaxPool2d) and self.maxpool == "exact":
                fields = {f: getattr(op, f) for f in ("kernel", "stride", "padding", "dilation", "ceil_mode")}
                edit.replace(
                    op, SpikeMaxPool2d(name=op.name, inputs=op.inputs, output=op.output, meta=dict(op.meta), **fields)
                )
            elif isinstance(op, MaxPool2d):
                if self.maxpool == "error":
                    raise ConversionError(
                        f"MaxPool2d '{op.name}' cannot be rate-coded exactly by IF neurons; retrain with "
                        "average pooling, pass maxpool=avg (an approximation) or maxpool=exact (max pooling of spike "
                        "counts, reference target)"
                    )
                edit.replace(
                    op,
                    AvgPool2d(
                        name=op.name,
                        inputs=op.inputs,
                        output=op.output,
                        meta=dict(op.meta),
                        kernel=op.kernel,
                        stride=op.stride,
                        padding=op.padding,
                        dilation=op.dilation,
                        ceil_mode=op.ceil_mode,
                        count_include_pad=False,
                    ),
                )
                replaced.append(op.name)
        edit.commit()
        if replaced:
            ctx.warn(f"MaxPool replaced by AvgPool (an approximation; accuracy may drop): {', '.join(replaced)}")

    def _lambdas(
        self, graph: Graph, ctx: PassContext, activations: list[Op], ranges: dict[str, dict[str, float]]
    ) -> tuple[dict[str, ScaleValue], str]:
        """λ of every activation, shaped to broadcast against its output (a scalar or one per channel); where
        calibration data set them, ``ranges`` gets each activation output's value range (the report's plot)."""
        values = [a.output for a in activations if not isinstance(a, QCFS)]  # a QCFS λ is trained, not measured
        per_channel = self.granularity == "channel"
        stats: Mapping[str, ScaleValue]
        if activations and not values:
            stats, used = {}, "trained"
        elif self.norm in ("max", "percentile", "mse") and ctx.calibration is not None:
            stats = activation_statistics(
                graph,
                values,
                ctx.calibration,
                statistic=self.norm,
                percentile=self.percentile,
                per_channel=per_channel,
                zeros=self.zeros,
                levels=self.mse_steps,
                ranges=ranges,
            )
            used = self.norm
        else:
            if self.norm != "weights":
                ctx.warn(
                    "No calibration data: thresholds come from weight bounds (inputs assumed in "
                    f"{list(ASSUMED_INPUT_RANGE)}), which needs many more time steps; pass --calibration "
                    "for data-based normalization"
                )
            if per_channel:
                ctx.warn("Per-channel thresholds need calibration data; weight bounds give one per layer")
            stats = {v: np.float32(b) for v, b in weight_bounds(graph, values).items()}
            used = "weights"
        types = graph.types()
        lambdas: dict[str, ScaleValue] = {}
        for act in activations:
            # A QCFS saturates at its trained λ; the IF it becomes reproduces it exactly after T = L steps.
            lam = np.float32(act.lam) if isinstance(act, QCFS) else np.asarray(stats[act.output], np.float32)
            clip = _clip_value(act)
            if clip is not None and (self.clip == "trained" or used not in ("max", "percentile", "mse")):
                lam = np.float32(clip)  # a clipped ReLU saturates exactly at its clip value
            elif clip is not None:
                # A cap the data sit below (ReLU6's 6 on activations that reach 4) is no trained threshold: the
                # statistic of the clipped output, never above the cap, is. Where the data reach the cap, it is.
                lam = np.where(lam > 0, np.minimum(lam, np.float32(clip)), np.float32(clip)).astype(np.float32)
            _require_finite(lam, act, used)
            # Never active on the calibration data: any threshold works, 1 is as good as another.
            lam = np.where(lam > 0, lam, np.float32(1.0)).astype(np.float32)
            rank = types[act.output].rank
            lambdas[act.name] = lam if lam.ndim == 0 else lam.reshape((-1,) + (1,) * (rank - 1))
        return lambdas, used

    def _spike_norm(self, graph: Graph, ctx: PassContext, activations: list[Op]) -> dict[str, ScaleValue]:
        """Spike-norm (Sengupta et al. 2019): thresholds balanced by simulation, layer by layer. Activation k's
        λ is the largest input current its neurons receive in any step while the calibration inputs drive the
        spiking network whose earlier layers are already balanced. Trained clip values (Clip, QCFS) are kept.
        At most ``SPIKE_NORM_SAMPLES`` calibration inputs are used, for ``spike_steps`` steps each."""
        if ctx.calibration is None:  # pragma: no cover - run() asks for spike-norm only with calibration data
            raise ConversionError("spike-norm needs calibration data")
        x = ctx.calibration[:SPIKE_NORM_SAMPLES]
        types = graph.types()
        lambdas: dict[str, ScaleValue] = {}
        for act in activations:
            rank = types[act.output].rank
            clip = _clip_value(act)
            if isinstance(act, QCFS) or clip is not None:
                lambdas[act.name] = np.float32(act.lam if isinstance(act, QCFS) else clip)
                continue
            trial = graph.copy()
            scales = self._apply(trial, {a.name: lambdas.get(a.name, np.float32(1.0)) for a in activations})
            current = act.inputs[0]
            peak: list[np.ndarray] = []

            def observe(value: str, array: np.ndarray, current=current, peak=peak) -> None:
                if value == current:
                    rows = (
                        array.max(axis=tuple(i for i in range(array.ndim) if i != 1))
                        if self.granularity == "channel"
                        else array.max()
                    )
                    peak.append(np.asarray(rows, np.float32))

            simulate(trial, {next(iter(trial.inputs)): x}, self.spike_steps, observe=observe)
            top = np.max(np.stack(peak), axis=0)
            _require_finite(top, act, "spike")
            in_scale = np.broadcast_to(scales[current], types[current].shape)
            if top.ndim:  # per channel: the input scale is constant within a channel
                lam = top * channel_vector(in_scale, types[current].shape, 0, f"{act.op_type} '{act.name}'")
                lam = np.where(lam > 0, lam, np.float32(1.0)).astype(np.float32).reshape((-1,) + (1,) * (rank - 1))
            else:
                lam = np.float32(top * float(in_scale.flat[0]) if top > 0 else 1.0)
            lambdas[act.name] = lam
        return lambdas

    def _target(
        self, index: GraphIndex, value: str, lambdas: dict[str, ScaleValue], known: dict[str, ScaleValue | None]
    ) -> ScaleValue | None:
        """The scale ``value`` should be produced at: λ of the activation it reaches through linear,
        scale-transparent ops (:attr:`~neurodeploy.ir.op.Op.passes_target_scale`); 1 (the ANN's units) for a model
        output; None when nothing constrains it.
        A per-channel λ is not followed through ops that move channels (Reshape, Concat).

        Every value on the way has the same target, so each is remembered in ``known`` (a long run of Adds is
        walked once, not once per Add). ``_apply`` asks in graph order, and its edits (a Scale before an Add, an
        IF in an activation's place under its name) never change the way on from a value it has not visited."""
        path = []
        target: ScaleValue | None
        while value not in known:
            path.append(value)
            if index.is_output(value) or len(readers := index.consumers(value)) != 1:
                target = np.float32(1.0) if index.is_output(value) else None
                break
            reader = readers[0]
            if reader.name in lambdas:
                target = lambdas[reader.name]
                break
            if not reader.passes_target_scale:
                target = None
                break
            value = reader.output
        else:
            target = known[value]
        known.update(dict.fromkeys(path, target))
        return target

    def _add_readout_neurons(self, graph: Graph) -> None:
        """readout=spikes: the output layer spikes too (its spike count is the score), so give it a ReLU to
        convert like any other; its λ comes from the calibration logits."""
        with graph.edit() as edit:
            for value in list(graph.outputs):
                producer = edit.producer(value)
                if not isinstance(producer, (Conv2d, Dense)):
                    continue
                inner = edit.fresh_name(f"{value}_current")
                edit.replace_uses(value, inner, outputs=False)
                edit.set_output(producer, inner)
                edit.insert_after(
                    producer,
                    Relu(
                        name=edit.fresh_name(f"{producer.name}_readout"),
                        inputs=(inner,),
                        output=value,
                        meta={"inserted_by": "convert-to-snn"},
                    ),
                )

    def run(self, graph: Graph, ctx: PassContext) -> None:
        self._check_ops(graph, ctx)
        if self.readout == "spikes":
            self._add_readout_neurons(graph)
        activations = [op for op in graph.ops if is_activation(op)]
        if not activations:
            ctx.warn("The model has no ReLU activations: nothing spikes; the SNN is the ANN run every step")
        if self.coding != "rate":
            if self.qcfs != "auto":
                raise ConversionError(
                    f"qcfs={self.qcfs} chooses how QCFS activations spike in coding=rate; coding={self.coding} makes "
                    "every activation, QCFS included, the same neurons: drop qcfs="
                )
            if self.coding == "signed" and self.reset != "subtract":
                raise ConversionError(
                    "coding=signed resets by subtraction (a neuron takes back a spike by adding θ); "
                    f"reset={self.reset} does not combine with it"
                )
            coding = self.coding
        else:
            coding = "window" if self._windows(activations, ctx) else "rate"
        silus = [a for a in activations if isinstance(a, SiLU)]
        if silus:
            self._check_silu(silus, ctx)
        ranges: dict[str, dict[str, float]] = {}
        if self.norm == "spike" and ctx.calibration is not None:
            lambdas, used = self._spike_norm(graph, ctx, activations), "spike"
        else:
            lambdas, used = self._lambdas(graph, ctx, activations, ranges)
        fits = self._fit_silus(graph, ctx, silus, lambdas, used) if silus else {}
        self._apply(graph, lambdas, coding, fits)
        if coding in ("window", "fs"):
            _schedule(graph)
        _check_converted(graph)
        graph.meta["snn"] = {
            "norm": used,
            "percentile": self.percentile if used == "percentile" else None,
            "mse_steps": self.mse_steps if used == "mse" else None,
            "granularity": self.granularity if used != "weights" else "layer",
            "reset": self.reset,
            "initial": self.initial,
            "readout": self.readout,
            "clip": self.clip,
            "coding": self.coding,
            "qcfs": coding,
            "lambda": {k: (v.reshape(-1).tolist() if v.ndim else float(v)) for k, v in sorted(lambdas.items())},
        }
        if levels := {a.name: a.levels for a in activations if isinstance(a, QCFS)}:
            graph.meta["snn"]["levels"] = levels
        if coding == "fs":
            graph.meta["snn"]["fs_steps"] = self.fs_steps
        if fits:
            graph.meta["snn"]["fs_fit"] = {name: fit.record() for name, fit in fits.items()}
        if ranges:  # the calibration data's activations, per layer (what the thresholds were chosen from)
            graph.meta["snn"]["ranges"] = [
                {"layer": a.name, **ranges[a.output]} for a in activations if a.output in ranges
            ]
        ctx.records[self.name] = graph.meta["snn"]

    def _check_silu(self, silus: list[SiLU], ctx: PassContext) -> None:
        """SiLU converts with few-spike neurons fitted to it, one code per layer: refuse, naming the layer, what
        does not give it that."""
        layer = f"SiLU '{silus[0].name}'" + (f" (and {len(silus) - 1} more)" if len(silus) > 1 else "")
        if self.coding != "fs":
            raise ConversionError(
                f"{layer}: integrate-and-fire neurons (coding={self.coding}) send the rate of a ReLU-like "
                "activation, and SiLU is negative below 0 and not linear above it; convert with coding=fs "
                "(few-spike neurons fitted to SiLU; the reference target and the loihi target's graded mode run them)"
            )
        if self.granularity == "channel" and ctx.calibration is not None and self.norm != "weights":
            raise ConversionError(
                f"{layer}: coding=fs fits one SiLU code per layer at the layer's λ (SiLU(λx) is not λ·SiLU(x)), "
                "and granularity=channel gives each channel its own λ; pass granularity=layer"
            )
        if self.norm == "spike" and ctx.calibration is not None:
            raise ConversionError(
                f"{layer}: norm=spike balances thresholds by simulating rate-coded IF neurons, which SiLU has "
                "none of; pass norm=percentile (the default), max or mse"
            )

    def _fit_silus(
        self, graph: Graph, ctx: PassContext, silus: list[SiLU], lambdas: dict[str, ScaleValue], used: str
    ) -> dict[str, FewSpikeFit]:
        """The few-spike code of each SiLU (coding=fs), fitted at its λ over the range of its inputs: the
        calibration data's (thresholds from data), or the weight bounds'."""
        inputs = [act.inputs[0] for act in silus]
        if used != "weights" and ctx.calibration is not None:
            samples = activation_inputs(graph, inputs, ctx.calibration)
            return {
                a.name: fit_silu(float(lambdas[a.name]), self.fs_steps, samples=samples[v])
                for a, v in zip(silus, inputs)
            }
        bounds = value_bounds(graph, inputs)
        return {
            a.name: fit_silu(float(lambdas[a.name]), self.fs_steps, low=bounds[v][0]) for a, v in zip(silus, inputs)
        }

    def _windows(self, activations: list[Op], ctx: PassContext) -> bool:
        """Whether the QCFS activations become :class:`WindowIF` neurons: ``qcfs=window``, or ``auto`` where every
        activation is a QCFS of one L. ``window`` on a model that does not allow it is an error naming why."""
        qcfs = [a for a in activations if isinstance(a, QCFS)]
        if self.qcfs == "rate" or (self.qcfs == "auto" and not qcfs):
            return False
        others = [a for a in activations if not isinstance(a, QCFS)]
        levels = sorted({int(a.levels) for a in qcfs})
        why = None
        if not qcfs:
            why = "the model has no QCFS activation"
        elif others:
            names = ", ".join(f"{a.op_type} '{a.name}'" for a in others[:3]) + (" ..." if len(others) > 3 else "")
            readout = " (readout=spikes adds readout neurons, which are no QCFS)" if self.readout == "spikes" else ""
            why = f"{len(others)} activation(s) are no QCFS: {names}{readout}"
        elif len(levels) > 1:
            why = f"the QCFS activations have different numbers of levels L ({', '.join(map(str, levels))})"
        if why is None:
            return True
        if self.qcfs == "window":
            raise ConversionError(
                f"qcfs=window needs every activation to be a QCFS of one L, and {why}: pass qcfs=rate (IF neurons, "
                "exact at T = L only)"
            )
        ctx.warn(
            f"QCFS activations converted to rate-coded IF neurons, exact at T = L only and not past it: {why}; "
            "windowed neurons (qcfs=window) need every activation to be a QCFS of one L"
        )
        return False

    def _neuron(
        self, act: Op, theta: np.ndarray, meta: dict[str, Any], coding: str, fit: FewSpikeFit | None = None
    ) -> StatefulOp:
        """The neurons that replace activation ``act`` (threshold ``theta``) for ``coding``: ``rate`` (IF),
        ``window`` (WindowIF for a QCFS, IF otherwise), ``signed`` (SignedIF) or ``fs`` (FewSpike; a SiLU's with
        its fitted code ``fit``)."""
        common: dict[str, Any] = {"name": act.name, "inputs": act.inputs, "output": act.output, "meta": meta}
        qcfs = act if isinstance(act, QCFS) else None
        if isinstance(act, SiLU):
            if coding != "fs" or fit is None:  # pragma: no cover - run() refuses SiLU in any other coding
                raise ConversionError(f"SiLU '{act.name}': only few-spike neurons fitted to it (coding=fs) send it")
            meta["fs_steps"], meta["fs_fit"] = self.fs_steps, fit.record()
            return FewSpike(
                **common,
                threshold=theta,
                thresholds=fit.thresholds,
                resets=fit.resets,
                spike_values=fit.spike_values,
            )
        if coding == "fs":
            levels = int(qcfs.levels) if qcfs is not None else 2**self.fs_steps - 1
            shift = qcfs.shift if qcfs is not None else 0.5
            try:
                digits = np.asarray(fs_digits(levels, self.fs_steps), np.float32)
            except ValueError as exc:
                raise ConversionError(
                    f"{act.op_type} '{act.name}': {exc} (QCFS L = {levels}); pass fs-steps between "
                    f"{levels.bit_length()} and {levels}, or coding=rate"
                ) from None
            meta["levels"], meta["fs_steps"] = levels, self.fs_steps
            code = digits / np.float32(levels)
            thresholds = (digits - np.float32(shift)) / np.float32(levels)
            return FewSpike(**common, threshold=theta, thresholds=thresholds, resets=code, spike_values=code)
        if coding == "signed":
            initial = qcfs.shift if qcfs is not None else self.initial
            return SignedIF(**common, threshold=theta, initial=initial)
        if coding == "window" and qcfs is not None:
            return WindowIF(**common, threshold=theta, levels=int(qcfs.levels), shift=qcfs.shift)
        # QCFS: v(0) = φ·θ (φ = 0.5 as trained), whatever ``initial`` says; exactness at T = L needs it.
        initial = qcfs.shift if qcfs is not None else self.initial
        return IF(**common, threshold=theta, reset=self.reset, initial=initial)

    def _apply(
        self,
        graph: Graph,
        lambdas: dict[str, ScaleValue],
        coding: str = "rate",
        fits: Mapping[str, FewSpikeFit] | None = None,
    ) -> dict[str, ScaleValue]:
        """Rewrite ``graph`` for the given λ: activations into neurons (:meth:`_neuron` for ``coding``; SiLU with
        its few-spike code from ``fits``); every
        other op carries the scales as it
        says (:meth:`~neurodeploy.ir.op.Op.carry_scales`: weights rescaled, branches brought to one scale by a
        ``Scale`` op); outputs brought back to the ANN's units. Returns the scale of every value."""
        types = graph.types()
        scales: dict[str, ScaleValue] = {v: np.float32(1.0) for v in graph.inputs}
        edit = graph.edit()
        targets: dict[str, ScaleValue | None] = {}
        for op in graph:
            shape_in = [types[v].shape for v in op.inputs]
            s_in = [scales[v] for v in op.inputs]
            out_shape = types[op.output].shape
            if op.name in lambdas:
                lam = lambdas[op.name]
                theta = compress(lam / np.broadcast_to(s_in[0], shape_in[0]), shape_in[0])
                if theta.ndim > 0:
                    theta = channel_vector(theta, shape_in[0], 0, f"{op.op_type} '{op.name}'")
                meta = {**op.meta, "lambda": lam.reshape(-1).tolist() if lam.ndim else float(lam)}
                if isinstance(op, QCFS):
                    meta["levels"] = op.levels
                edit.replace(op, self._neuron(op, theta, meta, coding, (fits or {}).get(op.name)))
                scales[op.output] = lam
                continue
            wanted = partial(self._target, edit, op.output, lambdas, targets)
            carried = op.carry_scales(s_in, shape_in, out_shape, wanted)
            if carried is None:
                raise ConversionError(f"{op.op_type} '{op.name}' has no conversion rule")
            scales[op.output], factors = carried
            if any(factor is not None for factor in factors):
                edit.set_inputs(
                    op,
                    [
                        value if factor is None else self._insert_scale(edit, op, value, factor)
                        for value, factor in zip(op.inputs, factors)
                    ],
                )
        for value in list(graph.outputs):
            if not np.all(scales[value] == 1.0):
                self._scale_output(edit, value, scales[value])
        edit.commit()
        return scales

    # -- rewrites ---------------------------------------------------------------------------------------------
    @staticmethod
    def _insert_scale(edit: GraphEditor, before: Op, value: str, factor: ScaleValue) -> str:
        out = edit.fresh_name(f"{value}_rescaled")
        scale = Scale(
            name=edit.fresh_name(f"{before.name}_rescale"),
            inputs=(value,),
            output=out,
            meta={"inserted_by": "convert-to-snn"},
            value=np.asarray(factor, np.float32),
        )
        edit.insert_before(before, scale)
        return out

    @staticmethod
    def _scale_output(edit: GraphEditor, value: str, factor: ScaleValue) -> None:
        producer = edit.producer(value)
        if producer is None:
            raise ConversionError(f"model output {value!r} is a model input")
        inner = edit.fresh_name(f"{value}_unscaled")
        edit.replace_uses(value, inner, outputs=False)
        edit.set_output(producer, inner)
        edit.insert_after(
            producer,
            Scale(
                name=edit.fresh_name(f"{value}_readout_scale"),
                inputs=(inner,),
                output=value,
                meta={"inserted_by": "convert-to-snn"},
                value=np.asarray(factor, np.float32),
            ),
        )
