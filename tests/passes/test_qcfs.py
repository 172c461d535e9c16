"""QCFS conversion with rate-coded neurons (``qcfs=rate``): an IF neuron with threshold λ, reset by subtraction
and v(0) = θ/2 reproduces a QCFS activation with L levels exactly after T = L steps of constant input. (The
windowed neurons the reference target converts to by default are tested in test_qcfs_window.py.)

Why it is exact: with θ = 1 (the layer before carries z / λ) and a constant current u = z / λ, the neuron's
charge after t steps is 1/2 + t·u, and it fires whenever the charge not yet spent reaches 1, at most once a
step, so its count is N_t = clip(floor(1/2 + t·u), 0, t). At t = L that is the QCFS step count
clip(floor(z·L/λ + 1/2), 0, L), and the readout N/L·λ is the QCFS output. In float32 the equality is bit for
bit when every value involved is a short binary fraction (λ a power of two, weights and inputs multiples of
small powers of two), so those tests use np.array_equal; with other λ the floors agree away from step
boundaries and the outputs round identically (both are N·λ/L correctly rounded when L is a power of two).
"""

import numpy as np
import pytest
from ir_graphs import qcfs_chain, two_layer

from neurodeploy.ir import IF, QCFS, Dense, Graph, Relu, TensorType, interpret
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline
from neurodeploy.simulate import simulate

F32 = np.float32
LEVELS = [1, 2, 4, 8, 16]


def _convert(graph: Graph, options: str = "") -> tuple[Graph, Graph, PassContext]:
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    ann = graph.copy()
    ctx = PassContext()  # no calibration data: a QCFS λ is trained, nothing is measured
    PassManager(build_pipeline(f"convert-to-snn{{qcfs=rate{options}}}")).run(graph, ctx)
    return ann, graph, ctx


def _single_layer(lam: float, levels: int, readout: bool, shift: float = 0.5) -> Graph:
    """x (1) -> Dense to 3 units (weights 1, 2, -1/2; biases 0, -λ/4, λ/8) -> QCFS -> [Dense readout]."""
    ops = [
        Dense(
            name="fc1",
            inputs=("x",),
            output="z",
            weight=np.array([[1.0], [2.0], [-0.5]], F32),
            bias=np.array([0.0, -lam / 4, lam / 8], F32),
        ),
        QCFS(name="act", inputs=("z",), output="a", lam=lam, levels=levels, shift=shift),
    ]
    if readout:
        weight = np.array([[1.0, -0.5, 0.25], [0.125, 2.0, -1.0]], F32)
        ops.append(Dense(name="fc2", inputs=("a",), output="y", weight=weight, bias=np.array([0.5, -0.25], F32)))
    else:
        ops[-1].output = "y"
    return Graph("qcfs_single", {"x": TensorType((1,))}, ["y"], ops)


def _grid(lam: float, levels: int) -> np.ndarray:
    """Inputs from -2λ to 3λ in steps of λ/(4L): negative, every step boundary (z·L/λ + 1/2 a whole number, where
    floor and the IF's ">=" must agree), between boundaries, and saturated."""
    k = np.arange(-8 * levels, 12 * levels + 1)
    return (k * (lam / (4 * levels))).astype(F32)[:, None]


@pytest.mark.parametrize("levels", LEVELS)
@pytest.mark.parametrize("lam", [0.5, 1.0, 2.0, 8.0])
@pytest.mark.parametrize("readout", [False, True], ids=["qcfs_output", "dense_readout"])
def test_one_qcfs_layer_is_exact_at_T_equal_L(levels, lam, readout):
    ann, snn, ctx = _convert(_single_layer(lam, levels, readout))
    assert ctx.warnings == []
    x = _grid(lam, levels)
    expected = interpret.run(ann, x)["y"]
    name = "a" if readout else "y"
    activation = interpret.run(ann, x, keep=[name])[name]
    # The inputs reach every level, saturate, and stay at zero for negative inputs.
    assert len(np.unique(activation)) == levels + 1
    assert (activation == lam).any()
    assert (activation[x[:, 0] < 0, 0] == 0).all()
    actual = simulate(snn, {"x": x}, steps=levels).outputs["y"]
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("levels", [4, 8])
def test_fewer_or_more_steps_than_levels_are_not_exact(levels):
    """The exactness is a property of T = L: T = L/2 and T = 2L miss by up to a step (a control for the test
    above, which would also pass if the SNN ignored T)."""
    ann, snn, _ = _convert(_single_layer(1.0, levels, readout=False))
    x = _grid(1.0, levels)
    expected = interpret.run(ann, x)["y"]
    for steps in (levels // 2, 2 * levels):
        assert not np.array_equal(simulate(snn, {"x": x}, steps=steps).outputs["y"], expected)


@pytest.mark.parametrize("levels", [*LEVELS, 3, 5, 6])
@pytest.mark.parametrize("lam", [0.75, 3.0, 5.5])
def test_one_qcfs_layer_with_any_lambda_is_exact_away_from_step_boundaries(levels, lam):
    """Any λ and L, random weights and inputs. For L not a power of two, k/L is not a binary fraction: the ANN
    rounds k/L and then (k/L)·λ, the readout rounds k·λ/L once, so they may differ by one ulp."""
    rng = np.random.default_rng(levels)
    weight = rng.normal(size=(16, 5)).astype(F32)
    graph = Graph(
        "qcfs_dense",
        {"x": TensorType((5,))},
        ["y"],
        [
            Dense(name="fc", inputs=("x",), output="z", weight=weight, bias=rng.normal(size=16).astype(F32)),
            QCFS(name="act", inputs=("z",), output="y", lam=lam, levels=levels),
        ],
    )
    ann, snn, _ = _convert(graph)
    x = (rng.normal(size=(512, 5)) * lam / 2).astype(F32)
    z = interpret.run(ann, x, keep=["z"])["z"].astype(np.float64)
    position = z * levels / lam + 0.5
    far = (np.abs(position - np.round(position)) > 1e-3).all(axis=1)  # the SNN's W/λ rounds differently
    assert far.sum() > 400
    x = x[far]
    expected = interpret.run(ann, x)["y"]
    assert (expected == 0).any()
    assert (expected == F32(lam)).any()
    actual = simulate(snn, {"x": x}, steps=levels).outputs["y"]
    if levels & (levels - 1) == 0:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_array_max_ulp(actual, expected, maxulp=1)


def test_other_shifts_start_the_membrane_at_shift_times_threshold():
    ann, snn, _ = _convert(_single_layer(2.0, 8, readout=True, shift=0.25))
    (neuron,) = [op for op in snn.ops if isinstance(op, IF)]
    assert neuron.initial == 0.25
    x = _grid(2.0, 8)
    np.testing.assert_array_equal(simulate(snn, {"x": x}, steps=8).outputs["y"], interpret.run(ann, x)["y"])


def test_threshold_initial_state_and_levels_are_recorded_whatever_initial_says():
    _, snn, ctx = _convert(_single_layer(2.0, 8, readout=True), ",initial=0.0")
    (neuron,) = [op for op in snn.ops if isinstance(op, IF)]
    assert float(neuron.threshold) == 1.0  # fc1 produces z / λ
    assert neuron.initial == 0.5
    assert neuron.reset == "subtract"
    assert neuron.meta["levels"] == 8
    assert neuron.meta["lambda"] == 2.0
    record = ctx.records["convert-to-snn"]
    assert record["levels"] == {"act": 8}
    assert record["lambda"] == {"act": 2.0}
    np.testing.assert_array_equal(snn.op("fc1").weight, np.array([[0.5], [1.0], [-0.25]], F32))


def test_exported_chain_converts_exactly_after_canonicalize():
    """The op chain torch exports (detected by detect-qcfs in CANONICALIZE) converts like a QCFS op."""
    lam, levels = 2.0, 4
    graph = _single_layer(lam, levels, readout=True)
    act = graph.op("act")
    index = graph.ops.index(act)
    graph.ops[index : index + 1] = qcfs_chain("z", "a", lam, levels)
    ann, snn, ctx = _convert(graph)
    assert [op.op_type for op in ann.ops] == ["Dense", "QCFS", "Dense"]
    assert ctx.records["convert-to-snn"]["levels"] == {"q_qcfs": 4}
    x = _grid(lam, levels)
    np.testing.assert_array_equal(simulate(snn, {"x": x}, steps=levels).outputs["y"], interpret.run(ann, x)["y"])


@pytest.mark.parametrize("levels", [4, 8, 16])
def test_two_qcfs_layers_at_T_equal_L_are_within_the_unevenness_bound(levels):
    """Layer 1 is exact at T = L, but its spikes arrive unevenly in time (N1(t) = floor(1/2 + t·u) is not
    t·N1(L)/L), and layer 2 cannot always follow: charge that arrives late is not emitted by T, and charge spent
    on early spikes is not taken back when negative input comes later.

    The bound: the charge layer 2 has received by step t, 1/2 + A(t), departs from the even ramp
    1/2 + t·A(L)/L by at most D = max_t |Σ_j w_j (N1_j(t) - t·N1_j(L)/L)| (w in units of layer 2's threshold;
    the bias adds evenly and cancels). An IF neuron's count after L steps is monotone in its charge sequence
    and shifting that sequence by a whole k changes the count by at most k; with the even ramp the count is
    the QCFS count. So |N2_snn - N2_ann| <= ceil(D) steps of λ2 / L, per output unit and sample."""
    ann, snn, _ = _convert(two_layer(levels, readout=False))
    x = np.random.default_rng(1).normal(size=(256, 6)).astype(F32)
    kept = interpret.run(ann, x, keep=["z1", "y"])
    expected = kept["y"].astype(np.float64)
    actual = simulate(snn, {"x": x}, steps=levels).outputs["y"].astype(np.float64)
    lam2 = 1.5
    error_steps = (actual - expected) * levels / lam2
    assert np.allclose(error_steps, np.round(error_steps), atol=1e-4)  # both are on the grid of λ2 / L
    error_steps = np.round(error_steps)

    # D per sample and output unit, from layer 1's spike counts N1(t) = clip(floor(1/2 + t·u), 0, t).
    u = kept["z1"].astype(np.float64) / 2.0
    t = np.arange(1, levels + 1, dtype=np.float64)[:, None, None]
    counts = np.clip(np.floor(0.5 + t * u[None]), 0, t)  # (T, batch, 16)
    unevenness = counts - t * counts[-1][None] / levels
    w = ann.op("fc2").weight.astype(np.float64) * 2.0 / lam2  # layer-2 weights in units of its threshold
    deviation = np.abs(np.einsum("tbj,oj->tbo", unevenness, w)).max(axis=0)  # (batch, 8)
    bound = np.ceil(deviation + 1e-6)
    assert (np.abs(error_steps) <= bound).all()

    # Close: most outputs are exact and the rest are off by a step or two; not exact: some are off.
    assert (error_steps == 0).mean() > 0.75
    assert np.abs(error_steps).mean() < 0.3
    assert (error_steps != 0).any()


@pytest.mark.parametrize("calibration", [False, True], ids=["weight_bounds", "data"])
def test_qcfs_next_to_a_relu_keeps_its_lambda_while_the_relu_is_balanced(calibration):
    """Only the ReLU's λ is measured: from data, or from weight bounds propagated through the QCFS (whose
    output never exceeds its λ)."""
    rng = np.random.default_rng(3)
    graph = Graph(
        "mixed",
        {"x": TensorType((4,))},
        ["y"],
        [
            Dense(name="fc1", inputs=("x",), output="z1", weight=rng.normal(size=(8, 4)).astype(F32)),
            QCFS(name="act1", inputs=("z1",), output="a1", lam=1.5, levels=4),
            Dense(name="fc2", inputs=("a1",), output="z2", weight=rng.normal(size=(8, 8)).astype(F32)),
            Relu(name="act2", inputs=("z2",), output="a2"),
            Dense(name="fc3", inputs=("a2",), output="y", weight=rng.normal(size=(2, 8)).astype(F32)),
        ],
    )
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    ann = graph.copy()
    x = rng.uniform(-1, 1, size=(64, 4)).astype(F32)
    ctx = PassContext(calibration=x if calibration else None)
    PassManager(build_pipeline("convert-to-snn")).run(graph, ctx)  # qcfs=auto: a ReLU beside it, so rate
    assert any("converted to rate-coded IF neurons" in w and "Relu 'act2'" in w for w in ctx.warnings)
    lambdas = ctx.records["convert-to-snn"]["lambda"]
    assert lambdas["act1"] == 1.5
    w2 = ann.op("fc2").weight
    if calibration:
        assert lambdas["act2"] == pytest.approx(float(interpret.run(ann, x, keep=["a2"])["a2"].max()), rel=1e-6)
    else:  # a1 in [0, 1.5]: the bound of z2 is 1.5 times the sum of each row's positive weights
        assert lambdas["act2"] == pytest.approx(float((np.maximum(w2, 0).sum(axis=1) * 1.5).max()), rel=1e-6)
        assert any("No calibration data" in w for w in ctx.warnings)
    assert [op.op_type for op in graph.ops] == ["Dense", "IF", "Dense", "IF", "Dense"]
