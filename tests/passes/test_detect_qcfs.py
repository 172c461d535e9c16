"""detect-qcfs: the op chain a QCFS activation exports to becomes one QCFS op, with the same output; chains
whose constants do not fit stay as they are."""

import numpy as np
import pytest
from frontend.onnx_cases import const, make_model, run_ort
from ir_graphs import qcfs_chain, qcfs_net
from onnx import helper

from neurodeploy.frontend.onnx import import_onnx
from neurodeploy.ir import QCFS, Bias, Clip, Dense, Floor, Graph, Scale, TensorType, interpret
from neurodeploy.passes import CANONICALIZE, PASSES, PassContext, PassManager, build_pipeline
from neurodeploy.passes.detect_qcfs import MAX_RUN

F32 = np.float32


def _graph(ops, outputs=("y",), width: int = 6) -> Graph:
    """x -> fc -> (ops reading "h") -> outputs."""
    rng = np.random.default_rng(0)
    fc = Dense(name="fc", inputs=("x",), output="h", weight=rng.normal(size=(width, width)).astype(F32))
    return Graph("chain", {"x": TensorType((width,))}, list(outputs), [fc, *ops])


def _x(width: int = 6, n: int = 512) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, width)).astype(F32)


def _detect(graph: Graph) -> tuple[Graph, Graph, PassContext]:
    before = graph.copy()
    ctx = PassContext()
    PassManager(build_pipeline("detect-qcfs")).run(graph, ctx)
    return before, graph, ctx


def _assert_same_function(before: Graph, after: Graph, x: np.ndarray) -> None:
    # Random inputs do not lie within an ulp of a step boundary, where x * (1/λ) and x / λ may round apart.
    for name in before.outputs:
        np.testing.assert_allclose(interpret.run(after, x)[name], interpret.run(before, x)[name], rtol=0, atol=1e-6)


def _qcfs_ops(graph: Graph) -> list[QCFS]:
    return [op for op in graph.ops if isinstance(op, QCFS)]


@pytest.mark.parametrize(("lam", "levels"), [(0.75, 4), (8.0, 1), (2.5, 2), (3.0, 16), (0.1234, 8)])
def test_reference_chain_becomes_one_qcfs(lam, levels):
    before, after, ctx = _detect(_graph(qcfs_chain("h", "y", lam, levels)))
    assert [op.op_type for op in after.ops] == ["Dense", "QCFS"]
    (op,) = _qcfs_ops(after)
    assert (op.lam, op.levels, op.shift) == (float(F32(lam)), levels, 0.5)
    assert op.inputs == ("h",)
    assert op.output == "y"
    assert op.name == "q_qcfs"
    assert ctx.records["detect-qcfs"] == {"q_qcfs": {"lambda": float(F32(lam)), "levels": levels, "shift": 0.5}}
    assert op.meta["replaces"] == [o.name for o in before.ops[1:]]
    y = interpret.run(before, _x())["y"]
    assert len(np.unique(y)) == levels + 1  # the inputs reach every step, so the comparison means something
    _assert_same_function(before, after, _x())


def _chain_variant(variant: str, lam: float = 1.5, levels: int = 4) -> list:
    ops = qcfs_chain("h", "y", lam, levels)
    if variant == "merged_input_scale":  # x * (L / λ) as one Mul
        merged = Scale(name="q_mul", inputs=("h",), output="q2", value=F32(levels / lam))
        ops = [merged, *ops[2:]]
    elif variant == "reciprocal_step":  # Div by L written as Mul by 1/L (the same op after import)
        ops[4] = Scale(name="q_div_levels", inputs=("q4",), output="q5", value=np.full((1,), 1 / levels, F32))
    elif variant == "shift_0.25":
        ops[2] = Bias(name="q_add_shift", inputs=("q2",), output="q3", value=F32(0.25))
    elif variant == "clip_at_lambda":  # clamp(floor(x * L / λ + 0.5) * λ / L, 0, λ)
        ops[4] = Scale(name="q_step", inputs=("q4",), output="q5", value=F32(lam / levels))
        ops[5] = Clip(name="q_clip", inputs=("q5",), output="y", low=0.0, high=lam)
        ops = ops[:6]
    return ops


@pytest.mark.parametrize("variant", ["merged_input_scale", "reciprocal_step", "shift_0.25", "clip_at_lambda"])
def test_exporter_variants_are_detected(variant):
    before, after, _ = _detect(_graph(_chain_variant(variant)))
    assert [op.op_type for op in after.ops] == ["Dense", "QCFS"]
    (op,) = _qcfs_ops(after)
    assert (op.lam, op.levels) == (1.5, 4)
    assert op.shift == (0.25 if variant == "shift_0.25" else 0.5)
    _assert_same_function(before, after, _x())


def test_scales_outside_the_chain_are_left_in_place():
    ops = [
        Scale(name="pre", inputs=("h",), output="h2", value=F32(3.0)),
        *qcfs_chain("h2", "q7", 1.5, 4),
        Scale(name="post", inputs=("q7",), output="y", value=F32(-2.0)),
    ]
    before, after, _ = _detect(_graph(ops))
    assert [op.op_type for op in after.ops] == ["Dense", "Scale", "QCFS", "Scale"]
    assert (after.ops[2].lam, after.ops[2].levels) == (1.5, 4)
    _assert_same_function(before, after, _x())


def test_long_runs_of_scales_are_searched_only_near_the_chain():
    """Only the nearest MAX_RUN scales of a run count (so the search is linear in the graph size): a QCFS whose
    input scale is among them is found and the rest of the run stays; scales beyond them are never multiplied."""
    run = 5 * MAX_RUN
    ones = [Scale(name=f"one{i}", inputs=(f"u{i}",), output=f"u{i + 1}", value=F32(1.0)) for i in range(run)]
    ops = [Scale(name="pre", inputs=("h",), output="u0", value=F32(7.0)), *ones, *qcfs_chain(f"u{run}", "y", 1.5, 4)]
    before, after, _ = _detect(_graph(ops))
    assert [op.op_type for op in after.ops] == ["Dense", "Scale", *["Scale"] * run, "QCFS"]
    _assert_same_function(before, after, _x())
    # the input scale needs the far "pre" (7 * ... / 7): out of reach, so nothing is detected
    ops[0] = Scale(name="pre", inputs=("h",), output="u0", value=F32(4 / 1.5))
    ops[1 + run] = Scale(name="q_div_lam", inputs=(f"u{run}",), output="q1", value=F32(1.0))
    ops[2 + run] = Scale(name="q_mul_levels", inputs=("q1",), output="q2", value=F32(1.0))
    _, after, _ = _detect(_graph(ops))
    assert not _qcfs_ops(after)


def _break(ops: list, case: str) -> tuple[list, tuple[str, ...]]:
    outputs = ("y",)
    if case == "shift_1":
        ops[2] = Bias(name="q_add_shift", inputs=("q2",), output="q3", value=F32(1.0))
    elif case == "input_scale_not_L_over_lambda":
        ops[1] = Scale(name="q_mul_levels", inputs=("q1",), output="q2", value=F32(4.5))
    elif case == "levels_not_whole":
        ops[4] = Scale(name="q_div_levels", inputs=("q4",), output="q5", value=F32(0.3))
    elif case == "clip_low_not_0":
        ops[5] = Clip(name="q_clip", inputs=("q5",), output="q6", low=-1.0, high=1.0)
    elif case == "clip_without_high":
        ops[5] = Clip(name="q_clip", inputs=("q5",), output="q6", low=0.0, high=None)
    elif case == "per_channel_lambda":
        ops[0] = Scale(name="q_div_lam", inputs=("h",), output="q1", value=np.linspace(0.5, 1, 6, dtype=F32))
    elif case == "per_channel_lambda_both":  # one λ per feature, before and after
        lam = np.linspace(0.5, 1, 6, dtype=F32)
        ops[0] = Scale(name="q_div_lam", inputs=("h",), output="q1", value=1 / lam)
        ops[6] = Scale(name="q_mul_lam", inputs=("q6",), output="y", value=lam)
    elif case == "negative_lambda":
        ops[6] = Scale(name="q_mul_lam", inputs=("q6",), output="y", value=F32(-1.5))
    elif case == "floor_read_twice":
        outputs = ("y", "q4")
    elif case == "no_input_scale":
        ops = [Bias(name="q_add_shift", inputs=("h",), output="q3", value=F32(0.5)), *ops[3:]]
    return ops, outputs


CASES = [
    "shift_1",
    "input_scale_not_L_over_lambda",
    "levels_not_whole",
    "clip_low_not_0",
    "clip_without_high",
    "per_channel_lambda",
    "per_channel_lambda_both",
    "negative_lambda",
    "floor_read_twice",
    "no_input_scale",
]


@pytest.mark.parametrize("case", CASES)
def test_chains_that_do_not_fit_are_untouched(case):
    ops, outputs = _break(qcfs_chain("h", "y", 1.5, 4), case)
    before, after, ctx = _detect(_graph(ops, outputs))
    assert [op.op_type for op in after.ops] == [op.op_type for op in before.ops]
    assert any(isinstance(op, Floor) for op in after.ops)
    assert "detect-qcfs" not in ctx.records


# The tolerance of the two constant checks, RTOL = 1e-5 relative (the module's docstring): the input scale against
# L / λ, and the step scale against 1 / L. Written out, not imported from the module, so that changing it fails a
# test: a deviation of half the tolerance is detected and one of twice the tolerance is not, so a tolerance 10x
# looser or 10x tighter fails one of the cases below. Both deviations lie far from float32 rounding (~6e-8).
INSIDE, OUTSIDE = 0.5e-5, 2e-5


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("where", ["input_scale", "step_scale"])
@pytest.mark.parametrize(("deviation", "detected"), [(INSIDE, True), (OUTSIDE, False)], ids=["inside", "outside"])
def test_constants_are_matched_to_their_tolerance_and_no_further(where, sign, deviation, detected):
    ops = qcfs_chain("h", "y", 1.5, 4)
    # the input scale is (1 / λ) * L, so L off by the deviation puts it off L / λ by as much; the step scale is 1 / L
    index, exact = (1, 4.0) if where == "input_scale" else (4, 0.25)
    old = ops[index]
    ops[index] = Scale(name=old.name, inputs=old.inputs, output=old.output, value=F32(exact * (1 + sign * deviation)))
    assert abs(float(ops[index].value.reshape(())) / exact - 1 - sign * deviation) < 1e-7  # float32 keeps it
    before, after, ctx = _detect(_graph(ops))
    if detected:
        assert [op.op_type for op in after.ops] == ["Dense", "QCFS"]
        (op,) = _qcfs_ops(after)
        assert (op.lam, op.levels, op.shift) == (1.5, 4, 0.5)
    else:
        assert [op.op_type for op in after.ops] == [op.op_type for op in before.ops]
        assert "detect-qcfs" not in ctx.records


@pytest.mark.parametrize(
    ("shift", "detected"),
    [(0.0, True), (float(np.nextafter(F32(1), F32(0))), True), (1.0, False), (-float(np.finfo(F32).tiny), False)],
    ids=["0", "just_below_1", "1", "just_below_0"],
)
def test_the_shift_must_lie_in_0_to_1(shift, detected):
    ops = qcfs_chain("h", "y", 1.5, 4, shift=shift)
    _, after, _ = _detect(_graph(ops))
    assert [op.shift for op in _qcfs_ops(after)] == ([float(F32(shift))] if detected else [])


def test_detect_qcfs_runs_in_canonicalize_right_after_fuse_activations():
    names = CANONICALIZE.split(",")
    assert names[names.index("fuse-activations") + 1] == "detect-qcfs"
    assert PASSES["detect-qcfs"].preserves_semantics


def test_canonicalize_detects_the_chain_in_a_network_and_keeps_its_function():
    graph = qcfs_net()
    before = graph.copy()
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    assert [op.op_type for op in graph.ops] == ["Dense", "QCFS", "Dense", "QCFS", "Dense"]
    assert [(op.lam, op.levels) for op in _qcfs_ops(graph)] == [(0.75, 4), (0.5, 8)]
    _assert_same_function(before, graph, _x(n=256))


def _onnx_chain(variant: str, lam: float = 1.5, levels: int = 4):
    """QCFS as an ONNX exporter may write it: x / λ then * L (torch), or one Mul by L / λ; clip bounds as
    inputs; λ and L as initializers."""
    nodes = []
    if variant == "div_then_mul":
        nodes += [
            helper.make_node("Div", ["x", "lam"], ["a"], name="div_lam"),
            helper.make_node("Mul", ["a", "levels"], ["b"], name="mul_levels"),
        ]
    else:
        nodes.append(helper.make_node("Mul", ["levels_over_lam", "x"], ["b"], name="mul_a"))
    nodes += [
        helper.make_node("Add", ["b", "half"], ["c"], name="add_half"),
        helper.make_node("Floor", ["c"], ["d"], name="floor"),
        helper.make_node("Div", ["d", "levels"], ["e"], name="div_levels"),
        helper.make_node("Clip", ["e", "zero", "one"], ["f"], name="clip"),
        helper.make_node("Mul", ["f", "lam"], ["y"], name="mul_lam"),
    ]
    inits = [
        const("lam", np.array([lam], F32)),
        const("levels", F32(levels)),
        const("levels_over_lam", F32(levels / lam)),
        const("half", F32(0.5)),
        const("zero", F32(0.0)),
        const("one", F32(1.0)),
    ]
    used = {i for n in nodes for i in n.input}
    return make_model(nodes, ("N", 6), initializers=[t for t in inits if t.name in used])


@pytest.mark.parametrize("variant", ["div_then_mul", "one_mul"])
def test_onnx_chains_import_and_are_detected(variant):
    model = _onnx_chain(variant)
    graph = import_onnx(model)
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    assert [op.op_type for op in graph.ops] == ["QCFS"]
    assert (graph.ops[0].lam, graph.ops[0].levels, graph.ops[0].shift) == (1.5, 4, 0.5)
    x = _x(n=256)
    np.testing.assert_allclose(interpret.run(graph, x)["y"], run_ort(model, x), rtol=0, atol=1e-6)
