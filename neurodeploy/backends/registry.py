"""Finding backends: the built-in reference target plus every entry point in the ``neurodeploy.backends``
group. Two registrations of one name are an error that names both; an unknown name lists what is installed."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from neurodeploy.backends.base import Backend
from neurodeploy.errors import BackendLoadError, UnknownTargetError

GROUP = "neurodeploy.backends"
_BUILTIN = {"reference": "neurodeploy.backends.reference:ReferenceBackend"}


@dataclass(frozen=True)
class BackendEntry:
    """An installed target: its name, where it comes from, and how to load its class."""

    name: str
    value: str
    distribution: str

    def load(self) -> type[Backend]:
        module_name, _, attr = self.value.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise BackendLoadError(
                f"target {self.name!r} (from {self.distribution}, {self.value}) failed to load: {exc}"
            ) from exc
        if not (isinstance(obj, type) and issubclass(obj, Backend)):
            raise BackendLoadError(
                f"target {self.name!r} (from {self.distribution}) points to {self.value}, which is "
                "not a neurodeploy Backend subclass"
            )
        return obj


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=GROUP))


def available_backends(found: Callable[[], list[EntryPoint]] = _entry_points) -> dict[str, BackendEntry]:
    """Every installed target by name (nothing is imported)."""
    backends = {name: BackendEntry(name, value, "neurodeploy") for name, value in _BUILTIN.items()}
    for ep in found():
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        if ep.name in backends:
            other = backends[ep.name]
            raise BackendLoadError(
                f"target name {ep.name!r} is registered twice: by {other.distribution} "
                f"({other.value}) and by {dist} ({ep.value}); uninstall one of them"
            )
        backends[ep.name] = BackendEntry(ep.name, ep.value, dist)
    return backends


def get_backend(name: str) -> Backend:
    """An instance of the backend for target ``name``."""
    backends = available_backends()
    if (entry := backends.get(name)) is None:
        raise UnknownTargetError(
            f"unknown target {name!r}; installed targets: {', '.join(sorted(backends))}. Targets "
            "come from plugins, e.g. `pip install -e backends/loihi`."
        )
    cls = entry.load()
    return cls(name)
