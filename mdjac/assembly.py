"""Compiled loops for the radial pair route: displacements in, 3x3 blocks and forces out.

Pair terms whose energy phi(r) depends on the distance alone (Lennard-Jones, Coulomb) get their
derivatives phi'(r), phi''(r) from MindSpore's AD (mdjac.kernel.elementwise_derivatives). What is
left is bookkeeping over the pairs, done here in single passes compiled by numba (no
temporaries, no sort):

* :func:`pair_displacements`: d_p = x_j - x_i (minimum image) and r_p = |d_p| for pairs p = (i, j);
* :func:`radial_pair_forces`: F_i += (phi'/r) d, F_j -= (phi'/r) d;
* :func:`radial_jacobian_rows`: the Jacobian blocks of every pair, J_ij = J_ji = h(d), h = d2E/dd2
  the 3x3 block of the radial route (derived in mdjac.strategies.replicate), written straight into the row-major symmetric pattern (both (i, j) and (j, i), and the diagonal),
  and the sum of each row's off-diagonal blocks (minus the diagonal block, by translation invariance).

Index conventions: ``pairs`` (P, 2) int64 with i < j, sorted row-major (by i, then j), as
mdjac.neighbours returns them. Row r of the pattern holds, in order, the blocks (r, i) of the pairs
(i, r) (ascending i), the diagonal block (r, r), then the blocks (r, j) of the pairs (r, j)
(ascending j): columns ascending, so the pattern is CSR over blocks with sorted indices.
"""
import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def pair_displacements(x, pairs, vectors, d, r):
    """Fill d (P, 3) with x_j - x_i (minimum image, mdjac.space's order c, b, a, along each box
    vector with a positive diagonal; zeros: open) and r (P,) with |d|, for pairs p = (i, j).

    x: (N, 3) float64 nm; pairs: (P, 2) int64; vectors: (3, 3) float64 box vectors (rows, nm,
    reduced lower triangular; diagonal for an orthorhombic box). d (allocated by the caller,
    in the compute dtype) is computed in float64 and rounded once; r is the norm of d as stored,
    in d's dtype, so that d / r is a unit vector in that dtype.
    """
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        e0, e1, e2 = x[j, 0] - x[i, 0], x[j, 1] - x[i, 1], x[j, 2] - x[i, 2]
        if vectors[2, 2] > 0:
            t = np.rint(e2 / vectors[2, 2])
            e0 -= vectors[2, 0] * t
            e1 -= vectors[2, 1] * t
            e2 -= vectors[2, 2] * t
        if vectors[1, 1] > 0:
            t = np.rint(e1 / vectors[1, 1])
            e0 -= vectors[1, 0] * t
            e1 -= vectors[1, 1] * t
        if vectors[0, 0] > 0:
            e0 -= vectors[0, 0] * np.rint(e0 / vectors[0, 0])
        d[p, 0], d[p, 1], d[p, 2] = e0, e1, e2
        r[p] = np.sqrt(d[p, 0] * d[p, 0] + d[p, 1] * d[p, 1] + d[p, 2] * d[p, 2])


@numba.njit(cache=True, nogil=True)
def radial_pair_forces(pairs, d, r, dphi, forces):
    """Add the forces of pair energies phi(r) to ``forces`` (N, 3) float64: F_i += (phi'/r) d, F_j -= (phi'/r) d."""
    for p in range(pairs.shape[0]):
        w = dphi[p] / r[p]
        i, j = pairs[p, 0], pairs[p, 1]
        for c in range(3):
            fc = w * d[p, c]
            forces[i, c] += fc
            forces[j, c] -= fc


@numba.njit(cache=True, nogil=True)
def symmetric_row_pointers(n, pairs):
    """(N + 1,) int64 row pointers of the symmetric pattern of ``pairs`` (both (i, j) and (j, i), and the diagonal)."""
    indptr = np.zeros(n + 1, np.int64)
    for p in range(pairs.shape[0]):
        indptr[pairs[p, 0] + 1] += 1
        indptr[pairs[p, 1] + 1] += 1
    for a in range(n):
        indptr[a + 1] += indptr[a] + 1
    return indptr


@numba.njit(cache=True, nogil=True)
def radial_jacobian_rows(pairs, d, r, dphi, d2phi, indptr, rows, cols, blocks, rowsum):
    """Fill the pairs' Jacobian blocks into the row-major symmetric pattern.

    pairs (P, 2), d (P, 3), r, dphi, d2phi (P,) in the compute dtype; indptr (N + 1,) from
    :func:`symmetric_row_pointers`. Fills (allocated by the caller) rows, cols (2P + N,) int64,
    blocks (2P + N, 3, 3) with zero diagonal blocks, and rowsum (N, 9) float64 with the sum of
    each row's off-diagonal blocks.

    One pass over the pairs in their order (row-major): h of pair (i, j) goes right of row i's
    diagonal (the next place there) and left of row j's (the next place there: the pairs
    (i, j) of one j come by ascending i), J_ji = J_ij = h (h is symmetric and even in d). Then
    one sequential pass sums each row. (Measured on 30,000 atoms: faster than filling the left
    blocks in a second pass, in column order, even on two threads.)
    """
    n = indptr.shape[0] - 1
    lower = np.zeros(n, np.int64)                  # blocks left of each diagonal: pairs (i, a)
    for p in range(pairs.shape[0]):
        lower[pairs[p, 1]] += 1
    next_lower = indptr[:-1].copy()                # where row a's next block left of the diagonal goes
    next_upper = np.empty(n, np.int64)
    for a in range(n):
        at = indptr[a] + lower[a]
        for k in range(indptr[a], indptr[a + 1]):
            rows[k] = a
        cols[at] = a
        for c in range(3):
            for e in range(3):
                blocks[at, c, e] = 0
        next_upper[a] = at + 1
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        b = dphi[p] / r[p]
        a = (d2phi[p] - b) / (r[p] * r[p])
        up, lo = next_upper[i], next_lower[j]
        next_upper[i] += 1
        next_lower[j] += 1
        cols[up] = j
        cols[lo] = i
        for c in range(3):
            for e in range(3):
                h = a * d[p, c] * d[p, e]
                if c == e:
                    h += b
                blocks[up, c, e] = h
                blocks[lo, c, e] = h
    for a in range(n):                             # row sums (the diagonal block is zero)
        for k in range(indptr[a], indptr[a + 1]):
            for c in range(3):
                for e in range(3):
                    rowsum[a, 3 * c + e] += blocks[k, c, e]
