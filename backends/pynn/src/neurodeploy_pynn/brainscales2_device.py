"""The BrainScaleS-2 board adapter, written against pynn-brainscales (``pynn_brainscales.brainscales2``), which
exists only inside the BrainScaleS-2 software container (EBRAINS / the Heidelberg cluster): it is not on PyPI.

Sources read (electronicvisions/pynn-brainscales, ``brainscales2/pynn_brainscales/brainscales2/``):
``__init__.py`` (``setup(initial_config=, calibration_cache=)``, ``run(runtime_ms)``, ``run(None,
RunCommand.PREPARE)`` for place and route and calibration without an experiment, ``reset``, ``end``),
``helper.py`` (``get_unique_identifier``: the setup the job was given; ``chip_from_file``; ``chip_from_nightly``
and ``nightly_calib_path``), ``standardmodels/cells.py`` (``CalibHXNeuronCuba``: calix calibrates the neurons for
the given parameters when the network is first run; ``SpikeSourceArray``: spike times in ms), ``recording.py``
(spike trains in ms with a ``source_index``; ``record(["v"], device="cadc")`` samples every neuron's membrane by
the CADC, one signal per neuron, since 2026-02), ``doc/calibration.rst`` (a calibration is a chip object given
to ``setup(initial_config=...)``; the nightly one per setup; calix's own takes about five minutes, cached).

Open: ``helper.get_unique_identifier()`` names the setup the job was given (slurm / quiggeldy allocate it; inside
the container ``srun`` or an EBRAINS job does): failing, the setup is missing or busy (:class:`BoardUnavailable`);
an inventory ``address`` must be that identifier (a job on another setup is refused). The SDK must have
``cells.CalibHXNeuronCuba`` (2023-02) and ``RunCommand`` (2024-03), else :class:`BoardVersionError`. The
calibration (setting ``calibration``): ``calix`` (default), ``CalibHXNeuronCuba``'s own, generated for the
netlist's parameters at load and cached in ``calibration_cache``; ``nightly``, the setup's nightly calibration
(``helper.chip_from_nightly``) as ``initial_config``; or a path to a calibration dump (``helper.chip_from_file``).

Load: the netlist through the PyNN API by ``run_pynn_brainscales2.build_brainscales2`` (the artifact's own
``run_pynn.py`` builds it the same way), the readout's membrane recorded by the CADC where the SDK can, then
``run(None, RunCommand.PREPARE)``: place, route and calibrate, so that what the chip refuses is refused before a
sample runs (:class:`BoardRejected`); bounded like a run, by ``prepare_timeout_s``.

Run, per sample: ``reset()``, the sources' spike times (input step t at t µs, bias sources every step),
``run(T µs + the deepest population's latency)`` in a worker thread joined after ``timeout_s`` (a run that does
not come back is a lost connection, reopened by the harness), then ``get_data``: each population's spikes binned
into steps on the model's time grid (a spike of a population of depth d at t µs is in step floor((t - d x 0.1
µs) / 1 µs), the model's latency of one 0.1 µs integration step per synapse); spikes outside the sample's window
are counted (``Observed.stale``), trains not in time order too (``out_of_order``). The readout is computed from
the membrane at the window's end (and, with the artifact's readout delay, after its skipped steps) as
``brainscales2.run`` computes it. SDK errors become board errors by their
class names: ``*Timeout*`` -> :class:`BoardTimeout`; a reset, refused or aborted connection, a broken pipe, an
EOF -> :class:`BoardDisconnected`; anything else while opening -> :class:`BoardUnavailable`, while loading or
running -> :class:`BoardRejected`.

**The comparison is statistical** (``compare = "statistic"``): the chip is analog, its neurons differ by their
fixed-pattern mismatch and their membranes are noisy, so no run equals the model spike for spike. The reference
is the model with its noise off (no mismatch, no membrane noise): the nominal chip, which a calibration aims at;
the artifact's planned noise is one arbitrary chip instance, no likelier to be this chip than another. Per sample
and spiking population: the spike-count distance ``d = sum_i |b_i - e_i| / max(sum_i e_i, 1)``, b_i and e_i neuron
i's spikes over the whole sample on the board and in the model (L1 over neurons, relative to the model's spikes);
the layer matches when ``d <= tolerance`` (setting, default :data:`TOLERANCE`). Steps are not compared one by one:
a spike's step depends on its time to well below a step, which the chip's mismatch and noise (and the analog
timing jitter of its event routing) move across step boundaries without changing what the network computes. The
readout's prediction is reported per sample by the harness, not judged: near a tie a healthy chip's noise flips
it.

**The tolerance, measured** (``scripts/bss2_tolerance.py``, about 100 s: ``examples/mnist_bss2`` compiled with
``examples/mnist/calibration.npz``, the first 100 images of ``examples/mnist/test_images.npz``, T = 16 and 64; the
hidden layer of 100 LIF neurons is the one spiking population; reference: the noise-free model). Healthy chips, the
fake's default variation (mismatch 0.05, membrane noise 0.05) for six chip instances (``mismatch_seed`` =
``noise_seed`` = 1..6): d = 0.094 to 0.121 on average, at most 0.204 of 600 samples at T = 16, 0.169 at T = 64 (the
distance is the chip instance's fixed pattern, not the trial noise: it does not shrink with T). Broken ones (T = 16
/ 64, smallest and mean d): a badly calibrated chip, mismatch 0.3: 0.44 / 0.45, mean 0.63 / 0.61; mismatch 0.2: 0.29
/ 0.29; synaptic gains 30% low (``gain = 0.7``): 0.24 / 0.25, mean 0.30 / 0.29; 30% high: 0.15 / 0.20, mean 0.27;
half of the spikes lost: 0.48 / 0.48; a fifth lost: mean 0.25 / 0.23. The default :data:`TOLERANCE` 0.25 sits 20%
above the largest healthy distance, below every sample of the mismatch-0.2/0.3 chips and of the halved events, and
below most samples of gains 30% off (the run's verdict is a mismatch as soon as one sample fails). A loss of 10% of
the events (d up to 0.27) is mostly within it: the statistic cannot tell so small a loss from the chip's variation.
The readout's prediction agreed with the model's on 85% to 98% of the samples of the healthy chips. The healthy
variation (mismatch 0.05, noise 0.05) is the model's setting, not a measurement of a chip: the first runs on a
calibrated chip should measure its distances (``report.json``, per layer) and set ``tolerance`` for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurodeploy.errors import DataError, NeurodeployError
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
from neurodeploy_pynn import brainscales2 as bss2
from neurodeploy_pynn import brainscales2_emulator as emulator
from neurodeploy_pynn import fake_pynn_brainscales, run_pynn_brainscales2

MODULE = "pynn_brainscales.brainscales2"
INSTALL = (
    "pynn-brainscales runs only inside the BrainScaleS-2 software container (EBRAINS, or the Heidelberg "
    "cluster's apptainer image with 'module load ...'; it is not on PyPI): run neurodeploy there, in a job that "
    "holds a setup (srun / an EBRAINS job)"
)
TOLERANCE = 0.25
"""The default largest spike-count distance of a layer (see the module: measured)."""
CALIBRATIONS = ("calix", "nightly")
DISCONNECTS = (
    "ConnectionResetError",
    "ConnectionAbortedError",
    "ConnectionRefusedError",
    "BrokenPipeError",
    "EOFError",
)


class BrainScaleS2Device(Device):
    """A BrainScaleS-2 chip through pynn-brainscales (see the module)."""

    faults = fake_pynn_brainscales.FAULTS
    compare: ClassVar[str] = "statistic"
    settings_help: ClassVar[dict[str, str]] = {
        "tolerance": f"largest spike-count distance of a layer (L1 over neurons / the model's spikes) that passes "
        f"(default {TOLERANCE})",
        "timeout_s": "seconds one sample's run may take, configuration and read-back included (default 120)",
        "prepare_timeout_s": "seconds placing, routing and calibrating the network at load may take (default 900: "
        "calix takes about five minutes when its cache has no calibration for the netlist)",
        "calibration": "'calix' (CalibHXNeuronCuba's own, cached), 'nightly' (the setup's nightly calibration) or "
        "the path of a calibration dump (default calix)",
        "calibration_cache": "folder where calix caches its calibrations (default: pynn-brainscales' own)",
    }

    def __init__(self, board: Board, clock: Clock) -> None:
        super().__init__(board, clock)
        self.tolerance = board.number("tolerance", TOLERANCE)
        self.timeout_s = board.number("timeout_s", 120.0)
        self.prepare_timeout_s = board.number("prepare_timeout_s", 900.0)
        if self.timeout_s <= 0 or self.prepare_timeout_s <= 0:
            raise DataError(f"board {board.name!r}: settings timeout_s and prepare_timeout_s must be > 0")
        self.calibration = board.settings.get("calibration", "calix")
        self.cache = board.settings.get("calibration_cache", "")
        for key, value in (("calibration", self.calibration), ("calibration_cache", self.cache)):
            if not isinstance(value, str) or (key == "calibration" and not value):
                raise DataError(f"board {board.name!r}: setting {key} must be a text (got {value!r})")
        if self.calibration not in CALIBRATIONS and not Path(self.calibration).expanduser().is_file():
            raise DataError(
                f"board {board.name!r}: setting calibration is {', '.join(CALIBRATIONS)} or a calibration file; "
                f"there is no file {self.calibration}"
            )
        self.netlist: bss2.Netlist | None = None
        self.folder: Path | None = None
        self.sdk: Any = None
        self.open_now = False
        self.populations: dict[str, Any] = {}
        self.sources: dict[str, Any] = {}
        self.doc: dict[str, Any] = {}
        self.membrane = False
        self.readout_delay = 0

    # -- before the board ---------------------------------------------------------------------------------------
    def check(self, artifact: Any, inputs: Any, steps: int, encoding: Any) -> np.ndarray:
        from neurodeploy_pynn.brainscales2_backend import BrainScaleS2Backend

        if getattr(artifact, "target", None) != "brainscales2":
            raise BoardUnavailable(
                f"a BrainScaleS-2 board runs brainscales2 artifacts; this one is for {getattr(artifact, 'target', '?')}"
            )
        backend = BrainScaleS2Backend("brainscales2")
        self.netlist = backend.load(artifact, "snn")  # every loadable netlist fits one chip: it is board-ready
        self.folder = Path(artifact.root)
        self.readout_delay = recorded_delay(artifact.manifest)
        x = backend.prepare(self.netlist, inputs, steps=steps, encoding=encoding)
        return bss2.input_spikes(self.netlist, x, steps)

    def _watched(self) -> list[bss2.PopulationPlan]:
        assert self.netlist is not None
        return [p for p in self.netlist.populations if p.role != "readout"]

    def reference(self, prepared: np.ndarray, steps: int) -> list[Observed]:
        """The nominal chip: the model with no mismatch and no membrane noise (see the module)."""
        netlist = self.netlist
        assert netlist is not None
        nominal = replace(netlist, noise=emulator.Noise(), emulated=None)
        batch = len(prepared)
        sources = {netlist.sources[0].name: prepared}
        for s in netlist.sources[1:]:
            sources[s.name] = np.ones((batch, steps, s.size), bool)
        length = self._integration_steps(steps)
        result = emulator.run(
            bss2.emulated(nominal),
            [
                emulator.Synapses(
                    q.pre, netlist.populations[q.post].name, q.receptor, q.pre_index, q.post_index, q.weights
                )
                for q in netlist.projections
            ],
            sources,
            {s.name: s.size for s in netlist.sources},
            integration_steps=length,
            substeps=netlist.substeps,
            trace=True,
        )
        dt_us = bss2.STEP_US / netlist.substeps
        stamps_us = (np.arange(length) + 1) * dt_us
        out = []
        for b in range(batch):
            trains = {
                p.name: [stamps_us[np.nonzero(result.trace_spikes[p.name][b][:, i])[0]] for i in range(p.size)]
                for p in netlist.populations
            }
            top = netlist.readout["population"]
            v = (stamps_us, result.trace_v[top][b]) if netlist.readout["kind"] == "membrane" else None
            out.append(self._observed(trains, v, steps))
        return out

    def _integration_steps(self, steps: int) -> int:
        """The run's length in integration steps: until the deepest population has seen every step's input."""
        assert self.netlist is not None
        deepest = max(p.depth for p in self.netlist.populations)
        return steps * self.netlist.substeps + deepest - 1

    def _observed(
        self, trains: dict[str, list[np.ndarray]], v: tuple[np.ndarray, np.ndarray] | None, steps: int, **extra: Any
    ) -> Observed:
        """A record from spike times (µs, per population and neuron) and the readout's membrane samples (µs,
        (samples, neurons)): spikes binned into steps, those off the window counted, the readout computed."""
        netlist = self.netlist
        assert netlist is not None
        substeps = netlist.substeps
        layers, off, events, disorder = {}, 0, 0, 0
        for p in netlist.populations:
            counts = np.zeros((steps, p.size), np.int64)
            for i, times in enumerate(trains.get(p.name, [])):
                times = np.asarray(times, np.float64)
                events += len(times)
                disorder += int(np.count_nonzero(np.diff(times) < 0))
                grid = np.rint(times / bss2.STEP_US * substeps).astype(np.int64)  # integration steps
                step = (grid - p.depth) // substeps
                inside = (step >= 0) & (step < steps)
                off += int(np.count_nonzero(~inside))
                np.add.at(counts[:, i], step[inside], 1)
            layers[p.name] = counts
        readout = netlist.readout
        top = netlist.populations[netlist.index(readout["population"])]
        outputs = None
        skip = readout_skip(self.readout_delay, steps)  # the artifact's readout delay leaves these steps out
        if readout["kind"] == "membrane" and v is not None:
            times, samples = v
            grid = np.rint(np.asarray(times, np.float64) / bss2.STEP_US * substeps)

            def sample(c: int) -> np.ndarray | None:
                """The readout's last V sample once it has seen c steps (integration step c substeps + depth - 1)."""
                before = np.nonzero(grid <= c * substeps + top.depth - 1)[0]
                return samples[before[-1]] if len(before) else None

            end, early = sample(steps), sample(skip) if skip else None
            if end is not None and (early is not None or not skip):
                value = bss2.membrane_readout(top, end, steps, early, skip)
                outputs = value.reshape(readout["shape"]).astype(np.float32)
        elif readout["kind"] != "membrane":
            late = layers[top.name][skip:].sum(axis=0) / (steps - skip)
            value = late * np.asarray(readout["scale"], np.float64).reshape(-1)
            outputs = value.reshape(readout["shape"]).astype(np.float32)
        watched = {p.name: layers[p.name] for p in self._watched()}
        defaults: dict[str, Any] = {"events": events, "out_of_order": disorder, "stale": off}
        return Observed(layers=watched, outputs=outputs, **(defaults | extra))

    def compare_rule(self) -> str:
        return (
            f"per sample and spiking population, the spike-count distance (L1 over neurons of the spikes summed "
            f"over the sample's steps, divided by the model's spikes, at least 1) at most {self.tolerance:g}; the "
            "reference is the noise-free model (the nominal calibrated chip); steps are not compared one by one "
            "(analog timing jitter moves spikes across step boundaries); the readout's prediction is reported, "
            "not judged"
        )

    def compare_outputs(self, got: np.ndarray | None, expected: np.ndarray | None) -> dict[str, Any] | None:
        """None: the readout (the analog membrane sampled by the CADC) is not judged; its prediction is reported."""
        return None

    def compare_layer(self, got: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
        board, model = got.sum(axis=0), expected.sum(axis=0)
        distance = float(np.abs(board - model).sum()) / max(int(model.sum()), 1)
        return {
            "board_spikes": int(got.sum()),
            "emulator_spikes": int(expected.sum()),
            "differing": int(np.count_nonzero(board != model)),  # neurons whose spike count differs
            "first_step_differing": None,  # steps are not compared (see compare_rule)
            "distance": round(distance, 6),
            "tolerance": self.tolerance,
            "match": distance <= self.tolerance,
        }

    # -- the board ----------------------------------------------------------------------------------------------
    @classmethod
    def sdk_status(cls) -> str | None:
        try:
            found = importlib.util.find_spec("pynn_brainscales") is not None
        except (ImportError, ValueError):
            found = False
        return None if found else f"pynn-brainscales is not installed: {INSTALL}"

    @classmethod
    def discover(cls) -> list[str]:
        if cls.sdk_status() is not None:
            return []
        try:
            return [str(i) for i in importlib.import_module(MODULE).helper.get_unique_identifier()]
        except Exception:  # no setup allocated to this job, or a broken SDK: nothing found
            return []

    def open(self) -> dict[str, Any]:
        if self.sdk is None:
            assert self.netlist is not None
            gains = {p.name: p.gain for p in self.netlist.populations}
            self.sdk = self.vendor_sdk(
                lambda: fake_pynn_brainscales.FakePyNN(self.board.faults, self.clock, gains),
                lambda: importlib.import_module(MODULE),
                MODULE,
                INSTALL,
            )
        pynn, name = self.sdk, self.board.name
        missing = [
            what
            for what, present in (
                ("cells.CalibHXNeuronCuba (2023-02)", hasattr(pynn.cells, "CalibHXNeuronCuba")),
                ("RunCommand (2024-03)", hasattr(pynn, "RunCommand")),
            )
            if not present
        ]
        if missing:
            raise BoardVersionError(
                f"board {name!r}: the pynn-brainscales installed has no {' and no '.join(missing)}, which this "
                "adapter uses: use a newer BrainScaleS-2 software container"
            )
        identifiers = [str(i) for i in _sdk(lambda: pynn.helper.get_unique_identifier(), "open", name)]
        if self.board.address and self.board.address not in identifiers:
            raise BoardUnavailable(
                f"board {name!r}: the job was given setup {', '.join(identifiers) or 'none'}, the inventory names "
                f"{self.board.address}: ask slurm / quiggeldy for that setup, or correct the inventory's address"
            )
        options: dict[str, Any] = {}
        if self.calibration == "nightly":
            options["initial_config"] = _sdk(pynn.helper.chip_from_nightly, "open", name)
        elif self.calibration != "calix":
            path = Path(self.calibration).expanduser()
            options["initial_config"] = _sdk(lambda: pynn.helper.chip_from_file(path), "open", name)
        if self.cache:
            options["calibration_cache"] = self.cache
        _sdk(lambda: pynn.setup(**options), "open", name)
        self.open_now = True
        return {"setup": identifiers[0] if identifiers else "", "calibration": self.calibration, "sdk": MODULE}

    def load(self) -> None:
        assert self.folder is not None
        assert self.netlist is not None
        pynn, name = self.sdk, self.board.name
        doc, arrays = run_pynn_brainscales2.load(self.folder)
        self.doc = doc
        self.populations, self.sources = _sdk(
            lambda: run_pynn_brainscales2.build_brainscales2(pynn, doc, arrays), "load", name
        )
        self.membrane = False
        if self.netlist.readout["kind"] == "membrane":
            try:
                self.populations[self.netlist.readout["population"]].record(["v"], device="cadc")
                self.membrane = True
            except (TypeError, ValueError):  # an SDK before CADC recording: the readout's V is not read
                self.membrane = False
        self._bounded(
            lambda: pynn.run(None, pynn.RunCommand.PREPARE),
            "load",
            self.prepare_timeout_s,
            "placing, routing and calibrating the network",
        )

    def run_sample(self, prepared: np.ndarray, index: int, steps: int) -> Observed:
        assert self.netlist is not None
        pynn, name = self.sdk, self.board.name
        start = self.clock.monotonic()
        _sdk(pynn.reset, "run", name)
        _sdk(
            lambda: run_pynn_brainscales2.set_spikes_brainscales2(self.doc, self.sources, prepared[index], steps),
            "run",
            name,
        )
        runtime_ms = self._integration_steps(steps) / self.netlist.substeps * bss2.STEP_US / 1000.0
        self._bounded(lambda: pynn.run(runtime_ms), "run", self.timeout_s, f"sample {index}'s run")
        trains: dict[str, list[np.ndarray]] = {}
        for p in self.netlist.populations:
            if p.role == "readout" and self.netlist.readout["kind"] == "membrane":
                continue
            segment = _sdk(lambda p=p: self.populations[p.name].get_data("spikes").segments[-1], "run", name)
            per = [np.zeros(0)] * p.size
            for k, train in enumerate(segment.spiketrains):
                i = int(getattr(train, "annotations", {}).get("source_index", k))
                t0 = float(getattr(train, "t_start", 0.0))
                per[i] = (np.asarray(getattr(train, "magnitude", train), np.float64) - t0) * 1000.0  # ms -> µs
            trains[p.name] = per
        v = None
        if self.membrane:
            top = self.netlist.readout["population"]
            signals = _sdk(
                lambda: self.populations[top].get_data("v").segments[-1].irregularlysampledsignals, "run", name
            )
            v = _membrane(signals, self.populations[top].size)
        return self._observed(trains, v, steps, seconds=self.clock.monotonic() - start)

    def _bounded(self, fn: Any, stage: str, seconds: float, what: str) -> None:
        """``fn()`` with a bound: on a fake board directly (its waits are on its clock and it raises its own
        time-outs); on a chip in a worker thread joined after ``seconds``."""
        if self.board.fake:
            _sdk(fn, stage, self.board.name)
            return
        failure: list[BaseException] = []

        def work() -> None:
            try:
                fn()
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)

        worker = threading.Thread(target=work, name="bss2-run", daemon=True)
        worker.start()
        worker.join(seconds)
        if worker.is_alive():
            self.open_now = False  # the connection is given up; the harness reopens it
            raise BoardDisconnected(
                f"board {self.board.name!r}: {what} did not come back within {seconds:g} s (settings timeout_s, "
                "prepare_timeout_s); the connection is given up"
            )
        if failure:
            _sdk(_raise(failure[0]), stage, self.board.name)

    def close(self) -> None:
        if not self.open_now or self.sdk is None:
            return
        self.open_now = False
        try:
            self.sdk.end()
        except Exception:  # the setup may be gone; closing must not fail
            pass


def _raise(exc: BaseException) -> Any:
    def again() -> None:
        raise exc

    return again


def _membrane(signals: list[Any], size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The readout's CADC samples as (times µs, (samples, neurons)); None when a neuron has none."""
    by_neuron: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k, signal in enumerate(signals):
        if getattr(signal, "name", "v") != "v":
            continue
        index = int(np.asarray(getattr(signal, "array_annotations", {}).get("channel_index", [k])).reshape(-1)[0])
        times = np.asarray(getattr(signal.times, "magnitude", signal.times), np.float64) * 1000.0
        by_neuron[index] = (times, np.asarray(signal.magnitude, np.float64).reshape(-1))
    if set(by_neuron) != set(range(size)):
        return None
    times = by_neuron[0][0]
    if any(len(t) != len(times) or not np.allclose(t, times) for t, _ in by_neuron.values()):
        return None  # the neurons were sampled at different times: use the first neuron's grid only if shared
    return times, np.stack([by_neuron[i][1] for i in range(size)], axis=1)


def _names(exc: BaseException) -> list[str]:
    return [k.__name__ for k in type(exc).__mro__]


def _sdk(fn: Any, stage: str, board: str) -> Any:
    """``fn()`` with pynn-brainscales' errors as board errors, by their class names (see the module)."""
    try:
        return fn()
    except (BoardError, NeurodeployError):
        raise
    except Exception as exc:
        names = _names(exc)
        where = f"board {board!r}: pynn-brainscales ({type(exc).__name__}: {exc})"
        if any("Timeout" in n for n in names):
            raise BoardTimeout(f"{where}: timed out") from exc
        if any(n in DISCONNECTS or "Disconnect" in n for n in names):
            raise BoardDisconnected(f"{where}: the connection to the setup was lost") from exc
        if stage == "open":
            raise BoardUnavailable(f"{where}: the setup cannot be used (missing, busy or not allocated)") from exc
        if stage == "load":
            raise BoardRejected(f"{where}: the network was rejected") from exc
        raise BoardRejected(f"{where}: the run failed") from exc
