"""The ``network.net`` files the backend writes, loaded by lava-dl 0.6.0's own netx (``netx.hdf5.Network``) and
run in Lava's bit-accurate models (``Loihi2SimCfg(select_tag="fixed_pt")``): every layer's spikes, u and v at
every step equal the emulator's run of the same artifact.

netx builds the processes from the file alone (Input / Conv / Dense blocks of Lava ``LIF`` neurons, its own
kernel flip and transpose, its own ``optimize_weight_bits`` on Dense weights), so this checks the file's layout,
orientation conventions and integer values, not just our reading of them. The input layer is driven through its
neurons' bias, the per-sample current the host computes (netx's ``Input`` takes no other input)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared helpers of backends/loihi/tests
from lava_checks import require_lava, require_netx
from loihi_mnist import compiled, mnist_test_images
from neurodeploy_loihi.program import Program

require_lava()
require_netx()

from neurodeploy_loihi.lava_runner import run_net_in_netx  # noqa: E402

SAMPLES = 4
STEPS = 10


def assert_net_equals_emulator(program: Program, net: Path, x: np.ndarray, steps: int, label: str) -> None:
    bias = program.input_bias(x)
    total = steps + program.delay
    theirs = run_net_in_netx(net, bias, total)
    ours = program.network.run(steps=total, input_bias=bias)
    assert len(theirs.spikes) == len(program.network.layers), "netx built a different number of layers"
    for k, name in enumerate(program.names):
        assert ours.spikes[k].any() or program.roles[k] == "readout", f"{label}: {name} never fires: a weak check"
        for field in ("spikes", "u", "v"):
            a, b = getattr(ours, field)[k], getattr(theirs, field)[k]
            assert a.shape == b.shape, f"{label}: {name} {field} shape {a.shape} vs netx {b.shape}"
            if not np.array_equal(a.astype(np.int64), b.astype(np.int64)):
                where = tuple(int(i) for i in np.argwhere(a != b)[0])
                raise AssertionError(
                    f"{label}: {name} {field} differs from netx first at (sample, step, *neuron) {where}: "
                    f"emulator {a[where]}, netx {b[where]}"
                )


def test_bundled_mnist_net_in_lava_dl_netx_equals_emulator_spike_for_spike_and_state_for_state() -> None:
    artifact = compiled("netx")
    assert artifact.manifest["target"]["netx"] is True
    program = Program.load(artifact.root)
    x, _ = mnist_test_images()
    assert_net_equals_emulator(program, artifact.root / "network.net", x[:SAMPLES], STEPS, "mnist netx profile")


def _graph(case: str):
    from loihi_graphs import dense_net, small_cnn

    rng = np.random.default_rng(len(case))
    if case.startswith("cnn"):
        thresholds = "channel" if case.endswith("channel") else "scalar"
        return small_cnn(seed=len(case), reset="zero", initial=0.0, thresholds=thresholds)
    # one-signed layers: netx picks the EXCITATORY / INHIBITORY grid itself (optimize_weight_bits)
    w1 = np.abs(rng.normal(size=(12, 6))).astype(np.float32) * 0.6
    w2 = rng.normal(size=(5, 12)).astype(np.float32)
    w2 = -np.abs(w2) * 0.01 if case == "dense-inhibitory" else w2 * 0.5
    return dense_net(w1, w2, b2=np.full(5, 0.3, np.float32), reset="zero")


@pytest.mark.parametrize("case", ["cnn-scalar", "cnn-channel", "dense-mixed", "dense-inhibitory"])
def test_random_nets_in_lava_dl_netx_equal_emulator(case: str, tmp_path: Path) -> None:
    """Small networks built from IR ops (pooled convs, per-channel thresholds, excitatory, inhibitory and mixed
    dense weights), reset to zero with v(0) = 0, emitted as the compiler does; netx runs their .net."""
    from loihi_graphs import emit_graph

    graph = _graph(case)
    for op in graph.ops:  # netx's LIF starts at v = 0
        if op.is_stateful:
            op.initial = 0.0
    rng = np.random.default_rng(7)
    shape = graph.inputs["x"].shape
    x = rng.uniform(0, 1, size=(SAMPLES, *shape)).astype(np.float32)
    calibration = rng.uniform(0, 1, size=(16, *shape)).astype(np.float32)
    emitted = emit_graph(graph, tmp_path, calibration)
    assert "network.net" in emitted.files, emitted.report["netx"]
    program = Program.load(tmp_path)
    assert_net_equals_emulator(program, tmp_path / "network.net", x, STEPS, case)


def assert_sdnn_net_equals_emulator(program, net: Path, x: np.ndarray, steps: int, label: str) -> None:
    """The SDNN .net run by netx (SigmaDelta / Sigma neurons, the host's payloads into its inp at step 1) against
    the emulator: every chip population's payloads, sigma and act at every step (a Sigma's sigma twice)."""
    from neurodeploy_loihi.sdnn import MESSAGE_BITS, trace_layers

    m0 = program.input_payload(x)
    total = steps + program.delay
    theirs = run_net_in_netx(
        net, None, total, payloads=m0, input_message_bits=MESSAGE_BITS, spike_exp=program.spike_exp
    )
    ours = trace_layers(program.layers, m0, total, program.spike_exp)
    assert len(theirs.spikes) == len(program.layers), "netx built a different number of layers"
    for k, layer in enumerate(program.layers):
        name = program.names[k + 1]
        mine = {
            "spikes": ours.payloads[k],
            "u": ours.sigma[k],
            "v": ours.sigma[k] if layer.sigma_output else ours.act[k],
        }
        assert np.count_nonzero(ours.payloads[k]) > 0, f"{label}: {name} sends nothing: a weak check"
        for field, a in mine.items():
            b = getattr(theirs, field)[k]
            assert a.shape == b.shape, f"{label}: {name} {field} shape {a.shape} vs netx {b.shape}"
            if not np.array_equal(a, b.astype(np.int64)):
                where = tuple(int(i) for i in np.argwhere(a != b)[0])
                raise AssertionError(
                    f"{label}: {name} {field} differs from netx first at (sample, step, *neuron) {where}: "
                    f"emulator {a[where]}, netx {b[where]}"
                )


@pytest.fixture(scope="module")
def board_mnist(tmp_path_factory):
    from loihi_mnist import CALIBRATION, MODEL

    from neurodeploy.compiler import compile_model
    from neurodeploy.data.calibration import load_calibration

    out = tmp_path_factory.mktemp("board") / "out"
    return compile_model(
        MODEL, "loihi", out, calibration=load_calibration(str(CALIBRATION)), target_options={"profile": "board"}
    )


def test_bundled_mnist_sdnn_net_in_lava_dl_netx_equals_emulator_payload_for_payload(board_mnist) -> None:
    from neurodeploy_loihi.sdnn import SdnnProgram

    assert board_mnist.manifest["target"]["graded"]["kind"] == "sdnn"
    program = SdnnProgram.load(board_mnist.root)
    x, _ = mnist_test_images()
    assert_sdnn_net_equals_emulator(program, board_mnist.root / "sdnn.net", x[:SAMPLES], 4, "mnist sdnn")


@pytest.mark.parametrize("case", ["cnn-scalar", "cnn-channel", "dense-mixed"])
def test_random_sdnn_nets_in_lava_dl_netx_equal_emulator(case: str, tmp_path: Path) -> None:
    """The same small networks as above, quantized to the SDNN form (pooled convs, per-channel biases, dense
    weights netx re-grids) and written as SDNN .net files."""
    from neurodeploy_loihi.lowering import lower
    from neurodeploy_loihi.netx import write_sdnn_net
    from neurodeploy_loihi.sdnn import quantize_sdnn

    graph = _graph(case)
    rng = np.random.default_rng(11)
    shape = graph.inputs["x"].shape
    x = rng.uniform(0, 1, size=(SAMPLES, *shape)).astype(np.float32)
    program = quantize_sdnn(lower(graph), rng.uniform(0, 1, size=(16, *shape)).astype(np.float32))
    write_sdnn_net(program, tmp_path / "sdnn.net")
    assert_sdnn_net_equals_emulator(program, tmp_path / "sdnn.net", x, 4, case)
