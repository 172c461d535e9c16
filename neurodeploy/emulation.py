"""Running an artifact: the one emulation driver every target shares.

A backend says how to load an artifact for a mode (:meth:`~neurodeploy.backends.base.Backend.load`), how user
inputs become its batch-first inputs (``prepare``), and how to run one batch (``emulate_batch``). The driver here
does the rest for every target: it checks the step count before anything is allocated, splits the inputs into
batches (each batch's rate-coded spikes keyed by its samples' indices, so results do not depend on the batch
size), joins the batches' :class:`EmulationResult` s, and gives the backend the joined result once
(``after_run``) to warn about what the whole run saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from neurodeploy import limits, torch_support
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError
from neurodeploy.readout import recorded_delay


@dataclass
class EmulationResult:
    """What running an artifact gives: the readout per sample, and activity per spiking layer.

    ``outputs`` is (batch, *output_shape) of the first model output. ``spikes`` maps each spiking layer to its
    total spike count per sample (batch,). ``checkpoints`` optionally holds the readout after fewer steps.

    Backends that can measure more fill the rest (empty otherwise): ``synops`` (SynOps per sample of each
    spike source: spiking layers by name, inputs by name; see :mod:`neurodeploy.metrics`),
    ``checkpoint_spikes`` and ``checkpoint_synops`` (the same per-sample totals after each checkpoint's steps),
    and, when asked with ``neuron_counts=True``, ``counts`` (spikes per neuron, (batch, *shape), per layer).
    ``diagnostics`` holds event counts a backend warns about once per run (e.g. saturations), summed over
    batches.
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
    sent: dict[str, np.ndarray] = field(default_factory=dict)
    """With ``counts``, for layers whose spikes are graded or signed (their counts count events): what each neuron
    sent, summed, in spikes (:attr:`neurodeploy.simulate.Simulation.sent`). A backend that does not fill it
    leaves those layers' values unknown (their correlation with the ANN is not computed)."""
    encoding: dict[str, Any] | None = None
    """The input encoding used (:meth:`neurodeploy.encoding.Encoding.describe`); None for modes without time."""
    diagnostics: dict[str, int] = field(default_factory=dict)
    delay: int = 0
    """Steps run before the readout's first (the pipeline's fill, windowed neurons): the run took ``delay +
    steps`` steps, spikes and SynOps counted over all of them."""
    readout_delay: int = 0
    """The artifact's readout delay D applied to this run (:mod:`neurodeploy.readout`): the readout after t steps
    (``outputs``, each checkpoint) is the mean over steps min(D, t // 2) + 1 .. t; 0 when none applies."""

    @property
    def predictions(self) -> np.ndarray:
        return self.outputs.reshape(len(self.outputs), -1).argmax(axis=1)


Inputs = np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True)
class Run:
    """What one batch runs: ``steps`` time steps in ``mode``, readouts also after each of ``checkpoints`` steps,
    inputs fed as ``encoding`` says (direct: the analog input every step; an ``events`` input is (batch, frames,
    *shape)), whose ``offset`` is the batch's first sample index; ``neuron_counts`` asks for spikes per neuron
    (``EmulationResult.counts``), which a backend that cannot measure them leaves empty. ``readout_delay``: the
    artifact's readout delay D in this mode (:mod:`neurodeploy.readout`; 0 outside the backend's
    ``delayed_modes``): the readout after t steps is the mean over steps min(D, t // 2) + 1 .. t. ``engine``: the
    emulator engine (one of the backend's ``engines``: numpy, or torch where the target has it); ``device``: the
    torch device it runs on (None: cuda when torch sees one, else cpu; numpy runs on the CPU)."""

    steps: int
    mode: str
    checkpoints: tuple[int, ...] = ()
    encoding: Encoding = field(default_factory=Encoding)
    neuron_counts: bool = False
    readout_delay: int = 0
    engine: str = "numpy"
    device: str | None = None


ENGINES = ("numpy", "torch")
"""The emulator engines a target may offer (``Backend.engines``): numpy (every target), torch (tensors on a CPU
or a CUDA device)."""


class Emulator(Protocol):
    """What the driver needs of a backend (:class:`~neurodeploy.backends.base.Backend` implements it)."""

    @property
    def batch_size(self) -> int: ...

    @property
    def quantized_modes(self) -> tuple[str, ...]: ...

    @property
    def delayed_modes(self) -> tuple[str, ...]: ...

    @property
    def engines(self) -> tuple[str, ...]: ...

    def resolve_mode(self, mode: str | None) -> str: ...

    def load(self, artifact: Any, mode: str) -> Any: ...

    def prepare(self, loaded: Any, inputs: Any, *, steps: int, encoding: Encoding) -> Inputs: ...

    def emulate_batch(self, loaded: Any, inputs: Any, run: Run) -> EmulationResult: ...

    def after_run(self, loaded: Any, result: EmulationResult) -> None: ...

    def quantized_batch(self, loaded: Any, inputs: Any, *, mode: str, encoding: Encoding) -> np.ndarray: ...


def check_steps(steps: int) -> None:
    """Refuse a step count below 1 or above ``NEURODEPLOY_MAX_STEPS``, before anything is allocated."""
    if steps < 1:
        raise DataError(f"steps must be >= 1, got {steps}")
    limits.check_steps(steps, "the emulation")


def check_engine(target: str, engines: tuple[str, ...], engine: str, device: str | None = None) -> None:
    """Refuse, before any work, an engine the target lacks (its ``engines``), the torch engine without torch, and
    a device torch cannot use (or one given to an engine that runs on the CPU only)."""
    if engine not in engines:
        raise DataError(
            f"target {target!r} has no {engine!r} emulator engine; it has {', '.join(engines)} (--emulator)"
        )
    if engine == "torch":
        torch_support.resolve_device(device)
    elif device is not None:
        raise DataError(f"--device {device} is for the torch emulator engine; the {engine} engine runs on the CPU")


class Emulation:
    """An artifact loaded once for one mode of its backend; :meth:`run` emulates inputs batch by batch."""

    def __init__(self, backend: Emulator, artifact: Any, mode: str | None = None) -> None:
        self.backend = backend
        self.mode = backend.resolve_mode(mode)
        self.loaded = backend.load(artifact, self.mode)
        manifest = getattr(artifact, "manifest", None)
        self.readout_delay = recorded_delay(manifest) if self.mode in backend.delayed_modes else 0
        """The artifact's readout delay, applied in this mode (:mod:`neurodeploy.readout`)."""

    def run(
        self,
        inputs: Any,
        *,
        steps: int,
        checkpoints: tuple[int, ...] = (),
        encoding: Encoding | None = None,
        neuron_counts: bool = False,
        batch_size: int | None = None,
        engine: str = "numpy",
        device: str | None = None,
    ) -> EmulationResult:
        """Emulate ``inputs`` (batch first, or a dict of such arrays) for ``steps`` steps, ``batch_size`` samples
        at a time (the backend's own size by default), with the emulator ``engine`` on ``device`` (:class:`Run`)."""
        check_steps(steps)
        check_engine(getattr(self.backend, "target", "?"), self.backend.engines, engine, device)
        encoding = encoding if encoding is not None else Encoding()
        x = self.backend.prepare(self.loaded, inputs, steps=steps, encoding=encoding)
        n = samples(x)
        if n == 0:
            raise DataError("no inputs to emulate (the input array has 0 samples)")
        size = batch_size or self.backend.batch_size
        run = Run(steps, self.mode, tuple(checkpoints), encoding, neuron_counts, self.readout_delay, engine, device)
        parts = [
            self.backend.emulate_batch(
                self.loaded,
                take(x, start, start + size),
                replace(run, encoding=replace(encoding, offset=encoding.offset + start)),
            )
            for start in range(0, n, size)
        ]
        result = join(parts)
        result.encoding = None if result.encoding is None else encoding.describe()
        result.readout_delay = self.readout_delay
        self.backend.after_run(self.loaded, result)
        return result

    def quantized_outputs(
        self, inputs: Any, *, encoding: Encoding | None = None, batch_size: int | None = None
    ) -> np.ndarray | None:
        """The outputs of the quantized ANN this mode computes exactly (the backend's ``quantized_modes``), or
        None for a mode without one."""
        if self.mode not in self.backend.quantized_modes:
            return None
        encoding = encoding if encoding is not None else Encoding()
        x = self.backend.prepare(self.loaded, inputs, steps=1, encoding=encoding)
        size = batch_size or self.backend.batch_size
        parts = [
            self.backend.quantized_batch(self.loaded, take(x, start, start + size), mode=self.mode, encoding=encoding)
            for start in range(0, samples(x), size)
        ]
        if not parts:
            raise DataError("no inputs to run (the input array has 0 samples)")
        return np.concatenate(parts)


def samples(x: Inputs) -> int:
    """The number of samples of batch-first inputs (an array, or a dict of arrays of one batch size)."""
    if isinstance(x, Mapping):
        return len(next(iter(x.values()))) if x else 0
    return len(x)


def take(x: Inputs, start: int, stop: int) -> Inputs:
    """Samples ``start:stop`` of batch-first inputs."""
    if isinstance(x, Mapping):
        return {k: v[start:stop] for k, v in x.items()}
    return x[start:stop]


def join(parts: list[EmulationResult]) -> EmulationResult:
    """One result from the results of consecutive batches: per-sample arrays concatenated in order, neuron counts
    and encoding from the first, diagnostics summed."""
    first = parts[0]

    def cat(get) -> dict:
        return {k: np.concatenate([get(p)[k] for p in parts]) for k in get(first)}

    def cat_marks(get) -> dict:
        return {t: {k: np.concatenate([get(p)[t][k] for p in parts]) for k in get(first)[t]} for t in get(first)}

    diagnostics: dict[str, int] = {}
    for p in parts:
        for key, value in p.diagnostics.items():
            diagnostics[key] = diagnostics.get(key, 0) + int(value)
    return EmulationResult(
        outputs=np.concatenate([p.outputs for p in parts]),
        steps=first.steps,
        mode=first.mode,
        spikes=cat(lambda p: p.spikes),
        neurons=dict(first.neurons),
        checkpoints=cat(lambda p: p.checkpoints),
        synops=cat(lambda p: p.synops),
        checkpoint_spikes=cat_marks(lambda p: p.checkpoint_spikes),
        checkpoint_synops=cat_marks(lambda p: p.checkpoint_synops),
        counts=cat(lambda p: p.counts),
        sent=cat(lambda p: p.sent),
        encoding=first.encoding,
        diagnostics=diagnostics,
        delay=first.delay,
    )
