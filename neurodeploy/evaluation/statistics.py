"""Statistics merged chunk by chunk, so memory does not grow with the number of samples: the Pearson
correlation of two streams, and the sums one chunk of an evaluation contributes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy.ir.graph import Graph
from neurodeploy.ir.op import StatefulOp


@dataclass
class Pearson:
    """Pearson correlation of two equally long streams, merged chunk by chunk (Chan et al.'s pairwise update);
    merging the same chunks in the same order gives the same bits."""

    n: int = 0
    mean_a: float = 0.0
    mean_b: float = 0.0
    m2_a: float = 0.0
    m2_b: float = 0.0
    c_ab: float = 0.0

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray) -> Pearson:
        a = np.asarray(a, np.float64).reshape(-1)
        b = np.asarray(b, np.float64).reshape(-1)
        if a.size == 0:
            return cls()
        da, db = a - a.mean(), b - b.mean()
        return cls(a.size, float(a.mean()), float(b.mean()), float(da @ da), float(db @ db), float(da @ db))

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        self.merge(Pearson.of(a, b))

    def merge(self, other: Pearson) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        weight = self.n * other.n / n
        delta_a, delta_b = other.mean_a - self.mean_a, other.mean_b - self.mean_b
        self.m2_a += other.m2_a + delta_a * delta_a * weight
        self.m2_b += other.m2_b + delta_b * delta_b * weight
        self.c_ab += other.c_ab + delta_a * delta_b * weight
        self.mean_a += delta_a * other.n / n
        self.mean_b += delta_b * other.n / n
        self.n = n

    @property
    def r(self) -> float | None:
        """The correlation, or None when either stream is constant (no correlation is defined)."""
        if self.n < 2 or self.m2_a <= 0 or self.m2_b <= 0:
            return None
        return float(np.clip(self.c_ab / np.sqrt(self.m2_a * self.m2_b), -1.0, 1.0))


@dataclass(frozen=True)
class Layer:
    """One spiking layer: its neurons, the ANN value it reproduces, its scale λ (what a spike is worth) and
    whether its spikes are graded or signed (its spike counts are then not what it sent)."""

    name: str
    neurons: int
    ann_value: str | None
    scale: np.ndarray | None
    graded: bool = False


def spiking_layers(snn: Graph, ann: Graph | None) -> list[Layer]:
    snn_types, ann_values = snn.types(), set(ann.types()) if ann is not None else set()
    layers = []
    for op in snn.ops:
        if not isinstance(op, StatefulOp) or not op.emits_spikes:  # (a leaky integrator's readout sends none)
            continue
        shape = snn_types[op.output].shape
        lam = op.meta.get("lambda")
        scale = None
        if lam is not None:
            lam = np.asarray(lam, np.float32)
            scale = lam if lam.ndim == 0 else lam.reshape((-1,) + (1,) * (len(shape) - 1))
        # only neurons that replaced an ANN activation have an ANN counterpart (not e.g. inserted readout neurons)
        converted = op.output in ann_values and "inserted_by" not in op.meta
        value = op.output if converted and scale is not None else None
        layers.append(Layer(op.name, snn_types[op.output].size, value, scale, op.graded))
    return layers


@dataclass
class Sums:
    """Sums over samples, per T (and per layer at the largest T); one per chunk, merged in chunk order."""

    samples: int = 0
    correct: dict[int, int] = field(default_factory=dict)
    ir_correct: int | None = 0
    """None when there is no ANN (a model that arrived spiking)."""
    quantized_correct: int | None = None
    spikes: dict[int, float] = field(default_factory=dict)
    synops: dict[int, float] = field(default_factory=dict)
    synops_input: dict[int, float] = field(default_factory=dict)
    synops_measured: bool = True
    layer_spikes: dict[str, float] = field(default_factory=dict)
    layer_synops: dict[str, float] = field(default_factory=dict)
    pearson: dict[str, Pearson] = field(default_factory=dict)
    fill: int = 0
    """Steps run before the readout (windowed neurons' pipeline fill); the same for every chunk."""
    readout_delay: int = 0
    """The readout delay applied (:mod:`neurodeploy.readout`); the same for every chunk."""

    def merge(self, other: Sums) -> None:
        self.fill = max(self.fill, other.fill)
        self.readout_delay = max(self.readout_delay, other.readout_delay)
        self.samples += other.samples
        self.ir_correct = (
            None if self.ir_correct is None or other.ir_correct is None else self.ir_correct + other.ir_correct
        )
        if other.quantized_correct is not None:
            self.quantized_correct = (self.quantized_correct or 0) + other.quantized_correct
        self.synops_measured = self.synops_measured and other.synops_measured
        _add(self.correct, other.correct)
        for mine, theirs in (
            (self.spikes, other.spikes),
            (self.synops, other.synops),
            (self.synops_input, other.synops_input),
        ):
            _add(mine, theirs)
        _add(self.layer_spikes, other.layer_spikes)
        _add(self.layer_synops, other.layer_synops)
        for key, value in other.pearson.items():
            self.pearson.setdefault(key, Pearson()).merge(value)


def _add(mine: dict[Any, Any], theirs: dict[Any, Any]) -> None:
    """``mine[key] += theirs[key]`` for every key (missing keys start at 0)."""
    for key, value in theirs.items():
        mine[key] = mine.get(key, 0) + value
