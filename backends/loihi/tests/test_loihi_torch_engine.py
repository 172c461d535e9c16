"""The torch engine (:mod:`neurodeploy_loihi.torch_engine`) against ``Program.run`` (the fused numba run, or the
step-by-step numpy path without numba), every field of the result equal value for value: on the random networks
of the cross-check tests (chains with pooled convolutions, residual blocks with delayed identity, Scale and
convolution shortcuts, Concats, parallel branches; trimmed and not, several checkpoints, counts, a readout
delay), on hand-made networks with leaky neurons, initial potentials, a delayed bias, delayed dense skips, a
convolution whose sums leave int16 and a delayed synapse list, on event input, on the bundled MNIST CNN (64 test
images) and on a random-weight ResNet-20; split into passes or not; on CUDA when one is present. Without torch the
module skips, unless NEURODEPLOY_REQUIRE_TORCH=1 demands it."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import emit_graph, resnet20
from loihi_mnist import compiled, mnist_test_images
from neurodeploy_loihi.emulator import ConvSynapse, DenseSynapse, Layer, Network, Neuron, Skip
from neurodeploy_loihi.graded import GradedProgram, GradedRun
from neurodeploy_loihi.program import Program, RunResult
from neurodeploy_loihi.sdnn import SdnnProgram
from test_fused import _equal, assert_same_result
from test_loihi_events import dense_first, frames
from test_windows import GRAPHS

from neurodeploy.errors import NeurodeployError

if os.environ.get("NEURODEPLOY_REQUIRE_TORCH") == "1":
    import torch  # must be installed here: fail, not skip
else:
    torch = pytest.importorskip(
        "torch", reason="torch is not installed (set NEURODEPLOY_REQUIRE_TORCH=1 to fail instead)"
    )

from neurodeploy_loihi import torch_engine

pytestmark = pytest.mark.torch


def _compare(program: Program, x: np.ndarray, steps: int, device: str = "cpu", **options) -> RunResult:
    batch_size = options.pop("batch_size", None)
    reference = program.run(x, steps, **options)
    engine = torch_engine.run(program, x, steps, device=device, batch_size=batch_size, **options)
    assert_same_result(engine, reference)
    return reference


@pytest.mark.parametrize("name", GRAPHS)
@pytest.mark.parametrize("trim", [True, False])
def test_every_cross_check_graph_gives_the_same_result(name: str, trim: bool, tmp_path: Path) -> None:
    graph = GRAPHS[name]()
    x = np.random.default_rng(5).random((5, *graph.inputs["x"].shape)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)
    for steps, counts, delay in ((1, True, 0), (6, True, 2), (6, False, 0), (9, True, 3)):
        options = {"checkpoints": (1, 2, 4, steps), "counts": counts, "trim": trim, "readout_delay": delay}
        result = _compare(program, x, steps, **options)
    assert sum(int(s.sum()) for s in result.spikes.values()) > 0
    _compare(program, x, 6, batch_size=2, checkpoints=(3,), counts=True)  # three passes


def _hand_made(tmp_path: Path) -> Program:
    """An input population of 3 x 3 x 6 driving a convolution into leaky subtractive neurons (per-neuron v0, a
    delayed bias) with a dense skip delayed 2 steps; a dense layer of leaky LIF neurons (v0, bias, weight_exp -1)
    with a skip from the input delayed 1 step; a readout of 3 with a delayed skip from the convolution."""
    rng = np.random.default_rng(11)
    graph = GRAPHS["chain"]()
    emit_graph(graph, tmp_path, rng.random((1, *graph.inputs["x"].shape)).astype(np.float32))
    program = Program.load(tmp_path)
    shape = (3, 3, 6)
    hidden = Neuron(du=300, dv=200, vth=40, kind="subtractive", bias_mant=rng.integers(-50, 100, (3, 3, 4)), bias_exp=3)
    hidden = dataclasses.replace(hidden, v0=rng.integers(-3000, 3000, (3, 3, 4)), bias_start=3)
    skip = Skip(0, DenseSynapse(rng.integers(-100, 200, (36, 54)), weight_exp=1), delay=2)
    network = Network(
        [
            Layer(None, Neuron(du=4095, dv=0, vth=100, kind="subtractive"), population_shape=shape),
            Layer(ConvSynapse(rng.integers(-200, 256, (4, 3, 3, 6)), shape, padding=(1, 1)), hidden, skips=(skip,)),
            Layer(
                DenseSynapse(rng.integers(-120, 256, (5, 36)), weight_exp=-1),
                Neuron(du=1000, dv=50, vth=60, kind="lif", bias_mant=7, v0=500),
                skips=(Skip(0, DenseSynapse(rng.integers(-256, 256, (5, 54))), delay=1),),
            ),
            Layer(
                DenseSynapse(rng.integers(-256, 256, (3, 5))),
                Neuron(du=4095, dv=0, vth=10000, kind="lif"),
                skips=(Skip(1, DenseSynapse(rng.integers(-50, 50, (3, 36))), delay=1),),
            ),
        ]
    )
    return dataclasses.replace(
        program,
        network=network,
        names=["a", "b", "c", "out"],
        roles=["input", "hidden", "hidden", "readout"],
        shapes=[(6, 3, 3), (4, 3, 3), (5,), (3,)],
        scales=[1.0, 1.0, 1.0, 100.0],
        readout={"kind": "membrane", "output": "y", "population": 3, "shape": [3]},
    )


def test_leaky_neurons_delays_and_skips_give_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = _hand_made(tmp_path)
    rng = np.random.default_rng(2)
    bias = (rng.integers(-4096, 4096, (7, 3, 3, 6)), rng.integers(0, 4, (7, 3, 3, 6)))
    x = np.zeros((7, *program.host.inputs["x"].shape), np.float32)
    x.reshape(7, -1)[:, 0] = np.arange(7)  # each sample names its bias: the host graph's currents, replaced
    monkeypatch.setattr(
        program, "input_bias", lambda x, checked=False: tuple(b[x.reshape(len(x), -1)[:, 0].astype(int)] for b in bias)
    )
    for trim in (True, False):
        result = _compare(program, x, 9, checkpoints=(1, 3, 9), counts=True, trim=trim, readout_delay=2)
    assert all(int(s.sum()) > 0 for s in result.spikes.values()), result.spikes
    assert result.stats["v_max"].max() > 0


def test_fused_suites_hand_made_networks_give_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """test_fused's networks: a convolution whose partial sums leave int16 and a delayed synapse list walked in
    runs (a projection with zero weights), and leaky neurons with delayed dense skips."""
    import test_fused

    program = test_fused._leaky(tmp_path)
    rng = np.random.default_rng(2)
    bias = (rng.integers(-4096, 4096, (7, 2, 3, 2)), rng.integers(0, 4, (7, 2, 3, 2)))
    x = np.zeros((7, *program.host.inputs["x"].shape), np.float32)
    x.reshape(7, -1)[:, 0] = np.arange(7)
    monkeypatch.setattr(
        program, "input_bias", lambda x, checked=False: tuple(b[x.reshape(len(x), -1)[:, 0].astype(int)] for b in bias)
    )
    _compare(program, x, 9, checkpoints=(1, 3, 9), counts=True)
    (tmp_path / "wide").mkdir()
    program, x = test_fused.wide(tmp_path / "wide", rng, monkeypatch)
    result = _compare(program, x, 9, checkpoints=(1, 4, 9), counts=True)
    assert all(int(s.sum()) > 0 for s in result.spikes.values()), result.spikes


def test_event_input_gives_the_same_result(tmp_path: Path) -> None:
    emit_graph(dense_first(), tmp_path, None, encoding="events")
    program = Program.load(tmp_path)
    result = _compare(program, frames(), 8, checkpoints=(2, 5), counts=True)
    assert sum(int(s.sum()) for s in result.spikes.values()) > 0


def test_the_bundled_model_gives_the_same_result() -> None:
    program = Program.load(compiled("subtract").root)
    x = mnist_test_images()[0][:64]
    result = _compare(program, x, 12, checkpoints=(1, 4, 8), counts=True, readout_delay=1)
    assert sum(int(s.sum()) for s in result.spikes.values()) > 1000
    _compare(program, x[:5], 7, batch_size=3)


@pytest.mark.slow
def test_a_random_resnet20_gives_the_same_result(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    emit_graph(resnet20(), tmp_path, rng.random((8, 3, 32, 32)).astype(np.float32))
    program = Program.load(tmp_path)
    x = rng.random((3, 3, 32, 32)).astype(np.float32)
    result = _compare(program, x, 4, checkpoints=(2,), counts=True)
    assert sum(int(s.sum()) for s in result.spikes.values()) > 0


def test_each_mode_s_program_goes_to_its_own_run() -> None:
    graded = object.__new__(GradedProgram)
    with pytest.raises(NeurodeployError, match="run_graded"):
        torch_engine.run(graded, np.zeros((1, 4), np.float32), 4)
    with pytest.raises(NeurodeployError, match="--emulator numpy"):
        torch_engine.run_graded(object.__new__(SdnnProgram), np.zeros((1, 4), np.float32), 4)
    with pytest.raises(NeurodeployError, match="graded-mode"):
        torch_engine.run_graded(object.__new__(Program), np.zeros((1, 4), np.float32), 4)


def _compare_graded(program: GradedProgram, x: np.ndarray, steps: int, **options) -> GradedRun:
    checkpoints = options.get("checkpoints", ())
    reference = program.run(x, steps, checkpoints=checkpoints)
    engine = torch_engine.run_graded(program, x, steps, device="cpu", **options)
    for field in dataclasses.fields(GradedRun):
        _equal(getattr(engine, field.name), getattr(reference, field.name), field.name)
    return reference


@pytest.mark.parametrize("name", GRAPHS)
def test_graded_programs_of_every_cross_check_graph_give_the_same_result(name: str, tmp_path: Path) -> None:
    """Graded mode (memoryless graded ReLU neurons, payloads through Dense, Conv and synapse lists, delayed and
    parallel branches summed at the InPort) on torch equals ``GradedProgram.run``: outputs, checkpoints, payloads
    sent, SynOps and v saturations, split into passes or not."""
    graph = GRAPHS[name]()
    x = np.random.default_rng(6).random((5, *graph.inputs["x"].shape)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    program = GradedProgram.load(tmp_path)
    for steps in (1, 4, 9):
        result = _compare_graded(program, x, steps, checkpoints=(1, 2, steps))
    assert sum(int(s.sum()) for s in result.spikes.values()) > 0
    _compare_graded(program, x, 5, checkpoints=(3,), batch_size=2)  # three passes


def test_the_bundled_model_in_graded_mode_gives_the_same_result() -> None:
    program = GradedProgram.load(compiled("subtract").root)
    x = mnist_test_images()[0][:32]
    result = _compare_graded(program, x, 6, checkpoints=(1, 3))
    assert (result.outputs.argmax(axis=1) == mnist_test_images()[1][:32]).mean() > 0.9


@pytest.mark.parametrize("model", ["relu", "silu"])
def test_few_spike_programs_give_the_same_result(tmp_path: Path, model: str) -> None:
    """Few-spike populations (window sums, time-varying thresholds, resets and payloads, the pipeline's fill) and
    the readout's mean over the steps after the fill, at whole and half windows: the staircase's digits of the
    bundled CNN, and the SiLU example's fitted codes (thresholds and payloads of either sign, gated windows)."""
    from loihi_mnist import CALIBRATION, MODEL, compiled_silu

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    if model == "silu":
        artifact = compiled_silu(4)
    else:
        calibration = load_calibration(str(CALIBRATION), 64)
        artifact = compile_model(
            MODEL, "loihi", tmp_path / "fs", calibration=calibration, conversion="coding=fs,fs-steps=4"
        )
    program = GradedProgram.load(artifact.root)
    assert program.fs is not None
    codes = [layer.neuron.fs for layer in program.network.layers if layer.neuron.fs is not None]
    assert any(code.signed for code in codes) == (model == "silu")
    x = mnist_test_images()[0][:8]
    result = _compare_graded(program, x, 8, checkpoints=(2, 4, 6))
    assert sum(int(s.sum()) for s in result.spikes.values()) > 0


def test_a_missing_cuda_device_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert torch_engine.resolve_device(None).type == "cpu"
    with pytest.raises(NeurodeployError, match="no CUDA device"):
        torch_engine.resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_same_result(tmp_path: Path) -> None:
    program = Program.load(compiled("subtract").root)
    x = mnist_test_images()[0][:64]
    _compare(program, x, 12, device="cuda", checkpoints=(1, 4, 8), counts=True, readout_delay=1)
    graph = GRAPHS["residual-identity"]()
    x = np.random.default_rng(5).random((5, *graph.inputs["x"].shape)).astype(np.float32)
    emit_graph(graph, tmp_path, x)
    _compare(Program.load(tmp_path), x, 9, device="cuda", checkpoints=(2, 5), counts=True, trim=False)


def test_the_backend_runs_the_torch_engine_in_both_modes_and_refuses_it_for_sdnn(tmp_path: Path) -> None:
    from neurodeploy.backends.registry import get_backend
    from neurodeploy.errors import DataError

    artifact = compiled("subtract")
    x = mnist_test_images()[0][:16]
    loihi = get_backend("loihi")
    assert "torch" in loihi.engines
    options = {"steps": 10, "checkpoints": (3, 10), "neuron_counts": True}
    numpy_run = loihi.emulate(artifact, x, **options)
    torch_run = loihi.emulate(artifact, x, **options, engine="torch", device="cpu")
    for field in ("outputs", "checkpoints", "spikes", "synops", "checkpoint_spikes", "checkpoint_synops", "counts"):
        _equal(getattr(torch_run, field), getattr(numpy_run, field), field)
    graded = {"steps": 4, "checkpoints": (2,), "mode": "graded"}  # the same artifact, run in its graded mode
    numpy_run = loihi.emulate(artifact, x, **graded)
    torch_run = loihi.emulate(artifact, x, **graded, engine="torch", device="cpu")
    for field in ("outputs", "checkpoints", "spikes", "synops", "checkpoint_spikes", "checkpoint_synops"):
        _equal(getattr(torch_run, field), getattr(numpy_run, field), field)
    from loihi_mnist import CALIBRATION, MODEL

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    board = compile_model(
        MODEL,
        "loihi",
        tmp_path / "board",
        calibration=load_calibration(str(CALIBRATION), 64),
        target_options={"profile": "board"},
    )
    with pytest.raises(DataError, match=r"SDNN.*--emulator numpy"):
        loihi.emulate(board, x[:2], steps=4, mode="graded", engine="torch", device="cpu")
