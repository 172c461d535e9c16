"""The SpiNNaker board adapter, written against sPyNNaker 1!7.4.1's PyNN API (``pyNN.spiNNaker``).

**Open**: sPyNNaker reads its configuration from ``.spynnaker.cfg`` in the home folder and ``spynnaker.cfg`` in
the working folder (``spinn_utilities/config_holder.py``) and writes its reports under the working folder; the
adapter points both at a temporary folder for the run (``HOME``, ``XDG_CONFIG_HOME`` and the working folder, as
``run_pynn.map_on_virtual_board`` does; restored by :meth:`SpiNNakerDevice.close`). Its ``spynnaker.cfg`` says
where the board is (``spinn_machine.cfg``'s ``[Machine]`` keys): ``machine_name`` = the inventory's address for a
board reached directly, or ``spalloc_server`` = the address where it is a spalloc server (``http://`` or
``https://``: the new spalloc, credentials from ``SPALLOC_USER`` / ``SPALLOC_PASSWORD``; ``spalloc://user@host:port``
the old one), ``version`` = the board's version (setting ``version``: 3 for a 4-chip SpiNN-3, 5 for a 48-chip
SpiNN-5 or spalloc machines), and ``post_simulation_overrun_before_error`` = setting ``timeout_s`` (the seconds
sPyNNaker waits beyond a run's end for the cores to stop, ``application_runner.py``). Then ``sim.setup`` with the
netlist's time step (``run_pynn.setup``). sPyNNaker 7 is required (its PyNN surface and config keys are 7's).

**Load**: the netlist is built with the artifact's PyNN script (:mod:`neurodeploy_pynn.run_pynn`'s ``build``:
``IF_curr_delta`` populations with their ``max_expected_summed_weight``, ``FromListConnector`` projections),
recording the spikes of every population and V of the readout; ``sim.run(0)`` then contacts the board (spalloc's
allocation, the machine's discovery), maps and loads, so that a board that cannot be reached or a network that
does not map fails before any sample (sPyNNaker meets the board at the first run, not at ``setup``).

**Run**, per sample, as ``run_pynn.run`` does: the input population's ``i_offset`` (the prepared currents, raw
s16.15) and every V back to its initial value (``set_state``: after a run sPyNNaker's ``initialize`` no longer
sets V), T + delay + 1 ticks (sPyNNaker records V at the start of a tick, so the extra tick holds V after the
sample's last), the recordings read back, then the flush (every V far below threshold, the input off, the longest
delay + 1 ticks). sPyNNaker keeps the recordings of every run: the sample's spikes are those stamped inside its
ticks. A spike is stamped with its tick's number times the time step, the simulation's first tick being 0 and time
going on across runs (``neural_modelling/src/neuron/c_main_neurons.c``: the clock starts at -1 and counts up
before a tick's update; pauses step it back), so tick = time / ts. A time off that grid is not binned and is
counted in ``out_of_order``, as are a neuron's spikes that come back after a later one of its own; spikes stamped
in the flush before a sample (which a right flush never has) are counted as ``stale``. A provenance warning that
the board lost spikes or records during the sample (sPyNNaker logs its provenance reports as warnings:
``ProvenanceWriter.insert_report``) makes the sample :class:`BoardDataLost`, which the harness runs again.

**Errors**, by exception class name (the real classes live in spinnman, spalloc, pacman, spinn_machine and
spinn_front_end_common, which need not import here): before a sample, no answer from the board (spinnman's IO
errors and timeouts) is :class:`BoardUnavailable`, as is a spalloc job that is not granted (busy) and a machine
whose size is not the configured version's (``SpinnMachineException``: the wrong kind of board); a network that
does not partition, place or route (``Pacman*``, sPyNNaker's synaptic configuration errors) is
:class:`BoardRejected`. During a sample, spinnman's timeouts are :class:`BoardTimeout` and its IO errors
:class:`BoardDisconnected`. sPyNNaker shuts the simulation down when a run fails (``AbstractSpinnakerBase._run``),
so the sample's next attempt first sets the board up again (end, setup, build, ``run(0)``).

**Discovery**: SpiNNaker boards are reached over Ethernet or through a spalloc server; nothing on the host lists
them, so :meth:`SpiNNakerDevice.discover` finds none and ``hil list`` relies on the inventory.

What the comparison assumes, unchecked without a board: the chip computes what the emulator does (checked against
the ARM arithmetic in ``test_spinnaker_arm.py``), no spike arrives late (sPyNNaker drops those and says so in its
provenance), and ``set_state`` / ``set`` between runs reach the cores before the next run's first tick.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurodeploy.errors import DataError
from neurodeploy.hil.device import (
    Board,
    BoardDisconnected,
    BoardError,
    BoardRejected,
    BoardTimeout,
    BoardUnavailable,
    BoardVersionError,
    Clock,
    Device,
    Observed,
)
from neurodeploy.readout import readout_skip, recorded_delay
from neurodeploy_pynn import fake_spynnaker, run_pynn, s1615, spinnaker

SUPPORTED_MAJOR = 7
"""The sPyNNaker major version the adapter is written against (1!7.4.1)."""
INSTALL = (
    "install sPyNNaker and PyNN in the environment neurodeploy runs in: pip install 'sPyNNaker==1!7.4.1' "
    "'pyNN==0.13.0' (sPyNNaker then provides pyNN.spiNNaker)"
)
VERSIONS = {3: "a 4-chip SpiNN-3", 5: "a 48-chip SpiNN-5 (or a spalloc machine)"}
SPALLOC = ("http://", "https://", "spalloc://")
"""Address prefixes of a spalloc server (``spinnman.spalloc.is_server_address``; ``spalloc://`` the old
service, ``parse_old_spalloc``)."""
LOGGERS = ("spynnaker", "spinn_front_end_common", "spinnman", "pacman", "spinn_machine")
LOST = re.compile(r"\blost\b|\bdropped\b|too late", re.IGNORECASE)
"""Provenance warnings that say the board lost spikes or records (``population_machine_vertex.py``,
``delay_extension_machine_vertex.py``: "lost packets", "dropped", "arrived too late")."""

_KINDS = {
    "SpiNNManCoresNotInStateException": "timeout",
    "SpinnmanTimeoutException": "timeout",
    "ProtocolTimeoutError": "timeout",
    "StateChangeTimeoutError": "busy",
    "SpallocException": "busy",
    "JobDestroyedError": "busy",
    "SpallocServerException": "busy",
    "SpinnMachineException": "kind",
    "PacmanException": "rejected",
    "SpynnakerSplitterConfigurationException": "rejected",
    "SynapticConfigurationException": "rejected",
    "DelayExtensionException": "rejected",
    "SynapseRowTooBigException": "rejected",
    "SpinnmanIOException": "io",
    "SpinnmanException": "io",
    "TimeoutError": "timeout",
    "OSError": "io",
}
"""An exception's class name (the first its class or a base of it has) -> what it means for the board."""


class BoardDataLost(BoardError):
    """The board reported spikes or records of the sample lost (its provenance); the sample is run again."""

    retryable = True


def _kind(exc: BaseException) -> str | None:
    for cls in type(exc).__mro__:
        if cls.__name__ in _KINDS:
            return _KINDS[cls.__name__]
    return None


class _Warnings(logging.Handler):
    """sPyNNaker's warnings while a sample runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a record that does not format says nothing about the board
            pass


class SpiNNakerDevice(Device):
    """A SpiNNaker board (or a spalloc machine) through sPyNNaker (see the module)."""

    faults = fake_spynnaker.FAULTS
    settings_help: ClassVar[dict[str, str]] = {
        "version": "the board's SpiNNaker version: 3 (a 4-chip SpiNN-3) or 5 (a 48-chip SpiNN-5; spalloc) (default 5)",
        "timeout_s": "seconds the cores may take beyond a run's end before it times out (default 5)",
        "time_scale_factor": "sPyNNaker's slow-down of the board's clock: 1 is real time (default: sPyNNaker's)",
    }

    def __init__(self, board: Board, clock: Clock) -> None:
        super().__init__(board, clock)
        self.version = int(board.number("version", 5, integer=True))
        if self.version not in VERSIONS:
            raise DataError(f"board {board.name!r}: setting version must be 3 or 5 (got {self.version})")
        self.timeout_s = board.number("timeout_s", 5.0)
        self.time_scale_factor = board.settings.get("time_scale_factor")
        if self.time_scale_factor is not None:
            self.time_scale_factor = int(board.number("time_scale_factor", 1, integer=True))
            if self.time_scale_factor < 1:
                raise DataError(f"board {board.name!r}: setting time_scale_factor must be at least 1")
        self.sdk: Any = None
        self.netlist: spinnaker.Netlist | None = None
        self.readout_delay = 0
        self.doc: dict[str, Any] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.populations: dict[str, Any] = {}
        self.info: dict[str, Any] = {}
        self.folder: str | None = None
        self.saved: tuple[str, dict[str, str | None]] | None = None
        self.set_up = False
        self.broken = False
        self.flushed_from = 0
        """The tick from which the flush after the last sample ran (its spikes are stale)."""

    # -- before the board ---------------------------------------------------------------------------------------
    def check(self, artifact: Any, inputs: Any, steps: int, encoding: Any) -> np.ndarray:
        from neurodeploy_pynn.backend import SpiNNakerBackend

        if artifact.target != "spinnaker":
            raise BoardUnavailable(
                f"board {self.board.name!r} runs spinnaker artifacts; {artifact.root} was compiled for "
                f"{artifact.target}: compile for --target spinnaker"
            )
        if steps < 1:
            raise DataError(f"steps must be at least 1 (got {steps})")
        backend = SpiNNakerBackend("spinnaker")
        netlist = backend.load(artifact, "snn")
        x = backend.prepare(netlist, inputs, steps=steps, encoding=encoding)
        self.netlist = netlist
        self.readout_delay = recorded_delay(artifact.manifest)
        self.doc, self.arrays = run_pynn.load(Path(artifact.root))
        return np.asarray(spinnaker.input_current(netlist, x), np.int64)

    def reference(self, prepared: np.ndarray, steps: int) -> list[Observed]:
        from neurodeploy_pynn.spinnaker_emulator import run as emulate

        netlist = self.netlist
        assert netlist is not None
        populations, projections = spinnaker.emulated(netlist)
        top = netlist.populations[netlist.readout["population"]]
        membrane = netlist.readout["kind"] == "membrane"
        result = emulate(
            populations,
            projections,
            steps=steps + netlist.delay,
            batch=len(prepared),
            i_offset={netlist.populations[0].name: prepared},
            record_spikes=[p.name for p in self._spiking()],
            record_v=[top.name] if membrane else [],
            v_ticks=tuple(sorted({top.depth, top.depth + self._skip(steps), top.depth + steps})) if membrane else (),
        )
        out = []
        for i in range(len(prepared)):
            layers = {
                p.name: result.spikes[p.name][i, p.depth : p.depth + steps].astype(np.int64) for p in self._spiking()
            }
            v = (
                (
                    result.checkpoint_v[top.depth + self._skip(steps)][top.name][i],
                    result.checkpoint_v[top.depth + steps][top.name][i],
                )
                if membrane
                else None
            )
            out.append(Observed(layers=layers, outputs=self._readout(layers, v, steps)))
        return out

    def _spiking(self) -> list[spinnaker.PopulationPlan]:
        assert self.netlist is not None
        return [p for p in self.netlist.populations if p.role != "readout"]

    def _skip(self, steps: int) -> int:
        """The steps at the start the readout leaves out (the artifact's readout delay, at most half the run)."""
        return readout_skip(self.readout_delay, steps)

    def _readout(self, layers: dict[str, np.ndarray], v: tuple[np.ndarray, np.ndarray] | None, steps: int) -> Any:
        """The host's readout, as :func:`neurodeploy_pynn.spinnaker.run` computes it: (V after depth + T ticks - V
        after depth + s ticks) / (θ (T - s)) of the readout population (raw V), s the steps the readout delay
        leaves out, or its spike rate over those steps times the scale."""
        netlist = self.netlist
        assert netlist is not None
        top = netlist.populations[netlist.readout["population"]]
        skip = self._skip(steps)
        if v is not None:
            value = (v[1].astype(np.float64) - v[0].astype(np.float64)) / s1615.ONE / (top.threshold * (steps - skip))
        else:
            counts = layers[top.name][skip:].sum(axis=0)
            value = counts / (steps - skip) * np.asarray(netlist.readout["scale"], np.float64).reshape(-1)
        return value.reshape(netlist.readout["shape"]).astype(np.float32)

    # -- the board ----------------------------------------------------------------------------------------------
    @classmethod
    def sdk_status(cls) -> str | None:
        for module in ("spynnaker", "pyNN"):
            if importlib.util.find_spec(module) is None:
                return f"{'sPyNNaker' if module == 'spynnaker' else 'PyNN'} is not installed: {INSTALL}"
        return None

    discoverable = False  # a SpiNNaker board is reached over Ethernet or through spalloc: nothing to enumerate

    @classmethod
    def discover(cls) -> list[str]:
        """None: a SpiNNaker board is reached over Ethernet (or through a spalloc server) at an address the
        inventory gives; there is no bus to enumerate."""
        return []

    def _sdk_version(self) -> str:
        version = getattr(self.sdk, "__version__", None)
        if version is None:
            try:
                version = importlib.metadata.version("sPyNNaker")
            except importlib.metadata.PackageNotFoundError:
                version = "?"
        return str(version)

    def _config(self) -> str:
        """The ``spynnaker.cfg`` of this run (see the module)."""
        address = self.board.address.strip() or ("spinn-fake" if self.board.fake else "")
        if not address:
            raise BoardUnavailable(
                f"board {self.board.name!r} has no address: set the inventory's address to the board's IP address "
                "or host name, or to a spalloc server (http(s)://... or spalloc://user@host:port)"
            )
        where = "spalloc_server" if address.lower().startswith(SPALLOC) else "machine_name"
        lines = [
            "[Machine]",
            f"{where} = {address}",
            f"version = {self.version}",
            f"post_simulation_overrun_before_error = {max(1, math.ceil(self.timeout_s))}",
        ]
        if self.time_scale_factor is not None:
            lines.append(f"time_scale_factor = {self.time_scale_factor}")
        return "\n".join(lines) + "\n"

    def _enter(self) -> None:
        """A temporary home and working folder holding this run's configuration."""
        config = self._config()
        folder = tempfile.mkdtemp(prefix="neurodeploy-spinnaker-")
        Path(folder, ".spynnaker.cfg").write_text("# neurodeploy: the run's settings are in spynnaker.cfg\n")
        Path(folder, "spynnaker.cfg").write_text(config)
        self.saved = (os.getcwd(), {key: os.environ.get(key) for key in ("HOME", "XDG_CONFIG_HOME")})
        self.folder = folder
        os.environ["HOME"] = folder
        os.environ["XDG_CONFIG_HOME"] = str(Path(folder, ".config"))
        os.chdir(folder)

    def _leave(self) -> None:
        if self.saved is not None:
            cwd, environment = self.saved
            self.saved = None
            try:
                os.chdir(cwd)
            except OSError:
                pass
            for key, value in environment.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def _error(self, exc: BaseException, during: str) -> BoardError:
        """sPyNNaker's exception as a board error: ``during`` is ``connect`` (open, load) or ``run`` (a sample)."""
        name = f"board {self.board.name!r}"
        what = f"{type(exc).__name__}: {exc}"
        kind = _kind(exc)
        if kind == "busy":
            return BoardUnavailable(f"{name}: the board was not granted (busy?): {what}")
        if kind == "kind":
            return BoardUnavailable(
                f"{name}: the machine is not {VERSIONS[self.version]} (setting version = {self.version}): {what}; "
                "set version to the board's, or choose another board"
            )
        if kind == "rejected":
            return BoardRejected(f"{name}: sPyNNaker could not map the network on the board: {what}")
        if during == "connect" and kind in ("timeout", "io"):
            return BoardUnavailable(
                f"{name}: the board at {self.board.address!r} does not answer: {what}; check that it is powered, "
                "booted and reachable, and the inventory's address"
            )
        if kind == "timeout":
            return BoardTimeout(f"{name}: {what} (setting timeout_s)")
        if kind == "io":
            return BoardDisconnected(f"{name}: the board went away: {what}")
        return BoardRejected(f"{name}: sPyNNaker failed: {what}")

    def open(self) -> dict[str, Any]:
        if self.sdk is None:
            self.sdk = self.vendor_sdk(
                lambda: fake_spynnaker.FakeSpynnaker(self.board.faults, self.clock),
                lambda: importlib.import_module("pyNN.spiNNaker"),
                "pyNN.spiNNaker",
                INSTALL,
            )
        version = self._sdk_version()
        major = re.match(r"(?:\d+!)?(\d+)", version)
        if major is None or int(major.group(1)) != SUPPORTED_MAJOR:
            raise BoardVersionError(
                f"board {self.board.name!r}: sPyNNaker {version} is installed; this adapter is written against "
                f"sPyNNaker {SUPPORTED_MAJOR} (1!7.4.1: its PyNN surface and configuration keys): {INSTALL}"
            )
        self._enter()
        try:
            run_pynn.setup(self.sdk, self.doc, "spiNNaker")
        except Exception as exc:
            if isinstance(exc, BoardError):
                raise
            raise self._error(exc, "connect") from exc
        self.set_up = True
        self.info = {"address": self.board.address, "version": self.version, "sPyNNaker": version}
        return self.info

    def load(self) -> None:
        sim = self.sdk
        try:
            self.populations, _ = run_pynn.build(sim, self.doc, self.arrays, "spiNNaker")
            sim.run(0)  # contact, allocate, map and load before the first sample
            self.flushed_from = self._now()
        except Exception as exc:
            if isinstance(exc, BoardError):
                raise
            raise self._error(exc, "connect") from exc
        self.broken = False

    def _now(self) -> int:
        return round(float(self.sdk.get_current_time()) / self.doc["simulator"]["timestep_ms"])

    def run_sample(self, prepared: np.ndarray, index: int, steps: int) -> Observed:
        if self.broken:  # the last run failed and sPyNNaker shut the simulation down: set the board up again
            self.close()
            self.open()
            self.load()
        sim, doc = self.sdk, self.doc
        timestep = doc["simulator"]["timestep_ms"]
        watch = _Warnings()
        loggers = [logging.getLogger(name) for name in LOGGERS]
        for logger in loggers:
            logger.addHandler(watch)
        started = self.clock.monotonic()
        try:
            initial = run_pynn.initial_v(doc, self.arrays)
            start = run_pynn.start_sample(sim, self.populations, doc, initial, prepared[index], "spiNNaker")
            ticks = run_pynn.sample_ticks(doc, steps, "spiNNaker")
            sim.run(ticks * timestep)
            observed = self._record(start, ticks, steps)
            stale_from, self.flushed_from = self.flushed_from, start + ticks
            run_pynn.flush_sample(sim, self.populations, doc, "spiNNaker")
        except Exception as exc:
            self.broken = True
            if isinstance(exc, BoardError):
                raise
            raise self._error(exc, "run") from exc
        finally:
            for logger in loggers:
                logger.removeHandler(watch)
        lost = [m for m in watch.messages if LOST.search(m)]
        if lost:
            raise BoardDataLost(f"board {self.board.name!r}: sample {index}: sPyNNaker reports data lost: {lost[0]}")
        observed.stale = self._stale(stale_from, start)
        observed.seconds = self.clock.monotonic() - started
        return observed

    def _spikes(self, name: str) -> np.ndarray:
        data = np.asarray(self.populations[name].spinnaker_get_data("spikes"), np.float64)
        return data.reshape(-1, 2)

    def _stale(self, begin: int, end: int) -> int:
        """Spikes stamped in ticks begin .. end - 1 (the flush before this sample)."""
        timestep = self.doc["simulator"]["timestep_ms"]
        stale = 0
        for p in self._spiking():
            tick = np.rint(self._spikes(p.name)[:, 1] / timestep)
            stale += int(((tick >= begin) & (tick < end)).sum())
        return stale

    def _record(self, start: int, ticks: int, steps: int) -> Observed:
        """The sample's record from what sPyNNaker recorded: every spiking population's spikes in its own window
        (ticks start + depth .. + T - 1), binned by tick; the readout's V at the window's ends."""
        netlist = self.netlist
        assert netlist is not None
        timestep = self.doc["simulator"]["timestep_ms"]
        layers: dict[str, np.ndarray] = {}
        events = out_of_order = 0
        for p in self._spiking():
            rows = self._spikes(p.name)
            exact = rows[:, 1] / timestep
            tick = np.rint(exact).astype(np.int64)
            inside = (tick >= start) & (tick < start + ticks)
            events += int(inside.sum())
            off_grid = inside & (np.abs(exact - tick) > 1e-6)
            out_of_order += int(off_grid.sum())
            neuron = rows[:, 0].astype(np.int64)
            # a neuron's spikes come back in time order (NeoBufferDatabase sorts by neuron, then time)
            same = neuron[1:] == neuron[:-1]
            out_of_order += int((same & (exact[1:] < exact[:-1]) & inside[1:]).sum())
            k = tick - start - p.depth
            keep = inside & ~off_grid & (k >= 0) & (k < steps) & (neuron >= 0) & (neuron < p.size)
            counts = np.zeros((steps, p.size), np.int64)
            np.add.at(counts, (k[keep], neuron[keep]), 1)
            layers[p.name] = counts
        v = None
        if netlist.readout["kind"] == "membrane":
            top = netlist.populations[netlist.readout["population"]]
            v = (self._v(top, start + top.depth + self._skip(steps)), self._v(top, start + top.depth + steps))
        return Observed(
            layers=layers, outputs=self._readout(layers, v, steps), events=events, out_of_order=out_of_order
        )

    def _v(self, population: spinnaker.PopulationPlan, tick: int) -> np.ndarray:
        """The readout population's V (raw) recorded at the start of ``tick`` (V after the ticks before it)."""
        timestep = self.doc["simulator"]["timestep_ms"]
        rows = np.asarray(self.populations[population.name].spinnaker_get_data("v"), np.float64).reshape(-1, 3)
        at = rows[np.rint(rows[:, 1] / timestep).astype(np.int64) == tick]
        v = np.zeros(population.size, np.float64)
        seen = np.zeros(population.size, bool)
        neuron = at[:, 0].astype(np.int64)
        ok = (neuron >= 0) & (neuron < population.size)
        v[neuron[ok]], seen[neuron[ok]] = at[ok, 2], True
        if not seen.all():
            raise BoardDataLost(
                f"board {self.board.name!r}: sPyNNaker has no V of {population.name!r} at tick {tick} for "
                f"{int((~seen).sum())} neuron(s)"
            )
        return np.rint(v * s1615.ONE).astype(np.int64)

    def close(self) -> None:
        try:
            if self.set_up and self.sdk is not None:
                self.set_up = False
                try:
                    self.sdk.end()
                except Exception:  # the board may be gone, or the simulation shut down; closing must not fail
                    pass
        finally:
            self.populations = {}
            self._leave()
