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


def cross(u, v):
    """u x v by slicing (mindspore.numpy.cross has no second derivative); (..., 3)."""
    ux, uy, uz = u[..., 0], u[..., 1], u[..., 2]
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    return ops.stack([uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx], axis=-1)


def distance(q):
    """|x_j - x_i| of a 2-atom instance; q (..., M, 1, 3) -> (..., M) nm."""
    return norm(q[..., 0, :])


def bond_angle(q):
    """The angle i-j-k at atom j of a 3-atom instance; q (..., M, 2, 3) -> (..., M) rad in [0, pi].

    atan2(|u x v|, u . v) with u = x_i - x_j, v = x_k - x_j (well conditioned away from 0 and pi).
    """
    u = -q[..., 0, :]
    v = q[..., 1, :] - q[..., 0, :]
    return ops.atan2(norm(cross(u, v)), dot(u, v))


def dihedral(q):
    """The IUPAC dihedral of a 4-atom instance (i, j, k, l); q (..., M, 3, 3) -> (..., M) rad in (-pi, pi].

    atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3)) with b1 = x_j - x_i, b2 = x_k - x_j, b3 = x_l - x_k.
    """
    b1 = q[..., 0, :]
    b2 = q[..., 1, :] - q[..., 0, :]
    b3 = q[..., 2, :] - q[..., 1, :]
    n2 = cross(b2, b3)
    return ops.atan2(norm(b2) * dot(b1, n2), dot(cross(b1, b2), n2))


def dihedral_numpy(b1, b2, b3):
    """The IUPAC dihedral (rad, (-pi, pi]) of bond vectors b1, b2, b3 (M, 3), as :func:`dihedral` computes it."""
    n2 = np.cross(b2, b3)
    return np.arctan2(np.linalg.norm(b2, axis=-1) * np.einsum("mi,mi->m", b1, n2),
                      np.einsum("mi,mi->m", np.cross(b1, b2), n2))
