"""Run :class:`~neurodeploy_loihi.emulator.Network`\\ s and compiled :class:`~neurodeploy_loihi.program.Program`\\ s
in Lava's ``fixed_pt`` process models (needs lava-nc).

Each network becomes ``RingBuffer`` (input spikes) -> ``Dense`` / ``Conv`` -> ``LIF`` / ``SubtractiveLIF`` ->
... with a :class:`~neurodeploy_loihi.lava_processes.Recorder` on every population, and runs under
``Loihi2SimCfg(select_tag="fixed_pt")``. A network whose first layer is an input population (a compiled
program's: no synapse, driven by the host-computed current) starts with that population instead of the
``RingBuffer``: a ``LIF`` / ``SubtractiveLIF`` whose ``bias_mant`` and ``bias_exp`` are the per-sample input
bias (netx's ``Input`` block drives its neurons the same way). A pooled convolution
(:class:`~neurodeploy_loihi.emulator.ConvSynapse` with ``pool``) is one Lava ``Conv`` with the repeated kernel
(``lava_weights``). A layer with residual branches or concatenated inputs (``skips``) gets one ``Dense`` /
``Conv`` per branch, all connected to its neurons' ``a_in`` (Lava's InPort adds what its channels bring); a
delayed synapse is a ``DelayDense`` with that delay for every weight. Lava imports happen inside the functions; a
missing Lava is an error that names the extra to install.

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
  (``_select_proc_models`` with ``select_tag="fixed_pt"``);
* the recorders save their records to files in a temporary folder after the last step, which the runner reads:
  Lava's ``Var.get`` sends an array one element at a time, minutes for the millions of values of a
  convolutional network's trace.
"""

# No `from __future__ import annotations`: Lava's process-model discovery executes every module of this folder
# outside sys.modules, where Python 3.10's dataclasses cannot resolve string annotations.

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import NeurodeployError
from neurodeploy_loihi.emulator import ConvSynapse, Layer, Network, SparseSynapse, Trace

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


def _merged_dense(
    weights: np.ndarray, below: tuple[int, ...], batch: int, below_conv: bool, above: tuple[int, ...] | None = None
) -> np.ndarray:
    """Dense weights for ``batch`` samples side by side: sample b's outputs read only sample b's inputs. Below a
    conv layer the inputs are (X, Y, B * C) flattened, so sample b's columns are interleaved; into a conv-shaped
    layer ``above`` (X, Y, C) (a residual branch), its rows are too."""
    if above is not None:
        x, y, c = above
        per_sample = _merged_dense(weights, below, batch, below_conv).reshape(batch, x, y, c, -1)
        return np.ascontiguousarray(per_sample.transpose(1, 2, 0, 3, 4)).reshape(batch * x * y * c, -1)
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


def _merged_index(index: np.ndarray, shape: tuple[int, ...], batch: int, b: int) -> np.ndarray:
    """Sample b's neuron ``index`` (Lava flat order of ``shape``) in the merged layout of ``batch`` samples:
    (X, Y, B * C) for a conv-shaped population, B blocks of n otherwise."""
    index = np.asarray(index, np.int64)  # (a synapse list's indices are stored narrow)
    if len(shape) == 3:
        c = shape[2]
        return (index // c) * batch * c + b * c + index % c
    return b * int(np.prod(shape)) + index


def _sparse_process(
    synapse: SparseSynapse, shape: tuple[int, ...], below: tuple[int, ...], batch: int, delay: int, **bits: int
) -> Any:
    """A listed synapse as Lava's ``Sparse`` (``DelaySparse`` with every synapse delayed ``delay`` steps): a csr
    matrix over the merged layout of ``batch`` samples (each sample's neurons read only their own sample's)."""
    from lava.proc.sparse.process import DelaySparse, Sparse
    from lava.utils.weightutils import SignMode as LavaSignMode
    from scipy.sparse import csr_matrix

    keep = np.nonzero(synapse.weights)[0]
    rows = np.concatenate([_merged_index(synapse.rows[keep], shape, batch, b) for b in range(batch)])
    cols = np.concatenate([_merged_index(synapse.cols[keep], below, batch, b) for b in range(batch)])
    size = (batch * synapse.shape[0], batch * synapse.shape[1])
    weights = csr_matrix((np.tile(synapse.weights[keep].astype(np.int64), batch), (rows, cols)), shape=size)
    extra: dict[str, Any] = {"weight_exp": int(synapse.weight_exp), "num_weight_bits": int(synapse.num_weight_bits)}
    if synapse.sign_mode is not None:
        extra["sign_mode"] = LavaSignMode(int(synapse.sign_mode))
    if delay:
        delays = csr_matrix((np.full(rows.size, int(delay)), (rows, cols)), shape=size)
        return DelaySparse(weights=weights, delays=delays, max_delay=int(delay), **extra, **bits)
    return Sparse(weights=weights, **extra, **bits)


def synapse_process(
    synapse: Any,
    delay: int,
    shape: tuple[int, ...],
    below: tuple[int, ...],
    batch: int,
    below_conv: bool,
    num_message_bits: int = 0,
) -> Any:
    """The Lava process of one synapse for ``batch`` samples side by side: ``Conv`` (samples as channel blocks),
    ``Dense`` / ``DelayDense`` (block-diagonal), ``Sparse`` / ``DelaySparse``; graded messages where
    ``num_message_bits`` > 0."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import DelayDense, Dense
    from lava.utils.weightutils import SignMode as LavaSignMode

    bits = {"num_message_bits": int(num_message_bits)} if num_message_bits else {}
    if isinstance(synapse, SparseSynapse):
        return _sparse_process(synapse, shape, below, batch, delay, **bits)
    if isinstance(synapse, ConvSynapse):
        x, y, c = synapse.input_shape
        return Conv(
            weight=np.concatenate([synapse.lava_weights] * batch, axis=0),  # pooled conv: repeated kernel
            input_shape=(x, y, batch * c),
            padding=synapse.padding,
            stride=synapse.stride,
            dilation=synapse.dilation,
            groups=synapse.groups * batch,
            **bits,
        )
    extra: dict[str, Any] = {} if synapse.sign_mode is None else {"sign_mode": LavaSignMode(int(synapse.sign_mode))}
    conv = len(shape) == 3
    weights = _merged_dense(synapse.weights, below, batch, below_conv, shape if conv else None)
    if delay:  # every weight delayed alike: DelayDense's a_buff has delay + 1 columns
        extra["delays"] = np.full(weights.shape, int(delay), dtype=int)
    return (DelayDense if delay else Dense)(
        weights=weights,
        weight_exp=int(synapse.weight_exp),
        num_weight_bits=int(synapse.num_weight_bits),
        **extra,
        **bits,
    )


def _max_groups(network: Network) -> int:
    """The most groups of any Conv in the network (main synapses and residual branches)."""
    synapses = [s for k, layer in enumerate(network.layers) for _, s, _ in layer.inbound(k)]
    return max((s.groups for s in synapses if isinstance(s, ConvSynapse)), default=1)


class _Chain:
    """The Lava processes of one network for ``batch`` samples, and how to read its results back."""

    def __init__(
        self,
        network: Network,
        spikes: np.ndarray | None,
        steps: int,
        sink: Any,
        input_bias: tuple[np.ndarray, np.ndarray] | None = None,
        record_all: bool = True,
        folder: Path | None = None,
        watch: Any = None,
    ) -> None:
        from lava.proc.io.source import RingBuffer
        from lava.proc.lif.process import LIF

        from neurodeploy_loihi.lava_processes import Recorder, SubtractiveLIF

        self.network = network
        self.steps = steps
        self.folder = folder  # where the recorders save their records (see Recorder); None: read with get()
        self.recorders = []
        self.populations: list[Any] = []  # every layer's neuron process, in layer order
        self.synapses: list[Any] = []  # every synapse process
        # watch(neurons, shape), when given, replaces the recorders: the caller attaches its own sinks
        self.recorded = list(network.layers) if record_all else [network.layers[-1]]
        layers = list(network.layers)
        if input_bias is not None:  # an input population: its neurons get the per-sample bias, and no input
            first = layers.pop(0)
            mant, exp = (np.asarray(a) for a in input_bias)
            self.batch = batch = len(mant)
            shape = first.shape
            conv_shaped = len(shape) == 3
            neuron = first.neuron
            kind = LIF if neuron.kind == "lif" else SubtractiveLIF
            merged = (shape[0], shape[1], batch * shape[2]) if conv_shaped else (batch * int(np.prod(shape)),)
            neurons = kind(
                shape=merged,
                du=int(neuron.du),
                dv=int(neuron.dv),
                vth=int(neuron.vth),
                bias_mant=self._merge(mant, conv_shaped),
                bias_exp=self._merge(exp, conv_shaped),
                v=_per_sample(neuron.v0, shape, batch, conv_shaped),
                **_bias_start(neuron),
            )
            self.populations.append(neurons)
            if watch is not None:
                watch(neurons, merged)
            elif record_all or not layers:
                self._record(neurons, merged, sink, Recorder)
            self.source = neurons
            outs = {0: (neurons.s_out, shape, conv_shaped)}  # per layer: its spikes' port, shape, conv-shaped
        else:
            self.batch = batch = len(spikes)
            frames = np.zeros((batch, steps, *network.input_shape), np.int32)  # steps beyond the input: no spikes
            frames[:, : min(steps, spikes.shape[1])] = spikes[:, :steps]
            first_conv = isinstance(network.layers[0].synapse, ConvSynapse)
            if first_conv:  # (B, T, X, Y, C) -> (X, Y, B * C, T)
                data = frames.transpose(2, 3, 0, 4, 1).reshape(*network.input_shape[:2], -1, steps)
            else:  # (B, T, n) -> (B * n, T)
                data = frames.transpose(0, 2, 1).reshape(-1, steps)
            source = RingBuffer(data=np.ascontiguousarray(data))
            self.source = source
            outs = {-1: (source.s_out, network.input_shape, first_conv)}
        first = len(network.layers) - len(layers)
        for k, layer in enumerate(layers, start=first):
            conv = len(layer.shape) == 3  # conv-shaped: (X, Y, B * C) in Lava
            shape = (layer.shape[0], layer.shape[1], batch * layer.shape[2]) if conv else (batch * prod(layer.shape),)
            processes = []
            for source, synapse, delay in layer.inbound(k):
                port, below_shape, below_conv = outs[source]
                bits = network.input_bits if source == -1 else 0  # event input: graded spikes (event counts)
                process = synapse_process(synapse, delay, layer.shape, below_shape, batch, below_conv, bits)
                if port.shape != process.s_in.shape:
                    port = port.reshape(process.s_in.shape)  # conv (X, Y, B * C) -> dense (X * Y * B * C,)
                port.connect(process.s_in)
                processes.append(process)
                self.synapses.append(process)
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
                **_bias_start(neuron),
            )
            for process in processes:  # several: the InPort sums them
                out = process.a_out
                (out if out.shape == shape else out.reshape(shape)).connect(neurons.a_in)
            self.populations.append(neurons)
            if watch is not None:
                watch(neurons, shape)
            elif record_all or layer is network.layers[-1]:
                self._record(neurons, shape, sink, Recorder)
            outs[k] = (neurons.s_out, layer.shape, conv)

    def _record(self, neurons: Any, shape: tuple[int, ...], sink: Any, recorder_class: type) -> None:
        path = None if self.folder is None else str(self.folder / f"{id(self)}-{len(self.recorders)}.npy")
        recorder = recorder_class(shape=shape, steps=self.steps, path=path)
        recorder.watch(neurons)
        recorder.link.connect(sink.a_in)
        self.recorders.append(recorder)

    def _merge(self, per_sample: np.ndarray, conv_shaped: bool) -> np.ndarray:
        """(B, *shape) per-sample values -> the merged layout: (X, Y, B * C) or (B * n,)."""
        if conv_shaped:
            b, x, y, c = per_sample.shape
            return np.ascontiguousarray(per_sample.transpose(1, 2, 0, 3).reshape(x, y, b * c))
        return per_sample.reshape(-1)

    def _unmerge(self, layer: Layer, data: np.ndarray) -> np.ndarray:
        """(steps, *merged shape) -> (B, steps, *shape)."""
        batch, steps = self.batch, self.steps
        if len(layer.shape) == 3:
            x, y, c = layer.shape
            return np.moveaxis(data.reshape(steps, x, y, batch, c), 3, 0)
        return np.moveaxis(data.reshape(steps, batch, -1), 1, 0)

    def trace(self) -> Trace:
        spikes, u, v = [], [], []
        for layer, recorder in zip(self.recorded, self.recorders):
            path = recorder.proc_params.get("path")
            record = np.load(path) if path is not None else np.asarray(recorder.record.get())
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
    folder = tempfile.TemporaryDirectory(prefix="neurodeploy-lava-")
    sink = Sink(shape=(1,), buffer=1)
    chains: list[list[_Chain]] = []
    for network, spikes in jobs:
        x = np.asarray(spikes)
        if x.ndim != 2 + len(network.input_shape) or tuple(x.shape[2:]) != network.input_shape:
            raise ValueError(f"input spikes must be (batch, steps, *{network.input_shape}), got {x.shape}")
        groups = _max_groups(network)
        per_chain = max(1, CONV_GROUPS_MAX // groups)
        chains.append(
            [
                _Chain(network, x[i : i + per_chain], steps, sink, folder=Path(folder.name))
                for i in range(0, len(x), per_chain)
            ]
        )
    try:
        with _models_found_once_per_class():
            sink.create_runtime(run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        sink.run(condition=RunSteps(num_steps=steps))
        parts = [[chain.trace() for chain in network_chains] for network_chains in chains]
    finally:
        sink.stop()
        folder.cleanup()
    return [_join(p) for p in parts]


@dataclass
class ProgramRun:
    """A compiled program run in Lava: ``trace`` (every population, every Loihi step: steps + delay of them) and
    ``outputs``, read from the trace as :meth:`~neurodeploy_loihi.program.Program.run` reads the emulator's
    (the readout's v at the last step minus its v before its first input, or the spike counts of each
    population's own T steps, scaled)."""

    trace: Trace
    outputs: np.ndarray


def check_board_ready(program: Any, run_cfg: Any) -> None:
    """Raise NeurodeployError when ``run_cfg`` is a hardware configuration (``Loihi2HwCfg`` or another ``...HwCfg``)
    and ``program`` uses a process with no Loihi 2 hardware model."""
    if run_cfg is None or "HwCfg" not in type(run_cfg).__name__:
        return
    from neurodeploy_loihi.board import binary_processes, readiness

    ready = readiness(binary_processes(program))
    if not ready["board_ready"]:
        raise NeurodeployError(f"{type(run_cfg).__name__} refused: this program is not board-ready: {ready['reason']}")


def run_program_in_lava(
    program: Any,
    x: np.ndarray,
    steps: int,
    *,
    run_cfg: Any = None,
    record_all: bool = True,
    timings: dict[str, float] | None = None,
    skip: int = 0,
) -> ProgramRun:
    """Run a compiled :class:`~neurodeploy_loihi.program.Program` on analog inputs x (B, *input shape) for
    ``steps`` graph steps (``steps + program.delay`` Loihi steps) in one Lava run: the host graph computes the
    input population's current, which becomes its per-sample bias; the samples share one chain of processes
    (see the module). ``run_cfg`` defaults to ``Loihi2SimCfg(select_tag="fixed_pt")``; a ``Loihi2HwCfg`` runs
    it on a board where Lava's Loihi extension is installed. ``record_all=False`` records the readout population
    only (the trace then holds that one population), which is all the outputs need. ``timings``, when given,
    receives the wall seconds of building the processes (``build_s``), of Lava's compile and start-up
    (``start_s``) and of the steps themselves (``run_s``). ``skip``: graph steps at the start the readout leaves
    out (the artifact's readout delay, :func:`neurodeploy.readout.readout_skip`): the outputs are the readout's
    change from graph step ``skip`` to ``steps``, over ``steps - skip``.

    A hardware run configuration (a ``Loihi2HwCfg``) is refused for a program that is not board-ready (a process
    without a Loihi 2 hardware model, :mod:`neurodeploy_loihi.board`): Lava would run that process on the host
    CPU instead. The recorders are host processes that read the populations' state after each step."""
    check_board_ready(program, run_cfg)
    _require_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    total = steps + program.delay
    network = program.network
    groups = _max_groups(network)
    per_chain = max(1, CONV_GROUPS_MAX // groups)
    clock = [time.perf_counter()]
    folder = tempfile.TemporaryDirectory(prefix="neurodeploy-lava-")
    sink = Sink(shape=(1,), buffer=1)
    where = Path(folder.name)
    if network.input_bits:  # event frames: graded spikes from a RingBuffer into population 0's synapse
        frames = program.input_frames(x)
        parts = [frames[i : i + per_chain] for i in range(0, len(frames), per_chain)]
        chains = [_Chain(network, part, total, sink, None, record_all, where) for part in parts]
    else:
        mant, exp = program.input_bias(np.asarray(x, np.float32))
        biases = [(mant[i : i + per_chain], exp[i : i + per_chain]) for i in range(0, len(mant), per_chain)]
        chains = [_Chain(network, None, total, sink, bias, record_all, where) for bias in biases]
    clock.append(time.perf_counter())
    try:
        with _models_found_once_per_class():
            sink.create_runtime(run_cfg=run_cfg if run_cfg is not None else Loihi2SimCfg(select_tag="fixed_pt"))
        clock.append(time.perf_counter())
        sink.run(condition=RunSteps(num_steps=total))
        clock.append(time.perf_counter())
        trace = _join([chain.trace() for chain in chains])
    finally:
        sink.stop()
        folder.cleanup()
    if timings is not None:
        timings.update(zip(("build_s", "start_s", "run_s"), np.diff(clock).tolist()))
    return ProgramRun(trace, _outputs(program, trace, steps, skip))


def run_net_in_netx(
    path: Path | str,
    input_bias: tuple[np.ndarray, np.ndarray] | None,
    steps: int,
    *,
    payloads: np.ndarray | None = None,
    run_cfg: Any = None,
    **network_args: Any,
) -> Trace:
    """Run a netx ``.net`` file with lava-dl's own loader (``lava.lib.dl.netx.hdf5.Network``) for ``steps``
    steps, once per sample, all samples in one Lava run, and record every layer's spikes (or graded payloads),
    u and v at every step, in Lava's (X, Y, C) layout. netx's ``Input`` block takes its input through its
    neurons' bias (its ``inp`` port is not wired to them): ``input_bias`` is the per-sample (bias_mant,
    bias_exp) of that layer, (B, *shape) each, set on each network's input neurons before the run. An SDNN file
    (no Input block) takes ``payloads`` instead, (B, *shape of the first block's input), graded spikes sent into
    the network's ``inp`` at step 1 (nothing after), and records each SigmaDelta's payloads, sigma and act (a
    Sigma's payloads and sigma) as spikes, u and v. ``network_args`` go to ``netx.hdf5.Network`` (e.g.
    ``spike_exp``, ``input_message_bits``). Needs lava-nc and lava-dl."""
    _require_lava()
    try:
        from lava.lib.dl import netx
    except ImportError as exc:
        raise NeurodeployError(
            f"running a .net in netx needs lava-dl ({exc}); `make test-lava` installs lava-dl==0.6.0 in .venv-lava"
        ) from None
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from neurodeploy_loihi.lava_processes import Recorder

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if (input_bias is None) == (payloads is None):
        raise ValueError("give the input as input_bias (a CUBA .net) or as payloads (an SDNN .net), one of them")
    count = len(input_bias[0]) if input_bias is not None else len(payloads)
    folder = tempfile.TemporaryDirectory(prefix="neurodeploy-netx-")
    sink = Sink(shape=(1,), buffer=1)
    recorders: list[list[Any]] = []
    for b in range(count):
        net = netx.hdf5.Network(net_config=str(path), **network_args)
        if input_bias is not None:
            neuron = net.layers[0].neuron
            neuron.bias_mant.init = np.asarray(input_bias[0][b]).astype(np.int32).reshape(neuron.bias_mant.shape)
            neuron.bias_exp.init = np.asarray(input_bias[1][b]).astype(np.int32).reshape(neuron.bias_exp.shape)
        if payloads is not None:
            data = np.zeros((*net.inp.shape, max(steps, 2)), np.int32)  # column t - 1 is sent at step t
            data[..., 0] = np.asarray(payloads[b]).reshape(net.inp.shape)
            Source(data=data).s_out.connect(net.inp)
        mine = []
        for i, block in enumerate(net.layers):
            shape = tuple(block.neuron.s_out.shape)
            recorder = Recorder(shape=shape, steps=steps, path=str(Path(folder.name) / f"{b}-{i}.npy"))
            kind = type(block.neuron).__name__
            recorder.watch(block.neuron, *{"SigmaDelta": ("sigma", "act"), "Sigma": ("sigma", "sigma")}.get(kind, ()))
            recorder.link.connect(sink.a_in)
            mine.append(recorder)
        recorders.append(mine)
    try:
        with _models_found_once_per_class():
            sink.create_runtime(run_cfg=run_cfg if run_cfg is not None else Loihi2SimCfg(select_tag="fixed_pt"))
        sink.run(condition=RunSteps(num_steps=steps))
        records = [[np.load(r.proc_params["path"]) for r in mine] for mine in recorders]
    finally:
        sink.stop()
        folder.cleanup()
    layers = range(len(records[0]))
    return Trace(
        spikes=[np.stack([rec[i][0] for rec in records]) for i in layers],
        u=[np.stack([rec[i][1] for rec in records]).astype(np.int32) for i in layers],
        v=[np.stack([rec[i][2] for rec in records]).astype(np.int32) for i in layers],
    )


def _outputs(program: Any, trace: Trace, steps: int, skip: int = 0) -> np.ndarray:
    """The program's outputs after ``steps`` graph steps, leaving the first ``skip`` out, from a trace of steps +
    delay Loihi steps (of every population, or of the readout population alone)."""
    if not 0 <= skip < steps:
        raise ValueError(f"skip must be 0..{steps - 1} for {steps} steps, got {skip}")
    at = program.readout["population"]
    k = program.network.depths[at]  # the population's depth: where its first input arrives
    at = at if len(trace.v) == len(program.network.layers) else -1
    if program.readout["kind"] == "membrane":
        v = trace.v[at].astype(np.int64)
        start = skip + k  # graph step T, minus graph step skip (before its first input when skip = 0)
        state = v[:, steps + k - 1] - (v[:, start - 1] if start > 0 else 0)
    else:  # population k computes graph step t at Loihi step t + depth: count its steps depth + skip + 1 .. depth + T
        state = trace.spikes[at][:, k + skip : k + steps].sum(axis=1).astype(np.int64)
    return program._readout(state, steps - skip)


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


def _bias_start(neuron) -> dict:
    """SubtractiveLIF's ``bias_start`` where the neuron has one (Lava's LIF has no such parameter: a Neuron of kind
    ``lif`` keeps 0)."""
    return {"bias_start": int(neuron.bias_start)} if neuron.kind != "lif" else {}


def program_chain(program: Any, input_bias: tuple[np.ndarray, np.ndarray], steps: int, watch: Any) -> _Chain:
    """The Lava processes of a compiled program for the samples of ``input_bias`` ((bias_mant, bias_exp), batch
    first), built as :func:`run_program_in_lava` builds them, with no recorder: each population's neuron process
    is handed to ``watch(neurons, shape)``, which attaches the caller's own sinks (a board's host sinks, in
    :mod:`neurodeploy_loihi.device`). ``steps``: the Loihi steps of one run. The chain's ``populations`` and
    ``synapses`` list the processes, in layer order."""
    _require_lava()
    return _Chain(program.network, None, steps, None, input_bias, False, None, watch)
