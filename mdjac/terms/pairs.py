"""Radial pair terms: Lennard-Jones, the Coulomb forms, the Ewald exclusion correction, the switch.

Each states ``radial_energy(r, *params)`` of the pair distance r and ``pair_params(i, j)``; the
potential takes the radial route with them (derived once in mdjac.strategies.replicate).
Numbers a graph needs (alpha, the DSF constants) travel as per-pair arrays: a Python float inside a
compiled MindSpore graph is float32. Units: nm, e, kJ/mol.
"""
import math

import numpy as np
from mindspore import ops

from ..errors import InputError, finite_numbers
from .base import PairTerm
from .checks import at_least, per_instance, scalar, table_lookup

#: Coulomb's constant f = 1 / (4 pi eps0), kJ mol^-1 nm e^-2 (the value GROMACS and MindSPONGE use).
COULOMB_CONSTANT = 138.935458


class LennardJones(PairTerm):
    """Lennard-Jones, E = 4 eps ((sigma/r)^12 - (sigma/r)^6), truncated (not shifted) at the cutoff.

    Parameters
    ----------
    sigma, epsilon : (T,) per atom type (nm, kJ/mol), combined by Lorentz-Berthelot
        (sigma_ij = (sigma_i + sigma_j)/2, eps_ij = sqrt(eps_i eps_j)); or (T, T) explicit pair tables.
    types : (N,) int
    cutoff, exclusions, pairs, scale : see :class:`~mdjac.terms.base.PairTerm`.
    """

    def __init__(self, sigma, epsilon, types, cutoff=None, exclusions=None, pairs=None, scale=1.0):
        types = np.asarray(types)
        super().__init__(len(types), cutoff, exclusions, pairs, scale)
        sigma = finite_numbers(sigma, "LennardJones sigma")
        epsilon = finite_numbers(epsilon, "LennardJones epsilon")
        if sigma.shape != epsilon.shape or sigma.ndim not in (1, 2) or (sigma.ndim == 2 and sigma.shape[0] != sigma.shape[1]):
            raise InputError(f"sigma {sigma.shape} and epsilon {epsilon.shape} must both be (T,) per type or (T, T) pair tables")
        at_least(sigma, 0.0, "LennardJones sigma (nm)", "sigma is a distance; it must not be negative, give it in nm")
        at_least(epsilon, 0.0, "LennardJones epsilon (kJ/mol)",
                 "epsilon is a well depth; it must not be negative (0 switches the pair off), give it in kJ/mol")
        if sigma.ndim == 1:
            sigma = 0.5 * (sigma[:, None] + sigma[None, :])
            epsilon = np.sqrt(epsilon[:, None] * epsilon[None, :])
        table_lookup(sigma, types, "Lennard-Jones sigma")  # checks types against the table
        self.types, self.sigma_table, self.epsilon_table = types.astype(np.int64), sigma, epsilon
        self._pair_tables = None

    def pair_params(self, i, j):
        if self._pair_tables is None:   # flat (T * T,) tables, epsilon scaled, made once
            self._pair_tables = (self.sigma_table.ravel(), self.scale * self.epsilon_table.ravel())
        type_pair = self.types[i] * len(self.sigma_table)
        type_pair += self.types[j]
        return tuple(np.take(table, type_pair) for table in self._pair_tables)

    def radial_energy(self, r, sigma, epsilon):
        s2 = sigma * sigma / (r * r)
        s6 = s2 * s2 * s2
        return 4.0 * epsilon * (s6 * s6 - s6)


class ChargePairTerm(PairTerm):
    """Pairs of point charges: E = qq g(r), qq = f scale qi qj (or f scale c_ij given per pair).

    Parameters
    ----------
    charges : (N,), e
    cutoff, exclusions, pairs, scale : see :class:`~mdjac.terms.base.PairTerm`.
    charge_products : None, or with ``pairs`` (P,) e^2 per pair in place of qi qj (OpenMM's exceptions).
    coulomb_constant : f, kJ mol^-1 nm e^-2 (default :data:`COULOMB_CONSTANT`;
        mdjac.longrange.ewald.OPENMM_COULOMB_CONSTANT is OpenMM's).

    Subclasses state ``radial_energy(r, qq, ...)`` and, for more parameters, extend :meth:`pair_params`.
    """

    def __init__(self, charges, cutoff=None, exclusions=None, pairs=None, scale=1.0, charge_products=None,
                 coulomb_constant=COULOMB_CONSTANT):
        name = type(self).__name__
        charges = finite_numbers(charges, f"{name} charges (e)").reshape(-1)
        super().__init__(len(charges), cutoff, exclusions, pairs, scale)
        if charge_products is not None:
            if self.fixed_pairs is None:
                raise InputError("charge_products are per pair: give them with an explicit pairs= list")
            charge_products = per_instance(charge_products, len(self.fixed_pairs), "charge products")
        self.charges, self.charge_products = charges, charge_products
        self.coulomb_constant = scalar(coulomb_constant, f"{name} coulomb_constant (kJ mol^-1 nm e^-2)")

    def pair_params(self, i, j):
        products = self.charges[i] * self.charges[j] if self.charge_products is None else self.charge_products
        return (self.coulomb_constant * self.scale * products,)


def _damping(alpha, name):
    """alpha (nm^-1) checked: one finite number >= 0."""
    return at_least(scalar(alpha, f"{name} alpha"), 0.0, f"{name} alpha (nm^-1)",
                    "alpha is the damping's inverse length; give it >= 0 in nm^-1")


def _needs_cutoff(term):
    if term.cutoff is None:
        raise InputError(f"the {type(term).__name__} needs a cutoff (nm)")


class Coulomb(ChargePairTerm):
    """Coulomb interaction between point charges, E = f qi qj / r (see :class:`ChargePairTerm`).

    ``Coulomb(..., method="dsf", alpha=a)`` builds a :class:`DampedShiftedForceCoulomb` and
    ``method="ewald"`` an :class:`EwaldDirectCoulomb` (the constructor's one choice; each form is
    its own class and energy). ``method="plain"`` (default) is this class; it has no ``alpha``.
    """

    def __new__(cls, charges, cutoff=None, exclusions=None, pairs=None, scale=1.0, method="plain", alpha=0.25,
                charge_products=None, coulomb_constant=COULOMB_CONSTANT):
        if cls is not Coulomb or method == "plain":
            return super().__new__(cls)
        if method not in DAMPED_FORMS:
            raise InputError(f"unknown Coulomb method {method!r}: use 'plain', 'dsf' or 'ewald'")
        return DAMPED_FORMS[method](charges, cutoff, exclusions, pairs, scale, alpha, charge_products, coulomb_constant)

    def __init__(self, charges, cutoff=None, exclusions=None, pairs=None, scale=1.0, method="plain", alpha=0.25,
                 charge_products=None, coulomb_constant=COULOMB_CONSTANT):
        super().__init__(charges, cutoff, exclusions, pairs, scale, charge_products, coulomb_constant)

    def radial_energy(self, r, qq):
        return qq / r


class DampedShiftedForceCoulomb(ChargePairTerm):
    """Damped shifted force Coulomb (Fennell & Gezelter 2006); needs a cutoff rc.

    E = f qi qj [erfc(a r)/r - erfc(a rc)/rc + (erfc(a rc)/rc^2 + 2a/sqrt(pi) exp(-a^2 rc^2)/rc)(r - rc)],
    which with its force goes to zero at rc; alpha (a): nm^-1. Other parameters: :class:`ChargePairTerm`.
    """

    def __init__(self, charges, cutoff=None, exclusions=None, pairs=None, scale=1.0, alpha=0.25, charge_products=None,
                 coulomb_constant=COULOMB_CONSTANT):
        super().__init__(charges, cutoff, exclusions, pairs, scale, charge_products, coulomb_constant)
        _needs_cutoff(self)
        self.alpha = a = _damping(alpha, type(self).__name__)
        rc = self.cutoff
        self._slope = math.erfc(a * rc) / rc ** 2 + 2 * a / math.sqrt(math.pi) * math.exp(-(a * rc) ** 2) / rc
        self._offset = math.erfc(a * rc) / rc + self._slope * rc

    def pair_params(self, i, j):
        (qq,) = super().pair_params(i, j)
        return qq, np.full(len(qq), self.alpha), qq * self._slope, qq * self._offset

    def radial_energy(self, r, qq, alpha, qq_slope, qq_offset):
        """The expanded form qq erfc(alpha r)/r + qq_slope r - qq_offset."""
        return qq * ops.erfc(alpha * r) / r + qq_slope * r - qq_offset


class EwaldDirectCoulomb(ChargePairTerm):
    """The direct-space part of an Ewald sum, E = f qi qj erfc(alpha r)/r within a cutoff (mdjac.longrange.ewald).

    alpha: nm^-1. Other parameters: :class:`ChargePairTerm`.
    """

    def __init__(self, charges, cutoff=None, exclusions=None, pairs=None, scale=1.0, alpha=0.25, charge_products=None,
                 coulomb_constant=COULOMB_CONSTANT):
        super().__init__(charges, cutoff, exclusions, pairs, scale, charge_products, coulomb_constant)
        _needs_cutoff(self)
        self.alpha = _damping(alpha, type(self).__name__)

    def pair_params(self, i, j):
        (qq,) = super().pair_params(i, j)
        return qq, np.full(len(qq), self.alpha)

    def radial_energy(self, r, qq, alpha):
        return qq * ops.erfc(alpha * r) / r


#: The damped forms ``Coulomb(..., method=)`` builds.
DAMPED_FORMS = {"dsf": DampedShiftedForceCoulomb, "ewald": EwaldDirectCoulomb}


class EwaldExclusion(ChargePairTerm):
    """The exclusion correction of an Ewald sum, E = -f qi qj erf(alpha r)/r over fixed pairs.

    The reciprocal sum (mdjac.longrange.ewald.EwaldReciprocal) includes every pair; this removes its
    share for the pairs the direct space leaves out: excluded pairs and scaled 1-4 pairs (with the
    full charges, as OpenMM does). charges: (N,) e; pairs: (P, 2); alpha: nm^-1; coulomb_constant:
    kJ mol^-1 nm e^-2. Minimum image in a box, as for every pair term.
    """

    def __init__(self, charges, pairs, alpha, coulomb_constant=COULOMB_CONSTANT):
        if pairs is None:
            raise InputError("the Ewald exclusion correction needs the excluded pairs (pairs=)")
        super().__init__(charges, pairs=pairs, coulomb_constant=coulomb_constant)
        self.alpha = at_least(scalar(alpha, "EwaldExclusion alpha"), 0.0, "EwaldExclusion alpha (nm^-1)",
                              "alpha is the splitting's inverse length; give it >= 0 in nm^-1")

    def pair_params(self, i, j):
        (qq,) = super().pair_params(i, j)
        return qq, np.full(len(qq), self.alpha)

    def radial_energy(self, r, qq, alpha):
        return -qq * ops.erf(alpha * r) / r


def switching_function(r, switch, cutoff):
    """S(r) in MindSpore ops: 1 below ``switch``, the quintic 1 - 10t^3 + 15t^4 - 6t^5 above it.

    r, switch, cutoff: (..., M) nm (switch < cutoff), t = (r - switch)/(cutoff - switch). The
    polynomial branch is evaluated everywhere and is finite, so no NaN reaches the gradient of
    the unused branch.
    """
    t = (r - switch) / (cutoff - switch)
    smooth = 1.0 + t * t * t * (-10.0 + t * (15.0 - 6.0 * t))
    return ops.select(r > switch, smooth, ops.ones_like(r))


def switching_function_numpy(r, switch, cutoff):
    """Reference S(r) in numpy (same conventions as :func:`switching_function`)."""
    t = np.clip((np.asarray(r) - switch) / (cutoff - switch), 0.0, 1.0)
    return 1.0 + t ** 3 * (-10.0 + t * (15.0 - 6.0 * t))
