"""What a backend is: the interface every target implements, and the data it exchanges.

A backend turns a converted graph into an artifact folder (``emit``), reports what the graph needs from the
chip (``resources``), and runs the artifact (``emulate``) with the chip's arithmetic. First-party and third-party
backends register the same way, through the ``neurodeploy.backends`` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError
from neurodeploy.ir.graph import Graph

FIDELITIES = ("float", "bit-exact", "statistical")
"""``float``: a float32 model of the target (the reference). ``bit-exact``: reproduces the chip's integer
arithmetic exactly. ``statistical``: an analog chip, modelled only in distribution."""


@dataclass(frozen=True, kw_only=True)
class TargetSpec:
    """A chip's limits, as data. ``None`` means unlimited (the float reference)."""

    name: str
    description: str
    weight_bits: int | None = None
    state_bits: int | None = None
    threshold_bits: int | None = None
    cores: int | None = None
    neurons_per_core: int | None = None
    synapses_per_core: int | None = None
    fan_in: int | None = None
    fan_out: int | None = None
    ops: frozenset[str] = frozenset()
    """IR op types the target runs (empty: any)."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ops"] = sorted(self.ops)
        return d


@dataclass(frozen=True)
class LayerUsage:
    """One layer's demands: neurons it owns, synapses (weights) into it, and per-neuron fan-in/fan-out."""

    name: str
    op_type: str
    neurons: int
    synapses: int
    fan_in: int
    fan_out: int
    core: int | None = None


@dataclass(frozen=True)
class ResourceReport:
    """Per-layer usage, cores used, and notes (what was approximated, what is close to a limit)."""

    target: str
    layers: list[LayerUsage]
    cores_used: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def neurons(self) -> int:
        return sum(layer.neurons for layer in self.layers)

    @property
    def synapses(self) -> int:
        return sum(layer.synapses for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "cores_used": self.cores_used,
            "neurons": self.neurons,
            "synapses": self.synapses,
            "layers": [asdict(layer) for layer in self.layers],
            "notes": list(self.notes),
        }

    def format(self) -> str:
        rows = [("layer", "op", "neurons", "synapses", "fan-in", "fan-out", "core")]
        for layer in self.layers:
            rows.append(
                (
                    layer.name,
                    layer.op_type,
                    str(layer.neurons),
                    str(layer.synapses),
                    str(layer.fan_in),
                    str(layer.fan_out),
                    "-" if layer.core is None else str(layer.core),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        total = f"total: {self.neurons} neurons, {self.synapses} synapses"
        if self.cores_used is not None:
            total += f", {self.cores_used} core(s)"
        return "\n".join([*lines, total, *self.notes]) + "\n"


@dataclass
class EmulationResult:
    """What running an artifact gives: the readout per sample, and activity per spiking layer.

    ``outputs`` is (batch, *output_shape) of the first model output. ``spikes`` maps each spiking layer to its
    total spike count per sample (batch,). ``checkpoints`` optionally holds the readout after fewer steps.

    Backends that can measure more fill the rest (empty otherwise): ``synops`` (SynOps per sample of each
    spike source: spiking layers by name, inputs by name; see :mod:`neurodeploy.metrics`),
    ``checkpoint_spikes`` and ``checkpoint_synops`` (the same per-sample totals after each checkpoint's steps),
    and, when asked with ``neuron_counts=True``, ``counts`` (spikes per neuron, (batch, *shape), per layer).
    """

    outputs: np.ndarray
    steps: int
    mode: str
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    neurons: dict[str, int] = field(default_factory=dict)
    checkpoints: dict[int, np.ndarray] = field(default_factory=dict)
    synops: dict[str, np.ndarray] = field(default_factory=dict)
    checkpoint_spikes: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    checkpoint_synops: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    encoding: dict[str, Any] | None = None
    """The input encoding used (:meth:`neurodeploy.encoding.Encoding.describe`); None for modes without time."""

    @property
    def predictions(self) -> np.ndarray:
        return self.outputs.reshape(len(self.outputs), -1).argmax(axis=1)


@dataclass
class CompiledModel:
    """The compiler's result before it is written: the canonical ANN, the converted graph, and provenance."""

    ann: Graph
    snn: Graph
    pipeline: str
    options: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    calibration: np.ndarray | None = None
    """The calibration inputs the conversion used (batch first), if any; a backend may measure ranges on them."""
    target: dict[str, Any] = field(default_factory=dict)
    """What ``emit`` adds to the artifact's description: ``target["manifest"]`` (a dict merged into the
    manifest's ``target`` section, e.g. a pipeline delay) and ``target["report"]`` (a dict written to
    report.json under ``target``, e.g. a quantization report)."""


class Backend(ABC):
    """A compilation target. Subclasses set the class attributes and implement the three methods."""

    name: ClassVar[str]
    version: ClassVar[str] = "0"
    spec: ClassVar[TargetSpec]
    fidelity: ClassVar[str] = "float"
    modes: ClassVar[tuple[str, ...]] = ("snn",)
    """Emulation modes, the first being the default."""
    default_steps: ClassVar[int] = 32
    target_options: ClassVar[dict[str, str]] = {}
    """The ``--target-option KEY=VALUE`` keys this target takes, with a line of help each."""

    def __init__(self, target: str | None = None) -> None:
        self.target = target or self.name
        """The name the backend was asked for (a backend may serve several names, e.g. loihi and loihi2)."""

    def resolve_mode(self, mode: str | None) -> str:
        """The emulation mode to run: ``mode``, or the target's first when it is None; an unknown mode is a
        :class:`DataError` listing the target's modes."""
        mode = mode or self.modes[0]
        if mode not in self.modes:
            raise DataError(f"target {self.target!r} has emulation modes {', '.join(self.modes)}; got {mode!r}")
        return mode

    def parse_target_options(self, options: dict[str, str]) -> dict[str, Any]:
        """``options`` (strings, as given on the command line) checked and typed, for ``CompiledModel.options
        ["target_options"]``; an unknown key is a :class:`DataError` naming the keys this target takes. Backends
        with options override this and call it first."""
        unknown = sorted(set(options) - set(self.target_options))
        if unknown:
            takes = (
                "; it takes " + ", ".join(f"{k} ({v})" for k, v in self.target_options.items())
                if self.target_options
                else "; it takes none"
            )
            raise DataError(f"target {self.target!r} has no option {', '.join(map(repr, unknown))}{takes}")
        return dict(options)

    def pipeline(self, options: dict[str, Any]) -> str:
        """Passes this target runs after the shared canonicalization (a pipeline string). ``options["conversion"]``
        holds the user's convert-to-snn options (a string such as ``"norm=max"``), if any."""
        from neurodeploy.passes import conversion_pass

        return conversion_pass(options.get("conversion"))

    @abstractmethod
    def resources(self, graph: Graph) -> ResourceReport:
        """What ``graph`` needs of the chip; raise ResourceError naming the layer and limit if it does not fit."""

    @abstractmethod
    def emit(self, model: CompiledModel, folder: Path) -> list[str]:
        """Write the target's files into ``folder`` (an empty temporary folder); return their names."""

    @abstractmethod
    def emulate(
        self,
        artifact: Any,
        inputs: np.ndarray,
        *,
        steps: int,
        mode: str | None = None,
        checkpoints: tuple[int, ...] = (),
        encoding: Encoding | None = None,
        neuron_counts: bool = False,
    ) -> EmulationResult:
        """Run the artifact on ``inputs`` (batch first) for ``steps`` time steps with the target's arithmetic.

        ``encoding`` says how inputs become per-step stimuli (None: direct, the analog input every step; an
        ``events`` input is (batch, frames, *shape)). ``neuron_counts`` asks for per-neuron spike counts in
        ``EmulationResult.counts``; a backend that cannot measure them leaves it empty."""
