"""``neurodeploy evaluate``: ANN (onnxruntime) and SNN accuracy over T, SynOps, firing rates, correlations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_support import BUNDLED_MODEL, CALIBRATION, TEST_IMAGES, assert_one_line_error, run_cli
from onnx import TensorProto, helper, numpy_helper

from neurodeploy.data import data_root
from neurodeploy.errors import DataError, NeurodeployError
from neurodeploy.evaluate import Pearson, evaluate, parse_steps

LIMIT = 64


def onnxruntime_accuracy(model: Path, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    scores = session.run(None, {session.get_inputs()[0].name: x})[0]
    return float((scores.argmax(axis=1) == y).mean())


@pytest.fixture(scope="module")
def bundled_report(tmp_path_factory) -> dict:
    """The CLI on the bundled model: 64 test images, T = 1, 8, 64, calibrated on training images."""
    out = tmp_path_factory.mktemp("evaluate") / "eval.json"
    from neurodeploy.cli import main

    code = main(
        [
            "evaluate",
            str(BUNDLED_MODEL),
            "--data",
            str(TEST_IMAGES),
            "--calibration",
            str(CALIBRATION),
            "--limit",
            str(LIMIT),
            "--steps",
            "1,8,64",
            "--json",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    return json.loads(out.read_text())


def test_report_has_the_documented_fields(bundled_report):
    r = bundled_report
    for key in (
        "ann_accuracy",
        "snn_accuracy",
        "spikes_per_neuron",
        "synops",
        "synops_input",
        "ann_macs",
        "synops_per_mac",
        "layers",
        "firing_rates",
        "correlations",
        "seed",
        "encoding",
        "limit",
        "data",
        "target",
        "pipeline",
        "calibration",
    ):
        assert key in r, key
    assert r["samples"] == r["limit"] == LIMIT
    assert r["steps"] == [1, 8, 64]
    assert set(r["snn_accuracy"]) == set(r["synops"]) == set(r["spikes_per_neuron"]) == {"1", "8", "64"}
    assert r["target"] == "reference"
    assert r["encoding"] == {"kind": "direct"}
    assert r["calibration"]["source"] == "calibration.npz[:256]"
    assert r["pipeline"].endswith(("convert-to-snn", "}"))
    assert "convert-to-snn" in r["pipeline"]
    assert r["data"]["source"] == str(TEST_IMAGES)
    assert len(r["layers"]) == 3
    assert all(0 <= rate <= 1 for rate in r["firing_rates"].values())


def test_accuracies(bundled_report):
    with np.load(TEST_IMAGES) as data:
        x, y = data["x"][:LIMIT], data["y"][:LIMIT]
    assert bundled_report["ann_accuracy"] == onnxruntime_accuracy(BUNDLED_MODEL, x, y)
    assert bundled_report["ann_ir_accuracy"] == bundled_report["ann_accuracy"]
    assert bundled_report["snn_accuracy"]["64"] >= 0.98  # measured 1.0 (64/64); the floor allows one image fewer


def test_synops_grow_with_time_and_correlations_are_high(bundled_report):
    synops = [bundled_report["synops"][k] for k in ("1", "8", "64")]
    assert synops[0] < synops[1] < synops[2]
    spikes = [bundled_report["spikes_per_neuron"][k] for k in ("1", "8", "64")]
    assert spikes[0] <= spikes[1] < spikes[2]
    # the direct input is dense: 784 pixels x (16 channels x 9 taps, fewer at the border) every step
    assert bundled_report["synops_input"]["64"] == 64 * bundled_report["synops_input"]["1"]
    assert 16 * 9 * 24 * 24 < bundled_report["synops_input"]["1"] < 16 * 9 * 28 * 28
    assert bundled_report["ann_macs"] == 28 * 28 * 16 * 9 + 14 * 14 * 32 * 16 * 9 + 7 * 7 * 64 * 32 * 9 + 10 * 576
    ratio = bundled_report["synops_per_mac"]["64"]
    assert ratio == pytest.approx(bundled_report["synops"]["64"] / bundled_report["ann_macs"])
    # r(ANN, SNN) per layer at T = 64, measured 0.9994, 0.9961, 0.9883: floors about 0.02 below
    floors = {f"/features/features.{k}/Relu": floor for k, floor in ((2, 0.975), (6, 0.975), (10, 0.965))}
    assert set(bundled_report["correlations"]) == set(floors)
    for name, r in bundled_report["correlations"].items():
        assert r is not None, name
        assert -1.0 <= r <= 1.0, name
        assert r >= floors[name], name


@pytest.mark.parametrize(
    ("conversion", "floors"), [("coding=fs,fs-steps=4", (0.98, 0.96, 0.93)), ("coding=signed", (0.99, 0.98, 0.975))]
)
def test_correlations_of_graded_and_signed_spikes_use_what_was_sent(tmp_path, capsys, conversion, floors):
    """r(ANN, SNN) compares the ANN's activation with what a layer sent: for few-spike neurons their graded
    spikes' values, for signed neurons +1 and -1 spikes netted (their spike counts count events). Measured on
    these 64 images: few-spike K = 4 0.992 / 0.973 / 0.947, signed 0.998 / 0.991 / 0.986; from the event counts
    they were 0.82 / 0.81 / 0.79 and 0.998 / 0.72 / 0.68."""
    out = tmp_path / "eval.json"
    result = run_cli(
        capsys, "evaluate", BUNDLED_MODEL, "--data", TEST_IMAGES, "--calibration", CALIBRATION,
        "--limit", LIMIT, "--steps", "8,32", "--conversion", conversion, "--json", out, "-q",
    )  # fmt: skip
    assert result.code == 0, result
    correlations = json.loads(out.read_text())["correlations"]
    names = [f"/features/features.{k}/Relu" for k in (2, 6, 10)]
    assert set(correlations) == set(names)
    for name, floor in zip(names, floors, strict=True):
        assert correlations[name] >= floor, (name, correlations[name])


def test_progress_table_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "acc.png"
    args = ["evaluate", BUNDLED_MODEL, "--data", TEST_IMAGES, "--calibration", CALIBRATION, "--limit", "8"]
    result = run_cli(capsys, *args, "--steps", "2,4", "--plot", png, "--batch-size", "4")
    assert result.code == 0, result.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "8/8 samples" in result.err
    assert "4/8 samples" in result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("ANN accuracy (onnxruntime): ")
    assert lines[1].startswith("the readout leaves out the first min(")  # the bundled model's readout delay
    assert lines[2].split()[:3] == ["T", "accuracy", "spikes/neuron"]
    assert [line.split()[0] for line in lines[3:5]] == ["2", "4"]


def test_rate_encoding_is_seeded_and_independent_of_batch_size_and_workers():
    common = dict(calibration=str(CALIBRATION), limit=6, steps=[3, 5])
    a = evaluate(BUNDLED_MODEL, str(TEST_IMAGES), encoding=_rate(4), batch_size=4, workers=1, **common).to_dict()
    b = evaluate(BUNDLED_MODEL, str(TEST_IMAGES), encoding=_rate(4), batch_size=256, **common).to_dict()
    c = evaluate(BUNDLED_MODEL, str(TEST_IMAGES), encoding=_rate(4), batch_size=4, workers=2, **common).to_dict()
    assert a["encoding"] == {"kind": "rate", "seed": 4}
    assert a["seed"] == 4
    for key in ("snn_accuracy", "spikes_per_neuron", "synops", "synops_input"):
        assert a[key] == pytest.approx(b[key], rel=1e-12), key
    # worker processes merge the same chunks in the same order; only BLAS threads (one per worker) may round the
    # ANN activations differently
    correlations = c.pop("correlations"), a.pop("correlations")
    assert correlations[0] == pytest.approx(correlations[1], rel=1e-9)
    for report in (a, c):
        for layer in report["layers"]:
            layer.pop("correlation")
    assert c == a
    # rate input counts its events, not every pixel: far fewer than the dense direct input
    assert a["synops_input"]["5"] < 0.5 * 5 * 16 * 9 * 28 * 28


def _rate(seed: int):
    from neurodeploy.encoding import Encoding

    return Encoding("rate", seed=seed)


def test_npz_without_calibration_warns_and_uses_weight_bounds(tmp_path, capsys):
    result = run_cli(capsys, "evaluate", BUNDLED_MODEL, "--data", TEST_IMAGES, "--limit", "2", "--steps", "1")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert any("calibration" in line for line in warnings), result.err


def test_missing_onnxruntime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(NeurodeployError, match=r"pip install neurodeploy\[ort\]"):
        evaluate(BUNDLED_MODEL, str(TEST_IMAGES), [1], limit=1, calibration=str(CALIBRATION))


@pytest.mark.parametrize("steps", ["0", "1,x", "", "-4", "2.5"])
def test_bad_steps_are_usage_errors(capsys, steps):
    result = run_cli(capsys, "evaluate", BUNDLED_MODEL, "--data", TEST_IMAGES, "--steps", steps)
    assert result.code == 2
    assert "bad steps" in result.err


def test_parse_steps_sorts_and_deduplicates():
    assert parse_steps("8,1,2,8") == [1, 2, 8]
    with pytest.raises(ValueError, match="at least 1"):
        parse_steps("0,1")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [("imagenet", "neither a known data set"), ("missing.npz", "does not exist")],
)
def test_unknown_data_is_an_error(capsys, data, fragment):
    result = run_cli(capsys, "evaluate", BUNDLED_MODEL, "--data", data, "--steps", "1")
    assert_one_line_error(result, fragment)


def test_data_of_another_shape_is_an_error(tmp_path, capsys):
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 3, 8, 8), np.float32), y=np.zeros(2, np.int64))
    args = ["--data", tmp_path / "x.npz", "--steps", "1", "--calibration", CALIBRATION]
    result = run_cli(capsys, "evaluate", BUNDLED_MODEL, *args)
    assert_one_line_error(result, "does not fit mnist_cnn.onnx", "(batch, 1, 28, 28)")


def test_npz_without_labels_is_an_error(tmp_path, capsys):
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 1, 28, 28), np.float32))
    result = run_cli(capsys, "evaluate", BUNDLED_MODEL, "--data", tmp_path / "x.npz", "--steps", "1")
    assert_one_line_error(result, "no labels")


def test_pearson_merges_chunks_exactly():
    rng = np.random.default_rng(0)
    a = rng.normal(size=1000)
    b = 0.3 * a + rng.normal(size=1000)
    p = Pearson()
    for i in range(0, 1000, 170):
        p.add(a[i : i + 170], b[i : i + 170])
    assert p.r == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    assert Pearson().r is None
    constant = Pearson()
    constant.add(np.ones(5), np.arange(5.0))
    assert constant.r is None


def nmnist_model(path: Path) -> Path:
    """Conv(2->4, 3x3, stride 2) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(4->10): takes (N, 2, 34, 34)."""
    rng = np.random.default_rng(0)
    weights = {
        "w": rng.normal(0, 1, (4, 2, 3, 3)).astype(np.float32),
        "b": np.zeros(4, np.float32),
        "fw": rng.normal(0, 1, (10, 4)).astype(np.float32),
        "fb": np.zeros(10, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "nmnist",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, 34, 34])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_nmnist_events_evaluate(tmp_path):
    try:
        if not (data_root() / "nmnist-small").is_dir():
            pytest.skip("the shared data has no nmnist-small/")
    except DataError:
        pytest.skip("no shared data folder")
    model = nmnist_model(tmp_path / "nmnist.onnx")
    options = {"bin_us": 10_000, "window_us": 300_000}
    report = evaluate(model, "nmnist", [1, 30], limit=3, calibration_samples=8, data_options=options).to_dict()
    assert report["encoding"] == {"kind": "events", "pad": False}
    assert report["data"]["options"] == {**options, "frames": 30}
    assert report["calibration"]["source"] == "nmnist:train[:8]"
    # events: the input's SynOps are its events (nonzero frame cells) times their fan-out, so they grow with T
    assert 0 < report["synops_input"]["1"] < report["synops_input"]["30"]
    with pytest.raises(DataError, match="30 frame"):
        evaluate(model, "nmnist", [31], limit=1, calibration_samples=8, data_options=options)
    with pytest.raises(DataError, match="static inputs"):
        evaluate(model, "mnist", [1], limit=1, encoding=_events())


def _events():
    from neurodeploy.encoding import Encoding

    return Encoding("events")


def test_the_report_states_the_readout_delay_and_the_accuracy_follows_it():
    """The bundled model's artifact carries a readout delay (chosen on its calibration data): the report says it
    and the skip at every T, and the accuracy at each T is the delayed readout's (it differs from
    ``readout_delay=0`` at T = 8 on these images: the read from step 0 sits at chance there)."""
    kwargs = {"calibration": str(CALIBRATION), "limit": 32, "workers": 1}
    delayed = evaluate(BUNDLED_MODEL, str(TEST_IMAGES), [4, 8], **kwargs).to_dict()
    assert delayed["readout_delay"] > 0
    assert delayed["readout_skip"] == {"4": min(delayed["readout_delay"], 2), "8": min(delayed["readout_delay"], 4)}
    plain = evaluate(BUNDLED_MODEL, str(TEST_IMAGES), [4, 8], target_options={"readout_delay": "0"}, **kwargs)
    plain_report = plain.to_dict()
    assert plain_report["readout_delay"] == 0
    assert plain_report["readout_skip"] == {"4": 0, "8": 0}
    assert delayed["snn_accuracy"]["8"] > plain_report["snn_accuracy"]["8"] + 0.25
    assert delayed["spikes_per_neuron"] == plain_report["spikes_per_neuron"]  # spikes count every step either way
