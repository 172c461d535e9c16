"""A stable, line-per-op text form of a graph (``--dump-ir``, golden tests)."""

from __future__ import annotations

from typing import Any

import numpy as np

from neurodeploy.ir.graph import Graph


def _format_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        kind = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32"}.get(
            str(value.dtype), str(value.dtype)
        )
        if value.size <= 4:
            body = ", ".join(f"{v:.6g}" for v in value.ravel().tolist())
            return f"{kind}[{','.join(map(str, value.shape))}]({body})"
        return f"{kind}[{','.join(map(str, value.shape))}]"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple):
        return "(" + ",".join(_format_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def format_graph(graph: Graph) -> str:
    """The graph as text: inputs, one line per op with its attributes and output type, outputs."""
    types = graph.types()
    lines = [f"graph {graph.name!r}"]
    for name, t in graph.inputs.items():
        lines.append(f"  input %{name}: {t}")
    for op in graph.ops:
        args = ", ".join(f"%{v}" for v in op.inputs)
        attrs = " ".join(f"{k}={_format_value(v)}" for k, v in op.attributes().items() if v is not None)
        attrs = f" {{{attrs}}}" if attrs else ""
        lines.append(f"  %{op.output} = {op.op_type}[{op.name}]({args}){attrs} : {types[op.output]}")
    lines.append("  return " + ", ".join(f"%{v}" for v in graph.outputs))
    return "\n".join(lines) + "\n"
