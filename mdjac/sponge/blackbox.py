"""MindSPONGE's own ForceField cell as an opaque energy: a second, independent Jacobian path.

:func:`sponge_force_jacobian` differentiates MindSPONGE's ``ForceField`` cell itself, not the
terms :func:`mdjac.sponge.adapt` reads from it: the cell is called on stacked copies of the
positions (its walker axis), with a complete neighbour list built here (its own default list
silently drops pairs; GridNeighbours crashes), through the kernel's colouring strategy. Agreement
of the two paths is the adapter's strongest test.

Defect worked around: ``mindspore.numpy.cross``, which MindSPONGE's torsion (``AtomTorsions``)
uses, has no second derivative. While the black-box path compiles, the ``msnp`` name inside
``mindsponge.colvar.atoms`` is pointed at a copy of ``mindspore.numpy`` whose ``cross`` is the
same product written on components (:func:`differentiable_cross`, with mdjac.terms.cross); the
torsion's maths are MindSPONGE's own, only the primitive differs. Second derivatives run only
compiled.
"""
import contextlib

import numpy as np
from mindspore import ops

from .. import kernel, terms
from ..jacobian import ForceJacobian, assemble_blocks
from ..neighbours import neighbour_pairs, pair_keys
from ..space import check_box
from .adapter import _first_walker, check_forcefield, exclusion_pairs, forcefield_cutoff, molecule_positions

#: Largest copies x (atoms + neighbour entries) evaluated at once by the black-box path; above it
#: the copies of the colouring go one at a time through the same compiled function (memory).
BATCH_LIMIT = 2_000_000
#: Extra reach (nm) of the black-box neighbour list beyond the cutoff; pairs are masked at the cutoff.
SKIN = 0.1


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
        exclusions = np.asarray(exclusions)
        pairs = pairs[~np.isin(pair_keys(pairs[:, 0], pairs[:, 1], n), pair_keys(exclusions[:, 0], exclusions[:, 1], n))]
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
