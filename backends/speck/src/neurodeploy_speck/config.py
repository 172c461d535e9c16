"""The artifact's ``speck.json``: a JSON mirror of samna's chip configuration plus what the host needs.

``configuration`` mirrors ``samna.speck2f.configuration.SpeckConfiguration`` (or ``samna.dynapcnn``'s
``DynapcnnConfiguration``) field by field, with the values sinabs' ``make_config`` writes
(``chips/dynapcnn.py: get_dynapcnn_layer_config_dict``):

* ``cnn_layers``: 9 entries, ``null`` for unused cores; per used core ``dimensions`` (input and output
  ``size.{x,y}`` and ``feature_count``, ``padding.{x,y}``, ``stride.{x,y}``, ``kernel_size``), ``weights`` in
  samna's index order ``[f][c][x][y]`` (the (F, C, kH, kW) kernel with its two spatial axes swapped), ``biases``,
  ``leak_enable`` (any bias non-zero), ``return_to_zero``, ``threshold_high``, ``threshold_low``,
  ``monitor_enable`` (the output core), ``neurons_initial_value`` ``[f][x][y]``, and ``destinations`` (two slots:
  ``layer``, ``enable``, ``pooling``).
* ``dvs_layer``: ``merge``, ``mirror``, ``mirror_diagonal``, ``cut``, ``origin``, ``pooling``,
  ``pass_sensor_events`` and its ``destinations``: how input events reach the first cores.
* ``readout`` (Speck only): disabled. On Speck 2e/2f the readout layer maps core channel 4i to readout channel
  i + 1 (chip erratum; sinabs' ``extend_readout_layer`` pads the last layer to (C-1)*4+1 channels for it). The
  output is read from the output core's monitored events instead, which the erratum does not touch.

``host`` holds the input's name, shape and event value, which core each layer went to, and how output spikes
become the output: the output core's events, less those of the first ``min(readout_delay, T // 2)`` steps (the
transient while every core fills from its initial value), times ``value_per_spike``, over the steps counted,
plus ``bias`` per output where the host adds the readout's bias (:func:`neurodeploy_speck.quantize.bias_to_host`).
:func:`to_samna` builds the real samna object from ``configuration``.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from neurodeploy.schema import Array, Bool, Dict, Int, List, Number, Optional, Str
from neurodeploy_speck import chip
from neurodeploy_speck.lowering import INPUT, Lowered
from neurodeploy_speck.quantize import QuantizedLayer

FORMAT = "neurodeploy-speck/1"
CONFIG_FILE = "speck.json"

_XY = Dict({"x": Int(), "y": Int()})
_MAP = Dict({"size": Dict({"x": Int(1), "y": Int(1)}), "feature_count": Int(1)})
_DESTINATIONS = List(
    Dict({"layer": Int(0, chip.CORES - 1), "enable": Bool(), "pooling": Int(1)}, {"feature_shift": Int(0)})
)
_CORE = Dict(
    {
        "dimensions": Dict(
            {"input_shape": _MAP, "output_shape": _MAP, "padding": _XY, "stride": _XY, "kernel_size": Int(1)}
        ),
        "weights": Array("i", ndim=4),
        "biases": Array("i", ndim=1),
        "leak_enable": Bool(),
        "return_to_zero": Bool(),
        "threshold_high": Int(),
        "threshold_low": Int(),
        "monitor_enable": Bool(),
        "neurons_initial_value": Array("i", ndim=3),
        "destinations": _DESTINATIONS,
    }
)
SCHEMA = Dict(
    {
        "format": Str(choices=(FORMAT,)),
        "configuration": Dict(
            {
                "dvs_layer": Dict({"pooling": _XY, "destinations": _DESTINATIONS}),
                "cnn_layers": List(Optional(_CORE), length=chip.CORES),
            }
        ),
        "host": Dict(
            {
                "input": Dict({"name": Str(), "shape": List(Int(1), length=3)}, {"event_value": Number()}),
                "layers": List(
                    Dict(
                        {"name": Str(), "neuron": Optional(Str()), "core": Int(0, chip.CORES - 1)},
                        {"op_type": Str(), "scale": Number(), "readout": Bool()},
                    ),
                    min_len=1,
                ),
                "output": Dict(
                    {"name": Str(), "shape": List(Int(1)), "core": Int(0, chip.CORES - 1), "value_per_spike": Number()},
                    {"readout_delay": Int(0), "bias": List(Number())},
                ),
            }
        ),
    }
)
"""speck.json: the type of every key the emulator and the backend read (samna's own fields included)."""


def _xy(y: int, x: int) -> dict[str, int]:
    return {"x": int(x), "y": int(y)}


def _destinations(triples: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """The two destination slots: (core, pooling, feature shift) each; a shift is written only where it is not 0
    (the field samna's CnnLayerDestination has for channel concatenation, which sinabs never sets)."""
    slots = []
    for core, pool, shift in triples:
        slot: dict[str, Any] = {"layer": int(core), "enable": True, "pooling": int(pool)}
        if shift:
            slot["feature_shift"] = int(shift)
        slots.append(slot)
    while len(slots) < chip.MAX_DESTINATIONS:
        slots.append({"layer": 0, "enable": False, "pooling": 1})
    return slots


def build_config(
    target: str,
    lowered: Lowered,
    quantized: list[QuantizedLayer],
    cores: dict[int, int],
    input_scale: float,
    readout_delay: int = 0,
    host_bias: np.ndarray | None = None,
) -> dict[str, Any]:
    """The speck.json document of a placed, quantized network."""
    cnn_layers: list[dict[str, Any] | None] = [None] * chip.CORES
    for i, (layer, q) in enumerate(zip(lowered.layers, quantized)):
        c, h, w = layer.in_shape
        f, oh, ow = layer.out_shape
        cnn_layers[cores[i]] = {
            "dimensions": {
                "input_shape": {"size": _xy(h, w), "feature_count": int(c)},
                "output_shape": {"size": _xy(oh, ow), "feature_count": int(f)},
                "padding": _xy(*layer.padding),
                "stride": _xy(*layer.stride),
                "kernel_size": layer.kernel,
            },
            "weights": q.weight.transpose(0, 1, 3, 2).tolist(),  # samna's [f][c][x][y]
            "biases": q.bias.tolist(),
            "leak_enable": bool(np.any(q.bias)),
            "return_to_zero": layer.reset == "zero",
            "threshold_high": int(q.threshold_high),
            "threshold_low": int(q.threshold_low),
            "monitor_enable": i == lowered.readout_layer,
            "neurons_initial_value": np.full((f, ow, oh), q.initial, np.int64).tolist(),  # [f][x][y]
            "destinations": _destinations([(cores[d], p, shift) for d, p, shift in layer.destinations]),
        }
    c, h, w = lowered.input_shape
    pool = lowered.input_pooling
    configuration: dict[str, Any] = {
        "dvs_layer": {
            "merge": c == 1,
            "mirror": {"x": False, "y": False},
            "mirror_diagonal": False,
            "cut": _xy(h // pool - 1, w // pool - 1),
            "origin": _xy(0, 0),
            "pooling": _xy(pool, pool),
            "pass_sensor_events": False,
            "destinations": _destinations([(cores[d], 1, 0) for d in lowered.input_destinations]),
        },
        "cnn_layers": cnn_layers,
    }
    if chip.CHIPS[target] == "speck2f":
        configuration["readout"] = {
            "enable": False,
            "note": "output: the output core's monitored events (readout erratum: core channel 4i -> readout i+1)",
        }
    readout = lowered.layers[lowered.readout_layer]
    return {
        "format": FORMAT,
        "target": target,
        "chip": chip.CHIPS[target],
        "configuration": configuration,
        "host": {
            "input": {
                "name": lowered.input_name,
                "shape": list(lowered.input_shape),
                "event_value": float(input_scale),
                "pooling": pool,
                "sensor_compatible": c <= 2 and h <= chip.MAX_INPUT and w <= chip.MAX_INPUT,
            },
            "layers": [
                {
                    "name": layer.name,
                    "neuron": layer.neuron,
                    "op_type": layer.op_type,
                    "core": cores[i],
                    "source": "input" if layer.source == INPUT else cores[layer.source],
                    **(
                        {
                            "sources": [
                                {
                                    "from": "input" if src == INPUT else cores[src],
                                    "pooling": pool,
                                    "feature_shift": shift,
                                }
                                for src, pool, shift in layer.sources
                            ]
                        }
                        if len(layer.sources) > 1
                        else {}
                    ),
                    "readout": i == lowered.readout_layer,
                    "scale": q.scale,
                }
                for i, (layer, q) in enumerate(zip(lowered.layers, quantized))
            ],
            "output": {
                "name": lowered.output,
                "shape": list(lowered.output_shape),
                "core": cores[lowered.readout_layer],
                "value_per_spike": float(lowered.readout_threshold),
                "readout_is_spiking_layer": readout.neuron is not None,
                "readout_delay": int(readout_delay),
                **({} if host_bias is None else {"bias": [float(b) for b in np.asarray(host_bias).reshape(-1)]}),
                "readout_note": "host: over T steps, ignore the output core's events of the first "
                "min(readout_delay, T // 2) steps (the transient while the cores fill); output = counted events x "
                "value_per_spike / the steps counted (+ bias per output where given)",
            },
        },
    }


# -- samna -------------------------------------------------------------------------------------------------
class SamnaMissingError(ImportError):
    """samna (SynSense's SDK) is not importable: only to_samna() and a board need it."""


def _import_samna(chip_name: str, sdk: Any = None):
    if sdk is not None:  # a samna module given by the caller (a board adapter's, or a fake board's)
        return sdk, getattr(sdk, chip_name)
    try:
        samna = importlib.import_module("samna")
        module = importlib.import_module(f"samna.{chip_name}")
    except Exception as exc:  # the PyPI stub fails at import time offline with whatever pip raises
        raise SamnaMissingError(
            f"to_samna() needs SynSense's samna with the samna.{chip_name} module, which could not be imported "
            f"({type(exc).__name__}: {exc}); install it from SynSense's package index (pip install samna; the PyPI "
            "package is a stub that downloads the real one on first import and needs the network). Everything "
            "else in neurodeploy-speck works without it."
        ) from exc
    return samna, module


def to_samna(document: dict[str, Any], sdk: Any = None):
    """Build (and validate, where samna offers it) the samna configuration object of a speck.json document.

    Imports samna here, never at module load (or uses ``sdk``, a samna module the caller has); raises
    SamnaMissingError saying what to install without it."""
    chip_name = document["chip"]
    _, module = _import_samna(chip_name, sdk)
    configuration = document["configuration"]
    if chip_name == "dynapcnn":
        config = module.configuration.DynapcnnConfiguration()
    else:
        config = module.configuration.SpeckConfiguration()
    dvs = configuration["dvs_layer"]
    for key in ("merge", "mirror_diagonal", "pass_sensor_events"):
        setattr(config.dvs_layer, key, dvs[key])
    for key in ("mirror", "cut", "origin", "pooling"):
        target = getattr(config.dvs_layer, key)
        target.x, target.y = dvs[key]["x"], dvs[key]["y"]
    _set_destinations(config.dvs_layer.destinations, dvs["destinations"])
    for core, layer in enumerate(configuration["cnn_layers"]):
        if layer is None:
            continue
        target = config.cnn_layers[core]
        dims, tdims = layer["dimensions"], target.dimensions
        for shape in ("input_shape", "output_shape"):
            tshape = getattr(tdims, shape)
            tshape.size.x, tshape.size.y = dims[shape]["size"]["x"], dims[shape]["size"]["y"]
            tshape.feature_count = dims[shape]["feature_count"]
        tdims.padding.x, tdims.padding.y = dims["padding"]["x"], dims["padding"]["y"]
        tdims.stride.x, tdims.stride.y = dims["stride"]["x"], dims["stride"]["y"]
        tdims.kernel_size = dims["kernel_size"]
        for key in (
            "weights",
            "biases",
            "leak_enable",
            "return_to_zero",
            "threshold_high",
            "threshold_low",
            "monitor_enable",
            "neurons_initial_value",
        ):
            setattr(target, key, layer[key])
        _set_destinations(target.destinations, layer["destinations"])
    validate = getattr(module, "validate_configuration", None)
    if validate is not None:
        valid, message = validate(config)
        if not valid:
            raise ValueError(f"samna.{chip_name}.validate_configuration rejected the configuration: {message}")
    return config


def _set_destinations(targets, values: list[dict[str, Any]]) -> None:
    for slot, value in enumerate(values):
        targets[slot].layer = value["layer"]
        targets[slot].enable = value["enable"]
        if hasattr(targets[slot], "pooling"):
            targets[slot].pooling = value["pooling"]
        if value.get("feature_shift"):
            targets[slot].feature_shift = value["feature_shift"]
