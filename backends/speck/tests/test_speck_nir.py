"""NIR files written by sinabs (`sinabs.nir.to_nir`, serialized with the nir package) against sinabs' own
time-stepped run of the same network on the same inputs: the reference target reads them with
``--import-option writer=sinabs`` and must give the same spikes at every step, and the loihi target (8-bit weights)
the same outputs within what its quantization costs.

Tolerances: the IF networks are exact (float32 sums of the same terms; both run layer by layer within a step).
The leaky network compares v of the readout to 1e-5 relative: sinabs computes its decay exp(-1/tau) in float32
torch, neurodeploy in float64 numpy rounded to float32, which may differ in the last bit."""

from __future__ import annotations

import numpy as np
import pytest
from speck_deps import require

sinabs = require("sinabs", "sinabs")
torch = require("torch", "sinabs")
nir = pytest.importorskip("nir")

import sinabs.layers as sl  # noqa: E402
from sinabs.activation import MultiSpike, SingleSpike  # noqa: E402
from sinabs.nir import to_nir  # noqa: E402

from neurodeploy.compiler import compile_model, emulate_artifact  # noqa: E402
from neurodeploy.errors import DataError  # noqa: E402
from neurodeploy.frontend import load_model  # noqa: E402
from neurodeploy.simulate import output_trace, simulate  # noqa: E402

B, T = 4, 24


def cnn(spike_fn) -> torch.nn.Sequential:
    """Two pooled convolutions and a dense layer of IF neurons, with weights that keep every layer spiking."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, bias=False),
        sl.IAFSqueeze(batch_size=B, spike_fn=spike_fn, min_v_mem=None),
        sl.SumPool2d(2),
        torch.nn.Conv2d(4, 8, 3, padding=1, bias=True),
        sl.IAFSqueeze(batch_size=B, spike_fn=spike_fn, min_v_mem=None),
        sl.SumPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 10),
        sl.IAFSqueeze(batch_size=B, spike_fn=spike_fn, min_v_mem=None),
    )
    gen = torch.Generator().manual_seed(0)
    net[0].weight.data = torch.rand(4, 1, 3, 3, generator=gen) * 0.2 - 0.03
    net[3].weight.data = torch.rand(8, 4, 3, 3, generator=gen) * 0.06 - 0.012
    net[3].bias.data = torch.rand(8, generator=gen) * 0.02
    net[7].weight.data = torch.randn(10, 128, generator=gen) * 0.1 + 0.005
    net[7].bias.data[:] = 0
    return net


def sinabs_run(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """sinabs' output at every step, (T, B, ...), for ``x`` fed every step, from rest."""
    sinabs.reset_states(net)
    xt = torch.from_numpy(x)[:, None].repeat(1, T, *([1] * (x.ndim - 1))).reshape(B * T, *x.shape[1:])
    with torch.no_grad():
        out = net(xt)
    if isinstance(out, tuple):  # a network sinabs' from_nir built (nirtorch's executor) returns (output, state)
        out = out[0]
    return out.reshape(B, T, *out.shape[1:]).transpose(0, 1).numpy()


def write_nir(net: torch.nn.Module, x: np.ndarray, path, fill) -> None:
    graph = to_nir(net, torch.from_numpy(x))
    fill(graph)  # sinabs 3.1.3 leaves Conv2d.input_shape and Flatten.input_type None, which nir.write refuses
    nir.write(str(path), graph)


def fill_cnn(graph) -> None:
    graph.nodes["0"].input_shape = (16, 16)
    graph.nodes["3"].input_shape = (8, 8)
    graph.nodes["6"].input_type = {"input": np.array([8, 4, 4])}


def ours(path, x: np.ndarray, **options) -> np.ndarray:
    """The reference target's output at every step, (T, B, ...)."""
    return output_trace(load_model(path, options=options), x, T)


@pytest.fixture
def inputs() -> np.ndarray:
    return np.random.default_rng(1).random((B, 1, 16, 16)).astype(np.float32)


def test_sinabs_if_cnn_single_spike_equals_sinabs_at_every_step(tmp_path, inputs) -> None:
    net = cnn(SingleSpike)
    write_nir(net, inputs, tmp_path / "cnn.nir", fill_cnn)
    expected = sinabs_run(net, inputs)
    assert 0.2 < expected.mean() < 0.9  # the readout is busy, not silent or saturated
    np.testing.assert_array_equal(ours(tmp_path / "cnn.nir", inputs, writer="sinabs"), expected)
    artifact = compile_model(tmp_path / "cnn.nir", "reference", tmp_path / "ref", import_options={"writer": "sinabs"})
    np.testing.assert_array_equal(emulate_artifact(artifact, inputs, steps=T).outputs, expected.mean(axis=0))


def test_sinabs_if_cnn_multi_spike_equals_sinabs_at_every_step(tmp_path, inputs) -> None:
    net = cnn(MultiSpike)
    write_nir(net, inputs, tmp_path / "cnn.nir", fill_cnn)
    expected = sinabs_run(net, inputs)
    assert expected.max() >= 2  # several spikes in one step do happen
    np.testing.assert_array_equal(ours(tmp_path / "cnn.nir", inputs, writer="sinabs", spikes="multi"), expected)
    single = ours(tmp_path / "cnn.nir", inputs, writer="sinabs")
    assert not np.array_equal(single, expected)  # the option is what makes them equal


def test_sinabs_lif_and_exp_leak_readout(tmp_path) -> None:
    gen = torch.Generator().manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 12),
        sl.LIFSqueeze(tau_mem=8.0, batch_size=B, spike_fn=SingleSpike, norm_input=False),
        torch.nn.Linear(12, 3),
        sl.ExpLeakSqueeze(tau_mem=4.0, batch_size=B, norm_input=False),
    )
    net[0].weight.data = torch.rand(12, 6, generator=gen) * 0.3
    net[2].weight.data = torch.randn(3, 12, generator=gen)
    x = np.random.default_rng(2).random((B, 6)).astype(np.float32)
    write_nir(net, x, tmp_path / "lif.nir", lambda g: None)
    expected = sinabs_run(net, x)
    hidden = sinabs_run(net[:2], x)
    assert 0.1 < hidden.mean() < 0.9
    graph = load_model(tmp_path / "lif.nir", options={"writer": "sinabs"})
    trace: dict[str, list] = {}
    simulate(graph, {next(iter(graph.inputs)): x}, T, observe=lambda v, a: trace.setdefault(v, []).append(a.copy()))
    np.testing.assert_array_equal(np.stack(trace[graph.ops[1].output]), hidden)
    np.testing.assert_allclose(np.stack(trace[graph.outputs[0]]), expected, rtol=1e-5, atol=1e-6)


def test_sinabs_if_cnn_on_loihi_within_its_quantization(tmp_path, inputs) -> None:
    """Measured: the loihi artifact (8-bit weights) differs from sinabs by at most 1 spike in 24 steps per output."""
    net = cnn(SingleSpike)
    write_nir(net, inputs, tmp_path / "cnn.nir", fill_cnn)
    expected = sinabs_run(net, inputs).mean(axis=0)
    artifact = compile_model(tmp_path / "cnn.nir", "loihi", tmp_path / "l", import_options={"writer": "sinabs"})
    outputs = emulate_artifact(artifact, inputs, steps=T).outputs
    assert np.abs(outputs - expected).max() <= 1 / T + 1e-6
    with pytest.raises(DataError, match="arrived spiking"):  # graded payloads would be an ANN's activations
        emulate_artifact(artifact, inputs, steps=T, mode="graded")


def test_sinabs_multi_spike_cnn_on_speck(tmp_path, inputs) -> None:
    """Speck's neurons fire once per input event, several times in a step: sinabs' MultiSpike. Measured: the speck
    artifact (8-bit weights, event-driven cores) is within 3 spikes in 24 steps of sinabs per output, the same
    prediction on every sample. Read with single spikes, the network is not what the chip runs, and the artifact
    says so."""
    net = cnn(MultiSpike)
    write_nir(net, inputs, tmp_path / "cnn.nir", fill_cnn)
    expected = sinabs_run(net, inputs).mean(axis=0)
    options = {"writer": "sinabs", "spikes": "multi"}
    artifact = compile_model(tmp_path / "cnn.nir", "speck", tmp_path / "s", import_options=options)
    assert artifact.manifest["warnings"] == []
    outputs = emulate_artifact(artifact, inputs, steps=T).outputs
    assert np.abs(outputs - expected).max() <= 3 / T + 1e-6
    np.testing.assert_array_equal(outputs.argmax(axis=1), expected.argmax(axis=1))
    single = compile_model(tmp_path / "cnn.nir", "speck", tmp_path / "s1", import_options={"writer": "sinabs"})
    assert any("spikes=multi" in w for w in single.manifest["warnings"])


def test_an_exported_network_loads_in_sinabs_and_runs_as_the_emulator(tmp_path, inputs) -> None:
    """`neurodeploy export` of a network read from sinabs, loaded back with sinabs' from_nir: sinabs' run equals the
    reference emulator's at every step. sinabs' reader adds one thing NIR does not say, a floor of -θ on v
    (min_v_mem); weights >= 0 keep v above it here, and the second half shows the floor is the only difference."""
    from sinabs.nir import from_nir

    from neurodeploy.export import export_nir

    net = cnn(MultiSpike)
    for layer in (net[0], net[3], net[7]):
        layer.weight.data = layer.weight.data.abs()
    write_nir(net, inputs, tmp_path / "cnn.nir", fill_cnn)
    options = {"writer": "sinabs", "spikes": "multi"}
    artifact = compile_model(tmp_path / "cnn.nir", "reference", tmp_path / "ref", import_options=options)
    back = export_nir(artifact, tmp_path / "back.nir")
    assert back == {"discretization": "euler", "dt": "1", "reset": "subtract", "compare": "ge", "spikes": "multi"}
    loaded = from_nir(nir.read(str(tmp_path / "back.nir")), batch_size=B)
    emulated = ours(tmp_path / "back.nir", inputs, **back)
    np.testing.assert_array_equal(sinabs_run(loaded, inputs), emulated)
    np.testing.assert_array_equal(emulated, ours(tmp_path / "cnn.nir", inputs, **options))
    assert emulated.mean() > 0.2

    signed = cnn(MultiSpike)  # negative weights: v goes below -θ, where sinabs' reader holds it
    write_nir(signed, inputs, tmp_path / "signed.nir", fill_cnn)
    artifact = compile_model(tmp_path / "signed.nir", "reference", tmp_path / "ref2", import_options=options)
    export_nir(artifact, tmp_path / "signed-back.nir")
    loaded = from_nir(nir.read(str(tmp_path / "signed-back.nir")), batch_size=B)
    for layer in signed:
        if isinstance(layer, sl.IAFSqueeze):
            layer.min_v_mem = -1.0
    np.testing.assert_array_equal(sinabs_run(loaded, inputs), sinabs_run(signed, inputs))
