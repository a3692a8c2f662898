"""OpenMM's NonbondedForce: Lennard-Jones and Coulomb with its cutoff forms, and Ewald's direct space.

For a pair (i, j) at distance r that is not an exception (units nm, kJ/mol, e):

    E = 4 eps_ij ((sigma_ij/r)^12 - (sigma_ij/r)^6) S(r) + f q_i q_j (1/r + k_rf r^2 - c_rf)

with Lorentz-Berthelot sigma_ij = (sigma_i + sigma_j)/2, eps_ij = sqrt(eps_i eps_j),
f = ONE_4PI_EPS0 = 138.93545764438198 kJ mol^-1 nm e^-2 (OpenMM's value), S the switching function
(mdjac.custom; 1 without one), and

* NoCutoff: all pairs, k_rf = c_rf = 0 (plain Coulomb);
* CutoffNonPeriodic, CutoffPeriodic: pairs with r < r_c (minimum image if periodic), the reaction
  field with dielectric eps_rf: k_rf = r_c^-3 (eps_rf - 1)/(2 eps_rf + 1),
  c_rf = r_c^-1 3 eps_rf/(2 eps_rf + 1), so that the Coulomb energy is zero at r_c.

* Ewald, PME: pairs with r < r_c, Coulomb f q_i q_j erfc(alpha r)/r, the direct space of an
  Ewald sum whose other parts are mdjac.ewald's (exclusion correction for every exception pair,
  the reciprocal sum, the self and net-charge terms). PME is OpenMM's approximation of that same
  Ewald sum: mdjac states the Ewald sum itself, at the force's alpha (or the one its tolerance
  gives) and the k grid OpenMM's Ewald method would take at its tolerance, so its energy and
  forces differ from OpenMM's PME by PME's own error (about the tolerance), not by mdjac's.

Exceptions (1-4 pairs with their own chargeProd, sigma, epsilon; excluded pairs have zero ones)
replace the pair: E = 4 eps ((sigma/r)^12 - (sigma/r)^6) + f chargeProd / r, no cutoff, no
reaction field, no switch (as OpenMM's reference platform computes them).

The long-range dispersion correction of CutoffPeriodic (useDispersionCorrection) is OpenMM's
(NonbondedForceImpl::calcDispersionCorrection): atoms are grouped in classes of equal
(sigma, epsilon) with counts n_a; with the mixed pair values over class pairs,

    <A> = [sum_a n_a (n_a + 1)/2 A_aa + sum_{a<b} n_a n_b A_ab] / (N (N + 1)/2),
    E = 8 pi N^2 / V (<eps sigma^12> / (9 r_c^9) - <eps sigma^6> / (3 r_c^3) + <eps I>),

I the integral of ((sigma/r)^12 - (sigma/r)^6)(1 - S(r)) r^2 from r_s to r_c (zero without a
switch; here by adaptive quadrature). It is the mixed-pair C6 = 4 eps_ij sigma_ij^6 averaged over
atom pairs; MindSPONGE instead averages each type's own C6 (see mdjac.sponge), which for the
water box's oxygen-only Lennard-Jones comes out 3 times larger.
"""
import math

import numpy as np
import scipy.integrate

from mindspore import ops

from ..custom import switching_function, switching_function_numpy

#: OpenMM's Coulomb constant 1/(4 pi eps0), kJ mol^-1 nm e^-2 (openmm/reference SimTKOpenMMRealType.h).
ONE_4PI_EPS0 = 138.93545764438198


def lennard_jones_coulomb(variables, params):
    """E = 4 eps ((sigma/r)^12 - (sigma/r)^6) + qq / r; params (sigma, epsilon, qq = f q_i q_j)."""
    (r,) = variables
    sigma, epsilon, qq = params
    s2 = sigma * sigma / (r * r)
    s6 = s2 * s2 * s2
    return 4.0 * epsilon * (s6 * s6 - s6) + qq / r


def lennard_jones_reaction_field(variables, params):
    """E = 4 eps ((sigma/r)^12 - (sigma/r)^6) S(r) + qq (1/r + k_rf r^2 - c_rf).

    params (sigma, epsilon, qq, k_rf, c_rf, switch, switch_end): S switches from ``switch`` to
    ``switch_end`` (without a switch: switch = r_c, switch_end = r_c + 1, so S = 1 below r_c).
    """
    (r,) = variables
    sigma, epsilon, qq, k_rf, c_rf, switch, switch_end = params
    s2 = sigma * sigma / (r * r)
    s6 = s2 * s2 * s2
    lj = 4.0 * epsilon * (s6 * s6 - s6) * switching_function(r, switch, switch_end)
    return lj + qq * (1.0 / r + k_rf * r * r - c_rf)


def lennard_jones_ewald(variables, params):
    """E = 4 eps ((sigma/r)^12 - (sigma/r)^6) S(r) + qq erfc(alpha r) / r (Ewald's direct space).

    params (sigma, epsilon, qq, alpha, switch, switch_end): S as in :func:`lennard_jones_reaction_field`.
    """
    (r,) = variables
    sigma, epsilon, qq, alpha, switch, switch_end = params
    s2 = sigma * sigma / (r * r)
    s6 = s2 * s2 * s2
    lj = 4.0 * epsilon * (s6 * s6 - s6) * switching_function(r, switch, switch_end)
    return lj + qq * ops.erfc(alpha * r) / r


def reaction_field_constants(cutoff, dielectric):
    """(k_rf nm^-3, c_rf nm^-1) of OpenMM's reaction field."""
    k_rf = cutoff ** -3 * (dielectric - 1.0) / (2.0 * dielectric + 1.0)
    c_rf = 3.0 * dielectric / ((2.0 * dielectric + 1.0) * cutoff)
    return k_rf, c_rf


def _switch_integral(sigma, switch, cutoff):
    """int_{r_s}^{r_c} ((sigma/r)^12 - (sigma/r)^6) (1 - S(r)) r^2 dr, nm^3 (adaptive quadrature)."""
    def integrand(r):
        s6 = (sigma / r) ** 6
        return (s6 * s6 - s6) * (1.0 - switching_function_numpy(r, switch, cutoff)) * r * r
    value, _ = scipy.integrate.quad(integrand, switch, cutoff, epsabs=0.0, epsrel=1e-13, limit=200)
    return value


def dispersion_coefficient(sigma, epsilon, cutoff, switch=None):
    """OpenMM's long-range dispersion coefficient c (kJ mol^-1 nm^3): E = c / V.

    sigma, epsilon: (N,) per atom (nm, kJ/mol); cutoff, switch: nm. See the module docstring.
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
