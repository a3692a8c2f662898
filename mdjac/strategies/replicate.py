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
permuted after the neighbour search. The group of pair terms with the most pairs (the base) sets
the pattern; the other groups' off-diagonal blocks (bonds, angles, torsions, scaled 1-4 pairs: the
radial ones by the same chain rule, the rest by replication) are summed per atom pair and merged
into the base's pairs before the blocks are written (mdjac.assembly.merge_pair_keys), so nothing is
inserted afterwards; their diagonal blocks go in by bincount. Two-atom terms of the distance that
are not pair terms (harmonic bonds) take the radial route too. ``Potential.radial = False`` sends
them all through the general replication instead (the tests compare the two).

Long-range terms (mdjac.terms.base.LongRangeTerm) add, through their protocol, their Hessian's
block diagonal to the diagonal blocks and their Jacobian part beside the blocks.
"""
import numpy as np

from .. import assembly, kernel
from ..errors import InputError
from ..jacobian import ForceJacobian, upper_blocks
from ..long_range_jacobian import PartSum
from ..neighbours import is_canonical
from ..site_jacobian import SiteMappedPart
from ..terms.base import PairTerm
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


def canonical_pairs(index, order=False):
    """Pairs (P, 2) int64 as i < j, sorted row-major; ``index`` itself when it already is (neighbour lists).

    With ``order``, also the permutation (P,) int64 taking ``index``'s rows to them (None when
    ``index`` is returned as it is).
    """
    pairs = np.ascontiguousarray(index, dtype=np.int64)
    if is_canonical(pairs):
        return (pairs, None) if order else pairs
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)
    perm = np.lexsort((hi, lo))
    pairs = np.stack([lo[perm], hi[perm]], axis=1)
    if not is_canonical(pairs):
        raise InputError("a pair term's pair list names one atom pair twice, or an atom paired with itself: give each pair once")
    return (pairs, perm) if order else pairs


def radial_rows(n, group, index, params, config, extra_keys=None, extra_blocks=None):
    """The Jacobian blocks of a radial pair group and of other terms' atom pairs, straight in
    row-major order (module docstring).

    Parameters
    ----------
    n : int, atoms
    group : mdjac.potential.TermGroup of radial terms
    index : (M, 2) int, the group's pairs; params: tuple of its (M,) (or 0-d) parameter arrays
    config : mdjac.potential.Configuration
    extra_keys : None or (E,) int64 sorted unique pair keys i n + j, i < j, of other terms' blocks
    extra_blocks : (E, 3, 3) float64, J_ij of those pairs (J_ji is the transpose)

    Returns
    -------
    rows, cols : (K,) int64, the row-major pattern of both pair lists with every diagonal block
    blocks : (K, 3, 3) in the compute dtype, zero diagonal blocks
    rowsum : (N, 9) float64, each row's sum of the radial group's off-diagonal blocks (minus its
        diagonal block)
    """
    pairs, perm = canonical_pairs(index, order=True)
    if perm is not None:
        params = tuple(p if np.ndim(p) == 0 else p[perm] for p in params)
    d, r = pair_geometry(config, pairs)
    dphi, d2phi = radial_derivatives(group, r, params)
    if extra_keys is None:
        extra_keys, extra_blocks = np.zeros(0, np.int64), np.zeros((0, 3, 3))
    merged, radial, extra = assembly.merge_pair_keys(pairs[:, 0] * n + pairs[:, 1], extra_keys, n)
    indptr = assembly.symmetric_row_pointers(n, merged)
    k = int(indptr[-1])
    rows, cols = np.empty(k, dtype=np.int64), np.empty(k, dtype=np.int64)
    blocks, rowsum = np.empty((k, 3, 3), dtype=config.dtype), np.zeros((n, 9))
    assembly.jacobian_rows(merged, radial, d, r, dphi, d2phi, extra, np.ascontiguousarray(extra_blocks, dtype=np.float64),
                           indptr, rows, cols, blocks, rowsum)
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
    radial = [f for f in found if f[0].radial and potential.radial and all(isinstance(t, PairTerm) for t in f[0].terms)]
    base = max(radial, key=lambda f: len(f[1]), default=None)     # pair terms name each pair once
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
        if potential.radial and getattr(group, "linear_radial", False):    # a pair through linear sites: radial too
            d, c = group.pair_vectors(local_coordinates(group, index, config.positions, config.box), params)
            d = d.astype(config.dtype)
            h = radial_hessian_blocks(group.group, d, np.sqrt(np.einsum("mi,mi->m", d, d)), params[:group.n_params])
            for p in range(group.n_body):              # H_ps = c_p c_s h: the chain rule through d = sum_p c_p x_p
                _add_diagonal(hdiag, index[:, p], c[:, p, None, None] ** 2 * h)
                for s in range(p + 1, group.n_body):
                    extras.append((index[:, p], index[:, s], (c[:, p] * c[:, s])[:, None, None] * h))
            continue
        hx = _instance_hessians(group, index, config, params)
        for p in range(group.n_body):
            _add_diagonal(hdiag, index[:, p], hx[:, p, p])
            for s in range(p + 1, group.n_body):
                extras.append((index[:, p], index[:, s], hx[:, p, s]))
    sites = potential.sites if potential.long_range_terms else None
    for term in potential.long_range_terms if sites is not None else ():   # through the sites: short-range pieces
        extras.append(sites.long_range_hessian(term, config))
    keys = upper = None
    if extras:                                  # every pair once, in the upper triangle, summed
        keys, upper = upper_blocks(n, *(np.concatenate([x[a] for x in extras]) for a in range(3)))
        on = keys // n == keys % n      # an instance naming one atom twice (CMAP's two torsions share three
        if on.any():                    # atoms): its block and its transpose both land on the diagonal
            atoms = keys[on] // n
            _add_diagonal(hdiag, atoms, upper[on] + upper[on].transpose(0, 2, 1))
            keys, upper = keys[~on], upper[~on]
    if base is None:
        base = (None, np.zeros((0, 2), np.int64), None, ())
    rows, cols, blocks, rowsum = radial_rows(n, base[0], base[1], base[3], config, keys,
                                             None if upper is None else np.negative(upper, out=upper))
    diagonal = np.flatnonzero(rows == cols)          # one per atom, in atom order
    blocks.reshape(-1, 9)[diagonal] = -(rowsum + hdiag.T)
    parts = []
    for term in potential.long_range_terms:     # their parts beside the blocks (LJ-PME: two meshes, summed)
        kept = np.arange(n) if selected is None else np.flatnonzero(selected)
        if sites is not None:
            kept = kept[~sites.is_site[kept]]
        blocks[diagonal[kept]] -= term.hessian_diagonal(config, kept).astype(blocks.dtype)   # J = -H
        parts.append(term.jacobian_part(config, np.arange(n)))   # data only: select() slices it
    long_range = None if not parts else parts[0] if len(parts) == 1 else PartSum(parts)
    if long_range is not None and sites is not None:           # over the real atoms: S^T J_all S
        long_range = SiteMappedPart(long_range, sites.chain(config), np.arange(n))
    return ForceJacobian(n, rows, cols, blocks, long_range=long_range)
