"""Phase derivatives of an Ewald sum by AD: c', c'', s', s'' of q cos(k.r) and q sin(k.r).

Every entry of (K, N) phases theta_ki = k.r_i enters its own terms only, so one compiled
grad-of-grad (mdjac.kernel.elementwise_derivatives) gives them all. mdjac.longrange.ewald derives
the Jacobian from them; :func:`phase_factors` is the hook long-range Jacobian data calls
(mdjac.long_range_jacobian).
"""
import numpy as np
from mindspore import ops

from .. import kernel


def cosine_of_phase(theta, charges):
    """c_ki = q_i cos(theta_ki) of phases theta (K, N) and charges (N,): (K, N), entry-wise in theta."""
    return charges * ops.cos(theta)


def sine_of_phase(theta, charges):
    """s_ki = q_i sin(theta_ki) of phases theta (K, N) and charges (N,): (K, N), entry-wise in theta."""
    return charges * ops.sin(theta)


def phase_derivatives(positions, charges, kvectors, dtype):
    """d/dtheta and d2/dtheta2 of q_i cos(theta_ki) and q_i sin(theta_ki), by AD (compiled).

    positions: (N, 3) nm; charges: (N,) e; kvectors: (Kc, 3) nm^-1 (one chunk; padded rows with
    k = 0 give phases 0); dtype: the compute dtype. The phases theta = k.r are formed in float64
    and handed to AD in ``dtype``. Returns (c1, c2, s1, s2), each (Kc, N) in ``dtype``: c' , c'', s', s''.
    """
    theta = (kvectors @ np.asarray(positions, dtype=np.float64).T).astype(dtype)
    q = np.asarray(charges).astype(dtype)
    c1, c2 = kernel.elementwise_derivatives(cosine_of_phase, theta, (q,))
    s1, s2 = kernel.elementwise_derivatives(sine_of_phase, theta, (q,))
    return c1, c2, s1, s2


def phase_factors(positions, charges, kvectors, dtype):
    """(c' (Kc, N), s' (Kc, N)) in ``dtype``: the first derivatives of :func:`phase_derivatives`."""
    c1, _, s1, _ = phase_derivatives(positions, charges, kvectors, dtype)
    return c1, s1
