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


class HarmonicBond(FixedTerm):
    """Harmonic bond, E = k/2 (r - r0)^2.

    Parameters
    ----------
    pairs : (M, 2) int
    k : float or (M,), kJ mol^-1 nm^-2
    r0 : float or (M,), nm
    """
    n_body = 2
    relative = True

    def __init__(self, pairs, k, r0):
        index = index_array(pairs, 2, "bond pairs")
        m = len(index)
        k = at_least(per_instance(k, m, "HarmonicBond k"), 0.0, "HarmonicBond k (kJ mol^-1 nm^-2)", FORCE_CONSTANT_FIX)
        r0 = at_least(per_instance(r0, m, "HarmonicBond r0"), 0.0, "HarmonicBond r0 (nm)",
                      "a bond length is a distance; give it >= 0 in nm")
        super().__init__(index, (k, r0))

    def energy(self, q, k, r0):
        dr = distance(q) - r0
        return 0.5 * k * dr * dr


class HarmonicAngle(FixedTerm):
    """Harmonic angle, E = k/2 (theta - theta0)^2, theta the angle i-j-k at atom j (:func:`~.geometry.bond_angle`).

    Parameters
    ----------
    triples : (M, 3) int, (i, j, k)
    k : float or (M,), kJ mol^-1 rad^-2
    theta0 : float or (M,), rad in [0, pi]
    """
    n_body = 3
    relative = True

    def __init__(self, triples, k, theta0):
        index = index_array(triples, 3, "angle triples")
        m = len(index)
        k = at_least(per_instance(k, m, "HarmonicAngle k"), 0.0, "HarmonicAngle k (kJ mol^-1 rad^-2)", FORCE_CONSTANT_FIX)
        theta0 = at_least(per_instance(theta0, m, "HarmonicAngle theta0"), 0.0, "HarmonicAngle theta0 (rad)",
                          "an angle i-j-k lies in [0, pi]; give theta0 in radians, not degrees", highest=ANGLE_MAX)
        super().__init__(index, (k, theta0))

    def energy(self, q, k, theta0):
        d = bond_angle(q) - theta0
        return 0.5 * k * d * d


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
