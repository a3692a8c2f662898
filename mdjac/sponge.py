"""MindSPONGE integration: the adapter, the black-box path, and the MD callback.

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
                         when periodic (a function of the volume only)
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

Two independent Jacobian paths:

* :func:`adapt` -> :class:`mdjac.Potential` of mdjac terms, differentiated term by term;
* :func:`sponge_force_jacobian`: MindSPONGE's own ``ForceField`` cell as an opaque energy of all
  positions (:func:`sponge_energy_function`), through the kernel's colouring strategy. The cell
  is called on stacked copies of the positions (its walker axis), with a complete neighbour list
  built here (its own default list silently drops pairs; GridNeighbours crashes).

Defect worked around: ``mindspore.numpy.cross``, which MindSPONGE's torsion (``AtomTorsions``)
uses, has no second derivative. While the black-box path compiles, the ``msnp`` name inside
``mindsponge.colvar.atoms`` is pointed at a copy of ``mindspore.numpy`` whose ``cross`` is the
same product written by slicing (:func:`differentiable_cross`, with mdjac.terms.cross); the torsion's maths are
MindSPONGE's own, only the primitive differs. Second derivatives run only compiled.

:class:`ForceJacobianCallback` computes, in ``Sponge.run``, the Jacobian of every k-th step
through the adapted potential (compiled once: the kernel caches its compiled functions and pads
instance counts to powers of two) and hands each frame to a writer.
"""
import contextlib
import math
import os
import time as _time

import numpy as np
from mindspore import ops

from . import kernel, terms
from .errors import InputError
from .jacobian import ForceJacobian, assemble_blocks
from .neighbours import neighbour_pairs
from .potential import Potential
from .space import check_box, minimum_image

#: Largest copies x (atoms + neighbour entries) evaluated at once by the black-box path; above it
#: the copies of the colouring go one at a time through the same compiled function (memory).
BATCH_LIMIT = 2_000_000
#: Extra reach (nm) of the black-box neighbour list beyond the cutoff; pairs are masked at the cutoff.
SKIN = 0.1


# ----------------------------------------------------------------------------- reading MindSPONGE objects
def _array(value, dtype=np.float64):
    """A MindSpore Tensor/Parameter (or array-like) as a new numpy array of ``dtype``.

    Always a copy: ``asnumpy()`` of a Parameter can share memory that the next MD step overwrites.
    """
    if hasattr(value, "asnumpy"):
        value = value.asnumpy()
    return np.array(value, dtype=dtype, copy=True)


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
        out.append(terms.LongRangeDispersion(float(_array(cell.disp_corr)) * float(_array(cell.mean_c6).reshape(-1)[0]),
                                       len(sigma)))
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


def adapt(molecule, forcefield):
    """The mdjac Potential equal to a MindSPONGE Molecule with its ForceField.

    molecule: mindsponge Molecule (one walker, nm); forcefield: mindsponge ForceField built on it
    (periodic systems: with its cutoff set, ``forcefield.set_cutoff(rc)`` or by a SimulationCell).
    Returns :class:`mdjac.Potential` with the molecule's box. Raises InputError for PME, unknown
    energy cells, per-pair 1-4 scales, or a periodic system without a cutoff.
    """
    cells = check_forcefield(molecule, forcefield)
    x, box = molecule_positions(molecule)
    n = len(x)
    ctx = {"box": box, "cutoff": forcefield_cutoff(forcefield, box), "exclusions": exclusion_pairs(forcefield, n),
           "charges": None if molecule.atom_charge is None else _first_walker(molecule.atom_charge)}
    if ctx["charges"] is None:
        ctx["charges"] = np.zeros(n)
    out = []
    for cell in sorted(cells, key=lambda c: _ORDER.index(type(c).__name__)):
        out += _CELL_READERS[type(cell).__name__](cell, ctx)
    return Potential(out, box=box, n_atoms=n)


# ----------------------------------------------------------------------------- MindSPONGE's own cell as a black box
_PATCHED_NUMPY = "mdjac._mindspore_numpy_with_differentiable_cross"


def _patched_numpy():
    """A copy of ``mindspore.numpy`` with :func:`mdjac.terms.cross` (written by slicing) as ``cross``, registered in
    ``sys.modules`` (MindSpore's graph parser resolves module globals by module name)."""
    import sys
    import types
    import mindspore.numpy as msnp

    if _PATCHED_NUMPY not in sys.modules:
        patched = types.ModuleType(_PATCHED_NUMPY)
        patched.__dict__.update({k: v for k, v in msnp.__dict__.items() if not k.startswith("__")})
        patched.cross = terms.cross
        sys.modules[_PATCHED_NUMPY] = patched
    return sys.modules[_PATCHED_NUMPY]


@contextlib.contextmanager
def differentiable_cross():
    """Within the block, MindSPONGE's colvar modules use a cross product that has a second derivative.

    ``mindspore.numpy.cross`` has none; the modules' ``msnp`` global is swapped for a copy of
    ``mindspore.numpy`` whose ``cross`` is :func:`mdjac.terms.cross`, and restored on exit. Compile
    (first call) the functions that need it inside the block.
    """
    import mindspore.numpy as msnp
    from mindsponge.colvar import atoms, bonded
    from mindsponge.function import functions

    patched = _patched_numpy()
    modules = [m for m in (atoms, bonded, functions) if getattr(m, "msnp", None) is msnp]
    for m in modules:
        m.msnp = patched
    try:
        yield
    finally:
        for m in modules:
            m.msnp = msnp


def padded_neighbours(n_atoms, pairs):
    """Per-atom neighbour table from pairs: index (N, K) int32 and mask (N, K) bool.

    pairs: (P, 2), each listed once; both directions go in. Padding entries point at the atom
    itself and are masked. K = the largest neighbour count (at least 1).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    counts = np.bincount(src, minlength=n_atoms)
    k = max(1, int(counts.max()) if len(counts) else 1)
    slot = np.arange(len(src)) - np.repeat(np.cumsum(counts) - counts, counts)
    index = np.repeat(np.arange(n_atoms)[:, None], k, axis=1)
    mask = np.zeros((n_atoms, k), dtype=bool)
    index[src, slot] = dst
    mask[src, slot] = True
    return index.astype(np.int32), mask


def nonbonded_candidates(positions, box, cutoff, exclusions, skin=SKIN):
    """(P, 2) pairs i < j for MindSPONGE's neighbour list: all pairs (no cutoff) or those within
    cutoff + skin, exclusions removed. The cell itself masks r >= cutoff."""
    n = len(positions)
    if cutoff is None:
        i, j = np.triu_indices(n, k=1)
        pairs = np.stack([i, j], axis=1).astype(np.int64)
    else:
        reach = cutoff + skin if box is None else min(cutoff + skin, 0.5 * float(np.min(box)))
        pairs = neighbour_pairs(positions, reach, box)
    if len(exclusions):
        keys = np.asarray(exclusions)[:, 0] * n + np.asarray(exclusions)[:, 1]
        pairs = pairs[~np.isin(pairs[:, 0] * n + pairs[:, 1], keys)]
    return pairs


def sponge_energy_function(molecule, forcefield, positions=None, box=None, dtype=np.float32):
    """MindSPONGE's ForceField cell as an opaque MindSpore function of positions.

    The neighbour list (complete: every non-excluded pair, or every one within cutoff + SKIN) is
    built from ``positions`` (N, 3) nm (default: the molecule's) and frozen into the function, as
    MindSPONGE freezes its own between updates; inside, pairs at r >= cutoff are masked exactly as
    MindSPONGE's SimulationCell masks them.

    Returns (energy, pairs): ``energy(X)`` maps copies X (C, N, 3) nm to (C,) kJ/mol (graph mode or
    jit only for second derivatives; torsions need :func:`differentiable_cross` while compiling),
    and ``pairs`` (P, 2) every atom pair the energy may couple (for the colouring).
    """
    import mindspore as ms
    from mindsponge.function.functions import gather_vectors, get_vector

    check_forcefield(molecule, forcefield)
    x0, box0 = molecule_positions(molecule)
    x = x0 if positions is None else np.asarray(positions, dtype=np.float64)
    box = box0 if box is None else check_box(box)
    n = len(x)
    cutoff = forcefield_cutoff(forcefield, box)
    exclusions = exclusion_pairs(forcefield, n)
    nb_pairs = nonbonded_candidates(x, box, cutoff, exclusions)
    index, mask = padded_neighbours(n, nb_pairs)
    t_index = ms.Tensor(index[None])
    t_mask = ms.Tensor(mask[None])
    t_box = None if box is None else ms.Tensor(np.asarray(box, dtype=dtype)[None])
    fill = ms.Tensor(np.where(mask, 0.0, 10.0).astype(dtype)[None, :, :, None])   # SimulationCell's mask_fill
    t_cutoff = None if cutoff is None else ms.Tensor(np.asarray(cutoff, dtype=dtype))

    def energy(X):
        neighbour_coord = gather_vectors(X, t_index)
        vector = get_vector(ops.expand_dims(X, -2), neighbour_coord, t_box) + fill
        distance = ops.sqrt((vector * vector).sum(-1))
        nmask = t_mask if t_cutoff is None else ops.logical_and(t_mask, distance < t_cutoff)
        e = forcefield(coordinate=X, neighbour_index=t_index, neighbour_mask=nmask, neighbour_coord=neighbour_coord,
                       neighbour_distance=distance, pbc_box=t_box)
        return e.sum(-1)

    coupled = [nb_pairs]
    for cell in forcefield.energy_cell:
        if hasattr(cell, "index") and type(cell).__name__ != "LennardJonesEnergy":
            idx = _first_walker(cell.index, np.int64)
            for a in range(idx.shape[1]):
                for b in range(a + 1, idx.shape[1]):
                    coupled.append(idx[:, [a, b]])
    coupled = np.sort(np.concatenate(coupled), axis=1)
    coupled = np.unique(coupled[coupled[:, 0] != coupled[:, 1]], axis=0)
    return energy, coupled


def _energy_and_gradient_fn(energy):
    import mindspore as ms

    def value_and_gradient(X):
        return ms.value_and_grad(lambda X: energy(X).sum())(X)
    return ms.jit(value_and_gradient)


def sponge_energy_and_forces(molecule, forcefield, positions=None, box=None, dtype=np.float32):
    """MindSPONGE's own energy (kJ/mol) and forces (N, 3) kJ mol^-1 nm^-1 with a complete neighbour list.

    The reference the adapter is tested against. dtype: the compute precision (MindSPONGE's cells
    hold float32 parameters; float32 is what it integrates with).
    """
    energy, _ = sponge_energy_function(molecule, forcefield, positions, box, dtype)
    x = molecule_positions(molecule)[0] if positions is None else positions
    import mindspore as ms
    with differentiable_cross():
        e, g = _energy_and_gradient_fn(energy)(ms.Tensor(np.asarray(x, dtype=dtype)[None]))
    return float(e.asnumpy()), -g.asnumpy()[0]


def sponge_force_jacobian(molecule, forcefield, positions=None, box=None, dtype=np.float32):
    """The force Jacobian of MindSPONGE's own ForceField cell, by the kernel's colouring strategy.

    Independent of :func:`adapt`: the energy is MindSPONGE's cell (:func:`sponge_energy_function`),
    the copies of the colouring go through its walker axis (all at once, or one by one above
    BATCH_LIMIT). dtype float64 runs MindSPONGE's float32 parameters in float64. Returns a :class:`ForceJacobian` (all atoms).
    """
    energy, pairs = sponge_energy_function(molecule, forcefield, positions, box, dtype)
    x = molecule_positions(molecule)[0] if positions is None else np.asarray(positions)
    n = len(x)
    colours = kernel.distance2_colouring(n, pairs)
    copies = 3 * (int(colours.max()) + 1)
    batched = copies * (n + 2 * len(pairs)) <= BATCH_LIMIT

    def one_copy(x):
        return energy(ops.expand_dims(x, 0))

    with differentiable_cross():
        gradient = kernel.instance_gradient_of(energy if batched else one_copy)
        rows, cols, blocks = kernel.coloured_hessian_blocks(gradient, np.asarray(x, dtype=dtype),
                                                            pairs, colours, batched=batched, cache=False)
    r, c, b = assemble_blocks(n, rows, cols, -blocks, dtype=dtype)
    return ForceJacobian(n, r, c, b)


# ----------------------------------------------------------------------------- during MD
def _callback_base():
    from mindspore.train.callback import Callback
    return Callback


class ForceJacobianCallback(_callback_base()):
    """MindSPONGE callback: the force Jacobian of every ``every``-th step, handed to a writer.

    potential: the mdjac Potential of the simulated system (:func:`adapt`); writer: any object with
    ``append(step, time, positions, box, forces, jacobian)`` (mdjac.h5md.TrajectoryWriter);
    every: steps between frames (step 0 included); atoms: None or the atoms of a partial Jacobian;
    strategy: see :meth:`mdjac.Potential.force_jacobian`; dtype: precision of the Jacobian
    (float32, MindSPONGE's own, or float64).

    In ``Sponge.run`` step s begins with the positions of step s; the step computes their forces
    and then moves the atoms. So the positions and box are taken at ``step_begin`` and the forces
    (MindSPONGE's, of those positions) at ``step_end``, where the Jacobian is computed and the frame
    written. The compiled functions are built on the first frame and reused (``seconds`` holds the
    wall time of every frame, the first one with compilation).
    """

    def __init__(self, potential, writer, every=1, atoms=None, strategy="replicate", dtype=np.float32):
        super().__init__()
        every = int(every)
        if every < 1:
            raise InputError(f"every={every}: give a positive number of steps between Jacobians")
        if potential is None or not hasattr(potential, "force_jacobian"):
            raise InputError("ForceJacobianCallback needs an mdjac Potential: use mdjac.sponge.adapt(molecule, forcefield)")
        if not callable(getattr(writer, "append", None)):
            raise InputError("the writer has no append(step, time, positions, box, forces, jacobian) method")
        self.potential, self.writer, self.every = potential, writer, every
        self.atoms, self.strategy, self.dtype = atoms, strategy, np.dtype(dtype)
        self.steps, self.seconds, self.jacobian_seconds, self.nnz_blocks = [], [], [], []
        self._pending = None

    def step_begin(self, run_context):
        cb = run_context.original_args()
        step = int(cb.cur_step)
        if step % self.every:
            self._pending = None
            return
        positions = _first_walker(cb.coordinate, self.dtype)
        box = None if cb.pbc_box is None else _first_walker(cb.pbc_box, np.float64)
        self._pending = (step, float(cb.cur_time), positions, box)

    def step_end(self, run_context):
        if self._pending is None:
            return
        start = _time.perf_counter()
        step, t, positions, box = self._pending
        self._pending = None
        forces = _first_walker(run_context.original_args().force, self.dtype)
        jac = self.potential.force_jacobian(positions, atoms=self.atoms, strategy=self.strategy, box=box)
        self.jacobian_seconds.append(_time.perf_counter() - start)
        self.writer.append(step, t, positions, box, forces, jac)
        self.steps.append(step)
        self.nnz_blocks.append(jac.nnz_blocks)
        self.seconds.append(_time.perf_counter() - start)


def finite_difference_columns(potential, positions, columns, box=None, h=1e-5):
    """Central differences of the forces, columns of the force Jacobian, in float64.

    columns: flat coordinate indices 3 j + b. Returns (3N, len(columns)):
    [F(x + h e_c) - F(x - h e_c)] / 2h, kJ mol^-1 nm^-2. Truncation error O(h^2 F''').
    """
    x = np.asarray(positions, dtype=np.float64).reshape(-1)
    out = []
    for c in columns:
        step = np.zeros_like(x)
        step[c] = h
        fp = potential.forces((x + step).reshape(-1, 3), box=box)
        fm = potential.forces((x - step).reshape(-1, 3), box=box)
        out.append((fp - fm).reshape(-1) / (2 * h))
    return np.stack(out, axis=1)


def spot_columns(potential, positions, box=None, count=4, margin=1e-3):
    """``count`` flat coordinate indices 3 j + b spread over the atoms and the three components.

    Atoms with a neighbour within ``margin`` (nm) of a cutoff are skipped: there the potential's
    second derivative jumps (the forces too, for truncated Lennard-Jones), and central differences
    of the forces are no reference (a water-box atom with a neighbour 8e-8 nm inside the cutoff
    gave 4e-5 where its neighbours gave 1e-8).
    """
    x = np.asarray(positions, dtype=np.float64)
    n = len(x)
    ok = np.ones(n, dtype=bool)
    for rc in {t.cutoff for t in potential.terms if getattr(t, "cutoff", None) is not None}:
        pairs = neighbour_pairs(x, rc + margin, box)
        d = minimum_image(x[pairs[:, 1]] - x[pairs[:, 0]], box)
        near = pairs[np.abs(np.sqrt((d * d).sum(1)) - rc) < margin]
        ok[near.reshape(-1)] = False
    candidates = np.flatnonzero(ok)
    picks = candidates[np.unique(np.linspace(0, len(candidates) - 1, count).round().astype(np.int64))]
    return [int(3 * a + (k % 3)) for k, a in enumerate(picks)]


def column_relative_error(jacobian, reference, columns):
    """max over columns of max|J[:, c] - ref[:, c]| / max|ref[:, c]| for a ForceJacobian on all atoms."""
    dense = jacobian.to_bsr().tocsc()
    errors = []
    for k, c in enumerate(columns):
        col = dense[:, c].toarray().reshape(-1).astype(np.float64)
        errors.append(np.max(np.abs(col - reference[:, k])) / np.max(np.abs(reference[:, k])))
    return float(max(errors))


def complete_neighbour_list(molecule, forcefield, cutoff, margin=1.5):
    """A MindSPONGE NeighbourList that keeps every pair within its reach (1.2 cutoff).

    MindSPONGE's default sizes its distance list from the mean density and drops pairs where atoms
    are denser; here the capacity is the largest count found at the start times ``margin``.
    """
    from mindsponge.partition import NeighbourList

    x, box = molecule_positions(molecule)
    reach = 1.2 * cutoff if box is None else min(1.2 * cutoff, 0.5 * float(np.min(box)))
    pairs = neighbour_pairs(x, reach, box)
    counts = np.bincount(pairs.reshape(-1), minlength=len(x))
    capacity = min(len(x) - 1, int(np.ceil(margin * counts.max())) + 8)
    return NeighbourList(molecule, cutoff, exclude_index=forcefield.exclude_index, num_neighbours=capacity,
                         use_grids=False)


@contextlib.contextmanager
def graph_mode():
    """MindSpore's graph mode within the block (MindSPONGE compiles its MD step only there: in
    PyNative mode a step of alanine dipeptide took 4 s); the previous mode is restored on exit."""
    import mindspore as ms
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        yield
    finally:
        ms.set_context(mode=previous)


def sponge_md(molecule, forcefield, cutoff=None, temperature=300.0, time_step=1e-3, seed=1):
    """A MindSPONGE ``Sponge`` for NVT MD (velocity Verlet + Langevin) with a complete neighbour list.

    Build and run it inside :func:`graph_mode`.
    """
    from mindsponge import DynamicUpdater, SimulationCell, Sponge
    from mindsponge.control import Langevin, VelocityVerlet
    from mindsponge.function import VelocityGenerator

    nl = None if cutoff is None else complete_neighbour_list(molecule, forcefield, cutoff)
    sim = SimulationCell(molecule, forcefield, cutoff=cutoff, neighbour_list=nl)
    velocity = VelocityGenerator(temperature, seed=seed)(molecule.coordinate.shape, molecule.atom_mass)
    updater = DynamicUpdater(molecule, integrator=VelocityVerlet(molecule), thermostat=Langevin(molecule, temperature),
                             time_step=time_step, velocity=velocity)
    return Sponge(sim, optimizer=updater)


def run_md(system="alanine-dipeptide", steps=100, every=10, output="mdjac-md.h5md", temperature=None, time_step=None,
           dtype=np.float32, strategy="replicate", overwrite=False, writer=None, check=True):
    """The main job: a short MindSPONGE MD run of a catalogue system, Jacobians every ``every`` steps into H5MD.

    system: catalogue name, path or :class:`mdjac.catalogue.System` (engine "mindsponge").
    steps: MD steps; every: steps between Jacobians; output: H5MD path (refused if it exists
    unless ``overwrite``); temperature (K) and time_step (ps) default to the system's 'md' settings.
    writer: a writer object instead of the H5MD file (then ``output`` is ignored). check: the
    finite-difference spot check of the first frame (float64 central differences of the forces).

    Returns a summary dict: frames, steps of the frames, atoms, blocks per frame, seconds per
    Jacobian (mean after the first frame; the first with compilation), seconds per force
    evaluation of the adapted potential, MindSPONGE's wall seconds per MD step (its compilation
    included, the callback's time excluded), the callback's seconds per frame (Jacobian and
    buffering), the seconds per frame of writing what was still buffered at the end, and the spot
    check's columns and max relative error.
    """
    from .catalogue import System, load_system

    sys_ = system if isinstance(system, System) else load_system(system)
    if not sys_.is_mindsponge:
        raise InputError(f"system {sys_.name!r} is not a MindSPONGE system: run_md needs one of engine 'mindsponge'")
    if int(steps) < 1 or int(every) < 1:
        raise InputError(f"steps={steps}, every={every}: both must be positive")
    if writer is None and os.path.exists(output) and not overwrite:
        raise InputError(f"{output} exists: choose another output or pass overwrite=True")
    md = sys_.spec.get("md", {})
    temperature = float(md.get("temperature", 300.0) if temperature is None else temperature)
    time_step = float(md.get("time_step", 1e-3) if time_step is None else time_step)
    with graph_mode():
        return _run_md(sys_, int(steps), int(every), output, temperature, time_step, dtype, strategy, overwrite,
                       writer, check)


def _run_md(sys_, steps, every, output, temperature, time_step, dtype, strategy, overwrite, writer, check):
    molecule, forcefield = sys_.sponge(fresh=True)
    potential = sys_.potential        # = adapt(molecule, forcefield); shared, so compiled once per System
    engine = sponge_md(molecule, forcefield, sys_.cutoff, temperature, time_step)
    own_writer = writer is None
    if own_writer:
        from .h5md import TrajectoryWriter
        writer = TrajectoryWriter(output, potential.n_atoms, names=sys_.names, masses=sys_.masses,
                                  periodic=sys_.box is not None, dtype=dtype, overwrite=overwrite,
                                  metadata={"system": sys_.name, "steps": steps, "every": every})
    callback = ForceJacobianCallback(potential, writer, every=every, strategy=strategy, dtype=dtype)
    start = _time.perf_counter()
    try:
        engine.run(steps, callbacks=[callback])
    finally:
        closing = _time.perf_counter()
        if own_writer:
            writer.close()          # writes the frames still buffered
        done = _time.perf_counter()
    wall = closing - start
    summary = {
        "system": sys_.name, "output": None if not own_writer else str(output), "atoms": potential.n_atoms,
        "steps": steps, "every": every, "frames": len(callback.steps), "frame_steps": list(callback.steps),
        "blocks_per_frame": float(np.mean(callback.nnz_blocks)) if callback.nnz_blocks else 0.0,
        "first_jacobian_seconds": callback.jacobian_seconds[0] if callback.jacobian_seconds else float("nan"),
        "seconds_per_jacobian": float(np.mean(callback.jacobian_seconds[1:] or callback.jacobian_seconds or [np.nan])),
        "callback_seconds_per_frame": float(np.mean(callback.seconds[1:] or callback.seconds or [np.nan])),
        "write_seconds_per_frame": (done - closing) / max(1, len(callback.steps)),
        "seconds_per_md_step": (wall - float(np.sum(callback.seconds))) / steps,
        "seconds_per_force": _seconds_per_force(potential, sys_.positions.astype(dtype)),
    }
    if check and own_writer:
        summary.update(_spot_check(potential, output))
    return summary


def _seconds_per_force(potential, positions, repeats=3):
    """Wall seconds of one energy-and-forces evaluation of the adapted potential (compiled)."""
    potential.energy_and_forces(positions)
    start = _time.perf_counter()
    for _ in range(repeats):
        potential.energy_and_forces(positions)
    return (_time.perf_counter() - start) / repeats


def _spot_check(potential, path, count=4):
    """The first stored frame's Jacobian against float64 central differences of the forces."""
    from .h5md import open_trajectory

    with open_trajectory(path) as traj:
        frame = traj[0]
    x = np.asarray(frame.positions, dtype=np.float64)
    columns = spot_columns(potential, x, frame.box, count)
    reference = finite_difference_columns(potential, x, columns, frame.box)
    return {"fd_columns": columns, "fd_max_relative_error": column_relative_error(frame.jacobian, reference, columns)}
