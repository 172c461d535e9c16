"""The test plugin, tests/plugins/dummy_backend (target ``dummy``), provided to the tests without installing it.

No environment installs it, so ``neurodeploy targets`` where ``make demo`` runs lists the real targets only.
``tests/conftest.py`` calls :func:`provide` when pytest starts: it writes the plugin's metadata (name, version and
entry points, read from its pyproject.toml) as an installed distribution's ``.dist-info`` folder holds it, and puts
that folder and the plugin's sources first on ``sys.path`` and on ``PYTHONPATH`` (for the console scripts the tests
start). The registry then finds the plugin through ``importlib.metadata`` exactly as it finds an installed one.
:func:`withdraw` undoes it; :func:`env_without` is the environment of a subprocess that must not see it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

PLUGIN = Path(__file__).resolve().parent / "plugins" / "dummy_backend"
TARGET = "dummy"
DISTRIBUTION = "neurodeploy-dummy"

_provided: list[str] = []
_pythonpath: str | None = None  # PYTHONPATH before provide()


def _write_metadata(folder: Path) -> None:
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name, version = project["name"], project["version"]
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    groups = project.get("entry-points", {})
    text = "".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items()) + "\n"
        for group, entries in groups.items()
    )
    (info / "entry_points.txt").write_text(text, encoding="utf-8")


def provide(folder: Path) -> None:
    """Make the test plugin discoverable in this process and in the processes it starts; ``folder`` (new or empty)
    receives its metadata."""
    global _pythonpath
    if _provided:
        return
    _write_metadata(folder)
    _provided[:] = [str(folder), str(PLUGIN / "src")]
    _pythonpath = os.environ.get("PYTHONPATH")
    sys.path[:0] = _provided
    os.environ["PYTHONPATH"] = os.pathsep.join([*_provided, *([_pythonpath] if _pythonpath else [])])
    importlib.invalidate_caches()


def withdraw() -> None:
    """Undo :func:`provide` (the metadata folder is the caller's to remove)."""
    if not _provided:
        return
    for path in _provided:
        if path in sys.path:
            sys.path.remove(path)
    if _pythonpath is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = _pythonpath
    _provided.clear()
    importlib.invalidate_caches()


def env_without(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (a copy of ``os.environ`` when None) with ``PYTHONPATH`` as it was before :func:`provide`."""
    env = dict(os.environ) if env is None else dict(env)
    if _provided:
        env.pop("PYTHONPATH", None)
        if _pythonpath is not None:
            env["PYTHONPATH"] = _pythonpath
    return env
