"""A fake ``pyNN.spiNNaker``: the part of sPyNNaker 1!7.4.1's PyNN surface the SpiNNaker board adapter uses
(:mod:`neurodeploy_pynn.spinnaker_device`, through :mod:`neurodeploy_pynn.run_pynn`), over a replay of the
emulator, with faults on command.

It stands where ``import pyNN.spiNNaker`` would: ``setup``, ``run``, ``end``, ``get_current_time``, ``IF_curr_delta``,
``IF_curr_exp``, ``Population`` (``record``, ``set``, ``initialize``, ``set_state``, ``spinnaker_get_data``),
``FromListConnector``, ``Projection``, and exceptions named as spinnman's, pacman's, spinn_machine's and
spinn_front_end_common's (the adapter knows them by class name, as the real classes live in packages that may not
import). Like sPyNNaker, it reads its configuration from ``spynnaker.cfg`` in the working folder when ``setup`` is
called (``[Machine] machine_name`` or ``spalloc_server``, ``version``, ``post_simulation_overrun_before_error``),
contacts the board and maps the network at the first ``run``, and shuts the simulation down when a run fails
(``AbstractSpinnakerBase._run``: ``stop()`` then ``shut_down()``), so that nothing but ``end`` and a new ``setup``
works after an error.

**The host**, as sPyNNaker's does it: a population's ring-buffer shifts from its ``max_expected_summed_weight``
(:func:`neurodeploy_pynn.s1615.ring_buffer_shift`, ``PopulationVertex.get_ring_buffer_shifts``), every weight
rounded to a 16-bit word at that shift (:func:`neurodeploy_pynn.s1615.weight_words`,
``SynapseDynamicsStatic``), delays rounded to ticks, parameters and state S1615-encoded
(:meth:`neurodeploy_pynn.spinnaker_emulator.LifPopulation.from_pynn`). ``initialize`` after a run changes only
the value a reset would go back to (sPyNNaker's warning "Calling initialize without reset will have no effect");
``set_state`` and ``set`` change what the next run starts from.

**The chip** keeps its state across ``run`` calls, ring buffers included: time goes on from run to run (the first tick
of the simulation is 0, ``c_main_neurons.c``), V, the refractory timers and the synapse states carry over, and spikes
still in flight at the end of a run land in the next one. It runs one tick at a time through the emulator
(:func:`neurodeploy_pynn.spinnaker_emulator.run`, one step, no projections) and holds the ring buffers itself: a
tick's spikes add each synapse's word to the target's slot for tick + delay; at the slot's tick the sum saturates at
0xFFFF, shifts left by the receptor's shift (wrapping to int32) and, for ``IF_curr_delta``'s delta synapses, is
multiplied by ``kdivk(1.0, ts)``; the excitatory minus the inhibitory input is added to the tick's ``i_offset``
(wrapping), which is what the emulator's own transfer gives, as ``I = exc - inh + I_offset`` is a sum of wrapping
int32 adds (see the emulator's module, steps 1-4). ``IF_curr_exp``'s exponential synapses add
``decay_s1615(input, init)`` to their synaptic current before the tick instead, as the chip's transfer does. Spikes
are recorded stamped with their tick's number times the time step, V with the tick at whose start it was read (before
the update, ``neuron_impl_standard.h``), as ``spinnaker_get_data`` returns them (``NeoBufferDatabase``: spikes as
(neuron, time) rows sorted by neuron then time, V as (neuron, time, value) rows). Time passes on the
:class:`~neurodeploy.hil.device.Clock` as the board's would: a run of n ticks takes n time steps.

A fault is a board's or a link's misbehaviour, set in the inventory (:data:`FAULTS`). Runs are counted from 0,
the runs of 0 ms (the adapter's mapping run) left out: the adapter runs a sample as two runs, the sample and the
flush after it, so sample i is run 2i.
"""

from __future__ import annotations

import configparser
import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.hil.device import Clock, check_faults
from neurodeploy_pynn import s1615
from neurodeploy_pynn.spinnaker_emulator import LifPopulation
from neurodeploy_pynn.spinnaker_emulator import run as emulate

FAULTS = {
    "missing": "the board does not answer at its address (true/false): the first contact fails as spinnman's does",
    "busy": "the spalloc server does not grant the board, another job holds it (true/false)",
    "kind": "the board is of this SpiNNaker version whatever the configuration says (3: SpiNN-3, 5: SpiNN-5)",
    "sdk_version": "the sPyNNaker version installed (the adapter supports 1!7.x)",
    "reject": "mapping the network fails as pacman's placer does, with this message",
    "drop": "the first N spikes recorded in every run are lost",
    "duplicate": "the first N spikes recorded in every run are recorded twice",
    "reorder": "spinnaker_get_data returns the spikes latest first (true/false)",
    "off_grid": "the first N spikes recorded in every run carry a time half a tick off the tick grid",
    "lost_at": "run K (from 0) ends with sPyNNaker's provenance warning that a core's input buffer lost packets",
    "timeout_at": "run K (from 0) times out: the cores do not reach their end state within the configured overrun",
    "timeout_times": "... and the N runs from the K-th on (default 1; a sample run again is run again)",
    "disconnect_at": "the board goes away during run K (from 0)",
    "disconnect_for": "... and does not answer for that many attempts to reach it (default 0: back at the first)",
}
"""The faults a fake SpiNNaker board injects, as its inventory entry's ``faults`` table names them."""

VERSION = "1!7.4.1"
"""The sPyNNaker the fake plays."""
SIZES = {3: (2, 2), 5: (8, 8)}
"""A SpiNN-3 and a SpiNN-5 board's chips, (width, height) (``spinn_machine/version``)."""
PROVENANCE = logging.getLogger("spinn_front_end_common.interface.provenance.provenance_writer")
"""Where sPyNNaker logs its provenance reports (``ProvenanceWriter.insert_report``)."""


# -- sPyNNaker's exceptions, by name (the adapter maps them by class name) -------------------------------------
class SpinnmanException(Exception):
    pass


class SpinnmanIOException(SpinnmanException):
    pass


class SpinnmanTimeoutException(SpinnmanException):
    pass


class SpiNNManCoresNotInStateException(SpinnmanTimeoutException):
    pass


class SpallocException(SpinnmanException):
    pass


class SpallocBoardUnavailableException(SpallocException):
    pass


class SpinnMachineException(Exception):
    pass


class PacmanException(Exception):
    pass


class PacmanPlaceException(PacmanException):
    pass


class SpinnFrontEndException(Exception):
    pass


class ConfigurationException(SpinnFrontEndException):
    pass


class SimulatorShutdownException(Exception):
    """spinn_utilities' error for a call after the simulation was shut down."""


# -- the PyNN objects ------------------------------------------------------------------------------------------
class _IFCurrDelta:
    """PyNN's cell type: its parameters as given."""

    model = "IF_curr_delta"

    def __init__(self, **parameters: Any) -> None:
        self.parameters = parameters


class _IFCurrExp(_IFCurrDelta):
    model = "IF_curr_exp"


class _FromListConnector:
    def __init__(self, conn_list: Any, column_names: list[str] | None = None, **_: Any) -> None:
        self.conn_list = np.asarray(conn_list, np.float64)
        self.column_names = list(column_names or [])


class _Population:
    def __init__(
        self,
        size: int,
        cellclass: _IFCurrDelta,
        *,
        sim: FakeSpynnaker,
        initial_values: dict[str, Any] | None = None,
        label: str | None = None,
        additional_parameters: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(cellclass, _IFCurrDelta):
            raise ConfigurationException(
                f"the fake sPyNNaker has IF_curr_delta and IF_curr_exp only, not {type(cellclass).__name__}"
            )
        self.model = cellclass.model
        self.sim, self.size, self.label = sim, int(size), label or f"population {len(sim.populations)}"
        self.parameters = {k: _per_neuron(v, self.size) for k, v in cellclass.parameters.items()}
        extra = dict(additional_parameters or {})
        summed = extra.get("max_expected_summed_weight")
        if summed is None:
            raise ConfigurationException(
                f"{self.label}: the fake derives the ring-buffer shifts from max_expected_summed_weight only"
            )
        self.max_summed = [float(x) for x in summed]
        v = (initial_values or {}).get("v", -65.0)
        self.v_mv = _per_neuron(v, self.size)
        self.isyn = {key: _per_neuron(0.0, self.size) for key in ("isyn_exc", "isyn_inh")}
        self.written: set[str] = set()
        """The synaptic currents set since the last run (the host writes them to the cores)."""
        self.recording: set[str] = set()
        self.spikes: list[tuple[int, float]] = []
        """(neuron, time in ms) of every spike recorded."""
        self.v_rows: list[np.ndarray] = []
        """V (mV) at the start of every tick run, one row per tick."""

    def record(self, variables: Any, **_: Any) -> None:
        self.sim.check_user_can_act()
        names = [variables] if isinstance(variables, str) else list(variables)
        unknown = set(names) - {"spikes", "v"}
        if unknown:
            raise ConfigurationException(f"{self.label}: cannot record {', '.join(sorted(unknown))}")
        if self.sim.ran:
            raise ConfigurationException("recording cannot change between runs without a reset (the fake)")
        self.recording |= set(names)

    def set(self, **parameters: Any) -> None:
        self.sim.check_user_can_act()
        for key, value in parameters.items():
            if key not in self.parameters:
                raise ConfigurationException(f"{self.label}: {self.model} has no parameter {key!r}")
            self.parameters[key] = _per_neuron(value, self.size)

    def initialize(self, **values: Any) -> None:
        """Before the first run, the state the run starts from; after it, only the value a reset would go back to
        (which the fake has no use for): sPyNNaker's "Calling initialize without reset will have no effect"."""
        self.sim.check_user_can_act()
        if not self.sim.ran:
            self.set_state(**values)

    def set_state(self, **values: Any) -> None:
        """V, and an ``IF_curr_exp`` population's synaptic currents ``isyn_exc`` and ``isyn_inh`` (nA): what the host
        writes to the cores before the next run."""
        self.sim.check_user_can_act()
        currents = ("isyn_exc", "isyn_inh") if self.model == "IF_curr_exp" else ()
        for key, value in values.items():
            if key == "v":
                self.v_mv = _per_neuron(value, self.size)
                self.sim.chip_v.pop(self.label, None)  # the host writes this V to the cores before the next run
            elif key in currents:
                self.isyn[key] = _per_neuron(value, self.size)
                self.written.add(key)
            else:
                raise ConfigurationException(f"{self.label}: the fake sets v and {self.model}'s currents, not {key!r}")

    def spinnaker_get_data(self, variable: str, as_matrix: bool = False, **_: Any) -> np.ndarray:
        self.sim.check_user_can_act()
        if variable not in self.recording:
            raise ConfigurationException(f"{self.label}: {variable} was not recorded")
        if variable == "spikes":
            rows = np.array(sorted(self.spikes), np.float64).reshape(-1, 2)
            return rows[::-1] if self.sim.board.fault("reorder") else rows
        matrix = np.array(self.v_rows, np.float64).reshape(-1, self.size)
        if as_matrix:
            return matrix
        times = np.arange(len(matrix), dtype=np.float64) * self.sim.timestep
        return np.column_stack(
            [np.repeat(np.arange(self.size), len(matrix)), np.tile(times, self.size), matrix.T.reshape(-1)]
        )


class _Projection:
    def __init__(
        self,
        pre: _Population,
        post: _Population,
        connector: _FromListConnector,
        synapse_type: Any = None,
        *,
        sim: FakeSpynnaker,
        receptor_type: str = "excitatory",
        label: str | None = None,
        **_: Any,
    ) -> None:
        if receptor_type not in ("excitatory", "inhibitory"):
            raise ConfigurationException(f"receptor_type {receptor_type!r}")
        table = connector.conn_list
        columns = ["weight", "delay"] if not connector.column_names else connector.column_names
        self.pre, self.post, self.receptor, self.label = pre, post, receptor_type, label
        self.pre_index = table[:, 0].astype(np.int64)
        self.post_index = table[:, 1].astype(np.int64)
        self.weights = table[:, 2 + columns.index("weight")]
        self.delays_ms = table[:, 2 + columns.index("delay")]


def _per_neuron(value: Any, size: int) -> np.ndarray:
    a = np.asarray(value, np.float64)
    return np.full(size, float(a)) if a.ndim == 0 else a.reshape(size).copy()


# -- the board ---------------------------------------------------------------------------------------------------
class _Board:
    """The board: what it is and how it misbehaves, across setups (a reconnect finds the same board)."""

    def __init__(self, faults: dict[str, Any]) -> None:
        self.faults = faults
        self.runs = 0
        """Runs of more than 0 ms since the board was made: the faults' K counts them."""
        self.away = 0
        """Attempts to reach the board left while it is away."""

    def fault(self, name: str, default: Any = None) -> Any:
        return self.faults.get(name, default)

    def hit(self, fault: str, run: int) -> bool:
        first = self.fault(f"{fault}_at")
        return first is not None and int(first) <= run < int(first) + int(self.fault(f"{fault}_times", 1))

    def contact(self, config: dict[str, Any]) -> None:
        """The first contact of a simulation: spalloc's allocation, then the machine's discovery."""
        where = config.get("spalloc_server") or config.get("machine_name")
        if self.fault("missing") or self.away:
            self.away = max(0, self.away - 1)
            raise SpinnmanIOException(f"IO Error: no reply from {where} (the board does not answer)")
        if self.fault("busy"):
            raise SpallocBoardUnavailableException(f"the job at {where} stays QUEUED: another job holds the board")
        kind = int(self.fault("kind", config["version"]))
        if kind not in SIZES:
            raise ValueError(f"fault kind={kind!r}: a fake board is version 3 or 5")
        if kind != config["version"]:
            width, _ = SIZES[kind]
            raise SpinnMachineException(f"Unexpected width={width}")


class FakeSpynnaker:
    """A ``pyNN.spiNNaker`` over one fake board (see the module)."""

    IF_curr_delta = _IFCurrDelta
    IF_curr_exp = _IFCurrExp
    FromListConnector = _FromListConnector

    def __init__(self, faults: dict[str, Any], clock: Clock) -> None:
        check_faults(faults, FAULTS, "a fake SpiNNaker board")
        if "kind" in faults and faults["kind"] not in SIZES:
            raise ValueError(f"fault kind={faults['kind']!r}: a fake board is version 3 or 5")
        self.__version__ = str(faults.get("sdk_version", VERSION))
        self.board = _Board(dict(faults))
        self.clock = clock
        self.state = "unset"
        """``unset`` (before setup or after end), ``setup`` or ``shut down`` (after a failed run)."""
        self._reset()

    def _reset(self) -> None:
        self.timestep = 1.0
        self.config: dict[str, Any] = {}
        self.populations: list[_Population] = []
        self.projections: list[_Projection] = []
        self.ran = False
        self.mapped = False
        self.tick = 0
        self.chip_v: dict[str, np.ndarray] = {}
        """Per population, V (raw) on the cores; absent where the host will write its V before the next run."""
        self.chip_state: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        """Per population, (refract timer, isyn exc, isyn inh) on the cores."""
        self.pending: dict[tuple[str, int], dict[int, np.ndarray]] = {}
        """The ring buffers: (population, receptor) -> tick -> the words arrived for it (unsaturated sums)."""

    def check_user_can_act(self) -> None:
        if self.state == "shut down":
            raise SimulatorShutdownException("the simulation was shut down after an error: call end(), then setup()")
        if self.state != "setup":
            raise SimulatorShutdownException("setup() has not been called")

    # -- pyNN.spiNNaker ----------------------------------------------------------------------------------------
    def setup(self, timestep: float = 1.0, min_delay: Any = None, max_delay: Any = None, **_: Any) -> int:
        self._reset()
        self.config = _read_config()
        self.timestep = float(timestep)
        self.state = "setup"
        return 0

    def Population(self, size: int, cellclass: _IFCurrDelta, **kwargs: Any) -> _Population:
        self.check_user_can_act()
        population = _Population(size, cellclass, sim=self, **kwargs)
        self.populations.append(population)
        return population

    def Projection(self, pre: _Population, post: _Population, connector: Any, *args: Any, **kwargs: Any) -> _Projection:
        self.check_user_can_act()
        projection = _Projection(pre, post, connector, *args, sim=self, **kwargs)
        self.projections.append(projection)
        return projection

    def get_current_time(self) -> float:
        self.check_user_can_act()
        return self.tick * self.timestep

    def end(self) -> None:
        self.state = "unset"
        self._reset()

    def run(self, simtime: float) -> float:
        self.check_user_can_act()
        ticks = round(float(simtime) / self.timestep)
        try:
            if not self.mapped:
                self._map()
            if ticks > 0:
                self._run(ticks)
        except Exception:
            self.state = "shut down"  # sPyNNaker stops and shuts down after a failed run
            raise
        self.ran = True
        return self.tick * self.timestep

    # -- mapping and loading ---------------------------------------------------------------------------------
    def _map(self) -> None:
        config = self.config
        if not config.get("machine_name") and not config.get("spalloc_server"):
            raise ConfigurationException("Neither cfg spalloc_server or remote_spinnaker_url set")
        if config.get("version") not in SIZES:
            raise SpinnMachineException(f"Unexpected cfg [Machine]version {config.get('version')}")
        self.board.contact(config)
        message = self.board.fault("reject")
        if message:
            raise PacmanPlaceException(str(message))
        self.shifts = {p.label: tuple(s1615.ring_buffer_shift(w) for w in p.max_summed) for p in self.populations}
        self.synapses = []
        for q in self.projections:
            r = 0 if q.receptor == "excitatory" else 1
            words = s1615.weight_words(np.abs(q.weights), self.shifts[q.post.label][r]).words.astype(np.int64)
            delays = np.rint(q.delays_ms / self.timestep).astype(np.int64)
            if delays.size and int(delays.min()) < 1:
                raise ConfigurationException(f"projection {q.label}: a delay below one time step")
            self.synapses.append((q, r, words, delays))
        self.mapped = True

    def _populations(self) -> list[LifPopulation]:
        """The populations as the host writes them for the next run: parameters encoded, state as on the cores."""
        out = []
        for p in self.populations:
            shift_exc, shift_inh = self.shifts[p.label]
            built = LifPopulation.from_pynn(
                p.label,
                p.model,
                p.size,
                time_step=self.timestep,
                shift_exc=shift_exc,
                shift_inh=shift_inh,
                v=p.v_mv,
                **p.isyn,
                **p.parameters,
            )
            if p.label in self.chip_state:  # the cores' state, but V and the currents where the host writes new ones
                refract, exc, inh = self.chip_state[p.label]
                v = self.chip_v.get(p.label, built.v_init)
                exc = built.isyn_exc_init if "isyn_exc" in p.written else exc
                inh = built.isyn_inh_init if "isyn_inh" in p.written else inh
                built = dataclasses.replace(
                    built, v_init=v, refract_timer_init=refract, isyn_exc_init=exc, isyn_inh_init=inh
                )
            p.written.clear()
            out.append(built)
        return out

    # -- the chip ----------------------------------------------------------------------------------------------
    def _run(self, ticks: int) -> None:
        board, run = self.board, self.board.runs
        board.runs += 1
        seconds = ticks * self.timestep / 1000.0
        if board.hit("timeout", run):
            self.clock.sleep(seconds + float(self.config.get("overrun", 5)))
            raise SpiNNManCoresNotInStateException(
                f"waiting for cores to reach one of {{<CPUState.PAUSED: 10>}}: timed out after "
                f"{self.config.get('overrun', 5)} seconds"
            )
        if board.fault("disconnect_at") == run:
            self._ticks(ticks // 2, run)
            board.away = int(board.fault("disconnect_for", 0))
            self.clock.sleep(seconds / 2)
            raise SpinnmanIOException("IO Error: [Errno 101] Network is unreachable")
        self._ticks(ticks, run)
        self.clock.sleep(seconds)
        if board.fault("lost_at") == run:
            label = self.populations[-1].label if self.populations else "?"
            PROVENANCE.warning(
                f"The input buffer for {label} on 0, 0, 1 lost packets on 1 occasions. This is often a sign that "
                "the system is running too quickly for the number of neurons per core."
            )

    def _ticks(self, ticks: int, run: int) -> None:
        populations = self._populations()
        names = [p.label for p in self.populations]
        recorded: list[tuple[_Population, int, float]] = []
        for _ in range(ticks):
            t = self.tick
            offsets = {}
            for k, pop in enumerate(populations):
                landed = self._landing(pop, t)
                if pop.model == "IF_curr_exp":  # into the synaptic currents, then the tick as if nothing landed
                    populations[k] = pop = dataclasses.replace(
                        pop,
                        isyn_exc_init=s1615.add(pop.isyn_exc_init, s1615.decay_s1615(landed[0], pop.init_exc)),
                        isyn_inh_init=s1615.add(pop.isyn_inh_init, s1615.decay_s1615(landed[1], pop.init_inh)),
                    )
                    offsets[pop.name] = pop.i_offset.astype(np.int64)[None]
                    continue
                current = [s1615.mul(x, pop.input_scale).astype(np.int64) for x in landed]
                offsets[pop.name] = (pop.i_offset.astype(np.int64) + current[0] - current[1])[None]
                offsets[pop.name] = ((offsets[pop.name] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            watched = [p.label for p in self.populations if "v" in p.recording]
            result = emulate(populations, [], steps=1, batch=1, i_offset=offsets, record_spikes=True, record_v=watched)
            for fake in self.populations:
                if "v" in fake.recording:
                    fake.v_rows.append(result.v[fake.label][0, 0].astype(np.float64) / s1615.ONE)
            fired = {name: np.flatnonzero(result.spikes[name][0, 0]) for name in names}
            for q, r, words, delays in self.synapses:
                spiked = np.isin(q.pre_index, fired[q.pre.label])
                for delay in np.unique(delays[spiked]):
                    chosen = spiked & (delays == delay)
                    add = np.bincount(q.post_index[chosen], words[chosen], minlength=q.post.size).astype(np.int64)
                    slots = self.pending.setdefault((q.post.label, r), {})
                    slots[t + int(delay)] = slots.get(t + int(delay), 0) + add
            for fake in self.populations:
                if "spikes" in fake.recording:
                    recorded += [(fake, int(n), t * self.timestep) for n in fired[fake.label]]
            populations = [
                dataclasses.replace(
                    pop,
                    v_init=result.final[pop.name].v[0],
                    refract_timer_init=result.final[pop.name].refract_timer[0],
                    isyn_exc_init=result.final[pop.name].isyn_exc[0],
                    isyn_inh_init=result.final[pop.name].isyn_inh[0],
                )
                for pop in populations
            ]
            self.tick += 1
        for pop in populations:
            self.chip_v[pop.name] = pop.v_init
            self.chip_state[pop.name] = (pop.refract_timer_init, pop.isyn_exc_init, pop.isyn_inh_init)
        self._record(recorded)

    def _landing(self, pop: LifPopulation, t: int) -> list[np.ndarray]:
        """What the ring buffers hand population ``pop`` at tick t, per receptor (raw int32): the saturated slot
        shifted (wrapping to int32)."""
        out = []
        for r, shift in enumerate((pop.shift_exc, pop.shift_inh)):
            slot = self.pending.get((pop.name, r), {}).pop(t, None)
            words = np.zeros(pop.size, np.int64) if slot is None else np.minimum(slot, s1615.WEIGHT_WORD_MAX)
            out.append(s1615.wrap32(words << shift).astype(np.int64))
        return out

    def _record(self, recorded: list[tuple[_Population, int, float]]) -> None:
        """A run's spikes into the recording, with the recording faults of every run."""
        board = self.board
        drop, duplicate, off = (int(board.fault(k, 0)) for k in ("drop", "duplicate", "off_grid"))
        kept = recorded[:duplicate] + recorded[drop:] if duplicate else recorded[drop:]
        for i, (population, neuron, time) in enumerate(kept):
            population.spikes.append((neuron, time + (0.5 * self.timestep if i < off else 0.0)))


def _read_config() -> dict[str, Any]:
    """What the fake needs of the configuration sPyNNaker reads: ``spynnaker.cfg`` in the working folder."""
    parser = configparser.ConfigParser()
    parser.read(Path.cwd() / "spynnaker.cfg")
    machine = dict(parser["Machine"]) if parser.has_section("Machine") else {}

    def value(key: str) -> str | None:
        text = machine.get(key)
        return None if text is None or text.strip() in ("", "None") else text.strip()

    version = value("version")
    overrun = value("post_simulation_overrun_before_error")
    return {
        "machine_name": value("machine_name"),
        "spalloc_server": value("spalloc_server"),
        "version": int(version) if version is not None and version.isdigit() else version,
        "overrun": math.ceil(float(overrun)) if overrun is not None else 5,
    }
