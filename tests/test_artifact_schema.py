"""Every JSON document an artifact holds is checked before use: mutate each of its fields (a value of another
type, or the key deleted), keep the manifest's sizes and checksums in step, and run the artifact. Each run must
either work (the field is optional, or only informative) or end in a NeurodeployError naming the file, never
in another exception (an internal error on the command line).

The artifacts are the bundled MNIST CNN compiled for the reference target, Loihi 2 and Speck 2f (once per
module); graph documents (snn.json, ann.json) are covered through the reference target.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_support import BUNDLED_MODEL, CALIBRATION, load_test_images

from neurodeploy import compile_model, emulate_artifact, load_artifact, load_calibration
from neurodeploy.artifact import MANIFEST
from neurodeploy.backends.registry import available_backends
from neurodeploy.errors import NeurodeployError

SHORT = 12
"""Every item of lists up to this long gets another type; longer lists (weights) only their first item."""


def kind(value: Any) -> tuple:
    """What decides an item's schema: its type, its keys and the fields that pick a variant."""
    if not isinstance(value, dict):
        return (type(value).__name__,)
    return (tuple(sorted(value)), *(str(value.get(k)) for k in ("op_type", "role", "type")))


def replacement(value: Any) -> Any:
    """A value of another JSON type than ``value``."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return "x"
    if isinstance(value, float):
        return None
    if isinstance(value, str):
        return 7
    if value is None:
        return "x"
    if isinstance(value, list):
        return {}
    return []


def mutations(doc: Any, path: tuple = ()) -> Iterator[tuple[str, Any]]:
    """(where, change) for each field: its value replaced by another type's, and for object keys the key
    deleted. In lists (see :data:`SHORT`), the fields of the first item of each :func:`kind` are mutated."""
    if isinstance(doc, dict):
        children, inside = list(doc.items()), set(doc)
    elif isinstance(doc, list):
        children = list(enumerate(doc if len(doc) <= SHORT else doc[:1]))
        kinds: dict[tuple, int] = {}
        for i, value in children:  # fields inside items: in the first item of each kind only
            kinds.setdefault(kind(value), i)
        inside = set(kinds.values())
    else:
        return
    for key, value in children:
        where = (*path, key)
        yield f"{where}: {type(value).__name__} -> {type(replacement(value)).__name__}", (where, replacement(value))
        if isinstance(doc, dict):
            yield f"{where}: deleted", (where, _DELETE)
        if key in inside:
            yield from mutations(value, where)


_DELETE = object()


def apply(doc: Any, change: tuple[tuple, Any]) -> Any:
    where, value = change
    out = copy.deepcopy(doc)
    parent = out
    for key in where[:-1]:
        parent = parent[key]
    if value is _DELETE:
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    return out


def write_document(root: Path, name: str, doc: Any) -> None:
    data = json.dumps(doc).encode()
    (root / name).write_bytes(data)
    if name == MANIFEST:
        return
    manifest = json.loads((root / MANIFEST).read_text())
    digest = hashlib.sha256(data).hexdigest()
    entry = manifest["files"][name]  # (format 1 recorded the digest alone)
    manifest["files"][name] = digest if isinstance(entry, str) else {"sha256": digest, "bytes": len(data)}
    (root / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    x, _ = load_test_images()
    return x[:1]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    calibration = load_calibration(str(CALIBRATION), 64)
    folder = tmp_path_factory.mktemp("schema")
    out = {}
    for target in ("reference", "loihi2", "speck2f", "spinnaker"):
        if target in available_backends():
            out[target] = compile_model(BUNDLED_MODEL, target, folder / target, calibration=calibration).root
    return out


CASES = [
    ("reference", MANIFEST, "snn"),
    ("reference", "snn.json", "snn"),
    ("reference", "ann.json", "ann"),
    ("loihi2", MANIFEST, "binary"),
    ("loihi2", "loihi.json", "binary"),
    ("loihi2", "host.json", "binary"),
    ("loihi2", "graded.json", "graded"),
    ("speck2f", MANIFEST, "event"),
    ("speck2f", "speck.json", "event"),
    ("spinnaker", MANIFEST, "snn"),
    ("spinnaker", "spinnaker.json", "snn"),
    ("spinnaker", "host.json", "snn"),
]


@pytest.mark.parametrize(("target", "name", "mode"), CASES, ids=[f"{t}-{n}" for t, n, _ in CASES])
def test_every_field_of_every_document_is_checked(compiled, inputs, tmp_path, target, name, mode):
    if target not in compiled:
        pytest.skip(f"the {target} target is not installed")
    root = tmp_path / "art"
    shutil.copytree(compiled[target], root)
    original = {n: (root / n).read_bytes() for n in (name, MANIFEST)}
    doc = json.loads(original[name])
    refused, problems = 0, []
    for where, change in mutations(doc):
        write_document(root, name, apply(doc, change))
        try:
            emulate_artifact(load_artifact(root), inputs, steps=2, mode=mode)
        except NeurodeployError as exc:
            refused += 1
            message = str(exc)
            if name not in message and not (name == MANIFEST and str(root) in message):
                problems.append(f"{where}: the message does not name {name}: {message}")
            if "\n" in message:
                problems.append(f"{where}: the message has several lines: {message!r}")
        except Exception as exc:  # what this test is about: no other exception type
            problems.append(f"{where}: {type(exc).__name__}: {exc}")
        finally:
            for n, data in original.items():
                (root / n).write_bytes(data)
    assert not problems, "\n".join(problems[:30])
    total = sum(1 for _ in mutations(doc))
    assert refused >= total // 2, f"only {refused} of {total} mutations of {name} were refused"
