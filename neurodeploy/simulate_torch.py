"""The torch engine of the float simulation (``--emulator torch``): :func:`neurodeploy.simulate.simulate`'s loop,
computing with torch tensors, batch first and float32, on a CPU or a CUDA device.

Every op and neuron of the IR has a torch form here (:data:`FORWARD`, :data:`STEP`), written as its numpy
``forward``/``step`` computes: the same float32 operations in the same order where the order is the op's own
(elementwise arithmetic, pooling tap by tap, the sums of an Add), so the two engines agree value for value
wherever a sum does not depend on the order it is taken in (convolutions and matrix products sum in the library's
order; exp differs by rounding). The input encodings' spikes are the numpy ones, moved to the device; the
neurons' initial states are the numpy ones too. On CUDA, TF32 is turned off while a simulation runs: float32
is computed as float32. Torch is imported when the engine is made, never when neurodeploy is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neurodeploy.encoding import Encoding, Stimulus
from neurodeploy.errors import DataError
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.kernels import avg_pool_divisors, pool_geometry
from neurodeploy.ir.neurons import IF, LIF, FewSpike, SignedIF, WindowIF
from neurodeploy.ir.op import Op, StatefulOp
from neurodeploy.ir.ops import (
    QCFS,
    Add,
    AvgPool2d,
    BatchNorm,
    Bias,
    Clip,
    Concat,
    Conv2d,
    Delay,
    Dense,
    Floor,
    GlobalAvgPool,
    MaxPool2d,
    Relu,
    Reshape,
    Scale,
    SiLU,
    Softmax,
    SpikeMaxPool2d,
    Threshold,
)
from neurodeploy.simulate import Arrays, Simulation, simulate
from neurodeploy.torch_support import exact_floats, import_torch, resolve_device

Tensor = Any
"""A torch.Tensor (torch is imported lazily, so not named in annotations)."""


class TorchArrays(Arrays):
    """The simulation's arrays as torch tensors on ``device`` (a torch device string or ``torch.device``; None:
    cuda when torch sees one, else cpu). Op constants are moved to the device once per op and kept."""

    name = "torch"

    def __init__(self, device: Any = None) -> None:
        self.torch = import_torch()
        self.device = device if isinstance(device, self.torch.device) else resolve_device(device)
        self.functional = self.torch.nn.functional
        self._constants: dict[tuple[int, str], tuple[object, Tensor]] = {}
        self._dtypes: dict[type, Any] = {np.float32: self.torch.float32, np.float64: self.torch.float64}

    def check(self, graph: Graph) -> None:
        missing = [op for op in graph.ops if type(op) not in (STEP if op.is_stateful else FORWARD)]
        if missing:
            names = ", ".join(f"{op.op_type} '{op.name}'" for op in missing)
            raise DataError(f"the torch emulator engine has no form of {names}; run it with --emulator numpy")

    def constant(self, owner: object, key: str, value: Any) -> Tensor:
        """``value`` (a numpy array or scalar, made float32 unless it is an array already) on the device, made
        once per ``owner`` and ``key``."""
        found = self._constants.get((id(owner), key))
        if found is None:  # the owner is kept with its constant, so its id is not reused while the engine lives
            array = value if isinstance(value, np.ndarray) else np.float32(value)
            found = self._constants[(id(owner), key)] = (owner, self.asarray(np.asarray(array)))
        return found[1]

    def asarray(self, x: np.ndarray) -> Tensor:
        return self.torch.tensor(np.ascontiguousarray(x), device=self.device)

    def host(self, a: Any) -> np.ndarray:
        if isinstance(a, self.torch.Tensor):
            return a.detach().cpu().numpy()
        return np.asarray(a)

    def zeros(self, shape: tuple[int, ...], dtype: type) -> Tensor:
        return self.torch.zeros(shape, dtype=self._dtypes[dtype], device=self.device)

    def copy(self, a: Tensor) -> Tensor:
        return a.clone()

    def forward(self, op: Op, xs: list[Tensor]) -> Tensor:
        return FORWARD[type(op)](self, op, xs)

    def init_state(self, op: StatefulOp, batch: int, shape: tuple[int, ...]) -> dict[str, Any]:
        """The numpy initial state on the device; its step counters (0-d integers) as Python ints."""
        state = op.init_state(batch, shape)
        return {k: int(v) if v.ndim == 0 and v.dtype.kind in "iu" else self.asarray(v) for k, v in state.items()}

    def step(self, op: StatefulOp, state: dict[str, Any], xs: list[Tensor]) -> Tensor:
        return STEP[type(op)](self, op, state, xs[0])

    def events(self, stimulus: Stimulus, x_t: Tensor) -> Tensor:
        return (x_t != 0).to(self.torch.float32)

    def totals(self, counts: Tensor) -> Tensor:
        return counts.reshape(counts.shape[0], -1).sum(dim=1, dtype=self.torch.float64)

    def weighted(self, counts: Tensor, fan_out: np.ndarray) -> Tensor:
        weights = self.constant(fan_out, "fan_out", fan_out.reshape(-1).astype(np.float64))
        return counts.reshape(counts.shape[0], -1).to(self.torch.float64) @ weights

    def mean(self, total: Tensor, before: Tensor, steps: int) -> Tensor:
        divisor = self.constant(self, f"steps{steps}", np.asarray(steps, np.float64))
        return ((total - before) / divisor).to(self.torch.float32)


def simulate_torch(
    graph: Graph,
    inputs: dict[str, np.ndarray],
    steps: int,
    checkpoints: tuple[int, ...] = (),
    encoding: Encoding | None = None,
    fan_out: dict[str, np.ndarray] | None = None,
    delayed_readout: int = 0,
    arrays: TorchArrays | None = None,
) -> Simulation:
    """:func:`neurodeploy.simulate.simulate` on the torch engine ``arrays`` (default: a new one on the default
    device); the result holds numpy arrays."""
    arrays = arrays if arrays is not None else TorchArrays()
    with exact_floats():
        return simulate(
            graph,
            inputs,
            steps,
            checkpoints,
            encoding,
            fan_out,
            delayed_readout=delayed_readout,
            arrays=arrays,
        )


# -- the ops, as their numpy forward computes them -----------------------------------------------------------------
def _channels(threshold: np.ndarray, rank: int) -> np.ndarray:
    """A scalar as it is, one value per channel shaped to broadcast against a (batch, C, ...) value."""
    return threshold if threshold.ndim == 0 else threshold.reshape((1, -1) + (1,) * (rank - 1))


def _pad(a: TorchArrays, x: Tensor, pads: tuple[int, ...], extra: tuple[int, int] = (0, 0), value: float = 0.0):
    top, left, bottom, right = pads
    if not any(pads) and not any(extra):
        return x
    return a.functional.pad(x, (left, right + extra[1], top, bottom + extra[0]), value=value)


def _window_reduce(xp: Tensor, op: Any, out_hw: tuple[int, int], reduce: Callable) -> Tensor:
    """Every window of an already padded input reduced tap by tap, in the order numpy's kernel takes."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, op.stride, op.dilation
    acc = None
    for ky in range(op.kernel[0]):
        for kx in range(op.kernel[1]):
            tap = xp[:, :, ky * dh : ky * dh + (oh - 1) * sh + 1 : sh, kx * dw : kx * dw + (ow - 1) * sw + 1 : sw]
            acc = tap.clone() if acc is None else reduce(acc, tap)
    return acc


def _geometry(op: Any, x: Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
    return pool_geometry((x.shape[2], x.shape[3]), op.kernel, op.stride, op.padding, op.dilation, op.ceil_mode)


def _avg_pool(a: TorchArrays, op: AvgPool2d, xs: list[Tensor]) -> Tensor:
    x = xs[0]
    out_hw, extra = _geometry(op, x)
    sums = _window_reduce(_pad(a, x, op.padding, extra), op, out_hw, a.torch.add)
    hw = (x.shape[2], x.shape[3])
    divisors = avg_pool_divisors(hw, op.kernel, op.stride, op.padding, op.dilation, op.ceil_mode, op.count_include_pad)
    return sums / a.constant(op, f"divisors{hw}", divisors)


def _max_pool(a: TorchArrays, op: MaxPool2d | SpikeMaxPool2d, xs: list[Tensor]) -> Tensor:
    x = xs[0]
    out_hw, extra = _geometry(op, x)
    lowest = float(np.finfo(np.float32).min)
    return _window_reduce(_pad(a, x, op.padding, extra, lowest), op, out_hw, a.torch.maximum)


def _conv(a: TorchArrays, op: Conv2d, xs: list[Tensor]) -> Tensor:
    x = _pad(a, xs[0], op.padding)
    y = a.functional.conv2d(x, a.constant(op, "weight", op.weight), None, op.stride, 0, op.dilation, op.groups)
    return y if op.bias is None else y + a.constant(op, "bias", op.bias.reshape(1, -1, 1, 1))


def _dense(a: TorchArrays, op: Dense, xs: list[Tensor]) -> Tensor:
    y = a.torch.matmul(xs[0], a.constant(op, "weight_t", np.ascontiguousarray(op.weight.T)))
    return y if op.bias is None else y + a.constant(op, "bias", op.bias)


def _batch_norm(a: TorchArrays, op: BatchNorm, xs: list[Tensor]) -> Tensor:
    rank = xs[0].ndim - 1
    var, mean, scale, shift = (_channels(v, rank) for v in (op.var, op.mean, op.scale, op.shift))
    inv = np.float32(1.0) / np.sqrt(var + np.float32(op.epsilon))  # the constant numpy's forward computes
    c = {
        k: a.constant(op, f"{k}{rank}", v)
        for k, v in {"mean": mean, "inv": inv, "scale": scale, "shift": shift}.items()
    }
    return (xs[0] - c["mean"]) * c["inv"] * c["scale"] + c["shift"]


def _clip(a: TorchArrays, op: Clip, xs: list[Tensor]) -> Tensor:
    y = xs[0]
    if op.low is not None:
        y = a.torch.maximum(y, a.constant(op, "low", op.low))
    if op.high is not None:
        y = a.torch.minimum(y, a.constant(op, "high", op.high))
    return y


def _qcfs(a: TorchArrays, op: QCFS, xs: list[Tensor]) -> Tensor:
    lam, levels, shift = (a.constant(op, k, v) for k, v in (("lam", op.lam), ("L", op.levels), ("shift", op.shift)))
    counts = a.torch.floor(xs[0] / lam * levels + shift)
    return a.torch.clamp(counts / levels, 0.0, 1.0) * lam


def _global_avg_pool(a: TorchArrays, op: GlobalAvgPool, xs: list[Tensor]) -> Tensor:
    x = xs[0]
    dims = tuple(range(2, x.ndim))
    count = int(np.prod(x.shape[2:]))
    return x.sum(dim=dims, keepdim=True) / a.constant(op, f"count{count}", count)


def _add(a: TorchArrays, op: Add, xs: list[Tensor]) -> Tensor:
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y


def _softmax(a: TorchArrays, op: Softmax, xs: list[Tensor]) -> Tensor:
    x = xs[0]
    flat = x.reshape((*x.shape[: op.axis + 1], -1)) if op.coerce_2d else x
    axis = -1 if op.coerce_2d else op.axis + 1
    e = a.torch.exp(flat - flat.amax(dim=axis, keepdim=True))
    return (e / e.sum(dim=axis, keepdim=True)).reshape(x.shape)


def _threshold(a: TorchArrays, op: Threshold, xs: list[Tensor]) -> Tensor:
    theta = a.constant(op, "threshold", op.threshold)
    return (xs[0] > theta if op.strict else xs[0] >= theta).to(a.torch.float32)


FORWARD: dict[type[Op], Callable[[TorchArrays, Any, list[Tensor]], Tensor]] = {
    Conv2d: _conv,
    Dense: _dense,
    BatchNorm: _batch_norm,
    Relu: lambda a, op, xs: a.torch.clamp_min(xs[0], 0.0),
    Clip: _clip,
    Floor: lambda a, op, xs: a.torch.floor(xs[0]),
    QCFS: _qcfs,
    AvgPool2d: _avg_pool,
    MaxPool2d: _max_pool,
    GlobalAvgPool: _global_avg_pool,
    Reshape: lambda a, op, xs: xs[0].reshape((xs[0].shape[0], *op.shape)),
    Add: _add,
    Bias: lambda a, op, xs: xs[0] + a.constant(op, "value", op.value),
    Scale: lambda a, op, xs: xs[0] * a.constant(op, "value", op.value),
    Concat: lambda a, op, xs: a.torch.cat(xs, dim=op.axis + 1),
    SiLU: lambda a, op, xs: xs[0] / (1.0 + a.torch.exp(-xs[0])),
    Softmax: _softmax,
    Threshold: _threshold,
}
"""The torch form of every stateless op, by op class."""


# -- the neurons, as their numpy step computes them ----------------------------------------------------------------
def _theta(a: TorchArrays, op: Any, v: Tensor) -> Tensor:
    return a.constant(op, f"theta{v.ndim}", _channels(op.threshold, v.ndim - 1))


def _if_step(a: TorchArrays, op: IF, state: dict[str, Any], x: Tensor) -> Tensor:
    v = state["v"]
    theta = _theta(a, op, v)
    v += x
    spikes = (v >= theta).to(a.torch.float32)
    if op.reset == "subtract":
        v.addcmul_(spikes, theta, value=-1.0)  # v - theta where it fired: exact products, as numpy's v -= s * theta
    else:
        v.mul_(1.0 - spikes)
    return spikes


def _window_if_step(a: TorchArrays, op: WindowIF, state: dict[str, Any], x: Tensor) -> Tensor:
    v, pending = state["v"], state["pending"]
    state["t"] = t = state["t"] + 1
    spikes = pending > 0
    pending -= spikes.to(a.torch.float32)
    v += x
    if t % int(op.levels) == 0:
        if t - int(op.levels) >= op.start:
            counts = a.torch.floor(v / _theta(a, op, v) + a.constant(op, "shift", op.shift))
            pending.copy_(a.torch.clamp(counts, 0, int(op.levels)))
        v.zero_()
    return spikes.to(a.torch.float32)


def _few_spike_step(a: TorchArrays, op: FewSpike, state: dict[str, Any], x: Tensor) -> Tensor:
    total, level = state["sum"], state["a"]
    j, k = state["t"] % op.steps, op.steps
    live = op.live(int(state["t"]))
    state["t"] += 1
    if live:
        theta = _channels(op.threshold, level.ndim - 1)
        fire = a.constant(op, f"fire{j}/{level.ndim}", op.thresholds[j] * theta)
        z = level >= fire
        level -= z * a.constant(op, f"reset{j}/{level.ndim}", op.resets[j] * theta)
        out = z * a.constant(op, f"value{j}", np.float32(k * op.spike_values[j]))
    else:
        out = a.torch.zeros_like(level)
    total += x
    if j == k - 1:
        if state["t"] - k >= op.start:
            level.copy_(total / a.constant(op, "K", k))
        else:
            level.zero_()
        total.zero_()
    return out.to(a.torch.float32)


def _signed_if_step(a: TorchArrays, op: SignedIF, state: dict[str, Any], x: Tensor) -> Tensor:
    v, count = state["v"], state["count"]
    theta = _theta(a, op, v)
    v += x
    f32 = a.torch.float32
    spikes = (v >= theta).to(f32) - ((v < 0) & (count > 0)).to(f32)
    v -= spikes * theta
    count += spikes
    return spikes


def _lif_params(a: TorchArrays, op: LIF) -> dict[str, Tensor | None]:
    names = ("decay", "gain", "drive", "threshold", "syn_decay", "syn_gain", "v_reset")
    return {n: None if getattr(op, n) is None else a.constant(op, n, getattr(op, n)) for n in names}


def _lif_step(a: TorchArrays, op: LIF, state: dict[str, Any], x: Tensor) -> Tensor:
    p = _lif_params(a, op)
    v, current = state["v"], x
    if p["syn_decay"] is not None:
        i = state["i"]
        i *= p["syn_decay"]
        i += current * p["syn_gain"]
        current = i
    v *= p["decay"]
    v += current * p["gain"] + p["drive"]
    theta = p["threshold"]
    if theta is None:
        return v.clone()
    if op.reset == "subtract-next":
        v -= state["sent"] * theta
    if op.multi:
        counts = a.torch.clamp_min(a.torch.floor(v / theta), 0.0)
        v -= counts * theta
        return counts
    spikes = v > theta if op.strict else v >= theta
    if op.reset == "subtract":
        v -= spikes * theta
    elif op.reset == "subtract-next":
        state["sent"].copy_(spikes)
    else:
        reset = p["v_reset"] if p["v_reset"] is not None else a.constant(op, "zero", 0.0)
        v.copy_(a.torch.where(spikes, reset, v))
    return spikes.to(a.torch.float32)


def _spike_max_pool_step(a: TorchArrays, op: SpikeMaxPool2d, state: dict[str, Any], x: Tensor) -> Tensor:
    if "sum" not in state:
        state["sum"] = a.torch.zeros_like(x)
        state["max"] = a.torch.zeros_like(_max_pool(a, op, [state["sum"]]))
    state["sum"] += x
    pooled = _max_pool(a, op, [state["sum"]])
    out = pooled - state["max"]
    state["max"] = pooled
    return out


def _delay_step(a: TorchArrays, op: Delay, state: dict[str, Any], x: Tensor) -> Tensor:
    queue, head = state["queue"], state["head"]
    out = queue[head].clone()  # what arrived `steps` steps ago
    queue[head] = x
    state["head"] = (head + 1) % op.steps
    return out


STEP: dict[type[Op], Callable[[TorchArrays, Any, dict[str, Any], Tensor], Tensor]] = {
    IF: _if_step,
    WindowIF: _window_if_step,
    FewSpike: _few_spike_step,
    SignedIF: _signed_if_step,
    LIF: _lif_step,
    SpikeMaxPool2d: _spike_max_pool_step,
    Delay: _delay_step,
}
"""The torch form of every stateful op's step, by op class."""
