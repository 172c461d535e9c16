"""The supported-ops table: which ONNX ops each target compiles, found by compiling a small probe model per op.

    .venv/bin/python scripts/ops_table.py            # print the page (about 10 seconds)
    .venv/bin/python scripts/ops_table.py --write    # and write docs/supported-ops.md
    .venv/bin/python scripts/ops_table.py --check    # exit 1 when docs/supported-ops.md is not what it would write

Why probes: the importer's registry (``neurodeploy.frontend.onnx.registry``) says which ONNX ops import, but not
what each target then does with them, and a backend's ``TargetSpec.ops`` is descriptive only (the compiler never
reads it, and it leaves out ops the chips run, such as a residual Add or a Concat). What a target takes is
decided by its pipeline, its lowering and its design rules, so the one truthful answer is to compile. Each probe
is a few nodes built with ``onnx.helper`` and inserted into one small scaffold (or replacing its end); it is
compiled for each of :data:`TARGETS` with four seeded random calibration samples. The table of targets comes
from each backend's class attributes (fidelity, modes, conversion features, target options, board adapters),
except its input encodings, which are probed the same way: the scaffold compiled with each encoding and emulated
for a few steps. ``tests/test_supported_ops.py`` builds the page again and compares it with the file.

Needs every target's plugin (``make env`` installs them); not torch.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
DOC_NAME = "docs/supported-ops.md"
DOC = ROOT / DOC_NAME
TARGETS = ("reference", "loihi", "speck", "spinnaker", "brainscales2")
OPSET = 17
CHANNELS, SIDE = 4, 4
"""The scaffold's spiking map ``h``: CHANNELS x SIDE x SIDE (64 neurons, so that one BrainScaleS-2 hemisphere's
256 synapse rows hold their excitatory and inhibitory rows)."""
INPUT = (2, SIDE, SIDE)
CALIBRATION_SAMPLES = 4
EMULATE_STEPS = 4
REASON_CHARS = 240
COMMAND = ".venv/bin/python scripts/ops_table.py --write"
SCAFFOLD = "x (2 x 4 x 4) -> Conv 3x3 (pads 1, 4 channels) -> Relu -> [probe] -> Flatten -> Gemm (10 outputs)"


class Net:
    """Nodes and initializers of one probe model, built in order; weights seeded."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(0)

    def const(self, value, dtype=np.float32) -> str:
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def ints(self, *values: int) -> str:
        return self.const(list(values), np.int64)

    def weight(self, *shape: int) -> str:
        """Weights of ``shape`` (output first), uniform in [0, 2 / fan-in): positive, so that no one input weighs
        more than the thresholds the calibration gives (warnings about the weights, not about the op, stay away)."""
        return self.const(self.rng.uniform(0.0, 2.0 / math.prod(shape[1:]), shape))

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs):
        """Append a node; its output's name (a list of names when ``outputs`` > 1)."""
        name = f"{op_type.lower()}_{len(self.nodes)}"
        outs = [f"{name}_{k}" for k in range(outputs)] if outputs > 1 else [name]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=name, **attrs))
        return outs if outputs > 1 else outs[0]

    def conv(self, x: str, cin: int, cout: int, k: int = 3, pad: int = 1, **attrs) -> str:
        weight = self.weight(cout, cin // attrs.get("group", 1), k, k)
        bias = self.const(self.rng.normal(0.0, 0.05, cout))
        return self.op("Conv", x, weight, bias, kernel_shape=[k, k], pads=[pad] * 4, **attrs)

    def layer(self, x: str, cin: int = CHANNELS, cout: int = CHANNELS, **attrs) -> str:
        return self.op("Relu", self.conv(x, cin, cout, **attrs))

    def gemm(self, x: str, features: int, out: int = 10) -> str:
        return self.op("Gemm", x, self.weight(out, features), self.const(np.zeros(out)), transB=1)

    def shape(self, value: str) -> tuple[int, ...]:
        """The shape ONNX's shape inference gives ``value`` (batch 1)."""
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *INPUT])
        y = helper.make_tensor_value_info(value, TensorProto.FLOAT, None)
        graph = helper.make_graph(self.nodes, "shape", [x], [y], self.inits)
        probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=True, data_prop=True)
        (out,) = [v for v in inferred.graph.output if v.name == value]
        return tuple(d.dim_value for d in out.type.tensor_type.shape.dim)


Build = Callable[[Net, str], str]


@dataclass(frozen=True)
class Probe:
    op: str
    """The ONNX op the row is about."""
    what: str
    """The probe, in words."""
    build: Build
    """Nodes from the scaffold's spiking map ``h`` to a value the scaffold flattens into its Gemm."""
    tail: bool = True
    """False: ``build`` makes the model's output itself (the scaffold's Flatten and Gemm are left out)."""
    conversion: str | None = None
    """``--conversion`` options to compile with."""


def _same(net: Net, h: str) -> str:
    return h


def _op(op_type: str, **attrs) -> Build:
    return lambda net, h: net.op(op_type, h, **attrs)


def _silu(net: Net, h: str) -> str:
    """Conv -> x * Sigmoid(x), as torch exports ``nn.SiLU``."""
    x = net.conv(h, CHANNELS, CHANNELS)
    return net.op("Mul", x, net.op("Sigmoid", x))


def _before_relu(op_type: str, *consts: float) -> Build:
    """Conv -> ``op_type`` (with constant operands) -> Relu."""
    return lambda net, h: net.op("Relu", net.op(op_type, net.conv(h, CHANNELS, CHANNELS), *map(net.const, consts)))


def _residual(join: str) -> Build:
    return lambda net, h: net.op("Relu", net.op(join, net.conv(h, CHANNELS, CHANNELS), h))


def _branches(net: Net, h: str) -> str:
    return net.op("Concat", net.layer(h, cout=2), net.layer(h, cout=3, k=1, pad=0), axis=1)


def _split(net: Net, h: str) -> str:
    half = CHANNELS // 2
    a, b = net.op("Split", h, net.ints(half, half), outputs=2, axis=1)
    return net.op("Concat", net.layer(a, half, half), net.layer(b, half, half), axis=1)


def _bn(net: Net, h: str) -> str:
    stats = [net.const([v] * CHANNELS) for v in (1.2, 0.1, 0.05, 0.8)]
    return net.op("Relu", net.op("BatchNormalization", net.conv(h, CHANNELS, CHANNELS), *stats))


def _qcfs(net: Net, h: str) -> str:
    """QCFS's exported staircase, L = 4, λ = 2: clip(floor(x / λ * L + 0.5) / L, 0, 1) * λ."""
    x = net.op("Mul", net.op("Div", net.conv(h, CHANNELS, CHANNELS), net.const(2.0)), net.const(4.0))
    x = net.op("Div", net.op("Floor", net.op("Add", x, net.const(0.5))), net.const(4.0))
    return net.op("Mul", net.op("Clip", x, net.const(0.0), net.const(1.0)), net.const(2.0))


def _flat(net: Net, h: str) -> tuple[str, int]:
    return net.op("Flatten", h, axis=1), math.prod(net.shape(h)[1:])


def _hidden_gemm(net: Net, h: str) -> str:
    f, features = _flat(net, h)
    return net.gemm(net.op("Relu", net.gemm(f, features, 32)), 32)


def _matmul(net: Net, h: str) -> str:
    f, features = _flat(net, h)
    return net.op("Add", net.op("MatMul", f, net.weight(features, 10)), net.const(np.zeros(10)))


def _transposed_weight(net: Net, h: str) -> str:
    f, features = _flat(net, h)
    weight = net.op("Transpose", net.weight(10, features), perm=[1, 0])
    return net.op("Gemm", f, weight, net.const(np.zeros(10)))


def _softmax_last(net: Net, h: str) -> str:
    f, features = _flat(net, h)
    return net.op("Softmax", net.gemm(f, features), axis=1)


def _softmax_inside(net: Net, h: str) -> str:
    f, features = _flat(net, h)
    return net.gemm(net.op("Softmax", net.gemm(f, features, 16), axis=1), 16)


def _legacy_flatten(net: Net, h: str) -> str:
    batch = net.op("Unsqueeze", net.op("Gather", net.op("Shape", h), net.const(0, np.int64), axis=0), net.ints(0))
    return net.op("Reshape", h, net.op("Concat", batch, net.ints(-1), axis=0))


def _sliced_flatten(net: Net, h: str) -> str:
    batch = net.op("Cast", net.op("Slice", net.op("Shape", h), net.ints(0), net.ints(1)), to=TensorProto.INT64)
    return net.op("Reshape", h, net.op("Concat", batch, net.ints(-1), axis=0))


def _shuffle(net: Net, h: str) -> str:
    grouped = net.op("Reshape", h, net.ints(-1, 2, CHANNELS // 2, SIDE, SIDE))
    shuffled = net.op("Transpose", grouped, perm=[0, 2, 1, 3, 4])
    return net.layer(net.op("Reshape", shuffled, net.ints(-1, CHANNELS, SIDE, SIDE)))


def _constant_of_shape(net: Net, h: str) -> str:
    value = numpy_helper.from_array(np.array([0.1], np.float32))
    bias = net.op("ConstantOfShape", net.ints(CHANNELS, 1, 1), value=value)
    return net.op("Relu", net.op("Add", net.conv(h, CHANNELS, CHANNELS), bias))


def _constant_weight(net: Net, h: str) -> str:
    weight = numpy_helper.from_array(net.rng.normal(0.0, 0.25, (CHANNELS, CHANNELS, 3, 3)).astype(np.float32))
    return net.op("Relu", net.op("Conv", h, net.op("Constant", value=weight), kernel_shape=[3, 3], pads=[1] * 4))


def _squeeze(net: Net, h: str) -> str:
    return net.gemm(net.op("Squeeze", net.op("GlobalAveragePool", h), net.ints(2, 3)), CHANNELS)


def _unsqueeze(net: Net, h: str) -> str:
    return net.op("Unsqueeze", net.op("Flatten", net.op("GlobalAveragePool", h), axis=1), net.ints(2, 3))


def _pad(net: Net, h: str) -> str:
    return net.op("Relu", net.conv(net.op("Pad", h, net.ints(0, 0, 1, 1, 0, 0, 1, 1)), CHANNELS, CHANNELS, pad=0))


_ALONE = "the scaffold alone"
_POOL = {"kernel_shape": [2, 2], "strides": [2, 2]}
PROBES: tuple[Probe, ...] = (
    Probe("Conv", "3x3, pads 1, then Relu", lambda net, h: net.layer(h)),
    Probe("Conv", "stride 2, then Relu", lambda net, h: net.layer(h, strides=[2, 2])),
    Probe("Conv", "depthwise (group 4), then Relu", lambda net, h: net.layer(h, group=CHANNELS)),
    Probe("Conv", "dilation 2, pads 2, then Relu", lambda net, h: net.layer(h, pad=2, dilations=[2, 2])),
    Probe("Relu", _ALONE, _same),
    Probe(
        "Clip",
        "Clip(0, 6) after a Conv (ReLU6)",
        lambda net, h: net.op("Clip", net.conv(h, CHANNELS, CHANNELS), *map(net.const, (0.0, 6.0))),
    ),
    Probe("Sigmoid", "SiLU after a Conv: Mul(x, Sigmoid(x))", _silu),
    Probe("Sigmoid", "SiLU after a Conv, `--conversion coding=fs`", _silu, conversion="coding=fs,fs-steps=4"),
    Probe("Gemm", _ALONE + " (the readout)", _same),
    Probe("Gemm", "a hidden layer: Flatten -> Gemm -> Relu -> Gemm", _hidden_gemm, tail=False),
    Probe("MatMul", "MatMul + Add (bias) as the readout", _matmul, tail=False),
    Probe("BatchNormalization", "after a Conv, before Relu", _bn),
    Probe("AveragePool", "2x2, stride 2", _op("AveragePool", **_POOL)),
    Probe(
        "AveragePool",
        "3x3, stride 1, pads 1 (overlapping windows)",
        _op("AveragePool", kernel_shape=[3, 3], pads=[1] * 4),
    ),
    Probe("GlobalAveragePool", "before the Flatten", _op("GlobalAveragePool")),
    Probe("ReduceMean", "over H and W, keepdims (a global average pool)", _op("ReduceMean", axes=[2, 3])),
    Probe("MaxPool", "2x2, stride 2", _op("MaxPool", **_POOL)),
    Probe(
        "MaxPool", "2x2, stride 2, `--conversion maxpool=exact`", _op("MaxPool", **_POOL), conversion="maxpool=exact"
    ),
    Probe("Add", "residual: Relu(Conv(h) + h)", _residual("Add")),
    Probe("Add", "a constant after a Conv, before Relu (a bias)", _before_relu("Add", 0.1)),
    Probe("Sum", "residual: Relu(Sum(Conv(h), h))", _residual("Sum")),
    Probe("Concat", "two Conv -> Relu branches joined on the channels", _branches),
    Probe("Split", "the channels in two, each Conv -> Relu, joined by a Concat", _split),
    Probe("Mul", "by a constant after a Conv, before Relu", _before_relu("Mul", 0.5)),
    Probe("Div", "by a constant after a Conv, before Relu", _before_relu("Div", 2.0)),
    Probe("Sub", "a constant after a Conv, before Relu", _before_relu("Sub", 0.1)),
    Probe("Floor", "alone after a Conv, before Relu", _before_relu("Floor")),
    Probe("Floor", "in a QCFS staircase after a Conv: clip(floor(x / 2 * 4 + 0.5) / 4, 0, 1) * 2", _qcfs),
    Probe("Softmax", "the last op, after the Gemm", _softmax_last, tail=False),
    Probe("Softmax", "between two Gemms", _softmax_inside, tail=False),
    Probe("Identity", "after the Relu", _op("Identity")),
    Probe("Dropout", "after the Relu (inference)", _op("Dropout")),
    Probe("Pad", "zeros around H and W, read by a Conv without pads", _pad),
    Probe("Constant", "a Conv's weight from a Constant node", _constant_weight),
    Probe("Flatten", _ALONE, _same),
    Probe(
        "Reshape",
        "to (N, -1) in place of the Flatten",
        lambda net, h: net.op("Reshape", h, net.ints(-1, CHANNELS * SIDE * SIDE)),
    ),
    Probe("Squeeze", "GlobalAveragePool -> Squeeze(2, 3) -> Gemm", _squeeze, tail=False),
    Probe("Unsqueeze", "GlobalAveragePool -> Flatten -> Unsqueeze(2, 3)", _unsqueeze),
    Probe("Shape", "torch's legacy flatten: Reshape(h, Concat(Unsqueeze(Gather(Shape(h), 0)), -1))", _legacy_flatten),
    Probe("Gather", "as for Shape", _legacy_flatten),
    Probe("Slice", "Reshape(h, Concat(Cast(Slice(Shape(h), 0, 1)), -1))", _sliced_flatten),
    Probe("Cast", "as for Slice", _sliced_flatten),
    Probe("ConstantOfShape", "a 4 x 1 x 1 constant added after a Conv, before Relu", _constant_of_shape),
    Probe("Transpose", "channel shuffle: Reshape (N, 2, 2, 4, 4) -> Transpose -> Reshape, then Conv", _shuffle),
    Probe("Transpose", "of a constant: the Gemm's weight", _transposed_weight, tail=False),
    Probe("LRN", "after the Relu (no handler; listed for its message)", _op("LRN", size=3)),
)
"""One row each; probes that build the same model are compiled once."""


def model(probe: Probe) -> onnx.ModelProto:
    """The probe's model: the scaffold (:data:`SCAFFOLD`) around the probe, at :data:`OPSET`."""
    net = Net()
    out = probe.build(net, net.layer("x", INPUT[0], CHANNELS))
    if probe.tail:
        f, features = _flat(net, out)
        out = net.gemm(f, features)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *INPUT])
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
    graph = helper.make_graph(net.nodes, "probe", [x], [y], net.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


@dataclass(frozen=True)
class Outcome:
    compiled: bool
    text: str = ""
    """Compiled: the first warning the scaffold alone does not give on that target (else empty). Refused: the
    error's class and message, on one line."""


def _one_line(text: str) -> str:
    line = re.sub(r"(/[^\s'\"]*)?probe\.onnx", "<model>", " ".join(str(text).split()))
    line = re.sub(r"/tmp/[^\s'\"]+", "<tmp>", line)
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"


def _kind(warning: str) -> str:
    """A warning with its names and numbers left out: two probes' warnings of one kind compare equal."""
    return re.sub(r"'[^']*'|\d+(\.\d+)?", "#", warning)


def _calibration():
    from neurodeploy.data.calibration import Calibration

    rng = np.random.default_rng(0)
    return Calibration(rng.random((CALIBRATION_SAMPLES, *INPUT)).astype(np.float32), "random")


def compile_one(path: Path, target: str, out: Path, conversion: str | None = None, encoding=None):
    """The artifact, or the refusal as an :class:`Outcome`."""
    from neurodeploy.compiler import compile_model
    from neurodeploy.errors import NeurodeployError

    try:
        return compile_model(path, target, out, calibration=_calibration(), conversion=conversion, encoding=encoding)
    except NeurodeployError as exc:
        return Outcome(False, _one_line(f"{type(exc).__name__}: {exc}"))
    except Exception as exc:  # a crash is a defect of ours: the table shows it as one
        return Outcome(False, _one_line(f"crash, {type(exc).__name__}: {exc}"))


def outcome(artifact, usual: list[str]) -> Outcome:
    """A compile's outcome: a refusal as it is; a compile with its first warning of a kind ``usual`` lacks."""
    if isinstance(artifact, Outcome):
        return artifact
    kinds = {_kind(w) for w in usual}
    new = [w for w in artifact.manifest.get("warnings", []) if _kind(w) not in kinds]
    return Outcome(True, _one_line(new[0]) if new else "")


def imports_as(path: Path, op: str) -> str:
    """The IR ops the importer makes of the probe's ``op`` nodes ("nothing" when they only name or fold values)."""
    from neurodeploy.errors import NeurodeployError
    from neurodeploy.frontend import load_model

    try:
        graph = load_model(path)
    except NeurodeployError:
        return "refused"

    def made_of(o) -> bool:  # the node it was imported from, or one fused into it (SiLU's Sigmoid)
        sources = [o.meta.get("onnx_op", ""), *(f.get("onnx_op", "") for f in o.meta.get("onnx_fused", []))]
        return any(str(source).startswith(f"{op}-") for source in sources)

    made = sorted({o.op_type for o in graph.ops if made_of(o)})
    return ", ".join(made) if made else "nothing"


def _save(probe: Probe, folder: Path) -> Path:
    folder.mkdir(parents=True)
    onnx.save(model(probe), str(folder / "probe.onnx"))
    return folder / "probe.onnx"


def _warnings(artifact) -> list[str]:
    return [] if isinstance(artifact, Outcome) else list(artifact.manifest.get("warnings", []))


@dataclass
class Results:
    """What :func:`run` found."""

    imports: dict[int, str]
    """Per probe (by index in :data:`PROBES`): the IR ops its op imports as."""
    outcomes: dict[tuple[int, str], Outcome]
    """Per (probe, target)."""
    encodings: dict[tuple[str, str], str]
    """Per (target, encoding): ``yes`` or where it stops."""


def run(targets: tuple[str, ...] = TARGETS) -> Results:
    """Compile every probe for every target (a model two probes share, once), and probe the encodings."""
    results = Results({}, {}, {})
    logging.disable(logging.WARNING)  # the warnings are in the manifests, which the table reads
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scaffold = _save(Probe("", "", _same), Path(tmp) / "scaffold")
            usual = {t: _warnings(compile_one(scaffold, t, Path(tmp) / "scaffold" / t)) for t in targets}
            for i, probe in enumerate(PROBES):
                _run_probe(results, i, _save(probe, Path(tmp) / f"{i}"), targets, usual)
            for target in targets:
                for kind in ("direct", "rate", "events"):
                    results.encodings[target, kind] = try_encoding(scaffold, target, kind, Path(tmp) / kind / target)
    finally:
        logging.disable(logging.NOTSET)
    return results


def _run_probe(results: Results, index: int, path: Path, targets: tuple[str, ...], usual: dict) -> None:
    probe = PROBES[index]
    results.imports[index] = imports_as(path, probe.op)
    key = (probe.build, probe.tail, probe.conversion)
    same = next((i for i, p in enumerate(PROBES[:index]) if (p.build, p.tail, p.conversion) == key), None)
    for target in targets:
        if same is not None:
            results.outcomes[index, target] = results.outcomes[same, target]
            continue
        artifact = compile_one(path, target, path.parent / target, conversion=probe.conversion)
        results.outcomes[index, target] = outcome(artifact, usual[target])


def try_encoding(path: Path, target: str, kind: str, out: Path) -> str:
    """``yes`` when the scaffold compiles with input encoding ``kind`` and emulates :data:`EMULATE_STEPS` steps of
    two samples; else the step that refused it."""
    from neurodeploy.compiler import emulate_artifact
    from neurodeploy.encoding import Encoding
    from neurodeploy.errors import NeurodeployError

    encoding = Encoding(kind)
    artifact = compile_one(path, target, out, encoding=encoding)
    if isinstance(artifact, Outcome):
        return "no: compile refuses it"
    rng = np.random.default_rng(0)
    if kind == "events":
        x = rng.integers(0, 3, (2, EMULATE_STEPS, *INPUT)).astype(np.float32)
    else:
        x = rng.random((2, *INPUT)).astype(np.float32)
    try:
        emulate_artifact(artifact, x, steps=EMULATE_STEPS, encoding=encoding)
    except NeurodeployError:
        return "no: compiles, but emulate refuses it"
    return "yes"


HEADER = f"""# Supported ONNX ops, per target

<!-- Generated by scripts/ops_table.py; do not edit. Regenerate with `{COMMAND}`;
tests/test_supported_ops.py fails when this page is not what the script writes. -->

What each target does with each ONNX op the importer registers, found by compiling: every row is a small probe
model, built with `onnx.helper` at opset {OPSET}, compiled for every target with `neurodeploy compile`'s defaults
(the target's default machine, four seeded random calibration samples). The backends declare no list of the
ops they take that the compiler enforces (a `TargetSpec.ops` is descriptive, and leaves out the Add and Concat
the chips run): what a target takes is decided by its conversion pipeline, its lowering and its design rules, so
the page compiles rather than reads a declaration. It is generated by `scripts/ops_table.py` (about 10 seconds).

Each probe sits in one scaffold, or replaces its Flatten and Gemm where its row says so:

    {SCAFFOLD}

*yes*: the probe compiles; *yes [n]*: it compiles with note n, the first warning the scaffold alone does not give
on that target (MaxPool's approximation, for one); ***no** [n]*: compile refuses it with the error of note n.
*Imports as*: the IR ops the importer makes of the row's op (`nothing`: it only names or folds values). A *yes*
says the op compiles in a small network, not that any size of it fits the chip (each target's limits: its page
in `docs/targets/`), nor how accurate the result is (`docs/zoo.md` for whole models, the target pages for
measured accuracy).
"""


def _notes_cell(outcome: Outcome, notes: list[str]) -> str:
    if not outcome.text:
        return "yes" if outcome.compiled else "**no**"
    if outcome.text not in notes:
        notes.append(outcome.text)
    number = notes.index(outcome.text) + 1
    return f"yes [{number}]" if outcome.compiled else f"**no** [{number}]"


def ops_section(results: Results, targets: tuple[str, ...] = TARGETS) -> str:
    notes: list[str] = []
    lines = ["## ONNX ops", "", f"| ONNX op | probe | imports as | {' | '.join(targets)} |"]
    lines.append(f"| --- | --- | --- |{' --- |' * len(targets)}")
    for i, probe in enumerate(PROBES):
        cells = " | ".join(_notes_cell(results.outcomes[i, t], notes) for t in targets)
        lines.append(f"| {probe.op} | {probe.what.replace('|', '/')} | {results.imports[i]} | {cells} |")
    yes = sum(o.compiled for o in results.outcomes.values())
    lines += ["", f"{yes} of {len(results.outcomes)} probe-target pairs compile.", ""]
    lines += [f"{k}. {note.replace('|', '/')}" for k, note in enumerate(notes, start=1)]
    return "\n".join(lines) + "\n"


def _encodings_cell(results: Results, target: str) -> str:
    kinds = ("direct", "rate", "events")
    cell = ", ".join(k for k in kinds if results.encodings[target, k] == "yes")
    refusals: dict[str, list[str]] = {}
    for k in kinds:
        if results.encodings[target, k] != "yes":
            refusals.setdefault(results.encodings[target, k].removeprefix("no: "), []).append(k)
    return "; ".join([cell, *(f"not {', '.join(ks)} ({why})" for why, ks in refusals.items())])


def _target_row(target: str, results: Results) -> str:
    from neurodeploy.backends.base import CONVERSION_FEATURES
    from neurodeploy.backends.registry import available_backends, get_backend

    backend, entries = get_backend(target), available_backends()
    others = sorted(n for n, e in entries.items() if e.value == entries[target].value and n != target)
    features = [v.rsplit(", ", 1)[-1] for k, v in CONVERSION_FEATURES.items() if k in backend.conversion_features]
    board = ", ".join(f"`{a}`" for a in backend.device_adapters) or "none"
    if backend.board_options:
        board += " (an artifact compiled with " + ", ".join(f"`{k}={v}`" for k, v in backend.board_options.items())
        board += ")"
    cells = [
        f"`{target}`",
        ", ".join(f"`{n}`" for n in others) or "-",
        backend.fidelity,
        ", ".join(f"`{m}`" for m in backend.modes),
        _encodings_cell(results, target),
        ", ".join(f"`{f}`" for f in features) or "none",
        ", ".join(f"`{k}`" for k in backend.target_options) or "none",
        board,
    ]
    return f"| {' | '.join(cells)} |"


def targets_section(results: Results, targets: tuple[str, ...] = TARGETS) -> str:
    lines = [
        "## Targets",
        "",
        "From each backend's class attributes (`neurodeploy targets` prints the options' help), except the input",
        f"encodings, probed: the scaffold compiled with `--encoding` each kind and emulated for {EMULATE_STEPS} steps.",
        "",
        "| target | other names of its backend | fidelity | modes (`--mode`, the first is the default) | input "
        "encodings (`--encoding`) | neurons beyond rate-coded IF (`--conversion`) | target options (`-X`) | board "
        "adapter (`hil run`) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_target_row(t, results) for t in targets]
    return "\n".join(lines) + "\n"


def registry_section() -> str:
    """The importer's registry, as ``neurodeploy ops`` prints it."""
    from neurodeploy.frontend.onnx import constant_only_ops, supported_ops

    lines = ["## The importer's registry", "", "What `neurodeploy ops` prints: the ONNX ops with a handler, by "]
    lines[-1] += "since-version (a model at opset 11 to 21 uses the newest at or below its opset).\n"
    lines += ["| ONNX op | since-versions |", "| --- | --- |"]
    lines += [f"| {op} | {', '.join(map(str, versions))} |" for op, versions in supported_ops().items()]
    lines += ["", f"Folded at import when every input is constant: {', '.join(constant_only_ops())} (a Transpose of a"]
    lines[-1] += " computed value is imported in one case, the channel shuffle)."
    return "\n".join(lines) + "\n"


def check_coverage() -> None:
    """Every op the importer registers has a probe; a ValueError naming those that have none."""
    from neurodeploy.frontend.onnx import constant_only_ops, supported_ops

    missing = sorted((set(supported_ops()) | set(constant_only_ops())) - {p.op for p in PROBES})
    if missing:
        raise ValueError(f"no probe in scripts/ops_table.py for {', '.join(missing)}: add one to PROBES")


def page(targets: tuple[str, ...] = TARGETS) -> str:
    """The whole of docs/supported-ops.md."""
    check_coverage()
    results = run(targets)
    sections = [HEADER, targets_section(results, targets), ops_section(results, targets), registry_section()]
    return "\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {DOC_NAME}")
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from what it would write")
    args = parser.parse_args(argv)
    text = page()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC_NAME} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if args.write:
        DOC.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
