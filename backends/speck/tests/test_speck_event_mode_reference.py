"""Event mode against a sequential reference: a literal transcription of the chip's asynchronous semantics in
plain Python loops, one input event and one synapse at a time (see the emulator module's docstring).

The emulator does not feed events one at a time (it integrates, for all neurons at once, the r-th event each
neuron receives); this reference does, so the two share nothing but the speck.json document they read.
"""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy_speck.emulator import Network
from speck_deps import require
from speck_graphs import integer_document, random_network

NETWORKS = 30


def sequential_reference(network: Network, frames: np.ndarray) -> dict[int, np.ndarray]:
    """Spike counts (batch, T, F, H, W) of every core."""
    batch, steps = frames.shape[:2]
    counts = {c.index: np.zeros((batch, steps, *c.out_shape), np.int64) for c in network.cores}
    c_in, h_in, w_in = network.input_shape
    pool_in = network.input_pooling
    for b in range(batch):
        v = {c.index: [[[int(x) for x in row] for row in ch] for ch in c.initial] for c in network.cores}
        for t in range(steps):
            frame = frames[b, t]
            rounds = int(frame.max()) if frame.size else 0
            raw = [
                (ci, y, x)
                for r in range(rounds)
                for ci in range(c_in)
                for y in range(h_in)
                for x in range(w_in)
                if frame[ci, y, x] > r
            ]
            pooled = (c_in, h_in // pool_in, w_in // pool_in)
            events = {-1: [(ci, y // pool_in, x // pool_in) for ci, y, x in raw]}
            events[-1] = [e for e in events[-1] if e[1] < pooled[1] and e[2] < pooled[2]]
            for core in network.cores:
                f_out, oh, ow = core.out_shape
                c, h, w = core.in_shape
                k = core.weight.shape[-1]
                state = v[core.index]
                fired: list[tuple[int, int, int]] = []

                def touch(f: int, y: int, x: int, add: int, core=core, state=state, fired=fired) -> None:
                    value = state[f][y][x] + add
                    if value >= core.threshold_high:
                        fired.append((f, y, x))
                        value = 0 if core.return_to_zero else value - core.threshold_high
                    state[f][y][x] = max(value, core.threshold_low)

                if core.leak:
                    for f in range(f_out):
                        for y in range(oh):
                            for x in range(ow):
                                touch(f, y, x, int(core.bias[f]))
                streams = [  # each source's events that land inside the map, then one from each in turn
                    [
                        (ci + shift, y // pool, x // pool)
                        for ci, y, x in events[source]
                        if ci + shift < c and y // pool < h and x // pool < w
                    ]
                    for source, pool, shift in core.sources
                ]
                incoming = [stream[i] for i in range(max(map(len, streams))) for stream in streams if i < len(stream)]
                for ci, y, x in incoming:
                    if ci >= c or y >= h or x >= w:
                        continue
                    for f in range(f_out):
                        for oy in range(oh):
                            for ox in range(ow):
                                ky = y + core.padding[0] - oy * core.stride[0]
                                kx = x + core.padding[1] - ox * core.stride[1]
                                if 0 <= ky < k and 0 <= kx < k:
                                    touch(f, oy, ox, int(core.weight[f, ci, ky, kx]))
                for f, y, x in fired:
                    counts[core.index][b, t, f, y, x] += 1
                events[core.index] = fired
    return counts


def case(seed: int):
    rng = np.random.default_rng(5000 + seed)
    c, h = int(rng.integers(1, 3)), int(rng.integers(5, 11))
    in_shape = (c, h, h)
    input_pooling = int(rng.choice([1, 1, 2]))
    specs = random_network(rng, (c, h // input_pooling, h // input_pooling))
    frames = rng.poisson(rng.uniform(0.1, 1.2), size=(2, int(rng.integers(3, 7)), *in_shape))
    return integer_document(specs, in_shape, input_pooling=input_pooling), frames


@pytest.mark.parametrize("seed", range(NETWORKS))
def test_event_mode_equals_the_sequential_reference(seed):
    """Both loops, numpy (ranked events) and compiled (numba, where installed; ``auto`` is numpy without it),
    equal the reference in every core."""
    document, frames = case(seed)
    network = Network.from_config(document)
    want = sequential_reference(network, frames)
    for engine in ("auto", "numpy"):
        network.engine = engine
        run = network.run_events(frames, record=tuple(want))
        for core, expected in want.items():
            np.testing.assert_array_equal(run.counts[core], expected, err_msg=f"network {seed}, core {core}, {engine}")


def test_the_reference_cases_exercise_the_one_spike_rule():
    """Most networks spike in every core, and in many the event mode differs from the binned mode (a neuron
    left above threshold after an event, or events of both signs in one step: what the event order decides)."""
    spiking = differing = 0
    for seed in range(NETWORKS):
        document, frames = case(seed)
        network = Network.from_config(document)
        record = tuple(c.index for c in network.cores)
        binned, events = network.run_binned(frames, record=record), network.run_events(frames, record=record)
        spiking += all(int(events.counts[i].sum()) > 0 for i in record)
        differing += any(not np.array_equal(binned.counts[i], events.counts[i]) for i in record)
    assert spiking >= NETWORKS // 2
    assert differing >= NETWORKS // 2


def test_the_compiled_loop_is_used_where_numba_is_installed():
    require("numba", "numba")  # under NEURODEPLOY_REQUIRE_NUMBA=1 (make test-main) a missing numba fails here
    from neurodeploy_speck import _compiled

    assert _compiled.kernels() is not None
