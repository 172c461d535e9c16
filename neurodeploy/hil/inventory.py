"""The lab's board inventory: a TOML file (``hil/boards.toml`` in the repository is the documented example).

::

    [[board]]
    name = "speck-bench-1"          # letters, digits, '.', '_', '-'
    target = "speck"                # the target whose artifacts it runs
    adapter = "samna"               # optional: the target's adapter by default
    address = "speck2fdevkit:0"     # optional: the SDK's name for the device (empty: the first found)
    description = "Speck 2f dev kit on the lab PC"
    [board.settings]                # optional, the adapter's (``neurodeploy hil list --help-settings``)
    step_us = 1000

    [[board]]
    name = "fake-speck"             # a fake board: its name contains "fake" and its target's name
    target = "speck"
    fake = true
    [board.faults]                  # optional: what the fake board does wrong, on purpose
    drop = 0.05

Which file: ``--inventory PATH``, else ``$NEURODEPLOY_BOARDS``, else ``hil/boards.toml`` under the current
folder.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from neurodeploy.errors import DataError
from neurodeploy.fileio import read_regular_file
from neurodeploy.hil.device import Board

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the Python 3.10 environments
    import tomli as tomllib

ENVIRONMENT = "NEURODEPLOY_BOARDS"
DEFAULT = Path("hil") / "boards.toml"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEYS = {"name", "target", "adapter", "address", "description", "settings", "fake", "faults"}
_SCALARS = (str, int, float, bool)


def locate(path: str | os.PathLike | None = None) -> Path:
    """The inventory file to read: ``path``, else ``$NEURODEPLOY_BOARDS``, else ``hil/boards.toml`` here."""
    if path:
        return Path(path)
    if os.environ.get(ENVIRONMENT):
        return Path(os.environ[ENVIRONMENT])
    if DEFAULT.is_file():
        return DEFAULT
    raise DataError(
        f"no board inventory: pass --inventory PATH, set {ENVIRONMENT}, or run where {DEFAULT} exists (the "
        "repository's hil/boards.toml is the documented example, with a fake board per target)"
    )


def load_inventory(path: str | os.PathLike | None = None) -> dict[str, Board]:
    """The boards of the inventory file (:func:`locate`), by name, checked."""
    where = locate(path)
    try:
        raw = read_regular_file(where, what=f"board inventory {where}")
    except FileNotFoundError:
        raise DataError(f"board inventory {where} does not exist") from None
    except OSError as exc:
        raise DataError(f"cannot read board inventory {where}: {exc.strerror or exc}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"board inventory {where} is not valid TOML: {exc}") from None
    return parse_inventory(document, str(where))


def parse_inventory(document: dict[str, Any], where: str) -> dict[str, Board]:
    """The boards of a parsed inventory document; every problem is a DataError naming the board and the key."""
    unknown = sorted(set(document) - {"board"})
    if unknown:
        raise DataError(f"{where}: unknown top-level key(s) {', '.join(unknown)}; boards are [[board]] tables")
    entries = document.get("board", [])
    if not isinstance(entries, list):
        raise DataError(f"{where}: 'board' must be an array of tables ([[board]])")
    boards: dict[str, Board] = {}
    for number, entry in enumerate(entries, 1):
        board = _board(entry, f"{where}: board {number}")
        if board.name in boards:
            raise DataError(f"{where}: two boards are named {board.name!r}")
        boards[board.name] = board
    return boards


def _board(entry: Any, where: str) -> Board:
    if not isinstance(entry, dict):
        raise DataError(f"{where} is not a table")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(unknown)}; a board takes {', '.join(sorted(_KEYS))}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DataError(f"{where}: 'name' must be 1 to 64 letters, digits, '.', '_' or '-' (got {name!r})")
    where = f"{where} ({name})"
    target = entry.get("target")
    if not isinstance(target, str) or not _NAME.fullmatch(target):
        raise DataError(f"{where}: 'target' must name a neurodeploy target (got {target!r})")
    texts = {}
    for key in ("adapter", "address", "description"):
        value = entry.get(key, "")
        if not isinstance(value, str) or len(value) > 256:
            raise DataError(f"{where}: {key!r} must be a string of at most 256 characters")
        texts[key] = value
    if any(ch.isspace() or not ch.isprintable() for ch in texts["address"]):
        # an address goes into SDK configuration (sPyNNaker's spynnaker.cfg): a line break would add keys there
        raise DataError(f"{where}: 'address' must not contain spaces, line breaks or control characters")
    fake = entry.get("fake", False)
    if not isinstance(fake, bool):
        raise DataError(f"{where}: 'fake' must be true or false")
    if fake and not ("fake" in name and target in name):
        raise DataError(
            f"{where}: a fake board's name must contain 'fake' and its target's name ({target!r}), so that no "
            "report of a fake run can pass for a board's"
        )
    if not fake and "fake" in name:
        raise DataError(f"{where}: only a fake board (fake = true) may have 'fake' in its name")
    tables = {}
    for key in ("settings", "faults"):
        table = entry.get(key, {})
        if not isinstance(table, dict) or not all(isinstance(v, _SCALARS) for v in table.values()):
            raise DataError(f"{where}: {key!r} must be a table of strings, numbers and booleans")
        tables[key] = dict(table)
    if tables["faults"] and not fake:
        raise DataError(f"{where}: only a fake board takes 'faults'")
    return Board(
        name=name,
        target=target,
        adapter=texts["adapter"],
        address=texts["address"],
        settings=tables["settings"],
        fake=fake,
        faults=tables["faults"],
        description=texts["description"],
    )
