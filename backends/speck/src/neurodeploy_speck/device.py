"""The Speck / DYNAP-CNN board adapter, written against samna's API as sinabs 3 uses it (``samna >= 0.33``).

Open: ``samna.device.get_all_devices()`` names the attached boards as sinabs does (``speck2fdevkit:0``: the
device type, then the index among boards of that type in USB address order); the inventory's ``address`` picks
one (empty: the first of the artifact's chip). A board of another chip, one missing from the list, or one
``get_unopened_devices()`` does not list (open in another process) is refused before anything is sent;
``open_device`` giving no handle is a busy board too.

Load: the artifact's ``speck.json`` becomes samna's configuration object (:func:`neurodeploy_speck.config.
to_samna`, checked by ``validate_configuration``: a rejection is :class:`BoardRejected`), with ``monitor_enable``
set on every used core (setting ``watch = "all"``, the default) so that the host sees every layer's spikes, not
only the readout's; monitoring sends a core's events to the host as well, it changes no neuron. The slow clock,
which gives each core its bias tick, runs at one tick per step (``set_slow_clk_rate(1e6 / step_us)``). Input and
output buffers are joined to the chip's sink and source nodes by two ``EventFilterGraph`` s, as sinabs does.

Run, per sample: the configuration is applied again (every neuron back to ``neurons_initial_value``, sinabs'
``reset_states`` does the same), the output buffer is flushed (events found there are counted as stale),
the stop watch is reset and started, and the input is written as ``DvsEvent`` s (``p`` = input channel):
step t's events stamped ``t * step_us`` microseconds, in the emulator's order (rounds of one event per pixel
with events left, raster order). The host waits until the last step is over, then reads every ``quiet_s``
until a read brings no event stamped inside the run, and gives up after ``timeout_s`` more (sinabs#165: a
read that stops at the first quiet moment loses late events). Output ``Spike`` s are binned by their
timestamp into steps and by (layer, feature, y, x) into neurons; events stamped after the run are left out.
samna's ``TimeoutError`` is :class:`BoardTimeout`; ``OSError`` (a board unplugged) is :class:`BoardDisconnected`.

The comparison is exact: the board's event-driven cores against the emulator's ``event`` mode, every core's
spike count at every step. What this assumes, unchecked without a board: a core takes its step's bias tick
before that step's input events (the emulator's order); all of a step's output events carry a timestamp inside
the step (the chip's latency is microseconds, a step 1 ms by default).
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurodeploy.errors import DataError
from neurodeploy.hil.device import (
    Board,
    BoardDisconnected,
    BoardRejected,
    BoardTimeout,
    BoardUnavailable,
    BoardVersionError,
    Clock,
    Device,
    Observed,
)
from neurodeploy_speck import fake_samna
from neurodeploy_speck.config import to_samna
from neurodeploy_speck.emulator import Network, frame_events

MIN_SAMNA = (0, 33)
"""The oldest samna the adapter supports: what sinabs 3 requires, whose API it uses."""
DEVICE_TYPES = {
    "Speck2fDevKit": ("speck2fdevkit", "speck2f"),
    "Speck2fModuleDevKit": ("speck2fmodule", "speck2f"),
    "Speck2eDevKit": ("speck2edevkit", "speck2e"),
    "Speck2eTestBoard": ("speck2e", "speck2e"),
    "DynapcnnDevKit": ("dynapcnndevkit", "dynapcnn"),
}
"""samna's ``device_type_name`` -> (the name sinabs gives the board, the samna chip module it takes)."""
INSTALL = (
    "install SynSense's samna >= 0.33 from SynSense's package index (the package on PyPI is a stub that downloads "
    "it at first import, which needs the network)"
)


class SamnaDevice(Device):
    """A Speck or DYNAP-CNN development kit through samna (see the module)."""

    faults = fake_samna.FAULTS
    settings_help: ClassVar[dict[str, str]] = {
        "step_us": "microseconds of board time per step: the input's and the slow clock's (default 1000)",
        "timeout_s": "seconds a sample may take beyond its last step before it times out (default 5)",
        "quiet_s": "seconds between reads of the output buffer (default 0.1)",
        "settle_s": "seconds to wait after writing the configuration (default 1, as sinabs)",
        "watch": "'all': every core is monitored and compared; 'output': the readout core only (default all)",
    }

    def __init__(self, board: Board, clock: Clock) -> None:
        super().__init__(board, clock)
        self.step_us = int(board.number("step_us", 1000, integer=True))
        self.timeout_s = board.number("timeout_s", 5.0)
        self.quiet_s = board.number("quiet_s", 0.1)
        self.settle_s = board.number("settle_s", 1.0)
        self.watch = board.settings.get("watch", "all")
        if self.watch not in ("all", "output"):
            raise DataError(f"board {board.name!r}: setting watch must be 'all' or 'output' (got {self.watch!r})")
        if self.step_us < 1 or self.quiet_s <= 0:
            raise DataError(f"board {board.name!r}: step_us must be >= 1 and quiet_s > 0")
        self.sdk: Any = None
        self.handle: Any = None
        self.document: dict[str, Any] = {}
        self.network: Network | None = None
        self.names: dict[int, str] = {}
        self.config: Any = None
        self.source: Any = None
        self.sink: Any = None
        self.graphs: list[Any] = []

    # -- before the board ---------------------------------------------------------------------------------------
    def check(self, artifact: Any, inputs: Any, steps: int, encoding: Any) -> np.ndarray:
        from neurodeploy_speck.backend import SpeckBackend, layer_names

        backend = SpeckBackend(artifact.target)
        loaded = backend.load(artifact, "event")
        document, self.network = loaded.document, loaded.network
        frames = backend.prepare(loaded, inputs, steps=steps, encoding=encoding)
        channels = self.network.input_shape[0]
        if channels > 2:
            raise BoardUnavailable(
                f"the artifact's input has {channels} channels; a Speck board takes input events through its DVS "
                "layer, which has 2 (the polarities): compile a model whose input has at most 2 channels"
            )
        document = copy.deepcopy(document)
        watched = [core.index for core in self.network.cores]
        if self.watch == "output":
            watched = [self.network.output_core]
        for index, layer in enumerate(document["configuration"]["cnn_layers"]):
            if layer is not None:
                layer["monitor_enable"] = index in watched
        self.document = document
        self.names = {core: name for core, name in layer_names(document["host"]).items() if core in watched}
        return frames

    def reference(self, prepared: np.ndarray, steps: int) -> list[Observed]:
        assert self.network is not None
        run = self.network.run_events(prepared, record=tuple(self.names))
        return [
            self._observed({core: run.counts[core][i].reshape(steps, -1) for core in self.names}, steps)
            for i in range(len(prepared))
        ]

    def _observed(self, counts: dict[int, np.ndarray], steps: int, **extra: Any) -> Observed:
        """A record from per-core counts; the readout as the host computes it (speck.json's ``host.output``)."""
        from neurodeploy_speck.backend import host_readout

        output = self.document["host"]["output"]
        outputs = None
        if output["core"] in counts:
            outputs = host_readout(output, counts[output["core"]][None], steps)[0]
        return Observed(layers={self.names[c]: a for c, a in counts.items()}, outputs=outputs, **extra)

    # -- the board ----------------------------------------------------------------------------------------------
    @classmethod
    def sdk_status(cls) -> str | None:
        spec = importlib.util.find_spec("samna")
        if spec is None or not spec.submodule_search_locations:
            return f"samna is not installed: {INSTALL}"
        folder = Path(next(iter(spec.submodule_search_locations)))
        if not any(p.suffix in (".so", ".pyd") for p in folder.rglob("*")):
            return f"the samna installed is PyPI's stub, not SynSense's SDK: {INSTALL}"
        return None

    @classmethod
    def discover(cls) -> list[str]:
        if cls.sdk_status() is not None:
            return []
        try:
            return sorted(_device_names(importlib.import_module("samna")))
        except Exception:  # a broken SDK lists nothing; `hil list` reports sdk_status
            return []

    def open(self) -> dict[str, Any]:
        if self.sdk is None:
            chip = self.document.get("chip", "speck2f")
            self.sdk = self.vendor_sdk(
                lambda: fake_samna.FakeSamna(self.board.faults, self.clock, chip),
                lambda: importlib.import_module("samna"),
                "samna",
                INSTALL,
            )
        samna = self.sdk
        version = _samna_version(samna)
        if version is None or version < MIN_SAMNA:
            raise BoardVersionError(
                f"board {self.board.name!r}: samna {getattr(samna, '__version__', '?')} is older than the "
                f"{'.'.join(map(str, MIN_SAMNA))} this adapter is written for (its device and graph API changed "
                f"between releases): {INSTALL}"
            )
        devices = _call(samna.device.get_all_devices)
        names = _device_names(samna, devices)
        chip = self.document["chip"]
        wanted = self.board.address or next((n for n, (_, c) in names.items() if c == chip), "")
        if wanted not in names:
            what = repr(wanted) if wanted else f"of chip {chip!r}"
            seen = ", ".join(f"{n} ({c})" for n, (_, c) in names.items()) or "none"
            raise BoardUnavailable(
                f"board {self.board.name!r}: no device {what} is attached (samna sees: "
                f"{seen}); connect it, or correct the inventory's address"
            )
        info, kind = names[wanted]
        if kind != chip:
            raise BoardUnavailable(
                f"board {self.board.name!r}: device {wanted} is a {kind}, the artifact is for a {chip}: compile "
                f"for that chip's target, or choose a board with a {chip}"
            )
        if info not in _call(samna.device.get_unopened_devices):
            raise BoardUnavailable(
                f"board {self.board.name!r}: device {wanted} is open in another process (busy); close it there"
            )
        handle = _call(samna.device.open_device, info)
        if handle is None:
            raise BoardUnavailable(f"board {self.board.name!r}: samna could not open device {wanted} (busy?)")
        self.handle = handle
        return {
            "device": wanted,
            "device_type": info.device_type_name,
            "serial": str(getattr(info, "serial_number", "")),
            "samna": str(getattr(samna, "__version__", "")),
        }

    def load(self) -> None:
        samna, chip = self.sdk, self.document["chip"]
        try:
            self.config = to_samna(self.document, samna)
        except ValueError as exc:
            raise BoardRejected(f"board {self.board.name!r}: {exc}") from None
        model = _call(self.handle.get_model)
        try:
            _call(model.apply_configuration, self.config)
        except (RuntimeError, ValueError, TypeError) as exc:  # what samna raises for a configuration it refuses
            raise BoardRejected(f"board {self.board.name!r}: the device rejected the configuration: {exc}") from exc
        io = _call(self.handle.get_io_module)
        _call(io.set_slow_clk, True)
        _call(io.set_slow_clk_rate, 1e6 / self.step_us)
        self.source = getattr(samna, f"BasicSourceNode_{chip}_event_input_event")()
        self.sink = getattr(samna, f"BasicSinkNode_{chip}_event_output_event")()
        self.graphs = [samna.graph.EventFilterGraph(), samna.graph.EventFilterGraph()]
        self.graphs[0].sequential([self.source, model.get_sink_node()])
        self.graphs[1].sequential([model.get_source_node(), self.sink])
        for graph in self.graphs:
            graph.start()
        self.clock.sleep(self.settle_s)

    def run_sample(self, prepared: np.ndarray, index: int, steps: int) -> Observed:
        samna, chip = self.sdk, self.document["chip"]
        model = _call(self.handle.get_model)
        _call(model.apply_configuration, self.config)  # every neuron back to its initial value
        self.clock.sleep(self.settle_s)
        stale = len(_call(self.sink.get_events))
        watch = _call(self.handle.get_stop_watch)
        _call(watch.reset)
        _call(watch.start)
        events = self._input_events(getattr(samna, chip).event.DvsEvent, prepared[index])
        start = self.clock.monotonic()
        _call(self.source.write, events)
        window_us = steps * self.step_us
        self.clock.sleep(window_us / 1e6 + self.quiet_s)
        deadline = start + window_us / 1e6 + self.timeout_s
        received: list[Any] = []
        while True:
            got = [e for e in _call(self.sink.get_events) if getattr(e, "timestamp", None) is not None]
            received += got  # events without a timestamp (register reads, ...) say nothing about the run
            if not any(int(e.timestamp) < window_us for e in got):
                break
            if self.clock.monotonic() > deadline:
                _call(watch.stop)
                raise BoardTimeout(
                    f"board {self.board.name!r}: sample {index} still sent events {self.timeout_s} s after its last "
                    "step (setting timeout_s)"
                )
            self.clock.sleep(self.quiet_s)
        _call(watch.stop)
        return self._record(received, steps, stale, self.clock.monotonic() - start)

    def _input_events(self, make: Any, frames: np.ndarray) -> list[Any]:
        assert self.network is not None
        _, h, w = self.network.input_shape
        events = []
        for t in range(len(frames)):
            order = frame_events(frames[t][None])[0]
            for flat in order[order >= 0]:
                c, rest = divmod(int(flat), h * w)
                y, x = divmod(rest, w)
                event = make()
                event.x, event.y, event.p, event.timestamp = x, y, c, t * self.step_us
                events.append(event)
        return events

    def _record(self, received: list[Any], steps: int, stale: int, seconds: float) -> Observed:
        assert self.network is not None
        window_us = steps * self.step_us
        counts = {}
        shapes = {core.index: core.out_shape for core in self.network.cores}
        for core in self.names:
            counts[core] = np.zeros((steps, int(np.prod(shapes[core]))), np.int64)
        out_of_order, latest = 0, -1
        for event in received:
            stamp = int(event.timestamp)
            if stamp < latest:
                out_of_order += 1
            latest = max(latest, stamp)
            layer = int(getattr(event, "layer", -1))
            if layer not in counts or stamp >= window_us:
                continue
            f, h, w = shapes[layer]
            feature, y, x = int(event.feature), int(event.y), int(event.x)
            if not (0 <= feature < f and 0 <= y < h and 0 <= x < w):
                continue
            counts[layer][stamp // self.step_us, (feature * h + y) * w + x] += 1
        return self._observed(
            counts, steps, events=len(received), out_of_order=out_of_order, stale=stale, seconds=seconds
        )

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is None or self.sdk is None:
            return
        for graph in self.graphs:
            try:
                graph.stop()
            except Exception:  # the board may be gone; closing must not fail
                pass
        try:
            handle.reset_board_soft(True)
        except Exception:
            pass
        try:
            self.sdk.device.close_device(handle)
        except Exception:
            pass


def _call(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with samna's transport errors as board errors."""
    try:
        return fn(*args)
    except TimeoutError as exc:
        raise BoardTimeout(f"samna timed out: {exc}") from exc
    except OSError as exc:
        raise BoardDisconnected(f"the board went away: {exc}") from exc


def _samna_version(samna: Any) -> tuple[int, ...] | None:
    text = getattr(samna, "__version__", None)
    if text is None:
        try:
            text = importlib.metadata.version("samna")
        except importlib.metadata.PackageNotFoundError:
            return None
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def _device_names(samna: Any, devices: list | None = None) -> dict[str, tuple[Any, str]]:
    """sinabs' names for the attached boards: ``<type>:<index>`` -> (device info, chip)."""
    devices = samna.device.get_all_devices() if devices is None else devices
    names: dict[str, tuple[Any, str]] = {}
    by_type: dict[str, list] = {}
    for info in devices:
        if info.device_type_name in DEVICE_TYPES:
            by_type.setdefault(info.device_type_name, []).append(info)
    for type_name, infos in by_type.items():
        short, chip = DEVICE_TYPES[type_name]
        for i, info in enumerate(sorted(infos, key=lambda d: getattr(d, "usb_device_address", 0))):
            names[f"{short}:{i}"] = (info, chip)
    return names
