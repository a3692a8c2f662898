"""The "replicate" strategy: per-term replication, and the radial route of pair terms.

Every group of terms is differentiated on its own instances (mdjac.kernel.term_hessians: 3c masked
grads per chunk, independent of the number of atoms and of the cutoff), and its blocks are taken
back to atoms by the chain matrix (mdjac.strategies.coordinates).

The radial route. A radial pair term (Lennard-Jones, Coulomb: an energy phi(r) of the distance
r = |d| alone, d = x_j - x_i) needs less: AD gives phi'(r) and phi''(r) (one compiled grad-of-grad
over all pairs, mdjac.kernel.elementwise_derivatives), and the chain rule through r gives, with
u = d / r,

    dE/dx_j = -dE/dx_i = phi' u,        h = d2E/dd2 = phi'' u u^T + (phi'/r)(I - u u^T),
    H_ii = H_jj = h,   H_ij = H_ji = -h,

bookkeeping like the chain matrix (every derivative of the energy still comes from AD), done in
loops compiled by numba (mdjac.assembly). The pairs come from the neighbour list sorted row-major
(i < j); AD runs once per pair; each pair's h is written straight into its two places in the
row-major pattern, (i, j) and (j, i) (h is even in d, so J_ji = J_ij = h); the diagonal block is
minus the sum of its row's off-diagonal blocks (translation invariance). Nothing is sorted or
permuted after the neighbour search. The radial group with the most pairs sets the pattern; the
other groups' off-diagonal blocks (bonds, angles, torsions, scaled 1-4 pairs) are added into it,
their diagonal blocks by bincount. ``Potential.radial = False`` sends pair terms through the general
replication instead (the tests compare the two).

Long-range terms (mdjac.terms.base.LongRangeTerm) add, through their protocol, their Hessian's
block diagonal to the diagonal blocks and their Jacobian part beside the blocks.
"""
import numpy as np

from .. import assembly, kernel
from ..errors import InputError
from ..jacobian import ForceJacobian, add_symmetric_blocks, upper_blocks
from ..neighbours import is_canonical
from ..chunks import RADIAL_CHUNK, padded_chunks
from .coordinates import chain_matrix, local_coordinates, pair_geometry


def radial_derivatives(group, r, params):
    """phi'(r) and phi''(r) (M,) of a radial group's pair energies at distances r (M,) nm, by AD.

    params: tuple of (M,) arrays (the group's pair parameters).
    """
    dphi, d2phi = np.empty_like(r), np.empty_like(r)
    for start, stop, r_chunk, p_chunk, _ in padded_chunks(r, params, RADIAL_CHUNK):
        d1, d2 = kernel.elementwise_derivatives(group.radial_energy, r_chunk, p_chunk)
        dphi[start:stop], d2phi[start:stop] = d1[: stop - start], d2[: stop - start]
    return dphi, d2phi


def radial_hessian_blocks(group, d, r, params):
    """Per pair, h (M, 3, 3) = d2E/dd2 (module docstring), in d's dtype.

    d: (M, 3) displacements x_j - x_i (nm) and r (M,) their lengths (:func:`pair_geometry`); params:
    tuple of (M,) arrays.
    """
    dphi, d2phi = radial_derivatives(group, r, params)
    b = dphi / r                      # phi'/r
    u = d / r[:, None]
    au = (d2phi - b)[:, None] * u     # (phi'' - phi'/r) u
    h = au[:, :, None] * u[:, None, :]
    for a in range(3):
        h[:, a, a] += b
    return h


def canonical_pairs(index):
    """Pairs (P, 2) int64 as i < j, sorted row-major; ``index`` itself when it already is (neighbour lists)."""
    pairs = np.ascontiguousarray(index, dtype=np.int64)
    if is_canonical(pairs):
        return pairs
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)
    order = np.lexsort((hi, lo))
    pairs = np.stack([lo[order], hi[order]], axis=1)
    if not is_canonical(pairs):
        raise InputError("a pair term's pair list names one atom pair twice, or an atom paired with itself: give each pair once")
    return pairs


def radial_rows(n, group, index, config):
    """The Jacobian blocks of a radial pair group, straight in row-major order (module docstring).

    Parameters
    ----------
    n : int, atoms
    group : mdjac.potential.TermGroup of radial terms
    index : (M, 2) int, the group's pairs
    config : mdjac.potential.Configuration

    Returns
    -------
    rows, cols : (K,) int64, the row-major pattern with every diagonal block
    blocks : (K, 3, 3) in the compute dtype, J_ij = J_ji = h(d_ij), zero diagonal blocks
    rowsum : (N, 9) float64, each row's sum of off-diagonal blocks (minus the group's diagonal block)
    """
    pairs = canonical_pairs(index)
    d, r = pair_geometry(config, pairs)
    params = tuple(np.asarray(p, dtype=config.dtype) for p in group.pair_params(pairs[:, 0], pairs[:, 1]))
    dphi, d2phi = radial_derivatives(group, r, params)
    indptr = assembly.symmetric_row_pointers(n, pairs)
    k = int(indptr[-1])
    rows, cols = np.empty(k, dtype=np.int64), np.empty(k, dtype=np.int64)
    blocks, rowsum = np.empty((k, 3, 3), dtype=config.dtype), np.zeros((n, 9))
    assembly.radial_jacobian_rows(pairs, d, r, dphi, d2phi, indptr, rows, cols, blocks, rowsum)
    return rows, cols, blocks, rowsum


def _add_diagonal(hdiag, atoms, blocks):
    """hdiag (9, N) += each block of ``blocks`` (M, 3, 3) at its atom ``atoms`` (M,) int."""
    flat = blocks.reshape(-1, 9)
    for e in range(9):
        hdiag[e] += np.bincount(atoms, weights=flat[:, e], minlength=hdiag.shape[1])


def _instance_hessians(group, index, config, params):
    """(M, k, k, 3, 3) Hessian blocks d2E/dx_p dx_s of a group's instances index (M, k) (chain matrix)."""
    q = local_coordinates(group, index, config.positions, config.box).astype(config.dtype)
    A = chain_matrix(group)
    k = group.n_body
    hx = np.empty((len(index), k, k, 3, 3), dtype=config.dtype)
    for start, stop, q_chunk, p_chunk, _ in padded_chunks(q, params):
        hq = kernel.term_hessians(group.energy, q_chunk, p_chunk)[: stop - start]
        hx[start:stop] = np.einsum("ap,maibj,bs->mpsij", A, hq, A, optimize=True)
    return hx


def replicated_jacobian(potential, config, selected):
    """The force Jacobian by per-term replication, over all N atoms (a :class:`ForceJacobian`).

    Parameters
    ----------
    potential : mdjac.Potential
    config : mdjac.potential.Configuration
    selected : (N,) bool or None, only the instances touching a selected atom are evaluated (the
        caller cuts the selected rows and columns out)
    """
    n = potential.n_atoms
    found = list(potential.instance_groups(config, selected, coordinates=False))
    radial = [f for f in found if f[0].radial and potential.radial]
    base = max(radial, key=lambda f: len(f[1]), default=None)
    hdiag = np.zeros((9, n))        # Hessian diagonal of the groups other than the base
    extras = []                     # (rows, cols, Hessian blocks), each atom pair once
    for group, index, _, params in found:
        if base is not None and group is base[0] and index is base[1]:
            continue
        if group.radial and potential.radial:
            h = radial_hessian_blocks(group, *pair_geometry(config, np.ascontiguousarray(index, dtype=np.int64)), params)
            for p in range(2):
                _add_diagonal(hdiag, index[:, p], h)
            extras.append((index[:, 0], index[:, 1], np.negative(h, out=h)))
            continue
        hx = _instance_hessians(group, index, config, params)
        for p in range(group.n_body):
            _add_diagonal(hdiag, index[:, p], hx[:, p, p])
            for s in range(p + 1, group.n_body):
                extras.append((index[:, p], index[:, s], hx[:, p, s]))
    if base is None:
        rows = cols = np.arange(n, dtype=np.int64)
        blocks = np.zeros((n, 3, 3), dtype=config.dtype)
        rowsum = np.zeros((n, 9))
    else:
        rows, cols, blocks, rowsum = radial_rows(n, base[0], base[1], config)
    diagonal = np.flatnonzero(rows == cols)          # one per atom, in atom order
    blocks.reshape(-1, 9)[diagonal] = -(rowsum + hdiag.T)
    long_range = None
    for term in potential.long_range_terms:     # one at most (Potential): its part beside the blocks
        kept = np.arange(n) if selected is None else np.flatnonzero(selected)
        blocks[diagonal[kept]] -= term.hessian_diagonal(config, kept).astype(blocks.dtype)   # J = -H
        long_range = term.jacobian_part(config, np.arange(n))   # data only: select() slices it
    if extras:                                  # after the diagonal's sums: its positions are known only before
        keys, upper = upper_blocks(n, *(np.concatenate([x[a] for x in extras]) for a in range(3)))
        rows, cols, blocks = add_symmetric_blocks(n, rows, cols, blocks, keys, -upper)
    return ForceJacobian(n, rows, cols, blocks, long_range=long_range)
