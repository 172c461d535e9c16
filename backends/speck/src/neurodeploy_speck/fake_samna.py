"""A fake samna: the part of SynSense's SDK the board adapter uses (:mod:`neurodeploy_speck.device`), over a
replay of the emulator, with faults on command.

It stands where ``import samna`` would, at the transport level: device discovery (``device.get_all_devices``,
``get_unopened_devices``, ``open_device``, ``close_device``), a device handle (``get_model().
apply_configuration``, ``get_stop_watch``, ``get_io_module().set_slow_clk_rate``, ``reset_board_soft``), the
chip modules' configuration objects and ``validate_configuration``, ``DvsEvent`` / ``Spike`` events, the
``BasicSourceNode_<chip>_event_input_event`` and ``BasicSinkNode_<chip>_event_output_event`` buffers and
``graph.EventFilterGraph``, as sinabs' ``DynapcnnNetwork.to()`` and ``io.py`` use them. The chip reads its
configuration back from the configuration object it was given (nothing else of the artifact), takes the input
events in the order they were written, one slow-clock period per step, and runs them through the event mode of
the emulator (:meth:`neurodeploy_speck.emulator.Network.run_events`); its output events carry the timestamp of
their step and reach the output buffer as the board's time passes (a :class:`~neurodeploy.hil.device.Clock`,
virtual for a rehearsal). A fault is a board's or a link's misbehaviour, set in the inventory (:data:`FAULTS`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from neurodeploy.hil.device import Clock, check_faults
from neurodeploy.ir.graph import topological_order
from neurodeploy_speck.emulator import Network

FAULTS = {
    "missing": "no board is attached (true/false)",
    "busy": "the board is open in another process (true/false)",
    "kind": "the attached board is of this chip instead (speck2f, speck2e, dynapcnn)",
    "sdk_version": "the version samna reports (the adapter needs 0.33 or later)",
    "reject": "validate_configuration rejects the configuration with this message",
    "drop": "the first N output events of every sample are lost",
    "duplicate": "the first N output events of every sample arrive twice",
    "reorder": "every read of the output buffer returns its events in reverse order (true/false)",
    "late_s": "output events reach the host this many seconds after their timestamp",
    "timeout_at": "reading the output after the K-th write of input (from 0) raises TimeoutError, as samna's reads do",
    "timeout_times": "... and after the N writes from the K-th on (default 1; a sample run again is written again)",
    "chatter_at": "after the K-th write the board sends a spurious event with every read, so it never goes quiet",
    "chatter_times": "... and after the N writes from the K-th on (default 1)",
    "disconnect_at": "the board goes away during the K-th write of input (from 0)",
    "disconnect_for": "... and stays away for that many attempts to find it (default 0: back at the first)",
}
"""The faults a fake Speck board injects, as its inventory entry's ``faults`` table names them."""

DEVICE_TYPES = {"speck2f": "Speck2fDevKit", "speck2e": "Speck2eDevKit", "dynapcnn": "DynapcnnDevKit"}
"""The samna ``device_type_name`` of each chip's development kit."""
DVS_LAYER = 13
"""The DVS layer's number in samna's Speck event numbering."""
DEFAULT_STEP_US = 1000


class _Node:
    """A samna configuration object: any attribute can be set and read back; ``cnn_layers`` holds 9 cores and
    ``destinations`` 2 slots, as samna's do."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value: Any = [_Node() for _ in range(9 if name == "cnn_layers" else 2)]
        if name not in ("cnn_layers", "destinations"):
            value = _Node()
        object.__setattr__(self, name, value)
        return value


class _Event:
    def __init__(self, **fields: int) -> None:
        self.layer = self.x = self.y = self.feature = self.p = self.timestamp = 0
        self.__dict__.update(fields)


def configuration_from_samna(config: Any) -> dict[str, Any]:
    """A speck.json ``configuration`` and the ``host`` keys the emulator needs, read back from a configuration
    object: what the chip has, and nothing else."""

    def xy(node: Any) -> dict[str, int]:
        return {"x": int(node.x), "y": int(node.y)}

    def destinations(slots: list) -> list[dict[str, Any]]:
        out = []
        for slot in slots:
            fields = vars(slot)
            entry = {"layer": int(fields.get("layer", 0)), "enable": bool(fields.get("enable", False))}
            entry["pooling"] = int(fields.get("pooling", 1))
            if "feature_shift" in fields:
                entry["feature_shift"] = int(fields["feature_shift"])
            out.append(entry)
        return out

    layers: list[dict[str, Any] | None] = []
    for core in config.cnn_layers:
        if "weights" not in vars(core):
            layers.append(None)
            continue
        dims = core.dimensions
        layers.append(
            {
                "dimensions": {
                    shape: {
                        "size": xy(getattr(dims, shape).size),
                        "feature_count": int(getattr(dims, shape).feature_count),
                    }
                    for shape in ("input_shape", "output_shape")
                }
                | {"padding": xy(dims.padding), "stride": xy(dims.stride), "kernel_size": int(dims.kernel_size)},
                **{
                    key: getattr(core, key)
                    for key in ("weights", "biases", "leak_enable", "return_to_zero", "threshold_high")
                },
                "threshold_low": core.threshold_low,
                "monitor_enable": bool(core.monitor_enable),
                "neurons_initial_value": core.neurons_initial_value,
                "destinations": destinations(core.destinations),
            }
        )
    dvs = config.dvs_layer
    configuration = {"cnn_layers": layers, "dvs_layer": {"pooling": xy(dvs.pooling)}}
    configuration["dvs_layer"]["destinations"] = destinations(dvs.destinations)
    used = [i for i, layer in enumerate(layers) if layer is not None]
    order = _topological(used, {i: [d["layer"] for d in layers[i]["destinations"] if d["enable"]] for i in used})
    first = next(d["layer"] for d in configuration["dvs_layer"]["destinations"] if d["enable"])
    pool = configuration["dvs_layer"]["pooling"]["x"]
    shape = layers[first]["dimensions"]["input_shape"]
    return {
        "configuration": configuration,
        "host": {
            "layers": [{"core": i} for i in order],
            "input": {"shape": [shape["feature_count"], shape["size"]["y"] * pool, shape["size"]["x"] * pool]},
            "output": {"core": order[-1]},
        },
    }


def _topological(nodes: list[int], edges: dict[int, list[int]]) -> list[int]:
    order = topological_order(sorted(nodes), edges)
    if len(order) != len(nodes):
        raise ValueError("the cores' destinations form a cycle")
    return order


class _Chip:
    """The board: its state across opens, the configuration it holds, and one sample's run."""

    def __init__(self, faults: dict[str, Any], clock: Clock, kind: str) -> None:
        self.faults, self.clock, self.kind = faults, clock, kind
        self.open = False
        self.away = 0
        """Attempts to find the board left while it is disconnected."""
        self.network: Network | None = None
        self.step_us = DEFAULT_STEP_US
        self.current = 0
        self.started: float | None = None
        self.inputs: list[_Event] = []
        self.delivered = 0
        self.cache: tuple[int, list[_Event]] = (0, [])
        self.state: dict[int, np.ndarray] = {}
        self.in_flight: list[tuple[float, _Event]] = []
        self.writes = 0
        """Writes of input since the board was made: the faults' K counts them (a sample run again is written
        again)."""

    def fault(self, name: str, default: Any = None) -> Any:
        return self.faults.get(name, default)

    def present(self) -> bool:
        if self.fault("missing"):
            return False
        if self.away:
            self.away -= 1
            return False
        return True

    def check_link(self) -> None:
        if self.away or not self.open:
            raise OSError("the device is disconnected")

    # -- one sample ---------------------------------------------------------------------------------------------
    def configure(self, config: Any) -> None:
        self.check_link()
        self.network = Network.from_config(configuration_from_samna(config))
        self.started, self.inputs, self.delivered, self.cache, self.state = None, [], 0, (0, []), {}

    def write(self, events: list) -> None:
        self.check_link()
        self.current = self.writes
        self.writes += 1
        if self.fault("disconnect_at") == self.current:
            self.open = False
            self.away = int(self.fault("disconnect_for", 0))
            raise OSError("USB device disconnected while events were written")
        self.inputs = list(events)
        self.delivered, self.cache, self.state = 0, (0, []), {}

    def read(self) -> list[_Event]:
        self.check_link()
        write = self.current
        running = self.started is not None  # faults strike while a sample runs, not when the buffer is flushed
        if running and self._hit("timeout", write):
            self.clock.sleep(2.0)  # samna's register reads give up after 2 s
            raise TimeoutError("reading the output buffer timed out")
        now = self.clock.monotonic()
        new = [event for at, event in self.in_flight if at <= now]  # sent before the stop watch stopped
        self.in_flight = [(at, event) for at, event in self.in_flight if at > now]
        ready = self._ready()
        new += ready[self.delivered :]
        self.delivered = len(ready)
        if running and self._hit("chatter", write):
            new = [*new, _Event(layer=self.network.output_core if self.network else 0, timestamp=0)]
        if self.fault("reorder"):
            new = new[::-1]
        return new

    def _hit(self, fault: str, write: int) -> bool:
        first = self.fault(f"{fault}_at")
        return first is not None and int(first) <= write < int(first) + int(self.fault(f"{fault}_times", 1))

    def _ready(self, sent: bool = False) -> list[_Event]:
        """The output events the host can have read by now, in delivery order (faults applied); with ``sent``,
        every event the chip has sent by now, wherever it is on its way."""
        if self.started is None or self.network is None:
            return []
        elapsed_us = (self.clock.monotonic() - self.started) * 1e6
        steps = int(elapsed_us // self.step_us)
        events = self._events(steps)
        ready = events if sent else [e for e in events if e.timestamp + self.step_us + self._late_us() <= elapsed_us]
        drop, duplicate = int(self.fault("drop", 0)), int(self.fault("duplicate", 0))
        return ready[:duplicate] + ready[drop:] if duplicate else ready[drop:]

    def _late_us(self) -> float:
        return float(self.fault("late_s", 0.0)) * 1e6

    def halt(self) -> None:
        """The stop watch stops: the chip's time stops; events it sent are still on their way to the host (the
        next sample's flush finds those that come late)."""
        if self.started is not None:
            pending = self._ready(sent=True)[self.delivered :]
            start = self.started
            self.in_flight += [(start + (e.timestamp + self.step_us + self._late_us()) / 1e6, e) for e in pending]
        self.started = None

    def _events(self, steps: int) -> list[_Event]:
        """Every core's output events of the first ``steps`` steps (each in the step its timestamp names), run
        on from the steps already run. A network without bias ticks sends nothing after its last input step, so
        it is run no further."""
        network = self.network
        assert network is not None
        if not any(core.leak for core in network.cores):
            steps = min(steps, max((int(e.timestamp) // self.step_us for e in self.inputs), default=-1) + 1)
        done, out = self.cache
        if steps <= done:
            return out
        c, h, w = network.input_shape
        frames = np.zeros((1, steps - done, c, h, w), np.int64)
        arrivals: list[list[int]] = [[] for _ in range(steps - done)]
        for event in self.inputs:
            t = int(event.timestamp) // self.step_us - done
            if 0 <= t < len(arrivals):
                index = (int(event.p) * h + int(event.y)) * w + int(event.x)
                frames[0, t].reshape(-1)[index] += 1
                arrivals[t].append(index)
        width = max((len(a) for a in arrivals), default=0)
        padded = [np.array([a + [-1] * (width - len(a))], np.int64).reshape(1, width) for a in arrivals]
        cores = tuple(core.index for core in network.cores)
        run = network.run_events(frames, record=cores, arrivals=padded, state=self.state)
        out = list(out)
        for t in range(steps - done):
            for core in network.cores:
                counts = run.counts[core.index][0, t]
                for f, y, x in zip(*np.nonzero(counts)):
                    stamp = (done + t) * self.step_us + 1
                    out += [_Event(layer=core.index, feature=int(f), y=int(y), x=int(x), timestamp=stamp)] * int(
                        counts[f, y, x]
                    )
        self.cache = (steps, out)
        return out


class _StopWatch:
    def __init__(self, chip: _Chip) -> None:
        self.chip = chip

    def start(self) -> None:
        self.chip.check_link()
        if self.chip.started is None:
            self.chip.started = self.chip.clock.monotonic()

    def reset(self) -> None:
        self.chip.check_link()
        self.chip.halt()

    def stop(self) -> None:
        self.chip.halt()


class _Handle:
    def __init__(self, chip: _Chip) -> None:
        self.chip = chip
        model = SimpleNamespace(
            apply_configuration=chip.configure,
            get_sink_node=lambda: "device-sink",
            get_source_node=lambda: "device-source",
        )
        self._model = model

    def get_model(self) -> Any:
        self.chip.check_link()
        return self._model

    def get_stop_watch(self) -> _StopWatch:
        return _StopWatch(self.chip)

    def get_io_module(self) -> Any:
        def rate(hz: float) -> None:
            self.chip.check_link()
            self.chip.step_us = max(1, round(1e6 / float(hz)))

        return SimpleNamespace(set_slow_clk=lambda on: None, set_slow_clk_rate=rate)

    def reset_board_soft(self, full: bool = True) -> None:
        self.chip.check_link()


class FakeSamna:
    """A samna module over one fake board (see the module). ``chip``: the chip the board has, unless the fault
    ``kind`` says otherwise."""

    def __init__(self, faults: dict[str, Any], clock: Clock, chip: str = "speck2f") -> None:
        kind = str(faults.get("kind", chip))
        if kind not in DEVICE_TYPES:
            raise ValueError(f"fault kind={kind!r}: the fake board can be one of {', '.join(DEVICE_TYPES)}")
        check_faults(faults, FAULTS, "a fake Speck board")
        self.__version__ = str(faults.get("sdk_version", "0.48.6"))
        self._chip = _Chip(faults, clock, kind)
        self._info = SimpleNamespace(
            device_type_name=DEVICE_TYPES[kind], usb_device_address=4, usb_bus_number=1, serial_number="FAKE-0001"
        )
        self.device = SimpleNamespace(
            get_all_devices=self._all,
            get_unopened_devices=self._unopened,
            open_device=self._open,
            close_device=self._close,
        )
        self.graph = SimpleNamespace(EventFilterGraph=_Graph)
        for name in DEVICE_TYPES:
            setattr(self, name, self._chip_module(name))
            setattr(self, f"BasicSourceNode_{name}_event_input_event", lambda: _Source(self._chip))
            setattr(self, f"BasicSinkNode_{name}_event_output_event", lambda: _Sink(self._chip))

    def _chip_module(self, name: str) -> Any:
        configuration = SimpleNamespace(SpeckConfiguration=_Node, DynapcnnConfiguration=_Node)

        def validate(config: Any) -> tuple[bool, str]:
            message = self._chip.fault("reject")
            return (False, str(message)) if message else (True, "")

        event = SimpleNamespace(DvsEvent=_Event, Spike=_Event)
        return SimpleNamespace(configuration=configuration, validate_configuration=validate, event=event)

    def _all(self) -> list:
        return [self._info] if self._chip.present() else []

    def _unopened(self) -> list:
        chip = self._chip
        return [] if chip.fault("busy") or chip.open or chip.fault("missing") or chip.away else [self._info]

    def _open(self, info: Any) -> _Handle | None:
        chip = self._chip
        if chip.fault("missing") or chip.away:
            raise OSError("no such device")
        if chip.fault("busy") or chip.open:
            return None  # samna gives no handle for a device that is already open
        chip.open = True
        return _Handle(chip)

    def _close(self, handle: Any) -> None:
        self._chip.open = False


class _Graph:
    def sequential(self, nodes: list) -> None:
        self.nodes = nodes

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _Source:
    def __init__(self, chip: _Chip) -> None:
        self.chip = chip

    def write(self, events: list) -> None:
        self.chip.write(events)


class _Sink:
    def __init__(self, chip: _Chip) -> None:
        self.chip = chip

    def get_events(self) -> list:
        return self.chip.read()
