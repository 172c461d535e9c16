"""Run :class:`~neurodeploy_loihi.graded.GradedNetwork`\\ s in Lava's ``fixed_pt`` process models (needs lava-nc).

Each network becomes an input population (a :class:`~neurodeploy_loihi.lava_processes.GradedReLU` without
synapse, its bias_mant set to the sample's input payloads) -> ``Dense`` / ``Conv`` with ``num_message_bits``
-> ``GradedReLU`` -> ... with a :class:`~neurodeploy_loihi.lava_processes.Recorder` on every population (its
``s_in`` records the payloads), under ``Loihi2SimCfg(select_tag="fixed_pt")``. Each recorder is given a
``path`` and writes its record to a temporary file after the last step (Lava's ``get`` is far too slow for
populations of thousands of neurons). The samples of a batch share one
chain of processes, side by side, as :mod:`neurodeploy_loihi.lava_runner` does for binary networks (its helpers
are reused: block-diagonal Dense weights, Conv samples as channel blocks with B times the groups).
"""

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy_loihi.emulator import ConvSynapse, Trace
from neurodeploy_loihi.graded import GradedNetwork
from neurodeploy_loihi.lava_runner import (
    CONV_GROUPS_MAX,
    _join,
    _models_found_once_per_class,
    _per_sample,
    _require_lava,
    synapse_process,
)


def _merge(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Per-sample values (B, *shape) in the merged layout: (X, Y, B * C) or (B * n,)."""
    if len(shape) == 3:
        x, y, _ = shape
        return np.ascontiguousarray(np.moveaxis(values, 0, 2).reshape(x, y, -1))
    return values.reshape(-1)


class _GradedChain:
    """The Lava processes of one graded network for ``batch`` samples, and how to read its results back."""

    def __init__(self, network: GradedNetwork, inputs: np.ndarray, steps: int, sink: Any, folder: Path) -> None:
        from neurodeploy_loihi.lava_processes import GradedFewSpike, GradedReLU, Recorder

        self.network = network
        self.batch = batch = len(inputs)
        self.steps = steps
        self.files: list[Path] = []
        outs: dict[int, tuple[Any, tuple[int, ...]]] = {}  # per layer: its payloads' port and its shape
        for k, layer in enumerate(network.layers):
            neuron = layer.neuron
            conv_population = len(layer.shape) == 3
            shape = (*layer.shape[:2], batch * layer.shape[2]) if conv_population else (batch * layer.shape[0],)
            if k == 0:
                bias_mant, bias_exp = _merge(np.asarray(inputs, np.int64), layer.shape), 0
            else:
                bias_mant = _per_sample(neuron.bias_mant, layer.shape, batch, conv_population)
                bias_exp = _per_sample(neuron.bias_exp, layer.shape, batch, conv_population)
            neurons: Any
            if neuron.fs is not None:  # few-spike: its code, window and rest
                code = neuron.fs
                neurons = GradedFewSpike(
                    shape=shape,
                    thresholds=code.thresholds,
                    resets=code.resets,
                    payloads=code.payloads,
                    start=code.start,
                    depth=code.depth,
                    bias_mant=bias_mant,
                    bias_exp=bias_exp,
                )
            else:
                neurons = GradedReLU(
                    shape=shape,
                    bias_mant=bias_mant,
                    bias_exp=bias_exp,
                    shift=int(neuron.shift),
                    message_bits=int(neuron.message_bits),
                    relu=bool(neuron.relu),
                    levels=int(neuron.levels),
                )
            for source, synapse, delay in layer.inbound(k):  # several: the neurons' InPort sums them
                port, below_shape = outs[source]
                bits = int(network.layers[source].neuron.message_bits)  # the payload width of the source
                process = synapse_process(synapse, delay, layer.shape, below_shape, batch, len(below_shape) == 3, bits)
                if port.shape != process.s_in.shape:
                    port = port.reshape(process.s_in.shape)  # conv (X, Y, B * C) -> dense (X * Y * B * C,)
                port.connect(process.s_in)
                out = process.a_out
                (out if out.shape == neurons.a_in.shape else out.reshape(neurons.a_in.shape)).connect(neurons.a_in)
            path = folder / f"{id(self)}-{k}.npy"
            recorder = Recorder(shape=shape, steps=steps, path=str(path))
            recorder.watch(neurons)
            recorder.link.connect(sink.a_in)
            self.files.append(path)
            outs[k] = (neurons.s_out, layer.shape)

    def _unmerge(self, shape: tuple[int, ...], data: np.ndarray) -> np.ndarray:
        """(steps, *merged shape) -> (B, steps, *shape)."""
        batch, steps = self.batch, self.steps
        if len(shape) == 3:
            x, y, c = shape
            return np.moveaxis(data.reshape(steps, x, y, batch, c), 3, 0)
        return np.moveaxis(data.reshape(steps, batch, -1), 1, 0)

    def trace(self) -> Trace:
        payloads, u, v = [], [], []
        for layer, path in zip(self.network.layers, self.files):
            record = np.load(path)
            payloads.append(self._unmerge(layer.shape, record[0]).astype(np.int32))
            u.append(self._unmerge(layer.shape, record[1]).astype(np.int32))
            v.append(self._unmerge(layer.shape, record[2]).astype(np.int32))
        return Trace(spikes=payloads, u=u, v=v)


def run_graded_in_lava(jobs: list[tuple[GradedNetwork, np.ndarray]], steps: int) -> list[Trace]:
    """Run every (graded network, input payloads (B, *input population shape)) for ``steps`` steps in one Lava
    run with ``Loihi2SimCfg(select_tag="fixed_pt")``. Returns one Trace per job as :meth:`GradedNetwork.run`
    records it: payloads (in ``spikes``), u and v of every layer at every step."""
    _require_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    sink = Sink(shape=(1,), buffer=1)
    chains: list[list[_GradedChain]] = []
    folder = tempfile.TemporaryDirectory(prefix="neurodeploy-lava-graded-")
    for network, inputs in jobs:
        x = np.asarray(inputs)
        if x.ndim != 1 + len(network.input_shape) or tuple(x.shape[1:]) != network.input_shape:
            raise ValueError(f"inputs must be (batch, *{network.input_shape}), got {x.shape}")
        synapses = [syn for k, lay in enumerate(network.layers) for _, syn, _ in lay.inbound(k)]
        groups = max((syn.groups for syn in synapses if isinstance(syn, ConvSynapse)), default=1)
        per_chain = max(1, CONV_GROUPS_MAX // groups)
        chains.append(
            [
                _GradedChain(network, x[i : i + per_chain], steps, sink, Path(folder.name))
                for i in range(0, len(x), per_chain)
            ]
        )
    with folder:
        try:
            with _models_found_once_per_class():
                sink.create_runtime(run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            sink.run(condition=RunSteps(num_steps=steps))
        finally:
            sink.stop()
        parts = [[chain.trace() for chain in network_chains] for network_chains in chains]
    return [_join(p) for p in parts]
