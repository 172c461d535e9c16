"""Artifact folders: written atomically, described by ``manifest.json``, checked when read.

A folder is built under a temporary name next to its destination and renamed into place only when complete,
so a failed compile leaves nothing behind and an existing artifact is replaced whole. The manifest records
versions, target, pipeline, options, input/output shapes and encodings, and the sha256 of every file; nothing
in it depends on the time or the absolute path, so compiling twice gives byte-identical folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurodeploy.errors import ArtifactError
from neurodeploy.ir.serialize import dumps_json

MANIFEST = "manifest.json"
ARTIFACT_FORMAT = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_artifact(folder: Path) -> bool:
    """True if ``folder`` holds a neurodeploy manifest."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "neurodeploy" in manifest


def check_destination(out_dir: Path) -> None:
    """Refuse to replace anything that is not an artifact (a file, or a folder with other content)."""
    if out_dir.is_file() or out_dir.is_symlink():
        raise ArtifactError(f"output {out_dir} exists and is not a folder; choose another output folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_artifact(out_dir):
        raise ArtifactError(
            f"output folder {out_dir} exists and is not a neurodeploy artifact; choose another folder or empty it"
        )


def write_artifact(out_dir: Path, fill: Callable[[Path], dict[str, Any]]) -> Path:
    """Build an artifact atomically. ``fill(tmp)`` writes the files into ``tmp`` and returns the manifest body;
    the file checksums are added here. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    check_destination(out_dir)
    created: list[Path] = []
    parent = out_dir.parent
    tmp = parent / f".{out_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        for folder in reversed([parent, *parent.parents]):
            if not folder.exists():
                folder.mkdir()
                created.append(folder)
        tmp.mkdir()
        body = fill(tmp)
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        manifest = {**body, "files": {name: sha256_file(tmp / name) for name in files}}
        (tmp / MANIFEST).write_bytes(dumps_json(manifest))
        if out_dir.exists():
            old = parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
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


@dataclass(frozen=True)
class Artifact:
    """A compiled artifact on disk."""

    root: Path
    manifest: dict[str, Any]

    @property
    def target(self) -> str:
        return self.manifest["target"]["name"]

    def path(self, name: str) -> Path:
        if name not in self.manifest["files"]:
            raise ArtifactError(f"artifact {self.root} has no file {name!r}")
        return self.root / name


def load_artifact(folder: str | Path, *, verify: bool = True) -> Artifact:
    """Read an artifact's manifest and (by default) check every file against its recorded sha256."""
    root = Path(folder)
    if not root.is_dir():
        raise ArtifactError(f"artifact folder {root} does not exist")
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except OSError:
        raise ArtifactError(f"{root} is not a neurodeploy artifact (no {MANIFEST})") from None
    except ValueError as exc:
        raise ArtifactError(f"{root / MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or "neurodeploy" not in manifest or "files" not in manifest:
        raise ArtifactError(f"{root / MANIFEST} is not a neurodeploy manifest")
    fmt = manifest["neurodeploy"].get("artifact_format")
    if fmt != ARTIFACT_FORMAT:
        raise ArtifactError(f"{root} uses artifact format {fmt}; this neurodeploy reads format {ARTIFACT_FORMAT}")
    if verify:
        for name, digest in manifest["files"].items():
            path = root / name
            if not path.is_file():
                raise ArtifactError(f"artifact {root} is missing {name}")
            if sha256_file(path) != digest:
                raise ArtifactError(
                    f"artifact file {path} does not match its checksum in the manifest (edited or "
                    "corrupted); compile again"
                )
    return Artifact(root, manifest)
