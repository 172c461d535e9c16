"""The lab suite's options: which board of the inventory, how many samples, which artifact.

    pytest hil --board NAME [--inventory hil/boards.toml] [--samples 16] [--steps T] [--artifact DIR]
        [--report-dir hil-reports]

Not collected by a plain ``pytest`` (the project's test paths are tests/ and backends/); every test here is
marked ``hil``.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("hil", "hardware in the loop")
    group.addoption("--board", help="the board to test (a name in the inventory)")
    group.addoption("--inventory", help="the board inventory (default: $NEURODEPLOY_BOARDS, hil/boards.toml)")
    group.addoption("--samples", type=int, default=16, help="test images run on the board (default 16)")
    group.addoption("--steps", type=int, help="time steps per sample (default: the target's)")
    group.addoption("--artifact", help="an artifact to run (default: the bundled MNIST CNN, compiled here)")
    group.addoption("--report-dir", default="hil-reports", help="where the reports go (default hil-reports)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.hil)


@pytest.fixture(scope="session")
def board(pytestconfig):
    from neurodeploy.hil.inventory import load_inventory

    name = pytestconfig.getoption("--board")
    if not name:
        pytest.skip("pass --board NAME (a board of the inventory; `neurodeploy hil list` shows them)")
    boards = load_inventory(pytestconfig.getoption("--inventory"))
    if name not in boards:
        pytest.fail(f"no board {name!r} in the inventory; it has {', '.join(boards)}")
    return boards[name]
