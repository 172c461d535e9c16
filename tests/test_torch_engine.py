"""The torch engine of the reference target (``--emulator torch``): value for value the numpy engine's outputs,
checkpoints, spikes, counts and SynOps on random networks whose sums are exact in float32 in any order (weights
multiples of 1/8, inputs multiples of 1/16), for every op and neuron of the simulation and every encoding; the
bundled MNIST CNN's predictions; the refusals (an engine a target lacks, a device torch cannot use, torch
missing); the command line. On a CUDA device too, where there is one.

Without torch (the ``torch`` extra) the tests skip, unless NEURODEPLOY_REQUIRE_TORCH=1 says they must run."""

from __future__ import annotations

import builtins
import json
import os

import numpy as np
import pytest
from cli_support import BUNDLED_MODEL, TEST_IMAGES, run_cli

from neurodeploy.backends.registry import get_backend
from neurodeploy.compiler import compile_model, emulate_artifact
from neurodeploy.data import load_array_file
from neurodeploy.data.calibration import load_calibration
from neurodeploy.emulation import check_engine
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError
from neurodeploy.ir import (
    IF,
    LIF,
    QCFS,
    Add,
    AvgPool2d,
    Bias,
    Clip,
    Concat,
    Conv2d,
    Delay,
    Dense,
    FewSpike,
    Floor,
    GlobalAvgPool,
    Graph,
    MaxPool2d,
    Op,
    Reshape,
    Scale,
    SignedIF,
    SiLU,
    Softmax,
    SpikeMaxPool2d,
    TensorType,
    Threshold,
    WindowIF,
)
from neurodeploy.metrics import fan_out_maps
from neurodeploy.simulate import simulate

if os.environ.get("NEURODEPLOY_REQUIRE_TORCH") != "1":
    torch = pytest.importorskip("torch", reason="torch is not installed (NEURODEPLOY_REQUIRE_TORCH=1 fails)")
else:
    import torch

from neurodeploy.simulate_torch import TorchArrays, simulate_torch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Weights that are small multiples of 1/8: every sum of their products with multiples of 1/16 is exact."""
    return (rng.integers(-4, 5, size=shape) / 8).astype(np.float32)


def rate_net(seed: int) -> Graph:
    """IF (both resets, per-channel thresholds), SignedIF and LIF neurons, grouped, strided, dilated and padded
    convolutions, Delay, Add, average and spike-count max pooling, Concat, Reshape, Dense, QCFS, Floor, Scale,
    Bias, Clip, Threshold, a global average pool: (2, 8, 8) -> (5,)."""
    rng = np.random.default_rng(seed)
    ops: list[Op] = [
        Conv2d(name="c1", inputs=("x",), output="c1", weight=_w(rng, 4, 2, 3, 3), bias=_w(rng, 4), padding=(1,) * 4),
        IF(name="n1", inputs=("c1",), output="s1", threshold=np.array([1, 0.5, 2, 1], np.float32)),
        Conv2d(
            name="c2",
            inputs=("s1",),
            output="c2",
            weight=_w(rng, 4, 2, 3, 3),
            padding=(3, 1, 1, 1),
            dilation=(2, 1),
            stride=(1, 1),
            groups=2,
        ),
        IF(name="n2", inputs=("c2",), output="s2", threshold=np.float32(1), reset="zero", initial=0.25),
        Delay(name="d", inputs=("s1",), output="s1d", steps=2),
        Add(name="add", inputs=("s2", "s1d"), output="a"),
        AvgPool2d(name="ap", inputs=("a",), output="ap", kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1)),
        SignedIF(name="n3", inputs=("ap",), output="s3", threshold=np.float32(0.5)),
        SpikeMaxPool2d(name="mp", inputs=("s1",), output="mp", kernel=(2, 2), stride=(2, 2)),
        Concat(name="cat", inputs=("s3", "mp"), output="cat", axis=0),
        Conv2d(name="c3", inputs=("cat",), output="c3", weight=_w(rng, 6, 8, 3, 3), stride=(2, 2), padding=(1,) * 4),
        LIF(
            name="n4",
            inputs=("c3",),
            output="s4",
            decay=np.float32(0.5),
            gain=np.float32(1),
            drive=np.float32(0.125),
            threshold=np.float32(1),
            syn_decay=np.float32(0.75),
            syn_gain=np.float32(1),
        ),
        GlobalAvgPool(name="gap", inputs=("c3",), output="g"),
        Reshape(name="gflat", inputs=("g",), output="gf", shape=(6,)),
        Reshape(name="flat", inputs=("s4",), output="f", shape=(24,)),
        Concat(name="cat2", inputs=("f", "gf"), output="f2", axis=0),
        Dense(name="fc", inputs=("f2",), output="h", weight=_w(rng, 8, 30), bias=_w(rng, 8)),
        QCFS(name="q", inputs=("h",), output="hq", lam=1.5, levels=4),
        Floor(name="fl", inputs=("hq",), output="hf"),
        Scale(name="sc", inputs=("hf",), output="hs", value=np.float32(0.5)),
        Bias(name="bi", inputs=("hs",), output="hb", value=_w(rng, 8)),
        Clip(name="cl", inputs=("hb",), output="hc", low=-1.0, high=2.0),
        Threshold(name="th", inputs=("hc",), output="ht", threshold=np.float32(0.25), strict=False),
        Add(name="add2", inputs=("hc", "ht"), output="hh"),
        Dense(name="out", inputs=("hh",), output="y", weight=_w(rng, 5, 8)),
    ]
    return Graph("rate_net", {"x": TensorType((2, 8, 8))}, ["y"], ops)


def window_net(seed: int) -> Graph:
    """Windowed QCFS neurons and few-spike neurons (pipelined: a readout delay), a max pool: (2, 6, 6) -> (4,)."""
    rng = np.random.default_rng(seed)
    ops: list[Op] = [
        Conv2d(name="c1", inputs=("x",), output="c1", weight=_w(rng, 3, 2, 3, 3), bias=_w(rng, 3), padding=(1,) * 4),
        WindowIF(name="w1", inputs=("c1",), output="s1", threshold=np.array([1, 0.5, 2], np.float32), levels=4),
        MaxPool2d(name="mp", inputs=("s1",), output="p", kernel=(2, 2), stride=(2, 2), ceil_mode=True),
        Reshape(name="flat", inputs=("p",), output="f", shape=(27,)),
        Dense(name="fc", inputs=("f",), output="h", weight=_w(rng, 6, 27), bias=_w(rng, 6)),
        FewSpike(
            name="fs",
            inputs=("h",),
            output="s2",
            threshold=np.float32(1),
            thresholds=np.array([0.375, 0.125], np.float32),
            resets=np.array([0.5, 0.25], np.float32),
            spike_values=np.array([0.5, 0.25], np.float32),
            start=4,
        ),
        Dense(name="out", inputs=("s2",), output="y", weight=_w(rng, 4, 6)),
    ]
    return Graph("window_net", {"x": TensorType((2, 6, 6))}, ["y"], ops)


def signed_few_spike_net(seed: int) -> Graph:
    """Few-spike neurons with codes of either sign, as a code fitted to SiLU has (thresholds at or below 0 spike on
    inputs at and below 0, negative spike values), per-channel thresholds, pipelined: (2, 6, 6) -> (4,)."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    ops: list[Op] = [
        Conv2d(name="c1", inputs=("x",), output="c1", weight=_w(rng, 3, 2, 3, 3), bias=_w(rng, 3), padding=(1,) * 4),
        FewSpike(
            name="fs1",
            inputs=("c1",),
            output="s1",
            threshold=np.array([1, 0.5, 2], f32),
            thresholds=np.array([-0.25, 0.5], f32),
            resets=np.array([-0.5, 0.25], f32),
            spike_values=np.array([-0.125, 0.5], f32),
        ),
        Reshape(name="flat", inputs=("s1",), output="f", shape=(108,)),
        Dense(name="fc", inputs=("f",), output="h", weight=_w(rng, 6, 108), bias=_w(rng, 6)),
        FewSpike(
            name="fs2",
            inputs=("h",),
            output="s2",
            threshold=np.float32(1),
            thresholds=np.array([0.25, -0.125, 0.5, -0.5], f32),
            resets=np.array([0.5, -0.25, 0.25, 0.0], f32),
            spike_values=np.array([0.5, -0.25, 0.125, -0.125], f32),
            start=2,
        ),
        Dense(name="out", inputs=("s2",), output="y", weight=_w(rng, 4, 6)),
    ]
    return Graph("signed_few_spike_net", {"x": TensorType((2, 6, 6))}, ["y"], ops)


def _inputs(graph: Graph, encoding: Encoding, seed: int, batch: int = 6, frames: int = 12) -> dict[str, np.ndarray]:
    """Inputs that are multiples of 1/16 (direct, rate), or event counts (events)."""
    rng = np.random.default_rng(seed)
    ((name, t),) = graph.inputs.items()
    if encoding.kind == "events":
        return {name: rng.integers(0, 3, size=(batch, frames, *t.shape)).astype(np.float32)}
    return {name: (rng.integers(-8, 17, size=(batch, *t.shape)) / 16).astype(np.float32)}


def _assert_identical(a, b) -> None:
    def same(x: dict, y: dict) -> None:
        assert x.keys() == y.keys()
        for k in x:
            assert np.array_equal(x[k], y[k]), k

    same(a.outputs, b.outputs)
    same(a.spikes, b.spikes)
    same(a.counts, b.counts)
    same(a.synops, b.synops)
    assert a.checkpoints.keys() == b.checkpoints.keys()
    for t in a.checkpoints:
        same(a.checkpoints[t], b.checkpoints[t])
        same(a.checkpoint_spikes[t], b.checkpoint_spikes[t])
        same(a.checkpoint_synops[t], b.checkpoint_synops[t])
    assert a.delay == b.delay


ENCODINGS = [Encoding(), Encoding("rate", seed=3, offset=5), Encoding("events", pad=True)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("encoding", ENCODINGS, ids=lambda e: e.kind)
@pytest.mark.parametrize("build", [rate_net, window_net, signed_few_spike_net])
def test_the_torch_engine_equals_numpy_value_for_value(build, encoding, seed) -> None:
    graph = build(seed)
    graph.verify()
    x = _inputs(graph, encoding, seed)
    fan_out = fan_out_maps(graph)
    args = (graph, x, 16, (1, 3, 8, 16), encoding, fan_out)
    expected = simulate(*args, delayed_readout=3)
    got = simulate_torch(*args, delayed_readout=3, arrays=TorchArrays("cpu"))
    _assert_identical(expected, got)
    assert any(v.sum() > 0 for v in expected.spikes.values())
    assert all(v.dtype == np.float32 for v in got.outputs.values())
    if build is not rate_net:
        assert got.delay > 0  # the pipeline's fill ran


def test_softmax_agrees_up_to_rounding() -> None:
    rng = np.random.default_rng(0)
    ops: list[Op] = [
        Dense(name="fc", inputs=("x",), output="h", weight=_w(rng, 6, 4)),
        IF(name="n", inputs=("h",), output="s", threshold=np.float32(0.5)),
        Reshape(name="r", inputs=("s",), output="r", shape=(2, 3)),
        Softmax(name="sm", inputs=("r",), output="y", axis=0, coerce_2d=True),
        Softmax(name="sm2", inputs=("y",), output="z", axis=1),
    ]
    graph = Graph("softmax", {"x": TensorType((4,))}, ["z"], ops)
    x = _inputs(graph, Encoding(), 0)
    expected = simulate(graph, x, 8)
    got = simulate_torch(graph, x, 8, arrays=TorchArrays("cpu"))
    np.testing.assert_allclose(got.outputs["z"], expected.outputs["z"], rtol=1e-6, atol=1e-7)
    assert np.array_equal(got.spikes["n"], expected.spikes["n"])


def test_silu_agrees_up_to_rounding() -> None:
    rng = np.random.default_rng(0)
    ops: list[Op] = [
        Dense(name="fc", inputs=("x",), output="h", weight=_w(rng, 6, 4)),
        SiLU(name="silu", inputs=("h",), output="y"),
    ]
    graph = Graph("silu", {"x": TensorType((4,))}, ["y"], ops)
    x = {"x": (np.random.default_rng(1).normal(size=(64, 4)) * 8).astype(np.float32)}
    expected = simulate(graph, x, 2)
    got = simulate_torch(graph, x, 2, arrays=TorchArrays("cpu"))
    np.testing.assert_allclose(got.outputs["y"], expected.outputs["y"], rtol=1e-6, atol=1e-7)


def test_an_op_without_a_torch_form_is_refused_naming_it() -> None:
    class Odd(Op, abstract=True):  # (not registered: other tests list the op types)
        def infer(self, in_types):
            return in_types[0]

        def forward(self, xs):
            return xs[0]

    graph = Graph("odd", {"x": TensorType((3,))}, ["y"], [Odd(name="odd", inputs=("x",), output="y")])
    with pytest.raises(DataError, match=r"Odd 'odd'.*--emulator numpy"):
        simulate_torch(graph, {"x": np.zeros((1, 3), np.float32)}, 2, arrays=TorchArrays("cpu"))


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """The bundled MNIST CNN compiled for the reference target (calibrated), and 300 test images."""
    calibration = load_calibration(str(BUNDLED_MODEL.parent / "calibration.npz"), 256)
    artifact = compile_model(
        BUNDLED_MODEL, "reference", tmp_path_factory.mktemp("mnist") / "a", calibration=calibration
    )
    x, y = load_array_file(TEST_IMAGES)
    return artifact, x[:300], y[:300]


def test_the_mnist_example_predicts_the_same_on_both_engines(mnist) -> None:
    artifact, x, y = mnist
    expected = emulate_artifact(artifact, x, steps=16, checkpoints=(4, 8), neuron_counts=True)
    got = emulate_artifact(artifact, x, steps=16, checkpoints=(4, 8), neuron_counts=True, engine="torch", device="cpu")
    assert (got.predictions == expected.predictions).mean() >= 0.995
    np.testing.assert_allclose(got.outputs, expected.outputs, rtol=1e-4, atol=1e-4)
    assert (expected.predictions == y).mean() > 0.9
    for name, spikes in expected.spikes.items():
        np.testing.assert_allclose(got.spikes[name], spikes, rtol=1e-3)


def test_an_engine_the_target_lacks_is_refused_naming_both() -> None:
    chip = get_backend("dummy")
    with pytest.raises(DataError, match=r"target 'dummy' has no 'torch' emulator engine; it has numpy"):
        check_engine(chip.target, chip.engines, "torch")
    reference = get_backend("reference")
    with pytest.raises(DataError, match=r"'jax'.*numpy, torch"):
        check_engine(reference.target, reference.engines, "jax")


def test_a_device_torch_cannot_use_is_refused(mnist) -> None:
    artifact, x, _ = mnist
    for device, message in [("nonsense", "not a torch device"), ("meta", "holds no data")]:
        with pytest.raises(DataError, match=message):
            emulate_artifact(artifact, x[:2], steps=2, engine="torch", device=device)
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="no CUDA device"):
            emulate_artifact(artifact, x[:2], steps=2, engine="torch", device="cuda")
    with pytest.raises(DataError, match="for the torch emulator engine"):
        emulate_artifact(artifact, x[:2], steps=2, device="cpu")


def test_torch_missing_says_to_install_the_extra(mnist, monkeypatch) -> None:
    artifact, x, _ = mnist
    real = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(DataError, match=r"pip install neurodeploy\[torch\]"):
        emulate_artifact(artifact, x[:2], steps=2, engine="torch")


def test_evaluate_with_the_torch_emulator_on_the_command_line(capsys, tmp_path) -> None:
    reports = {}
    for engine in ("numpy", "torch"):
        out = tmp_path / f"{engine}.json"
        args = ["evaluate", BUNDLED_MODEL, "--data", "mnist", "--limit", "50", "--steps", "8", "-q", "--json", out]
        result = run_cli(capsys, *args, "--emulator", engine, "--workers", "1")
        assert result.code == 0, result.err
        reports[engine] = json.loads(out.read_text())
    assert reports["torch"]["snn_accuracy"] == reports["numpy"]["snn_accuracy"]
    assert reports["torch"]["emulator"] == {"engine": "torch", "device": "cuda" if torch.cuda.is_available() else "cpu"}
    assert reports["numpy"]["emulator"] == {"engine": "numpy", "device": None}


def test_the_command_line_refuses_an_engine_the_target_lacks(capsys) -> None:
    args = ["evaluate", BUNDLED_MODEL, "--data", "mnist", "--limit", "8", "--steps", "4", "-t", "dummy"]
    result = run_cli(capsys, *args, "--emulator", "torch")
    assert result.code == 1
    assert "has no 'torch' emulator engine" in result.err


@CUDA
def test_the_torch_engine_runs_on_cuda_and_equals_numpy() -> None:
    graph = rate_net(0)
    x = _inputs(graph, Encoding(), 0)
    args = (graph, x, 16, (4, 16), Encoding(), fan_out_maps(graph))
    _assert_identical(simulate(*args), simulate_torch(*args, arrays=TorchArrays("cuda")))
