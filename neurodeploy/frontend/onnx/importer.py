"""ONNX ModelProto -> IR Graph."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx

from neurodeploy import limits
from neurodeploy.errors import ModelLoadError, NeurodeployError, ShapeError, UnsupportedOpError
from neurodeploy.frontend.onnx import ops as _ops  # noqa: F401  (registers the handlers)
from neurodeploy.frontend.onnx.context import (
    ImportContext,
    Node,
    UnsupportedVariant,
    display_name,
    shorten,
)
from neurodeploy.frontend.onnx.loader import load_model, refuse_external_data
from neurodeploy.frontend.onnx.registry import (
    MAX_OPSET,
    MIN_OPSET,
    constant_only_ops,
    resolve,
    schema,
    since_version,
    supported_ops,
)
from neurodeploy.frontend.onnx.tensors import MAX_RANK, check_finite, nbytes, shape_text, tensor_array, type_name
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Softmax, softmax_readout
from neurodeploy.ir.types import TensorType

log = logging.getLogger(__name__)

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}

InputShapes = dict[str, tuple[int, ...]] | tuple[int, ...] | None

# What a handler raises when a malformed model reaches numpy or Python with arguments they refuse (an index out
# of range, shapes that do not broadcast, a missing value). Wrapped into a ModelLoadError naming the node; any
# other exception is a bug and stays one.
_MODEL_FAULTS = (ValueError, TypeError, IndexError, KeyError, ArithmeticError, MemoryError)


def _default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ModelLoadError("the model imports no version of the default ONNX domain (opset_import is empty)")


_PAD_READERS = ("Conv", "AveragePool", "MaxPool")
"""The ops whose handlers resolve a Pad that pads (``ops/padding.py: folded_pad``; MaxPool refuses it by name)."""

_NO_SPIKING_FORM = {
    "LRN": "local response normalization divides by a sum of squares across channels, which integrate-and-fire "
    "neurons have no form for; retrain with BatchNormalization in its place (it folds into the weights)",
}
"""Ops of the classic CNN families that will not be imported, and why (added to the refusal)."""

UPGRADE_TO = 13
"""The opset a model below MIN_OPSET is upgraded to, with onnx's own version converter, before import."""
_LISTED = 200
"""Nodes listed at most when an upgrade fails."""


def _domain(proto: onnx.NodeProto) -> str:
    return proto.domain if proto.domain != "ai.onnx" else ""


def _upgrade(model: onnx.ModelProto, opset: int, name: str) -> onnx.ModelProto:
    """``model`` (at an opset below MIN_OPSET, as most published ONNX files of the classic CNN families are, with
    an op no handler covers at that opset) converted to :data:`UPGRADE_TO` by onnx's version converter; the model
    itself is left unchanged. Where the
    converter cannot, an UnsupportedOpError lists every node with its op and the op's version at ``opset``."""
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, UPGRADE_TO)
    except Exception as exc:  # the converter raises RuntimeError, ValueError or its own errors from C++
        reason = shorten(" ".join(str(exc).split()) or type(exc).__name__)
        lines = []
        for proto in model.graph.node[:_LISTED]:
            version = since_version(proto.op_type, opset, _domain(proto))
            known_as = f"{display_name(proto.op_type)}-{version}" if version is not None else "no ONNX schema"
            lines.append(
                f"  - {display_name(proto.op_type)} node '{display_name(proto.name)}': {known_as} at opset {opset}"
            )
        if len(model.graph.node) > _LISTED:
            lines.append(f"  - ... and {len(model.graph.node) - _LISTED} more")
        raise UnsupportedOpError(
            f"{name} is at opset {opset}, below the supported {MIN_OPSET}-{MAX_OPSET}, and onnx's version converter "
            f"could not upgrade it to opset {UPGRADE_TO} ({reason}). Its nodes:\n" + "\n".join(lines) + "\n"
            f"Re-export the model at an opset in {MIN_OPSET}-{MAX_OPSET}, or upgrade it yourself "
            "(onnx.version_converter.convert_version) after replacing the nodes the converter refuses."
        ) from None


def _given_shape(name: str, shape: Iterable[int | None]) -> list[int | None]:
    """The dimensions of an ``--input-shape``, checked at run time: untyped callers pass anything."""
    try:
        dims = [None if d is None else int(d) for d in shape]
    except (TypeError, ValueError):
        raise ShapeError(f"--input-shape for {name!r} must be a sequence of whole numbers, got {shape!r}") from None
    if any(d is not None and d < 1 for d in dims):
        raise ShapeError(f"--input-shape for {name!r} has dimensions {tuple(dims)}; they must be positive")
    return dims


def _input_types(
    model: onnx.ModelProto, initializers: set[str], overrides: InputShapes, where: str
) -> tuple[dict[str, TensorType], int]:
    """Per-sample types of the runtime inputs, and the batch size the importer assumes."""
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    names = [i.name for i in graph_inputs]
    if len(set(names)) != len(names) or "" in names:
        raise ModelLoadError(f"{where}: the model's inputs {[display_name(n) for n in names]} are not uniquely named")
    if overrides is not None and not isinstance(overrides, dict):
        if len(graph_inputs) != 1:
            raise ShapeError(f"{where} has {len(graph_inputs)} inputs; give --input-shape as NAME:DIMS for each")
        overrides = {graph_inputs[0].name: overrides}
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(names)
    if unknown:
        raise ShapeError(
            f"--input-shape names {sorted(unknown)}, but the model's inputs are {[i.name for i in graph_inputs]}"
        )
    types: dict[str, TensorType] = {}
    batches: set[int] = set()
    for value in graph_inputs:
        shown = display_name(value.name)
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type not in _FLOAT_TYPES:
            raise ShapeError(
                f"{where}: input {shown!r} has element type {type_name(tensor_type.elem_type)}; only float inputs "
                "are supported"
            )
        if len(tensor_type.shape.dim) > MAX_RANK:
            raise ShapeError(f"{where}: input {shown!r} has rank {len(tensor_type.shape.dim):,} (at most {MAX_RANK})")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if any(d is not None and d < 0 for d in dims):
            raise ShapeError(f"{where}: input {shown!r} declares negative dimensions {dims}")
        if value.name in overrides:
            given = _given_shape(value.name, overrides[value.name])
            if len(given) == len(dims) - 1:  # a per-sample shape
                given = [dims[0], *given]
            if len(given) != len(dims):
                raise ShapeError(
                    f"--input-shape for {shown!r} has {len(given)} dimensions; the model's input "
                    f"has rank {len(dims)} (batch included)"
                )
            dims = [g if g is not None else d for g, d in zip(given, dims)]
        if len(dims) < 2:
            raise ShapeError(f"{where}: input {shown!r} has rank {len(dims)}; expected (batch, features...)")
        dynamic = [i for i, d in enumerate(dims[1:], start=1) if not d]
        if dynamic:
            dim_names = [display_name(tensor_type.shape.dim[i].dim_param) or "?" for i in dynamic]
            example = ",".join([str(dims[0] or 1)] + [str(d) if d else "<size>" for d in dims[1:]])
            raise ShapeError(
                f"{where}: input {shown!r} has dynamic dimensions {dim_names} at positions {dynamic}; "
                f"fix them with --input-shape {shown}:{example}"
            )
        if dims[0]:
            batches.add(int(dims[0]))
        shape = tuple(int(d) for d in dims[1:] if d is not None)  # none is None: dynamic ones are refused above
        limits.check(
            "max_activation_bytes",
            nbytes(shape, np.float32),
            f"{where}: input {shown!r} of shape {shape_text(shape)} per sample (float32)",
        )
        types[value.name] = TensorType(shape)
    if len(batches) > 1:
        raise ShapeError(f"{where}: inputs disagree on the batch size ({sorted(batches)})")
    return types, (batches.pop() if batches else 1)


def _sorted_nodes(graph: onnx.GraphProto, known: set[str], where: str) -> list[onnx.NodeProto]:
    """The nodes in a valid topological order (ONNX requires one; some tools write others), in linear time.

    Kahn's algorithm over an index of each value's readers. The order is the one the importer has always used:
    by depth (a node comes one level after the deepest node whose output it reads), then by position in the
    file, so a model already in order keeps its node names and op order. Refuses a value defined twice.
    """
    nodes = list(graph.node)
    defined: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if not out:
                continue
            if out in known or out in defined:
                raise ModelLoadError(
                    f"malformed ONNX graph in {where}: value {display_name(out)!r} is defined twice (again by "
                    f"node {display_name(node.name or node.op_type)!r})"
                )
            defined[out] = i
    readers: dict[str, list[int]] = {}
    waiting = [0] * len(nodes)
    for i, node in enumerate(nodes):
        needs = {v for v in node.input if v and v not in known}
        waiting[i] = len(needs)
        for value in needs:
            readers.setdefault(value, []).append(i)
    depth = [0] * len(nodes)
    queue = [i for i, count in enumerate(waiting) if count == 0]
    for i in queue:  # the queue grows while it is read
        for out in nodes[i].output:
            for reader in readers.get(out, ()) if out else ():
                depth[reader] = max(depth[reader], depth[i] + 1)
                waiting[reader] -= 1
                if waiting[reader] == 0:
                    queue.append(reader)
    if len(queue) != len(nodes):
        stuck = [nodes[i] for i, count in enumerate(waiting) if count]
        read = {v for n in stuck for v in n.input if v and v not in known}
        missing = sorted(v for v in read if v not in defined) or sorted(read)  # else: a cycle
        raise ModelLoadError(
            f"malformed ONNX graph in {where}: nodes read values nothing defines before them (missing, or in a "
            f"cycle): {[display_name(v) for v in missing[:8]]}"
        )
    levels: list[list[int]] = [[] for _ in range(max(depth, default=0) + 1)]
    for i in range(len(nodes)):  # bucket by depth, file order within a level: linear
        levels[depth[i]].append(i)
    return [nodes[i] for level in levels for i in level]


def _describe(exc: BaseException) -> str:
    """One line saying what a library call refused."""
    if isinstance(exc, MemoryError):
        return "out of memory"
    text = " ".join(str(exc)[:10_000].split())
    if isinstance(exc, KeyError) or not text:
        text = f"{type(exc).__name__}: {text}".rstrip(": ")
    return shorten(text, 300)


def _initializers(model: onnx.ModelProto, ctx: ImportContext, where: str) -> None:
    for tensor in model.graph.initializer:
        what = f"{where}: initializer {display_name(tensor.name)!r}"
        if not tensor.name:
            raise ModelLoadError(f"{where}: an initializer has no name")
        if tensor.name in ctx.consts:
            raise ModelLoadError(f"{what} is defined twice")
        value = tensor_array(tensor, what)
        check_finite(value, what)
        ctx.set_const(tensor.name, value)


def _supported_summary() -> str:
    runtime = ", ".join(supported_ops())
    folded = ", ".join(constant_only_ops())
    return f"Supported: {runtime}. Folded when all inputs are constant: {folded}."


def import_model(model: onnx.ModelProto, *, input_shapes: InputShapes = None, name: str = "model") -> Graph:
    """Import a loaded ONNX model (left unchanged). Raises UnsupportedOpError listing every op it cannot import,
    and a one-line ModelLoadError naming the node, attribute or tensor for a malformed model."""
    refuse_external_data(model, name)
    opset = source_opset = _default_opset(model)
    if opset < MIN_OPSET and any(resolve(n.op_type, opset, _domain(n)) is None for n in model.graph.node):
        # handlers cover some old versions (Clip-6, BatchNormalization-9, ...); where one is missing, upgrade
        model = _upgrade(model, opset, name)
        opset = _default_opset(model)
        log.info("%s: upgraded from opset %d to %d with onnx's version converter", name, source_opset, opset)
    where = (
        f"{name} (opset {opset})" if opset == source_opset else f"{name} (opset {source_opset}, upgraded to {opset})"
    )
    initializer_names = {t.name for t in model.graph.initializer}
    inputs, batch = _input_types(model, initializer_names, input_shapes, name)
    graph = Graph(
        display_name(model.graph.name) or name, inputs, [], meta={"source": {"format": "onnx", "opset": source_opset}}
    )
    if opset != source_opset:
        graph.meta["source"]["upgraded_to"] = opset
    known = set(inputs) | initializer_names
    order = _sorted_nodes(model.graph, known, name)
    reserved = known | {o for n in order for o in n.output}
    read = {i for n in order for i in n.input} | {o.name for o in model.graph.output}
    ctx = ImportContext(graph, batch, reserved, read)
    _initializers(model, ctx, name)

    problems: list[str] = []
    poisoned: set[str] = set()
    for index, proto in enumerate(order):
        domain = _domain(proto)
        node = Node(proto, opset, index, where=name, schema=schema(proto.op_type, opset, domain))
        handler = resolve(proto.op_type, opset, domain)
        if handler is None:
            version = since_version(proto.op_type, opset, domain)
            known_as = f"{display_name(proto.op_type)}-{version}" if version is not None else "no ONNX schema"
            dom = f" (domain {display_name(domain)!r})" if domain else ""
            why = _NO_SPIKING_FORM.get(proto.op_type, "") if not domain else ""
            problems.append(
                f"{display_name(proto.op_type)}{dom} node '{node.name}': not supported ({known_as} at opset {opset})"
                + (f": {why}" if why else "")
            )
            poisoned.update(proto.output)
            continue
        if any(i in poisoned for i in proto.input):
            poisoned.update(proto.output)
            continue
        sigmoid = next(
            (ctx.pending_sigmoids[s] for s in map(ctx.resolve, proto.input) if s in ctx.pending_sigmoids), None
        )
        if sigmoid is not None and proto.op_type != "Mul":
            problems.append(
                f"Sigmoid '{sigmoid[1]}' is read by {display_name(proto.op_type)} '{node.name}': a Sigmoid is "
                "imported only inside SiLU, x * Sigmoid(x) (a Mul of its input and its output); a sigmoid by "
                "itself has no spiking form here"
            )
            poisoned.update(proto.output)
            continue
        padded = [i for i in proto.input[1:] if i in ctx.pending_pads]  # a window op reads a Pad as its input 0
        if proto.input and proto.input[0] in ctx.pending_pads and proto.op_type not in _PAD_READERS:
            padded.insert(0, proto.input[0])
        if padded:
            pad = ctx.pending_pads[padded[0]]
            problems.append(
                f"Pad '{pad[2]}' (zeros {list(pad[1])} around H and W) is read by {display_name(proto.op_type)} "
                f"'{node.name}': a Pad that pads is imported only where a Conv or AveragePool reads it (its zeros "
                "become their padding)"
            )
            poisoned.update(proto.output)
            continue
        node.validate()
        ctx.node = node
        try:
            handler(ctx, node)
        except UnsupportedVariant as exc:
            problems.append(shorten(" ".join(str(exc).split())))
            poisoned.update(proto.output)
            continue
        except NeurodeployError:
            raise
        except _MODEL_FAULTS as exc:
            raise node.error(f"cannot import: {_describe(exc)}") from exc
        finally:
            ctx.node = None
        pending = node.outputs[0] in ctx.pending_pads or node.outputs[0] in ctx.pending_sigmoids
        if not ctx.defined(node.outputs[0]) and not pending:
            raise AssertionError(f"handler for {proto.op_type} defined no output")  # a bug, not bad input

    for output in model.graph.output:
        if ctx.resolve(output.name) in ctx.pending_sigmoids:
            problems.append(
                f"Sigmoid '{ctx.pending_sigmoids[ctx.resolve(output.name)][1]}': a model output; a Sigmoid is "
                "imported only inside SiLU, x * Sigmoid(x)"
            )
        if output.name in ctx.pending_pads:
            problems.append(
                f"Pad '{ctx.pending_pads[output.name][2]}': a Pad that pads is imported only where a "
                "Conv or AveragePool reads it, not as a model output"
            )
    model_outputs = {ctx.resolve(o.name) for o in model.graph.output}
    graph_index = graph.index()  # O(1) queries per op: the per-call Graph queries scan every op
    for op in graph.ops:
        if isinstance(op, Softmax) and softmax_readout(graph_index, op.output, model_outputs) is None:
            problems.append(
                f"Softmax node '{op.meta.get('onnx_node', op.name)}': only supported as the last op, or followed "
                "only by Reshapes "
                "(its output must be a model output read by nothing else)"
            )
    if problems:
        hint = ""
        if not MIN_OPSET <= opset <= MAX_OPSET:
            hint = f" Opsets {MIN_OPSET}-{MAX_OPSET} are supported; re-export with one of them."
        listing = "\n".join(f"  - {p}" for p in problems)
        raise UnsupportedOpError(
            f"{where} uses {len(problems)} op(s) neurodeploy cannot import:\n{listing}\n{_supported_summary()}{hint}"
        )

    output_names = {o.name for o in model.graph.output}
    renamed: dict[str, str] = {}
    with graph.edit() as edit:
        for out in model.graph.output:
            resolved = ctx.resolve(out.name)
            if ctx.is_const(resolved):
                raise UnsupportedOpError(
                    f"{where}: output {display_name(out.name)!r} is a constant, independent of the input"
                )
            resolved = renamed.get(resolved, resolved)
            # An alias (Identity) of a value takes the value's place, unless another output already names that
            # value. (No graph output appended so far can name ``resolved``: each is an input or in output_names.)
            if resolved != out.name and resolved not in inputs and resolved not in output_names:
                producer = edit.producer(resolved)
                if producer is None:
                    raise ModelLoadError(f"{where}: output {display_name(out.name)!r} names a value nothing defines")
                edit.replace_uses(resolved, out.name, outputs=False)
                edit.set_output(producer, out.name)
                renamed[resolved] = out.name
                resolved = out.name
            graph.outputs.append(resolved)
    graph.verify()
    return graph


def import_onnx(path: str | Path | onnx.ModelProto, *, input_shapes: InputShapes = None) -> Graph:
    """Import an ONNX file (or a loaded ModelProto) into an IR graph.

    ``input_shapes`` fixes dynamic dimensions: a shape for a one-input model, or a dict by input name. A shape
    may include the batch dimension or leave it out.
    """
    if isinstance(path, onnx.ModelProto):
        return import_model(path, input_shapes=input_shapes, name=display_name(path.graph.name) or "model")
    model = load_model(path)
    log.info("loaded %s (%d nodes)", path, len(model.graph.node))
    graph = import_model(model, input_shapes=input_shapes, name=Path(path).name)
    graph.name = Path(path).stem
    return graph


__all__ = ["import_model", "import_onnx"]
