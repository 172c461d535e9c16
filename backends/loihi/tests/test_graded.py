"""Graded mode (neurodeploy_loihi.graded): the neuron's arithmetic against hand-derived integer traces, the
emulated graded network against the 8-bit quantized ANN's plain integer forward pass (after the pipeline delay),
the quantization's fields and errors, and the backend, CLI and evaluate in graded mode on the bundled model."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from loihi_mnist import TEST_IMAGES, compiled
from neurodeploy_loihi import fixed_point as fp
from neurodeploy_loihi.emulator import DenseSynapse
from neurodeploy_loihi.graded import (
    GradedError,
    GradedLayer,
    GradedNetwork,
    GradedNeuron,
    GradedOptions,
    GradedProgram,
    _float_forward,
    graded_step,
    load_graded,
    quantize_graded,
)
from neurodeploy_loihi.lowering import lower
from neurodeploy_loihi.quantize import to_lava

from neurodeploy.compiler import emulate_artifact
from neurodeploy.errors import DataError
from neurodeploy.ir import AvgPool2d, Conv2d, Dense, Graph, Reshape, TensorType
from neurodeploy.ir.neurons import IF

# -- the neuron and a hand-derived trace -----------------------------------------------------------------------


def test_graded_step_floors_clips_and_saturates_as_hand_derived() -> None:
    neuron = GradedNeuron(relu=True, shift=2, message_bits=4)  # payloads 0..15
    a_in = np.array([[9, 7, -1, 100, (1 << 23) + 5, -(1 << 31)]])
    u, v, payload, saturated = graded_step(neuron, a_in, np.int64(-1))
    assert u.tolist() == a_in.tolist()
    limit = (1 << 23) - 1
    assert v.tolist() == [[8, 6, -2, 99, limit, -limit]]  # + bias -1, then 24-bit saturation
    assert payload.tolist() == [[2, 1, 0, 15, 15, 0]]  # 8 >> 2, 6 >> 2 (floor), -2 >> 2 = -1 -> 0, 99 >> 2 = 24 -> 15
    assert saturated.tolist() == [[False, False, False, False, True, True]]
    identity = GradedNeuron(relu=False, shift=0)
    assert graded_step(identity, np.array([[-7, 3]]), np.int64(2))[2].tolist() == [[-5, 5]]  # no ReLU, no clip


def _tiny() -> GradedNetwork:
    """input (2) -> dense [[4, -2], [2, 6]], bias (1 << 1, -3), shift 2, 4-bit payloads -> dense [[2, 4]] + 5
    (identity readout)."""
    return GradedNetwork(
        [
            GradedLayer(None, GradedNeuron(message_bits=8), "in", (2,)),
            GradedLayer(
                DenseSynapse(np.array([[4, -2], [2, 6]]), sign_mode=fp.SignMode.MIXED),
                GradedNeuron(shift=2, message_bits=4, bias_mant=np.array([1, -3]), bias_exp=np.array([1, 0])),
                "hidden",
            ),
            GradedLayer(
                DenseSynapse(np.array([[2, 4]]), sign_mode=fp.SignMode.MIXED),
                GradedNeuron(relu=False, bias_mant=5),
                "readout",
            ),
        ]
    )


def test_tiny_network_equals_hand_derived_integer_trace() -> None:
    trace = _tiny().run(np.array([[3, 5], [0, 7], [0, 12]]), 4)
    # sample 0: W q0 = (4*3 - 2*5, 2*3 + 6*5) = (2, 36); step 1 sees only the bias (2, -3) -> (0, -1) -> (0, 0);
    # from step 2: (2 + 2, 36 - 3) >> 2 = (1, 8). The readout: 5 (bias) at steps 1-2, 2*1 + 4*8 + 5 = 39 from step 3.
    assert trace.spikes[0][0].tolist() == [[3, 5]] * 4
    assert trace.spikes[1][0].tolist() == [[0, 0], [1, 8], [1, 8], [1, 8]]
    assert trace.v[1][0].tolist() == [[2, -3], [4, 33], [4, 33], [4, 33]]
    assert trace.u[2][0].tolist() == [[0], [0], [34], [34]]
    assert trace.v[2][0].tolist() == [[5], [5], [39], [39]]
    # sample 1: W q0 = (-14, 42) -> (-12, 39) >> 2 = (-3, 9) -> ReLU (0, 9); readout 36 + 5 = 41
    assert trace.spikes[1][1, 1].tolist() == [0, 9]
    assert trace.v[2][1, 2].tolist() == [41]
    # sample 2: W q0 = (-24, 72) -> (-22, 69) >> 2 = (-6, 17) -> (0, 15), the 4-bit payload's top; readout 65
    assert trace.spikes[1][2, 1].tolist() == [0, 15]
    assert trace.v[2][2, 2].tolist() == [65]


# -- quantization of a small converted graph -------------------------------------------------------------------


def _graph(seed: int = 0) -> Graph:
    """x (1, 6, 6) -> conv 3x3 -> IF (4, 6, 6) -> avgpool 2 -> conv 3x3 in 2 groups -> IF (4, 3, 3) -> flatten ->
    dense -> IF (8) -> dense (3), the readout."""
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.normal(size=shape) * 2 / np.sqrt(np.prod(shape[1:]))).astype(np.float32)

    def b(n: int) -> np.ndarray:
        return (rng.normal(size=n) * 0.2).astype(np.float32)

    theta = np.float32(1.5)
    ops = [
        Conv2d(name="conv1", inputs=("x",), output="c1", weight=w(4, 1, 3, 3), bias=b(4), padding=(1, 1, 1, 1)),
        IF(name="if1", inputs=("c1",), output="s1", threshold=theta),
        AvgPool2d(name="pool", inputs=("s1",), output="p1", kernel=(2, 2), stride=(2, 2)),
        Conv2d(
            name="conv2", inputs=("p1",), output="c2", weight=w(4, 2, 3, 3), bias=b(4), padding=(1, 1, 1, 1), groups=2
        ),
        IF(name="if2", inputs=("c2",), output="s2", threshold=rng.uniform(0.5, 2, 4).astype(np.float32)),
        Reshape(name="flat", inputs=("s2",), output="f", shape=(36,)),
        Dense(name="fc1", inputs=("f",), output="d1", weight=w(8, 36), bias=b(8)),
        IF(name="if3", inputs=("d1",), output="s3", threshold=theta),
        Dense(name="fc2", inputs=("s3",), output="y", weight=w(3, 8), bias=b(3)),
    ]
    return Graph("graded_small", {"x": TensorType((1, 6, 6))}, ["y"], ops)


@pytest.fixture(scope="module")
def small() -> tuple[GradedProgram, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    calibration = rng.random((64, 1, 6, 6)).astype(np.float32)
    x = rng.random((16, 1, 6, 6)).astype(np.float32)
    lowered = lower(_graph())
    return quantize_graded(lowered, calibration), x, _float_forward(lowered, x)[-1]


def test_graded_emulator_equals_integer_quantized_ann_after_the_delay(small) -> None:
    program, x, _ = small
    assert program.delay == 3
    expected = program.integer_forward(x)
    trace = program.network.run(to_lava(expected[0], program.shapes[0]), program.delay + 3)
    for k, q in enumerate(expected):
        want = to_lava(q, program.shapes[k])
        got = trace.v[k] if program.roles[k] == "readout" else trace.spikes[k]
        for t in range(k, program.delay + 3):  # population k holds the ANN's layer k from Loihi step k + 1 on
            np.testing.assert_array_equal(got[:, t], want, err_msg=f"population {k}, step {t + 1}")
        assert np.any(got[:, k - 1] != want) if k else True  # ...and not a step earlier (the bias-only start)
    run = program.run(x, 4, checkpoints=(1, 2, 4))
    reference = program.reference(x)
    for t in (1, 2, 4):
        np.testing.assert_array_equal(run.checkpoints[t], reference)


def test_graded_quantization_fields(small) -> None:
    program, _, _ = small
    layers = program.network.layers
    top = (1 << program.message_bits) - 1
    for k, layer in enumerate(layers[1:], start=1):
        w = layer.synapse.weights
        assert np.all(w % 2 == 0), "8-bit weights on Lava's MIXED grid are even"
        assert w.min() >= -256
        assert w.max() <= 254
        assert np.abs(w).max() >= 128, f"layer {k} uses its weights' top bit (the shift is the largest that fits)"
        if program.roles[k] == "hidden":
            assert layer.neuron.shift > 0
            assert layer.neuron.top == top
    assert program.network.layers[-1].neuron.relu is False


def test_quantized_ann_approximates_the_float_ann(small) -> None:
    program, x, float_out = small
    reference = program.reference(x)
    spread = float(np.abs(float_out).max())
    assert np.abs(reference - float_out).max() < 0.05 * spread  # 8-bit: a few LSBs of each layer's range


def test_graded_program_round_trips_through_files(small, tmp_path: Path) -> None:
    program, x, _ = small
    files = program.save(tmp_path)
    assert set(files) == {"graded.json", "graded.npz", "host.json", "host.npz"}
    loaded = GradedProgram.load(tmp_path)
    np.testing.assert_array_equal(loaded.run(x, 2).outputs, program.run(x, 2).outputs)
    np.testing.assert_array_equal(loaded.reference(x), program.reference(x))


# -- QCFS populations: the trained staircase ----------------------------------------------------------------


def _qcfs() -> tuple[Graph, GradedProgram, np.ndarray]:
    from loihi_graphs import convert, qcfs_cnn

    ann = qcfs_cnn(seed=3)
    x = (np.random.default_rng(5).integers(0, 9, size=(64, 1, 6, 6)) / 8).astype(np.float32)
    return ann, quantize_graded(lower(convert(ann, x[:16])), x[:16]), x


def test_qcfs_populations_send_their_level_and_equal_the_qcfs_ann_exactly() -> None:
    """A QCFS ANN whose weights 8-bit integers hold exactly: every population's payload equals the level of the
    trained staircase, floor(x L / λ + 0.5) clipped to 0..L, that the ANN computes in float (the IR interpreter on
    the unconverted graph), value for value; the emulated network equals that integer forward pass."""
    from neurodeploy.ir import interpret

    ann, program, x = _qcfs()
    assert [layer.neuron.top for layer in program.network.layers[:-1]] == [4, 8, 2]
    assert program.input_offset == 0.5
    assert program.report["scale_source"].startswith("QCFS staircase")
    for k, layer in enumerate(program.network.layers[1:-1], start=1):
        assert layer.neuron.shift > 0
        assert layer.neuron.levels == program.report["layers"][k]["levels"]
    floats = interpret.run(ann, x, keep=("a1", "a2", "a3"))
    ints = program.integer_forward(x)
    for k, (value, lam, levels) in enumerate([("a1", 1.0, 4), ("a2", 2.0, 8), ("a3", 0.5, 2)]):
        want = np.rint(floats[value] * levels / lam).astype(np.int64)
        np.testing.assert_array_equal(ints[k], want, err_msg=value)
        assert 0 < np.count_nonzero(want == levels) < want.size, f"{value}: the top level is reached, not everywhere"
    np.testing.assert_allclose(program.reference(x), floats["y"], atol=0.02 * np.abs(floats["y"]).max())
    run = program.run(x, 3, checkpoints=(1, 3))
    for t in (1, 3):
        np.testing.assert_array_equal(run.checkpoints[t], program.reference(x))


def test_qcfs_staircase_can_be_turned_off_and_round_trips_through_files(tmp_path: Path) -> None:
    from loihi_graphs import convert, qcfs_cnn

    _, program, x = _qcfs()
    program.save(tmp_path)
    loaded = GradedProgram.load(tmp_path)
    assert loaded.input_offset == 0.5
    assert [layer.neuron.levels for layer in loaded.network.layers] == [4, 8, 2, 0]
    np.testing.assert_array_equal(loaded.run(x, 1).outputs, program.run(x, 1).outputs)
    relu = quantize_graded(lower(convert(qcfs_cnn(seed=3), x[:16])), x[:16], GradedOptions(staircase=False))
    assert relu.input_offset is None
    assert all(layer.neuron.levels == 0 and layer.neuron.top == 255 for layer in relu.network.layers)
    assert not relu.report["scale_source"].startswith("QCFS")


def test_qcfs_levels_beyond_the_message_bits_name_the_layer() -> None:
    from loihi_graphs import convert, qcfs_cnn

    lowered = lower(convert(qcfs_cnn(seed=3)))
    with pytest.raises(GradedError, match=r"layer 'act2'.*8 levels needs payloads up to 8; message_bits 2 holds at"):
        quantize_graded(lowered, None, GradedOptions(message_bits=2))


def test_graded_staircase_target_option() -> None:
    from neurodeploy_loihi import Loihi2Backend

    backend = Loihi2Backend("loihi")
    assert backend.parse_target_options({"graded_staircase": "False"}) == {"graded_staircase": False}
    with pytest.raises(DataError, match="graded_staircase must be true or false, got 'maybe'"):
        backend.parse_target_options({"graded_staircase": "maybe"})


# -- errors --------------------------------------------------------------------------------------------------


def test_message_bits_beyond_the_input_bias_is_an_error_naming_the_limit() -> None:
    with pytest.raises(GradedError, match=r"message_bits 13.*bias_mant.*4095"):
        quantize_graded(lower(_graph()), None, GradedOptions(message_bits=13))


def test_a_bias_that_does_not_fit_names_layer_field_and_limit() -> None:
    lowered = lower(_graph())
    lowered.populations[2].bias = np.full(lowered.populations[2].bias.shape, 1e6, np.float32)
    with pytest.raises(GradedError, match=r"layer 'if3'.*bias_mant << bias_exp.*4095 << 7 = 524160"):
        quantize_graded(lowered, None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shift": 24}, r"shift must be integers in \[0, 23\]"),
        ({"message_bits": 25}, r"message_bits must be integers in \[1, 24\]"),
        ({"bias_mant": 4096}, r"bias_mant must be integers in \[-4096, 4095\]"),
        ({"bias_exp": 8}, r"bias_exp must be integers in \[0, 7\]"),
    ],
)
def test_graded_neuron_fields_out_of_range_name_field_and_limit(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        GradedNeuron(**kwargs)


def test_input_payload_out_of_bias_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"input bias_mant must be integers in \[-4096, 4095\]"):
        _tiny().run(np.array([[4096, 0]]), 2)


def test_artifact_without_graded_program_says_why() -> None:
    fake = SimpleNamespace(manifest={"target": {"graded": {"available": False, "reason": "layer 'x': bias too big"}}})
    with pytest.raises(DataError, match=r"cannot run in graded mode: layer 'x': bias too big"):
        load_graded(fake)


# -- the backend on the bundled model ------------------------------------------------------------------------


def test_bundled_model_graded_emulation_equals_quantized_ann() -> None:
    from neurodeploy.backends.registry import get_backend
    from neurodeploy.emulation import Emulation

    artifact = compiled("subtract")
    assert "graded" in artifact.manifest["target"]["modes"]
    note = artifact.manifest["target"]["graded"]
    assert note["available"] is True
    assert note["pipeline_delay"] == 3
    data = np.load(TEST_IMAGES)
    x, y = data["x"][:64], data["y"][:64]
    result = emulate_artifact(artifact, x, steps=2, mode="graded", checkpoints=(1, 2))
    reference = Emulation(get_backend("loihi"), artifact, "graded").quantized_outputs(x)
    assert result.mode == "graded"
    for t in (1, 2):
        np.testing.assert_array_equal(result.checkpoints[t], reference)
    assert (result.predictions == y).mean() >= 0.98  # measured 1.0 (64/64); the floor allows one image fewer
    assert Emulation(get_backend("loihi"), artifact, "binary").quantized_outputs(x) is None


def test_cli_emulates_graded_mode(capsys) -> None:
    from neurodeploy.cli import main

    artifact = compiled("subtract")
    code = main(["emulate", str(artifact.root), "--input", str(TEST_IMAGES), "--steps", "2", "--mode", "graded"])
    assert code == 0
    assert "(graded, 2 steps): accuracy" in capsys.readouterr().out


def test_evaluate_prints_quantized_ann_beside_graded_snn() -> None:
    pytest.importorskip("onnxruntime")
    from loihi_mnist import CALIBRATION, MODEL

    from neurodeploy.evaluate import evaluate

    result = evaluate(
        MODEL,
        str(TEST_IMAGES),
        [1, 2],
        target="loihi",
        mode="graded",
        calibration=str(CALIBRATION),
        limit=64,
        workers=1,
    )
    report = result.to_dict()
    assert report["mode"] == "graded"
    assert report["quantized_ann_accuracy"] is not None
    assert report["snn_accuracy"]["1"] == report["snn_accuracy"]["2"] == report["quantized_ann_accuracy"]
    assert "quantized ANN accuracy (graded mode computes it)" in result.format_table()


def test_replayed_steps_are_the_computed_ones(tmp_path, monkeypatch):
    """Once every population repeats itself for longer than the longest delay, GradedNetwork.run replays the last
    step instead of computing it: the trace and what an observer sees equal a run that computes every step."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from loihi_graphs import emit_graph, residual_block
    from neurodeploy_loihi import graded
    from neurodeploy_loihi.graded import GradedProgram
    from neurodeploy_loihi.quantize import to_lava

    x = np.random.default_rng(4).random((3, 1, 6, 6)).astype(np.float32)
    emit_graph(residual_block(seed=2, skip="conv"), tmp_path, x)
    program = GradedProgram.load(tmp_path)
    network = program.network
    assert max(d for k, layer in enumerate(network.layers) for _, _, d in layer.inbound(k)) > 0  # a delayed branch
    q0 = to_lava(program.input_payload(x), program.shapes[0])
    steps = 3 * program.delay + 10
    computed = {True: 0, False: 0}
    step = graded.graded_step

    def counted(*args, replay):
        computed[replay] += 1
        return step(*args)

    seen: dict[bool, list] = {True: [], False: []}
    runs = {}
    for replay in (True, False):
        monkeypatch.setattr(graded, "graded_step", lambda *a, r=replay: counted(*a, replay=r))
        runs[replay] = network.run(
            q0, steps, replay=replay, observe=lambda s, r=replay: seen[r].append((s.t, s.k, s.payload.copy()))
        )
    assert computed[False] == steps * len(network.layers)
    assert computed[True] < computed[False] / 2  # most steps were replayed
    for field in ("spikes", "u", "v", "v_saturations"):
        for k in range(len(network.layers)):
            np.testing.assert_array_equal(getattr(runs[True], field)[k], getattr(runs[False], field)[k])
    assert [(t, k) for t, k, _ in seen[True]] == [(t, k) for t, k, _ in seen[False]]
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(seen[True], seen[False]))
    monkeypatch.undo()
    assert np.array_equal(program.run(x, steps).outputs, program.reference(x))  # the settled readout: the 8-bit ANN
