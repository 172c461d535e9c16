"""Value types of the IR.

Shapes never include the batch dimension: a value of type ``TensorType((16, 14, 14))`` holds ``(batch, 16, 14,
14)`` arrays at run time. Every model input and every op works on batches of independent samples, which is what
both a neuromorphic chip and the emulators assume.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorType:
    """A float32 tensor of a static per-sample shape."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if any((not isinstance(d, int)) or d <= 0 for d in self.shape):
            raise ValueError(f"TensorType shape must hold positive ints, got {self.shape}")

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        short = {"float32": "f32"}.get(self.dtype, self.dtype)
        return f"{short}[{','.join(str(d) for d in self.shape)}]"
