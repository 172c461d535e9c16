"""The fuzz campaign: a pool of long-lived worker processes, a per-case wall-clock timeout, the summary table, and
every finding saved so that one command replays it.

Long run (the issue's >= 10,000 cases)::

    .venv/bin/python -m tests.fuzz.harness --cases 10000 --workers 2 --seed 1 --out fuzz-out

Replay a saved case (``--debug`` adds neurodeploy's traceback)::

    .venv/bin/python -m tests.fuzz.harness --replay fuzz-out/cases/<case folder> [--debug]

The output folder holds ``summary.json``, ``results.jsonl`` (one line per case), ``bases/`` (the artifacts the
artifact and input mutators start from) and ``cases/<index>-<class>-<mutator>/`` for every case that is neither
``ok`` nor ``error``: ``case.json`` (mutator, seed, commands, outcome, output) and ``files/`` (the mutated inputs
as laid out in its sandbox, without the canaries; FIFOs are written as ``NAME.fifo`` placeholders).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from . import mutators, seeds
from .sandbox import Case, Dir, Fifo, Link
from .worker import CLASSES, FAILURES, _remove, serve

PRELOAD = [
    "onnx",
    "numpy",
    "zipfile",
    "onnxruntime",  # reads /etc/os-release when imported
    "neurodeploy.cli",
    "neurodeploy.compiler",
    "neurodeploy.artifact",
    "neurodeploy.evaluate",
    "neurodeploy_loihi",
    "neurodeploy_speck",
]
PYTHON = ".venv/bin/python"


@dataclass
class Settings:
    workers: int = 2
    timeout: float = 60.0  # seconds per case, from the moment its sandbox is ready
    memory: int = 6 << 30  # RLIMIT_AS of each worker
    entry: str = "neurodeploy.cli:main"
    keep_sandboxes: bool = False
    quiet: bool = False

    def worker_settings(self) -> dict[str, Any]:
        preload = [m for m in PRELOAD if _importable(m)]
        return {
            "memory": self.memory,
            "entry": self.entry,
            "preload": preload,
            "warm_up": self.entry == "neurodeploy.cli:main",
            "keep_sandboxes": self.keep_sandboxes,
        }


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# --- the pool ------------------------------------------------------------------------------------------------------


class _Slot:
    def __init__(self, index: int, home: Path) -> None:
        self.index, self.home = index, home
        self.process: mp.process.BaseProcess | None = None
        self.conn = None
        self.job: tuple | None = None
        self.deadline = 0.0
        self.started = 0.0
        self.respawns = 0
        self.case: dict | None = None  # the running case's description, once the worker has built it


class Pool:
    """Worker processes (spawned, so each imports neurodeploy itself), each with its own home folder."""

    def __init__(self, settings: Settings, home: Path, bases: Path | None) -> None:
        self.settings, self.home, self.bases = settings, home, bases
        self.context = mp.get_context("spawn")
        self.slots = [_Slot(i, home / f"w{i}") for i in range(settings.workers)]

    def _start(self, slot: _Slot) -> None:
        parent, child = self.context.Pipe()
        slot.process = self.context.Process(
            target=serve, args=(child, str(slot.home), self.settings.worker_settings()), daemon=True
        )
        slot.process.start()
        child.close()
        slot.conn = parent
        slot.job = None

    def _await_ready(self, slot: _Slot, limit: float = 300.0) -> None:
        if not slot.conn.poll(limit):
            raise RuntimeError(f"worker {slot.index} did not start within {limit:.0f} s")
        message = slot.conn.recv()
        if message[0] != "ready":
            raise RuntimeError(f"worker {slot.index} said {message!r} instead of ready")

    def start(self) -> None:
        for slot in self.slots:
            self._start(slot)
        for slot in self.slots:
            self._await_ready(slot)

    def restart(self, slot: _Slot) -> None:
        self.kill(slot)
        slot.respawns += 1
        self._start(slot)
        self._await_ready(slot)

    def kill(self, slot: _Slot) -> None:
        if slot.process is not None and slot.process.is_alive():
            slot.process.kill()
        if slot.process is not None:
            slot.process.join(10)
        if slot.conn is not None:
            slot.conn.close()

    def stop(self) -> None:
        for slot in self.slots:
            try:
                if slot.process is not None and slot.process.is_alive():
                    slot.conn.send(("stop",))
                    slot.process.join(5)
            except (OSError, EOFError):
                pass
            self.kill(slot)

    def prepare(self, jobs: list[tuple[str, list[str], Path]]) -> dict[str, dict]:
        """Run setup commands (compiling the base artifacts) on the workers, unwatched; returns the runs."""
        pending, done = list(jobs), {}
        busy: dict[int, str] = {}
        while pending or busy:
            for slot in self.slots:
                if slot.index not in busy and pending:
                    key, argv, cwd = pending.pop(0)
                    slot.conn.send(("prepare", key, argv, str(cwd)))
                    busy[slot.index] = key
            ready = wait([self.slots[i].conn for i in busy], timeout=600)
            if not ready:
                raise RuntimeError(f"preparing {sorted(busy.values())} took more than 600 s")
            for conn in ready:
                slot = next(s for s in self.slots if s.conn is conn)
                try:
                    _, key, run = conn.recv()
                except EOFError:
                    key, run = busy[slot.index], {"status": None, "err": "worker died", "out": ""}
                    self.restart(slot)
                done[key] = run
                del busy[slot.index]
        return done

    def run(
        self,
        jobs: list[tuple[int, str, int, Case | None]],
        on_result: Callable[[int, dict], None],
        debug: bool = False,
    ) -> None:
        """Run ``(index, mutator, seed, case)`` jobs; ``on_result(index, result)`` for each, hangs and crashes
        included (the worker is then replaced)."""
        pending = list(reversed(jobs))
        timeout = self.settings.timeout
        while pending or any(slot.job is not None for slot in self.slots):
            now = time.monotonic()
            for slot in self.slots:
                if slot.job is None and pending:
                    index, name, seed, case = pending.pop()
                    root = slot.home / "cases" / str(index)
                    slot.job = (index, name, seed, case, root)
                    slot.case = None
                    slot.started = now
                    slot.deadline = now + timeout + 120  # building the case may take a while; then the timeout
                    bases = str(self.bases) if self.bases else None
                    slot.conn.send(("case", index, name, seed, str(root), bases, case, debug))
            busy = [slot for slot in self.slots if slot.job is not None]
            wait_for = max(0.05, min(slot.deadline for slot in busy) - time.monotonic()) if busy else 0.05
            wait([slot.conn for slot in busy] + [slot.process.sentinel for slot in busy], timeout=wait_for)
            for slot in busy:
                dead = False
                try:
                    while slot.conn.poll():
                        message = slot.conn.recv()
                        if message[0] == "started":
                            slot.deadline = time.monotonic() + timeout
                            slot.case = message[2]
                        elif message[0] == "done":
                            on_result(message[1], message[2])
                            slot.job = None
                            break
                except (EOFError, OSError):  # the pipe closed: the worker is gone
                    dead = True
                if slot.job is None:
                    continue
                if dead or not slot.process.is_alive():
                    slot.process.join(5)
                    code = slot.process.exitcode
                    self._lost(
                        slot,
                        "crash",
                        f"worker died (exit code {code}, signal {-code if code and code < 0 else None})",
                        on_result,
                    )
                elif time.monotonic() > slot.deadline:
                    self._lost(slot, "hang", f"no result within {timeout:.0f} s; the worker was killed", on_result)

    def _lost(self, slot: _Slot, cls: str, detail: str, on_result: Callable[[int, dict], None]) -> None:
        index, _, _, _, root = slot.job
        seconds = round(time.monotonic() - slot.started, 1)
        self.restart(slot)
        result = {
            "class": cls,
            "detail": detail,
            "findings": [(cls, detail)],
            "runs": [],
            "seconds": seconds,
            "case": slot.case,
        }
        slot.job = None
        _remove(root)
        on_result(index, result)


# --- the campaign ------------------------------------------------------------------------------------------------


def prepare_bases(pool: Pool, folder: Path, quiet: bool) -> list[str]:
    """Compile every base artifact into ``folder``; return the names that failed (their mutators skip them)."""
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    jobs = []
    corpus = seeds.corpus()
    for base in seeds.BASES:
        if base.seed not in corpus:
            continue
        model = models / f"{base.seed.replace('/', '_')}.onnx"
        model.write_bytes(corpus[base.seed].data)
        out = folder / base.name
        _remove(out)
        jobs.append((base.name, seeds.base_argv(base, model, out), folder))
    done = pool.prepare(jobs)
    failed = [name for name, run in done.items() if run.get("status") != 0]
    for name in failed:
        _say(quiet, f"base artifact {name} did not compile: {done[name].get('err', '')[-300:]!r}")
    return failed


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:60]


def save_files(case: Case, folder: Path) -> None:
    """The case's files as laid out in its sandbox (FIFOs as ``NAME.fifo`` placeholders)."""
    for rel, spec in case.files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, bytes):
            path.write_bytes(spec)
        elif isinstance(spec, Link):
            if not os.path.lexists(path):
                os.symlink(spec.target, path)
        elif isinstance(spec, Fifo):
            path.with_name(path.name + ".fifo").write_bytes(b"")
        elif isinstance(spec, Dir):
            path.mkdir(exist_ok=True)


@dataclass
class Campaign:
    out: Path
    seed: int
    results: dict[int, dict] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        return Counter(r["class"] for r in self.results.values())

    def failures(self) -> list[tuple[int, dict]]:
        return sorted((i, r) for i, r in self.results.items() if r["class"] in FAILURES)

    def table(self) -> str:
        by = defaultdict(Counter)
        for r in self.results.values():
            by[r["mutator"]][r["class"]] += 1
        present = [c for c in CLASSES if any(c in counts for counts in by.values())]
        width = max([len(m) for m in by] + [8])
        lines = [f"{'mutator':{width}}  " + "  ".join(f"{c:>9}" for c in present) + "      all"]
        for name in sorted(by):
            row = by[name]
            lines.append(
                f"{name:{width}}  "
                + "  ".join(f"{row.get(c, 0) or '.':>9}" for c in present)
                + f"  {sum(row.values()):>7}"
            )
        total = self.counts
        lines.append(
            f"{'total':{width}}  " + "  ".join(f"{total.get(c, 0):>9}" for c in present) + f"  {sum(total.values()):>7}"
        )
        return "\n".join(lines)

    def groups(self) -> list[dict]:
        """Failures grouped by class and their message with numbers, paths and quoted names blanked out."""
        grouped: dict[tuple[str, str], list[int]] = defaultdict(list)
        for index, r in self.failures():
            grouped[(r["class"], normalize(r["detail"]))].append(index)
        out = []
        for (cls, _), indices in sorted(grouped.items(), key=lambda kv: (CLASSES.index(kv[0][0]), -len(kv[1]))):
            first = self.results[indices[0]]
            out.append(
                {
                    "class": cls,
                    "count": len(indices),
                    "message": first["detail"],
                    "mutators": sorted(
                        Counter(self.results[i]["mutator"] for i in indices).items(), key=lambda kv: -kv[1]
                    ),
                    "example": first.get("saved"),
                }
            )
        return out

    def report(self, limit: int = 30) -> str:
        lines = [self.table(), ""]
        total = len(self.results)
        rate = total / self.seconds if self.seconds else 0.0
        lines.append(f"{total} cases in {self.seconds:.0f} s ({rate:.2f} cases/s); seed {self.seed}; output {self.out}")
        if self.skipped:
            lines.append(f"base artifacts that did not compile (their cases use the others): {self.skipped}")
        groups = self.groups()
        if groups:
            lines.append(f"\n{len(groups)} distinct finding(s):")
        for g in groups[:limit]:
            lines.append(f"  [{g['class']}] x{g['count']} {g['message'][:220]}")
            lines.append(f"      mutators: {', '.join(f'{m} ({n})' for m, n in g['mutators'][:4])}")
            if g["example"]:
                lines.append(f"      replay: {PYTHON} -m tests.fuzz.harness --replay {g['example']}")
        slow = sorted(self.results.items(), key=lambda kv: -kv[1].get("seconds", 0))[:3]
        lines.append("slowest: " + ", ".join(f"#{i} {r['mutator']} {r.get('seconds', 0):.1f} s" for i, r in slow))
        return "\n".join(lines)


def normalize(text: str) -> str:
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"(/[\w.+-]+)+", "PATH", text)
    text = re.sub(r"\d+(\.\d+)?(e[+-]?\d+)?", "#", text)
    return text[:160]


def run_campaign(
    cases: int,
    seed: int,
    out: Path,
    settings: Settings | None = None,
    names: list[str] | None = None,
    progress_every: int = 250,
) -> Campaign:
    """Run ``cases`` scheduled cases (every mutator in proportion to its weight) and save the findings in ``out``."""
    settings = settings or Settings()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="neurodeploy-fuzz-")).resolve()
    bases = out / "bases"
    campaign = Campaign(out, seed)
    pool = Pool(settings, home, bases)
    results_file = (out / "results.jsonl").open("w")
    try:
        pool.start()
        campaign.skipped = prepare_bases(pool, bases, settings.quiet)
        names = names or list(mutators.MUTATORS)
        if not mutators.available_bases(bases):
            names = [n for n in names if not mutators.MUTATORS[n].needs_bases]
        jobs = [(i, name, s, None) for i, (name, s) in enumerate(mutators.schedule(seed, cases, names))]
        campaign.started = time.monotonic()

        def on_result(index: int, result: dict) -> None:
            _, name, case_seed, _ = jobs[index]
            result.update(index=index, mutator=name, seed=case_seed)
            if result["class"] in FAILURES:
                result["saved"] = str(save_case(out, result, bases))
            campaign.results[index] = result
            slim = {k: result.get(k) for k in ("index", "mutator", "seed", "class", "detail", "seconds", "saved")}
            results_file.write(json.dumps(slim) + "\n")
            results_file.flush()
            done = len(campaign.results)
            if done % progress_every == 0 or result["class"] in FAILURES:
                elapsed = time.monotonic() - campaign.started
                note = f" {result['class']}: {name} {result['detail'][:150]}" if result["class"] in FAILURES else ""
                _say(settings.quiet, f"[{done}/{len(jobs)} {elapsed:.0f} s]{note}")

        pool.run(jobs, on_result)
    finally:
        campaign.seconds = time.monotonic() - campaign.started
        pool.stop()
        results_file.close()
        shutil.rmtree(home, ignore_errors=True)
    summary = {
        "seed": seed,
        "cases": len(campaign.results),
        "seconds": round(campaign.seconds, 1),
        "counts": dict(campaign.counts),
        "groups": campaign.groups(),
        "skipped_bases": campaign.skipped,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return campaign


def save_case(out: Path, result: dict, bases: Path) -> Path:
    folder = out / "cases" / f"{result['index']:06d}-{result['class']}-{_slug(result['mutator'])}"
    _remove(folder)
    (folder / "files").mkdir(parents=True)
    try:  # the same (mutator, seed) builds the same files; the sandbox root only shows in absolute paths
        case = mutators.make_case(result["mutator"], result["seed"], folder / "files", bases)
        save_files(case, folder / "files")
    except Exception as exc:
        (folder / "files" / "NOT-REBUILT.txt").write_text(f"{type(exc).__name__}: {exc}\n")
    record = {
        "mutator": result["mutator"],
        "seed": result["seed"],
        "class": result["class"],
        "detail": result["detail"],
        "findings": result.get("findings"),
        "case": result.get("case"),
        "runs": result.get("runs"),
        "trace": result.get("trace"),
        "bases": str(bases),
        "replay": f"{PYTHON} -m tests.fuzz.harness --replay {shlex.quote(str(folder))}",
    }
    (folder / "case.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    return folder


def replay(folder: Path, debug: bool, settings: Settings) -> dict:
    """Run one saved case again (rebuilt from its mutator and seed)."""
    record = json.loads((folder / "case.json").read_text())
    return run_one(record["mutator"], record["seed"], Path(record["bases"]), debug, settings)


def run_one(name: str, seed: int, bases: Path, debug: bool, settings: Settings) -> dict:
    """Run the case ``(name, seed)`` on one worker (compiling the base artifacts into ``bases`` if missing)."""
    home = Path(tempfile.mkdtemp(prefix="neurodeploy-fuzz-replay-")).resolve()
    settings.workers = 1
    pool = Pool(settings, home, bases if bases.is_dir() else None)
    results: dict[int, dict] = {}
    try:
        pool.start()
        if not bases.is_dir():
            prepare_bases(pool, bases, settings.quiet)
        pool.run([(0, name, seed, None)], lambda i, r: results.__setitem__(i, r), debug=debug)
    finally:
        pool.stop()
        shutil.rmtree(home, ignore_errors=True)
    return results[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.harness", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("fuzz-out"))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--memory-gib", type=float, default=6.0, help="address-space limit of each worker")
    parser.add_argument("--only", help="comma-separated mutators or families (e.g. proto,artifact.npz)")
    parser.add_argument("--list", action="store_true", help="list the mutators and their weights")
    parser.add_argument("--replay", type=Path, metavar="CASE_FOLDER", help="run one saved case again")
    parser.add_argument("--case", metavar="MUTATOR:SEED", help="run one case (bases in --out/bases)")
    parser.add_argument("--debug", action="store_true", help="with --replay or --case: pass --debug (tracebacks)")
    args = parser.parse_args(argv)
    settings = Settings(workers=args.workers, timeout=args.timeout, memory=int(args.memory_gib * (1 << 30)))
    if args.list:
        for m in mutators.MUTATORS.values():
            sys.stdout.write(f"{m.name:28s} weight {m.weight}\n")
        return 0
    if args.replay or args.case:
        if args.case:
            name, _, seed = args.case.rpartition(":")
            if name not in mutators.MUTATORS or not seed.isdigit():
                parser.error(f"--case {args.case!r}: give MUTATOR:SEED with a mutator from --list")
            result = run_one(name, int(seed), (args.out / "bases").resolve(), args.debug, settings)
        else:
            result = replay(args.replay, args.debug, settings)
        case = result.get("case") or {}
        sys.stdout.write(f"class: {result['class']}\ndetail: {result['detail']}\nnote: {case.get('note')}\n")
        for finding in result.get("findings", []):
            sys.stdout.write(f"finding: {finding}\n")
        for run in result.get("runs", []):
            sys.stdout.write(
                f"\n$ neurodeploy {shlex.join(run['argv'])}  # status {run['status']}, {run['seconds']} s\n"
            )
            sys.stdout.write(run["out"] + run["err"])
        if result.get("trace"):
            sys.stdout.write(result["trace"])
        return 0 if result["class"] not in FAILURES else 1
    names = None
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        names = [n for n in mutators.MUTATORS if n in wanted or mutators.MUTATORS[n].family in wanted]
        if not names:
            parser.error(f"--only {args.only!r} names no mutator (see --list)")
    campaign = run_campaign(args.cases, args.seed, args.out, settings, names)
    sys.stdout.write(campaign.report() + "\n")
    return 1 if campaign.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
