"""The MindSPONGE adapter: ``adapt(molecule, forcefield)`` -> the mdjac Potential of exactly that force field.

MindSPONGE (PyPI ``mindsponge-gpu`` 1.0.0rc1, imported lazily: importing mdjac never imports it)
builds a ``ForceField`` from a ``Molecule`` and a parameter set ('AMBER.FF14SB', 'SPCE',
'TIP3P'). Its energy cells and the forms they compute (read from the 1.0.0rc1 source; units nm,
kJ/mol, e, rad):

=======================  ===================================================  =====================
MindSPONGE cell          its energy                                           mdjac term
=======================  ===================================================  =====================
BondEnergy               k/2 (r - r0)^2                                       HarmonicBond(k, r0)
AngleEnergy              k/2 (theta - theta0)^2, theta = acos at atom j       HarmonicAngle(k, th0)
DihedralEnergy           k/2 (1 + cos(n phi - phase)), propers and impropers  PeriodicTorsion /
                         in one list (impropers: central atom third)          ImproperTorsion(k/2)
CoulombEnergy            no cutoff: f qi qj / r over the neighbour list;      Coulomb('plain')
                         cutoff: damped shifted force, alpha = 0.25 nm^-1     Coulomb('dsf', alpha)
                         (PME exists but does not run: refused)
LennardJonesEnergy       4 eps ((s/r)^12 - (s/r)^6), Lorentz-Berthelot,       LennardJones
                         truncated where the neighbour mask says r >= rc;
                         + long-range correction -2/3 pi N^2 <C6> / (rc^3 V)  LongRangeDispersion
                         when periodic (a function of the volume only),       (see below)
                         <C6> the mean of each atom's own 4 eps sigma^6
NonbondPairwiseEnergy    1-4 pairs: r_scale f qi qj / r                       Coulomb(pairs, scale)
                         + 4 eps (r12_scale (s/r)^12 - r6_scale (s/r)^6)      LennardJones(pairs,
                         (ff14SB: 1/1.2 and 1/2, 1/2)                         scale)
=======================  ===================================================  =====================

The neighbour-list terms (Coulomb, Lennard-Jones) skip the ForceField's exclusions: every pair
of atoms that share a bond, an angle, a proper or an improper torsion (so 1-2, 1-3 and 1-4
pairs); the 1-4 pairs come back, scaled, through NonbondPairwiseEnergy, whose pair list is the
torsions' end atoms that are not also 1-2 or 1-3. The adapter reads every parameter from the
built cells (never from the YAML files), so what it returns is the force field MindSPONGE
evaluates. Coulomb's constant differs in the 9th digit (138.935458 here, 138.9354576 there).

The long-range dispersion correction is the one thing adapt does not copy by default. For a
truncated Lennard-Jones the missing energy is (N^2 / 2V) <C6_ij>_pairs (-4 pi / (3 rc^3)) (plus
the r^-12 part), the mixed pair C6_ij averaged over atom pairs, as OpenMM computes it
(mdjac.terms.dispersion_coefficient). MindSPONGE averages each atom's own C6_ii over atoms
instead: with only the oxygens carrying Lennard-Jones (SPC/E, TIP3P) that mean is C6_OO/3 where
the pair mean is C6_OO/9, so its correction is 3.0 times too large (-549 kJ/mol against -183 for
the 1,000-water box). ``adapt(..., dispersion="mindsponge")`` reproduces MindSPONGE's value, for
parity tests with it.
"""
import math

import numpy as np

from .. import terms
from ..errors import InputError
from ..potential import Potential


# ----------------------------------------------------------------------------- reading MindSPONGE objects
def _array(value, dtype=np.float64):
    """A MindSpore Tensor/Parameter (or array-like) as a new numpy array of ``dtype``.

    Always a copy: ``asnumpy()`` of a Parameter can share memory that the next MD step overwrites.
    float32 values asked for in float64 are taken back to their source's decimals: each becomes the
    shortest decimal that rounds to it in float32 (MindSPONGE stores its YAML parameters, written
    with at most 7 significant digits, in float32: 0.8333333 is stored as 0.8333333134651184 and
    read back here as 0.8333333), so float64 computations do not carry float32 round-off.
    """
    if hasattr(value, "asnumpy"):
        value = value.asnumpy()
    a = np.array(value, copy=True)
    if a.dtype == np.float32 and np.dtype(dtype) == np.float64:
        return np.array([float(np.format_float_scientific(v, unique=True)) for v in a.reshape(-1)],
                        dtype=np.float64).reshape(a.shape)
    return a.astype(dtype, copy=False)


def _first_walker(value, dtype=np.float64):
    """Parameters carry a leading walker axis of 1; drop it. (1, ...) -> (...)."""
    a = _array(value, dtype)
    return a[0] if a.ndim and a.shape[0] == 1 else a


def _scalar_or_uniform(value, what):
    """A scale given as a scalar or per pair, as one float; per-pair values must all be equal."""
    v = np.unique(_array(value).reshape(-1))
    if len(v) != 1:
        raise InputError(f"{what} varies between pairs ({v.min()} to {v.max()}): mdjac supports one scale per pair list")
    return float(v[0])


def molecule_positions(molecule):
    """Positions (N, 3) nm float64 and box None or (3,) nm of a MindSPONGE Molecule."""
    x = _first_walker(molecule.coordinate)
    box = None if molecule.pbc_box is None else _first_walker(molecule.pbc_box)
    return x, box


def check_forcefield(molecule, forcefield):
    """Refuse what the adapter cannot represent: PME, unknown cells, several walkers, non-nm units.

    Returns the list of energy cells.
    """
    cells = list(forcefield.energy_cell or [])
    if not cells:
        raise InputError("the MindSPONGE force field has no energy terms: build it with ForceField(molecule, parameters)")
    for cell in cells:
        if getattr(cell, "use_pme", False) or getattr(cell, "pme_coulomb", None) is not None:
            raise InputError("the force field uses PME electrostatics, which MindSPONGE 1.0.0rc1 cannot run: "
                             "build CoulombEnergy with use_pme=False (damped shifted force with a cutoff)")
        if type(cell).__name__ not in _CELL_READERS:
            raise InputError(f"MindSPONGE energy term {type(cell).__name__} is not supported by the adapter: "
                             f"supported are {', '.join(sorted(_CELL_READERS))}")
    walkers = _array(molecule.coordinate).shape[0]
    if walkers != 1:
        raise InputError(f"the molecule has {walkers} walkers: adapt a single-walker system (one configuration)")
    if molecule.units.length_unit_name != "nm" or forcefield.units.length_unit_name != "nm" \
            or forcefield.units.energy_unit_name != "kJ mol-1":
        raise InputError("the MindSPONGE system does not use nm and kJ/mol: set_global_units('nm', 'kj/mol') before building it")
    if not np.allclose(_array(forcefield.output_unit_scale), 1.0) or not np.allclose(_array(forcefield.energy_scale), 1.0):
        raise InputError("the force field rescales its energy terms (energy_scale or unit scale != 1): "
                         "adapt an unscaled force field in kJ/mol")
    return cells


def forcefield_cutoff(forcefield, box):
    """The cutoff (nm) the force field's cells were set to, or None; periodic systems need one."""
    cutoffs = {float(_array(c.cutoff)) for c in forcefield.energy_cell if getattr(c, "cutoff", None) is not None
               and type(c).__name__ in ("CoulombEnergy", "LennardJonesEnergy")}
    if len(cutoffs) > 1:
        raise InputError(f"the force field's cells have different cutoffs {sorted(cutoffs)}: call forcefield.set_cutoff(rc)")
    cutoff = cutoffs.pop() if cutoffs else None
    if cutoff is None and box is not None:
        raise InputError("the system is periodic but the force field has no cutoff: call forcefield.set_cutoff(rc) "
                         "(or run it in a SimulationCell with a cutoff) before adapting it")
    return cutoff


def exclusion_pairs(forcefield, n_atoms):
    """(E, 2) int64 pairs i < j that the force field excludes from its neighbour list.

    MindSPONGE stores them per atom, (1, N, Ex) padded with N.
    """
    ex = forcefield.exclude_index
    if ex is None:
        return np.zeros((0, 2), np.int64)
    ex = _first_walker(ex, np.int64)
    i = np.repeat(np.arange(n_atoms), ex.shape[1])
    j = ex.reshape(-1)
    keep = (j >= 0) & (j < n_atoms) & (i != j)
    lo, hi = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    if not len(lo):
        return np.zeros((0, 2), np.int64)
    return np.unique(np.stack([lo, hi], axis=1), axis=0)


def is_proper(quads, bonds):
    """(M,) bool: quad (i, j, k, l) is a proper torsion, i.e. i-j, j-k and k-l are all bonds.

    quads: (M, 4) int; bonds: (B, 2) int. Impropers (central atom third) fail the test.
    """
    bonded = {(int(a), int(b)) for a, b in bonds} | {(int(b), int(a)) for a, b in bonds}
    return np.array([(i, j) in bonded and (j, k) in bonded and (k, l) in bonded for i, j, k, l in np.asarray(quads)],
                    dtype=bool)


# ----------------------------------------------------------------------------- one reader per MindSPONGE cell
def _bond_terms(cell, ctx):
    ctx["bonds"] = _first_walker(cell.index, np.int64)
    return [terms.HarmonicBond(ctx["bonds"], _first_walker(cell.force_constant), _first_walker(cell.bond_length))]


def _angle_terms(cell, ctx):
    return [terms.HarmonicAngle(_first_walker(cell.index, np.int64), _first_walker(cell.force_constant),
                                _first_walker(cell.bond_angle))]


def _dihedral_terms(cell, ctx):
    """MindSPONGE's k/2 (1 + cos(n phi - phase)) is mdjac's k (1 + cos(...)) with k halved."""
    quads = _first_walker(cell.index, np.int64)
    k = 0.5 * _first_walker(cell.force_constant)
    n = _first_walker(cell.periodicity)
    phase = _first_walker(cell.dihedral_phase)
    proper = is_proper(quads, ctx.get("bonds", np.zeros((0, 2), np.int64)))
    out = []
    for cls, keep in ((terms.PeriodicTorsion, proper), (terms.ImproperTorsion, ~proper)):
        if keep.any():
            out.append(cls(quads[keep], k[keep], n[keep], phase[keep]))
    return out


def _coulomb_terms(cell, ctx):
    charges = _first_walker(cell.atom_charge)
    if ctx["cutoff"] is None:
        return [terms.Coulomb(charges, exclusions=ctx["exclusions"])]
    alpha = float(_array(cell.dsf_coulomb.alpha))
    return [terms.Coulomb(charges, cutoff=ctx["cutoff"], exclusions=ctx["exclusions"], method="dsf", alpha=alpha)]


def lennard_jones_types(sigma, epsilon):
    """Per-atom (sigma, epsilon) (N,) as type tables: (sigma_t (T,), epsilon_t (T,), types (N,))."""
    table, types = np.unique(np.stack([sigma, epsilon], axis=1), axis=0, return_inverse=True)
    return table[:, 0], table[:, 1], types.reshape(-1).astype(np.int64)


def _lj_terms(cell, ctx):
    sigma, epsilon = _first_walker(cell.sigma), _first_walker(cell.epsilon)
    ctx["lj"] = lennard_jones_types(sigma, epsilon)
    out = [terms.LennardJones(*ctx["lj"], cutoff=ctx["cutoff"], exclusions=ctx["exclusions"])]
    if ctx["cutoff"] is not None and ctx["box"] is not None and cell.mean_c6 is not None:
        if ctx["dispersion"] == "mindsponge":
            coefficient = float(_array(cell.disp_corr)) * float(_array(cell.mean_c6).reshape(-1)[0])
        else:
            coefficient = terms.dispersion_coefficient(sigma, epsilon, ctx["cutoff"])
        out.append(terms.LongRangeDispersion(coefficient, len(sigma)))
    return out


def _pair_terms(cell, ctx):
    """Scaled 1-4 pairs. Their sigma_ij, eps_ij and qi qj must be the per-atom ones combined."""
    pairs = _first_walker(cell.index, np.int64)
    r_scale = _scalar_or_uniform(cell.r_scale, "the 1-4 Coulomb scale")
    r6, r12 = _scalar_or_uniform(cell.r6_scale, "the 1-4 r^-6 scale"), _scalar_or_uniform(cell.r12_scale, "the 1-4 r^-12 scale")
    if not math.isclose(r6, r12):
        raise InputError(f"the 1-4 pairs scale r^-6 by {r6} and r^-12 by {r12}: mdjac's Lennard-Jones scales both alike")
    if "lj" not in ctx:
        raise InputError("the force field has 1-4 pairs but no Lennard-Jones term: the adapter needs both")
    charges = ctx["charges"]
    sigma_t, eps_t, types = ctx["lj"]
    i, j = pairs[:, 0], pairs[:, 1]
    checks = ((_first_walker(cell.qiqj), charges[i] * charges[j], "qi qj"),
              (_first_walker(cell.sigma_ij), 0.5 * (sigma_t[types[i]] + sigma_t[types[j]]), "sigma_ij"),
              (_first_walker(cell.epsilon_ij), np.sqrt(eps_t[types[i]] * eps_t[types[j]]), "epsilon_ij"))
    for found, combined, what in checks:
        if not np.allclose(found, combined, rtol=1e-5, atol=1e-7):
            raise InputError(f"the 1-4 pairs' {what} are not the per-atom parameters combined: the adapter cannot represent them")
    return [terms.Coulomb(charges, pairs=pairs, scale=r_scale), terms.LennardJones(sigma_t, eps_t, types, pairs=pairs, scale=r6)]


#: MindSPONGE cell class name -> reader (cell, context) -> list of mdjac terms. Order matters:
#: bonds before dihedrals (proper/improper split), Lennard-Jones before the 1-4 pairs (types).
_CELL_READERS = {
    "BondEnergy": _bond_terms,
    "AngleEnergy": _angle_terms,
    "DihedralEnergy": _dihedral_terms,
    "CoulombEnergy": _coulomb_terms,
    "LennardJonesEnergy": _lj_terms,
    "NonbondPairwiseEnergy": _pair_terms,
}
_ORDER = list(_CELL_READERS)


DISPERSION = ("pairs", "mindsponge")


def adapt(molecule, forcefield, dispersion="pairs", box=None):
    """The mdjac Potential equal to a MindSPONGE Molecule with its ForceField.

    molecule: mindsponge Molecule (one walker, nm); forcefield: mindsponge ForceField built on it
    (periodic systems: with its cutoff set, ``forcefield.set_cutoff(rc)`` or by a SimulationCell).
    dispersion: the long-range dispersion correction of a periodic system: "pairs" (default) the
    mixed pair C6 averaged over atom pairs, as OpenMM computes it (mdjac.terms.dispersion_coefficient);
    "mindsponge" MindSPONGE's own value, which averages each atom's own C6 (for parity with it:
    3.0 times too large for the SPC/E water box, whose hydrogens have no Lennard-Jones).
    box: (3,) nm, the box in float64 from its source (the catalogue's coordinates file); default the
    molecule's, which MindSPONGE keeps in float32 (3.1060941219 for the water box's 3.1060940222).
    Returns :class:`mdjac.Potential` with that box. Raises InputError for PME, unknown
    energy cells, per-pair 1-4 scales, or a periodic system without a cutoff.
    """
    if dispersion not in DISPERSION:
        raise InputError(f"unknown dispersion correction {dispersion!r}: use one of {', '.join(DISPERSION)}")
    cells = check_forcefield(molecule, forcefield)
    x, molecule_box = molecule_positions(molecule)
    if box is None or molecule_box is None:
        box = molecule_box
    else:
        box = np.asarray(box, dtype=np.float64).reshape(3)
        if not np.allclose(box, molecule_box, rtol=1e-6, atol=0):
            raise InputError(f"the box {box.tolist()} nm is not the molecule's {molecule_box.tolist()}: give the same box")
    n = len(x)
    ctx = {"box": box, "cutoff": forcefield_cutoff(forcefield, box), "exclusions": exclusion_pairs(forcefield, n),
           "dispersion": dispersion,
           "charges": None if molecule.atom_charge is None else _first_walker(molecule.atom_charge)}
    if ctx["charges"] is None:
        ctx["charges"] = np.zeros(n)
    out = []
    for cell in sorted(cells, key=lambda c: _ORDER.index(type(c).__name__)):
        out += _CELL_READERS[type(cell).__name__](cell, ctx)
    return Potential(out, box=box, n_atoms=n)
