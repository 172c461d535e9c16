"""The shipped snnTorch N-MNIST example (examples/nmnist_snntorch): a spiking CNN trained in snnTorch and written
to NIR by snnTorch's exporter. On the 100 test recordings, the reference target's accuracy is snnTorch's (the
training log's), and the chip targets say why they do not run it yet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurodeploy.compiler import compile_model
from neurodeploy.errors import NeurodeployError

pytest.importorskip("h5py")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nmnist_snntorch"
OPTIONS = {"writer": "snntorch", "reset": "zero"}


@pytest.fixture(scope="module")
def recordings():
    from neurodeploy.data import data_folder

    folder = data_folder("nmnist-small")
    if folder is None:
        pytest.skip("the shared data (or its nmnist-small/) is not here")
    return str(EXAMPLE / "nmnist_snn.nir")


def test_the_reference_target_scores_what_snntorch_scored(recordings) -> None:
    from neurodeploy.encoding import Encoding
    from neurodeploy.evaluate import evaluate

    log = json.loads((EXAMPLE / "training_log.json").read_text())
    report = evaluate(
        recordings,
        "nmnist",
        [log["frames"]],
        encoding=Encoding("events"),
        data_options={"bin_us": log["bin_us"]},
        import_options=OPTIONS,
        workers=1,
    ).to_dict()
    assert report["ann_accuracy"] is None
    assert report["samples"] == 100
    assert report["snn_accuracy"][str(log["frames"])] == log["test_accuracy"]


def test_the_chip_targets_say_why_not_yet(recordings, tmp_path) -> None:
    from neurodeploy.encoding import Encoding

    # Speck runs IF neurons only: the leak is refused with its numbers
    with pytest.raises(NeurodeployError, match=r"LIF: leak: v decays by a factor 0.9 per step"):
        compile_model(recordings, "speck", tmp_path / "s", import_options=OPTIONS, encoding=Encoding("events"))
    # Loihi runs the leaky layers (board-ready), but takes its input as the host's current, not as event frames
    artifact = compile_model(recordings, "loihi", tmp_path / "l", import_options=OPTIONS)
    assert artifact.manifest["target"]["board_ready"]
    with pytest.raises(NeurodeployError, match="the loihi target runs direct input, not the 'events' encoding"):
        compile_model(recordings, "loihi", tmp_path / "l2", import_options=OPTIONS, encoding=Encoding("events"))
    assert not (tmp_path / "l2").exists()
