"""neurodeploy sweep: every point checked before work, results kept per point by the hash of its inputs, reruns
and interrupted runs doing only what is left, a failing point recorded beside the others."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path

import pytest
from cli_support import run_cli

from neurodeploy.errors import DataError, NeurodeployError
from neurodeploy.sweep import load_sweep, run_sweep

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist"


class FakeResult:
    def __init__(self, steps, accuracy):
        self.report = {
            "steps": steps,
            "snn_accuracy": {str(t): accuracy for t in steps},
            "ann_accuracy": 0.99,
            "spikes_per_neuron": {str(t): 0.5 * t for t in steps},
            "synops": {str(t): 100.0 * t for t in steps},
        }

    def to_dict(self):
        return self.report


class FakeEvaluate:
    """Records the points it is asked to run; fails on the conversions in ``fail``."""

    def __init__(self, fail=(), interrupt_at=None):
        self.calls: list[dict] = []
        self.fail, self.interrupt_at = fail, interrupt_at

    def __call__(self, model, data, steps, **kwargs):
        self.calls.append({"model": model, "data": data, **kwargs})
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        if kwargs.get("conversion") in self.fail:
            raise NeurodeployError(f"refused {kwargs['conversion']}")
        return FakeResult(steps, 0.5 + 0.1 * len(self.calls))


def spec(tmp_path, body: str) -> Path:
    for name in ("mnist_cnn.onnx", "test_images.npz", "calibration.npz"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    path = tmp_path / "sweep.toml"
    path.write_text(
        '[sweep]\nmodel = "mnist_cnn.onnx"\ndata = "test_images.npz"\ncalibration = "calibration.npz"\n'
        "limit = 16\nsteps = [4, 8]\nworkers = 1\n" + body
    )
    return path


GRID = '[grid]\nconversion = ["norm=max", "norm=percentile,percentile=99.9"]\n[[points]]\ntarget = "loihi"\n'
BASE = 'target = "reference"\n'


def test_points_are_the_grid_and_the_list_and_reruns_reuse_them(tmp_path) -> None:
    path = spec(tmp_path, BASE + GRID)
    sweep = load_sweep(path)
    assert [p.settings.get("conversion") for p in sweep.points] == ["norm=max", "norm=percentile,percentile=99.9", None]
    assert [p.settings["target"] for p in sweep.points] == ["reference", "reference", "loihi"]
    assert sweep.output == tmp_path / "sweep-sweep"
    fake = FakeEvaluate()
    document = run_sweep(sweep, evaluate_fn=fake)
    assert len(fake.calls) == 3
    assert fake.calls[0]["calibration"] == str(tmp_path / "calibration.npz")
    rows = list(csv.DictReader((sweep.output / "results.csv").open()))
    assert [(r["point"], r["T"], r["snn_accuracy"]) for r in rows][:2] == [("1", "4", "0.6"), ("1", "8", "0.6")]
    assert len(rows) == len(document["rows"]) == 6

    again = FakeEvaluate()
    run_sweep(load_sweep(path), evaluate_fn=again)
    assert again.calls == []  # nothing changed
    (tmp_path / "calibration.npz").write_bytes((tmp_path / "calibration.npz").read_bytes() + b"\0")
    path.write_text(path.read_text().replace("limit = 16", "limit = 16\n") + '[[points]]\ntarget = "speck"\n')
    changed = FakeEvaluate()
    run_sweep(load_sweep(path), evaluate_fn=changed)
    assert len(changed.calls) == 4  # the calibration file's contents are in every key


def test_an_interrupted_sweep_resumes_and_a_failed_point_runs_again(tmp_path) -> None:
    path = spec(tmp_path, BASE + GRID)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_sweep(path), evaluate_fn=FakeEvaluate(interrupt_at=2))
    failing = FakeEvaluate(fail=("norm=percentile,percentile=99.9",))
    document = run_sweep(load_sweep(path), evaluate_fn=failing)
    assert [c.get("conversion") for c in failing.calls] == ["norm=percentile,percentile=99.9", None]
    assert document["points"][1]["error"] == "refused norm=percentile,percentile=99.9"
    assert "report" in document["points"][2]
    retried = FakeEvaluate()
    run_sweep(load_sweep(path), evaluate_fn=retried)
    assert [c.get("conversion") for c in retried.calls] == ["norm=percentile,percentile=99.9"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (BASE + "[grid]\ntarget_option = [1]\n", "unknown key 'target_option'"),
        (BASE + "[grid]\nlimit = ['a']\n", "limit must be a whole number"),
        (BASE + "[grid]\nsteps = [[0]]\n", "steps must be a list of positive"),
        ('target = "loihi"\ntarget_options = { profile = "fast" }\n', "point 1 .*profile"),
        ('target = "nosuchchip"\n', "point 1 .*nosuchchip"),
        (BASE + 'conversion = "norm=sometimes"\n', "point 1 .*norm"),
        ('target = "dummy"\nemulator = "torch"\n', "point 1 .*'dummy' has no 'torch' emulator engine"),
        (BASE + 'emulator = "numpy"\ndevice = "cuda"\n', "point 1 .*for the torch emulator engine"),
        (BASE + '[[points]]\nmodel = "missing.onnx"\n', "point 1 .*missing.onnx does not exist"),
        (BASE + "[extra]\n", "unknown section"),
        (BASE + 'output = "../elsewhere"\n', "output '../elsewhere' must be a folder name beside the spec"),
        (BASE + 'output = "/tmp/elsewhere"\n', "must be a folder name beside the spec"),
        ("", "no target"),
    ],
)
def test_every_point_is_checked_before_any_work(tmp_path, body, message) -> None:
    path = spec(tmp_path, body)
    fake = FakeEvaluate()
    with pytest.raises(DataError, match=message):
        run_sweep(load_sweep(path), evaluate_fn=fake)
    assert fake.calls == []


def test_the_command_runs_a_real_sweep(tmp_path, capsys) -> None:
    path = spec(tmp_path, BASE + '[grid]\nconversion = ["norm=max"]\n')
    out = run_cli(capsys, "sweep", path, "-o", tmp_path / "out")
    assert out.code == 0, out.err
    assert "point 1 (target=reference, conversion=norm=max): running" in out.out
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert [r["T"] for r in rows] == ["4", "8"]
    assert 0 <= float(rows[1]["snn_accuracy"]) <= 1
    assert float(rows[1]["ann_accuracy"]) > 0.9
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "out" / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = run_cli(capsys, "sweep", path, "-o", tmp_path / "out")
    assert "cached" in out.out


def test_the_example_spec_is_valid() -> None:
    example = EXAMPLE.parent / "sweep" / "mnist.toml"
    sweep = load_sweep(example)
    assert len(sweep.points) == 4
    assert sweep.output == example.parent / "mnist-sweep"  # ignored by git
    assert {p.settings["target"] for p in sweep.points} == {"reference", "loihi"}


def test_a_damaged_kept_result_runs_again_and_a_folder_that_is_a_file_is_refused(tmp_path) -> None:
    path = spec(tmp_path, BASE)
    sweep = load_sweep(path)
    run_sweep(sweep, evaluate_fn=FakeEvaluate())
    (stored,) = (sweep.output / "points").iterdir()
    stored.write_text("{not json")
    again = FakeEvaluate()
    run_sweep(load_sweep(path), evaluate_fn=again)
    assert len(again.calls) == 1
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="exists and is not a folder"):
        run_sweep(load_sweep(path, tmp_path / "file"), evaluate_fn=FakeEvaluate())


def test_a_point_runs_on_the_emulator_engine_it_names(tmp_path) -> None:
    pytest.importorskip("torch", reason="the torch engine needs torch")
    path = spec(
        tmp_path, BASE + '[grid]\nemulator = ["numpy", "torch"]\n[[points]]\nemulator = "torch"\ndevice = "cpu"\n'
    )
    fake = FakeEvaluate()
    run_sweep(load_sweep(path), evaluate_fn=fake)
    assert [(c["emulator"], c.get("device")) for c in fake.calls] == [
        ("numpy", None),
        ("torch", None),
        ("torch", "cpu"),
    ]


def test_progress_lines_count_points_done_cached_failed_running_and_left(tmp_path) -> None:
    path = spec(tmp_path, BASE + GRID)
    run_sweep(load_sweep(path), evaluate_fn=FakeEvaluate(fail=("norm=percentile,percentile=99.9",)))
    lines: list[str] = []
    path.write_text(path.read_text() + '[[points]]\ntarget = "speck"\n')
    run_sweep(load_sweep(path), progress=lines.append, evaluate_fn=FakeEvaluate(fail=("norm=max",)))
    # point 1 (norm=max) and 3 (loihi) are kept; 2 failed last time and fails no more; 4 is new
    events = [(line.split(": ")[1].split(" [")[0], line.split("[")[1].split("]")[0]) for line in lines]
    assert events == [
        ("cached", "done 0, cached 1, failed 0, running 0, left 3"),
        ("cached", "done 0, cached 2, failed 0, running 0, left 2"),
        ("running", "done 0, cached 2, failed 0, running 1, left 1"),
        ("done", "done 1, cached 2, failed 0, running 0, left 1"),
        ("running", "done 1, cached 2, failed 0, running 1, left 0"),
        ("done", "done 2, cached 2, failed 0, running 0, left 0"),
    ]
    assert lines[0].startswith("point 1 (target=reference, conversion=norm=max): cached [")
    assert lines[2].startswith("point 2 (target=reference, conversion=norm=percentile,percentile=99.9): running [")
    assert lines[4].startswith("point 4 (target=speck): running [")
    failing: list[str] = []
    (tmp_path / "again").mkdir()
    run_sweep(
        load_sweep(path, tmp_path / "again"), progress=failing.append, evaluate_fn=FakeEvaluate(fail=("norm=max",))
    )
    assert failing[1] == (
        "point 1 (target=reference, conversion=norm=max): failed "
        "[done 0, cached 0, failed 1, running 0, left 3]: refused norm=max"
    )
    assert failing[-1].endswith("[done 3, cached 0, failed 1, running 0, left 0]")


def test_the_sweep_draws_accuracy_and_spikes_per_neuron_against_t(tmp_path) -> None:
    path = spec(tmp_path, BASE + GRID)
    sweep = load_sweep(path)
    run_sweep(sweep, evaluate_fn=FakeEvaluate(fail=("norm=max",)))
    accuracy = (sweep.output / "accuracy.svg").read_text()
    spikes = (sweep.output / "spikes.svg").read_text()
    for svg, axis in ((accuracy, "SNN accuracy (%)"), (spikes, "spikes per neuron per sample")):
        assert svg.startswith("<svg")
        assert svg.endswith("</svg>")
        assert f"<title>{axis} against T: sweep.toml: 3 point(s)</title>" in svg
        assert svg.count("<polyline") == 2  # points 2 and 3: point 1 failed
        assert "2: reference, norm=percentile,percentile=99.9" in svg
        assert ">3: loihi<" in svg
        assert "1: reference" not in svg
        assert svg.count("<circle") == 4  # T = 4 and 8 per point
    # the y axes' labels (the x axis's are 4 and 8): accuracy from 0 to 100 %; the fake's spikes per neuron are
    # 0.5 T, 2 and 4, on an axis from 0 to 4
    assert [f">{v}<" in accuracy for v in (0, 50, 100)] == [True] * 3
    assert [f">{v}<" in spikes for v in (0, 2, 100)] == [True, True, False]
    if importlib.util.find_spec("matplotlib") is not None:
        for name in ("accuracy.png", "spikes.png"):
            assert (sweep.output / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
