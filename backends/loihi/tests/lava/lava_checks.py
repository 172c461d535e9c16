"""What the Lava cross-checks share: Lava required (or the module skipped), and the comparison of a compiled
program's emulator trace with Lava's, population by population and step by step."""

import importlib
import os

import numpy as np
import pytest


def _require(module: str, what: str) -> None:
    """Skip the calling test module without ``module``; under NEURODEPLOY_REQUIRE_LAVA=1 (``make test-lava``, CI)
    fail its collection instead."""
    if os.environ.get("NEURODEPLOY_REQUIRE_LAVA") == "1":
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(
                f"NEURODEPLOY_REQUIRE_LAVA=1 but {what} cannot be imported ({exc}): the Lava cross-checks must run; "
                "`make test-lava` creates .venv-lava (Python 3.10, lava-nc==0.10.0, lava-dl==0.6.0) and runs them there"
            ) from exc
    else:
        pytest.importorskip(module, reason=f"{what} is not installed; the Lava cross-checks run in .venv-lava")


def require_lava() -> None:
    """lava-nc. Looks for ``lava.magma``: this folder, on sys.path for the shared test helpers, is a namespace
    package called ``lava`` too."""
    _require("lava.magma", "lava-nc")


def require_netx() -> None:
    """lava-dl's netx."""
    _require("lava.lib.dl.netx", "lava-dl's netx")


def assert_program_equals_lava(program, x: np.ndarray, steps: int, label: str) -> None:
    """Run ``program`` (a binary-mode Loihi Program read back from its artifact) on ``x`` for ``steps`` steps in
    Lava's fixed_pt process models and in the emulator: every population's spikes, u and v at every Loihi step,
    and the readout, must be equal; every spiking population must fire (else the comparison is weak)."""
    from neurodeploy_loihi.lava_runner import run_program_in_lava

    lava = run_program_in_lava(program, x, steps)
    if program.network.input_bits:  # event frames, sent as graded spikes
        ours = program.network.run(program.input_frames(x), steps=steps + program.delay)
    else:
        ours = program.network.run(steps=steps + program.delay, input_bias=program.input_bias(x))
    for k, name in enumerate(program.names):
        assert ours.spikes[k].any() or program.roles[k] == "readout", f"{name} never fires: a weak comparison"
        for field in ("spikes", "u", "v"):
            a, b = getattr(ours, field)[k], getattr(lava.trace, field)[k]
            assert a.shape == b.shape == (len(x), steps + program.delay, *program.network.layers[k].shape)
            if not np.array_equal(a, b):
                where = tuple(int(i) for i in np.argwhere(a != b)[0])
                raise AssertionError(
                    f"{label}: {name} {field} differs from Lava first at (sample, step, *neuron) {where}: "
                    f"emulator {a[where]}, Lava {b[where]}"
                )
    run = program.run(x, steps)
    np.testing.assert_array_equal(lava.outputs, run.outputs)  # the readout, read from Lava's v
    assert np.ptp(run.outputs) > 0


def assert_same(ours, lava, names: list[str]) -> None:
    """Two traces (emulator, Lava) equal in every population's spikes or payloads, u and v at every step."""
    for k, name in enumerate(names):
        for field in ("spikes", "u", "v"):
            np.testing.assert_array_equal(
                getattr(lava, field)[k], getattr(ours, field)[k], err_msg=f"layer {k} ({name}): {field}"
            )
