"""What a backend is: the interface every target implements, and the data it exchanges.

A backend plans a converted graph for its chip once (``plan``: lowering, quantization, placement), reports what
the plan needs from the chip (``resources``), writes its files into an artifact folder (``emit``, returning what
it made), and runs one batch of a loaded artifact with the chip's arithmetic (``load``, ``prepare``,
``emulate_batch``; the batching is the core's, :mod:`neurodeploy.emulation`). First-party and third-party
backends register the same way, through the ``neurodeploy.backends`` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurodeploy import readout
from neurodeploy.emulation import Emulation, EmulationResult, Inputs, Run
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError, UnsupportedOpError
from neurodeploy.hil.device import Board, BoardUnavailable, Clock, Device
from neurodeploy.ir.graph import Graph

CONVERSION_FEATURES = {
    "window": "windowed QCFS neurons, WindowIF, qcfs=window",
    "fs": "few-spike neurons, FewSpike, graded spikes, coding=fs",
    "signed": "signed IF neurons, SignedIF, coding=signed",
    "maxpool-exact": "max pooling of spike counts, SpikeMaxPool2d, maxpool=exact",
}
"""What convert-to-snn can make beyond rate-coded IF neurons, by :attr:`Backend.conversion_features` name."""

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
class CompiledModel:
    """The compiler's result before it is written: the converted graph, the canonical ANN it came from (None for
    a model that arrived already spiking), and provenance."""

    snn: Graph
    ann: Graph | None = None
    pipeline: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    calibration: np.ndarray | None = None
    """The calibration inputs the conversion used (batch first), if any; a backend may measure ranges on them."""
    encoding: Encoding = field(default_factory=Encoding)
    """The input encoding the model is compiled for (``--encoding``): a target that takes events as spikes lowers
    its first layer differently."""
    arrived_spiking: bool = False
    """The model arrived as a spiking network (a NIR file): nothing was converted, its neurons are its own, and
    nothing about it approximates an ANN."""

    @property
    def target_options(self) -> dict[str, Any]:
        """The target's options, as :meth:`Backend.parse_target_options` typed them."""
        return self.options.get("target_options", {})


@dataclass
class Plan:
    """What a backend decided for one compile, made once by :meth:`Backend.plan` and read by both
    :meth:`Backend.resources` and :meth:`Backend.emit`. Targets subclass it to keep their lowering, quantization
    and placement."""

    model: CompiledModel


@dataclass
class Emitted:
    """What :meth:`Backend.emit` made: the files it wrote (names in the artifact folder), what it adds to the
    manifest's ``target`` section and to report.json's ``target`` section, and warnings for the user (the
    compiler logs them and records them in the manifest and the report)."""

    files: list[str]
    manifest: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


def pinned_conversion(options: dict[str, Any], pins: dict[str, tuple[str, tuple[str, ...], str]]) -> str:
    """The conversion pass of a target that limits some convert-to-snn options: the user's options, where
    ``pins[key] = (value, accepted, refusal)``. A key the user did not name, or named ``auto``, is set to
    ``value``; one named with an ``accepted`` value keeps it; another value is a :class:`DataError` saying
    ``refusal``, formatted with the key (e.g. ``{reset}``) as the value asked for."""
    from neurodeploy.passes import build_pipeline, conversion_pass

    given = options.get("conversion_as_given") or options.get("conversion")
    items = [item.strip() for item in (given or "").split(",") if item.strip()]
    (convert,) = build_pipeline(conversion_pass(given))  # the user's options checked first, as the pass reads them
    named = {item.partition("=")[0].strip().replace("-", "_") for item in items}
    kept = [item for item in items if item.partition("=")[0].strip().replace("-", "_") not in pins]
    for key, (value, accepted, refusal) in pins.items():
        asked = getattr(convert, key)
        if key in named and asked != "auto":
            if asked not in accepted:
                raise DataError(refusal.format(**{key: asked}))
            value = asked
        kept.append(f"{key.replace('_', '-')}={value}")
    return conversion_pass(",".join(kept))


def _asked_coding(options: dict[str, Any]) -> str:
    """The ``coding`` the user's convert-to-snn options ask for (rate unless named)."""
    from neurodeploy.passes import build_pipeline, conversion_pass

    (convert,) = build_pipeline(conversion_pass(options.get("conversion_as_given") or options.get("conversion")))
    return str(getattr(convert, "coding", "rate"))


class Backend(ABC):
    """A compilation target. Subclasses set the class attributes and implement the three methods."""

    name: ClassVar[str]
    version: ClassVar[str] = "0"
    spec: ClassVar[TargetSpec]
    fidelity: ClassVar[str] = "float"
    modes: ClassVar[tuple[str, ...]] = ("snn",)
    """Emulation modes, the first being the default."""
    encodings: ClassVar[tuple[str, ...]] = ("direct", "rate", "events")
    """The input encodings this target's emulator runs (compile refuses the others before any work)."""
    default_steps: ClassVar[int] = 32
    target_options: ClassVar[dict[str, str]] = {}
    """The ``--target-option KEY=VALUE`` keys this target takes, with a line of help each."""
    delayed_modes: ClassVar[tuple[str, ...]] = ()
    """Modes whose readout is the mean of the output over the steps run, to which the emulation driver passes the
    artifact's readout delay (``Run.readout_delay``, :mod:`neurodeploy.readout`): ``emulate_batch`` leaves the
    first min(D, t // 2) steps out of the readout after t steps. A target that names any takes the target option
    ``readout_delay`` (list it in ``target_options``), which the compiler resolves and records."""

    engines: ClassVar[tuple[str, ...]] = ("numpy",)
    """The emulator engines :meth:`emulate_batch` runs (``Run.engine``; :data:`neurodeploy.emulation.ENGINES`), the
    first being the default; asking for another is a :class:`DataError` before any work."""

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
        parsed: dict[str, Any] = dict(options)
        if self.delayed_modes and "readout_delay" in parsed:
            parsed["readout_delay"] = readout.parse_option(parsed["readout_delay"])
        return parsed

    conversion_features: ClassVar[frozenset[str]] = frozenset()
    """The conversions beyond rate-coded IF neurons the target runs (see ``CONVERSION_FEATURES``); the others'
    options are fixed to rate coding (:meth:`conversion`), and asking for them is an error naming the target."""

    def pipeline(self, options: dict[str, Any]) -> str:
        """Passes this target runs after the shared canonicalization (a pipeline string). ``options["conversion"]``
        holds the user's convert-to-snn options (a string such as ``"norm=max"``) in canonical form (defaults
        left out), if any; ``options["conversion_as_given"]`` the same as the user wrote them."""
        return self.conversion(options)

    def conversion(self, options: dict[str, Any], **pins: tuple[str, tuple[str, ...], str]) -> str:
        """The convert-to-snn pass for the user's ``options`` with the options this target fixes: ``pins``
        (:func:`pinned_conversion`), and rate-coded IF neurons wherever the target lacks a conversion feature."""
        features = self.conversion_features
        codings = ("rate", *(c for c in ("signed", "fs") if c in features))
        fixed: dict[str, tuple[str, tuple[str, ...], str]] = {}
        if len(codings) < 3:
            fixed["coding"] = ("rate", codings, self._refusal("coding={coding}"))
        if "window" not in features:
            # (a coding the target runs other than rate makes every activation its neurons: qcfs stays auto)
            other = _asked_coding(options) in features
            fixed["qcfs"] = ("auto" if other else "rate", ("rate",), self._refusal("qcfs={qcfs}"))
        if "maxpool-exact" not in features:
            fixed["maxpool"] = ("avg", ("avg", "error"), self._refusal("maxpool={maxpool}"))
        return pinned_conversion(options, {**fixed, **pins})

    def _refusal(self, option: str) -> str:
        kinds = "; ".join(
            f"{key}: {what}" for key, what in CONVERSION_FEATURES.items() if key not in self.conversion_features
        )
        runs = "".join(
            f", {CONVERSION_FEATURES[key]}" for key in CONVERSION_FEATURES if key in self.conversion_features
        )
        return (
            f"{option} asks for neurons the {self.target} target does not run (it runs rate-coded IF neurons{runs}; "
            f"not: {kinds}). Drop the option or compile for the reference target"
        )

    # -- compile ----------------------------------------------------------------------------------------------
    def plan(self, model: CompiledModel) -> Plan:
        """Lower, quantize and place ``model.snn`` for the chip, once per compile; raise ResourceError naming the
        layer and the limit when it does not fit. The base plan keeps just the model."""
        return Plan(model)

    @abstractmethod
    def resources(self, plan: Plan) -> ResourceReport:
        """What the planned network needs of the chip."""

    @abstractmethod
    def emit(self, plan: Plan, folder: Path) -> Emitted:
        """Write the target's files into ``folder`` (a temporary folder holding the converted graphs, which the
        compiler writes); return what was made. Must not change ``plan.model``."""

    def quantization_rows(self, report: dict[str, Any]) -> list[dict[str, str]]:
        """What the fit to the chip's number formats did, per layer, for a person (``neurodeploy inspect`` and
        ``report.md``): from the ``target`` section this backend wrote into ``report.json`` (``report``), one row
        per layer, column name -> text (``layer`` first; weights, scale, threshold, zeroed, clipped, rounding error,
        headroom where the target has them). A target that quantizes nothing gives none (the default)."""
        return []

    def placement_rows(self, report: dict[str, Any]) -> list[dict[str, Any]]:
        """Where the network sits, one row per core in use, for the report's placement chart: ``core`` (int),
        ``chip`` (int, or None where the target does not say), ``layer``, ``neurons`` and ``fill`` (the share of
        the core's tightest limit in use, 0..1, or None where the target does not say), from the whole
        ``report.json`` (``report``). The default: the first core of each layer the resources name."""
        found = report.get("resources")
        layers = found.get("layers", []) if isinstance(found, dict) else []
        return [
            {
                "core": int(layer["core"]),
                "chip": None,
                "layer": str(layer.get("name", "?")),
                "neurons": int(layer.get("neurons", 0)),
                "fill": None,
            }
            for layer in layers
            if isinstance(layer, dict) and isinstance(layer.get("core"), int)
        ]

    # -- export -----------------------------------------------------------------------------------------------
    def quantized_graph(self, artifact: Any) -> Graph:
        """The artifact's network as the chip computes it, as an IR graph in the target's units (integer weights,
        thresholds and biases where the chip has them), for ``neurodeploy export --quantized``
        (:func:`neurodeploy.export.export_nir`). ``graph.meta["nir_export"]`` (a dict of strings and numbers)
        says what the graph is and what it leaves out; the NIR file keeps it as its metadata. Targets that
        quantize nothing, or have not said how, raise :class:`~neurodeploy.errors.UnsupportedOpError` (the
        default)."""
        raise UnsupportedOpError(
            f"target {self.target!r} has no quantized export: export its float network without --quantized"
        )

    # -- run --------------------------------------------------------------------------------------------------
    batch_size: ClassVar[int] = 256
    """Samples :meth:`emulate_batch` runs at once unless told otherwise."""
    quantized_modes: ClassVar[tuple[str, ...]] = ()
    """Modes that compute a quantized ANN exactly, whose outputs :meth:`quantized_batch` gives
    (``neurodeploy evaluate`` prints its accuracy)."""

    def load(self, artifact: Any, mode: str) -> Any:
        """Read and check what ``mode`` runs from the artifact, once per emulation. The default keeps the
        artifact itself."""
        return artifact

    def prepare(self, loaded: Any, inputs: Any, *, steps: int, encoding: Encoding) -> Inputs:
        """The user's inputs, checked, as batch-first arrays (an array, or a dict by input name) that
        :meth:`emulate_batch` takes in slices. The default checks them against the artifact's converted graph."""
        return encoding.check_inputs(loaded.read_graph("snn"), inputs)

    @abstractmethod
    def emulate_batch(self, loaded: Any, inputs: Any, run: Run) -> EmulationResult:
        """Run one batch of prepared inputs (a slice of what :meth:`prepare` returned) as ``run`` says (steps,
        mode, checkpoints, encoding, per-neuron counts) with the target's arithmetic."""

    def after_run(self, loaded: Any, result: EmulationResult) -> None:  # noqa: B027 (optional hook)
        """Called once with the joined result of a run: warn about its ``diagnostics``. The default says
        nothing."""

    def quantized_batch(self, loaded: Any, inputs: Any, *, mode: str, encoding: Encoding) -> np.ndarray:
        """The outputs of the quantized ANN that ``mode`` (one of :attr:`quantized_modes`) computes, on one batch
        of prepared inputs."""
        raise NotImplementedError(f"target {self.target!r} has no quantized ANN in mode {mode!r}")

    # -- boards -----------------------------------------------------------------------------------------------
    device_adapters: ClassVar[dict[str, str]] = {}
    """Board adapters for hardware in the loop (:mod:`neurodeploy.hil.device`) by name, each as
    ``"module:Class"``, imported only when a board is used; the first is the target's default."""

    board_options: ClassVar[dict[str, str]] = {}
    """Target options (``--target-option``) with which an artifact of this target is one a board runs, where the
    default artifact is not (the lab suite compiles with them)."""

    def device_class(self, adapter: str = "") -> type[Device]:
        """The adapter class named ``adapter`` (the target's default when empty); a target without one, or an
        unknown name, is a :class:`BoardUnavailable` naming what the target has."""
        import importlib

        if not self.device_adapters:
            raise BoardUnavailable(
                f"target {self.target!r} has no board adapter: its artifacts run in the emulator only"
            )
        name = adapter or next(iter(self.device_adapters))
        if name not in self.device_adapters:
            raise BoardUnavailable(
                f"target {self.target!r} has no board adapter {name!r}; it has {', '.join(self.device_adapters)}"
            )
        module, _, attr = self.device_adapters[name].partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if not (isinstance(cls, type) and issubclass(cls, Device)):
            raise BoardUnavailable(f"target {self.target!r}: adapter {name!r} is not a neurodeploy Device")
        return cls

    def device(self, board: Board, clock: Clock | None = None) -> Device:
        """The adapter of ``board`` (its ``adapter``, or the target's default), not yet opened."""
        return self.device_class(board.adapter)(board, clock or Clock())

    def emulate(
        self,
        artifact: Any,
        inputs: Any,
        *,
        steps: int,
        mode: str | None = None,
        checkpoints: tuple[int, ...] = (),
        encoding: Encoding | None = None,
        neuron_counts: bool = False,
        batch_size: int | None = None,
        engine: str = "numpy",
        device: str | None = None,
    ) -> EmulationResult:
        """Run the artifact on ``inputs`` (batch first) for ``steps`` time steps with the target's arithmetic,
        through the shared driver (:class:`neurodeploy.emulation.Emulation`), with the emulator ``engine`` on
        ``device`` (:class:`~neurodeploy.emulation.Run`)."""
        run = Emulation(self, artifact, mode)
        return run.run(
            inputs,
            steps=steps,
            checkpoints=checkpoints,
            encoding=encoding,
            neuron_counts=neuron_counts,
            batch_size=batch_size,
            engine=engine,
            device=device,
        )
