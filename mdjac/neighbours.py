"""Neighbour pairs within a cutoff.

:func:`neighbour_pairs` is the one used in production (vesin's cell list, periodic or not); it
returns every pair ``i < j`` with minimum-image distance strictly below the cutoff, never fewer.
:func:`brute_force_pairs` (all N^2 distances) and :func:`ckdtree_pairs` (scipy) are independent
references, used by the tests to show that no pair is dropped.
"""
import numpy as np
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
    """Pairs as a sorted, unique (P, 2) int64 array with i < j."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    n = int(max(i.max(), j.max())) + 1 if len(i) else 1
    keep = i != j
    return pairs_of_keys(np.unique(pair_keys(i[keep], j[keep], n)), n)


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
