"""Inception-style blocks (``loihi_graphs.inception_block``: two branches read one population and meet at a
Concat, the shallower one a DelaySparse of its conv taps where their depths differ) run in Lava's bit-accurate
models and in the emulator: the same spikes, u and v in every population at every Loihi step."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared graphs of backends/loihi/tests
from lava_checks import assert_program_equals_lava, require_lava
from loihi_graphs import emit_graph, inception_block
from neurodeploy_loihi.program import Program

require_lava()


@pytest.mark.parametrize(("deep", "reset"), [(False, "subtract"), (True, "zero")])
def test_inception_equals_lava_fixed_pt_spike_for_spike_and_state_for_state(
    deep: bool, reset: str, tmp_path: Path
) -> None:
    x = np.random.default_rng(7).random((3, 1, 6, 6)).astype(np.float32)
    emit_graph(inception_block(seed=1, deep=deep, reset=reset), tmp_path, x)
    program = Program.load(tmp_path)
    assert program.network.layers[program.names.index("b2")].source == 0
    assert_program_equals_lava(program, x, 10, f"inception deep={deep}")
