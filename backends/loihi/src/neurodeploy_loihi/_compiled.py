"""Event-driven synapse loops, compiled with numba when it is installed (``pip install neurodeploy-loihi[fast]``).

A Loihi core does work in proportion to the spikes it receives: each spike walks its neuron's synapse list. The
numpy path of :mod:`neurodeploy_loihi.emulator` computes every synapse every step (one matrix product, in
proportion to the weights); these loops walk the spikes instead, in integers, so they give the same sums
(tested equal to the numpy path and, in the Lava environment, to Lava's ``fixed_pt`` models). The emulator uses
them when numba is present and the input is sparse (:func:`sparse_enough`), and the numpy path otherwise.
Importing numba takes a moment, so it happens on the first sparse step, not when the plugin loads.

No ``from __future__ import annotations``: Lava's process-model discovery executes every module of this folder.
"""

import numpy as np

EVENT_DENSITY = 0.2
"""Above this fraction of nonzero inputs a matrix product (BLAS) beats a walk over the events."""
EVENT_ADDS = 6.0
"""...and above this many additions per input (density x output channels per group x pool size, the pool
folding px x py inputs into one listed cell): each listed input adds its kernel to every output it reaches, while
the matrix product does every multiply-add of the layer at BLAS speed, 10 to 20 times the loop's rate per add.
Measured on 2 cores, 16 samples of 3x3 convolutions, events against the matrix product: 64 to 64 channels at 32 x
32, 2.6x faster at 2% density, even at 7%; 256 channels at 8 x 8, even at 4% (10 additions); 16 to 32 channels
with a 2 x 2 pool, even at 10% (13 additions); 32 to 64 with the pool, even at 2.5% (6 additions)."""

_KERNELS = None


def _conv(s, table, geometry, cells, index, count, acc, out):  # pragma: no cover - compiled
    """Lava's true convolution of the payloads s (B, X, Y, C_in) (spikes 0/1, or integers), with an average pool
    folded in, into ``out`` (B, X', Y', C_out) int64, wrapped to 24 bits.

    Per sample: (1) each input lands in its *cell*: with padding (pad_x, pad_y) around the input, cell
    (x + pad_x) // px, (y + pad_y) // py sums a px x py pool block (one input per cell without a pool; padding
    cells stay 0); (2) each cell's nonzero channels are listed, branch-free, in ``index`` and ``cells`` (their
    sums); (3) each output gathers the listed channels of the cells its taps read, output x' reading cell x' * sx
    + i * dx through tap i (the correlation with the kernel flipped, as ``conv_accumulate``), into ``acc``
    (C_out,), int32 where no partial sum can leave it, else int64. ``table`` (kX, kY, C_in, C_out / groups) is the
    flipped kernel, input channel c adding to the outputs of its group. The work is one pass over the input plus
    one add per listed channel, tap and output channel of its group: in proportion to the spikes."""
    px, py, pad_x, pad_y, sx, sy, dx, dy, per_group, per_out = geometry
    batch, size_x, size_y, channels = s.shape
    cells_x, cells_y = cells.shape[0], cells.shape[1]
    kx, ky = table.shape[0], table.shape[1]
    out_x, out_y, c_out = out.shape[1], out.shape[2], out.shape[3]
    half, mask = np.int64(1) << 23, (np.int64(1) << 24) - 1
    for b in range(batch):
        cells[:] = 0
        for x in range(size_x):
            qx = (x + pad_x) // px
            if qx >= cells_x:  # a partial block past the last whole one: never read
                break
            for y in range(size_y):
                qy = (y + pad_y) // py
                if qy >= cells_y:
                    break
                for c in range(channels):
                    cells[qx, qy, c] += s[b, x, y, c]
        for qx in range(cells_x):
            for qy in range(cells_y):
                n = 0
                for c in range(channels):  # in place: entry n <= c is written after entry c is read
                    p = cells[qx, qy, c]
                    index[qx, qy, n] = c
                    cells[qx, qy, n] = p
                    n += p != 0
                count[qx, qy] = n
        for ox in range(out_x):
            for oy in range(out_y):
                acc[:] = 0
                for i in range(kx):
                    qx = ox * sx + i * dx
                    for j in range(ky):
                        qy = oy * sy + j * dy
                        listed = index[qx, qy]
                        sums = cells[qx, qy]
                        taps = table[i, j]
                        for k in range(count[qx, qy]):
                            c = listed[k]
                            p = sums[k]
                            w = taps[c]
                            base = (c // per_group) * per_out
                            if p == 1:  # a spike (always, without a pool): a plain add
                                for o in range(per_out):
                                    acc[base + o] += w[o]
                            else:
                                for o in range(per_out):
                                    acc[base + o] += p * w[o]
                target = out[b, ox, oy]
                for o in range(c_out):
                    target[o] = ((acc[o] + half) & mask) - half  # signed_clamp(x, bits=24)


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
    and keeps the largest |u| and |v| after the step. An integrate-and-fire population (du + 1 = 4096, dv = 0)
    takes a branch-free loop."""
    half, mask, limit = np.int64(1) << 31, (np.int64(1) << 32) - 1, np.int64(1) << 23
    du, dv = decays[0], decays[1]
    batch, n = u.shape
    for b in range(batch):
        folds, saturations, u_top, v_top = stats[0, b], stats[1, b], stats[2, b], stats[3, b]
        if du == 4096 and dv == 0:  # u holds this step's input only, v does not leak
            for i in range(n):
                act = (((message[b, i] << 6) + half) & mask) - half  # int32 shift: wraps
                new_u = act - 2 * limit if act > limit else act  # Lava's single, asymmetric fold
                new_u = act + 2 * limit if new_u <= -limit else new_u
                total = ((v[b, i] + new_u + bias[b, i] + half) & mask) - half
                new_v = min(max(total, 1 - limit), limit - 1)  # saturates
                spike = new_v > threshold
                folded[b, i] = new_u != act
                saturated[b, i] = new_v != total
                fired[b, i] = spike
                folds += new_u != act
                saturations += new_v != total
                new_v = (new_v - threshold if subtractive else 0) if spike else new_v
                u_top = max(u_top, abs(new_u))
                v_top = max(v_top, abs(new_v))
                u[b, i] = new_u
                v[b, i] = new_v
        else:
            for i in range(n):
                x = u[b, i]
                if du == 4096:
                    x = 0
                elif du != 0:
                    x = x * (4096 - du)
                    x = (x >> 12) if x >= 0 else -((-x) >> 12)  # toward zero
                act = (((message[b, i] << 6) + half) & mask) - half  # int32 shift: wraps
                total = ((x + act + half) & mask) - half  # int32 sum: wraps
                new_u = total - 2 * limit if total > limit else total  # Lava's single, asymmetric fold
                if new_u <= -limit:
                    new_u = total + 2 * limit
                folded[b, i] = new_u != total
                folds += new_u != total
                y = v[b, i]
                if dv == 4096:
                    y = 0
                elif dv != 0:
                    y = y * (4096 - dv)
                    y = (y >> 12) if y >= 0 else -((-y) >> 12)
                total = ((y + new_u + bias[b, i] + half) & mask) - half
                new_v = min(max(total, 1 - limit), limit - 1)  # saturates
                saturated[b, i] = new_v != total
                saturations += new_v != total
                spike = new_v > threshold
                fired[b, i] = spike
                if spike:
                    new_v = new_v - threshold if subtractive else 0
                u_top = max(u_top, abs(new_u))
                v_top = max(v_top, abs(new_v))
                u[b, i] = new_u
                v[b, i] = new_v
        stats[0, b], stats[1, b], stats[2, b], stats[3, b] = folds, saturations, u_top, v_top


def kernels():
    """The compiled loops ({"conv": ..., "sparse": ..., "neurons": ...}), or None when numba is not installed."""
    global _KERNELS
    if _KERNELS is None:
        try:
            import numba
        except ImportError:
            _KERNELS = {}
        else:
            # serial loops: numba's parallel backend fixes the multiprocessing start method when it starts, and
            # Lava, imported after an emulation, then fails to set its own ('fork'); `evaluate --workers` runs
            # batches in parallel processes instead
            jit = numba.njit(cache=True, nogil=True)
            _KERNELS = {"conv": jit(_conv), "sparse": jit(_sparse), "neurons": jit(_neurons)}
    return _KERNELS or None


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
    bound: int,
    out_shape: tuple[int, int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    pool: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """(B, X', Y', C_out) int64 wrapped to 24 bits: the convolution sums of payloads s (B, X, Y, C_in), by
    :func:`_conv`; ``bound`` is the table's :func:`reach`. With a ``pool`` (px, py), the kernel is ``table``
    repeated over px x py input blocks (an average pool folded into the convolution): ``stride`` and ``padding``
    are then the Lava Conv's, multiples of the pool, and ``dilation`` is 1."""
    (px, py), (pad_x, pad_y) = pool, padding
    cells_x, cells_y = (s.shape[1] + 2 * pad_x) // px, (s.shape[2] + 2 * pad_y) // py  # whole blocks only
    geometry = np.array(
        [px, py, pad_x, pad_y, stride[0] // px, stride[1] // py, *dilation, s.shape[3] // groups, table.shape[3]],
        np.int64,
    )
    top = px * py * (1 if s.dtype == bool else int(np.abs(s).max(initial=0)))
    narrow = top * bound < 1 << 31  # no partial sum leaves int32: half the memory traffic, twice the lanes
    cells = np.empty((cells_x, cells_y, s.shape[3]), np.int32 if s.dtype == bool else np.int64)
    index = np.empty(cells.shape, np.int32)
    count = np.empty((cells_x, cells_y), np.int64)
    acc = np.empty(out_shape[2], np.int32 if narrow else np.int64)
    out = np.empty((len(s), *out_shape), np.int64)
    kernels()["conv"](np.ascontiguousarray(s), table, geometry, cells, index, count, acc, out)
    return out


def reach(table: np.ndarray) -> int:
    """The largest sum of |weights| into one output neuron (over all its inputs and taps): a bound on |sum| / max
    |payload|."""
    return int(np.abs(table.astype(np.int64)).sum(axis=(0, 1, 2)).max(initial=0))


def by_column(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_in: int) -> tuple[np.ndarray, ...]:
    """(indptr, rows, weights) of a synapse list, compressed by input neuron (zero weights dropped)."""
    live = weights != 0
    rows, cols, weights = rows[live], cols[live], weights[live]
    order = np.argsort(cols, kind="stable")
    indptr = np.zeros(n_in + 1, np.int64)
    np.cumsum(np.bincount(cols, minlength=n_in), out=indptr[1:])
    return indptr, np.ascontiguousarray(rows[order]), np.ascontiguousarray(weights[order], np.int64)


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
