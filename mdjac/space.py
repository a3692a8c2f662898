"""Orthorhombic periodic boxes.

A box is ``None`` (open boundaries) or its three edge lengths ``(Lx, Ly, Lz)`` in nm. The minimum
image of a displacement ``d`` is ``d - L * round(d / L)``. mdjac applies the wrap in numpy, before
the differentiated graph sees the displacement, so the shift is a constant and no gradient flows
through ``round``: the derivatives are those of the unwrapped potential, which is what makes the
Jacobian exact.

The minimum-image convention is unambiguous only when every interaction is shorter than half the
smallest edge, so a cutoff over half the box is refused.
"""
import numpy as np

from .errors import InputError


def check_box(box):
    """Validate a box: ``None`` or 3 positive finite edges (nm). Returns ``None`` or a float64 (3,) array.

    A (3, 3) matrix is accepted if it is diagonal (orthorhombic); anything else is refused.
    """
    if box is None:
        return None
    b = np.asarray(box, dtype=np.float64)
    if b.shape == (3, 3):
        if np.any(b[~np.eye(3, dtype=bool)] != 0):
            raise InputError("the box is not orthorhombic: mdjac supports rectangular boxes only; pass 3 edge lengths in nm")
        b = np.diag(b).copy()
    if b.shape != (3,):
        raise InputError(f"the box has shape {b.shape}: pass None or 3 edge lengths in nm")
    if not np.all(np.isfinite(b)) or np.any(b <= 0):
        raise InputError(f"the box edges {b.tolist()} are not all positive and finite: pass 3 edge lengths in nm, or None for open boundaries")
    return b


def check_cutoff(cutoff, box):
    """Refuse a cutoff (nm) that is not positive, or is over half the smallest box edge."""
    if cutoff is None:
        return
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise InputError(f"the cutoff {cutoff} nm is not positive: give a cutoff in nm, or None for all pairs")
    if box is not None and cutoff > 0.5 * float(np.min(box)):
        raise InputError(
            f"the cutoff {cutoff} nm is over half the smallest box edge ({float(np.min(box))} nm): "
            "use a shorter cutoff or a larger box (minimum image needs cutoff <= L/2)")


def minimum_image(d, box):
    """Wrap displacements ``d`` (..., 3) nm into the minimum image of ``box``; ``box`` None leaves them."""
    if box is None:
        return d
    shift = d / box
    np.round(shift, out=shift)
    shift *= box
    return np.subtract(d, shift, out=shift)
