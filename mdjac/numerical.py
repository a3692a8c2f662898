"""The finite-difference reference: what mdjac's exact Jacobians are checked against.

Central differences in float64 of the quantity the Jacobian is the derivative of:

    F_i(x)          ~ -[U(x + h e_i) - U(x - h e_i)] / 2h
    J[:, c](x)      ~  [F(x + h e_c) - F(x - h e_c)] / 2h        (column c = 3 j + b)

with truncation error O(h^2) (third derivatives) and round-off O(eps |F| / h); h = 1e-5 nm balances
the two for molecular force fields (relative error about 1e-9 to 1e-7). These functions only call the
energy or forces they are given, never the kernel, so they are an independent reference; the tests,
the examples, the benchmark and the spot check of ``mdjac run`` all use this one module.

Index conventions: ``x`` is (N, 3) nm; a flat coordinate index ``c = 3 j + b`` is atom ``j``,
component ``b``; units kJ mol^-1 nm^-1 for forces and kJ mol^-1 nm^-2 for Jacobian entries.
"""
import numpy as np

from .neighbours import neighbour_pairs
from .space import minimum_image

#: Default step (nm).
STEP = 1e-5


def central_difference_forces(energy, x, h=STEP):
    """-dU/dx by central differences of ``energy`` (a callable (N, 3) -> float), (N, 3) float64."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    for c in range(x.size):
        step = np.zeros_like(x)
        step.flat[c] = h
        out.flat[c] = -(energy(x + step) - energy(x - step)) / (2 * h)
    return out


def central_difference_columns(forces, x, columns, h=STEP):
    """Columns of the force Jacobian by central differences of ``forces`` (a callable (N, 3) -> (N, 3)).

    columns : flat coordinate indices 3 j + b. Returns (3N, len(columns)) float64: column k is
    dF/dx_{columns[k]}.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros((x.size, len(columns)))
    for k, c in enumerate(columns):
        step = np.zeros_like(x)
        step.flat[c] = h
        out[:, k] = (np.asarray(forces(x + step), dtype=np.float64)
                     - np.asarray(forces(x - step), dtype=np.float64)).reshape(-1) / (2 * h)
    return out


def central_difference_jacobian(forces, x, atoms=None, h=STEP):
    """Block columns of the force Jacobian by central differences, (N, 3, len(atoms), 3) float64.

    ``out[i, a, k, b] = dF_{i,a} / dx_{atoms[k], b}``; ``atoms`` defaults to every atom, which gives
    the dense (N, 3, N, 3) Jacobian (the layout of ``ForceJacobian.to_dense``).
    """
    x = np.asarray(x, dtype=np.float64)
    atoms = np.arange(len(x)) if atoms is None else np.asarray(atoms, dtype=np.int64)
    columns = (3 * atoms[:, None] + np.arange(3)).reshape(-1)
    return central_difference_columns(forces, x, columns, h).reshape(len(x), 3, len(atoms), 3)


def relative_error(got, reference):
    """max |got - reference| / max |reference|: the error on the scale of the largest entry."""
    got, reference = np.asarray(got, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    scale = np.max(np.abs(reference))
    if not scale > 0:
        raise ValueError("the reference is identically zero: compare absolute differences instead")
    return float(np.max(np.abs(got - reference)) / scale)


def spot_columns(potential, positions, box=None, count=4, margin=1e-3):
    """``count`` flat coordinate indices 3 j + b spread over the atoms and the three components.

    Atoms with a neighbour within ``margin`` (nm) of a cutoff are skipped: there the potential's
    second derivative jumps (the forces too, for truncated Lennard-Jones), and central differences
    of the forces are no reference (a water-box atom with a neighbour 8e-8 nm inside the cutoff
    gave 4e-5 where its neighbours gave 1e-8).
    """
    x = np.asarray(positions, dtype=np.float64)
    ok = np.ones(len(x), dtype=bool)
    for rc in {t.cutoff for t in potential.terms if getattr(t, "cutoff", None) is not None}:
        pairs = neighbour_pairs(x, rc + margin, box)
        d = minimum_image(x[pairs[:, 1]] - x[pairs[:, 0]], box)
        near = pairs[np.abs(np.sqrt((d * d).sum(1)) - rc) < margin]
        ok[near.reshape(-1)] = False
    candidates = np.flatnonzero(ok)
    picks = candidates[np.unique(np.linspace(0, len(candidates) - 1, count).round().astype(np.int64))]
    return [int(3 * a + (k % 3)) for k, a in enumerate(picks)]


def column_relative_error(jacobian, reference, columns):
    """Worst column of a ForceJacobian (all atoms) against reference columns (3N, len(columns)):
    max over k of max|J[:, c_k] - ref[:, k]| / max|ref[:, k]|."""
    units = np.zeros((3 * jacobian.n, len(columns)))
    units[np.asarray(columns), np.arange(len(columns))] = 1.0
    got = jacobian.matvec(units)            # J e_c, long-range part included if the Jacobian has one
    return max(relative_error(got[:, k], reference[:, k]) for k in range(len(columns)))
