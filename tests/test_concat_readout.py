"""An Inception block's end on the chip targets: the readout reads a channel Concat of parallel branches (three
populations reading one stem) through a pooling, a flatten and a Dense. The readout population gets one synapse per
branch (its columns of the Dense), and each target's output follows the reference target's (Lava's bit-accurate
models: backends/loihi/tests/lava/test_concat_against_lava.py)."""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.backends.base import CompiledModel
from neurodeploy.ir import IF, AvgPool2d, Concat, Conv2d, Dense, Graph, Reshape, TensorType
from neurodeploy.simulate import simulate

F = np.float32


def inception() -> Graph:
    """stem conv -> IF (4, 8, 8); branches: 1x1 conv -> IF a, 3x3 conv -> IF b, 3x3/1 pool + 1x1 conv -> IF c;
    Concat(a, b, c) -> AvgPool 4 -> flatten -> dense (3). No biases, v from 0."""
    rng = np.random.default_rng(0)
    common = {"threshold": F(1.0), "reset": "zero", "initial": F(0.0)}

    def conv(name: str, x: str, c_out: int, c_in: int, k: int) -> Conv2d:
        weight = rng.uniform(-0.1, 0.5, (c_out, c_in, k, k)).astype(F)
        return Conv2d(name=name, inputs=(x,), output=f"h_{name}", weight=weight, padding=(k // 2,) * 4)

    ops = [
        conv("stem", "x", 4, 2, 3),
        IF(name="n0", inputs=("h_stem",), output="s0", **common),
        conv("a", "s0", 2, 4, 1),
        IF(name="na", inputs=("h_a",), output="sa", **common),
        conv("b", "s0", 2, 4, 3),
        IF(name="nb", inputs=("h_b",), output="sb", **common),
        AvgPool2d(name="pool", inputs=("s0",), output="p", kernel=(3, 3), stride=(1, 1), padding=(1,) * 4,
                  count_include_pad=True),
        conv("c", "p", 2, 4, 1),
        IF(name="nc", inputs=("h_c",), output="sc", **common),
        Concat(name="cat", inputs=("sa", "sb", "sc"), output="cat_out", axis=0),
        AvgPool2d(name="head_pool", inputs=("cat_out",), output="hp", kernel=(4, 4), stride=(4, 4)),
        Reshape(name="flat", inputs=("hp",), output="f", shape=(24,)),
        Dense(name="fc", inputs=("f",), output="out", weight=rng.normal(0, 0.5, (3, 24)).astype(F)),
    ]  # fmt: skip
    graph = Graph(name="inception", inputs={"x": TensorType((2, 8, 8))}, outputs=["out"], ops=ops)
    graph.verify()
    return graph


def inputs() -> np.ndarray:
    return (np.random.default_rng(1).random((6, 2, 8, 8)) * 0.4).astype(F)


def test_spinnaker_reads_every_branch_into_the_readout() -> None:
    pytest.importorskip("neurodeploy_pynn")
    from neurodeploy_pynn import spinnaker

    netlist = spinnaker.plan(inception())
    readout = netlist.populations[-1]
    assert readout.role == "readout"
    last = len(netlist.populations) - 1
    sources = {netlist.populations[q.pre].name for q in netlist.projections if q.post == last}
    assert sources == {"na", "nb", "nc"}
    x = inputs()
    chip = spinnaker.run(netlist, x, 32, counts=True)
    reference = simulate(inception(), {"x": x}, 32)
    for name in ("na", "nb", "nc"):
        assert reference.counts[name].sum() > 0
        assert np.mean(np.asarray(chip["counts"][name]) != reference.counts[name]) < 0.02, name
    want = reference.outputs["out"]
    assert np.abs(np.asarray(chip["outputs"]) - want).max() <= 0.03 * np.abs(want).max()


def test_loihi_reads_every_branch_into_the_readout(tmp_path) -> None:
    pytest.importorskip("neurodeploy_loihi")
    from neurodeploy_loihi import Loihi2Backend
    from neurodeploy_loihi.program import Program

    backend = Loihi2Backend()
    backend.emit(backend.plan(CompiledModel(snn=inception())), tmp_path)
    program = Program.load(tmp_path)
    assert len(program.network.layers[-1].skips) == 2
    x = inputs()
    ours = program.run(x, 32).outputs
    want = simulate(inception(), {"x": x}, 32).outputs["out"]
    assert np.abs(ours - want).max() <= 0.05 * np.abs(want).max()
    assert np.array_equal(ours.argmax(axis=1), want.argmax(axis=1))
