"""The connection-list accumulation compiled with numba when it is installed (``pip install
'neurodeploy-pynn[fast]'``): each spike walks its neuron's synapse list, as a SpiNNaker core does, at a few
nanoseconds per synapse. Without numba the emulator gathers the same synapses with numpy (the same integers,
tested equal, several times slower)."""

from functools import cache


def _walk(spikes, indptr, post_index, words, out):  # pragma: no cover - compiled
    """out (B, n_post) int64 += the words of the synapses of every (sample, neuron) that spiked (spikes (B, n_pre)
    bool; synapses sorted by presynaptic neuron, ``indptr`` (n_pre + 1) delimiting each neuron's)."""
    batch, n_pre = spikes.shape
    for b in range(batch):
        row = out[b]
        for i in range(n_pre):
            if spikes[b, i]:
                for k in range(indptr[i], indptr[i + 1]):
                    row[post_index[k]] += words[k]


@cache
def kernels() -> dict | None:
    """The compiled loops ({"walk": ...}), or None when numba is not installed (imported on the first call)."""
    try:
        import numba
    except ImportError:
        return None
    return {"walk": numba.njit(cache=True, nogil=True)(_walk)}
