"""The worker process: started once, it imports neurodeploy, limits its own memory, and then runs case after case
in-process (``neurodeploy.cli.main(argv)`` with stdout and stderr captured), each in a fresh sandbox, and
classifies the outcome.

Classes, worst first (``hang`` and ``crash`` are given by the parent, which watches the clock and the process):

=============  ==========================================================================================
``crash``      the worker died (a segfault, an abort, the kernel's OOM killer)
``hang``       the case ran past the wall-clock timeout; the worker was killed and replaced
``touched``    something outside the output changed: a canary modified or deleted, a file written, renamed or
               deleted outside ``cwd/``, temporary files left behind, an output path that was not a regular
               file (emulate) or artifact folder (compile) replaced
``escape``     a read outside the case's inputs: a canary (seen by the audit hook, or by its access time), an
               artifact file the manifest does not list, a path through a planted symlink, a system file;
               or canary bytes inside an output
``traceback``  Python traceback text in the output (or an exception that escaped ``main``)
``internal``   an ``internal error:`` line, or a nonzero status without an ``error:`` line
``nonfinite``  emulate exited 0 but its ``--output`` npz is missing or holds NaN/Inf
``control``    an unmutated control case did not succeed
``accepted``   exit 0 for input the case marks as to be refused (NaN weights or inputs, labels outside the
               classes, 10**9 steps, unsigned edits, ...); ``reject_or_warn`` cases pass with a ``warning:``
``harness``    the case could not be built (a bug in the mutator, not in neurodeploy)
``error``      a clean refusal: status 1 or 2 with an ``error:`` line and no traceback
``ok``         status 0
=============  ==========================================================================================
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from . import sandbox
from .mutators import make_case
from .sandbox import Case, Watch
from .seeds import corpus, inputs_for

CLASSES = [
    "crash",
    "hang",
    "touched",
    "escape",
    "traceback",
    "internal",
    "nonfinite",
    "control",
    "accepted",
    "harness",
    "error",
    "ok",
]
FAILURES = [c for c in CLASSES if c not in ("error", "ok")]
_ESCAPE_WORDS = ("read ",)


def _remove(path: Path) -> None:
    """Delete a sandbox, whatever a case left in it (read-only folders included); never follows symlinks."""

    def retry(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except OSError:
            pass

    if os.path.lexists(path):
        shutil.rmtree(path, onexc=retry) if sys.version_info >= (3, 12) else shutil.rmtree(path, onerror=retry)


class Worker:
    def __init__(self, home: Path, settings: dict[str, Any]) -> None:
        self.home = home
        self.settings = settings
        self.tmp = home / "tmp"
        self.capture = home / "capture.txt"
        self.watch = Watch(private=(str(self.capture), str(self.tmp)))
        entry = settings.get("entry", "neurodeploy.cli:main")
        module, _, name = entry.partition(":")
        self.main = getattr(importlib.import_module(module), name)

    # setup

    def setup(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(exist_ok=True)
        os.chdir(self.home)
        os.environ["TMPDIR"] = str(self.tmp)
        tempfile.tempdir = str(self.tmp)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for module in self.settings.get("preload", []):
            importlib.import_module(module)
        memory = int(self.settings.get("memory", 6 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        fsize = int(self.settings.get("file_size", 2 << 30))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
        sys.addaudithook(self.watch)

    def warm_up(self) -> None:
        """Compile and emulate a small model on every target and mode, and evaluate it, unwatched, so that lazy
        imports, JIT compilation and onnxruntime's first session happen before the first case."""
        if not self.settings.get("warm_up"):
            return
        root = self.home / "warm"
        _remove(root)
        root.mkdir()
        seed = corpus()["speck_cnn"]
        (root / "m.onnx").write_bytes(seed.data)
        np.savez(root / "x.npz", x=inputs_for(seed, 2), y=np.arange(2))
        os.chdir(root)
        try:
            modes = {"reference": ["snn", "ann"], "loihi": ["binary", "graded"], "speck": ["binned", "event"]}
            for target, names in modes.items():
                self.call(["compile", "m.onnx", "--target", target, "-o", target, "-q"])
                for mode in names:
                    self.call(["emulate", target, "--input", "x.npz", "--mode", mode, "-o", "y.npz", "-q"])
            self.call(["evaluate", "m.onnx", "--data", "x.npz", "-T", "1,2", "--workers", "1", "-q"])
        finally:
            os.chdir(self.home)
            _remove(root)

    # running one command

    def call(self, argv: list[str]) -> dict[str, Any]:
        """``main(argv)`` with Python- and descriptor-level output captured."""
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        root_logger = logging.getLogger()
        handlers, level = root_logger.handlers[:], root_logger.level
        py_out, py_err = io.StringIO(), io.StringIO()
        old_out, old_err = sys.stdout, sys.stderr
        escaped = ""
        started = time.perf_counter()
        with open(self.capture, "w+b") as cap:
            os.dup2(cap.fileno(), 1)
            os.dup2(cap.fileno(), 2)
            sys.stdout, sys.stderr = py_out, py_err
            try:
                status = self.main(list(argv))
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) or exc.code is None else 1
                status = 0 if status is None else status
            except BaseException:  # an exception main did not handle: a finding, recorded with its traceback
                status = None
                watching, self.watch.active = self.watch.active, False  # formatting reads source files
                escaped = traceback.format_exc()
                self.watch.active = watching
            finally:
                sys.stdout, sys.stderr = old_out, old_err
                root_logger.handlers[:] = handlers
                root_logger.setLevel(level)
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
            cap.seek(0)
            raw = cap.read(1 << 20).decode("utf-8", "replace")
        return {
            "argv": list(argv),
            "status": status,
            "out": py_out.getvalue()[-20000:],
            "err": (py_err.getvalue()[-20000:] + raw[-20000:] + escaped),
            "seconds": round(time.perf_counter() - started, 3),
        }

    # one case

    def run_case(self, case: Case, root: Path, debug: bool = False) -> dict[str, Any]:
        outputs = list(case.outputs)
        before = sandbox.snapshot(root, outputs)
        for rel in sandbox.CANARY_FILES:
            sandbox.sha256(root / rel)
            sandbox.age_atime(root / rel)
        canaries = sandbox.canary_state(root)
        for rel in sandbox.CANARY_FILES:  # canary_state read them: age them again, and record that atime
            sandbox.age_atime(root / rel)
        canaries = {rel: (os.lstat(root / rel).st_atime_ns, *canaries[rel][1:]) for rel in canaries}
        out_before = {rel: sandbox.output_state(root, rel) for rel in outputs}
        replaceable = {rel: sandbox.replaceable(root, rel, kind) for rel, kind in case.outputs.items()}
        tmp_before = set(os.listdir(self.tmp))

        runs = []
        os.chdir(root / "cwd")
        self.watch.start(root, case.unlisted, outputs)
        try:
            for argv in case.commands:
                run = self.call([*argv, "--debug"] if debug else argv)
                runs.append(run)
                if run["status"] != 0:
                    break
        finally:
            violations = self.watch.stop()
            os.chdir(self.home)

        canaries_after = sandbox.canary_state(root)
        touched, escape = [], []
        for v in violations:
            (escape if v.startswith(_ESCAPE_WORDS) else touched).append(v)
        changes, reads = sandbox.compare_canaries(canaries, canaries_after)
        touched += changes
        escape += reads
        touched += sandbox.compare(before, sandbox.snapshot(root, outputs))
        for rel in outputs:
            if not replaceable[rel] and sandbox.output_state(root, rel) != out_before[rel]:
                touched.append(f"replaced the output {rel}, which was not a {case.outputs[rel]} it may replace")
        left = sorted(set(os.listdir(self.tmp)) - tmp_before - {".ses"})  # .ses: onnxruntime's session id file
        if left:
            touched.append(f"left temporary files behind: {left[:5]}")
            for name in left:
                _remove(self.tmp / name)
        escape += sandbox.leaked_canary(root, outputs)

        result = classify(case, runs, touched, escape, root)
        result["violations"] = (touched + escape)[:20]
        return result

    def prepare(self, argv: list[str], cwd: Path) -> dict[str, Any]:
        os.chdir(cwd)
        try:
            return self.call(argv)
        finally:
            os.chdir(self.home)


# --- classification ----------------------------------------------------------------------------------------------


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def classify_run(run: dict[str, Any]) -> tuple[str, str]:
    """(class, the line that says why) of one command."""
    text = run["out"] + "\n" + run["err"]
    status = run["status"]
    if "Traceback (most recent call last)" in text:
        frames = [line for line in text.splitlines() if line and not line.startswith((" ", "Traceback"))]
        return "traceback", (frames[-1] if frames else "traceback")[:300]
    internal = _lines(run["err"], "internal error:")
    if internal:
        return "internal", internal[0][:300]
    if status == 0:
        return "ok", ""
    if status in (1, 2):
        errors = [
            line
            for line in run["err"].splitlines()
            if line.startswith("error: ") or (status == 2 and ": error: " in line)
        ]
        if errors:
            return "error", errors[0][:300]
        return "internal", f"exit status {status} without an error: line: {run['err'].strip()[-200:]!r}"
    return "internal", f"exit status {status!r}"


def _output_arg(argv: list[str]) -> str | None:
    found = None
    for i, arg in enumerate(argv[:-1]):
        if arg in ("--output", "-o"):
            found = argv[i + 1]
    return found


def check_emulate_output(path: Path) -> str | None:
    """Why an emulate output is not a finite result, or None."""
    if not path.is_file():
        return f"exit 0 but no output file {path.name}"
    try:
        with np.load(path, allow_pickle=False) as data:
            if "outputs" not in data.files:
                return f"output {path.name} has no 'outputs' array ({data.files[:5]})"
            for key in data.files:
                array = data[key]
                if array.dtype.kind in "fc" and not np.isfinite(array).all():
                    bad = int((~np.isfinite(array)).sum())
                    return f"output {path.name}[{key!r}] holds {bad} non-finite value(s) of {array.size}"
    except Exception as exc:
        return f"output {path.name} is unreadable: {type(exc).__name__}: {exc}"
    return None


def _same_outputs(root: Path, pair: tuple[str, str]) -> bool:
    """Whether two emulate outputs hold the same ``outputs`` (e.g. integer images and the same images / 255)."""
    try:
        with np.load(root / pair[0]) as a, np.load(root / pair[1]) as b:
            return bool(np.allclose(a["outputs"], b["outputs"], rtol=1e-5, atol=1e-6))
    except Exception:
        return False


_RANK = {c: i for i, c in enumerate(CLASSES)}


def classify(case: Case, runs: list[dict[str, Any]], touched: list[str], escape: list[str], root: Path) -> dict:
    findings: list[tuple[str, str]] = [("touched", t) for t in touched] + [("escape", e) for e in escape]
    for run in runs:
        cls, line = classify_run(run)
        run["class"], run["line"] = cls, line
        if cls != "ok":
            findings.append((cls, line))
        if cls == "ok" and run["argv"][0] == "emulate":
            target = _output_arg(run["argv"])
            if target is not None:
                problem = check_emulate_output(root / "cwd" / target)
                if problem is not None:
                    findings.append(("nonfinite", problem))
    succeeded = bool(runs) and all(run["status"] == 0 for run in runs)
    accepted = bool(runs) and runs[0]["status"] == 0  # the first command is the one that reads the bad input
    if case.expect == "ok" and not succeeded:
        findings.append(("control", f"control case failed: {runs[-1].get('line', '') if runs else 'no command'}"))
    if case.expect in ("reject", "reject_or_warn") and accepted:
        warned = bool(_lines(runs[0]["err"], "warning:"))
        handled = warned or (case.same_outputs is not None and _same_outputs(root, case.same_outputs))
        if case.expect == "reject" or not handled:
            findings.append(
                ("accepted", f"exit 0 for {case.why}" + ("" if case.expect == "reject" else " (no warning)"))
            )
    findings.sort(key=lambda f: _RANK[f[0]])
    cls, detail = findings[0] if findings else ("ok", "")
    return {
        "class": cls,
        "detail": detail,
        "findings": findings[:20],
        "runs": [{k: v for k, v in run.items()} for run in runs],
        "seconds": round(sum(run["seconds"] for run in runs), 3),
    }


# --- the process -------------------------------------------------------------------------------------------------


def serve(conn, home: str, settings: dict[str, Any]) -> None:
    """The worker's loop: ("case", index, name, seed, root, bases, case_or_None, debug) -> ("started", index) and
    ("done", index, result); ("prepare", key, argv, cwd) -> ("prepared", key, run); ("stop",) ends it."""
    worker = Worker(Path(home), settings)
    worker.setup()
    worker.warm_up()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] == "stop":
            return
        if message[0] == "prepare":
            _, key, argv, cwd = message
            conn.send(("prepared", key, worker.prepare(argv, Path(cwd))))
            continue
        _, index, name, seed, root, bases_dir, given, debug = message
        root = Path(root)
        _remove(root)
        try:
            case = given if given is not None else make_case(name, seed, root, Path(bases_dir) if bases_dir else None)
            sandbox.materialize(root, case)
        except Exception:
            detail = traceback.format_exc()
            conn.send(
                (
                    "done",
                    index,
                    {
                        "class": "harness",
                        "detail": detail.strip().splitlines()[-1],
                        "trace": detail,
                        "findings": [],
                        "runs": [],
                        "seconds": 0.0,
                    },
                )
            )
            _remove(root)
            continue
        conn.send(("started", index, case.describe()))
        try:
            result = worker.run_case(case, root, debug)
        except Exception:
            detail = traceback.format_exc()
            result = {
                "class": "harness",
                "detail": detail.strip().splitlines()[-1],
                "trace": detail,
                "findings": [],
                "runs": [],
                "seconds": 0.0,
            }
        result["case"] = case.describe()
        conn.send(("done", index, result))
        if not settings.get("keep_sandboxes"):
            _remove(root)
