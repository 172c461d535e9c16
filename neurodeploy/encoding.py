"""Input encodings: what an SNN's input layer receives at each time step.

* ``direct``: the analog input, the same every step (the first layer then injects a constant current). The
  simulator computes everything that depends on the input alone once.
* ``rate``: Bernoulli spikes, as SNN Toolbox's Poisson input. Per sample, with ``m = max |x|`` over that
  sample's input: at each step an element spikes when ``u * m < |x|`` (u ~ U[0, 1)), i.e. with probability
  ``p = |x| / m``, and the spike has amplitude ``m * sign(x)``; its expectation is ``p * m * sign(x) = x``.
  The maximum is taken per sample (SNN Toolbox takes it over the batch), so a sample's spikes never depend on
  which other samples share its batch. SNN Toolbox compares with ``<=``; ``<`` keeps inputs of 0 silent.
  Random numbers come from one stream per sample: a numpy PCG64 generator seeded with
  ``SeedSequence(seed, spawn_key=(input index, offset + sample index))``, drawn in blocks of ``RATE_BLOCK``
  steps. The spikes are therefore fixed by the seed, the sample's position in the data set and the step,
  whatever the batch size or the number of steps run.
* ``events``: the input already is a time series, ``(batch, frames, *shape)`` (event frames, e.g. binned
  N-MNIST events); step t (1-based) takes frame t. A run with more steps than frames is an error, or with
  ``pad`` the steps after the last frame get zero input. The ANN's view of such an input is the mean of its
  frames over time (:meth:`Encoding.analog`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from neurodeploy.data.policy import check_values
from neurodeploy.errors import DataError
from neurodeploy.ir import interpret
from neurodeploy.ir.graph import Graph

KINDS = ("direct", "rate", "events")
RATE_BLOCK = 8
"""Rate encoding draws the uniforms of this many steps per sample at once (part of the stream's definition)."""


@dataclass(frozen=True)
class Encoding:
    """How inputs become per-step stimuli. ``seed`` matters for ``rate`` only, ``pad`` for ``events`` only.

    ``offset`` is the index, in the whole data set, of the first sample passed to one emulation call; a data
    set emulated in chunks (``offset`` = the chunk's start) draws the same rate spikes as in one call. It is a
    run-time detail and not part of :meth:`describe`.
    """

    kind: str = "direct"
    seed: int = 0
    pad: bool = False
    offset: int = 0

    KINDS: ClassVar[tuple[str, ...]] = KINDS

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"unknown input encoding {self.kind!r}; use one of {', '.join(KINDS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise DataError(f"the encoding seed must be an integer >= 0, got {self.seed!r}")
        if self.offset < 0:
            raise DataError(f"the encoding offset must be >= 0, got {self.offset}")

    @property
    def time_invariant(self) -> bool:
        """True when every step gets the same input (direct), so what depends on the input alone is constant."""
        return self.kind == "direct"

    def describe(self) -> dict[str, Any]:
        """What manifests and reports record: the kind, plus the seed (rate) or the padding rule (events)."""
        if self.kind == "rate":
            return {"kind": "rate", "seed": int(self.seed)}
        if self.kind == "events":
            return {"kind": "events", "pad": bool(self.pad)}
        return {"kind": "direct"}

    def manifest_value(self) -> str | dict[str, Any]:
        """The manifest's ``inputs[i]["encoding"]``: the string ``"direct"`` (as artifacts have always recorded
        it), or :meth:`describe` for the other kinds."""
        return "direct" if self.kind == "direct" else self.describe()

    @classmethod
    def from_manifest(cls, value: Any) -> Encoding:
        """Read what :meth:`manifest_value` (or :meth:`describe`) wrote."""
        if value is None or value == "direct":
            return cls()
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict) and isinstance(value.get("kind"), str):
            return cls(value["kind"], seed=int(value.get("seed", 0)), pad=bool(value.get("pad", False)))
        raise DataError(f"cannot read the input encoding {value!r}; expected 'direct' or {{'kind': ..., ...}}")

    # -- inputs -------------------------------------------------------------------------------------------------
    def check_inputs(self, graph: Graph, inputs: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Match user arrays to the graph inputs (float32, batch first). ``events`` inputs have a frame axis
        after the batch axis: ``(batch, frames, *shape)``, and hold event counts (finite, >= 0). The values must
        pass the input policy (:func:`neurodeploy.data.policy.check_values`)."""
        if self.kind != "events":
            return interpret.check_inputs(graph, inputs)
        if not isinstance(inputs, dict):
            if len(graph.inputs) != 1:
                raise DataError(f"graph has inputs {list(graph.inputs)}; pass a dict of arrays")
            inputs = {next(iter(graph.inputs)): inputs}
        out = {}
        for name, t in graph.inputs.items():
            if name not in inputs:
                raise DataError(f"no array given for graph input {name!r}")
            x = np.asarray(inputs[name])
            if x.ndim != t.rank + 2 or x.shape[2:] != t.shape:
                dims = ", ".join(map(str, t.shape))
                raise DataError(
                    f"input {name!r} has shape {x.shape}; events encoding takes (batch, frames, {dims}): one frame "
                    "per time step"
                )
            out[name] = check_values(x, where=f"input {name!r}", kind="events")  # counts: finite, >= 0
        return out

    def analog(self, x: np.ndarray) -> np.ndarray:
        """The ANN's view of an input in this encoding: the input itself, or for events the mean of its frames
        over time (axis 1)."""
        if self.kind == "events":
            return np.asarray(x, np.float32).mean(axis=1, dtype=np.float32)
        return x

    def stimulus(self, x: np.ndarray, steps: int, stream: int = 0) -> Stimulus:
        """The per-step input of one graph input ``x`` (already checked, batch first) for a run of ``steps``
        steps. ``stream`` tells graph inputs apart in the rate encoding's random streams."""
        if self.kind == "rate":
            return RateStimulus(x, self.seed, stream, self.offset)
        if self.kind == "events":
            frames = x.shape[1]
            if steps > frames and not self.pad:
                raise DataError(
                    f"the events input has {frames} frame(s) but the run has {steps} steps; run at most {frames} "
                    "steps, or pad with zero input after the last frame (--pad-events, Encoding(pad=True))"
                )
            return EventStimulus(x)
        return DirectStimulus(x)


class Stimulus:
    """The input of one graph input at each step: ``at(t)`` for t = 1, 2, ... (called in order)."""

    def at(self, t: int) -> np.ndarray:
        raise NotImplementedError

    def events(self, x_t: np.ndarray) -> np.ndarray:
        """Which elements of this step's input send an event (1) or not (0), per position."""
        return (x_t != 0).astype(np.float32)


class DirectStimulus(Stimulus):
    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def at(self, t: int) -> np.ndarray:
        return self.x


class EventStimulus(Stimulus):
    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.zeros = np.zeros((x.shape[0], *x.shape[2:]), np.float32)

    def at(self, t: int) -> np.ndarray:
        return self.x[:, t - 1] if t <= self.x.shape[1] else self.zeros


class RateStimulus(Stimulus):
    """Bernoulli spikes with p = |x| / m and amplitude m * sign(x), m = max |x| per sample (see the module)."""

    def __init__(self, x: np.ndarray, seed: int, stream: int, offset: int) -> None:
        batch = x.shape[0]
        self.abs = np.abs(x)
        flat = self.abs.reshape(batch, -1)
        peak = flat.max(axis=1) if flat.shape[1] else np.zeros(batch, np.float32)
        self.peak = peak.reshape((batch,) + (1,) * (x.ndim - 1)).astype(np.float32)
        self.amplitude = (self.peak * np.sign(x)).astype(np.float32)
        self.rngs = [
            np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(stream, offset + i))))
            for i in range(batch)
        ]
        self.block = np.zeros((batch, RATE_BLOCK, self.abs[0].size), np.float32)
        self.block_index = -1

    def _uniforms(self, t: int) -> np.ndarray:
        index = (t - 1) // RATE_BLOCK
        if index < self.block_index:
            raise ValueError(f"rate encoding: steps must be asked for in order (step {t} after a later one)")
        while self.block_index < index:  # blocks are drawn in order, so step t always gets the same numbers
            for i, rng in enumerate(self.rngs):
                rng.random(dtype=np.float32, out=self.block[i])
            self.block_index += 1
        return self.block[:, (t - 1) % RATE_BLOCK].reshape(self.abs.shape)

    def at(self, t: int) -> np.ndarray:
        spikes = self._uniforms(t) * self.peak < self.abs
        return np.where(spikes, self.amplitude, np.float32(0.0))
