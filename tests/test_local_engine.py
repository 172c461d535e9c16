"""The local engine's worker processes (:mod:`neurodeploy.evaluation.local`): a sweep's points as one flat set of
tasks on processes started once give the numbers of a run in this process; a worker that dies is replaced and its
chunks counted once (a ``multiprocessing.Pool`` waited for ever); a chunk that kills its worker every time fails its
job alone, naming its samples."""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import Future
from pathlib import Path

import pytest
from cli_support import ROOT, run_cli

from neurodeploy.errors import ClusterError, DataError
from neurodeploy.evaluate import prepare_evaluation
from neurodeploy.evaluation import local as local_module
from neurodeploy.evaluation.local import WORKER_DEATHS, LocalBatch, LocalPool
from neurodeploy.evaluation.runner import simulate_chunks
from neurodeploy.sweep import load_sweep, run_sweep

MNIST = ROOT / "examples" / "mnist"
KILL = "NEURODEPLOY_TEST_KILL"
"""The file whose creation claims the one death of :func:`_die_once` (workers inherit the environment)."""


def _die_once(key, job, mark):
    """The first chunk that claims the file named by $NEURODEPLOY_TEST_KILL kills its worker, once it has started."""
    try:
        os.close(os.open(os.environ[KILL], os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return local_module._run_chunk(key, job, mark)
    Path(mark).touch()
    os._exit(9)


def _first_chunk_dies(key, job, mark):
    """The chunk of samples 0.. kills its worker every time it runs; the others run."""
    if job.offset == 0:
        Path(mark).touch()
        os._exit(9)
    return local_module._run_chunk(key, job, mark)


class _Pool(LocalPool):
    """A pool whose batches run ``task`` for a chunk."""

    def __init__(self, workers, task):
        super().__init__(workers)
        self.task = task

    def batch(self, progress=None):
        batch = super().batch(progress)
        batch.task = self.task
        return batch


def _spec(tmp_path: Path) -> Path:
    """The example sweep (four points) on 24 samples, 32 calibration samples, T = 4 and 8."""
    text = (ROOT / "examples" / "sweep" / "mnist.toml").read_text()
    text = text.replace('"../mnist/', f'"{MNIST}/')
    text = text.replace("limit = 200", "limit = 24\ncalibration_samples = 32").replace("[4, 8, 16, 32]", "[4, 8]")
    path = tmp_path / "mnist.toml"
    path.write_text(text)
    return path


def test_a_flat_local_sweep_equals_one_process_and_counts_a_killed_workers_chunks_once(tmp_path, monkeypatch):
    """Four points of three chunks each as one set of twelve tasks on two processes, one of which dies on a task:
    every point's report equals that of two processes without a death, and its table a run's in this process (the
    reports' correlations may differ there in the last bits: this process's BLAS threads)."""
    spec = _spec(tmp_path)
    here = run_sweep(load_sweep(spec, tmp_path / "here"), batch_size=8)
    with LocalPool(2) as pool:
        calm = run_sweep(load_sweep(spec, tmp_path / "calm"), cluster=pool, batch_size=8)
    monkeypatch.setenv(KILL, str(tmp_path / "killed"))
    lines: list[str] = []
    with _Pool(2, _die_once) as pool:
        died = run_sweep(load_sweep(spec, tmp_path / "died"), lines.append, cluster=pool, batch_size=8)
        assert pool.starts == 2  # started again after the death
    assert (tmp_path / "killed").exists()
    assert [p["report"] for p in died["points"]] == [p["report"] for p in calm["points"]]
    assert [p["report"]["samples"] for p in died["points"]] == [24] * 4
    assert died["rows"] == here["rows"]  # accuracies, spikes and SynOps per point and T
    running = [line for line in lines if ": running [" in line]
    assert len(running) == 4
    assert "running 2," in running[1]  # point 1's tasks were out when point 2 was compiled
    assert lines[-1].endswith("[done 4, cached 0, failed 0, running 0, left 0; tasks 12/12 done]"), lines


@pytest.fixture(scope="module")
def prepared():
    with prepare_evaluation(
        MNIST / "mnist_cnn.onnx", str(MNIST / "test_images.npz"), [4, 8], limit=24, batch_size=8,
        calibration=str(MNIST / "calibration.npz"), calibration_samples=32,
    ) as ready:  # fmt: skip
        yield ready


def test_an_evaluation_on_processes_survives_a_death_and_a_poisoned_chunk_fails_alone(prepared, tmp_path, monkeypatch):
    """One evaluation's chunks: a death costs a rerun, not a count; a chunk that kills every worker it runs on
    fails after WORKER_DEATHS deaths with an error naming its samples, while another job in the same batch ends."""
    job, chunks = prepared.job, prepared.chunks
    here = simulate_chunks(job, chunks, None)
    monkeypatch.setenv(KILL, str(tmp_path / "killed"))
    seen: list[tuple[int, int]] = []
    with _Pool(2, _die_once) as pool:
        sums = pool.simulate(job, chunks, lambda done, n: seen.append((done, n)))
        assert pool.starts == 2
    assert sums.samples == 24
    assert sums.correct == here.correct
    assert sums.spikes == here.spikes
    assert [n for _, n in seen] == [24] * 3
    assert seen[-1] == (24, 24)
    with _Pool(2, _first_chunk_dies) as pool:
        batch = pool.batch()
        batch.submit("poisoned", job, chunks)
        batch.submit("clean", job, chunks[1:])
        ended = dict(batch.results(block=True))
        assert pool.starts >= WORKER_DEATHS
    assert isinstance(ended["poisoned"], ClusterError)
    assert re.search(r"samples 0\.\.7 were running when a worker process died, 3 times", str(ended["poisoned"]))
    assert ended["clean"].samples == 16
    assert ended["clean"].correct == {
        t: here.correct[t] - simulate_chunks(job, chunks[:1], None).correct[t] for t in (4, 8)
    }


def test_the_sweep_command_runs_on_local_processes_and_checks_workers(tmp_path, capsys):
    spec = _spec(tmp_path)
    out = run_cli(capsys, "sweep", spec, "-o", tmp_path / "two", "--workers", "2")
    assert out.code == 0, out.err
    assert "tasks 4/4 done]" in out.out  # the points' chunks ran as tasks on the processes
    out = run_cli(capsys, "sweep", spec, "-o", tmp_path / "one", "--workers", "1")
    assert out.code == 0, out.err
    assert "tasks" not in out.out  # one worker: the points ran in this process
    two, one = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("two", "one"))
    assert two["rows"] == one["rows"]
    assert len(two["rows"]) == 8
    out = run_cli(capsys, "sweep", spec, "-o", tmp_path / "none", "--workers", "0")
    assert out.code != 0
    assert "--workers must be at least 1, got 0" in out.err
    spec.write_text(spec.read_text().replace("limit = 24", "limit = 24\nworkers = 0"))
    out = run_cli(capsys, "sweep", spec, "-o", tmp_path / "none")
    assert out.code != 0
    assert "workers must be at least 1, got 0" in out.err
    assert not (tmp_path / "none").exists()


class _Futures:
    """A pool stand-in whose tasks are futures the test ends by hand (no processes)."""

    address = "local (a stand-in)"
    starts = 1

    def __init__(self, tmp_path: Path) -> None:
        self.futures: list[Future] = []
        self.folder = tmp_path

    def mark(self) -> Path:
        return self.folder / f"mark{len(self.futures)}"

    def submit(self, fn, *args):
        self.futures.append(Future())
        return self.futures[-1], self.starts


def test_results_of_a_job_that_already_failed_are_dropped(prepared, tmp_path) -> None:
    """Both chunks of a job fail and both are in one wait: the first fails the job, the second is dropped (it was
    looked up and raised a KeyError), whichever comes first."""
    pool = _Futures(tmp_path)
    batch = LocalBatch(pool)  # type: ignore[arg-type]
    batch.submit("job", prepared.job, [(0, 8), (8, 16)])
    for future in pool.futures:
        future.set_exception(DataError("a bad chunk"))
    (ended,) = batch.results(block=True)
    assert ended[0] == "job"
    assert re.fullmatch(r"samples (0\.\.7|8\.\.15) on the local \(a stand-in\) engine: a bad chunk", str(ended[1]))
    assert list(batch.results(block=False)) == []
