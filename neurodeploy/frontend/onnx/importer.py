"""ONNX ModelProto -> IR Graph."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
from onnx import numpy_helper

from neurodeploy.errors import ModelLoadError, ShapeError, UnsupportedOpError
from neurodeploy.frontend.onnx import ops as _ops  # noqa: F401  (registers the handlers)
from neurodeploy.frontend.onnx.context import ImportContext, Node, UnsupportedVariant
from neurodeploy.frontend.onnx.loader import load_model
from neurodeploy.frontend.onnx.registry import (
    MAX_OPSET,
    MIN_OPSET,
    constant_only_ops,
    resolve,
    since_version,
    supported_ops,
)
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.ops import Softmax
from neurodeploy.ir.types import TensorType

log = logging.getLogger(__name__)

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}

InputShapes = dict[str, tuple[int, ...]] | tuple[int, ...] | None


def _default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ModelLoadError("the model imports no version of the default ONNX domain (opset_import is empty)")


def _input_types(
    model: onnx.ModelProto, initializers: set[str], overrides: InputShapes, where: str
) -> tuple[dict[str, TensorType], int]:
    """Per-sample types of the runtime inputs, and the batch size the importer assumes."""
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    if overrides is not None and not isinstance(overrides, dict):
        if len(graph_inputs) != 1:
            raise ShapeError(f"{where} has {len(graph_inputs)} inputs; give --input-shape as NAME:DIMS for each")
        overrides = {graph_inputs[0].name: tuple(overrides)}
    overrides = dict(overrides or {})
    unknown = set(overrides) - {i.name for i in graph_inputs}
    if unknown:
        raise ShapeError(
            f"--input-shape names {sorted(unknown)}, but the model's inputs are {[i.name for i in graph_inputs]}"
        )
    types: dict[str, TensorType] = {}
    batches: set[int] = set()
    for value in graph_inputs:
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type not in _FLOAT_TYPES:
            raise ShapeError(
                f"{where}: input {value.name!r} has element type "
                f"{onnx.TensorProto.DataType.Name(tensor_type.elem_type)}; only float inputs are supported"
            )
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if value.name in overrides:
            given = list(overrides[value.name])
            if len(given) == len(dims) - 1:  # a per-sample shape
                given = [dims[0], *given]
            if len(given) != len(dims):
                raise ShapeError(
                    f"--input-shape for {value.name!r} has {len(given)} dimensions; the model's input "
                    f"has rank {len(dims)} (batch included)"
                )
            dims = [g if g is not None else d for g, d in zip(given, dims)]
        if len(dims) < 2:
            raise ShapeError(f"{where}: input {value.name!r} has rank {len(dims)}; expected (batch, features...)")
        dynamic = [i for i, d in enumerate(dims[1:], start=1) if not d]
        if dynamic:
            names = [tensor_type.shape.dim[i].dim_param or "?" for i in dynamic]
            example = ",".join([str(dims[0] or 1)] + [str(d) if d else "<size>" for d in dims[1:]])
            raise ShapeError(
                f"{where}: input {value.name!r} has dynamic dimensions {names} at positions {dynamic}; "
                f"fix them with --input-shape {value.name}:{example}"
            )
        if dims[0]:
            batches.add(int(dims[0]))
        types[value.name] = TensorType(tuple(int(d) for d in dims[1:]))
    if len(batches) > 1:
        raise ShapeError(f"{where}: inputs disagree on the batch size ({sorted(batches)})")
    return types, (batches.pop() if batches else 1)


def _sorted_nodes(graph: onnx.GraphProto, known: set[str]) -> list[onnx.NodeProto]:
    """The nodes in a valid topological order (ONNX requires one; some tools write others)."""
    nodes = list(graph.node)
    available = set(known)
    ordered: list[onnx.NodeProto] = []
    pending = nodes
    while pending:
        ready = [n for n in pending if all(not i or i in available for i in n.input)]
        if not ready:
            missing = sorted({i for n in pending for i in n.input if i and i not in available})
            raise ModelLoadError(f"malformed ONNX graph: nodes read values nothing defines: {missing[:8]}")
        ready_ids = {id(n) for n in ready}
        ordered.extend(ready)
        for n in ready:
            available.update(o for o in n.output if o)
        pending = [n for n in pending if id(n) not in ready_ids]
    return ordered


def _supported_summary() -> str:
    runtime = ", ".join(supported_ops())
    folded = ", ".join(constant_only_ops())
    return f"Supported: {runtime}. Folded when all inputs are constant: {folded}."


def import_model(model: onnx.ModelProto, *, input_shapes: InputShapes = None, name: str = "model") -> Graph:
    """Import a loaded ONNX model (left unchanged). Raises UnsupportedOpError listing every op it cannot import."""
    opset = _default_opset(model)
    where = f"{name} (opset {opset})"
    initializer_names = {t.name for t in model.graph.initializer}
    inputs, batch = _input_types(model, initializer_names, input_shapes, name)
    graph = Graph(model.graph.name or name, inputs, [], meta={"source": {"format": "onnx", "opset": opset}})
    ctx = ImportContext(graph, batch)
    for tensor in model.graph.initializer:
        ctx.set_const(tensor.name, numpy_helper.to_array(tensor))

    problems: list[str] = []
    poisoned: set[str] = set()
    for index, proto in enumerate(_sorted_nodes(model.graph, set(inputs) | initializer_names)):
        node = Node(proto, opset, index)
        domain = proto.domain if proto.domain != "ai.onnx" else ""
        handler = resolve(proto.op_type, opset, domain)
        if handler is None:
            version = since_version(proto.op_type, opset, domain)
            known = f"{proto.op_type}-{version}" if version is not None else "no ONNX schema"
            dom = f" (domain {domain!r})" if domain else ""
            problems.append(f"{proto.op_type}{dom} node '{node.name}': not supported ({known} at opset {opset})")
            poisoned.update(proto.output)
            continue
        if any(i in poisoned for i in proto.input):
            poisoned.update(proto.output)
            continue
        try:
            handler(ctx, node)
        except UnsupportedVariant as exc:
            problems.append(str(exc))
            poisoned.update(proto.output)
            continue
        if not ctx.defined(node.outputs[0]):
            raise AssertionError(f"handler for {proto.op_type} defined no output")  # a bug, not bad input

    for op in graph.ops:
        if isinstance(op, Softmax) and (
            graph.consumers(op.output) or op.output not in [ctx.resolve(o.name) for o in model.graph.output]
        ):
            problems.append(
                f"Softmax node '{op.meta.get('onnx_node', op.name)}': only supported as the last op "
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
    for out in model.graph.output:
        resolved = ctx.resolve(out.name)
        if ctx.is_const(resolved):
            raise UnsupportedOpError(f"{where}: output {out.name!r} is a constant, independent of the input")
        resolved = renamed.get(resolved, resolved)
        # An alias (Identity) of a value takes the value's place, unless another output already names that value.
        if resolved != out.name and resolved not in inputs and resolved not in output_names:
            producer = graph.producer(resolved)
            graph.replace_uses(resolved, out.name)
            producer.output = out.name
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
        return import_model(path, input_shapes=input_shapes, name=path.graph.name or "model")
    model = load_model(path)
    log.info("loaded %s (%d nodes)", path, len(model.graph.node))
    graph = import_model(model, input_shapes=input_shapes, name=Path(path).name)
    graph.name = Path(path).stem
    return graph


__all__ = ["import_model", "import_onnx"]
