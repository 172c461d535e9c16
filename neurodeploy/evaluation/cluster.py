"""The Dask engine of an evaluation: its chunks run as tasks on a Dask cluster, local worker processes started here (no
set-up) or a running cluster given its address.

Each task carries its chunk of inputs and labels; the compiled artifact travels as its files' bytes, the result of
one task that every chunk of the job depends on (:func:`artifact`), and is written to a temporary folder on each
worker that runs a chunk, so the workers need no shared file system, only neurodeploy and the target's plugin
installed. The bytes are a task's result, not scattered data: when the last worker holding them dies the scheduler
rebuilds them from the task, where scattered data would be lost with it and fail the job. The sums come back and are
merged in chunk order, as :func:`~.runner.simulate_chunks` and the local engine (:mod:`~.local`) do, so the numbers
equal a single-process run's. A task whose worker dies is run again by the scheduler
(``distributed.scheduler.allowed-failures``, default 3); a task that raises is retried once (``retries=1``); each
chunk's result is taken once, from its own future, so a rerun is never counted twice.

A :class:`Batch` holds several jobs' chunks as one flat set of tasks (a sweep's points, data shard x point): each
job's tasks are submitted as soon as it is compiled, and each job's sums are merged in chunk order once its last
chunk is in; a chunk that fails for good fails its job alone.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import ClusterError, NeurodeployError
from neurodeploy.evaluation.local import JobBatch, run_batch
from neurodeploy.evaluation.runner import Job, _single_threaded_blas, cached_runner
from neurodeploy.evaluation.statistics import Sums

ENGINES = ("local", "dask")
"""The engines a chunk runs on: local processes (:mod:`~.local`) or a Dask cluster."""
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

    def batch(self, progress: Callable[[Any, int, int], None] | None = None) -> Batch:
        return Batch(self, progress)

    def simulate(self, job: Job, chunks: list[tuple[int, int]], progress: Callable[[int, int], None] | None) -> Sums:
        """Run every chunk of ``job`` as a task and merge the sums in chunk order (see the module)."""
        return run_batch(self.batch, job, chunks, progress)

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


@dataclass
class _Submitted:
    """One job's tasks: its chunks and their futures, in chunk order, and how many are still out."""

    chunks: list[tuple[int, int]]
    futures: list[Any]
    files: Any
    left: int
    done: int = 0


class Batch(JobBatch):
    """Several jobs' chunks as one flat set of tasks on a cluster (the points of a sweep). Each job is submitted as
    soon as it is ready, whatever the others are doing, and the scheduler hands the tasks to idle workers in the
    order they were submitted, so no worker waits for a job's last chunk before starting the next job's first.

    A job's sums are merged in chunk order once its last chunk is in (:meth:`results`), as
    :func:`~.runner.simulate_chunks` merges them, so each job's numbers equal a single-process run's. A chunk whose
    worker dies is rerun by the scheduler and its future still finishes once: it is counted once. A chunk that fails
    for good ends its job alone, with the error naming its samples; that job's other tasks are cancelled and the
    other jobs go on. ``progress(tag, samples done, samples)`` is called as each chunk comes back."""

    def __init__(self, cluster: Cluster, progress: Callable[[Any, int, int], None] | None = None) -> None:
        super().__init__(progress)
        self.cluster = cluster
        self._completed = _import_distributed().as_completed()
        self._owner: dict[str, tuple[Any, int]] = {}

    def submit(self, tag: Any, job: Job, chunks: list[tuple[int, int]]) -> None:
        """Send the job's artifact to every worker and its chunks as tasks; ``tag`` names the job in :meth:`results`."""
        if tag in self._jobs:
            raise ValueError(f"job {tag!r} is already submitted")
        x = job.inputs
        client = self.cluster.client
        try:
            files = artifact(client, job.artifact)
            futures = [
                client.submit(
                    _run_chunk,
                    files,
                    replace(job, inputs=x[start:stop], labels=job.labels[start:stop], offset=start),
                    pure=False,
                    retries=1,
                )
                for start, stop in chunks
            ]
        except OSError as exc:
            raise ClusterError(f"the Dask cluster at {self.cluster.address} went away: {exc}") from None
        self._jobs[tag] = _Submitted(chunks, futures, files, len(futures))
        for k, future in enumerate(futures):
            self._owner[future.key] = (tag, k)
        self.tasks += len(futures)
        self._completed.update(futures)

    def _ready(self, block: bool) -> list[Any]:
        if not block and not self._completed.has_ready():
            return []
        return list(self._completed.next_batch(block=True))

    def _take(self, future: Any) -> tuple[Any, Sums | NeurodeployError] | None:
        owner = self._owner.pop(future.key, None)
        entry = None if owner is None else self._jobs.get(owner[0])
        if owner is None or entry is None:
            return None  # a task of a job that already failed, cancelled
        tag, k = owner
        start, stop = entry.chunks[k]
        if future.status != "finished":
            del self._jobs[tag]
            self._cancel(entry)
            try:
                self.cluster._result(future, start, stop)
            except NeurodeployError as exc:
                return tag, exc
            return tag, ClusterError(f"samples {start}..{stop - 1} ended as {future.status}")  # pragma: no cover
        if not self._counted(tag, entry, stop - start):
            return None
        del self._jobs[tag]
        total = Sums()
        try:
            for (start, stop), chunk in zip(entry.chunks, entry.futures):
                total.merge(self.cluster._result(chunk, start, stop))
        except NeurodeployError as exc:  # pragma: no cover - every future here has finished
            return tag, exc
        return tag, total

    def _cancel(self, entry: _Submitted) -> None:
        try:
            self.cluster.client.cancel([f for f in entry.futures if not f.done()])
        except OSError:  # pragma: no cover - the cluster went away; its error comes from the results
            pass

    def cancel(self) -> None:
        """Cancel every task still out (an interrupted sweep or evaluation)."""
        for entry in self._jobs.values():
            self._cancel(entry)
        self._jobs.clear()


def _held(files: ArtifactFiles) -> ArtifactFiles:
    """A task whose result is the artifact's files (see :func:`artifact`)."""
    return files


def artifact(client: Any, root: Path) -> Any:
    """A future of the artifact's files at ``root`` that the cluster can rebuild: the bytes are in its task, so a
    worker that dies holding the last copy costs a rerun of the task, not the job (scattered data is lost with its
    worker). The bytes sit in the scheduler's task while the future lives, as they would pass through it
    scattered; distributed's warning about a large graph is expected here and silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph")
        return client.submit(_held, ArtifactFiles.of(root), pure=False)


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
    return cached_runner((files.digest, job.mode), job).run((0, len(np.asarray(job.inputs))))
