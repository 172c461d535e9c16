"""Test configuration. Its presence puts ``tests/`` on ``sys.path`` (pytest's prepend import mode), so test
modules in subfolders can import the shared helper modules here (``ir_graphs``, ``cli_support``).

It also provides the test plugin tests/plugins/dummy_backend (target ``dummy``), which no environment installs:
see ``plugin_support``."""

import shutil
import tempfile
from pathlib import Path

import plugin_support

_metadata: list[Path] = []


def pytest_configure(config):
    folder = Path(tempfile.mkdtemp(prefix="neurodeploy-test-plugins-"))
    _metadata.append(folder)
    plugin_support.provide(folder)


def pytest_unconfigure(config):
    plugin_support.withdraw()
    for folder in _metadata:
        shutil.rmtree(folder, ignore_errors=True)
    _metadata.clear()
