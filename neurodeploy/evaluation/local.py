"""The local engine of an evaluation: its chunks run in worker processes spawned on this machine, started once for
an evaluation or a whole sweep.

A :class:`LocalPool` is a set of spawned processes (one BLAS and emulator thread each); a :class:`LocalBatch` holds
several jobs' chunks on it as one flat set of tasks (a sweep's points, data shard x point), as
:class:`~.cluster.Batch` does on a Dask cluster: each job's tasks are submitted as soon as it is compiled, a worker
takes the next chunk whatever job it belongs to, and each job's sums are merged in chunk order once its last chunk
is in, so the numbers equal a single-process run's. Each task carries its chunk of inputs and labels; the artifact
is read from its folder here (the workers share this machine's files) and loaded once per worker while it is among
the last :data:`~.runner.RUNNERS_KEPT` used.

A worker process that dies (killed, out of memory) breaks the pool, every chunk still out with it: the pool is
started again and those chunks are submitted again, each result taken once, so nothing is counted twice. Each task
leaves a mark when it starts, so a death is counted against the chunks that were running, not those still queued;
a chunk that was running at :data:`WORKER_DEATHS` deaths fails its job with an error naming its samples, and the
other jobs go on. (A ``multiprocessing.Pool`` waits for ever on a task whose worker was killed.)
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.errors import ClusterError, NeurodeployError
from neurodeploy.evaluation.runner import Job, _single_threaded_blas, cached_runner
from neurodeploy.evaluation.statistics import Sums

WORKER_DEATHS = 3
"""Deaths of worker processes a chunk may be running at before its job fails (Dask's ``allowed-failures``
default)."""


def _run_chunk(key: str, job: Job, mark: str) -> Sums:
    """A task: the chunk ``job`` carries, on this worker's runner of the artifact (``key`` names the job), once its
    start is marked (the file ``mark``)."""
    Path(mark).touch()
    return cached_runner((key, job.mode), job).run((0, len(np.asarray(job.inputs))))


def run_batch(
    batch_of: Callable[..., Any], job: Job, chunks: list[tuple[int, int]], progress: Callable[[int, int], None] | None
) -> Sums:
    """One job's chunks on a batch of an engine (``batch_of(progress)``: :meth:`LocalPool.batch`,
    :meth:`~.cluster.Cluster.batch`), its sums merged in chunk order; its tasks cancelled if it is interrupted."""
    batch = batch_of(None if progress is None else lambda tag, done, n: progress(done, n))
    try:
        batch.submit(0, job, chunks)
        for _, result in batch.results(block=True):
            if isinstance(result, NeurodeployError):
                raise result
            return result
    except BaseException:
        batch.cancel()
        raise
    raise AssertionError("the job's tasks ended without a result")  # pragma: no cover


class JobBatch:
    """What the engines' batches share: the jobs still out by tag, the tasks submitted and done, and
    :meth:`results`, over an engine's ``_ready`` (the futures that ended) and ``_take`` (a job's end, if that
    future was its last)."""

    def __init__(self, progress: Callable[[Any, int, int], None] | None) -> None:
        self.progress = progress
        self._jobs: dict[Any, Any] = {}
        self.tasks = 0
        """The tasks submitted so far (a chunk submitted again is not counted again)."""
        self.tasks_done = 0
        """The tasks whose results are in (each chunk once)."""

    def results(self, block: bool, until: int = 0) -> Iterator[tuple[Any, Sums | NeurodeployError]]:
        """(tag, the job's sums merged in chunk order, or the error of its failed chunk) for each job as it ends:
        waiting (``block``) until at most ``until`` jobs are still out, or without waiting, those whose tasks are
        all in already."""
        while len(self._jobs) > until:
            done = self._ready(block)
            if not done:
                return
            for future in done:
                ended = self._take(future)
                if ended is not None:
                    yield ended

    def _ready(self, block: bool) -> list[Any]:
        raise NotImplementedError

    def _take(self, future: Any) -> tuple[Any, Sums | NeurodeployError] | None:
        raise NotImplementedError

    def _counted(self, tag: Any, entry: Any, samples: int) -> bool:
        """Count a chunk's result of ``samples`` in; whether it was the job's last."""
        entry.left -= 1
        entry.done += samples
        self.tasks_done += 1
        if self.progress is not None:
            self.progress(tag, entry.done, entry.chunks[-1][1])
        return not entry.left


class LocalPool:
    """``workers`` spawned processes, started when the first task is submitted and again after one dies."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a pool needs at least one worker, got {workers}")
        self.workers = workers
        self.address = f"local ({workers} worker processes)"
        """What errors name, as a cluster's address."""
        self.starts = 0
        """How many times the processes were started (more than one: a worker died)."""
        self._executor: ProcessPoolExecutor | None = None
        self._marks: Path | None = None

    def mark(self) -> Path:
        """A new path for a task's start mark (see the module), in a folder removed when the pool closes."""
        if self._marks is None:
            self._marks = Path(tempfile.mkdtemp(prefix="neurodeploy-pool-"))
        return self._marks / uuid.uuid4().hex

    def submit(self, fn: Callable[..., Any], *args: Any) -> tuple[Future, int]:
        """The future of ``fn(*args)`` on a worker, and the start of the pool it runs on (see :meth:`restart`)."""
        for _ in range(2):
            if self._executor is None:
                self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
                self.starts += 1
            try:
                with _single_threaded_blas():  # a process spawned for this task reads them when it starts
                    return self._executor.submit(fn, *args), self.starts
            except BrokenProcessPool:  # a death not yet seen through a result: start again
                self._shut(kill=True)
        raise ClusterError(f"the {self.address} engine's processes died as they started")

    def restart(self, start: int) -> None:
        """Start the processes again after a death broke the pool of that ``start`` (once for all its futures)."""
        if start == self.starts and self._executor is not None:
            self._shut(kill=True)

    def batch(self, progress: Callable[[Any, int, int], None] | None = None) -> LocalBatch:
        return LocalBatch(self, progress)

    def simulate(self, job: Job, chunks: list[tuple[int, int]], progress: Callable[[int, int], None] | None) -> Sums:
        """Run every chunk of ``job`` on the workers and merge the sums in chunk order."""
        return run_batch(self.batch, job, chunks, progress)

    def _shut(self, kill: bool) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if kill:  # an interruption or a broken pool: what still runs is not waited for
            for process in list((getattr(executor, "_processes", None) or {}).values()):
                if process.is_alive():
                    process.kill()
        executor.shutdown(wait=True, cancel_futures=True)

    def close(self, kill: bool = False) -> None:
        self._shut(kill)
        if self._marks is not None:
            shutil.rmtree(self._marks, ignore_errors=True)
            self._marks = None

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.close(kill=kind is not None)


@dataclass
class _Job:
    """One job's chunks, the jobs that carry them, their sums as they come in, the worker deaths each was running
    at, the chunks still out and the samples done."""

    key: str
    chunks: list[tuple[int, int]]
    parts: list[Job]
    sums: list[Sums | None] = field(init=False)
    deaths: list[int] = field(init=False)
    left: int = field(init=False)
    done: int = 0
    futures: set[Future] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.sums, self.deaths, self.left = [None] * len(self.chunks), [0] * len(self.chunks), len(self.chunks)


class LocalBatch(JobBatch):
    """Several jobs' chunks as one flat set of tasks on a :class:`LocalPool`, with :class:`~.cluster.Batch`'s
    methods (see the module). ``progress(tag, samples done, samples)`` is called as each chunk comes back."""

    def __init__(self, pool: LocalPool, progress: Callable[[Any, int, int], None] | None = None) -> None:
        super().__init__(progress)
        self.pool = pool
        self._owner: dict[Future, tuple[Any, int, int, Path]] = {}
        self.task: Callable[[str, Job, str], Sums] = _run_chunk
        """What a worker runs for a chunk (a test may make it die)."""

    def submit(self, tag: Any, job: Job, chunks: list[tuple[int, int]]) -> None:
        """Submit the job's chunks, each carrying its inputs and labels; ``tag`` names the job in :meth:`results`."""
        if tag in self._jobs:
            raise ValueError(f"job {tag!r} is already submitted")
        x = job.inputs
        parts = [replace(job, inputs=x[a:b], labels=job.labels[a:b], offset=job.offset + a) for a, b in chunks]
        entry = self._jobs[tag] = _Job(uuid.uuid4().hex, chunks, parts)
        for k in range(len(chunks)):
            self._send(tag, entry, k)
        self.tasks += len(chunks)

    def _send(self, tag: Any, entry: _Job, k: int) -> None:
        mark = self.pool.mark()
        future, start = self.pool.submit(self.task, entry.key, entry.parts[k], str(mark))
        self._owner[future] = (tag, k, start, mark)
        entry.futures.add(future)

    def _ready(self, block: bool) -> list[Any]:
        done, _ = wait(list(self._owner), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        return list(done)

    def _take(self, future: Future) -> tuple[Any, Sums | NeurodeployError] | None:
        owner = self._owner.pop(future, None)
        if owner is None:
            return None  # a task of a job that failed while this result was on its way
        tag, k, start, mark = owner
        started = mark.exists()
        mark.unlink(missing_ok=True)
        entry = self._jobs.get(tag)
        if entry is None:
            return None  # a task of a job that already failed
        entry.futures.discard(future)
        first, stop = entry.chunks[k]
        samples = f"samples {first}..{stop - 1}"
        try:
            sums = future.result()
        except BrokenProcessPool:
            entry.deaths[k] += started  # a chunk still queued is not to blame
            if entry.deaths[k] >= WORKER_DEATHS:
                return self._fail(
                    tag,
                    ClusterError(
                        f"{samples} were running when a worker process died, {entry.deaths[k]} times, on the "
                        f"{self.pool.address} engine (killed, or out of memory?); try fewer --workers or a smaller "
                        "--batch-size"
                    ),
                )
            self.pool.restart(start)
            self._send(tag, entry, k)
            return None
        except NeurodeployError as exc:
            return self._fail(tag, type(exc)(f"{samples} on the {self.pool.address} engine: {exc}"))
        except Exception as exc:  # a bug in a worker: its message, with the chunk
            return self._fail(
                tag, ClusterError(f"{samples} failed on the {self.pool.address} engine: {type(exc).__name__}: {exc}")
            )
        entry.sums[k] = sums
        if not self._counted(tag, entry, stop - first):
            return None
        del self._jobs[tag]
        total = Sums()
        for part in entry.sums:
            assert part is not None
            total.merge(part)
        return tag, total

    def _fail(self, tag: Any, error: NeurodeployError) -> tuple[Any, NeurodeployError]:
        entry = self._jobs.pop(tag)
        self._cancel(entry)
        return tag, error

    def _cancel(self, entry: _Job) -> None:
        for future in entry.futures:
            future.cancel()
            owner = self._owner.pop(future, None)
            if owner is not None:
                owner[3].unlink(missing_ok=True)  # (a task that runs on leaves its mark to the pool's folder)
        entry.futures.clear()

    def cancel(self) -> None:
        """Cancel every task still out (an interrupted sweep or evaluation)."""
        for entry in self._jobs.values():
            self._cancel(entry)
        self._jobs.clear()
