"""Artifact folders: written atomically, described by ``manifest.json``, read only through checked accessors.

**Writing.** A folder is built under a temporary name next to its destination (``.NAME.tmp-PID-XXXXXXXX``) and
renamed into place only when complete, so a failed or interrupted compile (an error, Ctrl-C, SIGTERM) leaves
nothing behind and an existing artifact is replaced whole. Only an absent path, an empty folder or an artifact
is replaced: a regular file, a symbolic link, a device, a FIFO or a folder with other content is refused.
What a killed process left (temporary or moved-aside folders of a process that no longer runs) is removed by
the next write to the same destination.

**The manifest** records versions, target, pipeline, options, input/output shapes and encodings, and the size
and sha256 of every file (``files: {name: {"sha256": ..., "bytes": n}}``); nothing in it depends on the time or
the absolute path, so compiling twice gives byte-identical folders. File names are plain names
(:data:`NAME_PATTERN`: no folders, no ``..``), and the manifest is checked against :data:`MANIFEST_SCHEMA`
before anything else is read.

**Reading.** Everything a backend reads goes through :class:`Artifact`'s accessors (``read_bytes``,
``read_json``, ``read_npz``, ``read_graph``): the name must be listed in the manifest; the file is opened without
following symbolic links and without blocking, must be a regular file of the recorded size (and within the
caps of :mod:`neurodeploy.limits`), is read into memory once, and must match the recorded sha256 before those
same bytes are parsed. A file the manifest does not list is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.encoding import KINDS
from neurodeploy.errors import ArtifactError, NeurodeployError
from neurodeploy.fileio import (
    file_kind,
    hash_regular_file,
    output_mode,
    read_regular_file,
    remove_stale,
    temporary_name,
)
from neurodeploy.ir.graph import Graph
from neurodeploy.ir.serialize import dumps_json, graph_from_dict, read_npz
from neurodeploy.readout import MAX_DELAY
from neurodeploy.schema import (
    Bool,
    Dict,
    Int,
    List,
    Map,
    Null,
    Number,
    OneOf,
    Schema,
    Str,
    validate,
)

MANIFEST = "manifest.json"
ARTIFACT_FORMAT = 2
"""2: ``files`` records each file's size with its sha256, and names are plain (format 1 is no longer read)."""

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
"""The names of an artifact's files: a letter or digit, then up to 127 letters, digits, ``.``, ``_``, ``-``."""
_NAME = re.compile(NAME_PATTERN)
_PLAIN_NAME = Str(pattern=NAME_PATTERN, meaning="a plain file name (letters, digits, '.', '_', '-'; no folders)")

_ENCODING = OneOf(
    Str(choices=KINDS),
    Dict({"kind": Str(choices=KINDS)}, {"seed": Int(0), "pad": Bool()}),
)
MANIFEST_SCHEMA: Schema = Dict(
    {
        "neurodeploy": Dict({"artifact_format": Int(), "version": Str()}),
        "target": Dict({"name": Str(), "modes": List(Str(), min_len=1)}, {"default_steps": Int(1)}),
        "pipeline": Str(),
        "options": Dict({"calibration": OneOf(Null(), Dict())}),
        "inputs": List(
            Dict(
                {"name": Str(), "shape": List(Int(1)), "dtype": Str(), "encoding": _ENCODING},
                {"range": List(Number(), length=2)},
            ),
            min_len=1,
        ),
        "outputs": List(
            Dict({"name": Str(), "shape": List(Int(1))}, {"readout_delay": Dict({"steps": Int(0, MAX_DELAY)})}),
            min_len=1,
        ),
        "warnings": List(Str()),
        "files": Map(
            Dict({"sha256": Str(pattern="[0-9a-f]{64}", meaning="a sha256 (64 hex digits)"), "bytes": Int(0)}),
            key=_PLAIN_NAME,
        ),
    },
    {"source": Dict(), "versions": Map(Str())},
)
"""What every manifest must hold, with the types of every key neurodeploy reads (other keys are ignored)."""


def check_name(name: Any, where: str) -> str:
    """``name`` if it is a plain file name of an artifact (:data:`NAME_PATTERN`, not the manifest itself)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name == MANIFEST:
        raise ArtifactError(
            f"{where}: {name!r} is not a plain file name of an artifact (letters, digits, '.', '_', '-'; no folders)"
        )
    return name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _parse_json(data: bytes, where: str) -> Any:
    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=constant)
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{where} is not valid JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise ArtifactError(f"{where} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ArtifactError(f"{where} is not valid JSON: nested too deeply") from None


def is_artifact(folder: Path) -> bool:
    """True if ``folder`` holds a neurodeploy manifest (a regular file, of any artifact format)."""
    try:
        data = read_regular_file(Path(folder) / MANIFEST, cap="max_json_bytes", error=ArtifactError)
        manifest = json.loads(data)
    except (OSError, ValueError, RecursionError, NeurodeployError):
        return False
    return isinstance(manifest, dict) and isinstance(manifest.get("neurodeploy"), dict)


def check_destination(out_dir: Path) -> None:
    """Refuse to replace anything that is not an artifact: a regular file, a symbolic link, a device, a FIFO, a
    socket, or a folder with other content. An absent path or an empty folder is fine."""
    out_dir = Path(out_dir)
    mode = output_mode(out_dir, f"artifact {out_dir}", error=ArtifactError)
    if mode is None:
        return
    if stat.S_ISLNK(mode):
        raise ArtifactError(
            f"output {out_dir} is a symbolic link; neurodeploy neither replaces links nor writes through them: "
            "choose another output folder"
        )
    if stat.S_ISREG(mode):
        raise ArtifactError(f"output {out_dir} exists and is not a folder; choose another output folder")
    if not stat.S_ISDIR(mode):
        raise ArtifactError(
            f"output {out_dir} exists and is {file_kind(mode)}, not a folder; choose another output folder"
        )
    try:
        empty = not any(os.scandir(out_dir))
    except OSError as exc:
        raise ArtifactError(f"cannot write artifact {out_dir}: {exc.strerror or exc}") from None
    if not empty and not is_artifact(out_dir):
        raise ArtifactError(
            f"output folder {out_dir} exists and is not a neurodeploy artifact; choose another folder or empty it"
        )


def _describe_files(folder: Path, out_dir: Path) -> dict[str, dict[str, Any]]:
    """``{name: {"sha256", "bytes"}}`` of every file a backend wrote; anything but plainly named regular files
    is a bug of the backend, refused here so that no artifact holds what readers would refuse."""
    files: dict[str, dict[str, Any]] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        mode = entry.stat(follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            raise ArtifactError(f"cannot write artifact {out_dir}: {entry.name!r} is {file_kind(mode)}, not a file")
        check_name(entry.name, f"cannot write artifact {out_dir}")
        path = folder / entry.name
        files[entry.name] = {"sha256": sha256_file(path), "bytes": os.lstat(path).st_size}
    return files


def write_artifact(out_dir: Path, fill: Callable[[Path], dict[str, Any]]) -> Path:
    """Build an artifact atomically. ``fill(tmp)`` writes the files into ``tmp`` and returns the manifest body;
    the file sizes and checksums are added here. Returns ``out_dir``.

    ``out_dir`` must be absent, an empty folder or an artifact (:func:`check_destination`). Leftovers of killed
    processes next to it are removed first (:func:`neurodeploy.fileio.remove_stale`); on any failure or
    interruption (KeyboardInterrupt, and SIGTERM in the command line) the temporary folder is removed and a
    previous artifact stays in place."""
    out_dir = Path(out_dir)
    check_destination(out_dir)
    parent = out_dir.parent
    remove_stale(parent, out_dir.name, ("tmp/", "old/"))
    created: list[Path] = []
    tmp = parent / temporary_name(out_dir.name, "tmp")
    try:
        for folder in reversed([parent, *parent.parents]):
            if not folder.exists():
                folder.mkdir()
                created.append(folder)
        tmp.mkdir()
        body = fill(tmp)
        manifest = {**body, "files": _describe_files(tmp, out_dir)}
        (tmp / MANIFEST).write_bytes(dumps_json(manifest))
        check_destination(out_dir)  # again: it may have changed while the backend wrote
        if os.path.lexists(out_dir):
            old = parent / temporary_name(out_dir.name, "old")
            out_dir.rename(old)
            try:
                tmp.rename(out_dir)
            except BaseException:
                old.rename(out_dir)  # put the previous artifact back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(created):
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ArtifactError(f"cannot write artifact {out_dir}: {exc}") from exc
        raise
    return out_dir


class _Files:
    """Readers of named files in a folder; subclasses say how a name becomes checked bytes (``_read``)."""

    root: Path

    def _read(self, name: str, cap: str) -> bytes:
        raise NotImplementedError

    def where(self, name: str) -> str:
        """How messages name the file ``name``."""
        return str(self.root / name)

    def read_bytes(self, name: str) -> bytes:
        """The checked bytes of the file ``name``."""
        return self._read(name, "max_file_bytes")

    def read_json(self, name: str, schema: Schema | None = None) -> Any:
        """The JSON document ``name`` (at most ``NEURODEPLOY_MAX_JSON_BYTES``), checked against ``schema``."""
        doc = _parse_json(self._read(name, "max_json_bytes"), self.where(name))
        if schema is not None:
            validate(schema, doc, self.where(name))
        return doc

    def read_npz(self, name: str) -> dict[str, np.ndarray]:
        """The arrays of the ``.npz`` ``name``, read safely (:func:`neurodeploy.ir.serialize.read_npz`)."""
        return read_npz(self._read(name, "max_file_bytes"), self.where(name), error=ArtifactError)

    def read_graph(self, stem: str) -> Graph:
        """The IR graph in ``STEM.json`` and ``STEM.npz`` (both must be files of the folder), verified."""
        json_name = check_name(f"{stem}.json", f"graph {stem!r} of {self.root}")
        npz_name = check_name(f"{stem}.npz", f"graph {stem!r} of {self.root}")
        doc = self.read_json(json_name)
        return graph_from_dict(doc, self.read_npz(npz_name), self.where(json_name))


@dataclass(frozen=True)
class Artifact(_Files):
    """A compiled artifact on disk: its folder and its (checked) manifest. Read its files with the accessors."""

    root: Path
    manifest: dict[str, Any]

    @property
    def target(self) -> str:
        return self.manifest["target"]["name"]

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """``{name: {"sha256": ..., "bytes": n}}`` of every file the manifest lists."""
        return self.manifest["files"]

    @property
    def has_ann(self) -> bool:
        """Whether the artifact holds the ANN the network was converted from (a model that arrived already
        spiking has none)."""
        return "ann.json" in self.files

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def _read(self, name: str, cap: str) -> bytes:
        data = self._listed(name, lambda path, **checks: read_regular_file(path, cap=cap, **checks))
        self._matches(name, hashlib.sha256(data).hexdigest())
        return data

    def _listed(self, name: str, reader: Callable[..., Any]) -> Any:
        """``reader`` (:func:`read_regular_file` or :func:`hash_regular_file`) on the listed file ``name``, its
        recorded size checked; errors worded for the artifact."""
        entry = self.manifest["files"].get(name) if isinstance(name, str) else None
        if entry is None:
            raise ArtifactError(f"artifact {self.root} has no file {name!r} (its manifest does not list it)")
        check_name(name, str(self.manifest_path))
        path = self.root / name
        what = f"artifact file {path}"
        try:
            return reader(path, size=entry["bytes"], error=ArtifactError, what=what)
        except FileNotFoundError:
            raise ArtifactError(f"artifact {self.root} is missing {name}; compile again") from None
        except OSError as exc:
            raise ArtifactError(f"cannot read {what}: {exc.strerror or exc}") from None

    def _matches(self, name: str, digest: str) -> None:
        if digest != self.manifest["files"][name]["sha256"]:
            raise ArtifactError(
                f"artifact file {self.root / name} does not match its checksum in the manifest (edited or "
                "corrupted); compile again"
            )

    def path(self, name: str) -> Path:
        """The path of the listed file ``name``, for tools that need one (vendor SDKs), after the same checks
        as the accessors. Prefer the accessors: what a path names can change after this returns."""
        self._read(name, "max_file_bytes")
        return self.root / name

    def check(self) -> None:
        """Check every listed file (listed, regular, inside, of the recorded size and sha256), hashing each a piece
        at a time (a large network's weights take gigabytes)."""
        for name in self.manifest["files"]:
            self._matches(name, self._listed(name, hash_regular_file))


@dataclass(frozen=True)
class Folder(_Files):
    """A plain folder of files written outside an artifact (e.g. a program saved by a test or a tool): the same
    checks on names, file types and sizes as :class:`Artifact`, without a manifest's listing and checksums."""

    root: Path

    def _read(self, name: str, cap: str) -> bytes:
        check_name(name, str(self.root))
        path = self.root / name
        try:
            return read_regular_file(path, cap=cap, error=ArtifactError)
        except FileNotFoundError:
            raise ArtifactError(f"cannot read {path}: no such file") from None
        except OSError as exc:
            raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_graph(folder: Path, stem: str = "graph") -> Graph:
    """Read what :func:`neurodeploy.ir.serialize.save_graph` wrote into a plain folder, with :class:`Folder`'s
    checks (an artifact's graphs: ``Artifact.read_graph``)."""
    return Folder(folder).read_graph(stem)


def open_files(source: Artifact | Folder | str | os.PathLike) -> Artifact | Folder:
    """What program readers take: an :class:`Artifact` or :class:`Folder` as it is; a path: the artifact there
    (its manifest checked) when it has a manifest, else the plain folder."""
    if isinstance(source, (Artifact, Folder)):
        return source
    root = Path(source)
    if os.path.lexists(root / MANIFEST):
        return load_artifact(root, verify=False)
    return Folder(root)


def open_description(
    source: Artifact | Folder | str | os.PathLike, name: str, fmt: str, version: int, schema: Schema
) -> tuple[Artifact | Folder, dict[str, Any], str]:
    """A target's JSON description ``name`` in ``source`` (:func:`open_files`): the files, the document (its
    ``format`` and ``version`` checked, then every field against ``schema``) and how messages name it. Errors are
    ArtifactErrors naming the file and the problem."""
    files = open_files(source)
    where = files.where(name)
    doc = files.read_json(name)
    if not isinstance(doc, dict) or doc.get("format") != fmt or doc.get("version") != version:
        raise ArtifactError(f"{where} is not a {fmt} v{version} description")
    validate(schema, doc, where)
    return files, doc, where


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    try:
        data = read_regular_file(path, cap="max_json_bytes", error=ArtifactError)
    except FileNotFoundError:
        raise ArtifactError(f"{root} is not a neurodeploy artifact (no {MANIFEST})") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None
    manifest = _parse_json(data, str(path))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("neurodeploy"), dict) or "files" not in manifest:
        raise ArtifactError(f"{path} is not a neurodeploy manifest")
    fmt = manifest["neurodeploy"].get("artifact_format")
    if fmt != ARTIFACT_FORMAT:
        if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt < ARTIFACT_FORMAT:
            raise ArtifactError(
                f"{root} uses artifact format {fmt}, which this neurodeploy no longer reads (it reads format "
                f"{ARTIFACT_FORMAT}); compile again"
            )
        raise ArtifactError(
            f"{root} uses artifact format {fmt!r}; this neurodeploy reads format {ARTIFACT_FORMAT}: compile again, "
            "or use the neurodeploy that wrote it"
        )
    validate(MANIFEST_SCHEMA, manifest, str(path))
    if MANIFEST in manifest["files"]:
        raise ArtifactError(f"{path}: files lists {MANIFEST} itself")
    return manifest


def load_artifact(folder: str | Path, *, verify: bool = True) -> Artifact:
    """Read an artifact's manifest (checked against :data:`MANIFEST_SCHEMA`) and, by default, check every file
    it lists (:meth:`Artifact.check`). Files are checked again whenever they are read."""
    root = Path(folder)
    if not root.exists():
        raise ArtifactError(f"artifact folder {root} does not exist")
    if not root.is_dir():
        raise ArtifactError(f"artifact {root} is not a folder (an artifact is the folder compile writes)")
    artifact = Artifact(root, _read_manifest(root))
    if verify:
        artifact.check()
    return artifact
