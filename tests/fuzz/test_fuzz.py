"""The fuzz harness in the test suite (issue #10): its detectors, its determinism, and a short campaign.

The short campaign runs ``NEURODEPLOY_FUZZ_CASES`` cases (default 300, every mutator in proportion to its weight,
fixed seed) on two worker processes; the long one is ``python -m tests.fuzz.harness`` (see harness.py).
A failure message is the campaign's report: the table by mutator and class, every distinct finding, and the
command that replays it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from . import mutators
from .harness import Pool, Settings, run_campaign
from .sandbox import Case, Fifo, Link
from .worker import FAILURES

SEED = 20240610
CASES = int(os.environ.get("NEURODEPLOY_FUZZ_CASES", "300"))


def _evil(behaviour: str, command: str = "compile", **kwargs) -> Case:
    argv = [command, behaviour] + (["--output", "y.npz"] if command == "emulate" else [])
    outputs = {"cwd/y.npz": "file"} if command == "emulate" else {"cwd/out": "artifact"}
    return Case(f"selftest.{behaviour}", 0, kwargs.pop("files", {}), [argv], kwargs.pop("outputs", outputs), **kwargs)


SELF_TESTS = [
    (_evil("ok"), "ok"),
    (_evil("error"), "error"),
    (_evil("internal"), "internal"),
    (_evil("silent_failure"), "internal"),
    (_evil("memory"), "internal"),  # the worker's address-space limit turns a 64 GiB allocation into MemoryError
    (_evil("traceback"), "traceback"),
    (_evil("printed_traceback"), "traceback"),
    (_evil("hang"), "hang"),
    (_evil("crash"), "crash"),
    (_evil("read_canary"), "escape"),
    (_evil("read_outside"), "escape"),
    (_evil("read_unlisted", files={"art/unlisted.json": b"{}"}, unlisted=["art/unlisted.json"]), "escape"),
    (_evil("follow_symlink", files={"art/linked.json": Link("../data/real.json"), "data/real.json": b"{}"}), "escape"),
    (_evil("copy_canary"), "escape"),
    (_evil("write_outside"), "touched"),
    (_evil("delete_canary"), "touched"),
    (_evil("leftover"), "touched"),
    (_evil("replace_output", "emulate", files={"cwd/y.npz": Fifo()}), "touched"),
    (_evil("nan", "emulate"), "nonfinite"),
    (_evil("no_output", "emulate"), "nonfinite"),
    (_evil("finite", "emulate"), "ok"),
    (_evil("ok", expect="reject", why="NaN weights"), "accepted"),
    (_evil("error", expect="ok"), "control"),
]


def test_harness_detects_every_class(tmp_path):
    """Each misbehaviour of a stand-in ``main`` lands in its class (hang and crash replace the worker)."""
    settings = Settings(workers=2, timeout=5, entry=f"{__package__}.evil:main", quiet=True)
    pool = Pool(settings, tmp_path / "home", None)
    results: dict[int, dict] = {}
    try:
        pool.start()
        jobs = [(i, case.mutator, 0, case) for i, (case, _) in enumerate(SELF_TESTS)]
        pool.run(jobs, lambda index, result: results.__setitem__(index, result))
    finally:
        pool.stop()
    got = {case.mutator: results[i]["class"] for i, (case, _) in enumerate(SELF_TESTS)}
    assert got == {case.mutator: expected for case, expected in SELF_TESTS}
    assert results[12]["detail"].endswith("through a symlink (to data/real.json)")


@pytest.mark.parametrize("name", [n for n, m in mutators.MUTATORS.items() if not m.needs_bases])
def test_mutators_are_reproducible(name):
    """The same (mutator, seed) builds the same case, so a saved finding replays."""
    root = Path(tempfile.gettempdir()) / "fuzz-root"
    first, second = (mutators.make_case(name, 12345, root, None) for _ in range(2))
    assert first.files == second.files
    assert (first.commands, first.outputs, first.expect) == (second.commands, second.outputs, second.expect)
    assert first.commands, "a case runs at least one command"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    return run_campaign(CASES, SEED, tmp_path_factory.mktemp("fuzz"), Settings(workers=2, timeout=60, quiet=True))


@pytest.mark.slow
def test_short_campaign_has_no_crash_hang_internal_error_or_escape(campaign):
    assert len(campaign.results) == CASES
    bad = {cls: n for cls, n in campaign.counts.items() if cls in FAILURES and cls != "accepted"}
    assert not bad, "\n" + campaign.report()


@pytest.mark.slow
def test_short_campaign_refuses_bad_input(campaign):
    """NaN/Inf weights and inputs, labels outside the classes, 10**9 steps, unsigned edits: refused, not run."""
    assert campaign.counts.get("accepted", 0) == 0, "\n" + campaign.report()
