"""ANN ops: what a trained network is made of before conversion.

Shapes in docstrings are per sample (no batch dimension); ``forward`` works on batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from neurodeploy.ir import kernels
from neurodeploy.ir.op import Bounds, Carried, Downstream, Op, Shape, Shapes, StatefulOp, Wanted, as_f32
from neurodeploy.ir.scales import ScaleValue, channel_vector, compress
from neurodeploy.ir.types import TensorType


def _pair(value: tuple[int, ...], what: str, op: Op, minimum: int) -> None:
    if len(value) != 2 or any(not isinstance(v, int) or v < minimum for v in value):
        raise ValueError(f"{op.op_type} '{op.name}': {what} must be two ints >= {minimum}, got {value}")


def _pads(value: tuple[int, ...], op: Op) -> None:
    if len(value) != 4 or any(not isinstance(v, int) or v < 0 for v in value):
        raise ValueError(
            f"{op.op_type} '{op.name}': padding must be four ints >= 0 (top, left, bottom, right), got {value}"
        )


def _expect_rank(op: Op, t: TensorType, rank: int) -> None:
    if t.rank != rank:
        raise ValueError(f"{op.op_type} '{op.name}' expects a rank-{rank} input per sample, got {t}")


def _weighted_bounds(op: Conv2d | Dense, low: float, high: float) -> Bounds:
    w = op.weight.reshape(op.weight.shape[0], -1)
    pos, neg = np.maximum(w, 0).sum(axis=1), np.minimum(w, 0).sum(axis=1)
    bias = op.bias if op.bias is not None else 0.0
    # Each output is sum_i w_i x_i + b with x_i in [low, high]; zero padding stays inside that range.
    upper = pos * high + neg * low + bias
    lower = pos * low + neg * high + bias
    return float(lower.min()), float(upper.max())


def _absorb_scales(
    op: Conv2d | Dense,
    s_in: ScaleValue,
    shape_in: Shape,
    out_shape: Shape,
    wanted: ScaleValue | None,
    axes: tuple[int, int],
) -> Carried:
    """Rescale a weighted layer from its input's scale to ``wanted`` (its output's target; None: 1). ``axes``:
    the channel axis of the input and of the output."""
    target = np.float32(1.0) if wanted is None else wanted
    where = f"{op.op_type} '{op.name}'"
    t_vec = channel_vector(np.asarray(target, np.float32), out_shape, axes[1], where)  # one per output channel
    op.weight = op.scaled_weight(channel_vector(s_in, shape_in, axes[0], where), t_vec)
    if op.bias is not None:
        op.bias = (op.bias / t_vec).astype(np.float32)  # the bias is a constant current, in output units
    return compress(np.broadcast_to(target, out_shape), out_shape), [None]


@dataclass(eq=False, kw_only=True)
class Conv2d(Op):
    """2-D convolution (cross-correlation). Input (C, H, W) -> (O, OH, OW).

    ``weight`` is (O, C // groups, kH, kW); ``bias`` (O,) or None; ``padding`` is (top, left, bottom, right).
    """

    weight: np.ndarray
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.weight = as_f32(self.weight)
        self.bias = None if self.bias is None else as_f32(self.bias)
        self.stride = cast("tuple[int, int]", tuple(self.stride))
        self.padding = cast("tuple[int, int, int, int]", tuple(self.padding))
        self.dilation = cast("tuple[int, int]", tuple(self.dilation))

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def verify(self) -> None:
        super().verify()
        if self.weight.ndim != 4:
            raise ValueError(f"Conv2d '{self.name}': weight must be 4-D (O, C/groups, kH, kW), got {self.weight.shape}")
        if self.groups < 1 or self.weight.shape[0] % self.groups:
            raise ValueError(
                f"Conv2d '{self.name}': {self.weight.shape[0]} output channels not divisible by groups={self.groups}"
            )
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"Conv2d '{self.name}': bias shape {self.bias.shape} != ({self.weight.shape[0]},)")
        _pair(self.stride, "stride", self, 1)
        _pair(self.dilation, "dilation", self, 1)
        _pads(self.padding, self)

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        _expect_rank(self, t, 3)
        c, h, w = t.shape
        o, cg, kh, kw = self.weight.shape
        if c != cg * self.groups:
            raise ValueError(
                f"Conv2d '{self.name}': input has {c} channels, weight expects {cg} x {self.groups} groups"
            )
        oh = kernels.pool_output_size(h, kh, self.stride[0], self.padding[0], self.padding[2], self.dilation[0], False)
        ow = kernels.pool_output_size(w, kw, self.stride[1], self.padding[1], self.padding[3], self.dilation[1], False)
        if oh < 1 or ow < 1:
            raise ValueError(f"Conv2d '{self.name}': a {kh}x{kw} kernel does not fit the {h}x{w} input")
        return TensorType((o, oh, ow))

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return kernels.conv2d(xs[0], self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def fan_in(self) -> int:
        _, per_group, kh, kw = self.weight.shape
        return int(per_group * kh * kw)

    def interior_fan_out(self) -> int:
        out_ch, _, kh, kw = self.weight.shape
        return int((out_ch // self.groups) * -(-kh // self.stride[0]) * -(-kw // self.stride[1]))

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        """For every nonzero weight, the output windows whose tap lands on the input position."""
        c, h, w = in_shapes[slot]
        o, cg, kh, kw = self.weight.shape
        oh = kernels.pool_output_size(h, kh, self.stride[0], self.padding[0], self.padding[2], self.dilation[0], False)
        ow = kernels.pool_output_size(w, kw, self.stride[1], self.padding[1], self.padding[3], self.dilation[1], False)
        og = o // self.groups
        nonzero = (self.weight != 0).astype(np.int64)  # (O, C/groups, kH, kW)
        # per input channel: how many output channels of its group have a nonzero weight at each tap
        per_channel = nonzero.reshape(self.groups, og, cg, kh, kw).sum(axis=1).reshape(c, kh, kw)
        rows = kernels.kernel_taps(h, oh, kh, self.stride[0], self.padding[0], self.dilation[0]).sum(axis=0)
        cols = kernels.kernel_taps(w, ow, kw, self.stride[1], self.padding[1], self.dilation[1]).sum(axis=0)
        return np.einsum("cij,iy,jx->cyx", per_channel, rows, cols)

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        return _weighted_bounds(self, *in_bounds[0])

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        """Absorbs its input's scale into the weights; produces its output at the wanted scale."""
        return _absorb_scales(self, in_scales[0], in_shapes[0], out_shape, wanted(), (0, 0))

    def scaled_weight(self, s_in: np.ndarray, s_out: np.ndarray) -> np.ndarray:
        """The weights for inputs carried at ``s_in`` and outputs at ``s_out`` (one per channel each)."""
        out_ch, per_group = self.weight.shape[:2]
        group_of_output = np.arange(out_ch) // (out_ch // self.groups)
        s_w = s_in.reshape(self.groups, per_group)[group_of_output]  # (O, C/groups): scale of each weight's input
        return (self.weight * s_w[:, :, None, None] / s_out[:, None, None, None]).astype(np.float32)


@dataclass(eq=False, kw_only=True)
class Dense(Op):
    """Fully connected layer on the last axis: (..., K) -> (..., O), y = x @ weight.T + bias.

    ``weight`` is (O, K), as in torch.nn.Linear.
    """

    weight: np.ndarray
    bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.weight = as_f32(self.weight)
        self.bias = None if self.bias is None else as_f32(self.bias)

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def verify(self) -> None:
        super().verify()
        if self.weight.ndim != 2:
            raise ValueError(f"Dense '{self.name}': weight must be 2-D (O, K), got {self.weight.shape}")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"Dense '{self.name}': bias shape {self.bias.shape} != ({self.weight.shape[0]},)")

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        if t.rank < 1 or t.shape[-1] != self.weight.shape[1]:
            raise ValueError(f"Dense '{self.name}': input {t} does not end in {self.weight.shape[1]} features")
        return TensorType((*t.shape[:-1], self.weight.shape[0]))

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        y = np.matmul(xs[0], self.weight.T)
        if self.bias is not None:
            y = y + self.bias
        return np.ascontiguousarray(y, dtype=np.float32)

    def fan_in(self) -> int:
        return int(self.weight.shape[1])

    def interior_fan_out(self) -> int:
        return int(self.weight.shape[0])

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        """The nonzero weights in each input feature's column."""
        per_feature = (self.weight != 0).sum(axis=0).astype(np.int64)
        return np.broadcast_to(per_feature, in_shapes[slot]).copy()

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        return _weighted_bounds(self, *in_bounds[0])

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        """Absorbs its input's scale into the weights; produces its output at the wanted scale."""
        axes = (len(in_shapes[0]) - 1, len(out_shape) - 1)
        return _absorb_scales(self, in_scales[0], in_shapes[0], out_shape, wanted(), axes)

    def scaled_weight(self, s_in: np.ndarray, s_out: np.ndarray) -> np.ndarray:
        """The weights for inputs carried at ``s_in`` and outputs at ``s_out`` (one per feature each)."""
        return (self.weight * s_in[None, :] / s_out[:, None]).astype(np.float32)


def _channel_view(v: np.ndarray, rank: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast over a batch of rank-``rank`` samples (channel axis first)."""
    return v.reshape((1, -1) + (1,) * (rank - 1))


@dataclass(eq=False, kw_only=True)
class BatchNorm(Op):
    """Inference batch normalization over the channel axis (axis 0 per sample):
    y = (x - mean) / sqrt(var + epsilon) * scale + shift."""

    scale: np.ndarray
    shift: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    epsilon: float = 1e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        self.scale, self.shift = as_f32(self.scale), as_f32(self.shift)
        self.mean, self.var = as_f32(self.mean), as_f32(self.var)
        self.epsilon = float(self.epsilon)

    def verify(self) -> None:
        super().verify()
        shapes = {a.shape for a in (self.scale, self.shift, self.mean, self.var)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"BatchNorm '{self.name}': scale, shift, mean, var must be equal 1-D, got {shapes}")

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """The per-channel affine map (a, b) with y = a * x + b."""
        a = self.scale / np.sqrt(self.var + np.float32(self.epsilon))
        return as_f32(a), as_f32(self.shift - self.mean * a)

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        if t.rank < 1 or t.shape[0] != self.scale.shape[0]:
            raise ValueError(f"BatchNorm '{self.name}': input {t} does not have {self.scale.shape[0]} channels")
        return t

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        rank = x.ndim - 1
        inv = np.float32(1.0) / np.sqrt(_channel_view(self.var, rank) + np.float32(self.epsilon))
        y = (x - _channel_view(self.mean, rank)) * inv * _channel_view(self.scale, rank) + _channel_view(
            self.shift, rank
        )
        return np.ascontiguousarray(y, dtype=np.float32)


@dataclass(eq=False, kw_only=True)
class Relu(Op):
    """y = max(x, 0)."""

    def infer(self, in_types: list[TensorType]) -> TensorType:
        return in_types[0]

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.maximum(xs[0], np.float32(0))

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        return downstream()

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        low, high = in_bounds[0]
        return max(low, 0.0), max(high, 0.0)


@dataclass(eq=False, kw_only=True)
class Clip(Op):
    """y = min(max(x, low), high); a missing bound is None. Clip(0, a) is a clipped ReLU."""

    low: float | None = None
    high: float | None = None

    def verify(self) -> None:
        super().verify()
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"Clip '{self.name}': low {self.low} > high {self.high}")

    def infer(self, in_types: list[TensorType]) -> TensorType:
        return in_types[0]

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        y = xs[0]
        if self.low is not None:
            y = np.maximum(y, np.float32(self.low))
        if self.high is not None:
            y = np.minimum(y, np.float32(self.high))
        return np.asarray(y, dtype=np.float32)

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        return downstream()

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        low, high = in_bounds[0]
        lo = low if self.low is None else min(max(low, self.low), self.high if self.high is not None else np.inf)
        hi = high if self.high is None else max(min(high, self.high), self.low if self.low is not None else -np.inf)
        return lo, hi


SILU_MINIMUM_AT = -1.278464542761074
"""Where SiLU takes its minimum, x*: the root of its derivative σ(x)·(1 + x·(1 - σ(x)))."""
SILU_MINIMUM = -0.2784645427610738
"""SiLU's minimum, x*·σ(x*) = 1 + x* (at the root σ(x*) = 1 + 1/x*)."""


def silu(x: np.ndarray) -> np.ndarray:
    """x·σ(x) = x / (1 + e^-x), elementwise, in the dtype of ``x`` (a float array)."""
    with np.errstate(over="ignore"):  # e^-x overflows for x < -88 in float32: x / inf = -0, SiLU's limit
        return x / (np.asarray(1, x.dtype) + np.exp(-x))


@dataclass(eq=False, kw_only=True)
class SiLU(Op):
    """y = x·σ(x) = x / (1 + e^-x): SiLU, Swish with β = 1 (the ONNX importer makes it of ``Mul(x, Sigmoid(x))``,
    which is how torch exports ``nn.SiLU``). Not monotone: its minimum is -0.2785 at x = -1.2785, and it tends to 0
    as x falls. Integrate-and-fire neurons do not approximate it; few-spike neurons fitted to it do
    (``convert-to-snn{coding=fs}``, :mod:`neurodeploy.conversion.few_spike`)."""

    def infer(self, in_types: list[TensorType]) -> TensorType:
        return in_types[0]

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return silu(np.asarray(xs[0], np.float32))

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        return downstream()

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        """The minimum over the interval (SiLU's own where the interval holds x*), the larger end's value above."""
        low, high = in_bounds[0]
        ends = silu(np.array([low, high], np.float64)).tolist()
        lo = SILU_MINIMUM if low <= SILU_MINIMUM_AT <= high else min(ends)
        return float(lo), float(max(ends))


@dataclass(eq=False, kw_only=True)
class Floor(Op):
    """y = floor(x), elementwise (the rounding inside a quantized activation; see :class:`QCFS`)."""

    def infer(self, in_types: list[TensorType]) -> TensorType:
        return in_types[0]

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.floor(xs[0]).astype(np.float32)

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        """Non-decreasing: the bounds map to bounds."""
        low, high = in_bounds[0]
        lo, hi = self.forward([np.array([low, high], np.float32)]).tolist()
        return lo, hi


@dataclass(eq=False, kw_only=True)
class QCFS(Op):
    r"""Quantization-clip-floor-shift activation (Bu et al., ICLR 2022), a clipped ReLU with ``levels`` steps:

        y = λ · clip( floor(x · L / λ + φ) / L, 0, 1 )        (λ = ``lam``, L = ``levels``, φ = ``shift``)

    so y takes the L + 1 values λ·k/L, k = 0..L. ``lam`` is one scalar for the whole layer (per-channel λ is
    not supported). An IF neuron with threshold λ, reset by subtraction and initial membrane φ·λ reproduces it
    exactly after T = L steps of constant input. ``forward`` evaluates it in the order the reference code does
    (x / λ, · L, + φ, floor, / L, clip, · λ) so it matches an exported model's arithmetic bit for bit.
    """

    lam: float
    levels: int
    shift: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        self.lam, self.shift = float(self.lam), float(self.shift)

    def verify(self) -> None:
        super().verify()
        if not (np.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"QCFS '{self.name}': lam must be a positive finite scalar, got {self.lam}")
        if isinstance(self.levels, bool) or not isinstance(self.levels, (int, np.integer)) or self.levels < 1:
            raise ValueError(f"QCFS '{self.name}': levels must be an int >= 1, got {self.levels!r}")
        if not 0.0 <= self.shift < 1.0:
            raise ValueError(f"QCFS '{self.name}': shift must be in [0, 1), got {self.shift}")

    def infer(self, in_types: list[TensorType]) -> TensorType:
        return in_types[0]

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        lam, levels, shift = np.float32(self.lam), np.float32(self.levels), np.float32(self.shift)
        steps = np.floor(np.asarray(xs[0], np.float32) / lam * levels + shift)
        return (np.clip(steps / levels, np.float32(0), np.float32(1)) * lam).astype(np.float32)

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        """Non-decreasing: the bounds map to bounds."""
        low, high = in_bounds[0]
        lo, hi = self.forward([np.array([low, high], np.float32)]).tolist()
        return lo, hi


@dataclass(eq=False, kw_only=True)
class _Pool2d(Op, abstract=True):
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kernel = cast("tuple[int, int]", tuple(self.kernel))
        self.stride = cast("tuple[int, int]", tuple(self.stride))
        self.padding = cast("tuple[int, int, int, int]", tuple(self.padding))
        self.dilation = cast("tuple[int, int]", tuple(self.dilation))
        self.ceil_mode = bool(self.ceil_mode)

    def verify(self) -> None:
        super().verify()
        _pair(self.kernel, "kernel", self, 1)
        _pair(self.stride, "stride", self, 1)
        _pair(self.dilation, "dilation", self, 1)
        _pads(self.padding, self)

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        _expect_rank(self, t, 3)
        c, h, w = t.shape
        oh = kernels.pool_output_size(
            h, self.kernel[0], self.stride[0], self.padding[0], self.padding[2], self.dilation[0], self.ceil_mode
        )
        ow = kernels.pool_output_size(
            w, self.kernel[1], self.stride[1], self.padding[1], self.padding[3], self.dilation[1], self.ceil_mode
        )
        if oh < 1 or ow < 1:
            raise ValueError(f"{self.op_type} '{self.name}': a {self.kernel} window does not fit the {h}x{w} input")
        return TensorType((c, oh, ow))

    @property
    def is_trivial(self) -> bool:
        """A 1x1 window with stride 1 and no padding: the identity."""
        return self.kernel == (1, 1) and self.stride == (1, 1) and not any(self.padding)

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        """An input cell reaches every window it lies in."""
        in_shape = in_shapes[slot]
        down = downstream()
        h, w = in_shape[1:]
        oh, ow = down.shape[1:]
        up = np.zeros(in_shape, np.int64)
        for ki in range(self.kernel[0]):
            ys = np.arange(oh) * self.stride[0] - self.padding[0] + ki * self.dilation[0]
            keep_y = (ys >= 0) & (ys < h)
            for kj in range(self.kernel[1]):
                xs = np.arange(ow) * self.stride[1] - self.padding[1] + kj * self.dilation[1]
                keep_x = (xs >= 0) & (xs < w)
                where: Any = (slice(None), ys[keep_y][:, None], xs[keep_x][None, :])  # numpy's stub: integer indices
                np.add.at(up, where, down[:, keep_y][:, :, keep_x])
        return up

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        low, high = in_bounds[0]
        return low, high


@dataclass(eq=False, kw_only=True)
class AvgPool2d(_Pool2d):
    """Average pooling over (H, W) windows. The divisor counts input cells in the window, plus explicit padding
    cells when ``count_include_pad``."""

    count_include_pad: bool = False
    passes_target_scale = True

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return kernels.avg_pool2d(
            xs[0], self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode, bool(self.count_include_pad)
        )

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        return compress(in_scales[0], in_shapes[0]), [None]


@dataclass(eq=False, kw_only=True)
class MaxPool2d(_Pool2d):
    """Max pooling over (H, W) windows; padding never wins."""

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return kernels.max_pool2d(xs[0], self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode)


@dataclass(eq=False, kw_only=True)
class SpikeMaxPool2d(_Pool2d, StatefulOp):
    """Max pooling of what its input has sent so far: with C[t] the input summed over steps 1..t, the output at
    step t is maxpool(C[t]) - maxpool(C[t-1]), so the output summed over steps is the max pooling of the input's
    sums. Fed the spikes of IF neurons, each window sends the spikes of its busiest neuron so far, which is the
    max pooling of the rates: exact where max pooling of spikes (or AvgPool in its place) is not. Binary spikes in
    give binary spikes out (each count grows by at most 1 a step, so their max does); signed spikes in
    (:class:`~neurodeploy.ir.neurons.SignedIF`) give signed spikes out. ``forward`` is max pooling."""

    passes_target_scale = True

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return kernels.max_pool2d(xs[0], self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode)

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        """A positive scale, one per layer or channel, commutes with the max within a channel's window."""
        return compress(in_scales[0], in_shapes[0]), [None]

    def init_state(self, batch: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        return {}

    def step(self, state: dict[str, np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        if "sum" not in state:  # the input's shape is known at the first step
            state["sum"] = np.zeros_like(x, np.float32)
            state["max"] = np.zeros_like(self.forward([state["sum"]]))
        state["sum"] += x
        pooled = self.forward([state["sum"]])
        out = pooled - state["max"]
        state["max"] = pooled
        return out.astype(np.float32)


@dataclass(eq=False, kw_only=True)
class Delay(StatefulOp):
    """Its input ``steps`` time steps late: the output at step t is the input of step t - steps (zero before step
    steps + 1). NIR's Delay node with one delay for every element; a synaptic delay on a chip (the synapse that
    reads it arrives that many steps later). ``forward`` is the identity: a delay moves spikes in time, not rates.
    It is not a neuron: it sends what it receives, so nothing counts its output as spikes of its own."""

    steps: int
    passes_target_scale = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.steps, (int, np.integer)) and not isinstance(self.steps, bool):
            self.steps = int(self.steps)

    def verify(self) -> None:
        super().verify()
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_DELAY_STEPS:
            raise ValueError(
                f"Delay '{self.name}': steps must be a whole number 1..{MAX_DELAY_STEPS}, got {self.steps!r}"
            )

    def infer(self, in_types: list[TensorType]) -> TensorType:
        return in_types[0]

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return xs[0]

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        return downstream().reshape(in_shapes[slot])

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        low, high = in_bounds[0]
        return min(low, 0.0), max(high, 0.0)

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        return compress(in_scales[0], in_shapes[0]), [None]

    def init_state(self, batch: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        return {"queue": np.zeros((self.steps, batch, *shape), np.float32), "head": np.zeros((), np.int64)}

    def step(self, state: dict[str, np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
        queue, head = state["queue"], int(state["head"])
        out = queue[head].copy()  # what arrived `steps` steps ago
        queue[head] = xs[0]
        state["head"] = np.asarray((head + 1) % self.steps, np.int64)
        return out

    @property
    def emits_spikes(self) -> bool:
        return False


MAX_DELAY_STEPS = 1 << 16
"""The longest Delay an op holds (its state is that many copies of its input)."""


@dataclass(eq=False, kw_only=True)
class GlobalAvgPool(Op):
    """Mean over every axis after the channel axis: (C, ...) -> (C, 1, ..., 1)."""

    passes_target_scale = True

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        if t.rank < 2:
            raise ValueError(f"GlobalAvgPool '{self.name}' needs a (C, spatial...) input, got {t}")
        return TensorType((t.shape[0],) + (1,) * (t.rank - 1))

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        return np.asarray(np.mean(x, axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float32))

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        return np.broadcast_to(downstream(), in_shapes[slot]).copy()

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        low, high = in_bounds[0]
        return low, high

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        return compress(in_scales[0], in_shapes[0]), [None]


@dataclass(eq=False, kw_only=True)
class Reshape(Op):
    """Reshape each sample, in C order, to ``shape`` (fully static). A rank-1 ``shape`` is a flatten."""

    shape: tuple[int, ...]
    passes_target_scale = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.shape = tuple(int(d) for d in self.shape)

    def verify(self) -> None:
        super().verify()
        if not self.shape or any(d < 1 for d in self.shape):
            raise ValueError(f"Reshape '{self.name}': target shape must be positive ints, got {self.shape}")

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        out = TensorType(self.shape)
        if out.size != t.size:
            raise ValueError(f"Reshape '{self.name}': cannot reshape {t} ({t.size} values) to {out}")
        return out

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return xs[0].reshape((xs[0].shape[0], *self.shape))

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        return downstream().reshape(in_shapes[slot])

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        low, high = in_bounds[0]
        return low, high

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        return compress(np.broadcast_to(in_scales[0], in_shapes[0]).reshape(out_shape), out_shape), [None]


@dataclass(eq=False, kw_only=True)
class Add(Op):
    """Elementwise sum of two or more runtime values of equal rank, numpy broadcasting per sample."""

    num_inputs = None
    passes_target_scale = True

    def infer(self, in_types: list[TensorType]) -> TensorType:
        ranks = {t.rank for t in in_types}
        if len(ranks) != 1:
            raise ValueError(f"Add '{self.name}': inputs {[str(t) for t in in_types]} differ in rank")
        try:
            shape = np.broadcast_shapes(*(t.shape for t in in_types))
        except ValueError:
            raise ValueError(f"Add '{self.name}': shapes {[str(t) for t in in_types]} do not broadcast") from None
        return TensorType(tuple(int(d) for d in shape))

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return np.asarray(y, dtype=np.float32)

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        """Summed over the axes the input was broadcast along."""
        down, shape = downstream(), in_shapes[slot]
        axes = tuple(i for i, (a, b) in enumerate(zip(shape, down.shape)) if a == 1 and b != 1)
        return down.sum(axis=axes, keepdims=True) if axes else down

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        return sum(i[0] for i in in_bounds), sum(i[1] for i in in_bounds)

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        """Brings its branches to one scale: the wanted one, or (unconstrained) the first branch's, so that at
        most the other branches need a Scale."""
        scale = wanted()
        target = compress(scale if scale is not None else in_scales[0], out_shape)
        factors: list[ScaleValue | None] = []
        for s in in_scales:
            same = np.allclose(np.broadcast_to(s, out_shape), np.broadcast_to(target, out_shape), rtol=1e-6)
            factors.append(None if same else s / target)
        return target, factors


@dataclass(eq=False, kw_only=True)
class Bias(Op):
    """Add a constant: y = x + value, ``value`` broadcast against each sample without growing it."""

    value: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        self.value = as_f32(self.value)

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        if self.value.ndim > t.rank or np.broadcast_shapes(self.value.shape, t.shape) != t.shape:
            raise ValueError(f"Bias '{self.name}': constant of shape {self.value.shape} does not broadcast to {t}")
        return t

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.asarray(xs[0] + self.value, dtype=np.float32)

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        return downstream()

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        low, high = in_bounds[0]
        return low + float(self.value.min()), high + float(self.value.max())

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        """The constant is divided by its input's scale, which passes through."""
        self.value = np.asarray(self.value / in_scales[0], np.float32)
        return in_scales[0], [None]


@dataclass(eq=False, kw_only=True)
class Scale(Op):
    """Multiply by a constant: y = x * value, ``value`` broadcast against each sample without growing it.
    Conversion inserts it where two branches meeting at an Add carry different scales."""

    value: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        self.value = as_f32(self.value)

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        if self.value.ndim > t.rank or np.broadcast_shapes(self.value.shape, t.shape) != t.shape:
            raise ValueError(f"Scale '{self.name}': constant of shape {self.value.shape} does not broadcast to {t}")
        return t

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.asarray(xs[0] * self.value, dtype=np.float32)

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        return downstream()

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        low, high = in_bounds[0]
        candidates = [
            low * float(self.value.min()),
            low * float(self.value.max()),
            high * float(self.value.min()),
            high * float(self.value.max()),
        ]
        return min(candidates), max(candidates)

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        return in_scales[0], [None]


@dataclass(eq=False, kw_only=True)
class Concat(Op):
    """Concatenation along ``axis`` of each sample (0 is the channel axis)."""

    axis: int
    num_inputs = None
    passes_target_scale = True

    def infer(self, in_types: list[TensorType]) -> TensorType:
        first = in_types[0]
        if not 0 <= self.axis < first.rank:
            raise ValueError(f"Concat '{self.name}': axis {self.axis} out of range for {first}")
        for t in in_types[1:]:
            if t.rank != first.rank or any(
                a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != self.axis
            ):
                raise ValueError(f"Concat '{self.name}': {t} and {first} differ outside axis {self.axis}")
        shape = list(first.shape)
        shape[self.axis] = sum(t.shape[self.axis] for t in in_types)
        return TensorType(tuple(shape))

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs, axis=self.axis + 1)

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        """The input's slice of the output's map."""
        shape = in_shapes[slot]
        start = sum(s[self.axis] for s in in_shapes[:slot])
        index = [slice(None)] * len(shape)
        index[self.axis] = slice(start, start + shape[self.axis])
        return downstream()[tuple(index)]

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        return min(i[0] for i in in_bounds), max(i[1] for i in in_bounds)

    def carry_scales(self, in_scales: list[ScaleValue], in_shapes: Shapes, out_shape: Shape, wanted: Wanted) -> Carried:
        """Keeps each branch's scale (per channel when they differ)."""
        parts = [np.broadcast_to(s, shp) for s, shp in zip(in_scales, in_shapes)]
        return compress(np.concatenate(parts, axis=self.axis), out_shape), [None]


@dataclass(eq=False, kw_only=True)
class Softmax(Op):
    """Softmax along ``axis`` of each sample. With ``coerce_2d`` (ONNX opset < 13) the sample is flattened from
    ``axis`` on and the softmax is taken over that whole block."""

    axis: int
    coerce_2d: bool = False

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        if not 0 <= self.axis < t.rank:
            raise ValueError(f"Softmax '{self.name}': axis {self.axis} out of range for {t}")
        return t

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        if self.coerce_2d:
            lead = x.shape[: self.axis + 1]
            flat = x.reshape((*lead, -1))
            return self._softmax(flat, -1).reshape(x.shape)
        return self._softmax(x, self.axis + 1)

    @staticmethod
    def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return np.asarray(e / e.sum(axis=axis, keepdims=True), dtype=np.float32)


def softmax_readout(index: Any, value: str, outputs: set[str] | list[str]) -> list[str] | None:
    """The values from a Softmax output ``value`` to a model output, when nothing but a chain of Reshapes (one
    reader each: what a version converter or exporter puts after a Softmax on a 4-D tensor) follows it: the
    value itself when it is a model output read by nothing; None otherwise. ``index`` answers ``consumers``."""
    chain = [value]
    while True:
        readers = index.consumers(chain[-1])
        if not readers:
            return chain if chain[-1] in outputs else None
        if len(readers) != 1 or not isinstance(readers[0], Reshape) or chain[-1] in outputs:
            return None
        chain.append(readers[0].output)


@dataclass(eq=False, kw_only=True)
class Threshold(Op):
    """A spike where the input crosses ``threshold`` (a scalar, or an array that broadcasts to each sample):
    y = 1 if x > threshold else 0 (``strict``), or x >= threshold. No state: NIR's Threshold node."""

    threshold: np.ndarray
    strict: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.threshold = as_f32(self.threshold)
        self.strict = bool(self.strict)

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        if self.threshold.ndim > t.rank or np.broadcast_shapes(self.threshold.shape, t.shape) != t.shape:
            raise ValueError(f"Threshold '{self.name}': threshold of shape {self.threshold.shape} does not fit {t}")
        return t

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        return (x > self.threshold if self.strict else x >= self.threshold).astype(np.float32)

    def fan_out_map(self, slot: int, in_shapes: Shapes, downstream: Downstream) -> np.ndarray:
        return downstream()

    def bounds(self, in_bounds: list[Bounds]) -> Bounds:
        return 0.0, 1.0
