"""The one padded chunk loop: instances in chunks of fixed, power-of-two sizes.

Each compiled function (mdjac.kernel) then sees few shapes and compiles once, not per frame, and
the chunk size bounds its memory. Padding repeats a chunk's first row (a valid instance) and its
weight is 0. A 0-d parameter is one value shared by every instance (a pair form's alpha or
reaction-field constants): it goes to every chunk as it is, and broadcasts in the energy.
"""
import numpy as np

#: Largest number of instances per compiled call of an instance energy; bounds memory and the shapes compiled.
CHUNK = 65536
#: The same for the radial route, whose compiled calls work on (M,) distances.
RADIAL_CHUNK = 1 << 20


#: Above this many instances the last chunk is padded to a multiple of an eighth of the next power of two.
FINE_PADDING = 4096


def chunk_sizes(m, chunk=CHUNK):
    """Sizes of the chunks of M instances: full ``chunk``s, then one for the rest: the power of two
    >= the rest (>= 64), or above :data:`FINE_PADDING` the least multiple of an eighth of that power
    of two (at most 1/8 padding, at most 8 shapes to compile an octave)."""
    sizes = [chunk] * (m // chunk)
    rest = m - chunk * len(sizes)
    if rest:
        size = max(64, 1 << (rest - 1).bit_length())
        if size > FINE_PADDING:
            step = size // 8
            size = -(-rest // step) * step
        sizes.append(min(chunk, size))
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
    params : tuple of (M, ...) ndarrays, the per-instance parameters, or 0-d ndarrays shared by all
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
        yield (start, stop, _pad(x[start:stop], size),
               tuple(p if p.ndim == 0 else _pad(p[start:stop], size) for p in params), weights)
        start = stop
