"""A DenseNet block's join: a channel Concat of spike maps read by the next neurons through a BatchNorm (Scale and
Bias per channel, no convolution between). Each concatenated input reaches its own channels one to one (a weight
per neuron, not a composed Dense); the lowered synapses compute the graph's input to the neurons, and loihi and
spinnaker count the reference target's spikes."""

from __future__ import annotations

import numpy as np
import pytest

from neurodeploy.backends.base import CompiledModel
from neurodeploy.backends.registry import get_backend
from neurodeploy.ir import IF, Bias, Concat, Conv2d, Dense, Graph, Reshape, Scale, TensorType
from neurodeploy.lowering import Rules, SparseSpec, lower
from neurodeploy.simulate import simulate

F = np.float32


def dense_block() -> Graph:
    """conv -> IF a (3, 6, 6) -> conv -> IF b (2, 6, 6); Concat(a, b) -> Scale, Bias per channel -> IF c ->
    flatten -> dense (4). No conv biases, v from 0."""
    rng = np.random.default_rng(0)
    common = {"threshold": F(1.0), "reset": "zero", "initial": F(0.0)}
    ops = [
        Conv2d(name="c1", inputs=("x",), output="h1", weight=rng.uniform(-0.1, 0.5, (3, 1, 3, 3)).astype(F),
               padding=(1,) * 4),
        IF(name="na", inputs=("h1",), output="sa", **common),
        Conv2d(name="c2", inputs=("sa",), output="h2", weight=rng.uniform(-0.1, 0.5, (2, 3, 3, 3)).astype(F),
               padding=(1,) * 4),
        IF(name="nb", inputs=("h2",), output="sb", **common),
        Concat(name="cat", inputs=("sa", "sb"), output="cat_out", axis=0),
        Scale(name="bn_scale", inputs=("cat_out",), output="bs",
              value=rng.uniform(0.5, 1.5, (5, 1, 1)).astype(F)),
        Bias(name="bn_bias", inputs=("bs",), output="bb", value=rng.uniform(-0.05, 0.1, (5, 1, 1)).astype(F)),
        IF(name="nc", inputs=("bb",), output="sc", **common),
        Reshape(name="flat", inputs=("sc",), output="f", shape=(180,)),
        Dense(name="fc", inputs=("f",), output="out", weight=rng.normal(0, 0.3, (4, 180)).astype(F)),
    ]  # fmt: skip
    graph = Graph(name="dense_block", inputs={"x": TensorType((1, 6, 6))}, outputs=["out"], ops=ops)
    graph.verify()
    return graph


def inputs() -> np.ndarray:
    return (np.random.default_rng(1).random((6, 1, 6, 6)) * 0.5).astype(F)


@pytest.mark.parametrize("rules", [Rules("spinnaker", "SpiNNaker", delayed_conv=True), Rules("loihi", "Loihi")])
def test_each_concatenated_input_reaches_its_channels_one_to_one(rules) -> None:
    graph = dense_block()
    lowered = lower(graph, rules)
    c = next(p for p in lowered.populations if p.name == "nc")
    assert c.adds == ["cat"]
    specs = [c.synapse, *(s.synapse for s in c.skips)]
    assert all(isinstance(s, SparseSpec) for s in specs)
    assert [s.weight.size for s in specs] == [72, 108]  # nb's 2 x 36 neurons (the main synapse), na's 3 x 36
    spikes = {
        k: (np.random.default_rng(k).random((4, *shape)) < 0.5).astype(F)
        for k, shape in ((0, (3, 6, 6)), (1, (2, 6, 6)))
    }
    ops = {op.name: op for op in graph.ops}
    want = ops["bn_bias"].forward([ops["bn_scale"].forward([np.concatenate([spikes[0], spikes[1]], axis=1)])])
    got = np.zeros((4, 180))
    for spec, x in zip(specs, (spikes[1], spikes[0])):
        np.add.at(got.T, spec.rows, (x.reshape(4, -1)[:, spec.cols] * spec.weight).T)
    np.testing.assert_allclose(got + c.bias.reshape(1, -1), want.reshape(4, -1), rtol=1e-6, atol=1e-6)


def test_spinnaker_and_loihi_count_the_reference_spikes(tmp_path) -> None:
    pytest.importorskip("neurodeploy_pynn")
    pytest.importorskip("neurodeploy_loihi")
    from neurodeploy_loihi import Loihi2Backend
    from neurodeploy_loihi.program import Program
    from neurodeploy_pynn import spinnaker

    x = inputs()
    reference = simulate(dense_block(), {"x": x}, 32)
    assert reference.counts["nc"].sum() > 0
    chip = spinnaker.run(spinnaker.plan(dense_block()), x, 32, counts=True)
    assert np.mean(np.asarray(chip["counts"]["nc"]) != reference.counts["nc"]) < 0.02
    backend = Loihi2Backend()
    backend.emit(backend.plan(CompiledModel(snn=dense_block())), tmp_path)
    ours = Program.load(tmp_path).run(x, 32, counts=True)
    total = int(reference.counts["nc"].sum())
    assert abs(int(ours.counts["nc"].sum()) - total) <= 0.03 * total
    assert get_backend("spinnaker").name == "spinnaker"
