"""Few-spike coding (``coding=fs``, :class:`~neurodeploy.ir.neurons.FewSpike`; Stöckl & Maass 2021): each layer
integrates a window of K steps and sends its activation in the next window as at most K graded spikes, so a ReLU
network becomes its ANN with every activation rounded to 2^K - 1 levels of [0, λ], and a QCFS network its
quantized ANN exactly, at every T that is a whole number of windows after a fill of one window per layer.
"""

import numpy as np
import pytest
from ir_graphs import two_layer

from neurodeploy import compile_model
from neurodeploy.backends.registry import get_backend
from neurodeploy.errors import ConversionError, DataError, PipelineError
from neurodeploy.ir import QCFS, Dense, FewSpike, Graph, TensorType, interpret
from neurodeploy.ir.neurons import fs_digits
from neurodeploy.passes import CANONICALIZE, PassContext, PassManager, build_pipeline
from neurodeploy.simulate import readout_delay, simulate

F32 = np.float32
QCFS_EXAMPLE = "examples/mnist_qcfs/mnist_qcfs.onnx"


@pytest.mark.parametrize(
    ("levels", "steps", "digits"),
    [
        (1, 1, (1,)),
        (3, 2, (2, 1)),
        (7, 3, (4, 2, 1)),
        (255, 8, (128, 64, 32, 16, 8, 4, 2, 1)),
        (4, 3, (2, 1, 1)),
        (4, 4, (1, 1, 1, 1)),
        (10, 4, (5, 3, 1, 1)),
    ],
)
def test_digits_write_every_level_greedily(levels, steps, digits):
    assert fs_digits(levels, steps) == digits
    for level in range(levels + 1):  # greedy, largest digit first, writes each level exactly
        left = level
        for digit in digits:
            left -= digit if left >= digit else 0
        assert left == 0


@pytest.mark.parametrize(("levels", "steps"), [(4, 2), (4, 5), (8, 3), (0, 1)])
def test_digits_refuse_steps_that_cannot_write_every_level(levels, steps):
    with pytest.raises(ValueError, match="few-spike steps"):
        fs_digits(levels, steps)


def _binary_neuron(steps: int = 3, threshold=1.0) -> FewSpike:
    levels = 2**steps - 1
    code = np.asarray(fs_digits(levels, steps), F32) / F32(levels)
    return FewSpike(
        name="n",
        inputs=("x",),
        output="s",
        threshold=np.asarray(threshold, F32),
        thresholds=code - F32(0.5 / levels),
        resets=code,
        spike_values=code,
    )


def test_few_spike_trace_matches_a_hand_derived_one():
    """K = 3, L = 7 (digits 4, 2, 1 sevenths), φ = 1/2, θ = 1. Window means 0.5, 1, -1, 0.3, 0 give levels
    round(7a) clipped: 4 (0.5·7 + 1/2 = 4), 7, 0, 2 (2.6), 0; each is sent in the next window, digit by digit,
    a spike of digit c at step j being worth K·c/7."""
    neuron = _binary_neuron()
    windows = [[0.5] * 3, [1.0] * 3, [-1.0, 0.0, 0.0], [0.3] * 3, [0.0] * 3, [0.0] * 3]
    state = neuron.init_state(1, (1,))
    out = [float(neuron.step(state, [np.array([[x]], F32)])[0, 0]) for window in windows for x in window]
    unit = 3 / 7
    expected = [0, 0, 0, 4 * unit, 0, 0, 4 * unit, 2 * unit, unit, 0, 0, 0, 0, 2 * unit, 0, 0, 0, 0]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    assert sum(v > 0 for v in out) == 1 + 3 + 1  # at most K spikes a window, one per set digit


def test_few_spike_forward_is_K_bit_rounding_of_the_clipped_activation():
    neuron = _binary_neuron(steps=4, threshold=2.0)
    x = np.linspace(-1, 3, 401, dtype=F32)[:, None]
    level = np.clip(np.floor(x.astype(np.float64) / 2 * 15 + 0.5), 0, 15)
    far = np.abs(x[:, 0] / 2 * 15 + 0.5 - np.round(x[:, 0] / 2 * 15 + 0.5)) > 1e-3
    got = neuron.forward([x])
    np.testing.assert_allclose(got[far], (level / 15)[far], rtol=1e-6, atol=1e-6)


def _convert(graph: Graph, options: str, calibration: np.ndarray | None = None) -> tuple[Graph, Graph, PassContext]:
    PassManager(build_pipeline(CANONICALIZE)).run(graph, PassContext())
    ann = graph.copy()
    ctx = PassContext(calibration=calibration)
    PassManager(build_pipeline(f"convert-to-snn{{{options}}}")).run(graph, ctx)
    return ann, graph, ctx


def _rounded_ann(ann: Graph, x: np.ndarray, lambdas: dict[str, float], levels: int) -> np.ndarray:
    """The ANN with each ReLU's output rounded to ``levels`` steps of [0, λ], computed independently in float64."""
    w1, w2, w3 = (ann.op(n).weight.astype(np.float64) for n in ("fc1", "fc2", "fc3"))
    b2 = ann.op("fc2").bias.astype(np.float64)

    def rounded(z, lam):
        return lam * np.clip(np.floor(z / lam * levels + 0.5), 0, levels) / levels

    a1 = rounded(x.astype(np.float64) @ w1.T, lambdas["act1"])
    a2 = rounded(a1 @ w2.T + b2, lambdas["act2"])
    return a2 @ w3.T


@pytest.mark.parametrize("steps", [2, 4, 6])
def test_a_relu_network_becomes_its_rounded_ann_at_every_whole_number_of_windows(steps):
    x = np.random.default_rng(1).normal(size=(256, 6)).astype(F32)
    ann, snn, ctx = _convert(two_layer(None), f"coding=fs,fs-steps={steps},norm=max", calibration=x)
    assert [op.op_type for op in snn.ops] == ["Dense", "FewSpike", "Dense", "FewSpike", "Dense"]
    assert readout_delay(snn) == 2 * steps
    record = ctx.records["convert-to-snn"]
    assert record["coding"] == "fs"
    assert record["fs_steps"] == steps
    expected = _rounded_ann(ann, x, record["lambda"], 2**steps - 1)
    windows = [steps * k for k in (1, 2, 4, 8)]
    sim = simulate(snn, {"x": x}, steps=windows[-1], checkpoints=tuple(windows[:-1]))
    for t in windows[:-1]:
        np.testing.assert_allclose(sim.checkpoints[t]["y"], expected, rtol=1e-4, atol=1e-4, err_msg=f"T = {t}")
    np.testing.assert_allclose(sim.outputs["y"], expected, rtol=1e-4, atol=1e-4)
    # At most K spikes per neuron and window (a neuron's spikes over the whole run: fill + 8 windows).
    for op in snn.ops:
        if isinstance(op, FewSpike):
            assert sim.counts[op.name].max() <= steps * (windows[-1] // steps + 2)


def test_few_spike_counts_are_spike_events_not_their_values():
    """A graded spike is one event, whatever its value K d_j: the counts, spikes and SynOps count the nonzero
    outputs (not the step's values, which the next layer's weights receive)."""
    from neurodeploy.metrics import fan_out_maps

    x = np.random.default_rng(2).normal(size=(64, 6)).astype(F32)
    _, snn, _ = _convert(two_layer(None), "coding=fs,fs-steps=4,norm=max", calibration=x)
    names = {op.output: op.name for op in snn.ops if isinstance(op, FewSpike)}
    events = {name: np.zeros((64, *snn.types()[value].shape)) for value, name in names.items()}
    values = {name: np.zeros_like(e) for name, e in events.items()}

    def observe(value, out):
        if value in names:
            events[names[value]] += out != 0
            values[names[value]] += out

    sim = simulate(snn, {"x": x}, steps=16, fan_out=fan_out_maps(snn), observe=observe)
    fan_out = fan_out_maps(snn)
    for value, name in names.items():
        np.testing.assert_array_equal(sim.counts[name], events[name])
        np.testing.assert_array_equal(sim.spikes[name], events[name].reshape(64, -1).sum(axis=1))
        np.testing.assert_allclose(
            sim.synops[name], events[name].reshape(64, -1) @ fan_out[value].reshape(-1), rtol=1e-6
        )
        assert not np.array_equal(values[name], events[name])  # the values are not the count
        np.testing.assert_allclose(sim.sent[name], values[name], rtol=1e-6)  # what it sent: the values
    assert set(sim.sent) == set(names.values())  # (only graded and signed neurons keep both)


def test_a_qcfs_network_in_fewer_steps_than_levels_is_its_quantized_ann():
    """L = 4 in K = 3 steps (digits 2, 1, 1): the quantized ANN exactly, after a fill of 3 steps per layer where
    the windowed neurons need 4."""
    rng = np.random.default_rng(0)
    make = lambda: Graph(  # noqa: E731
        "qcfs_two",
        {"x": TensorType((6,))},
        ["y"],
        [
            Dense(name="fc1", inputs=("x",), output="z1", weight=rng.normal(size=(16, 6)).astype(F32)),
            QCFS(name="act1", inputs=("z1",), output="a1", lam=2.0, levels=4),
            Dense(name="fc2", inputs=("a1",), output="z2", weight=(rng.normal(size=(8, 16)) * 0.4).astype(F32)),
            QCFS(name="act2", inputs=("z2",), output="a2", lam=1.5, levels=4),
            Dense(name="fc3", inputs=("a2",), output="y", weight=rng.normal(size=(3, 8)).astype(F32)),
        ],
    )
    ann, snn, _ = _convert(make(), "coding=fs,fs-steps=3")
    assert readout_delay(snn) == 6
    x = rng.normal(size=(512, 6)).astype(F32)
    sim = simulate(snn, {"x": x}, steps=24, checkpoints=(3, 6, 12))
    expected = interpret.run(ann, x)["y"]
    for t, outs in sim.checkpoints.items():
        np.testing.assert_allclose(outs["y"], expected, rtol=1e-5, atol=1e-5, err_msg=f"T = {t}")
    with pytest.raises(ConversionError, match=r"QCFS 'act1': 4 levels take 3 to 4 few-spike steps, not 8"):
        _convert(make(), "coding=fs,fs-steps=8")


def test_bad_few_spike_options_are_refused():
    with pytest.raises(ConversionError, match="coding=fs makes every activation"):
        _convert(two_layer(None), "coding=fs,qcfs=window")
    with pytest.raises(PipelineError, match=r"fs-steps must be in \[1, 16\]"):
        build_pipeline("convert-to-snn{coding=fs,fs-steps=0}")


@pytest.mark.parametrize("target", ["speck", "spinnaker", "brainscales2"])  # (loihi: graded mode, its own tests)
def test_targets_without_few_spike_neurons_refuse_coding_fs_by_name(tmp_path, target):
    assert "coding" not in get_backend(target).pipeline({})  # rate, the default
    refusal = rf"coding=fs asks for neurons the {target} target does not run .*fs: few-spike"
    with pytest.raises(DataError, match=refusal):
        compile_model(QCFS_EXAMPLE, target, tmp_path / "a", conversion="coding=fs,fs-steps=4")
    assert not (tmp_path / "a").exists()
