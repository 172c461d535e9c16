"""Parallel branches (Inception-style): several populations read one, so a population's main synapse may come from
an earlier population than the one before it (``Layer.source``); the branches meet at a channel Concat, the
shallower one delayed (a DelaySparse of its conv taps) when their depths differ."""

from pathlib import Path

import numpy as np
import pytest
from loihi_graphs import emit_graph, inception_block
from neurodeploy_loihi import board
from neurodeploy_loihi.emulator import ConvSynapse, SparseSynapse
from neurodeploy_loihi.graded import GradedError, GradedProgram
from neurodeploy_loihi.lowering import lower
from neurodeploy_loihi.program import Program
from neurodeploy_loihi.sdnn import quantize_sdnn

from neurodeploy.simulate import simulate


def _x(n: int = 32) -> np.ndarray:
    return np.random.default_rng(5).random((n, 1, 6, 6)).astype(np.float32)


@pytest.mark.parametrize("deep", [False, True])
def test_a_parallel_branch_reads_an_earlier_population(deep: bool) -> None:
    lowered = lower(inception_block(deep=deep))
    by_name = {p.name: p for p in lowered.populations}
    assert by_name["b2"].source == 0  # b2 reads a, not b1 (the population before it)
    assert by_name["b1"].source is None
    d = by_name["d"]
    (skip,) = d.skips  # the Concat's other input: b1, delayed where b3 makes the main path one synapse longer
    assert (skip.source, skip.delay) == (1, 1 if deep else 0)
    assert d.depth == (3 if deep else 2)


@pytest.mark.parametrize("deep", [False, True])
def test_emulated_inception_block_matches_the_float_snn(deep: bool, tmp_path: Path) -> None:
    """Measured on these 32 inputs over 32 steps: 89-98% of each branch's and the joined population's neurons
    fire as often as in the float SNN (at most 3 spikes apart), outputs within 3.4% of their range, argmax
    agreement 97-100%."""
    graph = inception_block(deep=deep)
    x = _x()
    emit_graph(graph, tmp_path, x)
    program = Program.load(tmp_path)  # the main synapse's source is in loihi.json
    b2 = program.names.index("b2")
    assert program.network.layers[b2].source == 0
    ours = program.run(x, 32, counts=True)
    reference = simulate(graph, {"x": x}, 32)
    for name in ["b1", "b2", "d"] + (["b3"] if deep else []):
        ref = reference.counts[name]
        assert ref.mean() > 3, name  # active, so the comparison means something
        assert np.mean(ours.counts[name] == ref) >= 0.85, name
        assert np.abs(ours.counts[name] - ref).max() <= 3, name
    want = reference.outputs["y"]
    assert np.abs(ours.outputs - want).max() <= 0.05 * np.abs(want).max()
    assert np.mean(ours.outputs.argmax(1) == want.argmax(1)) >= 0.9


def test_the_branches_are_stock_processes_and_graded_mode_maps_them(tmp_path: Path) -> None:
    emitted = emit_graph(inception_block(deep=True, reset="zero"), tmp_path, _x(8))
    program = Program.load(tmp_path)
    d = program.network.layers[program.names.index("d")]
    assert isinstance(d.synapse, ConvSynapse)
    assert [type(s.synapse) for s in d.skips] == [SparseSynapse]
    assert board.readiness(board.binary_processes(program))["board_ready"] is True
    assert emitted.manifest["graded"]["available"] is True  # GradedReLU: the exact profile
    graded = GradedProgram.load(tmp_path)
    x = _x(8)
    np.testing.assert_array_equal(graded.run(x, 1).outputs, graded.reference(x))
    assert emitted.manifest["netx"] is False
    with pytest.raises(GradedError, match=r"the SDNN graded program maps chains only: 'b2' reads 'a'"):
        quantize_sdnn(lower(inception_block(deep=True)), None)
