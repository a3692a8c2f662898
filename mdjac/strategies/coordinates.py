"""Per-instance coordinates q and the chain rule from q back to atoms.

For a term of relative positions, q_a = x_{index[a]} - x_{index[0]} (a = 1..k-1, minimum image),
i.e. q = A x_local with A = [-1 | I] of shape (k-1, k); for a per-atom term q = x_local, A = I. So

    F_local = -A^T dE/dq,        H_local = A^T (d2E/dq2) A,        J = -H,

and the (k x k) grid of 3x3 blocks of H_local is scatter-added at (index[a], index[b]). Only dE/dq
and d2E/dq2 come from automatic differentiation (mdjac.kernel); A is exact integer bookkeeping.
The minimum image is applied here, in numpy, outside the differentiated graph.
"""
import numpy as np

from .. import assembly
from ..space import box_vectors, minimum_image


def chain_matrix(term):
    """A (c, k): q = A x_local. Relative terms: q_a = x_{a+1} - x_0; per-atom terms: the identity."""
    k = term.n_body
    if not term.relative:
        return np.eye(k)
    return np.concatenate([-np.ones((k - 1, 1)), np.eye(k - 1)], axis=1)


def local_coordinates(term, index, positions, box):
    """Per-instance coordinates q (M, c, 3) nm, float64, of instances index (M, k) at positions (N, 3) nm."""
    x = positions[index]
    if not term.relative:
        return x
    return minimum_image(x[:, 1:] - x[:, :1], box)


def pair_geometry(config, pairs):
    """Minimum-image displacements d (P, 3) = x_j - x_i (nm) and distances r (P,) of pairs (P, 2)
    int64, in the configuration's compute dtype (computed in float64)."""
    vectors = np.zeros((3, 3)) if config.box is None else box_vectors(config.box)
    d, r = np.empty((len(pairs), 3), dtype=config.dtype), np.empty(len(pairs), dtype=config.dtype)
    assembly.pair_displacements(config.positions, pairs, vectors, d, r)
    return d, r


def scatter_add(n, index, values):
    """out (n, 3) float64 with out[index[p]] += values[p]; index (P,) int, values (P, 3)."""
    return np.stack([np.bincount(index, weights=values[:, a], minlength=n) for a in range(3)], axis=1)
