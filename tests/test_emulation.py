"""The shared emulation driver (neurodeploy.emulation) and the emit contract: a target that implements one batch
gets batching, joining and checkpoints from the core; results do not depend on the batch size; what emit
reports must be what it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from cli_support import save_tiny
from ir_graphs import conv_net, inputs_for

from neurodeploy import compiler
from neurodeploy.backends.base import Backend, Emitted, EmulationResult, Plan, ResourceReport, TargetSpec
from neurodeploy.backends.reference import ReferenceBackend
from neurodeploy.compiler import compile_model
from neurodeploy.emulation import Emulation, Run, join
from neurodeploy.encoding import Encoding
from neurodeploy.errors import ConversionError, DataError
from neurodeploy.ir.serialize import save_graph


class Counter(Backend):
    """A target with no batching code: its output after t steps is t times the sum of each sample's inputs."""

    name = "counter"
    spec = TargetSpec(name="counter", description="test")
    batch_size = 3
    batches: ClassVar[list[int]] = []
    joined: ClassVar[list[dict[str, int]]] = []

    def resources(self, plan: Plan) -> ResourceReport:
        return ResourceReport(self.target, [])

    def emit(self, plan: Plan, folder: Path) -> Emitted:
        return Emitted(files=[])

    def prepare(self, loaded: Any, inputs: Any, *, steps: int, encoding: Encoding) -> np.ndarray:
        return np.asarray(inputs, np.float32)

    def emulate_batch(self, loaded: Any, inputs: np.ndarray, run: Run) -> EmulationResult:
        type(self).batches.append(len(inputs))
        total = inputs.reshape(len(inputs), -1).sum(axis=1, keepdims=True)
        return EmulationResult(
            outputs=total * run.steps,
            steps=run.steps,
            mode=run.mode,
            spikes={"layer": np.arange(len(inputs)) + run.encoding.offset},  # which samples this batch held
            checkpoints={t: total * t for t in run.checkpoints},
            checkpoint_spikes={t: {"layer": np.full(len(inputs), t)} for t in run.checkpoints},
            diagnostics={"events": len(inputs)},
        )

    def after_run(self, loaded: Any, result: EmulationResult) -> None:
        type(self).joined.append(dict(result.diagnostics))


def test_a_target_implementing_one_batch_gets_batching_and_joining() -> None:
    Counter.batches.clear()
    Counter.joined.clear()
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    result = Counter().emulate(None, x, steps=4, checkpoints=(1, 2))
    assert Counter.batches == [3, 3, 3, 1]
    np.testing.assert_array_equal(result.outputs[:, 0], x.sum(axis=1) * 4)
    np.testing.assert_array_equal(result.checkpoints[2][:, 0], x.sum(axis=1) * 2)
    np.testing.assert_array_equal(result.spikes["layer"], np.arange(10))  # each batch's offset is its first sample
    np.testing.assert_array_equal(result.checkpoint_spikes[1]["layer"], np.ones(10))
    assert Counter.joined == [{"events": 10}]  # after_run once, with the diagnostics summed over batches


def test_the_driver_checks_steps_and_empty_inputs_before_running() -> None:
    Counter.batches.clear()
    with pytest.raises(DataError, match="steps must be >= 1"):
        Counter().emulate(None, np.zeros((2, 2)), steps=0)
    with pytest.raises(DataError, match="0 samples"):
        Counter().emulate(None, np.zeros((0, 2)), steps=2)
    with pytest.raises(DataError, match="modes snn"):
        Counter().emulate(None, np.zeros((2, 2)), steps=2, mode="graded")
    assert Counter.batches == []


def test_join_of_one_part_is_that_part() -> None:
    part = EmulationResult(outputs=np.ones((2, 3)), steps=5, mode="snn", spikes={"a": np.array([1, 2])})
    joined = join([part])
    np.testing.assert_array_equal(joined.outputs, part.outputs)
    np.testing.assert_array_equal(joined.spikes["a"], [1, 2])
    assert (joined.steps, joined.mode) == (5, "snn")


@pytest.mark.parametrize("encoding", [Encoding(), Encoding("rate", seed=3)])
def test_reference_results_do_not_depend_on_the_batch_size(tmp_path, encoding) -> None:
    graph = conv_net()
    save_graph(graph, tmp_path, "snn")
    x = inputs_for(graph, batch=7)
    artifact = _FolderArtifact(tmp_path)
    backend = ReferenceBackend()
    runs = [
        backend.emulate(artifact, x, steps=6, checkpoints=(2, 6), encoding=encoding, batch_size=b) for b in (1, 3, 256)
    ]
    # equal to float32 rounding (BLAS sums a batch of one in another order); a rate input keyed by the wrong
    # sample index would differ by whole spikes
    for other in runs[1:]:
        np.testing.assert_allclose(other.outputs, runs[0].outputs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(other.checkpoints[2], runs[0].checkpoints[2], rtol=1e-5, atol=1e-6)


class _FolderArtifact:
    """Just enough of an artifact for the reference backend: graphs read from a folder (no manifest)."""

    has_ann = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def read_graph(self, stem: str):
        from neurodeploy.artifact import load_graph

        return load_graph(self.root, stem)


class _Liar(ReferenceBackend):
    name = "reference"
    wrong: ClassVar[str] = "missing"

    def emit(self, plan: Plan, folder: Path) -> Emitted:
        if self.wrong == "missing":
            return Emitted(files=["program.json"])
        (folder / "extra.bin").write_bytes(b"x")
        return Emitted(files=[])


@pytest.mark.parametrize(("wrong", "message"), [("missing", r"missing \['program.json'\]"), ("extra", "extra.bin")])
def test_emit_must_report_exactly_what_it_wrote(tmp_path, monkeypatch, wrong, message) -> None:
    monkeypatch.setattr(_Liar, "wrong", wrong)
    monkeypatch.setattr(compiler, "get_backend", lambda target: _Liar())
    out = tmp_path / "art"
    with pytest.raises(ConversionError, match=message):
        compile_model(save_tiny(tmp_path / "models"), "reference", out)
    assert not out.exists()  # nothing is left behind


def test_emulation_loads_once_for_many_runs(tmp_path) -> None:
    graph = conv_net()
    save_graph(graph, tmp_path, "snn")
    runs = Emulation(ReferenceBackend(), _FolderArtifact(tmp_path), "snn")
    x = inputs_for(graph, batch=4)
    a = runs.run(x, steps=3)
    b = runs.run(x, steps=3)
    np.testing.assert_array_equal(a.outputs, b.outputs)
    assert runs.quantized_outputs(x) is None  # the reference target has no quantized ANN
