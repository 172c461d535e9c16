"""Event input on the loihi target (``--encoding events``): the frames go to the chip as graded spikes (payload =
the pixel's event count) through the first population's own synapse. The integer arithmetic is checked against
hand-derived traces here and against Lava's bit-accurate models in ``lava/test_events_against_lava.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import emit_graph
from neurodeploy_loihi.backend import Loihi2Backend
from neurodeploy_loihi.emulator import DenseSynapse, Layer, Network, Neuron
from neurodeploy_loihi.program import Program

from neurodeploy.encoding import Encoding
from neurodeploy.errors import ArtifactError, DataError
from neurodeploy.ir import IF, Dense, Graph, TensorType

F = np.float32


def test_graded_input_spikes_multiply_the_weights_one_step_late_hand_derived_trace() -> None:
    # IF neuron (du = 4095: u is the step's message << 6; dv = 0), weights (6, -4), frames (3, 2) then (0, 1):
    # step 1 gets nothing (the synapse sends at t + 1); step 2: 3*6 + 2*(-4) = 10 -> u = 640, v = 640;
    # step 3: 1*(-4) -> u = -256, v = 384; step 4: no frame -> u = 0, v = 384
    synapse = DenseSynapse(np.array([[6, -4]]))
    network = Network([Layer(synapse, Neuron(du=4095, dv=0, vth=1000))], input_bits=8)
    assert network.depths == [1]
    trace = network.run(np.array([[[3, 2], [0, 1]]]), steps=4)
    assert trace.u[0][0, :, 0].tolist() == [0, 640, -256, 0]
    assert trace.v[0][0, :, 0].tolist() == [0, 640, 384, 384]


def test_graded_input_payloads_are_checked() -> None:
    layer = Layer(DenseSynapse(np.array([[6, -4]])), Neuron(du=4095, dv=0, vth=1000))
    with pytest.raises(ValueError, match=r"whole numbers 0\.\.255"):
        Network([layer], input_bits=8).run(np.array([[[256, 0]]]), steps=1)
    with pytest.raises(ValueError, match="binary"):
        Network([layer]).run(np.array([[[2, 0]]]), steps=1)
    with pytest.raises(ValueError, match="input_bits"):
        Network([layer], input_bits=25)


def dense_first() -> Graph:
    """x (12 event counts) -> Dense (every weight nonzero) -> IF -> Dense readout."""
    rng = np.random.default_rng(4)
    graph = Graph(name="ev", inputs={"x": TensorType((12,))}, outputs=["out"])
    graph.ops = [
        Dense(name="d1", inputs=("x",), output="h1", weight=rng.uniform(0.1, 0.6, (5, 12)).astype(F)),
        IF(name="n1", inputs=("h1",), output="s1", threshold=F(1.0), reset="zero", initial=F(0.0)),
        Dense(name="d2", inputs=("s1",), output="out", weight=rng.normal(0, 1, (3, 5)).astype(F)),
    ]
    return graph


@pytest.fixture
def program(tmp_path: Path) -> Program:
    emit_graph(dense_first(), tmp_path, None, encoding="events")
    return Program.load(tmp_path)


def frames(seed: int = 0, shape: tuple[int, ...] = (4, 6, 12)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.poisson(0.5, shape) * (rng.random(shape) < 0.5)).astype(F)


def test_an_event_program_runs_its_frames_through_the_first_synapse(program: Program) -> None:
    assert program.network.input_bits == 8
    assert program.delay == 2
    assert program.roles[0] == "hidden"
    assert program.network.layers[0].synapse is not None
    x = frames()
    run = program.run(x, 6, checkpoints=(3,), counts=True)
    trace = program.network.run(program.input_frames(x), steps=6 + program.delay)
    # population 0 computes graph step t at Loihi step t + 1: its spikes of steps 2 .. 7
    np.testing.assert_array_equal(run.counts["n1"], trace.spikes[0][:, 1:7].sum(axis=1))
    # SynOps of the input: every nonzero count is one graded spike to each of its 5 synapses
    assert run.synops["x"].tolist() == (np.count_nonzero(x.reshape(4, -1), axis=1) * 5).tolist()
    assert run.checkpoint_synops[3]["x"].tolist() == (np.count_nonzero(x[:, :3].reshape(4, -1), axis=1) * 5).tolist()
    assert np.ptp(run.outputs) > 0


def test_event_counts_beyond_the_payload_or_not_whole_are_refused(program: Program) -> None:
    x = frames()
    x[0, 0, 0] = 300
    with pytest.raises(DataError, match=r"300 events at one pixel; .* at most 255 \(8-bit payloads\)"):
        program.run(x, 6)
    x[0, 0, 0] = 0.5
    with pytest.raises(DataError, match="whole event counts"):
        program.run(x, 6)


def test_an_event_artifact_takes_events_only_and_no_more_steps_than_frames(program: Program) -> None:
    backend = Loihi2Backend()
    with pytest.raises(DataError, match="compiled for event input"):
        backend.prepare(program, frames()[:, 0], steps=4, encoding=Encoding("direct"))
    with pytest.raises(DataError, match="6 frame"):
        backend.prepare(program, frames(), steps=8, encoding=Encoding("events"))
    assert backend.prepare(program, frames(), steps=8, encoding=Encoding("events", pad=True)).shape == (4, 6, 12)


def test_the_report_says_no_netx_and_no_graded_program_for_event_input(tmp_path: Path) -> None:
    emitted = emit_graph(dense_first(), tmp_path, None, encoding="events")
    assert emitted.report is not None
    assert not emitted.report["netx"]["written"]
    assert emitted.report["graded"]["available"] is False
    assert "event frames" in emitted.report["graded"]["reason"]


def test_a_tampered_event_program_is_refused(program: Program, tmp_path: Path) -> None:
    doc = json.loads((tmp_path / "loihi.json").read_text())
    del doc["input"]["spikes"]
    (tmp_path / "loihi.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="population 0 has a synapse exactly when the input is spikes"):
        Program.load(tmp_path)
