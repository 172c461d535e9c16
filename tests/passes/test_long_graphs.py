"""Graph size: passes query and edit through one GraphIndex/GraphEditor per pass, never through Graph's per-call
scans, so compiling a long chain is linear in its length (benchmarks/compile_scaling.py measures it)."""

import numpy as np
import pytest
from ir_graphs import conv_net, inputs_for, qcfs_chain, qcfs_net, residual_net

from neurodeploy.compiler import run_pipeline
from neurodeploy.ir import Add, BatchNorm, Bias, Clip, Dense, Graph, Relu, Reshape, TensorType, interpret
from neurodeploy.passes import CANONICALIZE, PassContext, build_pipeline

F32 = np.float32
WIDTH = 4
SCANS = ("producer", "consumers", "uses", "op", "fresh_name", "value_names", "replace_uses", "remove", "replace")
SCANS += ("insert_after", "bypass", "dead_code_elimination")


def chain(blocks: int, seed: int = 0) -> Graph:
    """``blocks`` blocks in turn, each reading the previous one's output ``h``, then a Dense head:
    A: Dense, BatchNorm, Bias, Relu, Clip(0, 6), Reshape (same shape)   (folded, fused, bypassed: Dense, Clip)
    B: Dense, Relu, Add(relu, h)                                        (conversion adds a Scale on the skip)
    C: Dense, the op chain a QCFS exports to (7 ops)                    (one QCFS op)"""
    rng = np.random.default_rng(seed)
    ops: list = []
    h = "x"
    for i in range(blocks):
        w = (rng.normal(size=(WIDTH, WIDTH)) / 2).astype(F32)
        if i % 3 == 0:
            ops += [
                Dense(name=f"fc{i}", inputs=(h,), output=f"d{i}", weight=w),
                BatchNorm(
                    name=f"bn{i}",
                    inputs=(f"d{i}",),
                    output=f"n{i}",
                    scale=rng.uniform(0.5, 1.5, WIDTH).astype(F32),
                    shift=np.full(WIDTH, 0.1, F32),
                    mean=np.zeros(WIDTH, F32),
                    var=np.ones(WIDTH, F32),
                ),
                Bias(name=f"bias{i}", inputs=(f"n{i}",), output=f"b{i}", value=rng.normal(size=WIDTH).astype(F32)),
                Relu(name=f"relu{i}", inputs=(f"b{i}",), output=f"r{i}"),
                Clip(name=f"clip{i}", inputs=(f"r{i}",), output=f"c{i}", low=0.0, high=6.0),
                Reshape(name=f"same{i}", inputs=(f"c{i}",), output=f"h{i}", shape=(WIDTH,)),
            ]
        elif i % 3 == 1:
            ops += [
                Dense(name=f"fc{i}", inputs=(h,), output=f"d{i}", weight=w, bias=np.full(WIDTH, 0.1, F32)),
                Relu(name=f"relu{i}", inputs=(f"d{i}",), output=f"r{i}"),
                Add(name=f"add{i}", inputs=(f"r{i}", h), output=f"h{i}"),
            ]
        else:
            ops += [
                Dense(name=f"fc{i}", inputs=(h,), output=f"d{i}", weight=w),
                *qcfs_chain(f"d{i}", f"h{i}", lam=2.0, levels=8, prefix=f"q{i}"),
            ]
        h = f"h{i}"
    ops.append(Dense(name="head", inputs=(h,), output="logits", weight=np.eye(WIDTH, dtype=F32)))
    return Graph("chain", {"x": TensorType((WIDTH,))}, ["logits"], ops)


def _pipeline(conversion: str = "convert-to-snn"):
    return build_pipeline(f"{CANONICALIZE},{conversion}")


@pytest.mark.parametrize(
    ("make", "conversion"),
    [
        (lambda: conv_net(softmax=True, maxpool=True), "convert-to-snn{readout=spikes}"),
        (residual_net, "convert-to-snn{norm=max,granularity=channel}"),
        (qcfs_net, "convert-to-snn{norm=weights}"),
        (lambda: chain(9), "convert-to-snn"),
    ],
)
def test_passes_never_scan_the_whole_graph_per_op(monkeypatch, make, conversion):
    graph = make()
    ctx = PassContext(calibration=inputs_for(graph, batch=8))
    expected = run_pipeline(graph.copy(), _pipeline(conversion), PassContext(calibration=ctx.calibration))[1]

    def scan(*args, **kwargs):
        raise AssertionError("a pass called one of Graph's O(n) queries or edits; use graph.index() or graph.edit()")

    for name in SCANS:
        monkeypatch.setattr(Graph, name, scan)
    _, snn = run_pipeline(graph, _pipeline(conversion), ctx)
    monkeypatch.undo()
    assert [(op.op_type, op.name, op.inputs, op.output) for op in snn.ops] == [
        (op.op_type, op.name, op.inputs, op.output) for op in expected.ops
    ]


def test_a_short_chain_keeps_its_function_through_canonicalization():
    graph = chain(12)
    x = inputs_for(graph, batch=64)
    before = interpret.run(graph, x)["logits"]
    ann, _ = run_pipeline(graph.copy(), _pipeline(), PassContext(calibration=x))
    assert {op.op_type for op in ann.ops} == {"Dense", "Clip", "Relu", "Add", "QCFS"}
    np.testing.assert_allclose(interpret.run(ann, x)["logits"], before, rtol=1e-5, atol=1e-5)


def test_a_ten_thousand_op_chain_compiles():
    graph = chain(1765)  # 589 blocks A (6 ops), 588 B (3 ops), 588 C (8 ops) and the head: 10,003 ops
    assert len(graph.ops) == 10_003
    ann, snn = run_pipeline(graph, _pipeline(), PassContext(calibration=inputs_for(graph, batch=4)))
    snn.verify()
    assert len(ann.ops) == 589 * 2 + 588 * 3 + 588 * 2 + 1  # A: Dense, Clip; B: Dense, Relu, Add; C: Dense, QCFS
    counts = {t: sum(op.op_type == t for op in snn.ops) for t in ("Dense", "IF", "Add", "Scale")}
    assert counts == {"Dense": 1766, "IF": 1765, "Add": 588, "Scale": 588}  # a Scale on each skip into an Add
    assert len(snn.ops) == sum(counts.values())
