"""Bonded terms: harmonic bonds and angles, periodic (proper and improper) torsions.

Each is a fixed list of instances of relative positions (mdjac.terms.base); the internal
coordinates come from mdjac.terms.geometry. Units: nm, rad, kJ/mol.
"""
import numpy as np
from mindspore import ops

from ..errors import InputError
from .base import FixedTerm
from .checks import ANGLE_MAX, FORCE_CONSTANT_FIX, at_least, index_array, per_instance
from .geometry import bond_angle, dihedral, distance


class HarmonicCoordinate(FixedTerm):
    """E = k/2 (c - c0)^2 of one internal coordinate c of each instance: the base of
    :class:`HarmonicBond` and :class:`HarmonicAngle`.

    A subclass sets ``n_body``, ``coordinate`` (a function of q (..., M, c, 3), mdjac.terms.geometry,
    as a staticmethod) and the words of its checks: ``index_name`` (the instances), ``k_unit``,
    ``reference_name`` and ``reference_unit`` (c0), ``reference_fix`` (the advice on a bad c0) and
    ``reference_highest`` (c0's largest value).
    """
    relative = True
    reference_highest = np.inf

    def __init__(self, index, k, reference):
        name = type(self).__name__
        index = index_array(index, self.n_body, self.index_name)
        m = len(index)
        k = at_least(per_instance(k, m, f"{name} k"), 0.0, f"{name} k ({self.k_unit})", FORCE_CONSTANT_FIX)
        reference = at_least(per_instance(reference, m, f"{name} {self.reference_name}"), 0.0,
                             f"{name} {self.reference_name} ({self.reference_unit})", self.reference_fix,
                             highest=self.reference_highest)
        super().__init__(index, (k, reference))

    def energy(self, q, k, reference):
        return self.harmonic(self.coordinate(q), k, reference)

    @staticmethod
    def harmonic(c, k, reference):
        """k/2 (c - c0)^2 of coordinates c (..., M), in MindSpore ops."""
        d = c - reference
        return 0.5 * k * d * d


class HarmonicBond(HarmonicCoordinate):
    """Harmonic bond, E = k/2 (r - r0)^2.

    Parameters
    ----------
    pairs : (M, 2) int
    k : float or (M,), kJ mol^-1 nm^-2
    r0 : float or (M,), nm
    """
    n_body = 2
    radial = True       # a function of the distance: the radial route (mdjac.strategies.replicate)
    coordinate = staticmethod(distance)
    index_name, k_unit = "bond pairs", "kJ mol^-1 nm^-2"
    reference_name, reference_unit, reference_fix = "r0", "nm", "a bond length is a distance; give it >= 0 in nm"

    def __init__(self, pairs, k, r0):
        super().__init__(pairs, k, r0)

    def radial_energy(self, r, k, r0):
        return self.harmonic(r, k, r0)


class HarmonicAngle(HarmonicCoordinate):
    """Harmonic angle, E = k/2 (theta - theta0)^2, theta the angle i-j-k at atom j (:func:`~.geometry.bond_angle`).

    Parameters
    ----------
    triples : (M, 3) int, (i, j, k)
    k : float or (M,), kJ mol^-1 rad^-2
    theta0 : float or (M,), rad in [0, pi]
    """
    n_body = 3
    coordinate = staticmethod(bond_angle)
    index_name, k_unit = "angle triples", "kJ mol^-1 rad^-2"
    reference_name, reference_unit = "theta0", "rad"
    reference_fix, reference_highest = "an angle i-j-k lies in [0, pi]; give theta0 in radians, not degrees", ANGLE_MAX

    def __init__(self, triples, k, theta0):
        super().__init__(triples, k, theta0)


class PeriodicTorsion(FixedTerm):
    """Periodic (AMBER) torsion, E = k (1 + cos(n phi - phase)), phi the IUPAC dihedral (:func:`~.geometry.dihedral`).

    Parameters
    ----------
    quads : (M, 4) int, (i, j, k, l)
    k : float or (M,), kJ/mol
    n : float or (M,), periodicity (a whole number)
    phase : float or (M,), rad

    A torsion with several periodicities is several instances on the same four atoms.
    """
    n_body = 4
    relative = True

    def __init__(self, quads, k, n, phase):
        name = type(self).__name__
        index = index_array(quads, 4, "torsion quads")
        m = len(index)
        n = at_least(per_instance(n, m, f"{name} periodicity"), 0.0,
                     f"{name} periodicity n", "n counts the minima in a turn; give a whole number >= 0")
        if np.any(np.abs(n - np.round(n)) > 1e-6):
            raise InputError(f"{name} periodicity n holds {n[np.abs(n - np.round(n)) > 1e-6][0]:g}: "
                             "n counts the minima in a turn; give a whole number")
        super().__init__(index, (per_instance(k, m, f"{name} k"), n, per_instance(phase, m, f"{name} phase")))

    def energy(self, q, k, n, phase):
        return k * (1.0 + ops.cos(n * dihedral(q) - phase))


class ImproperTorsion(PeriodicTorsion):
    """Improper torsion in AMBER's periodic form, E = k (1 + cos(n phi - phase)).

    Same maths as :class:`PeriodicTorsion`; the four atoms come in AMBER's improper order, the
    central (trigonal) atom third, e.g. (C_alpha, O, C, N) at a peptide carbonyl.
    """
