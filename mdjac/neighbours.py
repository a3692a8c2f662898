"""Neighbour pairs within a cutoff.

:func:`neighbour_pairs` is the one used in production (vesin's cell list, periodic or not); it
returns every pair ``i < j`` with minimum-image distance strictly below the cutoff, never fewer.
:func:`brute_force_pairs` (all N^2 distances) and :func:`ckdtree_pairs` (scipy) are independent
references, used by the tests to show that no pair is dropped.
"""
import numpy as np
import scipy.sparse
from scipy.spatial import cKDTree

from .space import minimum_image


def pair_keys(i, j, n):
    """One int64 key per unordered pair: min(i, j) * n + max(i, j), for atoms 0..n-1.

    Keys sort pairs row-major (by the smaller index, then the larger) and make set operations on
    pair lists (exclusions, uniqueness) one-dimensional. :func:`pairs_of_keys` inverts it.
    """
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    return np.minimum(i, j) * n + np.maximum(i, j)


def pairs_of_keys(keys, n):
    """(P, 2) int64 pairs (i, j), i <= j, of keys made by :func:`pair_keys` with the same ``n``."""
    keys = np.asarray(keys, dtype=np.int64)
    return np.stack([keys // n, keys % n], axis=1)


def _canonical(i, j):
    """Pairs as a sorted, unique (P, 2) int64 array with i < j.

    A counting sort by row (scipy's COO to CSR, which also merges repeats) and a sort within each
    row: no global sort of pair keys.
    """
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    keep = lo != hi
    lo, hi = lo[keep], hi[keep]
    n = int(hi.max()) + 1 if len(hi) else 1
    m = scipy.sparse.csr_matrix((np.ones(len(lo), dtype=np.int8), (lo, hi)), shape=(n, n))
    m.sum_duplicates()
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(m.indptr))
    return np.stack([rows, m.indices.astype(np.int64)], axis=1)


def neighbour_pairs(positions, cutoff, box=None):
    """All pairs closer than ``cutoff``.

    positions: (N, 3) nm; cutoff: nm; box: None or (3,) edges nm (cutoff <= L/2, checked by the caller).
    Returns (P, 2) int64, ``i < j``, sorted.
    """
    import vesin

    x = np.ascontiguousarray(positions, dtype=np.float64)
    if len(x) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=False)
    if box is None:
        i, j = nl.compute(points=x, box=np.zeros((3, 3)), periodic=False, quantities="ij")
    else:
        x = x - box * np.floor(x / box)
        i, j = nl.compute(points=x, box=np.diag(box), periodic=True, quantities="ij")
    return _canonical(i, j)


def brute_force_pairs(positions, cutoff, box=None):
    """Reference: all N^2 minimum-image distances. Same contract as :func:`neighbour_pairs`."""
    x = np.asarray(positions, dtype=np.float64)
    i, j = np.triu_indices(len(x), k=1)
    d = minimum_image(x[j] - x[i], box)
    keep = np.einsum("pk,pk->p", d, d) < cutoff * cutoff
    return _canonical(i[keep], j[keep])


def ckdtree_pairs(positions, cutoff, box=None):
    """Reference: scipy's cKDTree (periodic through ``boxsize``). Same contract as :func:`neighbour_pairs`."""
    x = np.asarray(positions, dtype=np.float64)
    if box is not None:
        x = x - box * np.floor(x / box)
        x = np.where(x >= box, 0.0, x)  # cKDTree wants 0 <= x < L
    tree = cKDTree(x, boxsize=None if box is None else box)
    pairs = tree.query_pairs(np.nextafter(cutoff, 0), output_type="ndarray")
    return _canonical(pairs[:, 0], pairs[:, 1]) if len(pairs) else np.zeros((0, 2), dtype=np.int64)


class VerletList:
    """Neighbour pairs within ``cutoff`` from a list kept across frames (a Verlet list with a skin).

    The list holds every pair closer than ``cutoff + skin`` at the positions it was built from.
    While no atom has moved more than skin/2 since (minimum image), every pair now closer than
    the cutoff is in it (|r_now| >= |r_then| - skin), so the pairs are found by filtering its
    distances; otherwise it is rebuilt. A skin that would take ``cutoff + skin`` over half the
    smallest box edge is cut down to fit (0: a new search every frame). Same contract as
    :func:`neighbour_pairs`: (P, 2) int64, i < j, sorted row-major.
    """

    def __init__(self, cutoff, skin=0.1):
        self.cutoff, self.skin = float(cutoff), float(skin)
        self._reference = self._box = self._candidates = None
        self._skin = 0.0
        self.builds = 0

    def pairs(self, positions, box=None):
        """Pairs closer than the cutoff at ``positions`` (N, 3) nm in ``box`` (None or (3,) nm)."""
        x = np.asarray(positions, dtype=np.float64)
        if not self._valid(x, box):
            skin = self.skin if box is None else max(0.0, min(self.skin, 0.5 * float(np.min(box)) - self.cutoff))
            self._candidates = neighbour_pairs(x, self.cutoff + skin, box)
            self._reference, self._box, self._skin = x.copy(), None if box is None else np.array(box), skin
            self.builds += 1
            if skin == 0.0:
                return self._candidates
        i, j = self._candidates[:, 0], self._candidates[:, 1]
        r2 = np.zeros(len(i))
        for c in range(3):
            xc = np.ascontiguousarray(x[:, c])
            d = xc[j] - xc[i]
            if box is not None:
                d -= box[c] * np.round(d / box[c])
            r2 += d * d
        return self._candidates[r2 < self.cutoff * self.cutoff]

    def _valid(self, x, box):
        if self._reference is None or self._reference.shape != x.shape:
            return False
        if (box is None) != (self._box is None) or (box is not None and not np.array_equal(box, self._box)):
            return False
        moved = minimum_image(x - self._reference, box)
        return bool(np.max(np.einsum("ij,ij->i", moved, moved), initial=0.0) < (0.5 * self._skin) ** 2)
