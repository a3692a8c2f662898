"""The one padded chunk loop: instances in chunks of fixed, power-of-two sizes.

Each compiled function (mdjac.kernel) then sees few shapes and compiles once, not per frame, and
the chunk size bounds its memory. Padding repeats a chunk's first row (a valid instance) and its
weight is 0.
"""
import numpy as np

#: Largest number of instances per compiled call of an instance energy; bounds memory and the shapes compiled.
CHUNK = 65536
#: The same for the radial route, whose compiled calls work on (M,) distances.
RADIAL_CHUNK = 1 << 20


#: Most padding the chunks of M instances may add, as a fraction of M: a remainder whose power of two
#: would pad by more is split, its largest power of two first, down to :data:`SPLIT_FLOOR`.
MAX_PADDING = 0.25
#: Remainders at or below this many instances are padded to their power of two whatever it adds.
SPLIT_FLOOR = 16384


def chunk_sizes(m, chunk=CHUNK):
    """Sizes of the chunks of M instances: full ``chunk``s, then powers of two (>= 64) for the rest: the
    rest's own power of two unless that pads by more than :data:`MAX_PADDING` of M (then its largest
    power of two, and the same again for what is left), so 0.7 ``chunk`` is not padded to a whole one."""
    sizes = [chunk] * (m // chunk)
    rest = m - chunk * len(sizes)
    while rest:
        size = min(chunk, max(64, 1 << (rest - 1).bit_length()))
        if size > SPLIT_FLOOR and size - rest > MAX_PADDING * m:
            size //= 2
        sizes.append(size)
        rest = max(0, rest - size)
    return sizes


def _pad(a, size):
    """``a`` with axis 0 padded to ``size`` by repeating its first row."""
    if len(a) == size:
        return a
    return np.concatenate([a, np.repeat(a[:1], size - len(a), axis=0)])


def padded_chunks(x, params, chunk=CHUNK):
    """Yield the chunks of M instances, padded.

    Parameters
    ----------
    x : (M, ...) ndarray, the per-instance inputs (coordinates q, or distances r)
    params : tuple of (M, ...) ndarrays, the per-instance parameters
    chunk : int, the largest chunk

    Yields
    ------
    start, stop : int, the instances [start, stop) of this chunk
    x_chunk : (S, ...) ndarray, S the padded size
    params_chunk : tuple of (S, ...) ndarrays
    weights : (S,) ndarray in x's dtype, 1 for the instances, 0 for the padding
    """
    start = 0
    for size in chunk_sizes(len(x), chunk):
        stop = min(len(x), start + size)
        weights = np.zeros(size, dtype=x.dtype)
        weights[: stop - start] = 1
        yield start, stop, _pad(x[start:stop], size), tuple(_pad(p[start:stop], size) for p in params), weights
        start = stop
