"""Sandboxes for fuzz cases: what a case is, how it is laid out on disk, canaries, snapshots, and the audit hook
that records every file the command opens, writes, renames or deletes.

A case's sandbox (``root``) looks like this; commands run with ``root/cwd`` as the working directory and name
their inputs relative to it (``../model/model.onnx``, ``../art``, ``../data/x.npz``)::

    root/secret.txt        canary A: next to the model's and the artifact's folders
    root/model/            the (mutated) model and its external data
    root/art/              the (mutated) artifact an emulate case reads
    root/data/             inputs, labels, calibration data
    root/cwd/secret.txt    canary B: in the working directory
    root/cwd/out, y.npz    the outputs (``Case.outputs``)

A command may read ``model/``, ``art/`` (only the files its manifest lists, and the manifest), ``data/`` and
``cwd/``, and the Python installation; it may write only under ``cwd/``. It must never read, change or delete a
canary, follow a symlink the case planted, leave anything behind outside its outputs, or replace an output path
that was not a regular file (emulate) or an artifact folder (compile).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import site
import stat
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .seeds import REPO

CANARY = "secret.txt"


def _canary(tag: bytes) -> bytes:
    """16 marker bytes and 1020 float32 values in [0.5, 1): 4096 bytes that read as a plausible weight tensor."""
    values = np.random.default_rng(int.from_bytes(tag, "little")).uniform(0.5, 1.0, 1020).astype("<f4")
    return b"FUZZ-CANARY-" + tag.ljust(4, b"-") + values.tobytes()


CANARY_A = _canary(b"A")  # root/secret.txt
CANARY_B = _canary(b"B")  # root/cwd/secret.txt
CANARY_FILES = {CANARY: CANARY_A, f"cwd/{CANARY}": CANARY_B}
# Slices of each canary that must never show up in an output file.
_PROBES = [c[i : i + 32] for c in (CANARY_A, CANARY_B) for i in (0, 512, 2048, 4000)]


@dataclass(frozen=True)
class Link:
    """A symlink to ``target`` (relative to the link's folder, or absolute)."""

    target: str


@dataclass(frozen=True)
class Fifo:
    """A named pipe: opening it to read blocks until a writer comes, which none will."""


@dataclass(frozen=True)
class Dir:
    """An (empty) folder."""


FileSpec = bytes | Link | Fifo | Dir


@dataclass
class Case:
    """One fuzz case: files to lay out, commands to run, and what the outcome must be."""

    mutator: str
    seed: int
    files: dict[str, FileSpec]  # relative to the sandbox root
    commands: list[list[str]]  # run in root/cwd in turn; the first nonzero status stops the rest
    outputs: dict[str, str]  # relative path -> "artifact" (compile -o) or "file" (emulate --output)
    note: str = ""  # what the mutation did, for the saved case
    expect: str | None = None  # "reject" / "reject_or_warn": exit 0 (without a warning) is a finding; "ok": a control
    why: str = ""  # what makes the input one to refuse
    same_outputs: tuple[str, str] | None = None  # reject_or_warn passes silently if these two outputs agree
    unlisted: list[str] = field(default_factory=list)  # artifact files the manifest does not list: never read

    def describe(self) -> dict:
        return {
            "mutator": self.mutator,
            "seed": self.seed,
            "note": self.note,
            "commands": self.commands,
            "outputs": self.outputs,
            "expect": self.expect,
            "why": self.why,
            "same_outputs": self.same_outputs,
            "unlisted": self.unlisted,
        }


def materialize(root: Path, case: Case) -> None:
    """Lay ``case`` out under ``root`` (which must not exist), with both canaries."""
    root.mkdir(parents=True)
    (root / "cwd").mkdir()
    for rel, content in {**CANARY_FILES, **case.files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, Link):
            os.symlink(content.target, path)
        elif isinstance(content, Fifo):
            os.mkfifo(path)
        elif isinstance(content, Dir):
            path.mkdir(exist_ok=True)
        else:
            raise TypeError(f"{rel}: {type(content).__name__} is not a file spec")
    for rel in CANARY_FILES:
        age_atime(root / rel)


def age_atime(path: Path) -> None:
    """Set the access time well before the modification time, so that the next read updates it (relatime)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- snapshots ---------------------------------------------------------------------------------------------------


def _entry(path: Path) -> tuple:
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir",)
    if stat.S_ISREG(st.st_mode):
        return ("file", st.st_size, st.st_mtime_ns, st.st_ino)
    return ("special", kind, st.st_ino)


def _excluded(rel: str, outputs: list[str]) -> bool:
    return any(rel == o or rel.startswith(o.rstrip("/") + "/") for o in outputs if o not in ("", "."))


def snapshot(root: Path, outputs: list[str]) -> dict[str, tuple]:
    """Every entry under ``root`` but the outputs (canaries always): type, size, mtime, inode, link target."""
    entries: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if _excluded(rel, outputs) and rel not in CANARY_FILES:
                if name in dirnames:
                    dirnames.remove(name)
                continue
            entries[rel] = _entry(path)
    return entries


def canary_state(root: Path) -> dict[str, tuple]:
    """Per canary: (atime, then the sha256); reading the bytes comes after the atime, which it would change."""
    state = {}
    for rel in CANARY_FILES:
        path = root / rel
        try:
            st = os.lstat(path)
            atime = st.st_atime_ns
            digest = sha256(path) if stat.S_ISREG(st.st_mode) else None
            state[rel] = (atime, digest, st.st_size, st.st_mtime_ns)
        except OSError as exc:
            state[rel] = (None, f"missing: {exc.strerror}", None, None)
    return state


def compare(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    problems = []
    for rel in sorted(set(before) | set(after)):
        if rel not in after:
            problems.append(f"deleted {rel}")
        elif rel not in before:
            problems.append(f"created {rel}")
        elif before[rel] != after[rel]:
            problems.append(f"changed {rel}: {before[rel]} -> {after[rel]}")
    return problems


def compare_canaries(before: dict[str, tuple], after: dict[str, tuple]) -> tuple[list[str], list[str]]:
    """(changes, reads): a different hash, size or mtime is a change; a newer atime alone is a read."""
    changes, reads = [], []
    for rel, (atime, digest, size, mtime) in before.items():
        a_atime, a_digest, a_size, a_mtime = after[rel]
        if (a_digest, a_size, a_mtime) != (digest, size, mtime):
            changes.append(f"canary {rel} modified or deleted ({a_digest})")
        elif a_atime != atime:
            reads.append(f"canary {rel} was read (its access time changed)")
    return changes, reads


def output_state(root: Path, rel: str) -> tuple | None:
    """What an output path is before the run: None if absent, else its entry (and a folder's listing)."""
    path = root / rel
    if not os.path.lexists(path):
        return None
    entry = _entry(path)
    if entry[0] == "dir":
        listing = []
        for dirpath, _, filenames in os.walk(path):
            for name in filenames:
                p = Path(dirpath) / name
                listing.append((p.relative_to(path).as_posix(), _entry(p)))
        return (*entry, tuple(sorted(listing)))
    return entry


def _is_artifact_dir(root: Path, rel: str) -> bool:
    path = root / rel
    return path.is_dir() and not path.is_symlink() and (not any(path.iterdir()) or (path / "manifest.json").is_file())


def replaceable(root: Path, rel: str, kind: str) -> bool:
    """Whether a command may replace what is at ``rel`` now: a regular file (emulate's npz), an artifact or empty
    folder (compile's -o), or nothing."""
    path = root / rel
    if not os.path.lexists(path):
        return True
    if kind == "file":
        return path.is_file() and not path.is_symlink()
    return _is_artifact_dir(root, rel)


def leaked_canary(root: Path, outputs: list[str]) -> list[str]:
    """Output files holding canary bytes."""
    found = []
    for rel in outputs:
        path = root / rel
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
        for p in files:
            if p.is_symlink() or p.relative_to(root).as_posix() in CANARY_FILES:
                continue
            try:
                data = p.read_bytes()
            except OSError:
                continue
            if any(probe in data for probe in _PROBES):
                found.append(f"output {p.relative_to(root)} holds canary bytes")
    return found


# --- the audit hook ----------------------------------------------------------------------------------------------


def _install_prefixes() -> tuple[str, ...]:
    """Where the interpreter and the installed packages live (read-only for a case)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sysconfig.get_paths().values()}
    try:
        paths.update(site.getsitepackages())
    except AttributeError:  # some virtualenvs
        pass
    paths.update(str(REPO / p) for p in ("neurodeploy", "backends", "tests/plugins"))
    for package in ("neurodeploy", "neurodeploy_loihi", "neurodeploy_speck"):  # wherever they are imported from
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            paths.update(spec.submodule_search_locations)
    paths = {q for p in paths if p for q in (os.path.abspath(p), os.path.realpath(p))}
    return tuple(sorted(p.rstrip("/") + "/" for p in paths))


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_MUTATING = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.symlink": (1,),
    "os.link": (0, 1),
    "os.truncate": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.utime": (0,),
    "os.mkfifo": (0,),
    "os.mknod": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.copytree": (1,),
    "shutil.move": (0, 1),
}
_DIR_FD = {"os.remove": (1,), "os.rmdir": (1,), "os.mkdir": (2,), "os.rename": (2, 3), "os.symlink": (2,)}
_DEVICES_OK = ("/dev/null", "/dev/urandom", "/proc/cpuinfo", "/proc/meminfo")  # the last two: numba, numpy


class Watch:
    """Records file access that breaks a case's rules while ``active``. One per worker (audit hooks stay)."""

    def __init__(self, private: tuple[str, ...] = ()) -> None:
        self.private = tuple(os.path.realpath(p) for p in private)  # the worker's own files (capture, TMPDIR)
        self.active = False
        self.busy = False
        self.install = _install_prefixes()
        self.violations: list[str] = []
        self.root = self.cwd = ""
        self.readable: tuple[str, ...] = ()
        self.forbidden: set[str] = set()

    def start(self, root: Path, unlisted: list[str], outputs: list[str]) -> None:
        self.root = os.path.realpath(root)
        self.cwd = os.path.join(self.root, "cwd")
        # the inputs, and the outputs (compile looks whether an existing -o folder is an artifact)
        folders = ["model", "art", "data", "cwd", *outputs]
        self.readable = tuple(os.path.normpath(os.path.join(self.root, d)).rstrip("/") + "/" for d in folders)
        self.forbidden = {os.path.join(self.root, rel) for rel in [*CANARY_FILES, *unlisted]}
        self.violations = []
        self.active = True

    def stop(self) -> list[str]:
        self.active = False
        return list(dict.fromkeys(self.violations))[:20]

    def _note(self, text: str) -> None:
        if len(self.violations) < 200:
            self.violations.append(text)

    def _abs(self, path) -> str | None:
        if isinstance(path, int) or path is None:
            return None
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or "\0" in path:
            return None
        return os.path.normpath(os.path.join(os.getcwd(), path))

    def _show(self, path: str) -> str:
        return os.path.relpath(path, self.root) if path.startswith(self.root + "/") else path

    def _private(self, p: str) -> bool:
        return any(p == q or p.startswith(q + "/") for q in self.private)

    def _writable(self, p: str) -> bool:
        cache = "/__pycache__/" in p or p.endswith("/__pycache__")  # numba's cache of compiled loops
        return p.startswith(self.cwd + "/") or p == self.cwd or cache or p in _DEVICES_OK

    def _readable(self, p: str) -> bool:
        if p.startswith(self.readable) or p + "/" in self.readable or p in _DEVICES_OK:
            return True
        metadata = ".egg-info/" in p or ".dist-info/" in p  # entry points of the installed plugins
        return p.startswith(self.install) or metadata

    def _check(self, path: str, write: bool, what: str) -> None:
        """Both the path as given and where it leads must be allowed (``/proc/self/fd/0`` leads to /dev/null)."""
        real = os.path.realpath(path)
        if self._private(path) and self._private(real):
            return
        if path.startswith(self.root + "/") and real != path and os.path.lexists(path):
            self._note(f"{what} {self._show(path)} through a symlink (to {self._show(real)})")
        if path in self.forbidden or real in self.forbidden:
            self._note(f"{what} {self._show(real)}, which it must not touch")
            return
        allowed = self._writable if write else self._readable
        if not (allowed(path) and allowed(real)):
            shown = self._show(path) if path == real else f"{self._show(path)} (-> {self._show(real)})"
            self._note(f"{what} {shown}, outside the {'output folder' if write else 'inputs of the case'}")

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active or self.busy:
            return
        if event != "open" and event not in _MUTATING:
            return
        self.busy = True
        try:
            if event == "open":
                path, mode, flags = args
                absolute = self._abs(path)
                if absolute is None:
                    return
                if isinstance(mode, str):
                    write = any(c in mode for c in "wax+")
                else:
                    write = bool((flags or 0) & _WRITE_FLAGS)
                self._check(absolute, write, "wrote" if write else "read")
            else:
                if any(i < len(args) and isinstance(args[i], int) for i in _DIR_FD.get(event, ())):
                    return  # relative to a folder descriptor (shutil.rmtree's walk): its shutil event was checked
                for index in _MUTATING[event]:
                    absolute = self._abs(args[index]) if index < len(args) else None
                    if absolute is not None:
                        self._check(absolute, True, event)
        except Exception as exc:  # the hook must never break the command it watches
            self._note(f"audit hook failed on {event}: {exc!r}")
        finally:
            self.busy = False
