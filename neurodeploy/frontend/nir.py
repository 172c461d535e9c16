"""NIR import: a spiking network written by snnTorch, sinabs, Norse, Rockpool, ... (the Neuromorphic
Intermediate Representation, an HDF5 file) as an IR graph that arrives already spiking.

NIR describes neurons in continuous time and leaves their discretization to the reader; the writers do not agree
on it. Every choice is an import option (``--import-option KEY=VALUE``) with a stated default, and the graph
records the choices it was read with (the artifact's manifest keeps them under ``source.import_options``):

``dt``
    The time step, in the file's time unit. No default: a graph whose neurons have time constants (LIF, LI,
    CubaLIF, CubaLI) needs it, and the error lists those nodes. snnTorch writes its files for dt = 1e-4.
``discretization``
    How a leaky neuron's ``tau dv/dt = (v_leak - v) + R·I`` becomes one step.
    ``euler`` (default; snnTorch, Norse): v <- (1 - dt/tau)·v + (dt/tau)·(v_leak + R·I).
    ``exact`` (zero-order hold): v <- e^(-dt/tau)·v + (1 - e^(-dt/tau))·(v_leak + R·I).
    ``sinabs`` (tau counted in steps, input not scaled; sinabs' LIF and ExpLeak with ``norm_input=False``):
    v <- e^(-dt/tau)·v + R·I + (1 - e^(-dt/tau))·v_leak.
    A synaptic current (CubaLIF, CubaLI: ``tau_syn dI/dt = -I + w_in·S``) is discretized the same way and the
    membrane integrates the step's new current. IF and I integrate R·I per step (v <- v + R·I), as every reader
    of NIR does (NIR's ODE would scale it by dt).
``reset``
    ``zero`` (default; NIR's definition): a neuron that fires is set to ``v_reset`` (0 where the file has none).
    ``subtract``: the threshold is subtracted (sinabs' IAF and LIF; snnTorch's IF).
    ``subtract-next``: the threshold is subtracted at the next step, after the decay (snnTorch's ``Leaky`` and
    ``Synaptic`` as they train, with their default ``reset_delay=True``).
``compare``
    ``gt`` (default; NIR's docstrings, snnTorch): a neuron fires when v > v_threshold. ``ge``: v >= v_threshold
    (sinabs).
``spikes``
    ``single`` (default): a neuron sends at most one spike a step. ``multi``: floor(v / v_threshold) spikes at
    once, all subtracted (sinabs' default ``MultiSpike``, which its ``from_nir`` builds; needs ``reset=subtract``
    and ``compare=ge``). The output is then a spike count.
``writer``
    Sets the options above as a library runs the networks it writes: ``snntorch`` (dt = 1e-4, euler,
    subtract-next, gt: ``Leaky`` and ``Synaptic`` with their defaults, not snnTorch's own ``import_from_nir``,
    which rebuilds them with reset to zero) or
    ``sinabs`` (dt = 1, sinabs, subtract, ge). Options given beside it win.
``conv_input_shape``
    ``check`` (default): a Conv1d/Conv2d ``input_shape`` that disagrees with the shape the graph gives that
    node is an error (NIR leaves the field optional and writers fill it inconsistently). ``ignore``: the
    graph's shapes win.

Within a step, nodes run in graph order with no delay (a spike reaches every later node in the step it is sent),
as a PyTorch ``Sequential`` of snnTorch or sinabs layers runs. Several edges into one node are summed (NIR's
rule). Nested graphs are inlined. A Delay node (``delay``, in the file's time unit, needs ``dt``) becomes a delay
of ``delay / dt`` whole steps, the same for every element: its output at step t is its input of step t - steps.
A recurrent graph (a cycle), delays that are not whole steps or differ between elements, and node types or
parameter shapes this reader cannot map are refused in one error that lists every such node, its type and what
to do.

The file is read into memory whole and walked with h5py alone (no pickled or external data): links to other files,
symbolic links, external or virtual datasets and anything but numbers and strings are refused, each before its
value is read, and the arrays together count against ``NEURODEPLOY_MAX_CONSTANT_BYTES``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from neurodeploy import limits
from neurodeploy.errors import ModelLoadError, UnsupportedOpError
from neurodeploy.fileio import read_regular_file
from neurodeploy.ir import (
    IF,
    LIF,
    Add,
    AvgPool2d,
    Conv2d,
    Delay,
    Dense,
    Graph,
    Reshape,
    Scale,
    TensorType,
    Threshold,
)
from neurodeploy.ir.graph import topological_order, unique_name
from neurodeploy.ir.neurons import channel_threshold
from neurodeploy.ir.op import Op
from neurodeploy.ir.ops import MAX_DELAY_STEPS

DEFAULTS: dict[str, str | None] = {
    "dt": None,
    "discretization": "euler",
    "reset": "zero",
    "compare": "gt",
    "writer": None,
    "spikes": "single",
    "conv_input_shape": "check",
}
CHOICES = {
    "discretization": ("euler", "exact", "sinabs"),
    "reset": ("zero", "subtract", "subtract-next"),
    "compare": ("gt", "ge"),
    "writer": ("snntorch", "sinabs"),
    "spikes": ("single", "multi"),
    "conv_input_shape": ("check", "ignore"),
}
WRITERS: dict[str, dict[str, str]] = {
    "snntorch": {"dt": "0.0001", "discretization": "euler", "reset": "subtract-next", "compare": "gt"},
    "sinabs": {"dt": "1", "discretization": "sinabs", "reset": "subtract", "compare": "ge"},
}
MAX_DEPTH = 32
"""Nesting of HDF5 groups (graphs in graphs) this reader follows."""
LEAKY = ("LIF", "LI", "CubaLIF", "CubaLI")


def resolve_options(given: dict[str, str] | None) -> dict[str, Any]:
    """The import options: ``given`` (strings, as on the command line) over the writer's preset over the
    defaults; an unknown key or value is a ModelLoadError naming the choices."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ModelLoadError(f"unknown NIR import option(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    for key, value in given.items():
        if key in CHOICES and value not in CHOICES[key]:
            raise ModelLoadError(f"NIR import option {key}={value!r}: choose one of {', '.join(CHOICES[key])}")
    preset = WRITERS.get(given.get("writer") or "", {})
    merged: dict[str, Any] = {**DEFAULTS, **preset, **given}
    if merged["dt"] is not None:
        try:
            dt = float(merged["dt"])
        except ValueError:
            dt = math.nan
        if not (math.isfinite(dt) and dt > 0):
            raise ModelLoadError(f"NIR import option dt={merged['dt']!r}: give a positive time step, e.g. dt=0.001")
        merged["dt"] = dt
    return merged


# -- reading the file --------------------------------------------------------------------------------------


def _read_tree(path: Path) -> dict[str, Any]:
    """The file's ``node`` group as nested dicts of numpy arrays and strings, checked as it is walked."""
    try:
        import h5py
    except ImportError:
        raise ModelLoadError(f"{path}: reading NIR files needs h5py (pip install h5py)") from None
    try:
        data = read_regular_file(path, cap="max_file_bytes", error=ModelLoadError)
    except FileNotFoundError:
        raise ModelLoadError(f"Model file {path} does not exist.") from None
    try:
        handle = h5py.File(io.BytesIO(data), "r")
    except OSError:
        raise ModelLoadError(f"{path} is not a NIR file: it is not HDF5") from None
    with handle as f:
        if "node" not in f:
            raise ModelLoadError(f"{path} is an HDF5 file but not a NIR file: it has no 'node' group")
        return _walk(h5py, f, "node", f"{path}", [0], 0)


def _walk(h5py: Any, parent: Any, key: str, where: str, held: list[int], depth: int) -> Any:
    """``parent[key]`` read as plain values; ``held`` counts the bytes of the arrays read so far (the file's arrays
    together are one constant for NEURODEPLOY_MAX_CONSTANT_BYTES)."""
    link = parent.get(key, getlink=True)
    here = f"{where}/{key}" if depth else f"{where}: /{key}"
    if not isinstance(link, h5py.HardLink):
        kind = "a link to another file" if isinstance(link, h5py.ExternalLink) else "a symbolic link"
        raise ModelLoadError(f"{here} is {kind}; a NIR file holds its own data")
    item = parent[key]
    if isinstance(item, h5py.Group):
        if depth >= MAX_DEPTH:
            raise ModelLoadError(f"{here}: groups nested more than {MAX_DEPTH} deep")
        return {str(k): _walk(h5py, item, k, here, held, depth + 1) for k in item}
    if not isinstance(item, h5py.Dataset):
        raise ModelLoadError(f"{here} is neither a group nor a dataset")
    if item.external or item.is_virtual:
        raise ModelLoadError(f"{here} keeps its data outside the file (external or virtual dataset)")
    kind = item.dtype.kind
    if h5py.check_string_dtype(item.dtype) is not None or kind == "S":
        value = item[()]
        if isinstance(value, np.ndarray):  # edges: an array of (source, target) names
            return [[v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row] for row in value]
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if kind not in "biuf":
        raise ModelLoadError(f"{here} holds {item.dtype} values; NIR files hold numbers and strings")
    held[0] += int(item.size) * item.dtype.itemsize  # from the shape: before a compressed array is inflated
    limits.check("max_constant_bytes", held[0], f"{where}: its arrays")
    return np.asarray(item[()])


# -- the graph -----------------------------------------------------------------------------------------------


@dataclass
class _Reader:
    options: dict[str, Any]
    ops: list[Op] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    types: dict[str, TensorType] = field(default_factory=dict)

    def value(self, base: str) -> str:
        name = unique_name(base, self.names)
        self.names.add(name)
        return name

    def add(self, op: Op) -> str:
        op.verify()
        self.types[op.output] = op.infer([self.types[v] for v in op.inputs])
        self.ops.append(op)
        return op.output


def _array(node: dict[str, Any], key: str, where: str, default: Any = None) -> np.ndarray:
    if key not in node:
        if default is None:
            raise ModelLoadError(f"{where}: the node has no {key!r}")
        return np.asarray(default, np.float32)
    value = node[key]
    if not isinstance(value, np.ndarray) and not isinstance(value, (int, float, np.number)):
        raise ModelLoadError(f"{where}: {key!r} is not a number or an array of numbers")
    array = np.asarray(value, np.float64)
    if not np.all(np.isfinite(array)):
        raise ModelLoadError(f"{where}: {key!r} holds values that are not finite")
    return array


def _ints(node: dict[str, Any], key: str, where: str, count: int, default: Any = None) -> tuple[int, ...]:
    raw = _array(node, key, where, default)
    flat = raw.reshape(-1)
    if flat.size == 1:
        flat = np.repeat(flat, count)
    if flat.size != count or np.any(flat != np.round(flat)):
        raise ModelLoadError(f"{where}: {key!r} must be {count} whole number(s), got {raw.tolist()}")
    return tuple(int(v) for v in flat)


def _shape(node: dict[str, Any], where: str) -> tuple[int, ...]:
    shape = _ints(node, "shape", where, int(np.asarray(node.get("shape", [])).size))
    if not shape or any(d < 1 for d in shape):
        raise ModelLoadError(f"{where}: shape {list(shape)} is not a shape of positive sizes")
    return shape


def _fit(array: np.ndarray, shape: tuple[int, ...], what: str, where: str) -> np.ndarray:
    """A neuron parameter as the IR keeps it: a scalar when all equal, else broadcast to ``shape``."""
    if array.size == 1:
        return np.asarray(array.reshape(()), np.float32)
    try:
        full = np.broadcast_to(array, shape)
    except ValueError:
        raise ModelLoadError(
            f"{where}: {what} of shape {list(array.shape)} does not fit the layer {list(shape)}"
        ) from None
    if np.all(full == full.reshape(-1)[0]):
        return np.asarray(full.reshape(-1)[0], np.float32)
    return np.ascontiguousarray(full, np.float32)


def _decay(reader: _Reader, tau: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(the per-step decay, the weight of the driving term) for time constant ``tau``."""
    if np.any(tau <= 0):
        raise ModelLoadError(f"{where}: time constants must be positive")
    ratio = reader.options["dt"] / tau
    if reader.options["discretization"] == "euler":
        if np.any(ratio > 1):
            raise ModelLoadError(
                f"{where}: dt = {reader.options['dt']:g} is larger than its time constant (min {tau.min():g}): forward "
                "Euler would overshoot; give a smaller dt or --import-option discretization=exact"
            )
        return 1 - ratio, ratio
    decay = np.exp(-ratio)
    return decay, 1 - decay


def _neuron(reader: _Reader, node: dict[str, Any], kind: str, source: str, name: str, where: str) -> str:
    shape = reader.types[source].shape
    opts = reader.options
    threshold = None if kind in ("LI", "CubaLI", "I") else _array(node, "v_threshold", where)
    r = _array(node, "r", where, 1.0)
    v_reset = _array(node, "v_reset", where, 0.0)
    strict = opts["compare"] == "gt"
    multi = opts["spikes"] == "multi" and threshold is not None
    # without a leak, subtracting at the next step is subtracting now (nothing decays in between)
    reset = "subtract" if kind == "IF" and opts["reset"] == "subtract-next" else opts["reset"]
    if multi and (reset != "subtract" or strict):
        raise ModelLoadError(f"{where}: spikes=multi needs reset=subtract and compare=ge (sinabs' MultiSpike)")
    if not multi and threshold is not None and kind == "IF" and (reset == "subtract" or not np.any(v_reset)):
        theta = channel_threshold(_fit(threshold, shape, "v_threshold", where))
        if not strict and theta is not None and np.all(r == 1) and np.all(theta > 0):
            return reader.add(
                IF(
                    name=name,
                    inputs=(source,),
                    output=reader.value(name),
                    threshold=theta,
                    reset=reset,
                    initial=0.0,
                )
            )
    decay, gain, drive = np.ones(()), r, np.zeros(())
    syn_decay = syn_gain = None
    if kind in LEAKY:
        tau_key = "tau" if kind in ("LIF", "LI") else "tau_mem"
        decay, weight = _decay(reader, _array(node, tau_key, where), where)
        v_leak = _array(node, "v_leak", where, 0.0)
        drive = weight * v_leak
        gain = r if opts["discretization"] == "sinabs" else weight * r
        if kind.startswith("Cuba"):
            syn_decay, syn_weight = _decay(reader, _array(node, "tau_syn", where), where)
            w_in = _array(node, "w_in", where, 1.0)
            syn_gain = w_in if opts["discretization"] == "sinabs" else syn_weight * w_in

    def fit(value: np.ndarray | None, what: str) -> np.ndarray | None:
        return None if value is None else _fit(value, shape, what, where)

    return reader.add(
        LIF(
            name=name,
            inputs=(source,),
            output=reader.value(name),
            decay=_fit(decay, shape, "the decay", where),
            gain=_fit(gain, shape, "r", where),
            drive=_fit(drive, shape, "v_leak", where),
            threshold=fit(threshold, "v_threshold"),
            syn_decay=fit(syn_decay, "tau_syn"),
            syn_gain=fit(syn_gain, "w_in"),
            reset=reset,
            v_reset=fit(v_reset, "v_reset") if np.any(v_reset) and reset == "zero" else None,
            strict=strict,
            multi=multi,
        )
    )


def _padding(node: dict[str, Any], where: str, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    raw = node.get("padding", 0)
    if isinstance(raw, str):
        if raw == "valid":
            return (0, 0, 0, 0)
        if raw == "same":
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)
        raise ModelLoadError(f"{where}: padding {raw!r} is none of a number, a pair, 'same' or 'valid'")
    ph, pw = _ints(node, "padding", where, 2)
    return (ph, pw, ph, pw)


def _conv(reader: _Reader, node: dict[str, Any], kind: str, source: str, name: str, where: str) -> str:
    weight = _array(node, "weight", where)
    one_d = kind == "Conv1d"
    if weight.ndim != (3 if one_d else 4):
        raise ModelLoadError(f"{where}: weight of shape {list(weight.shape)} is not a {kind} weight")
    in_shape = reader.types[source].shape
    if len(in_shape) != (2 if one_d else 3):
        raise ModelLoadError(f"{where}: {kind} takes (C, {'N' if one_d else 'H, W'}) input, got {list(in_shape)}")
    given = node.get("input_shape")
    if given is not None and reader.options["conv_input_shape"] == "check":
        spatial = tuple(int(v) for v in np.asarray(given).reshape(-1))
        if spatial and spatial != tuple(in_shape[1:]) and spatial != tuple(in_shape):
            raise ModelLoadError(
                f"{where}: its input_shape {list(spatial)} disagrees with the {list(in_shape)} the graph gives it; "
                "fix the file, or --import-option conv_input_shape=ignore to trust the graph"
            )
    n = 1 if one_d else 2
    stride, dilation = _ints(node, "stride", where, n, 1), _ints(node, "dilation", where, n, 1)
    groups = _ints(node, "groups", where, 1, 1)[0]
    kernel = tuple(weight.shape[2:])
    if one_d:
        source = reader.add(
            Reshape(
                name=f"{name}_as_2d",
                inputs=(source,),
                output=reader.value(f"{name}_as_2d"),
                shape=(in_shape[0], 1, in_shape[1]),
            )
        )
        weight, stride, dilation, kernel = weight[:, :, None, :], (1, *stride), (1, *dilation), (1, *kernel)
        raw = node.get("padding", 0)
        if not isinstance(raw, str):
            node = {**node, "padding": np.array([0, _ints(node, "padding", where, 1)[0]])}
    padding = _padding(node, where, kernel, dilation)
    bias = _array(node, "bias", where, np.zeros(weight.shape[0]))
    if bias.size == 1 and weight.shape[0] != 1:
        bias = np.full(weight.shape[0], float(bias.reshape(-1)[0]))
    out = reader.add(
        Conv2d(
            name=name,
            inputs=(source,),
            output=reader.value(name),
            weight=weight,
            bias=bias if np.any(bias) else None,
            stride=cast("tuple[int, int]", stride),
            padding=cast("tuple[int, int, int, int]", padding),
            dilation=cast("tuple[int, int]", dilation),
            groups=groups,
        )
    )
    if one_d:
        o, _, w = reader.types[out].shape
        out = reader.add(
            Reshape(name=f"{name}_as_1d", inputs=(out,), output=reader.value(f"{name}_as_1d"), shape=(o, w))
        )
    return out


def _pool(reader: _Reader, node: dict[str, Any], kind: str, source: str, name: str, where: str) -> str:
    kernel = _ints(node, "kernel_size", where, 2)
    stride = _ints(node, "stride", where, 2, kernel)
    ph, pw = _ints(node, "padding", where, 2, 0)
    out = reader.add(
        AvgPool2d(
            name=name,
            inputs=(source,),
            output=reader.value(name),
            kernel=cast("tuple[int, int]", kernel),
            stride=cast("tuple[int, int]", stride),
            padding=(ph, pw, ph, pw),
            count_include_pad=True,
        )
    )
    if kind == "SumPool2d":  # NIR: AvgPool2d is SumPool2d followed by a Scale of 1 / (kernel area)
        out = reader.add(
            Scale(
                name=f"{name}_sum",
                inputs=(out,),
                output=reader.value(f"{name}_sum"),
                value=np.array(kernel[0] * kernel[1], np.float32),
            )
        )
    return out


def _flatten(reader: _Reader, node: dict[str, Any], source: str, name: str, where: str) -> str:
    shape = reader.types[source].shape
    rank = len(shape)
    start, end = (_ints(node, k, where, 1, d)[0] for k, d in (("start_dim", 0), ("end_dim", -1)))
    start, end = start % rank if start < 0 else start, end % rank if end < 0 else end
    if not 0 <= start <= end < rank:
        raise ModelLoadError(f"{where}: cannot flatten dims {start}..{end} of a rank-{rank} value {list(shape)}")
    out = (*shape[:start], int(np.prod(shape[start : end + 1])), *shape[end + 1 :])
    return reader.add(Reshape(name=name, inputs=(source,), output=reader.value(name), shape=out))


def _linear(reader: _Reader, node: dict[str, Any], kind: str, source: str, name: str, where: str) -> str:
    weight = _array(node, "weight", where)
    if weight.ndim != 2:
        raise ModelLoadError(f"{where}: weight of shape {list(weight.shape)} is not (out, in)")
    bias = _array(node, "bias", where) if kind == "Affine" else None
    if reader.types[source].rank != 1:
        raise ModelLoadError(
            f"{where}: {kind} reads a vector, but its input is {list(reader.types[source].shape)} (add a Flatten)"
        )
    return reader.add(Dense(name=name, inputs=(source,), output=reader.value(name), weight=weight, bias=bias))


def _delay(reader: _Reader, node: dict[str, Any], source: str, name: str, where: str) -> str:
    """A Delay node: one delay for every element, a whole number of steps (0: no op)."""
    delay = np.asarray(_array(node, "delay", where), np.float64)
    steps = delay / reader.options["dt"]
    whole = np.rint(steps)
    if delay.size == 0 or not np.all(np.isfinite(steps)) or np.any(np.abs(steps - whole) > 1e-6 * np.maximum(1, whole)):
        raise ModelLoadError(
            f"{where}: delays of {np.unique(steps)[:5].tolist()} steps (delay / dt, dt = {reader.options['dt']:g}) "
            "are not whole numbers of steps: give the dt the delays were written for (--import-option dt=...)"
        )
    if np.any(whole != whole.reshape(-1)[0]):
        raise ModelLoadError(
            f"{where}: the elements have different delays ({np.unique(whole)[:5].astype(int).tolist()} steps); "
            "neurodeploy maps one delay per node: split the node by delay"
        )
    count = int(whole.reshape(-1)[0])
    if not 0 <= count <= MAX_DELAY_STEPS:
        raise ModelLoadError(f"{where}: a delay of {count} steps is outside 0..{MAX_DELAY_STEPS}")
    if count == 0:
        return source
    if delay.size != 1 and delay.shape != reader.types[source].shape:
        raise ModelLoadError(f"{where}: delay of shape {list(delay.shape)} does not fit {reader.types[source]}")
    return reader.add(Delay(name=name, inputs=(source,), output=reader.value(name), steps=count))


Handler = Callable[[_Reader, dict[str, Any], str, str, str, str], str]
HANDLERS: dict[str, Handler] = {
    "Affine": _linear,
    "Linear": _linear,
    "Conv1d": _conv,
    "Conv2d": _conv,
    "AvgPool2d": _pool,
    "SumPool2d": _pool,
    "Flatten": lambda r, n, k, s, name, w: _flatten(r, n, s, name, w),
    "Delay": lambda r, n, k, s, name, w: _delay(r, n, s, name, w),
    "Scale": lambda r, n, k, s, name, w: r.add(
        Scale(
            name=name,
            inputs=(s,),
            output=r.value(name),
            value=_fit(_array(n, "scale", w), r.types[s].shape, "scale", w),
        )
    ),
    "Threshold": lambda r, n, k, s, name, w: r.add(
        Threshold(
            name=name,
            inputs=(s,),
            output=r.value(name),
            threshold=_fit(_array(n, "threshold", w), r.types[s].shape, "threshold", w),
            strict=r.options["compare"] == "gt",
        )
    ),
    **dict.fromkeys(("IF", "LIF", "LI", "CubaLIF", "CubaLI", "I"), _neuron),
}
REFUSED: dict[str, str] = {}
"""Node types named with the reason they are refused (none at present; unknown types are refused as such)."""


def _ir_name(name: str) -> str:
    return name.replace("/", ".")


def _node_type(node: Any, where: str) -> str:
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise ModelLoadError(f"{where}: not a NIR node (no 'type')")
    return node["type"]


def _flatten_graph(
    node: dict[str, Any], prefix: str, where: str
) -> tuple[dict[str, Any], list[tuple[str, str]], list[str], list[str]]:
    """Nodes by their full name (a nested graph's nodes as ``graph/node``: HDF5 names hold no "/"), the edges of
    ``node`` (a NIRGraph) with nested graphs inlined, and the full names of its own Input and Output nodes. A
    nested graph's Input and Output nodes become pass-through nodes ("_Identity") joined to its neighbours."""
    nodes = node.get("nodes")
    if not isinstance(nodes, dict):
        raise ModelLoadError(f"{where}: a NIRGraph without nodes")
    edges_raw = node.get("edges", [])
    if isinstance(edges_raw, np.ndarray) and edges_raw.size == 0:
        edges_raw = []
    if not isinstance(edges_raw, list) or any(len(e) != 2 for e in edges_raw):
        raise ModelLoadError(f"{where}: its edges are not (source, target) pairs")
    flat: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    inner_in: dict[str, list[str]] = {}
    inner_out: dict[str, list[str]] = {}
    for key, child in nodes.items():
        name = f"{prefix}{key}"
        kind = _node_type(child, f"{where}, node {key!r}")
        if kind == "NIRGraph":
            sub, sub_edges, sub_in, sub_out = _flatten_graph(child, f"{name}/", f"{where}, node {key!r}")
            for own in (*sub_in, *sub_out):
                sub[own] = {**sub[own], "type": "_Identity"}
            flat.update(sub)
            edges += sub_edges
            inner_in[name], inner_out[name] = sub_in, sub_out
        else:
            flat[name] = child
    for source, target in edges_raw:
        src, dst = f"{prefix}{source}", f"{prefix}{target}"
        for end in (src, dst):
            if end not in flat and end not in inner_in:
                raise ModelLoadError(f"{where}: an edge names {end.removeprefix(prefix)!r}, which is not a node")
        for s in inner_out.get(src, [src]):
            for d in inner_in.get(dst, [dst]):
                edges.append((s, d))
    own_in = [f"{prefix}{k}" for k, v in nodes.items() if v["type"] == "Input"]
    own_out = [f"{prefix}{k}" for k, v in nodes.items() if v["type"] == "Output"]
    return flat, edges, own_in, own_out


def _order(nodes: dict[str, Any], edges: list[tuple[str, str]], where: str) -> list[str]:
    """Topological order of the nodes; a cycle is refused, naming its nodes."""
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for s, d in edges:
        out[s].append(d)
    order = topological_order(list(nodes), out)
    if len(order) != len(nodes):
        left = {n for n in nodes if n not in order}  # the cycles and what they feed: drop what feeds no cycle
        while dead := {n for n in left if not any(d in left for d in out[n])}:
            left -= dead
        cyclic = [f"{n!r} ({nodes[n].get('type')})" for n in nodes if n in left]
        raise UnsupportedOpError(
            f"{where}: the graph has a cycle (a recurrent connection) through {', '.join(cyclic)}; neurodeploy runs "
            "feed-forward graphs (every node once per step, in order): unroll the recurrence or remove it"
        )
    return order


_RANK = {"Affine": 1, "Linear": 1, "Conv1d": 2, "Conv2d": 3, "SumPool2d": 3, "AvgPool2d": 3}
"""The rank per sample of what these nodes read."""


def _without_batch(shape: tuple[int, ...], readers: list[dict[str, Any]]) -> tuple[int, ...]:
    """An Input's shape per sample: writers that trace a batch (snnTorch's ``export_to_nir``) record it in the
    Input's shape; a leading dimension one more than every reader takes is that batch, and is dropped."""
    wanted = {_RANK[r["type"]] for r in readers if r.get("type") in _RANK}
    if len(wanted) == 1 and len(shape) == wanted.pop() + 1:
        return shape[1:]
    return shape


def import_nir(path: str | Path, *, input_shapes: Any = None, options: dict[str, str] | None = None) -> Graph:
    """The IR graph of the NIR file ``path`` (see the module's docstring for ``options``). ``input_shapes``
    replaces an Input node's shape (one shape, or a dict by input node name)."""
    path = Path(path)
    resolved = resolve_options(options)
    tree = _read_tree(path)
    if _node_type(tree, f"{path}") != "NIRGraph":
        raise ModelLoadError(f"{path}: its top node is a {tree['type']}, not a NIRGraph")
    nodes, edges, _, _ = _flatten_graph(tree, "", f"{path}")
    order = _order(nodes, edges, f"{path}")
    problems = []
    for name in order:
        kind = nodes[name]["type"]
        if kind in REFUSED:
            problems.append(f"{name!r} ({kind}): {REFUSED[kind]}")
        elif kind not in HANDLERS and kind not in ("Input", "Output", "_Identity"):
            problems.append(f"{name!r} ({kind}): not a NIR node type neurodeploy reads")
    leaky = [f"{n!r} ({nodes[n]['type']})" for n in order if nodes[n]["type"] in (*LEAKY, "Delay")]
    if leaky and resolved["dt"] is None:
        problems.append(
            f"{', '.join(leaky)}: time constants and delays need a time step: --import-option dt=... in the file's "
            "time unit "
            "(snnTorch's files: --import-option writer=snntorch; sinabs': writer=sinabs)"
        )
    if problems:
        raise UnsupportedOpError(f"{path}: cannot import {len(problems)} node(s):\n  " + "\n  ".join(problems))
    reader = _Reader(resolved)
    sources: dict[str, list[str]] = {n: [] for n in nodes}
    for s, d in edges:
        sources[d].append(s)
    inputs = [n for n in order if nodes[n]["type"] == "Input"]
    if not inputs:
        raise ModelLoadError(f"{path}: the graph has no Input node")
    given = input_shapes if isinstance(input_shapes, dict) or input_shapes is None else {inputs[0]: input_shapes}
    graph_inputs: dict[str, TensorType] = {}
    produced: dict[str, str] = {}
    outputs: list[str] = []
    for name in order:
        node, kind, where = nodes[name], nodes[name]["type"], f"{path}, node {name!r} ({nodes[name]['type']})"
        if kind == "Input":
            shape = tuple((given or {}).get(name) or _shape(node, where))
            if name not in (given or {}):
                shape = _without_batch(shape, [nodes[d] for s, d in edges if s == name])
            value = reader.value(_ir_name(name))
            graph_inputs[value] = reader.types[value] = TensorType(tuple(int(d) for d in shape))
            produced[name] = value
            continue
        feeds = [produced[s] for s in sources[name] if s in produced]
        if not feeds:
            raise ModelLoadError(f"{where}: nothing feeds this node")
        try:
            if len(feeds) > 1:
                summed = f"{_ir_name(name)}_sum"
                source = reader.add(Add(name=summed, inputs=tuple(feeds), output=reader.value(summed)))
            else:
                source = feeds[0]
            if kind in ("Output", "_Identity"):
                produced[name] = source
                if kind == "Output":
                    outputs.append(source)
                continue
            produced[name] = HANDLERS[kind](reader, node, kind, source, _ir_name(name), where)
        except ValueError as exc:
            raise ModelLoadError(f"{where}: {exc}") from None
    if not outputs:
        raise ModelLoadError(f"{path}: the graph has no Output node")
    graph = Graph(name=path.stem, inputs=graph_inputs, outputs=list(dict.fromkeys(outputs)), ops=reader.ops)
    graph.meta["source"] = {"format": "nir", "import_options": resolved}
    graph.verify()
    return graph
