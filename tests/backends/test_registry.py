"""Backends are found through the neurodeploy.backends entry-point group; the test plugin distribution in
tests/plugins/dummy_backend proves it. No environment installs it: tests/conftest.py provides its metadata to the
tests as an installed distribution's (see plugin_support), so the registry finds it through its entry point."""

from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest

from neurodeploy import compile_model, emulate_artifact
from neurodeploy.backends import registry
from neurodeploy.errors import BackendLoadError, UnknownTargetError

MODEL = Path(__file__).resolve().parents[2] / "examples" / "mnist" / "mnist_cnn.onnx"


def test_plugin_is_discovered_through_its_entry_point():
    backends = registry.available_backends()
    assert {"reference", "dummy"} <= set(backends)
    assert backends["dummy"].distribution == "neurodeploy-dummy"
    backend = registry.get_backend("dummy")
    assert type(backend).__module__ == "neurodeploy_dummy"
    assert backend.target == "dummy"


def test_compile_and_emulate_go_through_the_plugin(tmp_path):
    from neurodeploy_dummy import DummyBackend

    artifact = compile_model(MODEL, "dummy", tmp_path / "out")
    assert artifact.manifest["target"]["name"] == "dummy"
    assert artifact.manifest["target"]["backend"] == "neurodeploy_dummy.DummyBackend"
    before = DummyBackend.calls
    result = emulate_artifact(artifact, np.zeros((2, 1, 28, 28), np.float32), steps=2)
    assert DummyBackend.calls == before + 1
    assert result.outputs.shape == (2, 10)


def fake(*pairs):
    return lambda: [EntryPoint(name, value, registry.GROUP) for name, value in pairs]


def test_duplicate_names_are_an_error_naming_both_sources():
    with pytest.raises(BackendLoadError, match="'speck' is registered twice"):
        registry.available_backends(fake(("speck", "a:B"), ("speck", "c:D")))
    with pytest.raises(BackendLoadError, match="'reference' is registered twice: by neurodeploy"):
        registry.available_backends(fake(("reference", "x:Y")))


def test_unknown_target_lists_installed_ones():
    with pytest.raises(UnknownTargetError, match=r"unknown target 'loihi9'; installed targets: .*dummy.*reference"):
        registry.get_backend("loihi9")


def test_broken_plugins_fail_clearly():
    entries = registry.available_backends(fake(("ghost", "no_such_module:Backend"), ("numpy", "numpy:ndarray")))
    with pytest.raises(BackendLoadError, match=r"target 'ghost' .* failed to load"):
        entries["ghost"].load()
    with pytest.raises(BackendLoadError, match="not a neurodeploy Backend subclass"):
        entries["numpy"].load()
