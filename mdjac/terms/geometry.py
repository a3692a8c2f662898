"""Internal coordinates in MindSpore ops (differentiable twice), with their numpy twins where needed.

Shapes follow the terms' per-instance coordinates q (..., M, c, 3): the displacements of an
instance's atoms from its first atom (mdjac.terms.base). Lengths in nm, angles in rad.
"""
import numpy as np
from mindspore import ops


def norm(v):
    """|v| over the last axis; (..., 3) -> (...)."""
    return ops.sqrt((v * v).sum(-1))


def dot(u, v):
    """u . v over the last axis; (..., 3), (..., 3) -> (...)."""
    return (u * v).sum(-1)


def distance(q):
    """|x_j - x_i| of a 2-atom instance; q (..., M, 1, 3) -> (..., M) nm."""
    return norm(q[..., 0, :])


# The angle and the dihedral are stated on components: each atom's displacement split once into its
# x, y and z parts (ops.unstack), then cross and dot products of those (..., M) arrays. Slicing the
# last axis of (..., 3) arrays costs a full-size pad in each backward pass, and a Hessian takes two;
# the component form gives the same numbers with far fewer passes over the arrays
# (benchmarks/probe_bonded_geometry_forms.py).
def _vectors(q):
    """q (..., M, c, 3) -> c vectors, each a tuple of its 3 components (..., M)."""
    return [tuple(ops.unstack(a, axis=-1)) for a in ops.unstack(q, axis=-2)]


def _difference(u, v):
    return tuple(a - b for a, b in zip(u, v))


def _cross(u, v):
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _dot(u, v):
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def cross(u, v):
    """u x v over the last axis (mindspore.numpy.cross has no second derivative); (..., 3)."""
    return ops.stack(_cross(tuple(ops.unstack(u, axis=-1)), tuple(ops.unstack(v, axis=-1))), axis=-1)


def bond_angle(q):
    """The angle i-j-k at atom j of a 3-atom instance; q (..., M, 2, 3) -> (..., M) rad in [0, pi].

    atan2(|u x v|, u . v) with u = x_i - x_j, v = x_k - x_j (well conditioned away from 0 and pi).
    """
    a1, a2 = _vectors(q)
    u = tuple(-c for c in a1)
    v = _difference(a2, a1)
    n = _cross(u, v)
    return ops.atan2(ops.sqrt(_dot(n, n)), _dot(u, v))


def dihedral(q):
    """The IUPAC dihedral of a 4-atom instance (i, j, k, l); q (..., M, 3, 3) -> (..., M) rad in (-pi, pi].

    atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3)) with b1 = x_j - x_i, b2 = x_k - x_j, b3 = x_l - x_k.
    """
    a1, a2, a3 = _vectors(q)
    b1, b2, b3 = a1, _difference(a2, a1), _difference(a3, a2)
    n2 = _cross(b2, b3)
    return ops.atan2(ops.sqrt(_dot(b2, b2)) * _dot(b1, n2), _dot(_cross(b1, b2), n2))


def dihedral_numpy(b1, b2, b3):
    """The IUPAC dihedral (rad, (-pi, pi]) of bond vectors b1, b2, b3 (M, 3), as :func:`dihedral` computes it."""
    n2 = np.cross(b2, b3)
    return np.arctan2(np.linalg.norm(b2, axis=-1) * np.einsum("mi,mi->m", b1, n2),
                      np.einsum("mi,mi->m", np.cross(b1, b2), n2))
