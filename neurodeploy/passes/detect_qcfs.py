"""detect-qcfs: recognise the arithmetic a QCFS activation exports to and replace it with one ``QCFS`` op.

The reference code (``x = x / up; x = floor(x * t + 0.5) / t; x = clamp(x, 0, 1); x = x * up``) imports as

    Scale(1/λ) -> Scale(L) -> Bias(φ) -> Floor -> Scale(1/L) -> Clip(0, 1) -> Scale(λ)

Each run of Scale ops counts as one scale (their product), so ``x / λ`` as Div or as Mul by the reciprocal,
``x * (L / λ)`` folded into one Mul, and Div or Mul by ``1/L`` all match; the clip bounds may be attributes or
inputs (Clip(0, 1) after fuse-activations). So does the form that clips at λ directly,
``clamp(floor(x * L / λ + φ) * λ / L, 0, λ)``. Before rewriting, the constants must agree: one scalar λ > 0
(from the scale after the Clip, or the Clip's bound), a whole number of levels L >= 1, the input scale equal to
L / λ (to 1e-5 relative), 0 <= φ < 1. Anything else, per-channel λ included, is left as it is.

The rewrite preserves semantics up to float rounding: ``QCFS.forward`` computes x / λ * L + φ in the order the
reference code does, so it reproduces the exporting framework bit for bit; the imported chain (x * (1/λ) * L)
can differ from both in the last bit, which moves a value lying within an ulp of a step boundary to the next
step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy.ir.graph import Graph, GraphEditor, GraphIndex
from neurodeploy.ir.op import Op
from neurodeploy.ir.ops import QCFS, Bias, Clip, Floor, Scale
from neurodeploy.passes.base import Pass, PassContext

RTOL = 1e-5
"""How far (relative) the input scale may be from L / λ, and 1 / the step scale from a whole number."""

MAX_RUN = 16
"""The most Scale ops one run of the pattern may hold (exporters write one or two): the search stays linear in
the graph size. Scales beyond the nearest MAX_RUN are left in the graph, outside the QCFS."""


def _scalar(op: Op) -> float | None:
    """The constant of a Scale/Bias as a float if it is one value (any shape of size 1), else None."""
    if not isinstance(op, (Scale, Bias)):
        return None
    value = op.value
    return float(value.reshape(())) if value.size == 1 else None


def _private(index: GraphIndex, value: str) -> bool:
    """``value`` is read by exactly one op and is not a graph output, so the op defining it can be removed."""
    return index.uses(value) == 1 and not index.is_output(value)


def _scales_before(index: GraphIndex, value: str) -> list[Op]:
    """The run of scalar Scale ops ending in ``value``, nearest first (each of them read only by the next)."""
    run: list[Op] = []
    while (
        len(run) < MAX_RUN
        and isinstance(op := index.producer(value), Scale)
        and _scalar(op) is not None
        and _private(index, op.output)
    ):
        run.append(op)
        value = op.inputs[0]
    return run


def _scales_after(index: GraphIndex, value: str) -> list[Op]:
    """The run of scalar Scale ops reading ``value`` one after another, nearest first."""
    run: list[Op] = []
    while len(run) < MAX_RUN and _private(index, value) and len(readers := index.consumers(value)) == 1:
        op = readers[0]
        if not isinstance(op, Scale) or _scalar(op) is None:
            break
        run.append(op)
        value = op.output
    return run


def _known_scalar(op: Op) -> float:
    """The constant of a Scale/Bias the caller knows to be one value."""
    value = _scalar(op)
    if value is None:
        raise ValueError(f"{op.op_type} '{op.name}' is not a one-value Scale or Bias")
    return value


def _product(ops: list[Op]) -> float:
    return float(np.prod([_known_scalar(op) for op in ops])) if ops else 1.0


def _prefix_products(ops: list[Op]) -> list[float]:
    """``_product(ops[:k])`` for k = 0 .. len(ops), in one pass (a product of floats, multiplied in order)."""
    products = [1.0]
    for op in ops:
        products.append(products[-1] * _known_scalar(op))
    return products


@dataclass(frozen=True)
class _Match:
    ops: list[Op]  # the chain, in graph order
    lam: float
    levels: int
    shift: float


def _match(index: GraphIndex, floor: Floor) -> _Match | None:
    bias = index.producer(floor.inputs[0])
    if not isinstance(bias, Bias) or not _private(index, bias.output) or (shift := _scalar(bias)) is None:
        return None
    if not 0.0 <= shift < 1.0:
        return None
    inner = _scales_before(index, bias.inputs[0])
    if not inner:
        return None
    step = _scales_after(index, floor.output)
    end = step[-1].output if step else floor.output
    readers = index.consumers(end)
    if not _private(index, end) or len(readers) != 1 or not isinstance(clip := readers[0], Clip):
        return None
    if clip.low != 0.0 or clip.high is None or not clip.high > 0:
        return None
    s_step = _product(step)
    if not s_step > 0:
        return None
    outer = _scales_after(index, clip.output)
    # A Scale right after the Clip is λ (or part of it): it belongs to the QCFS, so a chain that cannot absorb
    # it (a per-channel or negative λ) is not one.
    after_clip = index.consumers(clip.output)
    if not outer and len(after_clip) == 1 and isinstance(after_clip[0], Scale):
        return None
    # y = clip(q * s_step, 0, h) * s_out = λ * clip(q / L, 0, 1) with λ = h * s_out and L = h / s_step.
    inner_products, outer_products = _prefix_products(inner), _prefix_products(outer)
    for k_out in range(len(outer), 0 if outer else -1, -1):
        s_out = outer_products[k_out]
        lam = clip.high * s_out
        levels = round(clip.high / s_step)
        if not (np.isfinite(lam) and lam > 0 and levels >= 1):
            continue
        if abs(levels * s_step / clip.high - 1.0) > RTOL:
            continue
        for k_in in range(1, len(inner) + 1):  # the fewest scales before the Bias whose product is L / λ
            a = inner_products[k_in]
            if abs(a * lam / levels - 1.0) <= RTOL:
                chain = [*reversed(inner[:k_in]), bias, floor, *step, clip, *outer[:k_out]]
                return _Match(chain, float(np.float32(lam)), int(levels), shift)
    return None


def _name(edit: GraphEditor, floor: Floor) -> str:
    """The Floor's name with "floor" replaced by "qcfs" ("/act/Floor" -> "/act/QCFS"), or with "_qcfs" added."""
    name = floor.name
    if name.lower().endswith("floor"):
        return edit.fresh_name(name[:-5] + ("QCFS" if name.endswith("Floor") else "qcfs"))
    return edit.fresh_name(f"{name}_qcfs")


@dataclass(frozen=True)
class DetectQCFS(Pass):
    name = "detect-qcfs"

    def run(self, graph: Graph, ctx: PassContext) -> None:
        found: dict[str, dict[str, float | int]] = {}
        with graph.edit() as edit:
            for op in graph:
                if not isinstance(op, Floor) or not edit.contains(op):
                    continue
                match = _match(edit, op)
                if match is None:
                    continue
                first, last = match.ops[0], match.ops[-1]
                qcfs = QCFS(
                    name=_name(edit, op),
                    inputs=first.inputs,
                    output=last.output,
                    meta={"detected_by": self.name, "replaces": [o.meta.get("onnx_node", o.name) for o in match.ops]},
                    lam=match.lam,
                    levels=match.levels,
                    shift=match.shift,
                )
                edit.replace(first, qcfs)
                for old in match.ops[1:]:
                    edit.remove(old)
                found[qcfs.name] = {"lambda": match.lam, "levels": match.levels, "shift": match.shift}
        if found:
            ctx.records[self.name] = found
