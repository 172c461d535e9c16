"""``neurodeploy export --quantized`` (neurodeploy.export.export_nir_quantized, Backend.quantized_graph): a loihi or
speck artifact written as NIR in the chip's integers. The file holds the program's integer weights, thresholds and
biases value for value, and read back with neurodeploy's own NIR import and run on the reference target it gives
the emulator's spike counts.

Tolerances, derived:

* Loihi, from the chip's input current: 0. Every hidden layer adds integers to v (weights w_eff·2^(weight_exp+6),
  biases bias_mant << bias_exp), which float32 sums exactly below 2^24 and the chip's v holds below 2^23 (the test
  checks that no hidden layer saturated); the graph's IF fires on v >= vth << 6 from 0 where the chip fires on
  v > vth << 6 from v0 = 1, the same steps; and the emulator counts population k over its Loihi steps k + 1 .. k +
  T, the graph's steps 1 .. T (its pipeline delay taken out). So the counts are equal neuron for neuron.
* Loihi, from the analog input x: the graph computes the input current c·R in float, the chip round(c·R) split
  into bias_mant << bias_exp, within 2^(bias_exp-1) <= 64 of it. A neuron with constant current fires
  floor-like in c·R·t / R, so over T steps its count moves by at most ceil(T·64 / R) = 1 (T·64 < R); its spike
  times can move too, and what that does to the layers after it has no bound but the measured one.
* Speck: 0. The same integers (int8 weights and biases, int16 thresholds, event counts), the same multi-spike
  neurons (floor(v/θ) spikes at v >= θ, subtracted), no state overflow (checked) and v above threshold_low.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")
h5py = pytest.importorskip("h5py")
pytest.importorskip("neurodeploy_loihi")
pytest.importorskip("neurodeploy_speck")

from cli_support import run_cli  # noqa: E402
from neurodeploy_loihi import fixed_point as fp  # noqa: E402
from neurodeploy_loihi.program import Program  # noqa: E402
from neurodeploy_loihi.quantize import lava_order, to_graph  # noqa: E402
from neurodeploy_speck.backend import direct_events, layer_names  # noqa: E402

from neurodeploy.backends.registry import get_backend  # noqa: E402
from neurodeploy.compiler import compile_model  # noqa: E402
from neurodeploy.encoding import Encoding  # noqa: E402
from neurodeploy.errors import UnsupportedOpError  # noqa: E402
from neurodeploy.export import export_nir_quantized  # noqa: E402
from neurodeploy.frontend import load_model  # noqa: E402
from neurodeploy.ir import Graph, TensorType  # noqa: E402
from neurodeploy.simulate import simulate  # noqa: E402

STEPS = 32


def full(shape, value):
    return np.full(shape, value, np.float32)


def if_file(path: Path, seed: int = 0, delay: int = 0) -> Path:
    """Conv -> IF -> SumPool -> Conv -> IF -> Flatten -> Affine -> IF -> Affine, as sinabs writes IF networks;
    ``delay``: a Delay of that many steps (dt = 1) after the flatten."""
    rng = np.random.default_rng(seed)

    def normal(scale, *shape):
        return rng.normal(0, scale, shape).astype(np.float32)

    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
        "conv1": nir.Conv2d(
            input_shape=(8, 8),
            weight=normal(0.6, 4, 1, 3, 3),
            stride=1,
            padding=1,
            dilation=1,
            groups=1,
            bias=normal(0.05, 4),
        ),
        "if1": nir.IF(r=full((4, 8, 8), 1), v_threshold=full((4, 8, 8), 1.0)),
        "pool1": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "conv2": nir.Conv2d(
            input_shape=(4, 4),
            weight=normal(0.4, 6, 4, 3, 3),
            stride=1,
            padding=1,
            dilation=1,
            groups=1,
            bias=normal(0.05, 6),
        ),
        "if2": nir.IF(r=full((6, 4, 4), 1), v_threshold=full((6, 4, 4), 1.0)),
        "flat": nir.Flatten(input_type={"input": np.array([6, 4, 4])}, start_dim=0, end_dim=-1),
        **({"delay": nir.Delay(delay=full(96, delay))} if delay else {}),
        "fc1": nir.Affine(weight=normal(0.3, 10, 96), bias=normal(0.05, 10)),
        "if3": nir.IF(r=full(10, 1), v_threshold=full(10, 1.0)),
        "fc2": nir.Affine(weight=normal(0.5, 3, 10), bias=full(3, 0)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(nodes))))
    return path


@pytest.fixture(scope="module")
def loihi_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loihi")
    model = if_file(folder / "net.nir")
    artifact = compile_model(model, "loihi", folder / "art", import_options={"writer": "sinabs", "spikes": "single"})
    options, metadata = export_nir_quantized(artifact, folder / "q.nir")
    return artifact, folder / "q.nir", options, metadata


def trace(graph: Graph, inputs: dict, steps: int, encoding: Encoding | None = None) -> dict[str, np.ndarray]:
    out: dict[str, list] = {}
    simulate(graph, inputs, steps, encoding=encoding, observe=lambda v, a: out.setdefault(v, []).append(a.copy()))
    return {k: np.stack(v) for k, v in out.items()}


def test_loihi_file_holds_the_programs_integers(loihi_export) -> None:
    artifact, path, options, metadata = loihi_export
    program = Program.load(artifact)
    assert options == {"discretization": "euler", "dt": "1", "reset": "subtract", "compare": "ge", "spikes": "single"}
    assert metadata["target"] == "loihi"
    assert metadata["pipeline_delay"] == program.delay == 3
    nodes = nir.read(str(path)).nodes
    layers = dict(zip(program.names, program.network.layers))
    # the input population: the host's float convolution times R = vth << 6, threshold R
    scale = fp.effective_threshold(program.input_vth)
    host_conv = program.host.ops[-1]
    np.testing.assert_array_equal(
        nodes["conv1"].weight, (host_conv.weight.astype(np.float64) * scale).astype(np.float32)
    )
    np.testing.assert_array_equal(nodes["if1"].v_threshold, scale)
    # a pooled convolution: Lava's kernel (repeated over the pool) << 6, turned to (O, I, kH, kW) cross-correlation
    synapse = layers["if2"].synapse
    lava = np.asarray(nodes["if2.synapse"].weight)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    np.testing.assert_array_equal(lava, synapse.lava_weights * 64)
    assert np.all(lava == np.rint(lava))
    neuron = layers["if2"].neuron
    bias = to_graph(fp.effective_bias(neuron.bias_mant, neuron.bias_exp)[None], program.shapes[1])[0]
    np.testing.assert_array_equal(nodes["if2.synapse"].bias, bias[:, 0, 0])
    np.testing.assert_array_equal(nodes["if2"].v_threshold, neuron.vth << 6)
    # Dense synapses: the effective weights (after Lava's clipping and truncation) * 2**(weight_exp + 6), columns
    # in the graph's flat order (Lava's is (X, Y, C))
    for name, below in (("if3", program.shapes[1]), ("fc2", program.shapes[2])):
        synapse = layers[name].synapse
        weight = np.asarray(nodes[f"{name}.synapse"].weight, np.float64)
        expected = synapse.effective_weights * 2.0 ** (synapse.weight_exp + 6)
        np.testing.assert_array_equal(weight[:, lava_order(below)], expected)
        assert np.all(weight == np.rint(weight))
    with h5py.File(path, "r") as f:
        assert f["node/metadata/target"][()].decode() == "loihi"
        assert "no delays" in f["node/metadata/delay_note"][()].decode()


def test_loihi_spike_counts_equal_the_emulators(loihi_export) -> None:
    artifact, path, options, _ = loihi_export
    program = Program.load(artifact)
    graph = load_model(path, options=options)
    x = np.random.default_rng(1).random((16, 1, 8, 8)).astype(np.float32)
    chip = program.run(x, STEPS, counts=True)
    assert not np.any(chip.stats["v_saturations"][1:])  # the hidden layers stay in v's range (the input's may not)
    spiking = program.names[:-1]

    # from the chip's own input current (bias_mant << bias_exp): the same integers, the same spikes
    first = graph.op("if1")
    cut = Graph(
        "cut", {"current": TensorType(program.shapes[0])}, list(graph.outputs), graph.ops[graph.ops.index(first) :]
    )
    first.inputs = ("current",)
    cut.verify()
    current = to_graph(fp.effective_bias(*program.input_bias(x)), program.shapes[0]).astype(np.float32)
    got = trace(cut, {"current": current}, STEPS)
    for name in spiking:
        np.testing.assert_array_equal(got[name].sum(axis=0), chip.counts[name], err_msg=name)
    assert all(chip.counts[name].sum() > 100 for name in spiking)  # every layer fires
    # the readout: v's gain per step; the chip floors each step's sum by 2**-weight_exp (units of 2**6 of v)
    readout = program.network.layers[-1].synapse
    per_step = 2.0 ** (-readout.weight_exp + 6)
    mean = got[graph.outputs[0]].mean(axis=0) / program.scales[-1]
    assert np.abs(mean - chip.outputs).max() <= per_step / program.scales[-1]

    # from x: the graph computes the input current in float, the chip rounds it (see the module)
    first.inputs = (graph.ops[graph.ops.index(first) - 1].output,)
    full_run = trace(graph, {"input": x}, STEPS)
    counts = {name: full_run[name].sum(axis=0) for name in spiking}
    assert np.abs(counts["if1"] - chip.counts["if1"]).max() <= 1  # T·64 < R: at most one spike per neuron
    for name in spiking:  # measured: 0, 1 and 1 spikes of 36290, 26701 and 881 (seed 1, 16 samples, T = 32)
        assert abs(counts[name].sum() - chip.counts[name].sum()) <= 0.001 * chip.counts[name].sum() + 2, name


@pytest.mark.parametrize("delay", [0, 3])
def test_loihi_event_input_and_delays_give_the_emulators_spikes_exactly(tmp_path, delay: int) -> None:
    """Event input (the counts reach the first synapse as graded spikes: no host rounding) and a Delay the network
    asks for (a DelayDense on the chip, a Delay node in the file): from the same event frames, every layer's spike
    counts equal the emulator's, neuron for neuron (the same integers; tolerance 0, as above)."""
    model = if_file(tmp_path / "net.nir", seed=2, delay=delay)
    options = {"writer": "sinabs", "spikes": "single"}
    artifact = compile_model(model, "loihi", tmp_path / "art", import_options=options, encoding=Encoding("events"))
    program = Program.load(artifact)
    assert program.network.input_bits == 8
    assert [layer.lag for layer in program.network.layers] == [0, 0, delay, 0]
    read, metadata = export_nir_quantized(artifact, tmp_path / "q.nir")
    assert "graded spikes" in metadata["input_note"]
    graph = load_model(tmp_path / "q.nir", options=read)
    rng = np.random.default_rng(3)
    frames = (rng.poisson(0.6, (8, STEPS, 1, 8, 8)) * (rng.random((8, STEPS, 1, 8, 8)) < 0.5)).astype(np.float32)
    chip = program.run(frames, STEPS, counts=True)
    assert not np.any(chip.stats["v_saturations"])
    got = trace(graph, {"input": frames}, STEPS, Encoding("events"))
    for name in program.names[:-1]:
        assert chip.counts[name].sum() > 50, name  # every layer fires
        np.testing.assert_array_equal(got[name].sum(axis=0), chip.counts[name], err_msg=name)


def test_speck_spike_counts_equal_the_emulators(tmp_path) -> None:
    model = if_file(tmp_path / "net.nir")
    artifact = compile_model(model, "speck", tmp_path / "art", import_options={"writer": "sinabs", "spikes": "multi"})
    options, metadata = export_nir_quantized(artifact, tmp_path / "q.nir")
    assert (options["spikes"], options["reset"], options["compare"]) == ("multi", "subtract", "ge")
    assert metadata["target"] == "speck"
    backend = get_backend("speck")
    document = backend.load_config(artifact)
    network = backend.network(artifact, document)
    names = layer_names(document["host"])
    nodes = nir.read(str(tmp_path / "q.nir")).nodes
    for core in network.cores:  # int8 weights and int16 thresholds, value for value
        np.testing.assert_array_equal(nodes[f"{names[core.index]}.conv"].weight, core.weight)
        np.testing.assert_array_equal(nodes[names[core.index]].v_threshold, core.threshold_high)
        assert -128 <= core.weight.min()
        assert core.weight.max() <= 127
        assert core.threshold_high < 2**15
    graph = load_model(tmp_path / "q.nir", options=options)
    x = np.random.default_rng(1).random((16, 1, 8, 8)).astype(np.float32) * 2
    frames = direct_events(x, STEPS)
    chip = network.run_binned(frames)
    assert not any(chip.overflow.values())
    got = trace(graph, {"input": frames.astype(np.float32)}, STEPS, Encoding("events"))
    for core in network.cores:
        name = names[core.index]
        np.testing.assert_array_equal(got[name].sum(axis=0), chip.neuron_totals[core.index], err_msg=name)
        assert chip.neuron_totals[core.index].sum() > 100


def test_what_has_no_quantized_export_is_refused(tmp_path, capsys) -> None:
    model = if_file(tmp_path / "net.nir")
    reference = compile_model(model, "reference", tmp_path / "ref", import_options={"writer": "sinabs"})
    with pytest.raises(UnsupportedOpError, match=r"target 'reference' has no quantized export.*loihi.*speck"):
        export_nir_quantized(reference, tmp_path / "x.nir")
    assert not (tmp_path / "x.nir").exists()
    out = run_cli(capsys, "export", tmp_path / "ref", "--quantized", "-o", tmp_path / "x.nir")
    assert out.code != 0
    assert "no quantized export" in out.err


def test_loihi_neurons_that_start_above_zero_are_refused(tmp_path) -> None:
    from neurodeploy.data.calibration import load_calibration

    example = Path(__file__).resolve().parents[1] / "examples" / "mnist"
    calibration = load_calibration(str(example / "calibration.npz"), 16)
    artifact = compile_model(example / "mnist_cnn.onnx", "loihi", tmp_path / "art", calibration=calibration)
    with pytest.raises(UnsupportedOpError, match=r"start at v = .*--conversion initial=0"):
        export_nir_quantized(artifact, tmp_path / "x.nir")


def test_the_command_prints_what_the_file_leaves_out(loihi_export, capsys, tmp_path) -> None:
    artifact = loihi_export[0]
    out = run_cli(capsys, "export", artifact.root, "--format", "nir", "--quantized", "-o", tmp_path / "q.nir")
    assert out.code == 0, out.err
    assert "loihi target's quantized network" in out.out
    assert "-I reset=subtract -I compare=ge" in out.out
    assert "pipeline_delay: 3" in out.out
    assert "the graph has no delays" in out.out
    assert "rounds it" in out.out


def test_a_speck_export_loads_in_sinabs_and_runs_as_the_chips_integers(tmp_path) -> None:
    """The speck file loaded with sinabs' own ``from_nir``: sinabs' run from the same event frames equals, at every
    step, the run of the file that equals the emulator neuron for neuron (above). sinabs' reader adds a floor of
    -θ on v (``min_v_mem``), which NIR does not say and the chip does not have; it is lifted here, the only change."""
    torch = pytest.importorskip("torch")
    sinabs = pytest.importorskip("sinabs")
    from sinabs.nir import from_nir

    model = if_file(tmp_path / "net.nir")
    artifact = compile_model(model, "speck", tmp_path / "art", import_options={"writer": "sinabs", "spikes": "multi"})
    options, _ = export_nir_quantized(artifact, tmp_path / "q.nir")
    graph = load_model(tmp_path / "q.nir", options=options)
    batch = 16
    frames = direct_events(np.random.default_rng(1).random((batch, 1, 8, 8)).astype(np.float32) * 2, STEPS)
    frames = frames.astype(np.float32)
    ours = trace(graph, {"input": frames}, STEPS, Encoding("events"))[graph.outputs[0]]
    net = from_nir(nir.read(str(tmp_path / "q.nir")), batch_size=batch)
    floors = [m for m in net.modules() if getattr(m, "min_v_mem", None) is not None]
    assert floors  # sinabs' IAF layers, each with its floor
    for layer in floors:
        layer.min_v_mem = None
    sinabs.reset_states(net)
    with torch.no_grad():
        out = net(torch.from_numpy(frames).reshape(batch * STEPS, *frames.shape[2:]))
    out = (out[0] if isinstance(out, tuple) else out).reshape(batch, STEPS, -1).transpose(0, 1).numpy()
    np.testing.assert_array_equal(out, ours.reshape(out.shape))
    assert np.abs(ours).max() > 0
