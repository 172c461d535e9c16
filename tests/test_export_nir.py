"""NIR export (neurodeploy.export, `neurodeploy export`): IR -> NIR -> IR gives the same network (every op's
parameters, and the same outputs at every step), a converted ANN exports once its neurons start at 0, and what NIR
cannot say is refused."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")
pytest.importorskip("h5py")


from cli_support import run_cli  # noqa: E402

from neurodeploy.artifact import load_artifact  # noqa: E402
from neurodeploy.compiler import compile_model  # noqa: E402
from neurodeploy.data.calibration import load_calibration  # noqa: E402
from neurodeploy.errors import UnsupportedOpError  # noqa: E402
from neurodeploy.export import export_nir  # noqa: E402
from neurodeploy.frontend import load_model  # noqa: E402
from neurodeploy.ir import LIF  # noqa: E402
from neurodeploy.simulate import simulate  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist"


def full(shape, value):
    return np.full(shape, value, np.float32)


def leaky_file(path: Path) -> Path:
    """Conv -> CubaLIF -> SumPool -> Flatten -> Affine -> LIF -> Affine -> LI, read with dt = 1 ms."""
    rng = np.random.default_rng(0)
    conv = (2, 6, 6)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "conv": nir.Conv2d(
            input_shape=(6, 6),
            weight=rng.uniform(0, 1, (2, 1, 3, 3)).astype(np.float32),
            stride=1,
            padding=1,
            dilation=1,
            groups=1,
            bias=full(2, 0.1),
        ),
        "cuba": nir.CubaLIF(
            tau_syn=full(conv, 4e-3),
            tau_mem=full(conv, 8e-3),
            r=full(conv, 8.0),
            v_leak=full(conv, 0.0),
            v_threshold=rng.uniform(0.2, 0.4, conv).astype(np.float32),
            w_in=full(conv, 4.0),
        ),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1),
        "fc1": nir.Affine(weight=rng.normal(0, 0.5, (5, 18)).astype(np.float32), bias=full(5, 0.05)),
        "lif": nir.LIF(tau=full(5, 5e-3), r=full(5, 5.0), v_leak=full(5, 0.0), v_threshold=full(5, 0.5)),
        "fc2": nir.Affine(weight=rng.normal(0, 1, (3, 5)).astype(np.float32), bias=full(3, 0.0)),
        "li": nir.LI(tau=full(3, 2e-3), r=full(3, 2.0), v_leak=full(3, 0.0)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    order = list(nodes)
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(order))))
    return path


def trace(graph, x, steps):
    out: dict[str, list] = {}
    simulate(graph, {next(iter(graph.inputs)): x}, steps, observe=lambda v, a: out.setdefault(v, []).append(a.copy()))
    return {k: np.stack(v) for k, v in out.items()}


def test_ir_to_nir_to_ir_is_exact(tmp_path) -> None:
    model = leaky_file(tmp_path / "net.nir")
    artifact = compile_model(model, "reference", tmp_path / "art", import_options={"dt": "1e-3"})
    options = export_nir(artifact, tmp_path / "back.nir")
    assert options == {"discretization": "euler", "dt": "1", "reset": "zero", "compare": "gt", "spikes": "single"}
    first, again = artifact.read_graph("snn"), load_model(tmp_path / "back.nir", options=options)
    leaky = [op for op in first.ops if isinstance(op, LIF)]
    assert [op.name for op in leaky] == [op.name for op in again.ops if isinstance(op, LIF)] == ["cuba", "lif", "li"]
    for op in leaky:
        twin = again.op(op.name)
        for key, value in op.attributes().items():
            other = twin.attributes()[key]
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(np.broadcast_to(other, value.shape), value, err_msg=f"{op.name}.{key}")
            else:
                assert value == other, (op.name, key)
    x = np.random.default_rng(1).random((3, 1, 6, 6)).astype(np.float32)
    a, b = trace(first, x, 16), trace(again, x, 16)
    np.testing.assert_array_equal(a[first.outputs[0]], b[again.outputs[0]])
    assert a["cuba"].mean() > 0.05  # the hidden layers spike
    np.testing.assert_array_equal(a["lif"], b["lif"])


def test_a_converted_ann_exports_once_its_neurons_start_at_zero(tmp_path, capsys) -> None:
    calibration = load_calibration(str(EXAMPLE / "calibration.npz"), 64)
    started = compile_model(EXAMPLE / "mnist_cnn.onnx", "reference", tmp_path / "half", calibration=calibration)
    with pytest.raises(UnsupportedOpError, match=r"starts at v = 0.5·θ.*--conversion initial=0"):
        export_nir(started, tmp_path / "x.nir")
    assert not (tmp_path / "x.nir").exists()
    compile_model(
        EXAMPLE / "mnist_cnn.onnx", "reference", tmp_path / "zero", calibration=calibration, conversion="initial=0"
    )
    out = run_cli(capsys, "export", tmp_path / "zero", "-o", tmp_path / "mnist.nir")
    assert out.code == 0, out.err
    assert "-I reset=subtract -I compare=ge" in out.out
    again = load_model(tmp_path / "mnist.nir", options={"reset": "subtract", "compare": "ge"})
    x = np.load(EXAMPLE / "test_images.npz")["x"][:8].astype(np.float32)
    snn = load_artifact(tmp_path / "zero").read_graph("snn")
    a, b = trace(snn, x, 12), trace(again, x, 12)
    np.testing.assert_allclose(b[again.outputs[0]], a[snn.outputs[0]], rtol=1e-5, atol=1e-5)


def test_what_nir_cannot_say_is_refused(tmp_path) -> None:
    path = tmp_path / "mixed.nir"
    nodes = {
        "input": nir.Input(input_type={"input": np.array([3])}),
        "a": nir.IF(r=full(3, 1.0), v_threshold=full(3, 1.0)),
        "b": nir.LIF(tau=full(3, 2.0), r=full(3, 1.0), v_leak=full(3, 0.0), v_threshold=full(3, 1.0)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=[("input", "a"), ("a", "b"), ("b", "output")]))
    # IF neurons read as the IR's IF (>=), the LIF kept strict: one file cannot be read both ways
    artifact = compile_model(path, "reference", tmp_path / "art", import_options={"dt": "1", "compare": "ge"})
    export_nir(artifact, tmp_path / "ok.nir")  # both >= now: fine
    strict = compile_model(path, "reference", tmp_path / "s", import_options={"dt": "1", "reset": "subtract"})
    export_nir(strict, tmp_path / "ok2.nir")  # both > (the IF is a LIF op then): fine
    spikes = compile_model(
        path, "reference", tmp_path / "m", import_options={"writer": "sinabs", "spikes": "multi", "dt": "1"}
    )
    export_nir(spikes, tmp_path / "ok3.nir")
    with pytest.raises(UnsupportedOpError, match="differ in compare"):
        export_nir(_mixed_compare(tmp_path), tmp_path / "no.nir")


def _mixed_compare(tmp_path):
    """An IF neuron (>=) before a strict LIF (>): written by hand as IR, compiled from the toy format."""
    from neurodeploy.frontend import ModelFormat, register_format, unregister_format
    from neurodeploy.ir import IF, Dense, Graph, TensorType

    def load(path, input_shapes=None):
        graph = Graph(name="m", inputs={"x": TensorType((2,))}, outputs=["s2"])
        graph.ops = [
            Dense(name="d", inputs=("x",), output="h", weight=np.eye(2, dtype=np.float32)),
            IF(name="s1", inputs=("h",), output="s", threshold=np.float32(1), initial=0.0),
            LIF(
                name="s2",
                inputs=("s",),
                output="s2",
                decay=np.float32(0.5),
                gain=np.float32(1),
                drive=np.float32(0),
                threshold=np.float32(1),
                strict=True,
                reset="subtract",
            ),
        ]
        return graph

    register_format((".mix",), ModelFormat("mixed", load))
    try:
        (tmp_path / "m.mix").write_bytes(b"x")
        return compile_model(tmp_path / "m.mix", "reference", tmp_path / "mixed-art")
    finally:
        unregister_format((".mix",))


def test_leaky_neurons_compile_for_loihi_with_their_decays_reported(tmp_path) -> None:
    """The CubaLIF, LIF network above on Loihi 2: v and u decays as 12-bit dv and du (their rounding in the report),
    stock Lava LIF neurons (board-ready), no graded program; its outputs near the float network's (8-bit weights)."""
    from neurodeploy.compiler import emulate_artifact
    from neurodeploy.errors import ConversionError, DataError

    model = leaky_file(tmp_path / "net.nir")
    options = {"dt": "1e-3"}
    # thresholds that differ within a channel of a convolution cannot fold into its shared kernel
    with pytest.raises(ConversionError, match="LIF 'cuba': its thresholds differ within a channel"):
        compile_model(model, "loihi", tmp_path / "refused", import_options=options)
    graph = nir.read(str(model))
    cuba = graph.nodes["cuba"]
    cuba.v_threshold = full(cuba.v_threshold.shape, 0.3)
    nir.write(str(tmp_path / "uniform.nir"), graph)
    # the LI readout is an integrator whose v is the output: the chip's readout does not read it
    with pytest.raises(ConversionError, match="LIF 'li': a leaky integrator"):
        compile_model(tmp_path / "uniform.nir", "loihi", tmp_path / "refused2", import_options=options)
    graph.nodes["li"] = nir.LIF(tau=full(3, 2e-3), r=full(3, 2.0), v_leak=full(3, 0.0), v_threshold=full(3, 0.3))
    nir.write(str(tmp_path / "spiking-out.nir"), graph)
    # the first neurons are driven by the host's current, which enters v: they cannot have a synaptic stage
    with pytest.raises(ConversionError, match="LIF 'cuba' reads the input through a synaptic current"):
        compile_model(tmp_path / "spiking-out.nir", "loihi", tmp_path / "refused3", import_options=options)
    conv = cuba.v_threshold.shape
    graph.nodes["cuba"] = nir.LIF(
        tau=full(conv, 8e-3), r=full(conv, 8.0), v_leak=full(conv, 0.0), v_threshold=full(conv, 0.3)
    )
    spiking = tmp_path / "spiking.nir"
    nir.write(str(spiking), graph)
    artifact = compile_model(spiking, "loihi", tmp_path / "art", import_options=options)
    assert artifact.manifest["target"]["board_ready"]
    report = json.loads((tmp_path / "art" / "report.json").read_text())
    decays = {q["name"]: q.get("decay") for q in report["target"]["quantization"]}
    assert decays["cuba"] == {"dv": 512, "v_decay": 0.875, "v_decay_quantized": 0.875}
    assert decays["lif"] == {"dv": 819, "v_decay": pytest.approx(0.8), "v_decay_quantized": 0.800048828125}
    # calibration data does not bring in the bias correction, whose rates are those of a converted ANN
    from neurodeploy.data.calibration import Calibration

    sample = np.random.default_rng(2).random((16, 1, 6, 6)).astype(np.float32)
    calibrated = compile_model(
        spiking, "loihi", tmp_path / "cal", import_options=options, calibration=Calibration(sample, "random")
    )
    assert calibrated.manifest["target"]["board_ready"]
    report_cal = json.loads((tmp_path / "cal" / "report.json").read_text())
    assert all("bias_correction" not in q for q in report_cal["target"]["quantization"])
    x = np.random.default_rng(1).random((8, 1, 6, 6)).astype(np.float32)
    reference = trace(load_model(spiking, options=options), x, 32)[load_model(spiking, options=options).outputs[0]]
    outputs = emulate_artifact(artifact, x, steps=32).outputs
    assert 0.05 < reference.mean() < 0.95  # the output spikes, but not every step
    assert np.abs(outputs - reference.mean(axis=0)).mean() < 0.05
    with pytest.raises(DataError, match="arrived spiking"):
        emulate_artifact(artifact, x, steps=32, mode="graded")
    # SpiNNaker runs it too (its own checks: backends/pynn/tests/test_spinnaker_leaky.py)
    chip = emulate_artifact(compile_model(spiking, "spinnaker", tmp_path / "spin", import_options=options), x, steps=32)
    assert np.abs(chip.outputs - reference.mean(axis=0)).mean() < 0.05
    # BrainScaleS-2's analog neurons may fire twice in a step where the float LIF fires once: said at compile time
    bss2 = compile_model(spiking, "brainscales2", tmp_path / "bss2", import_options=options)
    assert any("up to twice in a 1 µs step" in w for w in bss2.manifest["warnings"])


def test_inspect_says_a_spiking_models_thresholds_are_its_own(tmp_path, capsys) -> None:
    model = leaky_file(tmp_path / "net.nir")
    compile_model(model, "reference", tmp_path / "art", import_options={"dt": "1e-3"})
    out = run_cli(capsys, "inspect", tmp_path / "art")
    assert "none (the thresholds are the spiking model's own)" in out.out
    assert "ANN          none: the model arrived spiking" in out.out
