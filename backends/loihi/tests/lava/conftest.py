"""The Lava cross-checks need lava-nc (Python 3.10, `.venv-lava`). Without it they skip, unless
NEURODEPLOY_REQUIRE_LAVA=1 (set by `make test-lava`, so in CI): then a missing Lava fails the collection, and
any test here that skips fails."""

import os

import pytest

REQUIRED = os.environ.get("NEURODEPLOY_REQUIRE_LAVA") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under NEURODEPLOY_REQUIRE_LAVA=1 a skipped cross-check is a failed one (this hook sees this folder only)."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRED and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped under NEURODEPLOY_REQUIRE_LAVA=1, which forbids skips here: {report.longrepr}"
