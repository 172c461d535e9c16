"""A fake ``pynn_brainscales.brainscales2``: the part of pynn-brainscales the BrainScaleS-2 board adapter uses
(:mod:`neurodeploy_pynn.brainscales2_device`), over a replay of the chip model, with faults on command.

It stands where ``import pynn_brainscales.brainscales2`` would, with the surface the adapter and
``run_pynn_brainscales2.build_brainscales2`` call, shaped as the vendor's source has it (electronicvisions/
pynn-brainscales, ``brainscales2/pynn_brainscales/brainscales2/``): ``setup(initial_config=...,
calibration_cache=...)`` / ``run(runtime_ms)`` / ``run(None, RunCommand.PREPARE)`` / ``reset()`` / ``end()``
(``__init__.py``), ``helper.get_unique_identifier``, ``helper.chip_from_file``, ``helper.chip_from_nightly``
(``helper.py``), ``cells.CalibHXNeuronCuba`` and ``cells.SpikeSourceArray`` (``standardmodels/cells.py``),
``Population(size, celltype, label=)`` with ``record(variables, device=)`` / ``set(spike_times=)`` /
``get_data(variables)`` (``populations.py``), ``Projection(pre, post, FromListConnector(rows,
column_names=["weight"]), receptor_type=)``. ``get_data`` gives what ``recording.py`` builds: one spike train per
neuron in ms (``source_index`` annotation, ``t_start``), and per neuron one ``IrregularlySampledSignal`` of CADC
samples (``array_annotations["channel_index"]``, times in ms).

The chip reads back only what was sent through that API (the cell parameters, the connection lists, the spike
times) and runs it through the model (:mod:`neurodeploy_pynn.brainscales2_emulator`) as one *chip instance*:
its calibration realises each population's synaptic gain (CADC units per weight LSB, what the artifact's plan
assumed; on a chip the calibration sets it), and the chip differs from the nominal model by its fixed-pattern
mismatch (relative standard deviation ``mismatch``, instance ``mismatch_seed``) and trial-to-trial membrane noise
(``noise``, a fresh trial per run). The defaults, 0.05 and 0.05 (the values ``examples/mnist_bss2/README.md``
tabulates; settings, not measurements of a chip), make a healthy fake differ from the noise-free reference as a
chip within its calibrated variation would; ``mismatch = 0, noise = 0`` gives the model itself. A spike of an
on-chip neuron in integration step n (0.1 µs) is stamped at (n + 1) x 0.1 µs; the membrane is sampled after every
integration step. A fault is the setup's, the link's or the calibration's misbehaviour, set in the inventory
(:data:`FAULTS`); runs are counted from 0 since the fake was made (a sample run again is a new run).
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from neurodeploy.hil.device import Clock, check_faults
from neurodeploy_pynn import brainscales2_emulator as emulator

FAULTS = {
    "missing": "no BrainScaleS-2 setup is allocated to the job: finding it fails (true/false)",
    "busy": "the setup is allocated to another job: finding it fails (true/false)",
    "kind": "the identifier of the setup the job got (the inventory's address must name it)",
    "sdk_version": "the software container's release, YYYY-MM (the adapter needs CalibHXNeuronCuba, 2023-02, and "
    "RunCommand, 2024-03; membrane readout by CADC needs 2026-02)",
    "reject": "placing and routing the network (run PREPARE) fails with this message",
    "drop": "this fraction (0..1) of the recorded spikes of every run is lost (every k-th spike)",
    "duplicate": "this fraction (0..1) of the recorded spikes of every run is recorded twice",
    "reorder": "every spike train comes back in reverse time order (true/false)",
    "timeout_at": "the K-th run (from 0) raises TimeoutError after the setup's time-out",
    "timeout_times": "... and the N runs from the K-th on (default 1)",
    "disconnect_at": "the connection is lost during the K-th run (from 0): ConnectionResetError",
    "disconnect_for": "... and the setup stays away for that many attempts to find it (default 0)",
    "mismatch": "the chip's fixed-pattern variation left after calibration, relative standard deviation (default "
    "0.05; 0 for the nominal model)",
    "mismatch_seed": "the chip instance the variation is drawn for (default 1)",
    "noise": "trial-to-trial membrane noise, CADC units per sqrt(µs) (default 0.05; 0: none)",
    "noise_seed": "seed of the trial-to-trial noise (default 1)",
    "gain": "a badly calibrated synaptic input: every synapse's strength times this factor (default 1)",
}
"""The faults (and chip variation) a fake BrainScaleS-2 setup takes, as its inventory entry's ``faults`` table
names them."""

IDENTIFIER = "hxcube0fpga0chip0_fake"
"""The identifier the fake setup reports (``helper.get_unique_identifier``) unless ``kind`` says otherwise."""
RELEASE = "2026-08"
"""The container release the fake is by default."""
RUN_OVERHEAD_S = 0.5
"""Seconds of (virtual) wall-clock time one run takes: configuration, the experiment and the read-back."""
SETUP_TIMEOUT_S = 60.0
"""Seconds the fake's runs wait before a ``timeout_at`` fault gives up."""
SUBSTEPS = 10
"""Integration steps per µs of the chip model (as the netlist's ``timing.substeps``)."""


class RunCommand(Enum):
    """``pynn.RunCommand`` (``__init__.py``, 2024-03)."""

    PREPARE = 1
    APPEND = 2
    EXECUTE = 3


class _CellType:
    def __init__(self, kind: str, **parameters: Any) -> None:
        self.kind, self.parameters = kind, parameters


class _Connector:
    def __init__(self, conn_list: list, column_names: list[str] | None = None) -> None:
        self.rows = list(conn_list)
        self.column_names = list(column_names or [])


class _Train(np.ndarray):
    """A neo ``SpikeTrain`` as much as the adapter reads it: times in ms, ``t_start``, ``annotations``."""

    t_start: float
    annotations: dict[str, Any]

    @property
    def magnitude(self) -> np.ndarray:
        return np.asarray(self)


def _train(times: np.ndarray, index: int) -> _Train:
    train = np.asarray(times, np.float64).view(_Train)
    train.t_start, train.annotations = 0.0, {"source_index": index}
    return train


class _Population:
    def __init__(self, fake: FakePyNN, size: int, celltype: Any, label: str | None = None, **extra: Any) -> None:
        if isinstance(celltype, type):
            celltype = celltype()
        if not isinstance(celltype, _CellType):
            raise TypeError(f"Population: unsupported cell type {celltype!r}")
        self.fake, self.size, self.celltype = fake, int(size), celltype
        self.label = label or f"population{len(fake._populations)}"
        self.recorded: set[str] = set()
        self.spike_times: list[np.ndarray] = [np.zeros(0)] * self.size
        fake._populations.append(self)

    def record(self, variables: Any, to_file: Any = None, sampling_interval: Any = None, *, device: str = "madc"):
        names = [variables] if isinstance(variables, str) else list(variables)
        analog = [v for v in names if v != "spikes"]
        if analog and device == "madc" and self.size > 1:
            raise RuntimeError("MADC recording is only possible for one neuron on a chip")
        if analog and device == "cadc" and self.fake._release < "2026-02":
            raise ValueError('Device "cadc" is not supported')
        self.recorded |= set(names)

    def set(self, spike_times: Any = None, **parameters: Any) -> None:
        if parameters or self.celltype.kind != "SpikeSourceArray":
            raise ValueError(f"{self.label}: only a SpikeSourceArray's spike_times can be set here")
        rows = list(spike_times) if spike_times is not None else []
        if len(rows) != self.size:
            raise ValueError(f"{self.label}: {len(rows)} spike trains for {self.size} sources")
        self.spike_times = [np.asarray(r, np.float64) for r in rows]

    def get_data(self, variables: Any = "all", clear: bool = False) -> Any:
        names = [variables] if isinstance(variables, str) else list(variables)
        want = self.recorded if "all" in names else set(names) & self.recorded
        segment = SimpleNamespace(spiketrains=[], irregularlysampledsignals=[])
        record = self.fake._chip.records.get(self.label)
        if record is not None and "spikes" in want:
            segment.spiketrains = [_train(t, i) for i, t in enumerate(record["spikes"])]
        if record is not None and "v" in want and "v" in record:
            times, v = record["v"]
            segment.irregularlysampledsignals = [
                SimpleNamespace(
                    name="v",
                    times=SimpleNamespace(magnitude=times),
                    magnitude=v[:, i : i + 1],
                    array_annotations={"channel_index": np.array([i])},
                )
                for i in range(self.size)
            ]
        return SimpleNamespace(segments=[segment])


class _Chip:
    """The setup: allocation across connections, the faults, and the replay of one run."""

    def __init__(self, faults: dict[str, Any], clock: Clock, gains: dict[str, float]) -> None:
        self.faults, self.clock, self.gains = faults, clock, gains
        self.away = 0
        self.runs = 0
        self.records: dict[str, dict[str, Any]] = {}

    def fault(self, name: str, default: Any = None) -> Any:
        return self.faults.get(name, default)

    def identify(self) -> list[str]:
        if self.fault("missing"):
            raise RuntimeError("hxcomm: no hardware resource allocated to this job (slurm / quiggeldy found none)")
        if self.fault("busy"):
            raise RuntimeError("quiggeldy: the setup is busy, allocated to another job")
        if self.away:
            self.away -= 1
            raise ConnectionRefusedError("hxcomm: the setup does not answer")
        return [str(self.fault("kind", IDENTIFIER))]

    def _hit(self, fault: str, run: int) -> bool:
        first = self.fault(f"{fault}_at")
        return first is not None and int(first) <= run < int(first) + int(self.fault(f"{fault}_times", 1))

    def run(self, fake: FakePyNN, runtime_ms: float) -> None:
        run, self.runs = self.runs, self.runs + 1
        if self.away:
            raise ConnectionResetError("hxcomm: the connection to the setup was reset")
        if self.fault("disconnect_at") == run:
            self.away = int(self.fault("disconnect_for", 0))
            fake._connected = False
            raise ConnectionResetError("hxcomm: the connection to the setup was reset during the run")
        if self._hit("timeout", run):
            self.clock.sleep(SETUP_TIMEOUT_S)
            raise TimeoutError("quiggeldy: the experiment did not finish in time")
        self.clock.sleep(RUN_OVERHEAD_S)
        self.records = replay(fake._populations, fake._projections, runtime_ms, self.faults, self.gains, run)


def replay(
    populations: list[_Population],
    projections: list[tuple[_Population, _Population, str, list]],
    runtime_ms: float,
    faults: dict[str, Any],
    gains: dict[str, float],
    trial: int,
) -> dict[str, dict[str, Any]]:
    """One run of the network as the chip instance the faults describe: per recorded population, its spike times
    (ms, one array per neuron) and its membrane samples ((times ms, (samples, neurons) CADC units))."""
    neurons = [p for p in populations if p.celltype.kind == "CalibHXNeuronCuba"]
    sources = [p for p in populations if p.celltype.kind == "SpikeSourceArray"]
    gain = float(faults.get("gain", 1.0))
    nominal = []
    for p in neurons:
        c = p.celltype.parameters
        g = gains.get(p.label, 1.0) * gain
        nominal.append(
            emulator.Neurons(
                p.label,
                p.size,
                tau_m=float(c["tau_m"]),
                tau_syn_exc=float(c["tau_syn_E"]),
                tau_syn_inh=float(c["tau_syn_I"]),
                tau_refrac=float(c["tau_refrac"]),
                v_rest=float(c["v_rest"]),
                v_reset=float(c["v_reset"]),
                v_thresh=float(c["v_thresh"]),
                gain_exc=g,
                gain_inh=g,
                spiking=True,  # the chip's neurons all have a threshold; a readout's is out of its reach
            )
        )
    chip = emulator.with_mismatch(nominal, float(faults.get("mismatch", 0.05)), int(faults.get("mismatch_seed", 1)))
    integration_steps = max(1, math.ceil(runtime_ms * 1000.0 * SUBSTEPS - 1e-6))
    length = -(-integration_steps // SUBSTEPS)
    spikes = {}
    for s in sources:
        fired = np.zeros((1, length, s.size), bool)
        for i, times in enumerate(s.spike_times):
            steps = np.rint(np.asarray(times) * 1000.0).astype(np.int64)
            steps = steps[(steps >= 0) & (steps < length)]
            fired[0, steps, i] = True
        spikes[s.label] = fired
    synapses = []
    for pre, post, receptor, rows in projections:
        table = np.asarray(rows, np.int64).reshape(-1, 3)
        synapses.append(emulator.Synapses(pre.label, post.label, receptor, table[:, 0], table[:, 1], table[:, 2]))
    noise = emulator.Noise(membrane=float(faults.get("noise", 0.05)), seed=int(faults.get("noise_seed", 1)))
    result = emulator.run(
        chip,
        synapses,
        spikes,
        {s.label: s.size for s in sources},
        integration_steps=integration_steps,
        substeps=SUBSTEPS,
        noise=noise,
        offset=trial,
        trace=True,
    )
    stamps = (np.arange(integration_steps) + 1) / SUBSTEPS / 1000.0  # ms: the end of each integration step
    records: dict[str, dict[str, Any]] = {}
    for p in sources:
        records[p.label] = {"spikes": [np.sort(t) for t in p.spike_times]}
    for p in neurons:
        fired = result.trace_spikes[p.label][0]
        records[p.label] = {"spikes": [stamps[np.nonzero(fired[:, i])[0]] for i in range(p.size)]}
        if "v" in p.recorded:
            records[p.label]["v"] = (stamps, result.trace_v[p.label][0])
    _corrupt(records, neurons, faults)
    return records


def _corrupt(records: dict[str, dict[str, Any]], neurons: list[_Population], faults: dict[str, Any]) -> None:
    """The link's faults on the recorded spikes of the chip's neurons: every k-th spike (in population, neuron,
    time order) lost or doubled, every train reversed."""
    for fault in ("drop", "duplicate"):
        fraction = float(faults.get(fault, 0.0))
        if fraction <= 0:
            continue
        every = max(1, round(1.0 / min(fraction, 1.0)))
        seen = 0
        for p in neurons:
            trains = records[p.label]["spikes"]
            for i, train in enumerate(trains):
                hit = (seen + np.arange(len(train))) % every == every - 1
                seen += len(train)
                trains[i] = train[~hit] if fault == "drop" else np.sort(np.concatenate([train, train[hit]]))
    if faults.get("reorder"):
        for p in neurons:
            records[p.label]["spikes"] = [t[::-1] for t in records[p.label]["spikes"]]


class FakePyNN:
    """A ``pynn_brainscales.brainscales2`` module over one fake setup (see the module). ``gains``: per population
    label, the synaptic gain (CADC units per weight LSB) its calibration realises."""

    def __init__(self, faults: dict[str, Any], clock: Clock, gains: dict[str, float] | None = None) -> None:
        check_faults(faults, FAULTS, "a fake BrainScaleS-2 setup")
        for key in ("drop", "duplicate", "mismatch", "noise", "gain"):
            value = faults.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"fault {key} must be a number >= 0 (got {value!r})")
        self._release = str(faults.get("sdk_version", RELEASE))
        self._chip = _Chip(faults, clock, dict(gains or {}))
        self._populations: list[_Population] = []
        self._projections: list[tuple[_Population, _Population, str, list]] = []
        self._connected = False
        self._prepared = False
        self.helper = SimpleNamespace(
            get_unique_identifier=self._chip.identify,
            chip_from_file=self._chip_from_file,
            chip_from_nightly=lambda: SimpleNamespace(calibration="nightly"),
        )
        cells: dict[str, Any] = {"SpikeSourceArray": lambda spike_times=(): _CellType("SpikeSourceArray")}
        if self._release >= "2023-02":
            cells["CalibHXNeuronCuba"] = lambda **p: _CellType("CalibHXNeuronCuba", **p)
        self.cells = SimpleNamespace(**cells)
        if self._release >= "2024-03":
            self.RunCommand = RunCommand
        self.FromListConnector = _Connector
        self.state: dict[str, Any] = {}

    @staticmethod
    def _chip_from_file(path: Any) -> Any:
        with open(Path(path), "rb") as handle:  # as helper.chip_from_file: a missing file is an OSError
            handle.read(1)
        return SimpleNamespace(calibration=str(path))

    # -- the PyNN API ---------------------------------------------------------------------------------------
    def setup(self, timestep: float = 0.1, min_delay: Any = "auto", **extra: Any) -> None:
        allowed = {"initial_config", "calibration_cache", "max_delay", "injected_calib_target"}
        unknown = set(extra) - allowed
        if unknown:
            raise KeyError(f"unhandled extra_params in call to pynn.setup(...):{unknown}")
        if self._chip.away or self._chip.fault("missing"):
            raise ConnectionRefusedError("hxcomm: the setup does not answer")
        self._populations, self._projections, self._prepared = [], [], False
        self._chip.records = {}
        self._connected = True
        self.state = dict(extra)

    def Population(self, size: int, celltype: Any, cellparams: Any = None, label: str | None = None) -> _Population:
        self._check()
        return _Population(self, size, celltype, label)

    def Projection(
        self,
        pre: _Population,
        post: _Population,
        connector: _Connector,
        synapse_type: Any = None,
        receptor_type: str = "excitatory",
        label: str | None = None,
    ) -> None:
        self._check()
        if connector.column_names != ["weight"]:
            raise ValueError("the fake takes FromListConnector rows (pre, post, weight)")
        if receptor_type not in emulator.RECEPTORS:
            raise ValueError(f"receptor_type {receptor_type!r}: CalibHXNeuronCuba has excitatory and inhibitory")
        for i, j, w in connector.rows:
            if not (0 <= i < pre.size and 0 <= j < post.size) or w < 0:
                # pyNN.errors.ConnectionError in pynn-brainscales (a negative weight on a current-based receptor)
                raise ValueError(f"projection {label}: connection ({i}, {j}, {w}) does not fit")
        self._projections.append((pre, post, receptor_type, [tuple(r) for r in connector.rows]))
        self._prepared = False

    def run(self, runtime: float | None, command: Any = None) -> None:
        self._check()
        if not self._prepared:
            message = self._chip.fault("reject")
            if message:
                raise RuntimeError(f"grenade: place and route failed: {message}")
            self._prepared = True
        if command is not None and command is self.__dict__.get("RunCommand", RunCommand).PREPARE:
            return
        if runtime is None:
            raise ValueError("No experiment scheduled for execution yet.")
        self._chip.run(self, float(runtime))

    def reset(self) -> None:
        self._check()
        self._chip.records = {}

    def end(self) -> None:
        self._connected = False
        self.state = {}

    def _check(self) -> None:
        if not self._connected:
            raise ConnectionResetError("hxcomm: not connected (setup() first, or the connection was lost)")
