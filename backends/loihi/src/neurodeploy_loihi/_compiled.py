"""Event-driven synapse loops, compiled with numba when it is installed (``pip install neurodeploy-loihi[fast]``).

A Loihi core does work in proportion to the spikes it receives: each spike walks its neuron's synapse list. The
numpy path of :mod:`neurodeploy_loihi.emulator` computes every synapse every step (one matrix product, in
proportion to the weights); these loops walk the spikes instead, in integers, so they give the same sums
(tested equal to the numpy path and, in the Lava environment, to Lava's ``fixed_pt`` models). The emulator uses
them when numba is present and the input is sparse (:func:`sparse_enough`), and the numpy path otherwise.
Importing numba takes a moment, so it happens on the first sparse step, not when the plugin loads.

No ``from __future__ import annotations``: Lava's process-model discovery executes every module of this folder.
"""

import sys

import numpy as np

EVENT_DENSITY = 0.2
"""Above this fraction of nonzero inputs a matrix product (BLAS) beats a walk over the events."""
EVENT_ADDS = 6.0
"""...and above this many additions per input (density x output channels per group x pool size, the pool
folding px x py inputs into one listed cell): each listed input adds its kernel to every output it reaches, while
the matrix product does every multiply-add of the layer at BLAS speed, 10 to 20 times the loop's rate per add.
Measured on 2 cores, 16 samples of 3x3 convolutions, events against the matrix product: 64 to 64 channels at 32 x
32, 2.6x faster at 2% density, even at 7%; 256 channels at 8 x 8, even at 4% (10 additions); 16 to 32 channels
with a 2 x 2 pool, even at 10% (13 additions); 32 to 64 with the pool, even at 2.5% (6 additions). (Measured with
the gather loop :func:`_conv_one` replaced; this choice is the step-by-step path's: the fused run always walks the
events.)"""

_KERNELS = None


def _conv(s, table, rows, geometry, cells, index, count, acc, vec, out):  # pragma: no cover - compiled
    """Lava's true convolution of the payloads s (B, X, Y, C_in) (spikes 0/1, or integers), with an average pool
    folded in, into ``out`` (B, X', Y', C_out) int64, wrapped to 24 bits: :func:`_conv_one` per sample."""
    for b in range(s.shape[0]):
        _conv_one(s[b], table, rows, geometry, cells, index, count, acc, vec, out[b])


def _conv_one(s, table, rows, geometry, cells, index, count, acc, vec, out):  # pragma: no cover - compiled
    """One sample of :func:`_conv`: payloads s (X, Y, C_in) into ``out`` (X', Y', C_out).

    (1) each input lands in its *cell*: with padding (pad_x, pad_y) around the input, cell
    (x + pad_x) // px, (y + pad_y) // py sums a px x py pool block (one input per cell without a pool; padding
    cells stay 0); (2) each cell's nonzero channels are listed, branch-free, in ``index`` and ``cells`` (their
    sums); (3) each cell with a listed channel adds, through each tap (i, j), the kernel rows of its listed
    channels to the output that tap connects it to: output x' reads cell x' * sx + i * dx through tap i (the
    correlation with the kernel flipped, as ``conv_accumulate``), so cell q reaches x' = (q - i * dx) / sx where
    that is a whole number in range. ``acc`` (flat, at least (X' + kX - 1) * (Y' + kY - 1) * C_out long) holds
    the sums, int16 or int32 where no partial sum can leave that type (:func:`reach`), else int64; ``table`` (kX,
    kY, C_in, C_out / groups) is the flipped kernel, input channel c adding to the outputs of its group, ``rows``
    the same weights one contiguous row per channel (:func:`channel_rows`). With one group and stride and
    dilation 1 (in cells), each listed channel adds, per tap row i, its kY taps as one run into a padded
    accumulator, where every tap lands in range (no bounds checks), and each output row is then one run of it;
    with other strides, a cell first sums its listed channels' whole rows into ``vec`` (kX * kY * C_out, acc's
    type), then adds each tap's part to its output. Long vectorized runs either way, in the narrowest type that
    holds the sums (half the memory traffic and twice the lanes of the next). The work is one pass over the
    input plus one add per listed channel, tap and output channel of its group: in proportion to the spikes;
    empty cells cost nothing more."""
    _scatter(s, geometry, cells)
    _conv_cells(table, rows, geometry, cells, index, count, acc, vec, out)


def _scatter(s, geometry, cells):  # pragma: no cover - compiled
    """Step (1) of :func:`_conv_one`: the payloads s (X, Y, C_in) summed into their cells (X'', Y'', C_in)."""
    px, py, pad_x, pad_y = geometry[0], geometry[1], geometry[2], geometry[3]
    size_x, size_y, channels = s.shape
    cells_x, cells_y = cells.shape[0], cells.shape[1]
    cells[:] = 0
    for qx in range(cells_x):  # cell by cell (a partial block past the last whole one is never read)
        for a in range(px):
            x = qx * px + a - pad_x
            if x < 0 or x >= size_x:  # padding
                continue
            for qy in range(cells_y):
                for b in range(py):
                    y = qy * py + b - pad_y
                    if y < 0 or y >= size_y:
                        continue
                    for c in range(channels):
                        cells[qx, qy, c] += s[x, y, c]


def _scatter_events(events, n_events, cell_of, cells, entries):  # pragma: no cover - compiled
    """Step (1) of :func:`_conv_one` for binary spikes given as a list: the first ``n_events`` entries of
    ``events`` (the spiking neurons' flat indices, X, Y, C_in order) each add 1 to their cell, ``cell_of`` per
    input neuron (the flat index into ``cells``, (X'', Y'', C_in), or -1 past the last whole pool block): work
    in proportion to the spikes, where :func:`_scatter` reads every input. ``cells`` must be all zero on entry
    (the callers zero what they used); the cells that became nonzero are listed in ``entries``, first touch
    first, and their number is returned."""
    n = 0
    for m in range(n_events):
        j = cell_of[events[m]]
        if j >= 0:
            entries[n] = j  # (branch-free: kept where the cell was empty)
            n += cells[j] == 0
            cells[j] += 1
    return n


def _conv_entries(rows, grid, cells, entries, n_entries, position, channel, acc, out):  # pragma: no cover
    """Steps (2) and (3) of :func:`_conv_one` from :func:`_scatter_events`'s list, for one group with stride and
    dilation 1 in cells (the fast path of :func:`_conv_cells`, without its pass over every cell): each listed
    cell j (input channel ``channel[j]``, at ``position[j]`` = qx * (cells_y + kY - 1) + qy in the padded
    accumulator) adds its kX tap rows, each one run of kY * C_out, and goes back to 0. ``grid`` is (cells_x,
    cells_y, kX, kY). Work: the outputs plus one add per listed cell, tap and output channel."""
    cells_x, cells_y, kx, ky = grid
    per_out = out.shape[2]
    wide = cells_y + ky - 1
    run = ky * per_out
    length = kx * run
    acc[: (cells_x + kx - 1) * wide * per_out] = 0
    for m in range(n_entries):
        j = entries[m]
        p, at, base = cells[j], channel[j] * length, position[j]
        cells[j] = 0
        for i in range(kx):
            kernel = rows[at + i * run : at + i * run + run]
            start = (base + (kx - 1 - i) * wide) * per_out
            target = acc[start : start + run]
            for o in range(run):
                target[o] += p * kernel[o]
    _padded_out(acc, kx, ky, wide, out)


def _padded_out(acc, kx, ky, wide, out):  # pragma: no cover - compiled
    """The outputs (X', Y', C_out) of a padded accumulator (see :func:`_conv_cells`), wrapped to 24 bits: output
    (ox, oy) sums at (ox + kX - 1, oy + kY - 1), so an output row is one run of it."""
    out_x, out_y, c_out = out.shape
    half, mask = np.int64(1) << 23, (np.int64(1) << 24) - 1
    span = out_y * c_out
    flat = out.reshape(out_x, span)
    for ox in range(out_x):
        start = ((ox + kx - 1) * wide + ky - 1) * c_out
        part = acc[start : start + span]
        row = flat[ox]
        for o in range(span):
            row[o] = ((part[o] + half) & mask) - half  # signed_clamp(x, bits=24)


def _conv_cells(table, rows, geometry, cells, index, count, acc, vec, out):  # pragma: no cover - compiled
    """Steps (2) and (3) of :func:`_conv_one`, from the cells' sums."""
    sx, sy, dx, dy, per_group, per_out = geometry[4], geometry[5], geometry[6], geometry[7], geometry[8], geometry[9]
    cells_x, cells_y, channels = cells.shape
    kx, ky = table.shape[0], table.shape[1]
    out_x, out_y, c_out = out.shape
    half, mask = np.int64(1) << 23, (np.int64(1) << 24) - 1
    for qx in range(cells_x):
        for qy in range(cells_y):
            n = 0
            for c in range(channels):  # in place: entry n <= c is written after entry c is read
                p = cells[qx, qy, c]
                index[qx, qy, n] = c
                cells[qx, qy, n] = p
                n += p != 0
            count[qx, qy] = n
    single = per_group == channels  # one group: every channel adds to every output
    length = kx * ky * per_out
    if single and sx == 1 and sy == 1 and dx == 1 and dy == 1:
        # output (ox, oy) sums at (ox + kx - 1, oy + ky - 1) of a padded accumulator (cells_x + kx - 1, cells_y +
        # ky - 1, C_out): tap (i, j) of cell (qx, qy) reaches (qx - i, qy - j), so a channel's taps (i, 0..ky - 1),
        # stored j-reversed by channel_rows, add one run of ky * C_out, and no tap needs a bounds check
        wide = cells_y + ky - 1
        run = ky * per_out
        acc[: (cells_x + kx - 1) * wide * per_out] = 0
        for qx in range(cells_x):
            for qy in range(cells_y):
                listed = index[qx, qy]
                sums = cells[qx, qy]
                for k in range(count[qx, qy]):
                    p, at = sums[k], listed[k] * length
                    for i in range(kx):
                        kernel = rows[at + i * run : at + i * run + run]
                        start = ((qx - i + kx - 1) * wide + qy) * per_out
                        target = acc[start : start + run]
                        for o in range(run):
                            target[o] += p * kernel[o]
        _padded_out(acc, kx, ky, wide, out)
        return
    acc[: out_x * out_y * c_out] = 0  # (X', Y', C_out), flat
    for qx in range(cells_x):
        for qy in range(cells_y):
            n = count[qx, qy]
            if n == 0:
                continue
            listed = index[qx, qy]
            sums = cells[qx, qy]
            if single:  # the cell's listed channels, summed over their whole kernels (slices: loops vectorize)
                first = rows[listed[0] * length : listed[0] * length + length]
                p = sums[0]
                for o in range(length):
                    vec[o] = p * first[o]
                for k in range(1, n):
                    p, c = sums[k], listed[k]
                    kernel = rows[c * length : c * length + length]
                    for o in range(length):
                        vec[o] += p * kernel[o]
            for i in range(kx):
                ox = qx - i * dx
                if ox < 0 or (sx != 1 and ox % sx):  # (no division for stride 1)
                    continue
                ox = ox if sx == 1 else ox // sx
                if ox >= out_x:
                    continue
                for j in range(ky):
                    oy = qy - j * dy
                    if oy < 0 or (sy != 1 and oy % sy):
                        continue
                    oy = oy if sy == 1 else oy // sy
                    if oy >= out_y:
                        continue
                    start = (ox * out_y + oy) * c_out
                    if single:
                        at = (i * ky + ky - 1 - j) * per_out  # (taps j reversed in rows)
                        part = vec[at : at + per_out]
                        target = acc[start : start + per_out]
                        for o in range(per_out):
                            target[o] += part[o]
                    else:
                        taps = table[i, j]
                        for k in range(n):
                            c = listed[k]
                            p, w = sums[k], taps[c]
                            group = acc[start + (c // per_group) * per_out :]
                            for o in range(per_out):
                                group[o] += p * w[o]
    flat = out.reshape(out_x * out_y * c_out)
    for o in range(out_x * out_y * c_out):
        flat[o] = ((acc[o] + half) & mask) - half  # signed_clamp(x, bits=24)


def _sparse(s, indptr, rows, weights, out):  # pragma: no cover - compiled
    """Synapses listed by input neuron (``indptr``, ``rows``, ``weights``: compressed by column), one input event
    at a time: s (B, n_in) payloads into out (B, n_out) int64 (zeros on entry)."""
    batch, n_in = s.shape
    for b in range(batch):
        for col in range(n_in):
            p = s[b, col]
            if p == 0:
                continue
            for k in range(indptr[col], indptr[col + 1]):
                out[b, rows[k]] += p * weights[k]


def _neurons(message, u, v, bias, decays, threshold, subtractive, fired, folded, saturated, stats):  # pragma: no cover
    """One step of every neuron of a population, fused (``emulator._subthreshold``, the spike and the reset of
    :mod:`neurodeploy_loihi.fixed_point`, in int64 with the int32 wraps written out as masks): message, u, v,
    bias (B, n) int64 (u and v updated in place), ``decays`` (du + 1, dv) out of 4096, into fired, folded and
    saturated (B, n) bool; ``stats`` (4, B) int64 gains, per sample, the neurons that folded u and saturated v,
    and keeps the largest |u| and |v| after the step: :func:`_neuron_row` per sample."""
    for b in range(u.shape[0]):
        folds, saturations, u_top, v_top = _neuron_row(
            message[b],
            u[b],
            v[b],
            bias[b],
            decays[0],
            decays[1],
            threshold,
            subtractive,
            fired[b],
            folded[b],
            saturated[b],
        )
        stats[0, b] += folds
        stats[1, b] += saturations
        stats[2, b] = max(stats[2, b], u_top)
        stats[3, b] = max(stats[3, b], v_top)


def _neuron_row(
    message, u, v, bias, du, dv, threshold, subtractive, fired, folded, saturated, flags=True, counted=None, count=False
):  # pragma: no cover - compiled
    """One sample of :func:`_neurons` (every array (n,)): returns the neurons that folded u and saturated v, and
    the largest |u| and |v| after the step. An integrate-and-fire population (du + 1 = 4096, dv = 0) takes a
    branch-free loop. ``flags=False`` leaves ``folded`` and ``saturated`` alone (the counts are returned either
    way); ``counted`` (int32, (n,)) gains the spikes where ``count``."""
    half, mask, limit = np.int64(1) << 31, (np.int64(1) << 32) - 1, np.int64(1) << 23
    n = u.shape[0]
    folds, saturations, u_top, v_top = 0, 0, np.int64(0), np.int64(0)
    if du == 4096 and dv == 0:  # u holds this step's input only, v does not leak
        for i in range(n):
            act = (((message[i] << 6) + half) & mask) - half  # int32 shift: wraps
            new_u = act - 2 * limit if act > limit else act  # Lava's single, asymmetric fold
            new_u = act + 2 * limit if new_u <= -limit else new_u
            total = ((v[i] + new_u + bias[i] + half) & mask) - half
            new_v = min(max(total, 1 - limit), limit - 1)  # saturates
            spike = new_v > threshold
            if flags:
                folded[i] = new_u != act
                saturated[i] = new_v != total
            if counted is not None:
                if count:
                    counted[i] += spike
            fired[i] = spike
            folds += new_u != act
            saturations += new_v != total
            new_v = (new_v - threshold if subtractive else 0) if spike else new_v
            u_top = max(u_top, abs(new_u))
            v_top = max(v_top, abs(new_v))
            u[i] = new_u
            v[i] = new_v
    else:
        for i in range(n):
            x = u[i]
            if du == 4096:
                x = 0
            elif du != 0:
                x = x * (4096 - du)
                x = (x >> 12) if x >= 0 else -((-x) >> 12)  # toward zero
            act = (((message[i] << 6) + half) & mask) - half  # int32 shift: wraps
            total = ((x + act + half) & mask) - half  # int32 sum: wraps
            new_u = total - 2 * limit if total > limit else total  # Lava's single, asymmetric fold
            if new_u <= -limit:
                new_u = total + 2 * limit
            if flags:
                folded[i] = new_u != total
            folds += new_u != total
            y = v[i]
            if dv == 4096:
                y = 0
            elif dv != 0:
                y = y * (4096 - dv)
                y = (y >> 12) if y >= 0 else -((-y) >> 12)
            total = ((y + new_u + bias[i] + half) & mask) - half
            new_v = min(max(total, 1 - limit), limit - 1)  # saturates
            if flags:
                saturated[i] = new_v != total
            saturations += new_v != total
            spike = new_v > threshold
            fired[i] = spike
            if counted is not None:
                if count:
                    counted[i] += spike
            if spike:
                new_v = new_v - threshold if subtractive else 0
            u_top = max(u_top, abs(new_u))
            v_top = max(v_top, abs(new_v))
            u[i] = new_u
            v[i] = new_v
    return folds, saturations, u_top, v_top


def _run(
    layers,
    edges,
    v0,
    bias,
    bias_in,
    tables,
    channel,
    dense,
    indptr,
    rows,
    weights,
    runs,
    run_weights,
    cell_of,
    fan_out,
    steps_total,
    steps,
    checkpoints,
    top,
    counts,
    sums,
    synops,
    readout,
    stats,
    readout_spikes,
    order,
    progress,
    u,
    v,
    fired,
    listed,
    n_listed,
    buffers,
    baseline,
    folded,
    saturated,
    message,
    nothing,
    cells,
    index,
    count,
    acc16,
    acc32,
    acc64,
    vec16,
    vec32,
    vec64,
):  # pragma: no cover - compiled
    """A whole run of a network, one sample at a time, every step and every population in this one call: what
    ``emulator.Network.run`` computes, read as ``program.Program.run`` reads it (see :mod:`neurodeploy_loihi.fused`
    for the tables, the outputs and the scratch arrays from ``u`` on, which the caller keeps between runs: fresh
    memory costs a page fault per page). Per sample the state is one flat array per quantity (u, v, spikes), so a
    population's step, its synapses' walks over its spikes and the counts stay in cache. ``counts`` is (B, N)
    when the caller keeps every neuron's count, else one row reused per sample.

    Alone (``progress`` of length 1) a call computes every population at every step, in order. Two calls
    (threads) may share one sample (batch 1): ``u``, ``v``, ``fired`` (two rows: the spikes of even and odd
    steps), ``buffers``, ``baseline``, ``counts`` and the outputs are then the same arrays in both, the rest each
    call's own, and ``progress`` ((L + 1) (steps_total + 1) per sample) holds L + 1 counters per phase (the
    sample's start, then each step): one per population, whether it is claimed, and the populations done. In each
    phase each call walks its ``order`` (``fused.claim_orders``: its own populations first), claims each
    population not claimed yet (an atomic add), computes it and counts it done, and then waits until every
    population of the phase is done. A synapse takes its source's spikes of the step before at the start of
    a step (with the delay counted from that step, this is the same schedule), so in a step a population reads
    only what was finished the phase before, whichever call computed it, and no row of ``fired`` is written while
    it may be read. A call that falls behind (a thread the system did not run) finds its phases claimed and
    catches up; the other never waits for it except for a population it holds. Each synapse's source comes
    before its target (``fused.supported``)."""
    n_layers, batch = layers.shape[0], bias_in.shape[0]
    keep = counts.shape[0] == batch
    synapses = (tables, channel, dense, indptr, rows, weights, runs, run_weights, cell_of)
    work = (cells, index, count, acc16, acc32, acc64, vec16, vec32, vec64)
    network, reading = (layers, edges, bias, bias_in, fan_out), (steps, checkpoints, top)
    outputs = (sums, synops, readout, stats, readout_spikes)
    state, own = (u, v, fired, listed, n_listed, buffers), (folded, saturated, message, nothing, baseline)
    shared = progress.shape[0] > 1
    for b in range(batch):
        counted_b = counts[b] if keep else counts[0]
        if not shared:
            for k in range(n_layers):
                _reset(k, layers, edges, v0, state, baseline, counted_b)
            for t in range(steps_total):
                for k in range(n_layers):
                    _population(k, t, b, network, synapses, work, reading, counted_b, outputs, state, own)
            continue
        for phase in range(steps_total + 1):
            at = (b * (steps_total + 1) + phase) * (n_layers + 1)  # each population claimed?, then done
            for i in range(n_layers):
                k = order[i]
                if _claim(progress, at + k) != 0:
                    continue  # the other call has it
                if phase == 0:
                    _reset(k, layers, edges, v0, state, baseline, counted_b)
                else:
                    _population(k, phase - 1, b, network, synapses, work, reading, counted_b, outputs, state, own)
                _claim(progress, at + n_layers)
            _wait(progress, at + n_layers, n_layers)


def _reset(k, layers, edges, v0, state, baseline, counted):  # pragma: no cover - compiled
    """Population k at a sample's start: u 0, v at v0, no spikes, empty synapse buffers, no counts, the
    readout's baseline 0."""
    u, v, fired, _, n_listed, buffers = state
    n, off = layers[k, 0], layers[k, 1]
    n_listed[0, k] = 0
    n_listed[1, k] = 0
    for i in range(off, off + n):
        u[i] = 0
        v[i] = v0[i]
        fired[0, i] = False
        fired[1, i] = False
        counted[i] = 0
    for e in range(layers[k, 11], layers[k, 12]):
        buffers[edges[e, 3] : edges[e, 3] + (edges[e, 2] + 1) * n] = 0
    if layers[k, 10] != 0:
        baseline[:n] = 0


def _population(k, t, b, network, synapses, work, reading, counted_b, outputs, state, own):  # pragma: no cover
    """Population k in step t + 1 of sample b: its synapses take their sources' spikes of step t, its neurons
    step, and what the program reads is kept (see :func:`_run`)."""
    layers, edges, bias, bias_in, fan_out = network
    steps, checkpoints, top = reading
    sums, synops, readout, stats, readout_spikes = outputs
    u, v, fired, listed, n_listed, buffers = state
    folded, saturated, message, nothing, baseline = own
    n_check, half, mask = checkpoints.shape[0], np.int64(1) << 31, (np.int64(1) << 32) - 1
    step = t + 1
    n, off = layers[k, 0], layers[k, 1]
    first, last = layers[k, 11], layers[k, 12]
    if t > 0:
        for e in range(first, last):  # each synapse takes the last step's spikes of its source...
            if not layers[k, 7] <= step + edges[e, 2] <= layers[k, 8]:
                continue  # ... unless its target does not run when they arrive (nobody reads the slot)
            source = edges[e, 0]
            start = edges[e, 3] + ((t - 1) % (edges[e, 2] + 1)) * n
            slot = buffers[start : start + n]
            if layers[source, 7] <= t <= layers[source, 8]:  # the source ran in step t (outside it sends nothing)
                at = layers[source, 1]
                events = listed[(t - 1) % 2, at : at + layers[source, 0]]
                _send(edges[e], events, n_listed[(t - 1) % 2, source], slot, synapses, work)
            else:
                slot[:] = 0
    if not layers[k, 7] <= step <= layers[k, 8]:
        return
    local = step - layers[k, 9]  # the graph step this population computes now
    row = fired[t % 2, off : off + n]
    if last == first:  # the input population: no synapse
        msg = nothing[:n]
    elif last == first + 1 and edges[first, 2] == 0:  # one synapse without delay: its message as is
        msg = buffers[edges[first, 3] : edges[first, 3] + n]  # (in int32 already)
    else:  # each synapse sends its oldest message, summed through the InPort's int32
        msg = message[:n]
        msg[:] = 0
        for e in range(first, last):
            start = edges[e, 3] + (t % (edges[e, 2] + 1)) * n
            sent = buffers[start : start + n]  # (a view: indices from the loop alone vectorize)
            for i in range(n):
                msg[i] += sent[i]
        for i in range(n):
            msg[i] = ((msg[i] + half) & mask) - half
    counting = layers[k, 10] == 0 and 1 <= local <= steps  # a spiking population's spikes count
    counted = counted_b[off : off + n]
    listing = listed[t % 2, off : off + n]
    n_listed[t % 2, k] = _neurons_of(
        k, t, b, layers, msg, u, v, bias, bias_in, nothing, row, folded, saturated, stats, counted, counting, listing
    )
    mark = -1
    for c in range(n_check):
        if checkpoints[c] == local:
            mark = c
    if layers[k, 10] == 0:  # a spiking population: its counts at the checkpoints
        if mark >= 0:
            total, synaptic = 0, 0
            weights_out = fan_out[off : off + n]
            for i in range(n):
                total += counted[i]
                synaptic += counted[i] * weights_out[i]
            sums[b, k, mark] = total
            synops[b, k, mark] = synaptic
            if k == top:
                for i in range(n):
                    readout[b, mark, i] = counted[i]
    else:  # the readout population: its v is the output
        state = v[off : off + n]
        if local == 0:  # v before its first input: what the integral starts from
            baseline[:n] = state
        if 1 <= local <= steps:
            for i in range(n):
                readout_spikes[b] += row[i]
        if mark >= 0:
            for i in range(n):
                readout[b, mark, i] = state[i] - baseline[i]


def _wait(counters, at, value):  # pragma: no cover - compiled (replaced by an atomic spin in kernels())
    """Until ``counters[at]`` reaches ``value`` (another thread counts it up)."""
    while counters[at] < value:
        pass


def _claim(counters, at):  # pragma: no cover - compiled (replaced by an atomic add in kernels())
    """``counters[at]`` before adding 1 to it."""
    old = counters[at]
    counters[at] = old + 1
    return old


def _bias_row(v, bias, threshold, subtractive, fired, counted=None, count=False):  # pragma: no cover - compiled
    """:func:`_neuron_row` for neurons without synapses whose v does not leak (dv = 0): u, 0 from the start, stays
    0 whatever its decay, and nothing folds; v + bias wraps to int32, saturates, spikes and resets as there.
    Returns the saturations and the largest |v|; ``counted`` (int32, (n,)) gains the spikes where ``count``."""
    half, mask, limit = np.int64(1) << 31, (np.int64(1) << 32) - 1, np.int64(1) << 23
    saturations, v_top = 0, np.int64(0)
    for i in range(v.shape[0]):
        total = ((v[i] + bias[i] + half) & mask) - half
        new_v = min(max(total, 1 - limit), limit - 1)  # saturates
        spike = new_v > threshold
        fired[i] = spike
        if counted is not None:
            if count:
                counted[i] += spike
        saturations += new_v != total
        new_v = (new_v - threshold if subtractive else 0) if spike else new_v
        v_top = max(v_top, abs(new_v))
        v[i] = new_v
    return saturations, v_top


def _neurons_of(
    k, t, b, layers, msg, u, v, bias, bias_in, nothing, row, folded, saturated, stats, counted, count, listed
):  # pragma: no cover - compiled
    """Population k's neurons in step t + 1 of sample b (:func:`_neuron_row`), their statistics kept and, where
    ``count``, their spikes added to ``counted``; the indices of those that fired go to ``listed``, and their
    number is returned."""
    n, off = layers[k, 0], layers[k, 1]
    if t < layers[k, 6]:  # bias_start
        own = nothing[:n]
    elif k == 0:
        own = bias_in[b]
    else:
        own = bias[off : off + n]
    if layers[k, 11] == layers[k, 12] and layers[k, 3] == 0:  # no synapse and no leak in v (an input population)
        saturations, v_top = _bias_row(v[off : off + n], own, layers[k, 4], layers[k, 5] != 0, row, counted, count)
        stats[b, k, 1] += saturations
        stats[b, k, 3] = max(stats[b, k, 3], v_top)
        return _list(row, listed)
    folds, saturations, u_top, v_top = _neuron_row(
        msg,
        u[off : off + n],
        v[off : off + n],
        own,
        layers[k, 2],
        layers[k, 3],
        layers[k, 4],
        layers[k, 5] != 0,
        row,
        folded[:n],
        saturated[:n],
        False,  # nobody reads the flags here
        counted,
        count,
    )
    stats[b, k, 0] += folds
    stats[b, k, 1] += saturations
    stats[b, k, 2] = max(stats[b, k, 2], u_top)
    stats[b, k, 3] = max(stats[b, k, 3], v_top)
    return _list(row, listed)


def _list(fired, listed):  # pragma: no cover - compiled
    """The indices i where ``fired`` (bool, (n,)) is true, in order, into ``listed``; returns how many. Eight
    flags at a time as one 64-bit word (a true flag is the byte 1): a word of quiet neurons costs one test, and
    each spike one bit found and cleared, so the list costs n / 8 plus the spikes, not n (a separate pass: a
    store per neuron in the neuron loop would stop it vectorizing). Flag i of a word is its byte i on a
    little-endian machine; a big-endian one lists flag by flag (:func:`_list_each`)."""
    n = fired.shape[0]
    whole = n - n % 8
    words = fired[:whole].view(np.uint64)
    m = 0
    for w in range(whole // 8):
        word = words[w]
        while word:
            listed[m] = w * 8 + (_trailing_zeros(word) >> 3)
            m += 1
            word &= word - np.uint64(1)
    for i in range(whole, n):
        listed[m] = i
        m += fired[i]
    return m


def _list_each(fired, listed):  # pragma: no cover - compiled
    """:func:`_list` one flag at a time (branch-free)."""
    m = 0
    for i in range(fired.shape[0]):
        listed[m] = i
        m += fired[i]
    return m


def _trailing_zeros(word):  # pragma: no cover - compiled (replaced by LLVM's cttz in kernels())
    """The number of zero bits below the lowest set bit of ``word`` (nonzero)."""
    k = 0
    while not (word >> np.uint64(k)) & np.uint64(1):
        k += 1
    return k


def _send(edge, events, n_events, out, synapses, work):  # pragma: no cover - compiled
    """One synapse of :func:`_run` accumulates its source population's binary spikes (the first ``n_events``
    entries of ``events``: the flat indices of the neurons that fired) into ``out`` (its target's size, flat), with
    the network's ``synapses`` (tables, channel, dense, indptr, rows, weights, runs, run_weights, cell_of:
    ``fused.Packed``) and the scratch arrays ``work`` (cells, index, count, then the sums and a cell's kernels in
    int16, int32 and int64): a convolution (kind 0, :func:`_conv_one` from the listed spikes, wrapped to 24 bits,
    summed in the type ``edge[6]`` names: 2 int16, 1 int32, 0 int64), a dense matrix (1, stored by input) or a
    synapse list (2); the last two shifted by 2**weight_exp and wrapped to int32, as Lava's Dense and Sparse. A
    synapse list is walked as ``edge[13]`` says (see ``fused.sparse_layout``): 1, one synapse per neuron to the
    same index (an identity or Scale skip); 2, each input's synapses as one run of consecutive outputs (a 1x1
    convolution), a vectorized add per spike; 0, one synapse at a time. Every kind walks the listed spikes only."""
    tables, channel, dense, indptr, rows, weights, runs, run_weights, cell_of = synapses
    cells, index, count, acc16, acc32, acc64, vec16, vec32, vec64 = work
    kind = edge[1]
    if kind == 0:
        kx, ky, c_in, per_out = edge[7], edge[8], edge[9], edge[10]
        cells_x, cells_y = edge[13], edge[14]
        size = kx * ky * c_in * per_out
        table = tables[edge[4] : edge[4] + size].reshape((kx, ky, c_in, per_out))
        per_channel = channel[edge[4] : edge[4] + size]  # the same weights, one row per input channel
        cell_count = cells_x * cells_y * c_in
        shape = (cells_x, cells_y, c_in)
        target = out.reshape((edge[18], edge[19], edge[20]))
        geometry = edge[21:31]
        n_in, flat_cells, at = edge[15] * edge[16] * c_in, cells[:cell_count], edge[31]
        entries = index[:cell_count]
        n_entries = _scatter_events(events, n_events, cell_of[at : at + n_in], flat_cells, entries)
        if edge[29] == c_in and edge[25] == 1 and edge[26] == 1 and edge[27] == 1 and edge[28] == 1:
            position = cell_of[at + n_in : at + n_in + cell_count]  # one group, stride and dilation 1
            of_channel = cell_of[at + n_in + cell_count : at + n_in + 2 * cell_count]
            grid = (cells_x, cells_y, kx, ky)
            if edge[6] == 2:  # (typed apart: one call each)
                _conv_entries(per_channel, grid, flat_cells, entries, n_entries, position, of_channel, acc16, target)
            elif edge[6] == 1:
                _conv_entries(per_channel, grid, flat_cells, entries, n_entries, position, of_channel, acc32, target)
            else:
                _conv_entries(per_channel, grid, flat_cells, entries, n_entries, position, of_channel, acc64, target)
            return
        sums, listed = flat_cells.reshape(shape), index[:cell_count].reshape(shape)
        counts = count[: cells_x * cells_y].reshape((cells_x, cells_y))
        length = kx * ky * per_out
        if edge[6] == 2:
            _conv_cells(table, per_channel, geometry, sums, listed, counts, acc16, vec16[:length], target)
        elif edge[6] == 1:
            _conv_cells(table, per_channel, geometry, sums, listed, counts, acc32, vec32[:length], target)
        else:
            _conv_cells(table, per_channel, geometry, sums, listed, counts, acc64, vec64[:length], target)
        flat_cells[:] = 0  # (zero at rest: _scatter_events's contract)
        return
    n_in, n_out = edge[7], edge[8]
    out[:] = 0
    if kind == 1:
        at = edge[4]
        for m in range(n_events):
            row = at + events[m] * n_out  # (an index: a view per spike costs more than a short row's adds)
            for o in range(n_out):
                out[o] += dense[row + o]
    elif edge[13] == 1:
        diagonal = run_weights[edge[14] : edge[14] + n_in]
        for m in range(n_events):
            j = events[m]
            out[j] = diagonal[j]
    elif edge[13] == 2:
        spans = runs[edge[15] : edge[15] + n_in]
        for m in range(n_events):
            j = events[m]
            first, length, at = spans[j, 0], spans[j, 1], spans[j, 2]
            target = out[first : first + length]
            w = run_weights[at : at + length]
            for o in range(length):
                target[o] += w[o]
    else:
        for m in range(n_events):
            j = edge[4] + events[m]
            for q in range(indptr[j], indptr[j + 1]):
                out[rows[q]] += weights[q]
    exp = edge[5]
    if exp == 0 and edge[12] != 0:  # no shift, and no sum can leave int32: nothing to do
        return
    half, mask = np.int64(1) << 31, (np.int64(1) << 32) - 1
    for o in range(n_out):
        x = out[o] << exp if exp > 0 else out[o] >> -exp  # arithmetic: floors negatives
        out[o] = ((x + half) & mask) - half


def _split_bias(b, fixed_exp, mant, exp):  # pragma: no cover - compiled
    """``quantize.split_bias`` in one pass: per integer-valued bias b (float64), the smallest exponent 0..7 whose
    mantissa round(b / 2**exp) (half to even) fits 13 signed bits (``fixed_exp`` >= 0: that one), the mantissa
    clipped where even 7 does not hold it; returns how many were clipped. (Dividing by a power of two is exact,
    so the mantissas are numpy's; a mantissa that fits at one exponent fits at every larger one.)"""
    clipped = 0
    for i in range(b.shape[0]):
        m, e = _split_one(b[i], fixed_exp)
        clipped += not -4096.0 <= m <= 4095.0
        mant[i] = min(max(m, -4096.0), 4095.0)
        exp[i] = e
    return clipped


def _split_one(x, fixed_exp):  # pragma: no cover - compiled
    """One value of :func:`_split_bias`: its mantissa, rounded and not yet clipped, and its exponent."""
    e = fixed_exp
    if e < 0:
        e = 0
        while e < 7 and not -4096.0 <= np.rint(x / (1 << e)) <= 4095.0:
            e += 1
    return np.rint(x / (1 << e)), e


def _input_bias(currents, threshold, low, high, fixed_exp, scratch, mant, exp):  # pragma: no cover - compiled
    """``quantize.input_bias``: the host's float32 currents (B, C, H, W) in thresholds (a flat input as (B, 1, 1,
    N)) into ``mant`` and ``exp`` (B, W * H * C) int64, Lava's (X, Y, C) order: round(current * threshold)
    (float64: the product of a float32 and a 24-bit integer is exact) clipped to [low, high], split as
    :func:`_split_bias` does, the mantissa clipped. Returns whether a current was NaN (the caller then takes the
    numpy steps, whose NaN handling this loop does not copy).

    In integers and without branches, so that the loop vectorizes (a branch per value cost five times the
    arithmetic): the total is a whole number, a shift rounding half to even is numpy's rint of the division, and
    the smallest exponent whose mantissa fits 13 signed bits is the count of exponents 0..6 at which it does not
    (a mantissa that fits at one exponent fits at every larger one): at e, round(total / 2**e) lies in [-4096,
    4095] for totals from -4096 * 2**e - 2**(e - 1) (a tie rounds to the even -4096) to 4095 * 2**e + 2**(e - 1)
    - 1 (4095.5 rounds to 4096). Each sample is computed in the graph's order into ``scratch`` (the mantissa
    times 8 plus the exponent), then written out in Lava's."""
    batch, channels, size_y, size_x = currents.shape
    n = channels * size_y * size_x
    nan = False
    for b in range(batch):
        flat = currents[b].reshape(n)
        for i in range(n):
            total = np.rint(np.float64(flat[i]) * threshold)
            nan |= total != total
            whole = np.int64(min(max(total, low), high))
            e = fixed_exp
            if fixed_exp < 0:
                e = 0
                for k in range(7):
                    half = (np.int64(1) << k) >> 1
                    e += (whole < -(np.int64(4096) << k) - half) | (whole > (np.int64(4095) << k) + half - (k > 0))
            q = whole >> e  # floor, then up where the rest is above half, or half and q odd
            rest = whole - (q << e)
            half = (np.int64(1) << e) >> 1
            q += ((rest > half) | ((rest == half) & ((q & 1) == 1))) & (e > 0)
            scratch[i] = min(max(q, -4096), 4095) * 8 + e
        mant_b, exp_b = mant[b], exp[b]
        for x in range(size_x):
            for y in range(size_y):
                for c in range(channels):
                    both = scratch[(c * size_y + y) * size_x + x]
                    at = (x * size_y + y) * channels + c
                    mant_b[at] = both >> 3  # (floor: e = both - 8 * mant in 0..7)
                    exp_b[at] = both & 7
    return nan


def kernels():
    """The compiled loops ({"conv": ..., "sparse": ..., "neurons": ...}), or None when numba is not installed."""
    global _KERNELS
    if _KERNELS is None:
        try:
            import numba
        except ImportError:
            _KERNELS = {}
        else:
            # no numba parallel backend: it fixes the multiprocessing start method when it starts, and Lava,
            # imported after an emulation, then fails to set its own ('fork'); the loops release the GIL instead
            # (`fused.run` splits a batch between threads; `evaluate --workers` runs batches in processes)
            jit = numba.njit(cache=True, nogil=True)
            # the loops below call these: they are compiled first, in their place (numba resolves globals then)
            global _conv_one, _neuron_row, _bias_row, _send, _neurons_of, _reset, _population, _wait, _claim
            global _split_one, _scatter, _scatter_events, _conv_cells, _list, _trailing_zeros, _conv_entries
            global _padded_out
            _padded_out = jit(_padded_out)
            _conv_entries = jit(_conv_entries)
            _trailing_zeros = _bit_scan(jit)
            _list = jit(_list if sys.byteorder == "little" else _list_each)
            _scatter, _scatter_events, _conv_cells = jit(_scatter), jit(_scatter_events), jit(_conv_cells)
            _conv_one, _neuron_row, _bias_row = jit(_conv_one), jit(_neuron_row), jit(_bias_row)
            _split_one = jit(_split_one)
            _send, _neurons_of, _reset = jit(_send), jit(_neurons_of), jit(_reset)
            _wait, _claim = _atomics(jit)
            _population = jit(_population)
            _KERNELS = {"conv": jit(_conv), "sparse": jit(_sparse), "neurons": jit(_neurons), "run": jit(_run)}
            _KERNELS["split_bias"], _KERNELS["input_bias"] = jit(_split_bias), jit(_input_bias)
    return _KERNELS or None


def _bit_scan(jit):
    """:func:`_trailing_zeros` as LLVM's ``cttz`` (one instruction)."""
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def cttz(typingctx, word):
        def codegen(context, builder, signature, args):
            return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))  # (1: zero in is undefined; never zero)

        return types.uint64(types.uint64), codegen

    def trailing_zeros(word):  # pragma: no cover - compiled
        return cttz(word)

    return jit(trailing_zeros)


def _atomics(jit):
    """:func:`_wait` and :func:`_claim` for two threads sharing a sample: an acquire load in the spin (so the
    compiler reads the memory on every pass, and what the other thread wrote before it counted is seen) and an
    atomic add with acquire and release order (what this thread wrote before it counts is visible first); the
    spin yields the CPU after a while, so a thread waiting for a descheduled one does not hold its core."""
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    def pointer(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        return cgutils.get_item_pointer(context, builder, signature.args[0], array, [args[1]])

    @intrinsic
    def acquire(typingctx, array, at):
        def codegen(context, builder, signature, args):
            return builder.load_atomic(pointer(context, builder, signature, args), "acquire", 8)

        return types.int64(array, at), codegen

    @intrinsic
    def fetch_add(typingctx, array, at):
        def codegen(context, builder, signature, args):
            one = context.get_constant(types.int64, 1)
            return builder.atomic_rmw("add", pointer(context, builder, signature, args), one, "acq_rel")

        return types.int64(array, at), codegen

    yield_cpu = types.ExternalFunction("sched_yield", types.int32())  # (libc's, by name: the cache keeps no address)

    def wait(counters, at, value):  # pragma: no cover - compiled
        spins = 0
        while acquire(counters, at) < value:
            spins += 1
            if spins > 2000:
                yield_cpu()

    def claim(counters, at):  # pragma: no cover - compiled
        return fetch_add(counters, at)

    return jit(wait), jit(claim)


def sparse_enough(s: np.ndarray, fan: int = 1) -> bool:
    """Whether ``s`` is sparse enough for the event loops (each event adding to ``fan`` outputs per tap) and numba
    is there to run them."""
    if not s.size or kernels() is None:
        return False
    density = np.count_nonzero(s) / s.size
    return density <= EVENT_DENSITY and density * fan <= EVENT_ADDS


def conv_table(weight: np.ndarray, groups: int) -> np.ndarray:
    """Lava's kernel (C_out, kX, kY, C_in / groups) as :func:`_conv`'s table (kX, kY, C_in, C_out / groups), int32
    (the weights are 9-bit): flipped in x and y, input channel g * C_in / groups + c reading the kernel of its
    group's outputs."""
    c_out, kx, ky, per_group = weight.shape
    per_out = c_out // groups
    flipped = np.asarray(weight, np.int32)[:, ::-1, ::-1, :].reshape(groups, per_out, kx, ky, per_group)
    return np.ascontiguousarray(flipped.transpose(2, 3, 0, 4, 1).reshape(kx, ky, groups * per_group, per_out))


def conv(
    s: np.ndarray,
    table: np.ndarray,
    rows: np.ndarray,
    bound: int,
    out_shape: tuple[int, int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    pool: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """(B, X', Y', C_out) int64 wrapped to 24 bits: the convolution sums of payloads s (B, X, Y, C_in), by
    :func:`_conv`; ``rows`` is the table's :func:`channel_rows`, ``bound`` its :func:`reach`. With a ``pool``
    (px, py), the kernel is ``table`` repeated over px x py input blocks (an average pool folded into the
    convolution): ``stride`` and ``padding`` are then the Lava Conv's, multiples of the pool, and ``dilation``
    is 1."""
    (px, py), (pad_x, pad_y) = pool, padding
    cells_x, cells_y = (s.shape[1] + 2 * pad_x) // px, (s.shape[2] + 2 * pad_y) // py  # whole blocks only
    geometry = np.array(
        [px, py, pad_x, pad_y, stride[0] // px, stride[1] // py, *dilation, s.shape[3] // groups, table.shape[3]],
        np.int64,
    )
    top = px * py * (1 if s.dtype == bool else int(np.abs(s).max(initial=0)))
    if s.dtype != bool and s.size and s.min() < 0 < s.max():  # payloads of both signs: the sum of |weights|
        bound = reach(table, mixed_signs=True)
    cells = np.empty((cells_x, cells_y, s.shape[3]), np.int32 if s.dtype == bool else np.int64)
    index = np.empty(cells.shape, np.int32)
    count = np.empty((cells_x, cells_y), np.int64)
    kx, ky = table.shape[0], table.shape[1]
    padded = (cells_x + kx - 1) * (cells_y + ky - 1) * out_shape[2]
    acc = np.empty(max(padded, int(np.prod(out_shape))), sum_type(top * bound))
    vec = np.empty(kx * ky * table.shape[3], acc.dtype)
    out = np.empty((len(s), *out_shape), np.int64)
    kernels()["conv"](np.ascontiguousarray(s), table, rows, geometry, cells, index, count, acc, vec, out)
    return out


def sum_type(bound: int) -> type:
    """The narrowest integer type :func:`_conv_one` can sum in when no partial sum exceeds ``bound`` in size."""
    return np.int16 if bound < 1 << 15 else np.int32 if bound < 1 << 31 else np.int64


def channel_rows(table: np.ndarray) -> np.ndarray:
    """:func:`conv_table`'s (kX, kY, C_in, C_out / groups) as one flat row per input channel, (C_in * kX * kY *
    C_out / groups,) int16 (Loihi's weights are 9-bit): channel c's whole kernel, contiguous, taps (i, j) in the
    order i, then j reversed (what :func:`_conv_one` adds per listed channel: tap row i as one run)."""
    table = np.asarray(table)
    if table.size and np.abs(table).max() >= 1 << 15:
        raise ValueError("convolution weights beyond 16 bits: Loihi's are 9-bit")
    return np.ascontiguousarray(table[:, ::-1].transpose(2, 0, 1, 3), np.int16).reshape(-1)


def reach(table: np.ndarray, mixed_signs: bool = False) -> int:
    """A bound on |partial sum| / max |payload| of one output neuron, over all its inputs and taps: for payloads
    of one sign (spikes, pooled counts), the larger of its positive weights' sum and its negative weights' |sum|
    (any partial sum lies between the two); with ``mixed_signs``, the sum of |weights|."""
    table = np.asarray(table, np.int64)
    if mixed_signs:
        return int(np.abs(table).sum(axis=(0, 1, 2)).max(initial=0))
    positive = np.clip(table, 0, None).sum(axis=(0, 1, 2))
    negative = np.clip(-table, 0, None).sum(axis=(0, 1, 2))
    return int(np.maximum(positive, negative).max(initial=0))


def by_column(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_in: int) -> tuple[np.ndarray, ...]:
    """(indptr, rows, weights) of a synapse list, compressed by input neuron (zero weights dropped); rows and
    weights keep their (narrow) types."""
    live = weights != 0
    rows, cols, weights = rows[live], cols[live], weights[live]
    order = np.argsort(cols, kind="stable")
    indptr = np.zeros(n_in + 1, np.int64)
    np.cumsum(np.bincount(cols, minlength=n_in), out=indptr[1:])
    return indptr, np.ascontiguousarray(rows[order]), np.ascontiguousarray(weights[order])


def sparse(s: np.ndarray, compressed: tuple[np.ndarray, ...], n_out: int) -> np.ndarray:
    """(B, n_out) int64: the sums of payloads s (B, n_in) through the synapses of :func:`by_column`."""
    out = np.zeros((len(s), n_out), np.int64)
    kernels()["sparse"](np.ascontiguousarray(s), *compressed, out)
    return out


def neurons(
    message: np.ndarray, u: np.ndarray, v: np.ndarray, bias: np.ndarray, neuron, stats: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, fired, folded, saturated) after one step of ``neuron`` (an ``emulator.Neuron``) from u, v and the
    message, all (B, *shape): :func:`_neurons`, updating u and v in place where they are writable int64 arrays
    (the emulator's own state), else on copies, and ``stats`` (4, B) int64 (fold and saturation counts added,
    largest |u| and |v| kept) in place."""
    shape = message.shape
    batch = shape[0]
    u_new, v_new = (_own(a).reshape(batch, -1) for a in (u, v))
    flags = np.empty((3, *u_new.shape), bool)
    kernels()["neurons"](
        np.ascontiguousarray(message, np.int64).reshape(batch, -1),
        u_new,
        v_new,
        np.broadcast_to(np.asarray(bias, np.int64), shape).reshape(batch, -1),
        np.array([neuron.du + 1, neuron.dv], np.int64),
        np.int64(neuron.threshold),
        neuron.kind == "subtractive",
        *flags,
        stats,
    )
    fired, folded, saturated = (f.reshape(shape) for f in flags)
    return u_new.reshape(shape), v_new.reshape(shape), fired, folded, saturated


def _own(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it is a writable, C-contiguous int64 array; else an int64 copy."""
    if isinstance(a, np.ndarray) and a.dtype == np.int64 and a.flags.c_contiguous and a.flags.writeable:
        return a
    return np.array(a, np.int64)
