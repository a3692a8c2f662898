"""Force-field terms: each states its energy, and nothing else (the protocol: mdjac.terms.base).

Parameters are looked up from tables by atom or atom type (the article's form ``y[index] * f(x)``)
and checked on construction (mdjac.terms.checks). Conventions (units: nm, kJ/mol, e, rad):

==========================  =====================================================================
HarmonicBond                E = k/2 (r - r0)^2                                        (bonded)
HarmonicAngle               E = k/2 (theta - theta0)^2, theta the angle i-j-k at j   (bonded)
PeriodicTorsion             E = k (1 + cos(n phi - phase)), phi the IUPAC dihedral    (bonded)
ImproperTorsion             the same form; AMBER order, the central atom third        (bonded)
LennardJones                E = 4 eps ((sigma/r)^12 - (sigma/r)^6), r < cutoff        (pairs)
Coulomb                     E = f qi qj / r                                           (pairs)
DampedShiftedForceCoulomb   damped shifted force (Fennell & Gezelter 2006)            (pairs)
EwaldDirectCoulomb          f qi qj erfc(alpha r) / r, an Ewald sum's direct space    (pairs)
EwaldExclusion              E = -f qi qj erf(alpha r) / r over excluded pairs         (pairs)
HarmonicRestraint           E = k/2 |x - x_ref|^2, k by atom type                     (external)
ElectricField               E = -q E . x (uniform field)                              (external)
FlatBottomWall              E = k/2 max(0, |x - centre| - radius)^2                   (external)
CMAPTorsion                 E = f(phi, psi), bicubic patches of a periodic map        (cmap)
LongRangeDispersion         E = c / V (box volume V)                                  (corrections)
==========================  =====================================================================

Terms of a given function of one internal coordinate (custom force fields) are in
mdjac.terms.custom; long-range terms (a reciprocal sum) in mdjac.longrange.
"""
from .base import FixedTerm, LongRangeTerm, PairTerm, Term
from .bonded import HarmonicAngle, HarmonicBond, ImproperTorsion, PeriodicTorsion
from .cmap import CMAPTorsion, bicubic_patches
from .corrections import LongRangeDispersion, dispersion_coefficient
from .external import ElectricField, FlatBottomWall, HarmonicRestraint
from .geometry import bond_angle, cross, dihedral, distance
from .pairs import (COULOMB_CONSTANT, ChargePairTerm, Coulomb, DampedShiftedForceCoulomb, EwaldDirectCoulomb, EwaldExclusion,
                    LennardJones, switching_function, switching_function_numpy)

#: The terms a system file may name ({"term": name, ...}: mdjac.catalogue), by name.
BY_NAME = {
    "HarmonicBond": HarmonicBond,
    "HarmonicAngle": HarmonicAngle,
    "PeriodicTorsion": PeriodicTorsion,
    "ImproperTorsion": ImproperTorsion,
    "LennardJones": LennardJones,
    "Coulomb": Coulomb,
    "DampedShiftedForceCoulomb": DampedShiftedForceCoulomb,
    "EwaldDirectCoulomb": EwaldDirectCoulomb,
    "EwaldExclusion": EwaldExclusion,
    "HarmonicRestraint": HarmonicRestraint,
    "ElectricField": ElectricField,
    "FlatBottomWall": FlatBottomWall,
    "CMAPTorsion": CMAPTorsion,
    "LongRangeDispersion": LongRangeDispersion,
}
