"""The device contract: what a backend's board adapter does, and the errors a board run can end in.

A backend that can run its artifacts on a lab board returns a :class:`Device` from ``Backend.device(board,
clock)``. The adapter is written against the vendor's own SDK (samna, Lava, sPyNNaker, pynn_brainscales2), which
it imports when the board is opened, never at module load. Every adapter also runs on a *fake* board: the vendor
SDK's surface replaced, at the transport level, by one that replays the emulator and injects faults on command,
so the harness (:mod:`neurodeploy.hil.harness`) and the adapter's own code are tested without hardware.

The harness calls, in order: :meth:`Device.check` (the artifact and inputs, before anything is sent),
:meth:`Device.reference` (the emulator's record of every sample), :meth:`Device.open`, :meth:`Device.load`, then
:meth:`Device.run_sample` per sample, and :meth:`Device.close` whatever happened. A record (:class:`Observed`)
holds, per layer the chip lets a host watch, the spike count of every neuron at every step: the board's record
and the emulator's are compared value for value on bit-exact targets.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from neurodeploy.errors import DataError, NeurodeployError


class BoardError(NeurodeployError):
    """A board could not be used or a run on it did not complete. ``retryable``: whether running the same sample
    again, from the configured initial state, may succeed without changing what a completed run gives."""

    retryable = False


class BoardUnavailable(BoardError):
    """The board is missing, busy, of another kind than the inventory says, or its SDK is not installed."""


class BoardVersionError(BoardError):
    """The board's firmware or the installed SDK is a version the adapter does not support."""


class BoardRejected(BoardError):
    """The device (or its SDK's validation) rejected the artifact's configuration."""


class BoardTimeout(BoardError):
    """A bounded wait on the board ran out."""

    retryable = True


class BoardDisconnected(BoardError):
    """The board went away during a run."""

    retryable = True


@dataclass(frozen=True)
class Board:
    """One board of the inventory (``hil/boards.toml``)."""

    name: str
    target: str
    """The neurodeploy target whose artifacts it runs (``speck``, ``loihi``, ``spinnaker``, ``brainscales2``)."""
    adapter: str
    """How it is reached: the backend's adapter name (``samna``, ``lava``, ``spinnaker``, ``brainscales2``)."""
    address: str = ""
    """The device's identifier in its SDK: a samna device name (``speck2fdevkit:0``), a SpiNNaker board's IP
    address or a spalloc server, ... (empty: the first the SDK finds)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Adapter settings (time step, waits, retries), checked by the adapter."""
    fake: bool = False
    """A fake board: the adapter's code against a replay of the emulator instead of the vendor SDK."""
    faults: dict[str, Any] = field(default_factory=dict)
    """On a fake board, the faults it injects (the adapter's ``faults`` lists the names)."""
    description: str = ""

    def number(self, key: str, default: float, *, integer: bool = False) -> float:
        """Setting ``key`` (``default`` when absent), a number >= 0 (a whole one with ``integer``), else a
        DataError naming the board and the setting."""
        value = self.settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise DataError(f"board {self.name!r}: setting {key} must be a number >= 0 (got {value!r})")
        if integer and value != int(value):
            raise DataError(f"board {self.name!r}: setting {key} must be a whole number (got {value!r})")
        return value


def check_faults(faults: dict[str, Any], known: dict[str, str], what: str) -> None:
    """A fake board's ``faults`` must all be among ``known`` (name -> help); else a ValueError naming them and
    listing what ``what`` (e.g. "a fake Speck board") takes."""
    unknown = sorted(set(faults) - set(known))
    if unknown:
        raise ValueError(
            f"unknown fault(s) {', '.join(unknown)}; {what} takes " + "; ".join(f"{k} ({v})" for k, v in known.items())
        )


class Clock:
    """Wall-clock time, and waiting. Adapters wait through their clock, so that a fake board's runs take no real
    time (:class:`VirtualClock`)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock(Clock):
    """Time that passes only when someone waits: what a fake board's replay runs on."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, float(seconds))


@dataclass
class Observed:
    """One sample's record, from the board or from the emulator.

    ``layers[name]``: (steps, neurons) spike counts per step of each layer the chip lets a host watch (the same
    layers, names and neuron order in both records). ``outputs``: the host's readout of the record (the
    artifact's output vector), where the target defines one. ``events``: events received from the board;
    ``out_of_order``: of those, how many arrived after an event with a later timestamp; ``stale``: events left
    over from an earlier sample, flushed before this one started (a previous read that ended too early)."""

    layers: dict[str, np.ndarray]
    outputs: np.ndarray | None = None
    events: int = 0
    out_of_order: int = 0
    stale: int = 0
    seconds: float = 0.0


class Device(ABC):
    """A board adapter for one :class:`Board`. Subclasses implement the abstract methods; the vendor SDK is
    imported in :meth:`open`."""

    faults: ClassVar[dict[str, str]] = {}
    """The faults this adapter's fake board injects, with a line of help each."""
    settings_help: ClassVar[dict[str, str]] = {}
    """The board settings the adapter reads, with a line of help each."""
    compare: ClassVar[str] = "exact"
    """How the harness compares the board's record with the emulator's: ``exact`` (bit-exact targets), every
    count of every watched layer at every step equal; ``statistic`` (analog targets), :meth:`compare_layer`'s
    own rule, which :meth:`compare_rule` states."""

    def __init__(self, board: Board, clock: Clock) -> None:
        self.board = board
        self.clock = clock

    @abstractmethod
    def check(self, artifact: Any, inputs: Any, steps: int, encoding: Any) -> Any:
        """Check that the artifact can run on this board and the inputs are what it takes, before anything is
        sent; return the inputs as the adapter sends them (batch first). Raise :class:`BoardUnavailable` for an
        artifact of another target or one that is not board-ready, a ``DataError`` for inputs of the wrong
        shape."""

    @abstractmethod
    def reference(self, prepared: Any, steps: int) -> list[Observed]:
        """The emulator's record of every prepared sample, as the board would give it."""

    @abstractmethod
    def open(self) -> dict[str, Any]:
        """Find and open the board; return what it says about itself (serial, firmware, SDK version)."""

    @abstractmethod
    def load(self) -> None:
        """Write the checked artifact's configuration to the open board."""

    @abstractmethod
    def run_sample(self, prepared: Any, index: int, steps: int) -> Observed:
        """Run sample ``index`` of the prepared inputs from the configured initial state; every wait bounded."""

    @abstractmethod
    def close(self) -> None:
        """Release the board; safe to call when it is not open, or after it went away."""

    def compare_rule(self) -> str:
        """The comparison rule in words, for the report."""
        return "every spike count of every watched layer at every step equal"

    def compare_layer(self, got: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
        """One watched layer's comparison, (steps, neurons) counts on both sides of the same shape: the report's
        entry for it, with ``match`` (bool). Here the exact rule (:func:`exact_layer`)."""
        return exact_layer(got, expected)

    def vendor_sdk(self, fake: Callable[[], Any], real: Callable[[], Any], what: str, install: str) -> Any:
        """The SDK the board is driven through: on a fake board ``fake()`` (a ValueError from it, a fault it cannot
        take, is a DataError naming the board); otherwise, where :meth:`sdk_status` allows, ``real()``, which
        imports the vendor's module (its failure a :class:`BoardUnavailable` naming ``what`` and ``install``)."""
        if self.board.fake:
            try:
                return fake()
            except ValueError as exc:
                raise DataError(f"board {self.board.name!r}: {exc}") from None
        status = self.sdk_status()
        if status is not None:
            raise BoardUnavailable(f"board {self.board.name!r}: {status}")
        try:
            return real()
        except Exception as exc:
            raise BoardUnavailable(f"board {self.board.name!r}: {what} does not import ({exc}); {install}") from exc

    discoverable: ClassVar[bool] = True
    """Whether the SDK can list the attached boards (USB devices can; a board on a network, reached by its
    address, cannot: it is found, or not, when it is opened)."""

    def compare_outputs(self, got: np.ndarray | None, expected: np.ndarray | None) -> dict[str, Any] | None:
        """The readout's comparison (the artifact's output vector as the host computes it from the board's
        record), the report's entry for it with ``match``; None where the readout is not judged. Here the exact
        rule: every value equal (a readout the host computes from state read back, such as a membrane, is
        compared as well as the spikes), and a readout the board did not give where the emulator has one is a
        mismatch."""
        if expected is None:
            return None
        if got is None:
            return {"differing": None, "problem": "not reported by the board", "match": False}
        got, expected = np.asarray(got), np.asarray(expected)
        if got.shape != expected.shape:
            return {"differing": None, "problem": f"shape {got.shape}", "match": False}
        differing = int(np.count_nonzero(got != expected))
        return {"differing": differing, "match": differing == 0}

    @classmethod
    def discover(cls) -> list[str]:
        """The addresses of boards this adapter's SDK finds attached (none when the SDK is missing)."""
        return []

    @classmethod
    def sdk_status(cls) -> str | None:
        """None when the vendor SDK can be used here; otherwise why not (what to install)."""
        return None

    @classmethod
    def fake_status(cls) -> str | None:
        """None when this adapter's fake board can run here; otherwise why not (a fake that replays the network in
        a simulator of the vendor's needs that simulator)."""
        return None


def exact_layer(got: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    """The exact rule for one layer's (steps, neurons) counts: spikes on both sides, ``differing`` (how many
    (step, neuron) counts differ), the first step that does, and ``match`` when none does."""
    differ = got != expected
    steps_differing = np.flatnonzero(differ.reshape(len(differ), -1).any(axis=1))
    return {
        "board_spikes": int(got.sum()),
        "emulator_spikes": int(expected.sum()),
        "differing": int(differ.sum()),
        "first_step_differing": int(steps_differing[0]) if len(steps_differing) else None,
        "match": not len(steps_differing),
    }
