"""Corrections for what a cutoff leaves out of a Lennard-Jones sum: the long-range dispersion.

:func:`dispersion_coefficient` is OpenMM's coefficient c (a numpy computation done once);
:class:`LongRangeDispersion` is the term E = c / V. Units: nm, kJ/mol.
"""
import math

import numpy as np
from mindspore import ops

from ..space import box_volume
from .base import Term
from .checks import scalar
from .pairs import switching_function_numpy


def _switch_integral(sigma, switch, cutoff):
    """int_{r_s}^{r_c} ((sigma/r)^12 - (sigma/r)^6) (1 - S(r)) r^2 dr, nm^3 (adaptive quadrature)."""
    import scipy.integrate

    def integrand(r):
        s6 = (sigma / r) ** 6
        return (s6 * s6 - s6) * (1.0 - switching_function_numpy(r, switch, cutoff)) * r * r
    value, _ = scipy.integrate.quad(integrand, switch, cutoff, epsabs=0.0, epsrel=1e-13, limit=200)
    return value


def dispersion_coefficient(sigma, epsilon, cutoff, switch=None):
    """The long-range dispersion coefficient c (kJ mol^-1 nm^3) of a truncated (or switched)
    Lennard-Jones, E = c / V, as OpenMM computes it (NonbondedForceImpl::calcDispersionCorrection).

    sigma, epsilon: (N,) per atom (nm, kJ/mol), Lorentz-Berthelot; cutoff, switch: nm. Atoms are
    grouped in classes of equal (sigma, epsilon) with counts n_a; over class pairs, with the mixed
    values, <A> = [sum_a n_a (n_a + 1)/2 A_aa + sum_{a<b} n_a n_b A_ab] / (N (N + 1)/2) and
    c = 8 pi N^2 (<eps sigma^12> / (9 r_c^9) - <eps sigma^6> / (3 r_c^3) + <eps I>), I the
    integral of ((sigma/r)^12 - (sigma/r)^6)(1 - S(r)) r^2 from the switch to the cutoff (zero
    without a switch; adaptive quadrature here). This averages the mixed pair C6 over atom pairs;
    MindSPONGE averages each atom's own C6 instead (see mdjac.sponge.adapter).
    """
    sigma, epsilon = np.asarray(sigma, dtype=np.float64), np.asarray(epsilon, dtype=np.float64)
    n = len(sigma)
    classes, counts = np.unique(np.stack([sigma, epsilon], axis=1), axis=0, return_counts=True)
    counts = counts.astype(np.float64)
    s = 0.5 * (classes[:, 0, None] + classes[None, :, 0])
    e = np.sqrt(classes[:, 1, None] * classes[None, :, 1])
    weight = np.outer(counts, counts)
    np.fill_diagonal(weight, counts * (counts + 1) / 2)
    weight = np.triu(weight)
    s6 = s ** 6
    sum1 = (weight * e * s6 * s6).sum()
    sum2 = (weight * e * s6).sum()
    sum3 = 0.0
    if switch is not None:
        for a, b in zip(*np.nonzero(weight * e)):
            sum3 += weight[a, b] * e[a, b] * _switch_integral(s[a, b], switch, cutoff)
    pairs = n * (n + 1) / 2
    return 8.0 * n * n * math.pi * (sum1 / pairs / (9.0 * cutoff ** 9) - sum2 / pairs / (3.0 * cutoff ** 3) + sum3 / pairs)


class LongRangeDispersion(Term):
    """Long-range dispersion correction of a truncated Lennard-Jones, E = c / V, V the box volume (nm^3).

    c (kJ mol^-1 nm^3) is the caller's, e.g. MindSPONGE's -2/3 pi N^2 <C6> / rc^3 (mdjac.sponge.adapt) or
    OpenMM's (dispersion_coefficient).
    E depends on the box only, so its forces and Jacobian are zero; the term is there so that
    energies match. One instance (on atom 0) in a periodic box, none without one.
    """
    n_body = 1
    relative = False

    def __init__(self, coefficient, n_atoms):
        self.coefficient = scalar(coefficient, "LongRangeDispersion coefficient")
        self.n_atoms = int(n_atoms)

    @property
    def max_index(self):
        return self.n_atoms - 1

    def instances(self, config):
        if config.box is None:
            return np.zeros((0, 1), np.int64), (np.zeros(0),)
        return np.zeros((1, 1), np.int64), (np.array([self.coefficient / box_volume(config.box)]),)

    def energy(self, q, value):
        return ops.broadcast_to(value, q.shape[:-2])   # (..., M): constant in q

    def __repr__(self):
        return f"LongRangeDispersion(c={self.coefficient:.6g})"
