"""The loihi target end to end on the bundled MNIST model: compiled through ``neurodeploy.compile_model`` and the
command line, emulated in binary mode at the accuracy of the float SNN (the reference target) at the same T, and
evaluated with ``neurodeploy evaluate``."""

from pathlib import Path

import numpy as np
import pytest
from loihi_mnist import CALIBRATION, MODEL, TEST_IMAGES, compiled, mnist_test_images

from neurodeploy.backends.registry import get_backend
from neurodeploy.cli import main
from neurodeploy.encoding import Encoding
from neurodeploy.errors import DataError

STEPS = 32
"""T for the accuracy comparison (counted after the pipeline delay; the Loihi run takes T + 3 steps)."""


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["subtract", "zero"])
def test_binary_mode_accuracy_is_within_half_a_point_of_the_reference_target(profile: str) -> None:
    """All 256 bundled test images at T = 32 (and 16, a checkpoint of the same run): the Loihi 2 integer network
    loses at most 0.5 point against the float SNN the reference target emulates from the same conversion."""
    x, y = mnist_test_images()
    loihi = get_backend("loihi").emulate(compiled(profile), x, steps=STEPS, checkpoints=(16,))
    reference = get_backend("reference").emulate(compiled(profile, "reference"), x, steps=STEPS, checkpoints=(16,))
    for t in (16, STEPS):
        ours = 100 * np.mean((loihi.outputs if t == STEPS else loihi.checkpoints[t]).argmax(1) == y)
        theirs = 100 * np.mean((reference.outputs if t == STEPS else reference.checkpoints[t]).argmax(1) == y)
        assert ours >= theirs - 0.5, f"{profile} T={t}: loihi {ours:.2f}% against reference {theirs:.2f}%"
    final = 100 * np.mean(loihi.outputs.argmax(1) == y)
    assert final >= (95 if profile == "subtract" else 60)  # the conversion itself works at this T


def test_cli_compiles_for_loihi2_and_emulates(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "artifact"
    argv = ["compile", str(MODEL), "--target", "loihi2", "--calibration", str(CALIBRATION)]
    assert main([*argv, "--conversion", "reset=zero,initial=0", "-o", str(out)]) == 0
    assert "network.net" in capsys.readouterr().out
    api = compiled("netx")
    for name in ("loihi.json", "loihi.npz", "network.net", "host.npz"):  # the target's name changes no file
        assert (out / name).read_bytes() == (api.root / name).read_bytes(), name
    result = tmp_path / "y.npz"
    argv = ["emulate", str(out), "--input", str(TEST_IMAGES), "--steps", "8", "--limit", "8", "--output", str(result)]
    assert main(argv) == 0
    x, _ = mnist_test_images()
    want = get_backend("loihi").emulate(api, x[:8], steps=8)
    np.testing.assert_array_equal(np.load(result)["outputs"], want.outputs)


def test_emulate_refuses_encodings_other_than_direct_naming_the_target() -> None:
    x, _ = mnist_test_images()
    with pytest.raises(DataError, match=r"the loihi target takes direct \(analog\) input.*'rate'"):
        get_backend("loihi").emulate(compiled("subtract"), x[:2], steps=4, encoding=Encoding("rate"))


def test_evaluate_runs_the_loihi_target_on_a_few_samples() -> None:
    pytest.importorskip("onnxruntime")
    from neurodeploy.evaluate import evaluate

    result = evaluate(
        MODEL, str(TEST_IMAGES), [4, 24], target="loihi", limit=12, calibration=str(CALIBRATION), workers=1
    ).to_dict()
    assert result["samples"] == 12
    assert result["ann_accuracy"] == 1.0
    assert result["snn_accuracy"]["24"] >= 11 / 12  # converges within 24 steps on these images (measured 11/12)
    assert result["snn_accuracy"]["4"] < result["snn_accuracy"]["24"]  # and not before the spikes arrive
    layers = result["layers"]
    assert len(layers) == 3
    # r(ANN, SNN) per layer at T = 24, measured 0.9971, 0.9781, 0.9256: floors about 0.02 below
    for layer, floor in zip(layers, (0.975, 0.955, 0.905)):
        assert layer["correlation"] >= floor, layer["name"]
