"""The Dask engine of an evaluation: its chunks run as tasks on a Dask cluster, local worker processes started
here (no set-up) or a running cluster given its address.

Each task carries its chunk of inputs and labels; the compiled artifact travels once to every worker as its
files' bytes (scattered, broadcast) and is written to a temporary folder there, so the workers need no shared file
system, only neurodeploy and the target's plugin installed. The sums come back and are merged in chunk order, as
:func:`~.runner.simulate_chunks` does, so the numbers equal a single-process run's. A task whose worker dies is
run again by the scheduler (``distributed.scheduler.allowed-failures``, default 3); a task that raises is retried
once (``retries=1``); each chunk's result is taken once, from its own future, so a rerun is never counted twice.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import ClusterError, NeurodeployError
from neurodeploy.evaluation.runner import Job, Runner, _single_threaded_blas
from neurodeploy.evaluation.statistics import Sums

ENGINES = ("local", "dask")
"""The engines a chunk runs on: local processes (:func:`~.runner.simulate_chunks`) or a Dask cluster."""
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a cluster's scheduler before giving up."""
INSTALL = "pip install 'neurodeploy[cluster]'"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"the dask engine needs dask and distributed; install them with {INSTALL}") from None
    return distributed


@dataclass(frozen=True)
class ArtifactFiles:
    """A compiled artifact's files, as bytes by relative path, and their digest (the folder's name on workers)."""

    digest: str
    files: dict[str, bytes]

    @classmethod
    def of(cls, root: Path) -> ArtifactFiles:
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        digest = hashlib.sha256()
        for name, data in files.items():
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return cls(digest.hexdigest(), files)


class Cluster:
    """A connected Dask client, made by :func:`connect` before any work; ``address`` is what errors name."""

    def __init__(self, client: Any, address: str, local: Any = None) -> None:
        self.client, self.address, self._local = client, address, local

    def close(self) -> None:
        self.client.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def simulate(self, job: Job, chunks: list[tuple[int, int]], progress: Callable[[int, int], None] | None) -> Sums:
        """Run every chunk of ``job`` as a task and merge the sums in chunk order (see the module)."""
        distributed = _import_distributed()
        x = job.inputs
        if isinstance(x, Path):
            raise TypeError("a cluster job carries its inputs as an array")
        try:
            files = self.client.scatter(ArtifactFiles.of(job.artifact), broadcast=True, hash=False)
            futures = [
                self.client.submit(
                    _run_chunk,
                    files,
                    replace(job, inputs=x[start:stop], labels=job.labels[start:stop], offset=start),
                    pure=False,
                    retries=1,
                )
                for start, stop in chunks
            ]
        except OSError as exc:
            raise ClusterError(f"the Dask cluster at {self.address} went away: {exc}") from None
        sizes = {future.key: stop - start for future, (start, stop) in zip(futures, chunks)}
        done, n = 0, chunks[-1][1]
        for future in distributed.as_completed(futures):
            if future.status == "finished" and progress is not None:
                done += sizes[future.key]
                progress(done, n)
        total = Sums()
        for (start, stop), future in zip(chunks, futures):
            total.merge(self._result(future, start, stop))
        return total

    def _result(self, future: Any, start: int, stop: int) -> Sums:
        """The chunk's sums; a worker's error names the chunk and the cluster (a NeurodeployError keeps its type)."""
        try:
            result: Sums = future.result()
        except NeurodeployError as exc:
            raise type(exc)(f"samples {start}..{stop - 1} on the Dask cluster at {self.address}: {exc}") from None
        except Exception as exc:  # a worker that died too often (KilledWorker), a lost connection, a bug there
            raise ClusterError(
                f"samples {start}..{stop - 1} failed on the Dask cluster at {self.address}: {type(exc).__name__}: {exc}"
            ) from None
        return result


def connect(address: str | None, workers: int | None = None, timeout: float = CONNECT_TIMEOUT) -> Cluster:
    """A client of the Dask scheduler at ``address`` (``tcp://HOST:PORT``), or of a cluster of ``workers`` local
    processes (default: one per CPU) started here when ``address`` is None. An unreachable address is a
    :class:`ClusterError` naming it, raised within ``timeout`` seconds."""
    distributed = _import_distributed()
    if address is None:
        with _single_threaded_blas():  # the worker processes read these when they start
            local = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
        return Cluster(distributed.Client(local), f"local ({len(local.workers)} workers)", local)
    try:
        client = distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s: {reason}") from None
    return Cluster(client, address)


_FOLDERS: dict[str, Path] = {}
"""The artifacts written on this worker, by digest."""
_RUNNERS: dict[tuple[str, str | None], Runner] = {}
"""This worker's runner, by artifact digest and mode: the artifact is loaded once per worker (the latest only)."""


def _artifact_folder(files: ArtifactFiles) -> Path:
    folder = _FOLDERS.get(files.digest)
    if folder is None:
        top = Path(tempfile.mkdtemp(prefix="neurodeploy-worker-"))
        atexit.register(shutil.rmtree, top, ignore_errors=True)
        folder = top / "artifact"
        for name, data in files.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        _FOLDERS[files.digest] = folder
    return folder


def _run_chunk(files: ArtifactFiles, job: Job) -> Sums:
    """A task: the chunk ``job`` carries, on this worker's runner of the artifact."""
    job = replace(job, artifact=_artifact_folder(files))
    runner = _RUNNERS.get((files.digest, job.mode))
    if runner is None:
        _RUNNERS.clear()  # a sweep's next point: the last one's network is not needed again
        runner = _RUNNERS[(files.digest, job.mode)] = Runner(job)
    x = np.asarray(job.inputs)
    return runner.use(job).run((0, len(x)))
