"""NIR export: an artifact's spiking graph as a NIR file that sinabs, snnTorch and other NIR readers load.

``neurodeploy export DIR --format nir -o model.nir`` writes the float spiking network the artifact was compiled
from (``snn.json``), node for node: Dense as Affine, Conv2d as Conv2d (with its ``input_shape``), an average pool
as a SumPool2d whose 1/(kernel area) goes into the weights after it (sinabs reads no Scale or AvgPool2d), a
flatten as Flatten, IF neurons as IF (R = 1), the leaky neurons of a NIR import as LIF, CubaLIF, LI or CubaLI, a
Threshold as Threshold and a Scale as Scale. A residual Add becomes edges into one node (NIR sums them).

NIR has no fields for what the reader must choose (:mod:`neurodeploy.frontend.nir`): one set of choices holds for
the whole file, and :func:`export_nir` returns it, as the import options that read the file back to the same
network. IF neurons that reset by subtraction and fire on ``>=`` are what sinabs runs (``writer=sinabs``,
``spikes=single``). Leaky neurons are written for forward Euler at the time step ``dt`` (default 1, the time
constants in steps: tau = dt / (1 - decay), R = gain / (1 - decay); snnTorch's importer assumes dt = 1e-4), and
a Delay of n steps as NIR's Delay of n·dt.

What NIR cannot say is refused with the op and what to do: a neuron's initial potential other than 0 (converted
networks start at θ/2: compile with ``--conversion initial=0``), neurons of one file that reset or compare in
different ways, Concat, max pooling, windowed, few-spike and signed neurons, and asymmetric padding.

``--quantized`` (:func:`export_nir_quantized`) writes the network as the artifact's target computes it: the
backend's :meth:`~neurodeploy.backends.base.Backend.quantized_graph`, in the chip's units (loihi: integers of v;
speck: int8 weights, int16 thresholds), through the same writer, with what the graph is and leaves out (the
chip's rounding of the host's input current, Lava's pipeline delay, ...) as the NIR graph's metadata.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.artifact import Artifact
from neurodeploy.backends.base import Backend
from neurodeploy.errors import DataError, NeurodeployError, UnsupportedOpError
from neurodeploy.fileio import check_output_file, write_file_atomic
from neurodeploy.ir import (
    IF,
    LIF,
    Add,
    AvgPool2d,
    Conv2d,
    Delay,
    Dense,
    GlobalAvgPool,
    Graph,
    Reshape,
    Scale,
    Threshold,
)
from neurodeploy.ir.graph import unique_name
from neurodeploy.ir.op import Op
from neurodeploy.passes import PassContext, PassManager, build_pipeline


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise NeurodeployError("writing NIR files needs the nir package: pip install neurodeploy[nir]") from None
    return nir


def _full(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(value, np.float32), shape), np.float32)


def _channel_full(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A scalar or one-per-channel threshold as one per neuron."""
    value = np.asarray(value, np.float32)
    if value.ndim == 1:
        value = value.reshape((-1,) + (1,) * (len(shape) - 1))
    return _full(value, shape)


def _conventions(graph: Graph) -> dict[str, str]:
    """The one set of reading choices the graph's neurons agree on, or an error naming the ones that differ."""
    resets: dict[str, list[str]] = {}
    compares: dict[str, list[str]] = {}
    spikes: dict[str, list[str]] = {}
    for op in graph.ops:
        if isinstance(op, IF):
            if op.initial != 0:
                raise UnsupportedOpError(
                    f"IF '{op.name}' starts at v = {op.initial:g}·θ; NIR's neurons start at 0: compile with "
                    "--conversion initial=0 to export"
                )
            resets.setdefault(op.reset, []).append(op.name)
            compares.setdefault("ge", []).append(op.name)
            spikes.setdefault("single", []).append(op.name)
        elif isinstance(op, LIF) and op.threshold is not None:
            resets.setdefault(op.reset, []).append(op.name)
            compares.setdefault("gt" if op.strict else "ge", []).append(op.name)
            spikes.setdefault("multi" if op.multi else "single", []).append(op.name)
    if "subtract-next" in resets:  # without a leak, subtracting at the next step is subtracting now
        subtract = resets.pop("subtract", [])
        plain = [n for n in subtract if isinstance(graph.op(n), IF)]
        others = [n for n in subtract if n not in plain]
        resets["subtract-next"] += plain
        if others:
            resets["subtract"] = others
    chosen = {"discretization": "euler", "dt": "1"}
    for key, seen in (("reset", resets), ("compare", compares), ("spikes", spikes)):
        if len(seen) > 1:
            listed = "; ".join(f"{value}: {', '.join(repr(n) for n in names[:3])}" for value, names in seen.items())
            raise UnsupportedOpError(
                f"the neurons differ in {key} ({listed}); a NIR file is read with one {key} for all its neurons"
            )
        if seen:
            chosen[key] = next(iter(seen))
    return chosen


def _prepare(graph: Graph, keep_sums: bool = False) -> Graph:
    """A copy in which every average pool is a sum pool: AvgPool2d(k) then Scale(k·k) (written as one SumPool2d)
    then Scale(1/(k·k)), which fold-scale-forward moves into the weights after it where it can. ``keep_sums``
    (a quantized graph): an average pool already followed by Scale(k·k) alone is a sum pool of the chip's and stays
    as it is, and the Scales are then not moved (the weights after a sum pool are the chip's integers)."""
    graph = graph.copy()
    ops: list[Op] = []
    rename: dict[str, str] = {}
    kept = False
    for op in graph.ops:
        if isinstance(op, GlobalAvgPool):
            raise UnsupportedOpError(
                f"GlobalAvgPool '{op.name}': write it as AvgPool2d over the whole map before exporting to NIR"
            )
        op.inputs = tuple(rename.get(v, v) for v in op.inputs)
        ops.append(op)
        if isinstance(op, AvgPool2d):
            area = float(op.kernel[0] * op.kernel[1])
            readers = [o for o in graph.ops if op.output in o.inputs]
            if keep_sums and len(readers) == 1 and _is_area_scale(readers[0], op):
                kept = True
                continue
            total = Scale(name=f"{op.name}.sum", inputs=(op.output,), output=f"{op.output}.sum", value=np.array(area))
            mean = Scale(
                name=f"{op.name}.mean", inputs=(total.output,), output=f"{op.output}.mean", value=np.array(1 / area)
            )
            ops += [total, mean]
            rename[op.output] = mean.output
    graph.ops = ops
    graph.outputs = [rename.get(v, v) for v in graph.outputs]
    graph.verify()
    if not kept:
        PassManager(build_pipeline("fold-scale-forward")).run(graph, PassContext())
    return graph


def _is_area_scale(op: Op, pool: AvgPool2d) -> bool:
    """Whether ``op`` is a Scale(k·k) of ``pool``'s output: with it, the pool is a sum pool."""
    return (
        isinstance(op, Scale)
        and op.inputs == (pool.output,)
        and op.value.size == 1
        and float(op.value) == pool.kernel[0] * pool.kernel[1]
    )


def _node(nir: Any, op: Op, in_shape: tuple[int, ...], out_shape: tuple[int, ...], sum_pool: bool, dt: float) -> Any:
    """The NIR node of one op (``sum_pool``: an AvgPool2d whose Scale(k·k) follows it, written as one SumPool2d)."""
    where = f"{op.op_type} '{op.name}'"
    if isinstance(op, Dense):
        bias = op.bias if op.bias is not None else np.zeros(op.weight.shape[0], np.float32)
        return nir.Affine(weight=op.weight, bias=bias)
    if isinstance(op, Conv2d):
        top, left, bottom, right = op.padding
        if (top, left) != (bottom, right):
            raise UnsupportedOpError(f"{where}: padding {op.padding} is not symmetric, which NIR's Conv2d cannot say")
        bias = op.bias if op.bias is not None else np.zeros(op.weight.shape[0], np.float32)
        return nir.Conv2d(
            input_shape=tuple(in_shape[1:]),
            weight=op.weight,
            stride=op.stride,
            padding=(top, left),
            dilation=op.dilation,
            groups=op.groups,
            bias=bias,
        )
    if isinstance(op, AvgPool2d):
        top, left, bottom, right = op.padding
        if (any(op.padding) and not op.count_include_pad) or (top, left) != (bottom, right) or op.ceil_mode:
            raise UnsupportedOpError(f"{where}: a padded or ceil-mode average pool has no NIR form here")
        kind = nir.SumPool2d if sum_pool else nir.AvgPool2d
        return kind(kernel_size=np.array(op.kernel), stride=np.array(op.stride), padding=np.array([top, left]))
    if isinstance(op, Reshape):
        if len(op.shape) != 1:
            raise UnsupportedOpError(f"{where}: only a flatten (to one axis) has a NIR form")
        return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
    if isinstance(op, Scale):
        return nir.Scale(scale=_full(op.value, out_shape))
    if isinstance(op, Threshold):
        return nir.Threshold(threshold=_full(op.threshold, out_shape))
    if isinstance(op, IF):
        return nir.IF(r=_full(1.0, out_shape), v_threshold=_channel_full(op.threshold, out_shape))
    if isinstance(op, LIF):
        return _leaky(nir, op, out_shape, dt)
    if isinstance(op, Delay):  # in the file's time unit: steps x dt
        return nir.Delay(delay=_full(op.steps * dt, out_shape))
    raise UnsupportedOpError(f"{where}: NIR has no node for {op.op_type}")


def _leaky(nir: Any, op: LIF, shape: tuple[int, ...], dt: float) -> Any:
    """LIF, CubaLIF, LI or CubaLI for forward Euler at ``dt``: decay = 1 - dt/tau, gain = R·dt/tau."""
    where = f"LIF '{op.name}'"
    decay = np.asarray(op.decay, np.float64)
    if np.any(decay >= 1) or np.any(decay <= 0):
        if np.all(decay == 1) and op.syn_decay is None and not np.any(op.drive):
            if op.threshold is None:
                return nir.I(r=_full(op.gain, shape))
            return nir.IF(r=_full(op.gain, shape), v_threshold=_full(op.threshold, shape))
        raise UnsupportedOpError(f"{where}: a decay of 0 or 1 with a leak term has no NIR time constant")
    steps = 1.0 / (1.0 - decay)  # the time constant in steps
    tau = dt * steps
    params: dict[str, Any] = {
        "r": _full(np.asarray(op.gain, np.float64) * steps, shape),
        "v_leak": _full(np.asarray(op.drive, np.float64) * steps, shape),
    }
    if op.syn_decay is not None:
        syn_steps = 1.0 / (1.0 - np.asarray(op.syn_decay, np.float64))
        params.update(
            tau_syn=_full(dt * syn_steps, shape),
            tau_mem=_full(tau, shape),
            w_in=_full(np.asarray(op.syn_gain, np.float64) * syn_steps, shape),
        )
        if op.threshold is None:
            if not hasattr(nir, "CubaLI"):
                raise UnsupportedOpError(f"{where}: this nir package has no CubaLI; install nir >= 1.0.5")
            return nir.CubaLI(**params)
        return nir.CubaLIF(v_threshold=_full(op.threshold, shape), **params)
    params["tau"] = _full(tau, shape)
    if op.threshold is None:
        return nir.LI(**params)
    return nir.LIF(v_threshold=_full(op.threshold, shape), **params)


def export_nir(artifact: Artifact, out: str | Path, dt: float = 1.0) -> dict[str, str]:
    """Write the artifact's spiking graph to the NIR file ``out`` (replaced atomically if it is a regular file),
    time constants in units of ``dt`` per step (snnTorch's reader assumes dt = 1e-4; sinabs' counts steps, dt =
    1); return the import options that read it back (``neurodeploy compile out -I KEY=VALUE ...``)."""
    _check_dt(dt)
    nir = _nir()
    check_output_file(out)
    return _write(nir, _prepare(artifact.read_graph("snn")), out, dt, {})


def export_nir_quantized(artifact: Artifact, out: str | Path, dt: float = 1.0) -> tuple[dict[str, str], dict[str, Any]]:
    """Write the network as the artifact's target computes it to the NIR file ``out``: the target's own graph in
    its units (:meth:`~neurodeploy.backends.base.Backend.quantized_graph`: integer weights, thresholds and
    biases), written as :func:`export_nir` writes a float graph. Return the import options that read it back and
    what the file's metadata says about it (the target, its units, what the graph leaves out)."""
    _check_dt(dt)
    nir = _nir()
    check_output_file(out)
    from neurodeploy.backends.registry import get_backend

    backend = get_backend(artifact.target)
    try:
        graph = backend.quantized_graph(artifact)
    except UnsupportedOpError as exc:
        if type(backend).quantized_graph is Backend.quantized_graph:
            raise UnsupportedOpError(
                f"{exc}; --quantized exports artifacts of the targets {', '.join(quantized_targets())}"
            ) from None
        raise
    metadata = {str(k): v for k, v in graph.meta.get("nir_export", {}).items()}
    return _write(nir, _prepare(graph, keep_sums=True), out, dt, metadata), metadata


def quantized_targets() -> list[str]:
    """The installed targets whose backend writes a quantized graph (``export --quantized``)."""
    from neurodeploy.backends.registry import available_backends

    found = []
    for name, entry in sorted(available_backends().items()):
        try:
            cls = entry.load()
        except NeurodeployError:
            continue
        if cls.quantized_graph is not Backend.quantized_graph:
            found.append(name)
    return found


def _check_dt(dt: float) -> None:
    if not (np.isfinite(dt) and dt > 0):
        raise DataError(f"the time step must be positive, got {dt}")


def _write(nir: Any, graph: Graph, out: str | Path, dt: float, metadata: dict[str, Any]) -> dict[str, str]:
    """Write a prepared ``graph`` (:func:`_prepare`) as NIR to ``out`` with ``metadata`` (the NIR graph's); return
    the import options."""
    if len(graph.inputs) != 1:
        raise UnsupportedOpError(f"the graph has {len(graph.inputs)} inputs; export handles one")
    options = {**_conventions(graph), "dt": f"{dt:g}"}
    types = graph.types()
    (input_name,) = graph.inputs
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(graph.inputs[input_name].shape)})}
    sources: dict[str, list[str]] = {input_name: ["input"]}  # value -> the NIR nodes whose outputs sum to it
    edges: list[tuple[str, str]] = []
    skip = set()
    names: dict[str, str] = {}  # op name -> node name: no "/" (an HDF5 path separator), unique
    for op in graph.ops:
        names[op.name] = unique_name(op.name.replace("/", ".").strip(".") or "node", {"input", *names.values()})
    for i, op in enumerate(graph.ops):
        if op in skip:
            continue
        if isinstance(op, Add):
            sources[op.output] = [s for v in op.inputs for s in sources[v]]
            continue
        nxt = graph.ops[i + 1] if i + 1 < len(graph.ops) else None
        sum_pool = (
            isinstance(op, AvgPool2d)
            and nxt is not None
            and _is_area_scale(nxt, op)
            and sum(op.output in o.inputs for o in graph.ops) == 1
        )
        in_shape = types[op.inputs[0]].shape
        node = names[op.name]
        nodes[node] = _node(nir, op, in_shape, types[op.output].shape, sum_pool, dt)
        edges += [(s, node) for s in sources[op.inputs[0]]]
        out_value = op.output
        if sum_pool and nxt is not None:
            skip.add(nxt)
            out_value = nxt.output
        sources[out_value] = [node]
    for k, value in enumerate(graph.outputs):
        name = unique_name("output" if len(graph.outputs) == 1 else f"output{k}", set(nodes))
        nodes[name] = nir.Output(output_type={"output": np.array(types[value].shape)})
        edges += [(s, name) for s in sources[value]]
    buffer = io.BytesIO()
    try:  # (newer nir packages check the graph's types as it is built)
        nir.write(buffer, nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata))
    except (TypeError, ValueError) as exc:
        raise DataError(f"the nir package cannot write this graph: {exc}") from None
    write_file_atomic(out, buffer.getvalue())
    return options
