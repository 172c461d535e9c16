"""Spiking neuron ops: what activations become after conversion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from neurodeploy.ir.op import Op, StatefulOp, as_f32
from neurodeploy.ir.types import TensorType


def _broadcast(threshold: np.ndarray, rank: int) -> np.ndarray:
    """A scalar threshold as it is, one per channel shaped to broadcast against a (batch, C, ...) value."""
    if threshold.ndim == 0:
        return threshold
    return threshold.reshape((1, -1) + (1,) * (rank - 1))


def _check_threshold(op: StatefulOp, threshold: np.ndarray, in_types: list[TensorType]) -> TensorType:
    (t,) = in_types
    if threshold.ndim == 1 and (t.rank < 1 or t.shape[0] != threshold.shape[0]):
        raise ValueError(f"{op.op_type} '{op.name}': {threshold.shape[0]} thresholds for input {t}")
    return t


def _window_state(batch: int, shape: tuple[int, ...], *names: str) -> dict[str, np.ndarray]:
    """Zeroed per-neuron arrays ``names`` and the step counter ``t`` of a neuron that works in windows."""
    state = {name: np.zeros((batch, *shape), np.float32) for name in names}
    state["t"] = np.zeros((), np.int64)
    return state


def _verify_windowed(op: StatefulOp, threshold: np.ndarray, start: int) -> None:
    if threshold.ndim > 1 or not np.all(threshold > 0):
        raise ValueError(f"{op.op_type} '{op.name}': threshold must be positive, scalar or one per channel")
    if start < 0:
        raise ValueError(f"{op.op_type} '{op.name}': start must be >= 0, got {start}")


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
        return _check_threshold(self, self.threshold, in_types)

    def _theta(self, rank: int) -> np.ndarray:
        return _broadcast(self.threshold, rank)

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


@dataclass(eq=False, kw_only=True)
class WindowIF(StatefulOp):
    r"""Integrate-and-fire neurons gated to windows of L steps (L = ``levels``): the spiking form of a QCFS
    activation with L levels that is exact at every T that is a whole number of windows.

    Window k holds steps kL + 1 ... (k + 1)L. Within a window the neuron integrates without firing; at the
    window's last step it turns its charge into a spike count and starts the next window empty; during the next
    window it sends that many spikes, one per step from the window's first step:

        v[t] = v[t-1] + x[t]                              (v = 0 when a window starts)
        at t = (k + 1)L:  n = clip(floor(v / theta + shift), 0, L),  v = 0
        s[t] = 1 for the first n steps of window k + 1, else 0

    Fed the window sums of a constant current x (direct input, or a layer of these neurons below it), n is
    QCFS's level count clip(floor(x·L/θ + φ), 0, L) exactly (up to float32 rounding of the sum), so each layer
    computes its QCFS activation, one window after the layer below it: the output settles after one window per
    layer on the longest path (:meth:`ready`), and from then on every window repeats it. There is no residual
    charge carried between windows, and windows that begin before step ``start`` (when the input has not
    settled) send nothing, so the pipeline's fill costs no spikes.

    ``forward`` is the same quantized function of a constant per-step current: clip(floor(L·x/θ + φ), 0, L) / L.
    """

    threshold: np.ndarray
    levels: int
    shift: float = 0.5
    start: int = 0
    """The step after which the input has settled (convert-to-snn sets it: one window per layer below): windows
    that begin earlier hold no result worth sending, so the neuron sends nothing for them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.threshold = as_f32(self.threshold)
        self.shift = float(self.shift)
        self.start = int(self.start)

    def verify(self) -> None:
        super().verify()
        if isinstance(self.levels, bool) or not isinstance(self.levels, (int, np.integer)) or self.levels < 1:
            raise ValueError(f"WindowIF '{self.name}': levels must be an int >= 1, got {self.levels!r}")
        if not 0.0 <= self.shift < 1.0:
            raise ValueError(f"WindowIF '{self.name}': shift must be in [0, 1), got {self.shift}")
        _verify_windowed(self, self.threshold, self.start)

    def infer(self, in_types: list[TensorType]) -> TensorType:
        return _check_threshold(self, self.threshold, in_types)

    def ready(self, start: int) -> int:
        """Inputs settled after step ``start``: the first whole window after it is integrated, and its count is
        sent in the window after that."""
        levels = int(self.levels)
        return (-(-start // levels) + 1) * levels

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        levels = np.float32(self.levels)
        counts = np.floor(x * levels / _broadcast(self.threshold, x.ndim - 1) + np.float32(self.shift))
        return (np.clip(counts, 0, levels) / levels).astype(np.float32)

    def init_state(self, batch: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        return _window_state(batch, shape, "v", "pending")

    def step(self, state: dict[str, np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
        v, pending, t = state["v"], state["pending"], state["t"]
        t += 1
        spikes = pending > 0
        pending -= spikes
        v += xs[0]
        if int(t) % int(self.levels) == 0:
            if int(t) - int(self.levels) >= self.start:
                theta = _broadcast(self.threshold, v.ndim - 1)
                pending[...] = np.clip(np.floor(v / theta + np.float32(self.shift)), 0, self.levels)
            v[...] = 0
        return spikes.astype(np.float32)


def fs_digits(levels: int, steps: int) -> tuple[int, ...]:
    """The spike values, in steps of the activation's 1/L, of a few-spike neuron that sends any level 0..L in
    ``steps`` steps: digits c_1 >= ... >= c_K >= 1 that sum to L, each at most one more than the digits after it,
    so that sending greedily (a digit's spike whenever what is left reaches it) writes every level exactly. The
    largest digits first: L = 2^K - 1 gives the binary digits 2^(K-1) ... 1, and K = L the unary code. Needs
    ceil(log2(L + 1)) <= K <= L; a ValueError says so otherwise."""
    if not (1 <= steps <= levels < 2**steps):
        raise ValueError(
            f"{levels} levels take {max(1, (levels).bit_length())} to {levels} few-spike steps, not {steps}"
        )
    digits, left = [], levels
    for j in range(1, steps + 1):
        digit = min((left + 1) // 2, left - (steps - j))
        digits.append(digit)
        left -= digit
    return tuple(digits)


@dataclass(eq=False, kw_only=True)
class FewSpike(StatefulOp):
    r"""Few-spike (FS) neurons (Stöckl & Maass, Nature Machine Intelligence 2021): K = ``len(spike_values)`` steps
    per layer, graded spikes, pipelined layer by layer in windows of K steps like :class:`WindowIF`.

    During window k the neuron integrates its input, a = (the window's sum) / K, the mean current. During window
    k + 1 it runs the FS recursion on a, with time-varying thresholds T_j, reset amounts h_j and spike values d_j
    (in units of θ; j = 1 ... K):

        z_j = 1 if a >= T_j·θ else 0,     a = a - h_j·θ·z_j,     output at step j: K·d_j·z_j

    so the window's mean output is Σ_j d_j·z_j, the FS approximation of the activation (in units of what a
    spike of an IF neuron is worth, λ). The codes the conversion uses for a ReLU or a QCFS (:func:`fs_digits`) are
    exact quantizers: h_j = d_j = c_j / L and T_j = (c_j - φ) / L send clip(floor(a·L/θ + φ), 0, L) / L, a QCFS
    staircase with L levels (a ReLU is given L = 2^K - 1 and φ = 1/2: K-bit rounding of clip(a, 0, θ)); the neuron
    sends at most K spikes a window, one per set digit. The outputs are graded (K·d_j), which a target needs
    graded spikes for.

    A code fitted to another activation (SiLU: :mod:`neurodeploy.conversion.few_spike`) has values of either sign:
    a negative d_j is a negative graded spike, and a threshold T_j <= 0 makes the neuron spike on inputs at and
    below 0 (how it sends SiLU's negative part). Windows that begin before :attr:`start` send nothing whatever the
    code (a window's state is 0 there, which such a code would answer with spikes).

    ``forward`` is the window's result for a constant current: Σ_j d_j·z_j.
    """

    threshold: np.ndarray
    thresholds: np.ndarray
    resets: np.ndarray
    spike_values: np.ndarray
    start: int = 0
    """As :attr:`WindowIF.start`: windows that begin before this step send nothing."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.start = int(self.start)
        self.threshold = as_f32(self.threshold)
        self.thresholds, self.resets = as_f32(self.thresholds), as_f32(self.resets)
        self.spike_values = as_f32(self.spike_values)

    @property
    def steps(self) -> int:
        return int(self.spike_values.shape[0])

    def verify(self) -> None:
        super().verify()
        codes = (self.thresholds, self.resets, self.spike_values)
        if any(c.ndim != 1 for c in codes) or len({c.shape[0] for c in codes}) != 1 or self.steps < 1:
            raise ValueError(f"FewSpike '{self.name}': thresholds, resets and spike_values must be K >= 1 values each")
        if not all(np.all(np.isfinite(c)) for c in codes):
            raise ValueError(f"FewSpike '{self.name}': its code is not finite")
        _verify_windowed(self, self.threshold, self.start)

    def infer(self, in_types: list[TensorType]) -> TensorType:
        return _check_threshold(self, self.threshold, in_types)

    def ready(self, start: int) -> int:
        return (-(-start // self.steps) + 1) * self.steps

    def events(self, out: Any) -> Any:
        """One event per graded spike (its value K d_j is what the next layer's weights receive, not a count)."""
        return out != 0

    def _send(self, a: np.ndarray, j: int, theta: np.ndarray) -> np.ndarray:
        """Step j of the FS recursion on ``a`` (in place): the spikes z_j."""
        z = a >= self.thresholds[j] * theta
        a -= z * (self.resets[j] * theta)
        return z

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        a = np.array(xs[0], np.float32)
        theta = _broadcast(self.threshold, a.ndim - 1)
        out = np.zeros_like(a)
        for j in range(self.steps):
            out += self._send(a, j, theta) * self.spike_values[j]
        return out

    def init_state(self, batch: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        return _window_state(batch, shape, "sum", "a")

    def live(self, t: int) -> bool:
        """Whether step ``t`` (counted from 0) sends: its window's value was integrated in a window that began at
        :attr:`start` or later (the first window, step 0 on, has nothing to send)."""
        return t - t % self.steps - self.steps >= self.start

    def step(self, state: dict[str, np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
        total, a, t = state["sum"], state["a"], state["t"]
        j = int(t) % self.steps
        live = self.live(int(t))
        t += 1
        theta = _broadcast(self.threshold, a.ndim - 1)
        if live:
            out = self._send(a, j, theta) * np.float32(self.steps * self.spike_values[j])
        else:
            out = np.zeros_like(a)
        total += xs[0]
        if j == self.steps - 1:
            a[...] = total / np.float32(self.steps) if int(t) - self.steps >= self.start else 0
            total[...] = 0
        return out.astype(np.float32)


@dataclass(eq=False, kw_only=True)
class SignedIF(StatefulOp):
    r"""Integrate-and-fire neurons with signed spikes and a memory of what they sent (the signed neuron with memory
    of Wang et al., "A New ANN-SNN Conversion Method with High Accuracy, Low Latency and Good Robustness", IJCAI
    2023): a neuron that has sent more than its input now supports takes spikes back.

        v[0] = initial·θ,   v[t] = v[t-1] + x[t]
        s[t] = +1 if v[t] >= θ;  -1 if v[t] < 0 and the neuron's count N (its spikes so far, signed) is above 0;
               else 0
        v[t] = v[t] - θ·s[t],   N = N + s[t]

    An IF neuron (:class:`IF`) that fired early on a large input cannot take the spike back when later input is
    negative, so deeper layers, whose input arrives unevenly, over-fire in the first steps; here the count
    follows clip(round(A/θ), 0, t) of the charge A received, from above as from below, and N is never negative.
    Reset by subtraction only. ``forward`` is the rate limit clip(x/θ, 0, 1), as for :class:`IF`.
    """

    threshold: np.ndarray
    initial: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        self.threshold = as_f32(self.threshold)
        self.initial = float(self.initial)

    def verify(self) -> None:
        super().verify()
        if self.threshold.ndim > 1 or not np.all(self.threshold > 0):
            raise ValueError(f"SignedIF '{self.name}': threshold must be positive, scalar or one per channel")

    def infer(self, in_types: list[TensorType]) -> TensorType:
        return _check_threshold(self, self.threshold, in_types)

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        return np.clip(x / _broadcast(self.threshold, x.ndim - 1), 0.0, 1.0).astype(np.float32)

    def init_state(self, batch: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        theta = _broadcast(self.threshold, len(shape))
        v = np.broadcast_to(np.float32(self.initial) * theta, (batch, *shape)).astype(np.float32)
        return {"v": v, "count": np.zeros((batch, *shape), np.float32)}

    def events(self, out: Any) -> Any:
        """One event per spike, +1 or -1 (a -1 spike reaches its synapses as a +1 does)."""
        return abs(out)

    def step(self, state: dict[str, np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
        v, count = state["v"], state["count"]
        theta = _broadcast(self.threshold, v.ndim - 1)
        v += xs[0]
        spikes = (v >= theta).astype(np.float32) - ((v < 0) & (count > 0)).astype(np.float32)
        v -= spikes * theta
        count += spikes
        return spikes


def channel_threshold(threshold: np.ndarray) -> np.ndarray | None:
    """``threshold`` as the IF op keeps it (a scalar, or one per channel: per neuron of a vector layer), or None
    when it differs within a channel of a (C, ...) layer."""
    theta = np.asarray(threshold, np.float32)
    if theta.ndim <= 1:
        return theta
    rows = theta.reshape(theta.shape[0], -1)
    return np.ascontiguousarray(rows[:, 0]) if np.all(rows == rows[:, :1]) else None


def _per_neuron(op: StatefulOp, name: str, value: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if value is not None and (value.ndim > len(shape) or np.broadcast_shapes(value.shape, shape) != shape):
        raise ValueError(f"{op.op_type} '{op.name}': {name} of shape {value.shape} does not fit the layer {shape}")


@dataclass(eq=False, kw_only=True)
class LIF(StatefulOp):
    r"""Leaky integrate-and-fire neurons with an optional synaptic current (current-based, CUBA), in discrete
    time, one per element of the input. Every parameter is a scalar or an array that broadcasts to the layer's
    shape (one value per neuron, per channel as (C, 1, 1), ...):

        i[t] = syn_decay·i[t-1] + syn_gain·x[t]        (with a synaptic stage; else i[t] = x[t])
        v[t] = decay·v[t-1] + gain·i[t] + drive
        s[t] = 1 if v[t] >= θ else 0                   (strict: v[t] > θ)
        reset "subtract":  v[t] = v[t] - θ·s[t];   reset "zero": v[t] = v_reset where s[t] = 1
        reset "subtract-next": θ·s[t] leaves v at the next step, after the decay:
                           v[t+1] = decay·v[t] + gain·i[t+1] + drive - θ·s[t]   (snnTorch's default reset_delay)

    Without a threshold the op is a leaky integrator (NIR's LI, CubaLI, I): it never fires and its output is
    v[t] itself. With ``multi`` a neuron sends floor(v/θ) spikes in one step (reset by subtraction, >= only). All
    state starts at 0. This is what a NIR file's continuous-time neurons become once a time
    step and a discretization are chosen (:mod:`neurodeploy.frontend.nir`); a decay of 1 and no drive is the
    IF neuron. ``forward`` (there is no ANN behind such a network) is what one step does from rest:
    clip(gain·syn_gain·x + drive) against θ as a spike, or the integrator's v.
    """

    decay: np.ndarray
    gain: np.ndarray
    drive: np.ndarray
    threshold: np.ndarray | None = None
    syn_decay: np.ndarray | None = None
    syn_gain: np.ndarray | None = None
    reset: str = "zero"
    v_reset: np.ndarray | None = None
    strict: bool = False
    multi: bool = False
    """Send floor(v / θ) spikes in one step where v reaches θ, and subtract them all (sinabs' MultiSpike), instead of
    one spike at most: the output is then a spike count."""

    RESETS: ClassVar[tuple[str, ...]] = ("subtract", "zero", "subtract-next")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.multi = bool(self.multi)
        for name in ("decay", "gain", "drive", "threshold", "syn_decay", "syn_gain", "v_reset"):
            value = getattr(self, name)
            setattr(self, name, None if value is None else as_f32(value))
        self.strict = bool(self.strict)

    @property
    def emits_spikes(self) -> bool:
        return self.threshold is not None

    def as_if(self) -> IF | None:
        """The same neurons as an :class:`IF` op (its threshold a scalar or one per channel), if they are IF neurons:
        no leak, no synaptic stage, input gain 1, no drive, ``>=``, reset to 0 or by subtraction. ``multi`` is
        dropped: the caller decides whether its target fires that way (Speck's neurons fire once per input event,
        so several times in a step)."""
        plain = (
            self.threshold is not None
            and self.syn_decay is None
            and not self.strict
            and self.v_reset is None
            and all(np.all(np.asarray(p) == want) for p, want in ((self.decay, 1), (self.gain, 1), (self.drive, 0)))
        )
        theta = channel_threshold(self.threshold) if plain and self.threshold is not None else None
        if theta is None:
            return None
        return IF(
            name=self.name,
            inputs=tuple(self.inputs),
            output=self.output,
            threshold=theta,
            reset=self.reset,
            initial=0.0,
        )

    def verify(self) -> None:
        super().verify()
        if self.reset not in self.RESETS:
            raise ValueError(f"LIF '{self.name}': reset must be one of {self.RESETS}, got {self.reset!r}")
        if (self.syn_decay is None) != (self.syn_gain is None):
            raise ValueError(f"LIF '{self.name}': a synaptic stage needs both syn_decay and syn_gain")
        values = [self.decay, self.gain, self.drive, self.threshold, self.syn_decay, self.syn_gain, self.v_reset]
        if not all(v is None or np.all(np.isfinite(v)) for v in values):
            raise ValueError(f"LIF '{self.name}': its parameters must be finite")
        for decay in (self.decay, self.syn_decay):
            if decay is not None and not np.all((decay >= 0) & (decay <= 1)):
                raise ValueError(f"LIF '{self.name}': decays must lie in [0, 1] (a larger one grows without input)")
        if self.threshold is not None and not np.all(self.threshold > 0):
            raise ValueError(f"LIF '{self.name}': thresholds must be positive")
        if self.multi and (self.reset != "subtract" or self.threshold is None or self.strict):
            raise ValueError(f"LIF '{self.name}': several spikes a step need a threshold, >= and reset by subtraction")

    def infer(self, in_types: list[TensorType]) -> TensorType:
        (t,) = in_types
        for name in ("decay", "gain", "drive", "threshold", "syn_decay", "syn_gain", "v_reset"):
            _per_neuron(self, name, getattr(self, name), t.shape)
        return t

    def forward(self, xs: list[np.ndarray]) -> np.ndarray:
        current = xs[0] if self.syn_gain is None else xs[0] * self.syn_gain
        v = current * self.gain + self.drive
        if self.threshold is None:
            return np.asarray(v, np.float32)
        return np.clip(v / self.threshold, 0.0, 1.0).astype(np.float32)

    def init_state(self, batch: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        state = {"v": np.zeros((batch, *shape), np.float32)}
        if self.syn_decay is not None:
            state["i"] = np.zeros((batch, *shape), np.float32)
        if self.reset == "subtract-next":
            state["sent"] = np.zeros((batch, *shape), np.float32)
        return state

    def step(self, state: dict[str, np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
        v, current = state["v"], xs[0]
        if self.syn_decay is not None:
            i = state["i"]
            i *= self.syn_decay
            i += current * self.syn_gain
            current = i
        v *= self.decay
        v += current * self.gain + self.drive
        if self.threshold is None:
            return v.copy()
        if self.reset == "subtract-next":
            v -= state["sent"] * self.threshold
        if self.multi:
            counts = np.maximum(np.floor(v / self.threshold), 0.0).astype(np.float32)
            v -= counts * self.threshold
            return counts
        spikes = v > self.threshold if self.strict else v >= self.threshold
        if self.reset == "subtract":
            v -= spikes * self.threshold
        elif self.reset == "subtract-next":
            state["sent"][...] = spikes
        else:
            reset = np.float32(0.0) if self.v_reset is None else self.v_reset
            np.copyto(v, np.broadcast_to(reset, v.shape), where=spikes)
        return spikes.astype(np.float32)


def describe_leaky(op: LIF) -> str:
    """What makes ``op`` more than an IF neuron, with its numbers (for a target's refusal)."""

    def span(value: np.ndarray) -> str:
        low, high = float(np.min(value)), float(np.max(value))
        return f"{low:.6g}" if low == high else f"{low:.6g}..{high:.6g}"

    parts = []
    if np.any(np.asarray(op.decay) != 1):
        parts.append(f"leak: v decays by a factor {span(op.decay)} per step")
    if op.syn_decay is not None:
        parts.append(f"a synaptic current decaying by a factor {span(op.syn_decay)} per step")
    if op.threshold is None:
        parts.append("no threshold (a leaky integrator: its output is v)")
    if op.strict:
        parts.append("fires on v > threshold (the targets fire on v >= threshold: --import-option compare=ge)")
    if op.v_reset is not None:
        parts.append("resets to a v_reset other than 0")
    if op.multi:
        parts.append("sends several spikes in one step (--import-option spikes=multi)")
    if op.reset == "subtract-next":
        parts.append("subtracts the threshold at the next step (--import-option reset=subtract-next)")
    if np.any(np.asarray(op.drive) != 0):
        parts.append("a constant drive (v_leak)")
    if np.any(np.asarray(op.gain) != 1) and not parts:
        parts.append("an input gain r other than 1")
    return "; ".join(parts) or "a neuron the IR keeps as LIF"


def leaky_refusal(op: Op, target: str) -> str | None:
    """The error for a target that runs IF neurons only, when ``op`` is a leaky neuron (from a NIR file). The targets
    that map leaky neurons (loihi, spinnaker, brainscales2: ``Rules.leaky``) refuse what they cannot map with their
    own reasons."""
    if not isinstance(op, LIF):
        return None
    return (
        f"LIF '{op.name}' ({describe_leaky(op)}): the {target} target runs IF neurons only (no leak, v >= threshold, "
        "reset to 0 or by subtraction); leaky neurons run on the reference, loihi, spinnaker and brainscales2 targets"
    )
