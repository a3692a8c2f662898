r"""Ewald electrostatics: parameters, wave vectors, the reciprocal sum and its low-rank Jacobian.

The Ewald sum of point charges q_i (e) in an orthorhombic box of edges L (nm), volume V, splits
the periodic Coulomb energy with a screening parameter alpha (nm^-1) into

    E = E_dir + E_excl + E_rec + E_self + E_net,
    E_dir  = f sum_{i<j, r_ij < rc, not excluded} q_i q_j erfc(alpha r_ij) / r_ij          (terms.EwaldDirectCoulomb)
    E_excl = -f sum_{excluded i<j} q_i q_j erf(alpha r_ij) / r_ij                          (terms.EwaldExclusion)
    E_rec  = sum_k w_k (C_k^2 + S_k^2),   C_k = sum_j q_j cos(k.r_j),  S_k = sum_j q_j sin(k.r_j)
    E_self = -f alpha / sqrt(pi) sum_i q_i^2                                                 (a constant)
    E_net  = -pi f Q^2 / (2 V alpha^2),  Q = sum_i q_i   (neutralising background; constant in a fixed box)

with f the Coulomb constant, k = 2 pi (n_x / L_x, n_y / L_y, n_z / L_z) over the half space of
integer triples with |n_a| < kmax_a (n_x > 0, or n_x = 0 and n_y > 0, or n_x = n_y = 0 and n_z > 0:
each +-k pair once, k = 0 left out), and

    w_k = (4 pi f / V) exp(-|k|^2 / (4 alpha^2)) / |k|^2.

This is exactly OpenMM's Ewald method (NonbondedForce.Ewald, ReferenceLJCoulombIxn): the same
half space, weights, self term and, for a system with net charge, the same background term. Its parameters come from an error tolerance delta the way
OpenMM chooses them (NonbondedForceImpl::calcEwaldParameters):

    alpha = sqrt(-ln(2 delta)) / rc,
    kmax_a = the smallest n >= 1 with 0.05 sqrt(L_a alpha) n exp(-(pi n / (L_a alpha))^2) < delta
             (searched from 10 downwards or upwards), made odd by adding 1 if it is even,

so the same tolerance, cutoff and box give the same alpha and k grid. Scaled 1-4 pairs
("exceptions" with a charge product c_ij) are handled as OpenMM does: c_ij / r plain Coulomb
(terms.Coulomb with ``charge_products``) plus the full-charge exclusion correction above.

The Jacobian of the reciprocal sum. With g_k = grad C_k and h_k = grad S_k (3N-vectors whose atom
i part depends on atom i only: g_k[i] = d(q_i cos(k.r_i))/dr_i),

    H_rec = sum_k 2 w_k (g_k g_k^T + h_k h_k^T)  +  block diagonal B,
    B_ii  = sum_k 2 w_k (C_k d2(q_i cos k.r_i)/dr_i^2 + S_k d2(q_i sin k.r_i)/dr_i^2),

a low-rank part (rank 2K for K wave vectors) plus a block-diagonal part. Atom i enters the
parts of wave vector k only through its phase theta_ki = k.r_i, so with c_ki = q_i cos(theta_ki)
and s_ki = q_i sin(theta_ki), by the chain rule through theta (exact bookkeeping, as through
r = |d| for pair terms),

    g_k[i] = c_ki' k,   h_k[i] = s_ki' k,
    B_ii   = sum_k 2 w_k (C_k c_ki'' + S_k s_ki'') k k^T,

where ' is d/dtheta. The scalars c', c'', s', s'' (K x N of each) come from MindSpore's AD
through mdjac.kernel (:func:`mdjac.kernel.elementwise_derivatives`: every entry depends on its
own phase, so one compiled grad-of-grad gives them all). The force Jacobian is J = -H;
:class:`mdjac.long_range_jacobian.ReciprocalJacobian` holds the low-rank part as the data it is rebuilt from (k vectors,
weights, charges, positions), keeps the scalar factors c', s' (16 N K bytes in float64; 3 times
less than the vectors g_k, h_k) while they fit, and gives its matvec (two matrix products per
factor: t_k = sum_i c_ki' (k.v_i), then (J v)_i = -sum_k 2 w_k t_k c_ki' k), diagonal blocks and
dense blocks of any atom subset.

Units: nm, e, kJ/mol; k in nm^-1, w_k in kJ mol^-1 e^-2.
"""
import math

import numpy as np
from mindspore import ops

from .. import kernel
from ..errors import InputError
from ..long_range_jacobian import ReciprocalJacobian, k_chunk, k_chunks, keeps_factors, outer_kk, reciprocal_weights, wave_numbers, wave_vectors
from ..neighbours import pair_keys, pairs_of_keys
from ..space import box_vectors, check_box
from .. import terms
from ..terms.base import ChargedLongRangeTerm
from .phases import phase_derivatives

#: OpenMM's Coulomb constant ONE_4PI_EPS0, kJ mol^-1 nm e^-2 (CODATA 2018; mdjac's default is GROMACS's 138.935458).
OPENMM_COULOMB_CONSTANT = 138.93545764438198
# ----------------------------------------------------------------------------- parameters
def _kmax_error(width, alpha, tolerance, n):
    """OpenMM's EwaldErrorFunction: tolerance - 0.05 sqrt(L alpha) n exp(-(n pi / (L alpha))^2)."""
    t = n * math.pi / (width * alpha)
    return tolerance - 0.05 * math.sqrt(width * alpha) * n * math.exp(-t * t)


def _find_kmax(width, alpha, tolerance, guess=10):
    """OpenMM's NonbondedForceImpl::findZero from ``guess``: the first n where the error drops below tolerance."""
    n = guess
    value = _kmax_error(width, alpha, tolerance, n)
    if value > 0.0:
        while value > 0.0 and n > 0:
            n -= 1
            value = _kmax_error(width, alpha, tolerance, n)
        return n + 1
    while value < 0.0:
        n += 1
        value = _kmax_error(width, alpha, tolerance, n)
    return n


def ewald_parameters(tolerance, cutoff, box, alpha=None):
    """alpha (nm^-1) and kmax (3,) int as OpenMM chooses them for its Ewald method.

    tolerance: OpenMM's ewaldErrorTolerance (default 5e-4); cutoff: direct-space cutoff, nm;
    box: (3,) edges or (3, 3) reduced box vectors, nm (a triclinic box's kmax from the vectors'
    lengths; OpenMM has no Ewald in triclinic boxes). alpha: None (OpenMM's choice), or a given alpha (nm^-1, e.g. a PME
    force's own) for which kmax is chosen at the tolerance.
    """
    tolerance, cutoff = float(tolerance), float(cutoff)
    if not (0 < tolerance < 0.5):
        raise InputError(f"the Ewald error tolerance {tolerance} is not in (0, 0.5): give e.g. 5e-4")
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise InputError(f"the Ewald cutoff {cutoff} is not a positive length: give it in nm")
    box = check_box(box)
    if box is None:
        raise InputError("Ewald electrostatics need a periodic box: give the box edges in nm")
    if alpha is None:
        alpha = math.sqrt(-math.log(2.0 * tolerance)) / cutoff
    alpha = float(alpha)
    if not (math.isfinite(alpha) and alpha > 0):
        raise InputError(f"the Ewald alpha {alpha} is not a positive number (nm^-1)")
    # n_d = k . v_d / (2 pi): the wave vectors within |k| <= K need |n_d| <= K |v_d| / (2 pi), so each
    # axis's kmax is OpenMM's rule on the length of its box vector (the edge, in a rectangular box)
    kmax = np.array([_find_kmax(float(L), alpha, tolerance) for L in np.linalg.norm(box_vectors(box), axis=1)],
                    dtype=np.int64)
    return alpha, kmax + (kmax % 2 == 0)


# ----------------------------------------------------------------------------- energies in MindSpore ops
def _phases(x, kvectors):
    """k.x for positions x (..., N, 3) and k vectors (K, 3): (..., N, K)."""
    return ops.matmul(x, kvectors.T)


def reciprocal_energy(x, charges, kvectors, weights):
    """E_rec = sum_k w_k (C_k^2 + S_k^2) of positions x (..., N, 3): (...) kJ/mol."""
    theta = _phases(x, kvectors)
    c = ops.matmul(charges, ops.cos(theta))   # (..., K)
    s = ops.matmul(charges, ops.sin(theta))
    return ((c * c + s * s) * weights).sum(-1)


# ----------------------------------------------------------------------------- chunks over wave vectors
def structure_factors(positions, charges, kvectors):
    """C_k, S_k (K,) of positions (N, 3) nm (plain values, no derivative): sums of q_j cos / sin (k.r_j)."""
    c = np.empty(len(kvectors))
    s = np.empty(len(kvectors))
    size = k_chunk(len(positions), len(kvectors))
    for start in range(0, len(kvectors), size):
        theta = positions @ kvectors[start:start + size].T
        c[start:start + size] = charges @ np.cos(theta)
        s[start:start + size] = charges @ np.sin(theta)
    return c, s


# ----------------------------------------------------------------------------- the term
class EwaldReciprocal(ChargedLongRangeTerm):
    """The reciprocal-space sum and self term of an Ewald sum: a long-range term of a Potential.

    charges: (N,) e. alpha: nm^-1. kmax: (3,) ints (wave numbers |n_a| < kmax_a, OpenMM's
    convention); or ``tolerance`` with ``cutoff`` (nm) and ``box`` (3,) nm to choose alpha and
    kmax as OpenMM does (:func:`ewald_parameters`). coulomb_constant: kJ mol^-1 nm e^-2 (OpenMM's
    :data:`OPENMM_COULOMB_CONSTANT` to match OpenMM to 1e-9). The k vectors and weights follow the
    box of each frame (NPT); the wave numbers are fixed.

    Energy: E_rec + E_self + E_net (module docstring). Not an instance term: the Potential asks it for
    ``energy_and_forces(config)``, ``hessian_diagonal(config, atoms)`` and
    ``jacobian_part(config, atoms)``, and for the dense check ``energy_function(config)``.
    """
    def __init__(self, charges, alpha=None, kmax=None, tolerance=None, cutoff=None, box=None,
                 coulomb_constant=OPENMM_COULOMB_CONSTANT):
        charges = self.finite_charges(charges)
        if tolerance is not None:
            if alpha is not None or kmax is not None:
                raise InputError("give either an Ewald error tolerance (with cutoff and box) or alpha and kmax, not both")
            alpha, kmax = ewald_parameters(tolerance, cutoff, box)
        if alpha is None or kmax is None:
            raise InputError("the Ewald reciprocal sum needs alpha (nm^-1) and kmax, or tolerance, cutoff and box")
        if not (math.isfinite(float(alpha)) and float(alpha) > 0):
            raise InputError(f"the Ewald alpha {alpha} is not a positive number (nm^-1)")
        self.numbers = wave_numbers(kmax)
        self.kmax = np.asarray(kmax, dtype=np.int64).reshape(3)
        super().__init__(charges, alpha, coulomb_constant)
        self._factors = (None, None)     # (configuration, c' and s' chunks of every atom) from hessian_diagonal

    def __repr__(self):
        return f"EwaldReciprocal(alpha={self.alpha:.6g}, kmax={self.kmax.tolist()}, K={len(self.numbers)})"

    def kvectors_and_weights(self, box):
        """(K, 3) k vectors nm^-1 and (K,) weights kJ mol^-1 e^-2 for a box (3,) nm."""
        if box is None:
            raise InputError("Ewald electrostatics need a periodic box: give the box edges in nm")
        k = wave_vectors(self.numbers, box)
        return k, reciprocal_weights(k, self.alpha, box, self.coulomb_constant)

    def energy_and_forces(self, config):
        """(E_rec + E_self + E_net kJ/mol, forces (N, 3) kJ mol^-1 nm^-1) by AD of E_rec, chunked over k."""
        kvectors, weights = self.kvectors_and_weights(config.box)
        dtype = config.dtype
        x = config.positions.astype(dtype)
        energy, gradient = self.constant_energy(config.box), np.zeros((self.n_atoms, 3))
        charges = self.charges.astype(dtype)
        for _, _, k, w in k_chunks(kvectors, weights, self.n_atoms):
            e, g = kernel.term_energy_and_gradient(reciprocal_energy, x, np.ones((), dtype),
                                                   (charges, k.astype(dtype), w.astype(dtype)))
            energy += e
            gradient += g
        return energy, -gradient

    def hessian_diagonal(self, config, atoms):
        """Block-diagonal part B_ii (n, 3, 3) of the reciprocal Hessian for atoms (n,) (kJ mol^-1 nm^-2).

        B_ii = sum_k 2 w_k (C_k c_ki'' + S_k s_ki'') k k^T with C_k, S_k of the whole frame and the
        second phase derivatives c'', s'' from AD (:func:`phase_derivatives`).
        """
        kvectors, weights = self.kvectors_and_weights(config.box)
        c, s = structure_factors(config.positions, self.charges, kvectors)
        positions, charges = config.positions[atoms], self.charges[atoms]
        out = np.zeros((len(atoms), 9))
        whole = len(atoms) == self.n_atoms and np.array_equal(atoms, np.arange(self.n_atoms))
        keep = whole and keeps_factors(2 * len(kvectors) * self.n_atoms * np.dtype(config.dtype).itemsize)
        parts = []
        for start, stop, k, w in k_chunks(kvectors, weights, len(atoms)):
            c1, c2, s1, s2 = phase_derivatives(positions, charges, k, config.dtype)
            m = stop - start
            scalars = (2.0 * w[:m] * c[start:stop])[:, None] * c2[:m] + (2.0 * w[:m] * s[start:stop])[:, None] * s2[:m]
            out += scalars.T @ outer_kk(k[:m]).reshape(m, 9)
            if keep:
                parts.append((w[:m], k[:m], c1[:m], s1[:m]))
        self._factors = (config, parts) if keep else (None, None)
        return out.reshape(-1, 3, 3)

    def jacobian_part(self, config, atoms):
        """The low-rank part of the force Jacobian on atoms (n,) (global indices), as a
        :class:`mdjac.long_range_jacobian.ReciprocalJacobian`."""
        atoms = np.asarray(atoms, dtype=np.int64)
        factors = None
        if self._factors[0] is config and np.array_equal(atoms, np.arange(self.n_atoms)):
            factors = self._factors[1]           # c', s' of every atom, from hessian_diagonal's AD
        self._factors = (None, None)             # the Jacobian part keeps them, not the term
        return ReciprocalJacobian(config.positions[atoms], self.charges[atoms], self.kmax, self.alpha, config.box,
                                  self.coulomb_constant, config.dtype, factors=factors)

    def energy_function(self, config):
        """(energy, args): ``energy(X, *args)`` maps copies X (C, N, 3) to (C,) reciprocal energies (dense checks)."""
        kvectors, weights = self.kvectors_and_weights(config.box)
        dtype = config.dtype
        return reciprocal_energy, (self.charges.astype(dtype), kvectors.astype(dtype), weights.astype(dtype))


# ----------------------------------------------------------------------------- the whole sum as terms
def ewald_terms(charges, cutoff, box, exclusions=None, exceptions=None, tolerance=5e-4, alpha=None, kmax=None,
                coulomb_constant=OPENMM_COULOMB_CONSTANT):
    """The terms of an Ewald sum of point charges, as OpenMM's NonbondedForce.Ewald computes it.

    charges: (N,) e. cutoff: direct-space cutoff, nm. box: (3,) nm (for the parameter choice; each
    frame's own box is used for the k vectors). exclusions, exceptions: see :func:`direct_space_terms`.
    tolerance, or alpha (nm^-1) and kmax (3,): see :func:`ewald_parameters`.

    Returns the terms of :func:`direct_space_terms` and :class:`EwaldReciprocal`.
    """
    charges = np.asarray(charges, dtype=np.float64).reshape(-1)
    if alpha is None and kmax is None:
        alpha, kmax = ewald_parameters(tolerance, cutoff, box)
    elif alpha is None or kmax is None:
        raise InputError("give both alpha (nm^-1) and kmax, or neither (then the tolerance chooses them)")
    return (direct_space_terms(charges, cutoff, alpha, exclusions, exceptions, coulomb_constant)
            + [EwaldReciprocal(charges, alpha=alpha, kmax=kmax, coulomb_constant=coulomb_constant)])


def direct_space_terms(charges, cutoff, alpha, exclusions=None, exceptions=None, coulomb_constant=OPENMM_COULOMB_CONSTANT):
    """The direct-space terms of an Ewald or PME sum of point charges, as OpenMM's NonbondedForce computes them.

    charges: (N,) e. cutoff: nm. alpha: nm^-1. exclusions: (E, 2) pairs with no direct-space
    interaction. exceptions: None or (pairs (P, 2), charge_products (P,) e^2): pairs whose
    direct-space interaction is c_ij / r (plain Coulomb, no cutoff; scaled 1-4 pairs).

    Returns a list of terms: terms.EwaldDirectCoulomb (within the cutoff, exclusions and
    exception pairs left out), terms.EwaldExclusion (over exclusions and exception pairs) and
    terms.Coulomb (plain, over the exception pairs, if any).
    """
    charges = np.asarray(charges, dtype=np.float64).reshape(-1)
    excluded = np.zeros((0, 2), np.int64) if exclusions is None else np.asarray(exclusions, dtype=np.int64).reshape(-1, 2)
    out = []
    if exceptions is not None:
        pairs, products = exceptions
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        excluded = np.concatenate([excluded, pairs])
        if len(pairs):
            out.append(terms.Coulomb(charges, pairs=pairs, charge_products=products, coulomb_constant=coulomb_constant))
    if len(excluded):
        excluded = pairs_of_keys(np.unique(pair_keys(excluded[:, 0], excluded[:, 1], len(charges))), len(charges))
    direct = terms.EwaldDirectCoulomb(charges, cutoff=cutoff, exclusions=excluded, alpha=alpha,
                                      coulomb_constant=coulomb_constant)
    correction = terms.EwaldExclusion(charges, excluded, alpha, coulomb_constant=coulomb_constant)
    return [direct, correction] + out
