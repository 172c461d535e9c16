"""Speck / DYNAP-CNN limits as data, the memory formulas, and the design rules (one small function each).

Numbers from sinabs 3.1.3 ``backend/dynapcnn/chips/dynapcnn.py: get_constraints`` and ``dynapcnn_layer.py:
DynapcnnLayer.memory_summary``; the rule list from ``validate_memory_speck.py``, ``exceptions.py`` and the
Speck overview (see ``../shared/research/deploy-toolchains.md`` §2.2-2.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil, log2

from neurodeploy.backends.base import TargetSpec

CORES = 9
KERNEL_MEMORY = tuple(k * 1024 for k in (16, 16, 16, 32, 32, 64, 64, 16, 16))
"""Kernel (weight) memory entries per core."""
NEURON_MEMORY = tuple(k * 1024 for k in (64, 64, 64, 32, 32, 16, 16, 16, 16))
"""Neuron (state) memory entries per core."""
BIAS_MEMORY = (1024,) * CORES

WEIGHT_BITS = 8  # signed weights and biases (sinabs DYNAPCNN_WEIGHT_PRECISION_BITS)
STATE_BITS = 16  # signed membrane state and thresholds (sinabs DYNAPCNN_STATE_PRECISION_BITS)
WEIGHT_MIN, WEIGHT_MAX = -(2 ** (WEIGHT_BITS - 1)), 2 ** (WEIGHT_BITS - 1) - 1
STATE_MIN, STATE_MAX = -(2 ** (STATE_BITS - 1)), 2 ** (STATE_BITS - 1) - 1

MAX_KERNEL = 16
STRIDES = (1, 2, 4, 8)
MAX_PADDING = 7
POOLINGS = (1, 2, 4)
MAX_DESTINATIONS = 2
MAX_INPUT = 128
MAX_CHANNELS = 1024

CHIPS = {"speck": "speck2f", "speck2f": "speck2f", "dynapcnn": "dynapcnn"}
"""Target name -> the samna module that configures it (``samna.speck2f``, ``samna.dynapcnn``)."""


def spec(target: str) -> TargetSpec:
    return TargetSpec(
        name=target,
        description=(
            f"SynSense {'Speck 2f' if CHIPS[target] == 'speck2f' else 'DYNAP-CNN'}: 9 convolutional cores of "
            "integrate-and-fire neurons, 8-bit weights and biases, 16-bit state and thresholds, sum pooling"
        ),
        weight_bits=WEIGHT_BITS,
        state_bits=STATE_BITS,
        threshold_bits=STATE_BITS,
        cores=CORES,
        neurons_per_core=max(NEURON_MEMORY),
        synapses_per_core=max(KERNEL_MEMORY),
        fan_out=MAX_DESTINATIONS,
        ops=frozenset({"Conv2d", "Dense", "IF", "AvgPool2d", "Reshape"}),
    )


def _log2_ceil(n: int) -> int:
    return ceil(log2(n)) if n > 1 else 0


@dataclass(frozen=True)
class Memory:
    """What one layer needs of a core, in memory entries (power-of-two rounded as the chip addresses them)."""

    kernel: int
    neuron: int
    bias: int

    @classmethod
    def of(cls, in_channels: int, out_channels: int, kernel: int, out_hw: tuple[int, int], bias: bool) -> Memory:
        """kernel = c * 2^(ceil log2(k*k) + ceil log2 f); neuron = f * 2^(ceil log2 h + ceil log2 w);
        bias = f (0 without a bias), as ``DynapcnnLayer.memory_summary`` computes them."""
        return cls(
            kernel=in_channels * 2 ** (_log2_ceil(kernel * kernel) + _log2_ceil(out_channels)),
            neuron=out_channels * 2 ** (_log2_ceil(out_hw[0]) + _log2_ceil(out_hw[1])),
            bias=out_channels if bias else 0,
        )

    def fits(self, core: int) -> bool:
        return (
            self.kernel <= KERNEL_MEMORY[core] and self.neuron <= NEURON_MEMORY[core] and self.bias <= BIAS_MEMORY[core]
        )

    def why_not(self, core: int) -> str:
        """The memories of ``core`` this layer exceeds ('' when it fits)."""
        parts = []
        for what, need, have in (
            ("kernel", self.kernel, KERNEL_MEMORY[core]),
            ("neuron", self.neuron, NEURON_MEMORY[core]),
            ("bias", self.bias, BIAS_MEMORY[core]),
        ):
            if need > have:
                parts.append(f"{what} {_ki(need)} > {_ki(have)}")
        return ", ".join(parts)


def _ki(n: int) -> str:
    return f"{n // 1024}Ki" if n % 1024 == 0 and n else str(n)


# -- design rules: each returns a problem (str) or None ---------------------------------------------------------
def rule_square_kernel(kh: int, kw: int) -> str | None:
    if kh != kw:
        k = max(kh, kw)
        return f"kernel {kh}x{kw} is not square; Speck cores take square kernels only (pad it to {k}x{k} with zeros)"
    return None


def rule_kernel_size(k: int) -> str | None:
    if k > MAX_KERNEL:
        return f"kernel {k}x{k} exceeds the {MAX_KERNEL}x{MAX_KERNEL} limit; use a smaller kernel or a strided stack"
    return None


def rule_stride(stride: tuple[int, int]) -> str | None:
    if any(s not in STRIDES for s in stride):
        return (
            f"stride {stride[0]}x{stride[1]} is not one of {'/'.join(map(str, STRIDES))}; use a stride from that list"
        )
    return None


def rule_padding(padding: tuple[int, int, int, int]) -> str | None:
    top, left, bottom, right = padding
    if top != bottom or left != right:
        return f"padding {padding} (top, left, bottom, right) is not symmetric; Speck pads both sides equally"
    if max(padding) > MAX_PADDING:
        return f"padding {max(padding)} exceeds the limit of {MAX_PADDING}; use less padding"
    return None


def rule_pooling(pool: int) -> str | None:
    if pool not in POOLINGS:
        return (
            f"sum pooling {pool}x{pool} is not one of {'/'.join(f'{p}x{p}' for p in POOLINGS)}; use average pools "
            "of 2 or 4 (kernel = stride, no padding), at most 4x4 in total between two layers"
        )
    return None


def rule_channels(channels: int, what: str) -> str | None:
    if channels > MAX_CHANNELS:
        return f"{channels} {what} channels exceed the limit of {MAX_CHANNELS}; use fewer channels"
    return None


def rule_input_size(h: int, w: int) -> str | None:
    if h > MAX_INPUT or w > MAX_INPUT:
        return f"input map {h}x{w} exceeds {MAX_INPUT}x{MAX_INPUT}; downsample it first (pooling or a stride)"
    return None


def rule_destinations(n: int) -> str | None:
    if n > MAX_DESTINATIONS:
        return f"its output goes to {n} layers but a core has at most {MAX_DESTINATIONS} destinations; merge branches"
    return None


def rule_memory(memory: Memory) -> str | None:
    if not any(memory.fits(core) for core in range(CORES)):
        biggest = max(range(CORES), key=lambda c: (KERNEL_MEMORY[c], NEURON_MEMORY[c]))
        best_neuron = max(range(CORES), key=lambda c: NEURON_MEMORY[c])
        return (
            f"needs kernel {_ki(memory.kernel)}, neuron {_ki(memory.neuron)}, bias {memory.bias} entries, which no "
            f"core holds (largest kernel memory: core {biggest}, {memory.why_not(biggest) or 'fits'}; largest "
            f"neuron memory: core {best_neuron}, {memory.why_not(best_neuron) or 'fits'}); use fewer channels, a "
            "smaller map (stride or pooling before it) or a smaller kernel"
        )
    return None
