"""Spiking neuron ops: what activations become after conversion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from neurodeploy.ir.op import StatefulOp, as_f32
from neurodeploy.ir.types import TensorType


@dataclass(eq=False, kw_only=True)
class IF(StatefulOp):
    r"""Integrate-and-fire neurons, one per element of the input; no leak.

    The input ``x[t]`` is the current at step t: the weighted spikes of the layer below plus that layer's bias,
    which arrives as a constant current every step. With threshold ``theta`` (a scalar, or one value per channel):

        v[0] = initial * theta
        v[t] = v[t-1] + x[t]
        s[t] = 1 if v[t] >= theta else 0          (comparison ">=")
        reset "subtract":  v[t] = v[t] - theta * s[t]   (keeps the charge above threshold)
        reset "zero":      v[t] = 0 where s[t] = 1

    The output is ``s[t]``, a binary spike; what a spike is worth is carried by the weights of the next layer.
    In float32, with no bit-width limits (backends quantize). ``forward`` is the rate limit as T grows,
    clip(x / theta, 0, 1), which is what the neuron approximates.
    """

    threshold: np.ndarray
    reset: str = "subtract"
    initial: float = 0.5

    RESETS: ClassVar[tuple[str, ...]] = ("subtract", "zero")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.threshold = as_f32(self.threshold)
        self.initial = float(self.initial)

    def verify(self) -> None:
        super().verify()
        if self.reset not in self.RESETS:
            raise ValueError(f"IF '{self.name}': reset must be one of {self.RESETS}, got {self.reset!r}")
        if self.threshold.ndim > 1 or not np.all(self.threshold > 0):
            raise ValueError(f"IF '{self.name}': threshold must be positive, scalar or one per channel")

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        if self.threshold.ndim == 1 and (t.rank < 1 or t.shape[0] != self.threshold.shape[0]):
            raise ValueError(f"IF '{self.name}': {self.threshold.shape[0]} thresholds for input {t}")
        return t

    def _theta(self, rank: int) -> np.ndarray:
        if self.threshold.ndim == 0:
            return self.threshold
        return self.threshold.reshape((1, -1) + (1,) * (rank - 1))

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        return np.clip(x / self._theta(x.ndim - 1), 0.0, 1.0).astype(np.float32)

    def init_state(self, batch: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        theta = self._theta(len(shape))
        v = np.broadcast_to(np.float32(self.initial) * theta, (batch, *shape)).astype(np.float32)
        return {"v": v}

    def step(self, state: dict[str, np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
        v = state["v"]
        theta = self._theta(v.ndim - 1)
        v += xs[0]
        spikes = v >= theta
        if self.reset == "subtract":
            v -= spikes * theta
        else:
            v[spikes] = 0.0
        return spikes.astype(np.float32)
