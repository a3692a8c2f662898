"""Periodic boxes: orthorhombic, or triclinic in OpenMM's reduced form.

A box is ``None`` (open boundaries), its three edge lengths ``(Lx, Ly, Lz)`` in nm (orthorhombic),
or a (3, 3) array whose rows are the box vectors a, b, c in nm (triclinic). A triclinic box is
kept in OpenMM's reduced form: a along x, b in the xy plane, c general (lower triangular,
a_x, b_y, c_z > 0), each vector reduced against the previous ones (|b_x| <= a_x / 2,
|c_x| <= a_x / 2, |c_y| <= b_y / 2). :func:`check_box` reduces a lower-triangular box into that
form (the same lattice) and hands a diagonal one back as its 3 edges, so orthorhombic boxes keep
their (3,) form everywhere.

The minimum image of a displacement ``d`` is OpenMM's (ReferenceForce::getDeltaRPeriodic): subtract
c round(d_z / c_z), then b round(d_y / b_y), then a round(d_x / a_x); for edges, d - L round(d / L).
The result lies in the rectangle |d_x| <= a_x / 2, |d_y| <= b_y / 2, |d_z| <= c_z / 2, which tiles
space under the lattice, so it is the one image in that rectangle: the shortest one whenever the
shortest one is shorter than half of min(a_x, b_y, c_z). Each of those is at least the distance
between two opposite faces of the cell (the face distances h_k = V / |b_l x b_m|), so the wrap is
exact for every pair within a cutoff no longer than half the smallest face distance, which is
what :func:`check_cutoff` asks. mdjac applies the wrap in numpy, before the differentiated graph
sees the displacement, so the shift is a constant and no gradient flows through ``round``: the
derivatives are those of the unwrapped potential, which is what makes the Jacobian exact.
"""
import numpy as np

from .errors import InputError


def check_box(box):
    """Validate a box: ``None``, 3 positive finite edges (nm), or (3, 3) box vectors (rows, nm).

    Returns ``None``, a float64 (3,) array of edges (also for a diagonal (3, 3) box), or the float64
    (3, 3) box vectors in OpenMM's reduced form (lower triangular boxes are reduced; the lattice,
    and so every periodic quantity, is unchanged).
    """
    if box is None:
        return None
    b = np.asarray(box, dtype=np.float64)
    if b.shape == (3, 3):
        if not np.all(np.isfinite(b)):
            raise InputError(f"the box vectors {b.tolist()} are not all finite: pass 3 box vectors (rows, nm), or None")
        if np.any(b[np.triu_indices(3, 1)] != 0):
            raise InputError(
                f"the box vectors {b.tolist()} are not in OpenMM's form (a along x, b in the xy plane): "
                "rotate the system so that a = (a_x, 0, 0) and b = (b_x, b_y, 0), as OpenMM and MDAnalysis give them")
        if np.any(np.diag(b) <= 0):
            raise InputError(f"the box vectors {b.tolist()} have a_x, b_y or c_z not positive: "
                             "pass a right-handed cell with a_x, b_y, c_z > 0 (nm)")
        if np.all(b[np.tril_indices(3, -1)] == 0):
            return np.diag(b).copy()
        return reduced_box(b)
    if b.shape != (3,):
        raise InputError(f"the box has shape {b.shape}: pass None, 3 edge lengths in nm, or (3, 3) box vectors")
    if not np.all(np.isfinite(b)) or np.any(b <= 0):
        raise InputError(f"the box edges {b.tolist()} are not all positive and finite: pass 3 edge lengths in nm, or None for open boundaries")
    return b


def box_from_cell(lengths, angles):
    """The box of a unit cell given as edge lengths (3,) nm and angles (alpha, beta, gamma) in degrees
    (PDB's CRYST1, MDAnalysis's ``dimensions``): a along x, b in the xy plane, then :func:`check_box`
    ((3,) edges when every angle is 90 degrees)."""
    la, lb, lc = (float(v) for v in lengths)
    alpha, beta, gamma = (np.radians(float(v)) for v in angles)
    if np.allclose(np.degrees([alpha, beta, gamma]), 90.0):
        return check_box([la, lb, lc])
    cx = lc * np.cos(beta)
    cy = lc * (np.cos(alpha) - np.cos(beta) * np.cos(gamma)) / np.sin(gamma)
    cz2 = lc * lc - cx * cx - cy * cy
    if not (np.isfinite(cz2) and cz2 > 0):
        raise InputError(f"the cell {[la, lb, lc]} nm, angles {np.degrees([alpha, beta, gamma]).tolist()} degrees "
                         "is not a cell (its angles admit no third vector): give a valid unit cell")
    return check_box([[la, 0.0, 0.0], [lb * np.cos(gamma), lb * np.sin(gamma), 0.0], [cx, cy, np.sqrt(cz2)]])


#: Relative slack of the reduced form's bounds: a tilt within it of half an edge is kept as given
#: (boxes read from float32 files at the very edge, as a rhombic dodecahedron's c_x = a_x / 2, are
#: not flipped to the other, equivalent, reduced form).
REDUCED_SLACK = 1e-5


def reduced_box(vectors):
    """(3, 3) lower-triangular box vectors (rows, nm) in OpenMM's reduced form, the same lattice.

    c -= b round(c_y / b_y), c -= a round(c_x / a_x), b -= a round(b_x / a_x), each only where the
    component is over half the edge (by more than :data:`REDUCED_SLACK`; a component of half the
    edge is kept, as OpenMM accepts it).
    """
    a, b, c = (np.array(v, dtype=np.float64) for v in vectors)
    bound = 0.5 * (1.0 + REDUCED_SLACK)
    if abs(c[1]) > bound * b[1]:
        c -= b * np.round(c[1] / b[1])
    if abs(c[0]) > bound * a[0]:
        c -= a * np.round(c[0] / a[0])
    if abs(b[0]) > bound * a[0]:
        b -= a * np.round(b[0] / a[0])
    return np.stack([a, b, c])


def is_triclinic(box):
    """True for a (3, 3) box (as :func:`check_box` returns it, a triclinic one)."""
    return box is not None and np.ndim(box) == 2


def box_vectors(box):
    """(3, 3) box vectors (rows, nm) of a box: the diagonal of (3,) edges, or (3, 3) vectors as given."""
    b = np.asarray(box, dtype=np.float64)
    return np.diag(b) if b.shape == (3,) else b.reshape(3, 3)


def box_volume(box):
    """Volume (nm^3) of a box ((3,) edges or (3, 3) lower-triangular vectors): a_x b_y c_z."""
    return float(np.prod(np.diag(box_vectors(box))))


def face_distances(box):
    """(3,) nm: the distance between the two faces of the cell opposite vector a, b and c:
    h_k = V / |b_l x b_m| (the edges themselves for an orthorhombic box)."""
    if not is_triclinic(box):
        return np.asarray(box, dtype=np.float64)
    v = box_vectors(box)
    volume = abs(float(np.linalg.det(v)))
    return np.array([volume / np.linalg.norm(np.cross(v[(k + 1) % 3], v[(k + 2) % 3])) for k in range(3)])


def reciprocal_vectors(box):
    """(3, 3) matrix R (nm^-1) with fractional coordinates s = r @ R of positions r (..., 3) nm:
    the inverse of the box vectors (columns of R are the reciprocal vectors, without 2 pi)."""
    return np.linalg.inv(box_vectors(box))


def check_cutoff(cutoff, box):
    """Refuse a cutoff (nm) that is not positive, or is over half the smallest distance between
    opposite faces of the box (the smallest edge, for an orthorhombic one)."""
    if cutoff is None:
        return
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise InputError(f"the cutoff {cutoff} nm is not positive: give a cutoff in nm, or None for all pairs")
    if box is None:
        return
    if not is_triclinic(box):
        if cutoff > 0.5 * float(np.min(box)):
            raise InputError(
                f"the cutoff {cutoff} nm is over half the smallest box edge ({float(np.min(box))} nm): "
                "use a shorter cutoff or a larger box (minimum image needs cutoff <= L/2)")
        return
    h = face_distances(box)
    if cutoff > 0.5 * float(np.min(h)):
        raise InputError(
            f"the cutoff {cutoff} nm is over half the smallest distance between opposite faces of the triclinic box "
            f"({float(np.min(h)):.6g} nm; the three are {', '.join(f'{v:.6g}' for v in h)} nm): "
            f"use a cutoff <= {0.5 * float(np.min(h)):.6g} nm or a larger box (minimum image needs it)")


def minimum_image(d, box):
    """Wrap displacements ``d`` (..., 3) nm into the minimum image of ``box``; ``box`` None leaves them.

    Orthorhombic: d - L round(d / L). Triclinic: OpenMM's order, c, then b, then a (module docstring).
    """
    if box is None:
        return d
    if not is_triclinic(box):
        shift = d / box
        np.round(shift, out=shift)
        shift *= box
        return np.subtract(d, shift, out=shift)
    d = np.array(d, dtype=np.float64)
    for k in (2, 1, 0):
        d -= np.round(d[..., k:k + 1] / box[k, k]) * box[k]
    return d


def wrap_positions(x, box):
    """Positions (N, 3) nm moved by lattice vectors into the cell: fractional coordinates in [0, 1).

    Returns (wrapped (N, 3) nm, fractional (N, 3)); an orthorhombic box wraps each axis on its edge.
    """
    if not is_triclinic(box):
        s = x / box
        s -= np.floor(s)
        s = np.where(s >= 1.0, 0.0, s)
        return s * box, s
    s = x @ reciprocal_vectors(box)
    s -= np.floor(s)
    s = np.where(s >= 1.0, 0.0, s)
    return s @ box, s
