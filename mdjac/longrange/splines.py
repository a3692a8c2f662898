"""The B-spline stencil weights' derivatives of smooth PME by AD: dw/du and d2w/du2 of M_5(f + 4 - k).

Each stencil weight w_id(k) = M_5(f_id + 4 - k) (mdjac.longrange.pme_grid) is one scalar function of
its own fraction f_id, so one compiled element-wise grad-of-grad (mdjac.kernel.elementwise_derivatives)
gives all of them. mdjac.longrange.pme uses them for forces and curvature; :func:`spline_derivatives`
is the hook PME's Jacobian data calls on first use (mdjac.pme_jacobian).
"""
import numpy as np

from .. import kernel
from ..chunks import padded_chunks
from . import pme_grid
from .pme_grid import bspline_piece

#: largest number of stencil rows (atom, axis) per compiled call of the spline derivatives.
SPLINE_CHUNK = 1 << 16


def spline_derivatives(fractions, dtype):
    """dw/du and d2w/du2 (N, 3, 5) in ``dtype`` of the stencil weights of fractions (N, 3), by AD (compiled).

    Each of the (N, 3, 5) entries is M_5 of its own argument f + 4 - k, so one element-wise grad-of-grad
    gives them all (mdjac.chunks.padded_chunks: chunks of fixed, padded sizes).
    """
    rows = np.asarray(fractions, dtype=dtype).reshape(-1, 1)
    coefficients = pme_grid.COLUMN_COEFFICIENTS.astype(dtype)
    first = np.empty((len(rows), pme_grid.ORDER), dtype=dtype)
    second = np.empty_like(first)
    for start, stop, s, _, _ in padded_chunks(np.repeat(rows, pme_grid.ORDER, axis=1), (), SPLINE_CHUNK):
        d1, d2 = kernel.elementwise_derivatives(bspline_piece, s, (coefficients,))
        first[start:stop], second[start:stop] = d1[: stop - start], d2[: stop - start]
    shape = np.shape(fractions) + (pme_grid.ORDER,)
    return first.reshape(shape), second.reshape(shape)
