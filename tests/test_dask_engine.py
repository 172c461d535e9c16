"""The Dask engine (``--engine dask``): evaluate and sweep on a two-worker local Dask cluster give the numbers of the
local engine, a sweep's points as one flat set of tasks; an unreachable scheduler is an error naming it before any
work; a worker that dies mid-task is replaced and its chunk counted once; a worker's error fails its sweep point
alone.

Without dask and distributed installed (the ``cluster`` extra) the tests skip, unless NEURODEPLOY_REQUIRE_DASK=1
(`make test-main`, so CI) says they must run."""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from cli_support import BUNDLED_MODEL, ROOT, TEST_IMAGES, run_cli

import neurodeploy.evaluate as evaluate_module
import neurodeploy.sweep as sweep_module
from neurodeploy.errors import ClusterError, DataError
from neurodeploy.evaluate import evaluate, prepare_evaluation
from neurodeploy.evaluation import cluster as cluster_module
from neurodeploy.evaluation.runner import _single_threaded_blas
from neurodeploy.sweep import load_sweep, run_sweep


def _require(module: str):
    if os.environ.get("NEURODEPLOY_REQUIRE_DASK") != "1":
        return pytest.importorskip(module, reason=f"{module} is not installed (NEURODEPLOY_REQUIRE_DASK=1 fails)")
    return __import__(module)


distributed = _require("distributed")

EVALUATE = [BUNDLED_MODEL, "--data", TEST_IMAGES, "--limit", "48", "--batch-size", "16", "--steps", "4,8", "-q"]


@pytest.fixture(scope="module")
def address():
    """A local Dask cluster of two worker processes, one thread each (the BLAS of the local engine's workers)."""
    with _single_threaded_blas():
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, distributed.Client(cluster):
        yield cluster.scheduler_address


def _report(capsys, path: Path, *options) -> dict:
    out = run_cli(capsys, "evaluate", *EVALUATE, "--json", path, *options)
    assert out.code == 0, out.err
    return json.loads(path.read_text())


def test_evaluate_on_the_cluster_equals_the_local_engine(address, tmp_path, capsys) -> None:
    # --workers 2: the same one-thread BLAS as the cluster's workers (--workers 1 may round the correlations in
    # the last bits differently, with this process's BLAS threads)
    local = _report(capsys, tmp_path / "local.json", "--workers", "2")
    remote = _report(capsys, tmp_path / "dask.json", "--engine", "dask", "--address", address)
    assert remote == local
    assert remote["samples"] == 48


def test_the_dask_engine_starts_local_workers_without_an_address(tmp_path, capsys) -> None:
    local = _report(capsys, tmp_path / "local.json", "--workers", "2")
    started = _report(capsys, tmp_path / "dask.json", "--engine", "dask", "--workers", "2")
    assert started == local


def _example_spec(tmp_path: Path, one_conversion: bool = False) -> Path:
    """The example sweep on 24 samples, 32 calibration samples, T = 4 and 8 (and one conversion only)."""
    text = (ROOT / "examples" / "sweep" / "mnist.toml").read_text()
    text = text.replace('"../mnist/', f'"{ROOT / "examples" / "mnist"}/')
    text = text.replace("limit = 200", "limit = 24\ncalibration_samples = 32").replace("[4, 8, 16, 32]", "[4, 8]")
    if one_conversion:
        text = text.replace(', "norm=percentile,percentile=99.9"]', "]")
    path = tmp_path / "mnist.toml"
    path.write_text(text)
    return path


def test_the_example_sweep_on_the_cluster_equals_the_local_run(address, tmp_path, capsys) -> None:
    spec = _example_spec(tmp_path, one_conversion=True)
    out = run_cli(capsys, "sweep", spec, "-o", tmp_path / "local")
    assert out.code == 0, out.err
    out = run_cli(capsys, "sweep", spec, "-o", tmp_path / "dask", "--engine", "dask", "--address", address)
    assert out.code == 0, out.err
    assert (
        "point 2 (target=loihi, conversion=norm=max): done [done 2, cached 0, failed 0, running 0, left 0; " in out.out
    )
    local, remote = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("local", "dask"))
    assert len(remote["rows"]) == 4  # 2 points x 2 T
    assert remote["rows"] == local["rows"]  # accuracies, spikes and SynOps per point and T


def test_a_flat_sweep_equals_the_local_run_and_counts_a_killed_workers_chunk_once(address, tmp_path) -> None:
    """Four points of three chunks each as one set of twelve tasks on two workers, one of which dies on its first
    task: every point's report equals the local engine's (two processes, the workers' one-thread BLAS)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spec = _example_spec(tmp_path)
    local = run_sweep(load_sweep(spec, tmp_path / "local"), batch_size=8)
    lines: list[str] = []
    marker = tmp_path / "killed"
    with cluster_module.connect(address) as cluster:
        cluster.client.wait_for_workers(2, timeout=120)
        cluster.client.register_plugin(_KillOnce(str(marker)))
        try:
            remote = run_sweep(load_sweep(spec, tmp_path / "dask"), lines.append, cluster=cluster, batch_size=8)
        finally:
            cluster.client.unregister_worker_plugin(_KillOnce.name)
    assert marker.exists()  # a worker died
    assert [p["report"] for p in remote["points"]] == [p["report"] for p in local["points"]]
    assert remote["rows"] == local["rows"]
    assert [p["report"]["samples"] for p in remote["points"]] == [24] * 4
    # each point is running from its compile here until its last chunk is in; the tasks of the points before it run
    # while it compiles
    running = [line for line in lines if ": running [" in line]
    assert len(running) == 4
    assert "running 2," in running[1]  # point 1's tasks were out when point 2 began
    assert lines[-1].endswith("[done 4, cached 0, failed 0, running 0, left 0; tasks 12/12 done]"), lines


def test_a_flat_sweep_keeps_at_most_points_ahead_out(address, tmp_path, monkeypatch) -> None:
    """With two points allowed out, the third is compiled only when one of the first two has ended."""
    monkeypatch.setattr(sweep_module, "POINTS_AHEAD", 2)
    lines: list[str] = []
    with cluster_module.connect(address) as cluster:
        cluster.client.wait_for_workers(2, timeout=120)
        done = run_sweep(load_sweep(_example_spec(tmp_path), tmp_path / "dask"), lines.append, cluster=cluster)
    assert [p["report"]["samples"] for p in done["points"]] == [24] * 4
    counts = [int(re.search(r"running (\d+),", line).group(1)) for line in lines]
    assert max(counts) == 2, lines
    assert lines[-1].endswith("[done 4, cached 0, failed 0, running 0, left 0; tasks 4/4 done]"), lines


def test_an_unreachable_scheduler_is_an_error_naming_it_before_any_work(tmp_path, capsys, monkeypatch) -> None:
    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before connecting")

    monkeypatch.setattr(evaluate_module, "compile_model", no_compile)
    dead = "tcp://127.0.0.1:9"
    for argv in (
        ["evaluate", *EVALUATE, "--json", tmp_path / "r.json"],
        ["sweep", _example_spec(tmp_path), "-o", tmp_path / "out"],
    ):
        out = run_cli(capsys, *argv, "--engine", "dask", "--address", dead, "--connect-timeout", "1")
        assert out.code == 1
        assert out.err.startswith(f"error: cannot reach the Dask scheduler at {dead} within 1 s")
        assert out.err.count("\n") == 1, out.err
    assert not (tmp_path / "r.json").exists()
    assert not (tmp_path / "out").exists()


def test_engine_options_are_checked(capsys) -> None:
    out = run_cli(capsys, "evaluate", *EVALUATE, "--address", "tcp://127.0.0.1:9")
    assert out.code == 1
    assert "add --engine dask" in out.err
    out = run_cli(capsys, "evaluate", *EVALUATE, "--engine", "dask", "--address", "tcp://127.0.0.1:9", "--workers", "2")
    assert out.code == 1
    assert "has its own" in out.err


class _KillOnce(distributed.WorkerPlugin):
    """A worker plugin: the first task to start executing on any worker kills that worker's process (once, by a
    marker file), as a crash or an out-of-memory kill would."""

    name = "neurodeploy-kill-once"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def setup(self, worker) -> None:
        self.worker = worker

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish != "executing" or "_run_chunk" not in str(key):
            return
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os._exit(1)


def test_a_worker_that_dies_is_replaced_and_its_chunk_counted_once(address, tmp_path) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    arguments = dict(limit=48, batch_size=16, calibration=None)
    with cluster_module.connect(address) as cluster:
        expected = evaluate(BUNDLED_MODEL, str(TEST_IMAGES), [4, 8], cluster=cluster, **arguments).to_dict()
        marker = tmp_path / "killed"
        cluster.client.register_plugin(_KillOnce(str(marker)))
        try:
            again = evaluate(BUNDLED_MODEL, str(TEST_IMAGES), [4, 8], cluster=cluster, **arguments).to_dict()
        finally:
            cluster.client.unregister_worker_plugin(_KillOnce.name)
    assert marker.exists()  # a worker died
    assert again == expected
    assert again["samples"] == 48


def _digest_of(files) -> str:
    return files.digest


async def _exit_now() -> None:
    os._exit(1)


def test_the_artifact_outlives_the_death_of_the_only_worker_holding_it(address, tmp_path) -> None:
    """The artifact's bytes are a task's result: the worker holding the only copy dies, and a chunk depending on it
    still gets the same bytes (the scheduler reruns the task; scattered data would be lost and fail the job)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    (tmp_path / "art" / "sub").mkdir(parents=True)
    (tmp_path / "art" / "manifest.json").write_text("{}")
    (tmp_path / "art" / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    expected = cluster_module.ArtifactFiles.of(tmp_path / "art").digest
    with cluster_module.connect(address) as cluster:
        client = cluster.client
        client.wait_for_workers(2, timeout=120)
        files = cluster_module.artifact(client, tmp_path / "art")
        distributed.wait(files, timeout=60)
        (holder,) = client.who_has(files)[files.key]
        client.run(_exit_now, workers=[holder], wait=False)
        for _ in range(600):  # the scheduler has seen the worker go and no longer lists the copy
            if holder not in client.scheduler_info()["workers"]:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"{holder} did not die")
        digest = client.submit(_digest_of, files, pure=False).result(timeout=120)
        client.wait_for_workers(2, timeout=120)
    assert digest == expected


def _fail_on_loihi(original, files, job):
    if b'"loihi"' in files.files["manifest.json"]:
        raise DataError("the loihi emulator broke here")
    return original(files, job)


def _patch_workers(fail: bool) -> None:
    """On a worker: its chunk task fails for loihi artifacts (``fail``), or is itself again."""
    module = importlib.import_module("neurodeploy.evaluation.cluster")  # a restarted worker has not imported it
    original = getattr(module, "_original_run_chunk", module._run_chunk)
    module._original_run_chunk = original
    module._run_chunk = functools.partial(_fail_on_loihi, original) if fail else original


def test_a_worker_error_fails_its_point_and_keeps_the_others(address, tmp_path, capsys) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spec = _example_spec(tmp_path, one_conversion=True)
    with distributed.Client(address) as client:
        client.wait_for_workers(2, timeout=120)  # a worker killed by an earlier test is back (its nanny restarts it)
        client.run(_patch_workers, True)
        try:
            out = run_cli(capsys, "sweep", spec, "-o", tmp_path / "out", "--engine", "dask", "--address", address)
        finally:
            client.run(_patch_workers, False)
    assert out.code == 1
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    failed = {p["point"]: p["error"] for p in document["points"] if "error" in p}
    kept = [p["point"] for p in document["points"] if "report" in p]
    assert list(failed) == [2], document["points"]  # the grid: reference, loihi
    assert kept == [1]
    for point, error in failed.items():
        assert f"point {point} failed: samples 0..23 on the Dask cluster at {address}" in out.err
        assert "the loihi emulator broke here" in error
    assert "point 2 (target=loihi, conversion=norm=max): failed [done 1, cached 0, failed 1, running 0, left 0; " in (
        out.out
    )


def test_an_interrupted_flat_sweep_cancels_its_tasks_and_a_failed_compile_fails_its_point_alone(address, tmp_path):
    spec = _example_spec(tmp_path, one_conversion=True)  # point 1 on the reference target, point 2 on loihi

    def interrupted(**arguments):
        if arguments["target"] == "loihi":
            raise KeyboardInterrupt
        return prepare_evaluation(**arguments)

    def refused(**arguments):
        if arguments["target"] == "loihi":
            raise DataError("loihi refused it")
        return prepare_evaluation(**arguments)

    lines: list[str] = []
    with cluster_module.connect(address) as cluster:
        cluster.client.wait_for_workers(2, timeout=120)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(load_sweep(spec, tmp_path / "out"), lines.append, cluster=cluster, prepare_fn=interrupted)
        assert not list((tmp_path / "out" / "points").iterdir())  # point 1's tasks were out, not in: cancelled
        document = run_sweep(load_sweep(spec, tmp_path / "out"), lines.append, cluster=cluster, prepare_fn=refused)
    assert [("report" in p, p.get("error")) for p in document["points"]] == [(True, None), (False, "loihi refused it")]
    assert lines[-2:] == [
        "point 2 (target=loihi, conversion=norm=max): failed [done 0, cached 0, failed 1, running 1, left 0; tasks "
        "0/1 done]: loihi refused it",
        "point 1 (target=reference, conversion=norm=max): done [done 1, cached 0, failed 1, running 0, left 0; tasks "
        "1/1 done]",
    ]


def test_a_missing_dask_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ClusterError, match=r"pip install 'neurodeploy\[cluster\]'"):
        cluster_module.connect(None)
