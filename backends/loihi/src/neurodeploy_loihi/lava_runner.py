"""Run :class:`~neurodeploy_loihi.emulator.Network`\\ s in Lava's ``fixed_pt`` process models (needs lava-nc).

Each network becomes ``RingBuffer`` (input spikes) -> ``Dense`` / ``Conv`` -> ``LIF`` / ``SubtractiveLIF`` ->
... with a :class:`~neurodeploy_loihi.lava_processes.Recorder` on every population, and runs under
``Loihi2SimCfg(select_tag="fixed_pt")``. Lava imports happen inside the functions; a missing Lava is an error
that names the extra to install.

Lava starts one operating-system process per Lava process and pays for every one of them at start-up and at
every step, so the runner keeps their number down:

* the samples of a batch share one chain of processes: the layers are made B times wider, sample b using its
  own block of neurons. A Dense gets block-diagonal weights (the zero blocks change no sum, and no sign mode:
  a matrix with no negative weight stays without one, and so on); a Conv gets the samples as channel blocks,
  (X, Y, B * C), with B times the groups, so that each sample's channels only see their own kernel; per-neuron
  biases and initial voltages are repeated per sample. Lava's Conv stores ``groups`` as int8, so a batch is cut
  into chains of at most 127 // groups samples.
* independent networks run in one Lava run: the recorders' ``link`` ports all feed one sink, which makes the
  networks one connected graph (Lava runs only what is connected to the process it is started from);
* Lava's compiler looks for the process models of *every process instance* by executing every module in the
  folder of the process's class (``ProcGroupDiGraphs._find_proc_models``), about 35 ms a process; the runner
  remembers what it found per class while it compiles. Which model runs is still Lava's choice
  (``_select_proc_models`` with ``select_tag="fixed_pt"``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from neurodeploy.errors import NeurodeployError
from neurodeploy_loihi.emulator import ConvSynapse, Layer, Network, Trace

CONV_GROUPS_MAX = 127
"""Lava's ``AbstractPyConvModel.groups`` is ``np.int8``."""


def _require_lava() -> None:
    try:
        import lava  # noqa: F401
    except ImportError:
        raise NeurodeployError(
            "running in Lava needs lava-nc, which is not installed; pip install 'neurodeploy-loihi[lava]' "
            "(Python 3.10, numpy < 2; `make test-lava` creates .venv-lava with it)"
        ) from None


def _per_sample(value: Any, shape: tuple[int, ...], batch: int, conv: bool) -> Any:
    """A scalar as it is; a per-neuron array repeated for ``batch`` samples in the merged layout."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        return int(arr)
    arr = np.broadcast_to(arr, shape)
    return np.concatenate([arr] * batch, axis=-1) if conv else np.tile(arr.reshape(-1), batch)


def _merged_dense(weights: np.ndarray, below: tuple[int, ...], batch: int, below_conv: bool) -> np.ndarray:
    """Dense weights for ``batch`` samples side by side: sample b's outputs read only sample b's inputs. Below a
    conv layer the inputs are (X, Y, B * C) flattened, so sample b's columns are interleaved."""
    n_out = weights.shape[0]
    if not below_conv:
        merged = np.zeros((batch, n_out, batch, weights.shape[1]), np.int64)
        for b in range(batch):
            merged[b, :, b, :] = weights
        return merged.reshape(batch * n_out, -1)
    x, y, c = below
    merged = np.zeros((batch, n_out, x, y, batch, c), np.int64)
    for b in range(batch):
        merged[b, :, :, :, b, :] = weights.reshape(n_out, x, y, c)
    return merged.reshape(batch * n_out, -1)


class _Chain:
    """The Lava processes of one network for ``batch`` samples, and how to read its results back."""

    def __init__(self, network: Network, spikes: np.ndarray, steps: int, sink: Any) -> None:
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense
        from lava.proc.io.source import RingBuffer
        from lava.proc.lif.process import LIF
        from lava.utils.weightutils import SignMode as LavaSignMode

        from neurodeploy_loihi.lava_processes import Recorder, SubtractiveLIF

        self.network = network
        self.batch = batch = len(spikes)
        self.steps = steps
        frames = np.zeros((batch, steps, *network.input_shape), np.int32)  # steps beyond the input: no spikes
        frames[:, : min(steps, spikes.shape[1])] = spikes[:, :steps]
        first_conv = isinstance(network.layers[0].synapse, ConvSynapse)
        if first_conv:  # (B, T, X, Y, C) -> (X, Y, B * C, T)
            data = frames.transpose(2, 3, 0, 4, 1).reshape(*network.input_shape[:2], -1, steps)
        else:  # (B, T, n) -> (B * n, T)
            data = frames.transpose(0, 2, 1).reshape(-1, steps)
        source = RingBuffer(data=np.ascontiguousarray(data))
        port = source.s_out
        self.recorders = []
        below_shape, below_conv = network.input_shape, first_conv
        for layer in network.layers:
            synapse = layer.synapse
            conv = isinstance(synapse, ConvSynapse)
            if conv:
                x, y, c = synapse.input_shape
                process = Conv(
                    weight=np.concatenate([synapse.weights] * batch, axis=0),
                    input_shape=(x, y, batch * c),
                    padding=synapse.padding,
                    stride=synapse.stride,
                    dilation=synapse.dilation,
                    groups=synapse.groups * batch,
                )
            else:
                extra = {} if synapse.sign_mode is None else {"sign_mode": LavaSignMode(int(synapse.sign_mode))}
                process = Dense(
                    weights=_merged_dense(synapse.weights, below_shape, batch, below_conv),
                    weight_exp=int(synapse.weight_exp),
                    num_weight_bits=int(synapse.num_weight_bits),
                    **extra,
                )
            if port.shape != process.s_in.shape:
                port = port.reshape(process.s_in.shape)  # conv (X, Y, B * C) -> dense (X * Y * B * C,)
            port.connect(process.s_in)
            shape = process.a_out.shape
            neuron = layer.neuron
            kind = LIF if neuron.kind == "lif" else SubtractiveLIF
            neurons = kind(
                shape=shape,
                du=int(neuron.du),
                dv=int(neuron.dv),
                vth=int(neuron.vth),
                bias_mant=_per_sample(neuron.bias_mant, layer.shape, batch, conv),
                bias_exp=_per_sample(neuron.bias_exp, layer.shape, batch, conv),
                v=_per_sample(neuron.v0, layer.shape, batch, conv),
            )
            process.a_out.connect(neurons.a_in)
            recorder = Recorder(shape=shape, steps=steps)
            recorder.watch(neurons)
            recorder.link.connect(sink.a_in)
            self.recorders.append(recorder)
            port, below_shape, below_conv = neurons.s_out, layer.shape, conv
        self.source = source

    def _unmerge(self, layer: Layer, data: np.ndarray) -> np.ndarray:
        """(steps, *merged shape) -> (B, steps, *shape)."""
        batch, steps = self.batch, self.steps
        if isinstance(layer.synapse, ConvSynapse):
            x, y, c = layer.shape
            return np.moveaxis(data.reshape(steps, x, y, batch, c), 3, 0)
        return np.moveaxis(data.reshape(steps, batch, -1), 1, 0)

    def trace(self) -> Trace:
        spikes, u, v = [], [], []
        for layer, recorder in zip(self.network.layers, self.recorders):
            record = np.asarray(recorder.record.get())
            spikes.append(self._unmerge(layer, record[0]).astype(bool))
            u.append(self._unmerge(layer, record[1]).astype(np.int32))
            v.append(self._unmerge(layer, record[2]).astype(np.int32))
        return Trace(spikes=spikes, u=u, v=v)


def run_in_lava(jobs: list[tuple[Network, np.ndarray]], steps: int) -> list[Trace]:
    """Run every (network, input spikes (B, T, *input_shape)) for ``steps`` steps in one Lava run, with
    ``Loihi2SimCfg(select_tag="fixed_pt")``; frame t - 1 is the input of step t, later steps get no spikes.
    Returns one :class:`~neurodeploy_loihi.emulator.Trace` per job, as :meth:`Network.run` does."""
    _require_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    sink = Sink(shape=(1,), buffer=1)
    chains: list[list[_Chain]] = []
    for network, spikes in jobs:
        x = np.asarray(spikes)
        if x.ndim != 2 + len(network.input_shape) or tuple(x.shape[2:]) != network.input_shape:
            raise ValueError(f"input spikes must be (batch, steps, *{network.input_shape}), got {x.shape}")
        groups = max((lay.synapse.groups for lay in network.layers if isinstance(lay.synapse, ConvSynapse)), default=1)
        per_chain = max(1, CONV_GROUPS_MAX // groups)
        chains.append([_Chain(network, x[i : i + per_chain], steps, sink) for i in range(0, len(x), per_chain)])
    try:
        with _models_found_once_per_class():
            sink.create_runtime(run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        sink.run(condition=RunSteps(num_steps=steps))
        parts = [[chain.trace() for chain in network_chains] for network_chains in chains]
    finally:
        sink.stop()
    return [_join(p) for p in parts]


@contextmanager
def _models_found_once_per_class() -> Iterator[None]:
    """Memoize Lava's process-model discovery per process class for the duration of a compile."""
    from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs

    original = ProcGroupDiGraphs.__dict__["_find_proc_models"]
    found: dict[type, list] = {}

    def find(proc: Any) -> list:
        if type(proc) not in found:
            found[type(proc)] = original.__func__(proc)
        return list(found[type(proc)])

    ProcGroupDiGraphs._find_proc_models = staticmethod(find)
    try:
        yield
    finally:
        ProcGroupDiGraphs._find_proc_models = original


def _join(parts: list[Trace]) -> Trace:
    return Trace(
        spikes=[np.concatenate(layer) for layer in zip(*(p.spikes for p in parts))],
        u=[np.concatenate(layer) for layer in zip(*(p.u for p in parts))],
        v=[np.concatenate(layer) for layer in zip(*(p.v for p in parts))],
    )
