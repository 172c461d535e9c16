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
EVENT_ADDS = 40.0
"""...and above this many additions per input (density x output channels per group): each event adds its kernel
to the outputs it reaches, which a wide layer's matrix product outruns at a high density (measured on 2 cores,
8 samples of 3x3 convolutions: 256 channels at 5% density 3.8x faster than the matrix product, at 20% even; 64
channels at 20% 2.2x faster)."""

_KERNELS = None


def _conv(s, table, geometry, out):  # pragma: no cover - compiled
    """Lava's true convolution, one input event at a time: input (B, X, Y, C_in) integer payloads (spikes 0/1),
    ``table`` (C_in, kX, kY, C_out / groups) the kernel flipped in x and y and laid out per input channel, into
    ``out`` (B, X', Y', C_out) (zeros on entry; int32 where no sum can leave it, else int64). An input at padded
    position xp reaches output x' through tap i when x' * stride + i * dilation = xp (the correlation with the
    flipped kernel that ``conv_accumulate`` computes)."""
    sx, sy, px, py, dx, dy, per_group, per_out = geometry
    batch, size_x, size_y, channels = s.shape
    kx, ky = table.shape[1], table.shape[2]
    out_x, out_y = out.shape[1], out.shape[2]
    for b in range(batch):
        for x in range(size_x):
            for y in range(size_y):
                for c in range(channels):
                    p = s[b, x, y, c]
                    if p == 0:
                        continue
                    base = (c // per_group) * per_out
                    for i in range(kx):
                        tx = x + px - i * dx
                        if tx < 0:
                            break
                        if tx % sx != 0 or tx // sx >= out_x:
                            continue
                        for j in range(ky):
                            ty = y + py - j * dy
                            if ty < 0:
                                break
                            if ty % sy != 0 or ty // sy >= out_y:
                                continue
                            # whole-slice adds: numba vectorizes them (an indexed loop checks each index)
                            target = out[b, tx // sx, ty // sy, base : base + per_out]
                            if p == 1:  # spikes: a plain add
                                target += table[c, i, j]
                            else:
                                target += p * table[c, i, j]


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


def _neurons(message, u, v, bias, decays, threshold, subtractive, fired, folded, saturated):  # pragma: no cover
    """One step of every neuron of a population, fused (``emulator._subthreshold``, the spike and the reset of
    :mod:`neurodeploy_loihi.fixed_point`, in int64 with the int32 wraps written out as masks): message, u, v,
    bias (B, n) int64 (u and v updated in place), ``decays`` (du + 1, dv) out of 4096, into fired, folded and
    saturated (B, n) bool. An integrate-and-fire population (du + 1 = 4096, dv = 0) takes a branch-free loop."""
    half, mask, limit = np.int64(1) << 31, (np.int64(1) << 32) - 1, np.int64(1) << 23
    du, dv = decays[0], decays[1]
    batch, n = u.shape
    if du == 4096 and dv == 0:  # u holds this step's input only, v does not leak
        for b in range(batch):
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
                u[b, i] = new_u
                v[b, i] = (new_v - threshold if subtractive else 0) if spike else new_v
        return
    for b in range(batch):
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
            y = v[b, i]
            if dv == 4096:
                y = 0
            elif dv != 0:
                y = y * (4096 - dv)
                y = (y >> 12) if y >= 0 else -((-y) >> 12)
            total = ((y + new_u + bias[b, i] + half) & mask) - half
            new_v = min(max(total, 1 - limit), limit - 1)  # saturates
            saturated[b, i] = new_v != total
            spike = new_v > threshold
            fired[b, i] = spike
            if spike:
                new_v = new_v - threshold if subtractive else 0
            u[b, i] = new_u
            v[b, i] = new_v


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
    """Lava's kernel (C_out, kX, kY, C_in / groups) as :func:`_conv`'s table (C_in, kX, kY, C_out / groups), int32
    (the weights are 9-bit): flipped in x and y, input channel g * C_in / groups + c reading the kernel of its
    group's outputs."""
    c_out, kx, ky, per_group = weight.shape
    per_out = c_out // groups
    flipped = np.asarray(weight, np.int32)[:, ::-1, ::-1, :].reshape(groups, per_out, kx, ky, per_group)
    return np.ascontiguousarray(flipped.transpose(0, 4, 2, 3, 1).reshape(groups * per_group, kx, ky, per_out))


def conv(
    s: np.ndarray,
    table: np.ndarray,
    bound: int,
    out_shape: tuple[int, int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """(B, X', Y', C_out) int64: the convolution sums of payloads s (B, X, Y, C_in), by :func:`_conv`; ``bound`` is
    the table's :func:`reach`."""
    per_group = s.shape[3] // groups
    geometry = np.array([*stride, *padding, *dilation, per_group, table.shape[3]], np.int64)
    top = 1 if s.dtype == bool else int(np.abs(s).max(initial=0))
    narrow = top * bound < 1 << 31  # no partial sum leaves int32: half the memory traffic, twice the lanes
    out = np.zeros((len(s), *out_shape), np.int32 if narrow else np.int64)
    kernels()["conv"](np.ascontiguousarray(s), table, geometry, out)
    return out.astype(np.int64, copy=False)


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
    message: np.ndarray, u: np.ndarray, v: np.ndarray, bias: np.ndarray, neuron
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, fired, folded, saturated) after one step of ``neuron`` (an ``emulator.Neuron``) from u, v and the
    message, all (B, *shape): :func:`_neurons`, updating u and v in place where they are writable int64 arrays
    (the emulator's own state), else on copies."""
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
    )
    fired, folded, saturated = (f.reshape(shape) for f in flags)
    return u_new.reshape(shape), v_new.reshape(shape), fired, folded, saturated


def _own(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it is a writable, C-contiguous int64 array; else an int64 copy."""
    if isinstance(a, np.ndarray) and a.dtype == np.int64 and a.flags.c_contiguous and a.flags.writeable:
        return a
    return np.array(a, np.int64)
