"""A pooling that is no block of the convolution after it (ResNet's 3x3 / 2 stem pool, padded, overlapping; a 2x2 /
2 pool on an odd map, which drops the last row), on the chip targets: spinnaker lists the composed synapses one by
one, loihi runs the composed Conv plus a Sparse of the border corrections (neurodeploy.lowering). Each counts the
reference target's spikes (the lowering's exactness: tests/test_lowering_rules.py; Lava's bit-accurate models:
backends/loihi/tests/lava/test_pooled_conv_against_lava.py)."""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.backends.base import CompiledModel
from neurodeploy.backends.registry import get_backend
from neurodeploy.ir import IF, AvgPool2d, Conv2d, Dense, Graph, Reshape, TensorType
from neurodeploy.simulate import simulate

F = np.float32
POOLS = {
    "stem": {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1, 1, 1)},  # 9x9 -> 5x5, the border windows padded
    "odd": {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0, 0, 0)},  # 9x9 -> 4x4, the last row dropped
}


def pooled_net(pool: str) -> Graph:
    """conv -> IF (4, 9, 9) -> AvgPool -> conv 3x3 (padding 1) -> IF -> flatten -> dense; no biases, v from 0."""
    rng = np.random.default_rng(0)
    common = {"threshold": F(1.0), "reset": "zero", "initial": F(0.0)}
    side = 5 if pool == "stem" else 4
    n = 3 * side * side
    ops = [
        Conv2d(name="c1", inputs=("x",), output="h1", weight=rng.uniform(-0.1, 0.5, (4, 2, 3, 3)).astype(F),
               padding=(1,) * 4),
        IF(name="n1", inputs=("h1",), output="s1", **common),
        AvgPool2d(name="pool", inputs=("s1",), output="p", **POOLS[pool]),
        Conv2d(name="c2", inputs=("p",), output="h2", weight=rng.uniform(-0.2, 0.6, (3, 4, 3, 3)).astype(F),
               padding=(1,) * 4),
        IF(name="n2", inputs=("h2",), output="s2", **common),
        Reshape(name="flat", inputs=("s2",), output="f", shape=(n,)),
        Dense(name="fc", inputs=("f",), output="out", weight=rng.normal(0, 0.3, (5, n)).astype(F)),
    ]  # fmt: skip
    graph = Graph(name=f"pooled_{pool}", inputs={"x": TensorType((2, 9, 9))}, outputs=["out"], ops=ops)
    graph.verify()
    return graph


def inputs() -> np.ndarray:
    return (np.random.default_rng(1).random((4, 2, 9, 9)) * 0.4).astype(F)


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_spinnaker_lists_the_pooled_convolution_and_counts_what_the_reference_counts(pool: str, tmp_path) -> None:
    pytest.importorskip("neurodeploy_pynn")
    from neurodeploy_pynn import spinnaker

    x = inputs()
    backend = get_backend("spinnaker")
    backend.emit(backend.plan(CompiledModel(snn=pooled_net(pool))), tmp_path)
    netlist = spinnaker.load(tmp_path)
    chip = spinnaker.run(netlist, x, 24, counts=True)
    reference = simulate(pooled_net(pool), {"x": x}, 24)
    assert reference.counts["n2"].sum() > 0
    first = np.asarray(chip["counts"]["n1"])  # the host-driven first layer: a few neurons saturate its current clip
    assert np.mean(first != reference.counts["n1"]) < 0.01
    # the pooled synapses' layer (s16.15 weights): measured equal neuron for neuron but 1 of 300 (an input of the
    # first layer's few)
    second = np.asarray(chip["counts"]["n2"], np.int64)
    assert np.abs(second - reference.counts["n2"]).max() <= 1
    assert np.mean(second != reference.counts["n2"]) < 0.01


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_loihi_runs_the_composed_conv_and_its_corrections_and_counts_what_the_reference_counts(
    pool: str, tmp_path
) -> None:
    pytest.importorskip("neurodeploy_loihi")
    from neurodeploy_loihi import Loihi2Backend
    from neurodeploy_loihi.emulator import ConvSynapse, SparseSynapse
    from neurodeploy_loihi.program import Program

    backend = Loihi2Backend()
    backend.emit(backend.plan(CompiledModel(snn=pooled_net(pool))), tmp_path)
    program = Program.load(tmp_path)
    layer = program.network.layers[1]
    assert isinstance(layer.synapse, ConvSynapse)
    assert [type(s.synapse) for s in layer.skips] == [SparseSynapse]
    x = inputs()
    ours = program.run(x, 24, counts=True)
    reference = simulate(pooled_net(pool), {"x": x}, 24)
    for name in ("n1", "n2"):  # 8-bit weights: the totals within 3%
        total = int(reference.counts[name].sum())
        assert total > 0
        assert abs(int(ours.counts[name].sum()) - total) <= 0.03 * total, name
