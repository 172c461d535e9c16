"""Event input on Loihi 2 (``--encoding events``): each step's frame goes to the chip as graded spikes whose payload
is the pixel's event count, through the first population's own synapse (Lava ``Dense`` / ``Conv`` with
``num_message_bits = 8`` fed by a ``RingBuffer``). Run in Lava's bit-accurate process models and in the emulator:
the same spikes, u and v in every population at every Loihi step, and the same readout."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared graphs of backends/loihi/tests
from lava_checks import assert_program_equals_lava, require_lava
from loihi_graphs import emit_graph
from neurodeploy_loihi.program import Program
from test_leaky_against_lava import leaky_net

from neurodeploy.ir import IF, Conv2d, Dense, Graph, Reshape, TensorType

require_lava()

REPO = Path(__file__).resolve().parents[4]


def if_net() -> Graph:
    """Conv (with a bias) -> IF -> flatten -> Dense -> IF -> Dense readout: converted-style IF neurons."""
    rng = np.random.default_rng(11)
    f = np.float32
    graph = Graph(name="events_if", inputs={"x": TensorType((2, 6, 6))}, outputs=["out"])
    graph.ops = [
        Conv2d(
            name="c1",
            inputs=("x",),
            output="h1",
            weight=rng.uniform(-0.2, 0.5, (3, 2, 3, 3)).astype(f),
            bias=np.full(3, 0.02, f),
            stride=(2, 2),
            padding=(1,) * 4,
        ),
        IF(name="n1", inputs=("h1",), output="s1", threshold=f(1.0), reset="subtract", initial=f(0.0)),
        Reshape(name="f1", inputs=("s1",), output="f1", shape=(27,)),
        Dense(name="d2", inputs=("f1",), output="h2", weight=rng.uniform(-0.3, 0.8, (8, 27)).astype(f)),
        IF(name="n2", inputs=("h2",), output="s2", threshold=f(1.0), reset="zero", initial=f(0.0)),
        Dense(name="d3", inputs=("s2",), output="out", weight=rng.normal(0, 0.5, (4, 8)).astype(f)),
    ]
    return graph


def counts(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Sparse event counts 0..3 per pixel and frame, most of them 0 (as binned DVS events)."""
    rng = np.random.default_rng(seed)
    return (rng.poisson(0.4, shape) * (rng.random(shape) < 0.6)).clip(0, 3).astype(np.float32)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_event_frames_on_leaky_layers_equal_lava_fixed_pt_spike_for_spike(reset: str, tmp_path: Path) -> None:
    x = counts((3, 12, 1, 8, 8), 1)
    assert x.max() > 1  # counts above one: graded payloads, not binary spikes
    emit_graph(leaky_net(reset, True), tmp_path, None, encoding="events")
    program = Program.load(tmp_path)
    assert program.network.input_bits == 8
    assert program.network.layers[0].synapse is not None
    assert_program_equals_lava(program, x, 16, f"events leaky reset={reset}")


def test_event_frames_on_if_layers_with_a_membrane_readout_equal_lava_fixed_pt(tmp_path: Path) -> None:
    emit_graph(if_net(), tmp_path, None, encoding="events")
    program = Program.load(tmp_path)
    assert program.delay == 3  # the input's synapse, then one per population
    assert_program_equals_lava(program, counts((4, 10, 2, 6, 6), 2), 12, "events IF")


def test_the_nmnist_snntorch_example_on_recordings_equals_lava_fixed_pt(tmp_path: Path) -> None:
    """The shipped N-MNIST network (snnTorch, three LIF layers, β = 0.9) on the first 3 test recordings."""
    from neurodeploy.compiler import compile_model
    from neurodeploy.data import load_dataset
    from neurodeploy.encoding import Encoding

    out = tmp_path / "nm"
    compile_model(
        REPO / "examples/nmnist_snntorch/nmnist_snn.nir",
        "loihi",
        out,
        encoding=Encoding("events"),
        import_options={"writer": "snntorch", "reset": "zero"},
    )
    x = load_dataset("nmnist", "test", bin_us=10000).x[:3, :12]
    assert_program_equals_lava(Program.load(out), x, 12, "nmnist events")
