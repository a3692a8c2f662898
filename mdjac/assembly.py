"""Compiled loops for the radial pair route: displacements in, 3x3 blocks and forces out.

Pair terms whose energy phi(r) depends on the distance alone (Lennard-Jones, Coulomb) get their
derivatives phi'(r), phi''(r) from MindSpore's AD (mdjac.kernel.elementwise_derivatives). What is
left is bookkeeping over the pairs, done here in single passes compiled by numba (no
temporaries, no sort):

* :func:`pair_displacements`: d_p = x_j - x_i (minimum image) and r_p = |d_p| for pairs p = (i, j);
* :func:`radial_pair_forces`: F_i += (phi'/r) d, F_j -= (phi'/r) d;
* :func:`jacobian_rows`: the Jacobian blocks of every pair, J_ij = J_ji = h(d), h = d2E/dd2
  the 3x3 block of the radial route (derived in mdjac.strategies.replicate), plus the other terms'
  off-diagonal blocks, written straight into the row-major symmetric pattern (both (i, j) and
  (j, i), and the diagonal), and the sum of each row's radial off-diagonal blocks (minus the
  diagonal block, by translation invariance); :func:`merge_pair_keys` makes the pattern's pairs,
  the radial pairs and the other terms' pairs merged in one pass (nothing inserted afterwards);
  :func:`radial_jacobian_rows`: radial pairs only.

Index conventions: ``pairs`` (P, 2) int64 with i < j, sorted row-major (by i, then j), as
mdjac.neighbours returns them. Row r of the pattern holds, in order, the blocks (r, i) of the pairs
(i, r) (ascending i), the diagonal block (r, r), then the blocks (r, j) of the pairs (r, j)
(ascending j): columns ascending, so the pattern is CSR over blocks with sorted indices.
"""
import numba
import numpy as np

from .neighbours import inverse_edges, is_tilted, pair_image


@numba.njit(cache=True, nogil=True)
def pair_displacements(x, pairs, vectors, d, r):
    """Fill d (P, 3) with x_j - x_i (minimum image, mdjac.space's order c, b, a, along each box
    vector with a positive diagonal; zeros: open) and r (P,) with |d|, for pairs p = (i, j).

    x: (N, 3) float64 nm; pairs: (P, 2) int64; vectors: (3, 3) float64 box vectors (rows, nm,
    reduced lower triangular; diagonal for an orthorhombic box). d (allocated by the caller,
    in the compute dtype) is computed in float64 and rounded once; r is the norm of d as stored,
    in d's dtype, so that d / r is a unit vector in that dtype.
    """
    tilted, inverse = is_tilted(vectors), inverse_edges(vectors)
    for p in range(pairs.shape[0]):
        d[p, 0], d[p, 1], d[p, 2] = pair_image(x, pairs[p, 0], pairs[p, 1], vectors, inverse, tilted)
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


def radial_jacobian_rows(pairs, d, r, dphi, d2phi, indptr, rows, cols, blocks, rowsum):
    """Fill the pairs' Jacobian blocks into the row-major symmetric pattern (:func:`jacobian_rows`
    with every pair radial and nothing else added).

    pairs (P, 2), d (P, 3), r, dphi, d2phi (P,) in the compute dtype; indptr (N + 1,) from
    :func:`symmetric_row_pointers`. Fills (allocated by the caller) rows, cols (2P + N,) int64,
    blocks (2P + N, 3, 3) with zero diagonal blocks, and rowsum (N, 9) float64 with the sum of
    each row's off-diagonal blocks.
    """
    everyone = np.arange(len(pairs), dtype=np.int64)
    jacobian_rows(pairs, everyone, d, r, dphi, d2phi, np.full(len(pairs), -1, np.int64), np.zeros((0, 3, 3)),
                  indptr, rows, cols, blocks, rowsum)


@numba.njit(cache=True, nogil=True)
def merge_pair_keys(keys, extra_keys, n):
    """The sorted union of two sorted, unique int64 key lists (pair keys i n + j, i < j).

    Returns (pairs (U, 2) int64 row-major, radial (U,) int64: where each pair is in ``keys`` or -1,
    extra (U,) int64: where it is in ``extra_keys`` or -1), in one merge pass.
    """
    a, b = keys.shape[0], extra_keys.shape[0]
    total, i, k = 0, 0, 0
    while i < a or k < b:               # count first, then fill
        if k == b or (i < a and keys[i] < extra_keys[k]):
            i += 1
        elif i == a or extra_keys[k] < keys[i]:
            k += 1
        else:
            i += 1
            k += 1
        total += 1
    pairs = np.empty((total, 2), np.int64)
    radial = np.full(total, -1, np.int64)
    extra = np.full(total, -1, np.int64)
    i, k = 0, 0
    for u in range(total):
        if k == b or (i < a and keys[i] < extra_keys[k]):
            key = keys[i]
            radial[u] = i
            i += 1
        elif i == a or extra_keys[k] < keys[i]:
            key = extra_keys[k]
            extra[u] = k
            k += 1
        else:
            key = keys[i]
            radial[u] = i
            extra[u] = k
            i += 1
            k += 1
        pairs[u, 0] = key // n
        pairs[u, 1] = key % n
    return pairs, radial, extra


@numba.njit(cache=True, nogil=True)
def jacobian_rows(pairs, radial, d, r, dphi, d2phi, extra, extra_blocks, indptr, rows, cols, blocks, rowsum):
    """Fill the Jacobian's off-diagonal blocks into the row-major symmetric pattern of ``pairs``.

    pairs (U, 2) int64, i < j, sorted row-major; each is a radial pair (radial[u] >= 0: its d, r,
    phi', phi'' at that place of d (P, 3), r, dphi, d2phi (P,), in the compute dtype), other terms'
    block (extra[u] >= 0: J_ij = extra_blocks[extra[u]] (E, 3, 3) float64, J_ji its transpose), or
    both (summed). indptr (N + 1,) from :func:`symmetric_row_pointers`. Fills (allocated by the
    caller) rows, cols (2U + N,) int64, blocks (2U + N, 3, 3) with zero diagonal blocks, and rowsum
    (N, 9) float64 with the sum of each row's radial off-diagonal blocks (the others' diagonal
    blocks come from their own Hessians).

    One pass over the pairs in their order (row-major): the block of pair (i, j) goes right of row
    i's diagonal (the next place there) and left of row j's (the next place there: the pairs (i, j)
    of one j come by ascending i); a radial h is symmetric and even in d, so J_ji = J_ij = h.
    (Measured on 30,000 atoms: faster than filling the left blocks in a second pass, in column
    order, even on two threads.)
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
    h = np.zeros((3, 3), blocks.dtype)         # h as stored (the row sums are of stored blocks)
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        up, lo = next_upper[i], next_lower[j]
        next_upper[i] += 1
        next_lower[j] += 1
        cols[up] = j
        cols[lo] = i
        q = radial[p]
        if q >= 0:
            b = dphi[q] / r[q]
            a = (d2phi[q] - b) / (r[q] * r[q])
            for c in range(3):
                for e in range(3):
                    h[c, e] = a * d[q, c] * d[q, e]
                    if c == e:
                        h[c, e] += b
                    rowsum[i, 3 * c + e] += h[c, e]
                    rowsum[j, 3 * c + e] += h[c, e]
        else:
            h[:, :] = 0.0
        x = extra[p]
        for c in range(3):
            for e in range(3):
                if x >= 0:
                    blocks[up, c, e] = h[c, e] + extra_blocks[x, c, e]
                    blocks[lo, c, e] = h[c, e] + extra_blocks[x, e, c]
                else:
                    blocks[up, c, e] = h[c, e]
                    blocks[lo, c, e] = h[c, e]
