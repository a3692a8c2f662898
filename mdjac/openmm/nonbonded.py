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

* LJPME: as PME, plus OpenMM's LJ-PME dispersion (mdjac.longrange.ljpme): each pair within the cutoff
  adds the dispersion mesh's share back, c_i c_j (1 - g(x)) / r^6, and a constant that makes the pair's
  energy zero at r_c; every exception pair gets the mesh's share back too; no switch (OpenMM ignores it
  under LJPME), no long-range dispersion correction (the mesh is it).
* Ewald, PME: pairs with r < r_c, Coulomb f q_i q_j erfc(alpha r)/r, the direct space of an
  Ewald sum whose other parts are mdjac.longrange.ewald's (Ewald) or mdjac.longrange.pme's (PME, OpenMM's smooth
  PME itself: its alpha and grid): the exclusion correction for every exception pair, the
  reciprocal part, the self and net-charge terms.

Exceptions (1-4 pairs with their own chargeProd, sigma, epsilon; excluded pairs have zero ones)
replace the pair: E = 4 eps ((sigma/r)^12 - (sigma/r)^6) + f chargeProd / r, no cutoff, no
reaction field, no switch (as OpenMM's reference platform computes them).

The long-range dispersion correction of CutoffPeriodic (useDispersionCorrection) is OpenMM's
(NonbondedForceImpl::calcDispersionCorrection; mdjac.terms.dispersion_coefficient): atoms are
grouped in classes of equal (sigma, epsilon) with counts n_a; with the mixed pair values over class pairs,

    <A> = [sum_a n_a (n_a + 1)/2 A_aa + sum_{a<b} n_a n_b A_ab] / (N (N + 1)/2),
    E = 8 pi N^2 / V (<eps sigma^12> / (9 r_c^9) - <eps sigma^6> / (3 r_c^3) + <eps I>),

I the integral of ((sigma/r)^12 - (sigma/r)^6)(1 - S(r)) r^2 from r_s to r_c (zero without a
switch; here by adaptive quadrature). It is the mixed-pair C6 = 4 eps_ij sigma_ij^6 averaged over
atom pairs; MindSPONGE instead averages each atom's own C6 (see mdjac.sponge.adapter), which for the
water box's oxygen-only Lennard-Jones comes out 3 times larger.
"""
import numba
import numpy as np
from mindspore import ops

from ..terms import switching_function

#: OpenMM's Coulomb constant 1/(4 pi eps0), kJ mol^-1 nm e^-2 (openmm/reference SimTKOpenMMRealType.h).
ONE_4PI_EPS0 = 138.93545764438198


def lennard_jones(inverse, sigma, epsilon):
    """4 eps ((sigma/r)^12 - (sigma/r)^6) of inverse distances 1/r (..., M) nm^-1, in MindSpore ops.

    The forms below take 1/r once per pair and share it with the Coulomb part: one division per
    pair (benchmarks/probe_pair_energy_forms.py)."""
    s2 = sigma * inverse
    s2 = s2 * s2
    s6 = s2 * s2 * s2
    return 4.0 * epsilon * (s6 * s6 - s6)


def reaction_field(r, inverse, qq, k_rf, c_rf):
    """qq (1/r + k_rf r^2 - c_rf): Coulomb with OpenMM's reaction field (r and 1/r given)."""
    return qq * (inverse + k_rf * r * r - c_rf)


def ewald_direct(r, inverse, qq, alpha):
    """qq erfc(alpha r) / r: Ewald's direct space (r and 1/r given)."""
    return qq * ops.erfc(alpha * r) * inverse


# The forms below are function(variables, params) of mdjac.terms.custom.PairFunction. Per pair
# (arrays of the pairs): sigma, epsilon, qq = f q_i q_j; shared by every pair (0-d arrays, see
# mdjac.chunks): alpha, k_rf, c_rf, and the switch's start and end. Without a switch the switching
# function is not evaluated at all (it would multiply by 1 below the cutoff).
def lennard_jones_coulomb(variables, params):
    """E = 4 eps ((sigma/r)^12 - (sigma/r)^6) + qq / r; params (sigma, epsilon, qq) (exceptions, NoCutoff)."""
    (r,) = variables
    sigma, epsilon, qq = params
    inverse = 1.0 / r
    return lennard_jones(inverse, sigma, epsilon) + qq * inverse


def lennard_jones_reaction_field(variables, params):
    """E = 4 eps ((sigma/r)^12 - (sigma/r)^6) + qq (1/r + k_rf r^2 - c_rf); params (sigma, epsilon, qq, k_rf, c_rf)."""
    (r,) = variables
    sigma, epsilon, qq, k_rf, c_rf = params
    inverse = 1.0 / r
    return lennard_jones(inverse, sigma, epsilon) + reaction_field(r, inverse, qq, k_rf, c_rf)


def switched_lennard_jones_reaction_field(variables, params):
    """E = 4 eps ((sigma/r)^12 - (sigma/r)^6) S(r) + qq (1/r + k_rf r^2 - c_rf); params (sigma, epsilon,
    qq, k_rf, c_rf, switch, switch_end): S switches from ``switch`` to ``switch_end`` (mdjac.terms.switching_function)."""
    (r,) = variables
    sigma, epsilon, qq, k_rf, c_rf, switch, switch_end = params
    inverse = 1.0 / r
    return (lennard_jones(inverse, sigma, epsilon) * switching_function(r, switch, switch_end)
            + reaction_field(r, inverse, qq, k_rf, c_rf))


def lennard_jones_ewald(variables, params):
    """E = 4 eps ((sigma/r)^12 - (sigma/r)^6) + qq erfc(alpha r) / r (Ewald's direct space); params (sigma, epsilon, qq, alpha)."""
    (r,) = variables
    sigma, epsilon, qq, alpha = params
    inverse = 1.0 / r
    return lennard_jones(inverse, sigma, epsilon) + ewald_direct(r, inverse, qq, alpha)


def switched_lennard_jones_ewald(variables, params):
    """E = 4 eps ((sigma/r)^12 - (sigma/r)^6) S(r) + qq erfc(alpha r) / r; params (sigma, epsilon, qq,
    alpha, switch, switch_end), S as in :func:`switched_lennard_jones_reaction_field`."""
    (r,) = variables
    sigma, epsilon, qq, alpha, switch, switch_end = params
    inverse = 1.0 / r
    return (lennard_jones(inverse, sigma, epsilon) * switching_function(r, switch, switch_end)
            + ewald_direct(r, inverse, qq, alpha))


def dispersion_mesh_share(r, c6c6, alpha):
    """c6c6 (1 - exp(-x)(1 + x + x^2/2)) / r^6, x = (alpha r)^2: the share of the pair that LJ-PME's dispersion
    mesh holds (-1 times it; mdjac.longrange.ljpme), in MindSpore ops."""
    r2 = r * r
    x = alpha * alpha * r2
    r6 = r2 * r2 * r2
    return c6c6 * (1.0 - ops.exp(-x) * (1.0 + x + 0.5 * x * x)) / r6


def lennard_jones_ljpme(variables, params):
    """E = 4 eps ((sigma/r)^12 - (sigma/r)^6) + qq erfc(alpha r) / r + (the mesh's dispersion share, taken back)
    - (the same Lennard-Jones and share at the cutoff): OpenMM's LJ-PME direct space (ReferenceLJCoulombIxn),
    zero at the cutoff; params (sigma, epsilon, qq, c6c6, alpha, dispersion_alpha, cutoff)."""
    (r,) = variables
    sigma, epsilon, qq, c6c6, alpha, dispersion_alpha, cutoff = params
    shift = lennard_jones(1.0 / cutoff, sigma, epsilon) + dispersion_mesh_share(cutoff, c6c6, dispersion_alpha)
    inverse = 1.0 / r
    return (lennard_jones(inverse, sigma, epsilon) + ewald_direct(r, inverse, qq, alpha)
            + dispersion_mesh_share(r, c6c6, dispersion_alpha) - shift)


def dispersion_exclusion(variables, params):
    """E = + c6c6 (1 - g(x)) / r^6: LJ-PME's exclusion correction of an excluded or exception pair (the mesh's
    share of the pair taken back, :func:`dispersion_mesh_share`); params (c6c6, dispersion_alpha)."""
    (r,) = variables
    c6c6, dispersion_alpha = params
    return dispersion_mesh_share(r, c6c6, dispersion_alpha)


@numba.njit(cache=True, nogil=True)
def _combine(i, j, half_sigma, root_epsilon, scaled_charge, charge, sigma, epsilon, qq):
    for p in range(i.shape[0]):
        a, b = i[p], j[p]
        sigma[p] = half_sigma[a] + half_sigma[b]
        epsilon[p] = root_epsilon[a] * root_epsilon[b]
        qq[p] = scaled_charge[a] * charge[b]


def combined_pair_parameters(i, j, sigma, epsilon, charge):
    """Per pair (i (P,), j (P,)): Lorentz-Berthelot sigma_ij (nm), eps_ij (kJ/mol) and qq = f q_i q_j
    (kJ mol^-1 nm), three (P,) float64 arrays in one pass, from per-atom sigma, epsilon, charge (N,).

    sigma_ij = sigma_i/2 + sigma_j/2 and eps_ij = sqrt(eps_i) sqrt(eps_j), as OpenMM's reference
    platform stores and combines them (ReferenceLJCoulombIxn).
    """
    out = tuple(np.empty(len(i)) for _ in range(3))
    charge = np.asarray(charge, dtype=np.float64)
    _combine(np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64), 0.5 * sigma,   # columns of the pairs: no copies
             np.sqrt(epsilon), ONE_4PI_EPS0 * charge, charge, *out)
    return out


def reaction_field_constants(cutoff, dielectric):
    """(k_rf nm^-3, c_rf nm^-1) of OpenMM's reaction field."""
    k_rf = cutoff ** -3 * (dielectric - 1.0) / (2.0 * dielectric + 1.0)
    c_rf = 3.0 * dielectric / ((2.0 * dielectric + 1.0) * cutoff)
    return k_rf, c_rf
