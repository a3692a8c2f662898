"""Shared references for the core tests: float64 finite differences and well-conditioned geometries.

Everything here is independent of mdjac's kernel: finite differences (mdjac.numerical) only call
``Potential.energy`` / ``Potential.forces`` (the quantities the Jacobian is the derivative of), and
the geometry helpers are plain numpy. Helpers are handed to tests through the ``fd`` and ``geometry``
fixtures so that no test module imports this file by name.
"""
import os
import pathlib
import types

import numpy as np
import pytest

from mdjac import numerical

# The kernel's compiled graphs (mdjac.compile_cache) are stored for the suite beside pytest's own
# cache, not in the user's ~/.cache; a second run of the suite loads them.
os.environ.setdefault("MDJAC_COMPILE_CACHE_DIR",
                      str(pathlib.Path(__file__).resolve().parent.parent / ".pytest_cache" / "mdjac-compile"))

#: Finite-difference step (nm). Central differences in float64: truncation ~ h^2, round-off ~ 1e-16 / h.
STEP = numerical.STEP


def fd_forces(pot, x, h=STEP, box=None):
    """-dU/dx by float64 central differences of ``pot.energy``, (N, 3)."""
    return numerical.central_difference_forces(lambda y: pot.energy(y, box=box), x, h)


def fd_jacobian(pot, x, h=STEP, columns=None, box=None):
    """dF_i/dr_j by float64 central differences of ``pot.forces``.

    Returns (N, 3, len(columns), 3): ``out[i, a, c, b] = dF_{i,a} / dr_{columns[c], b}``;
    ``columns`` defaults to every atom.
    """
    return numerical.central_difference_jacobian(lambda y: pot.forces(y, box=box), x, columns, h)


rel_err = numerical.relative_error


def sym_err(dense):
    """Relative asymmetry of a dense (n, 3, n, 3) Jacobian: J_ij vs J_ji^T."""
    n = dense.shape[0]
    flat = dense.reshape(3 * n, 3 * n)
    return float(np.max(np.abs(flat - flat.T)) / np.max(np.abs(flat)))


# ----------------------------------------------------------------------------- geometry (plain numpy)
def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def angle(xi, xj, xk):
    """Angle i-j-k at j (rad), by arccos of the normalised dot product."""
    u, v = unit(xi - xj), unit(xk - xj)
    return float(np.arccos(np.clip(np.dot(u, v), -1, 1)))


def dihedral(xi, xj, xk, xl):
    """IUPAC dihedral (rad, in (-pi, pi]) by projection onto the plane normal to the j-k axis.

    Deliberately a different construction from mdjac.terms: project b1 = x_i - x_j and
    b3 = x_l - x_k onto the plane normal to the axis, and measure the signed angle between them
    (positive clockwise looking from j to k, i.e. right-handed about the j->k axis).
    """
    axis = unit(xk - xj)
    p = (xi - xj) - np.dot(xi - xj, axis) * axis
    s = (xl - xk) - np.dot(xl - xk, axis) * axis
    p, s = unit(p), unit(s)
    cos = np.clip(np.dot(p, s), -1, 1)
    sign = np.sign(np.dot(np.cross(p, s), axis))
    return float(sign * np.arccos(cos)) if sign != 0 else float(np.arccos(cos))


def chain(rng, n, bond=(0.13, 0.17), theta=(np.radians(85), np.radians(135)), start=None):
    """A random chain of n atoms: bond lengths, bond angles within the ranges, dihedrals uniform.

    Built atom by atom from internal coordinates (bond, angle, dihedral), so every angle is far from
    0 and pi and every dihedral is well defined.
    """
    x = np.zeros((n, 3))
    if start is not None:
        x[0] = start
    x[1] = x[0] + rng.uniform(*bond) * unit(rng.normal(size=3))
    for m in range(2, n):
        b = rng.uniform(*bond)
        th = rng.uniform(*theta)
        u = unit(x[m - 2] - x[m - 1])
        ref = x[m - 3] - x[m - 1] if m >= 3 else rng.normal(size=3)
        w = unit(ref - np.dot(ref, u) * u)  # perpendicular to the previous bond
        phi = rng.uniform(-np.pi, np.pi)
        perp = np.cos(phi) * w + np.sin(phi) * np.cross(u, w)
        x[m] = x[m - 1] + b * (np.cos(th) * u + np.sin(th) * perp)
    return x


def scattered(rng, n, size, min_dist, box=None, avoid=None, max_tries=100000):
    """n random points in [0, size)^3 at least ``min_dist`` apart (minimum image if ``box``).

    ``avoid``: optional (r_lo, r_hi) band of pair distances to keep clear of (e.g. around a cutoff).
    """
    pts = []
    for _ in range(max_tries):
        p = rng.uniform(0, size, 3)
        ok = True
        for q in pts:
            d = p - q
            if box is not None:
                d = d - box * np.round(d / box)
            r = np.linalg.norm(d)
            if r < min_dist or (avoid is not None and avoid[0] < r < avoid[1]):
                ok = False
                break
        if ok:
            pts.append(p)
            if len(pts) == n:
                return np.array(pts)
    raise RuntimeError("could not place the points; loosen the constraints")


@pytest.fixture(scope="session")
def fd():
    return types.SimpleNamespace(forces=fd_forces, jacobian=fd_jacobian, rel_err=rel_err, sym_err=sym_err, STEP=STEP)


@pytest.fixture(scope="session")
def geometry():
    return types.SimpleNamespace(unit=unit, angle=angle, dihedral=dihedral, chain=chain, scattered=scattered)


# ----------------------------------------------------------------------------- shared systems (built once)
@pytest.fixture(scope="session")
def water_box():
    """The catalogue's water box (1,000 SPC/E waters, 3,000 atoms): a ``System``."""
    from mdjac.catalogue import load_system
    return load_system("water-box")


@pytest.fixture(scope="session")
def amber14():
    """OpenMM's amber14 force field with TIP3P water."""
    from openmm_reference import app
    return app.ForceField("amber14-all.xml", "amber14/tip3p.xml")


@pytest.fixture(scope="session")
def solvated_peptide(amber14):
    """Alanine dipeptide in TIP3P water (OpenMM's Modeller, 0.9 nm padding): (topology, positions
    (N, 3) nm, box (3,) nm)."""
    from openmm_reference import peptide, solvated
    return solvated(amber14, *peptide(), padding=0.9)


@pytest.fixture(scope="session")
def peptide_in_octahedron(amber14):
    """Alanine dipeptide in a truncated octahedron of TIP3P (Modeller, 3.44 nm box vectors, 2,947 atoms;
    above the size where OpenMM's Reference platform misses pairs): (topology, positions nm, box (3, 3) nm)."""
    from openmm_reference import peptide, solvated_in
    return solvated_in(amber14, *peptide(), "octahedron", padding=1.72)


@pytest.fixture(scope="session")
def peptide_in_dodecahedron(amber14):
    """Alanine dipeptide in a rhombic dodecahedron of TIP3P (Modeller, 2.64 nm box vectors, 1,195 atoms):
    (topology, positions nm, box (3, 3) nm)."""
    from openmm_reference import peptide, solvated_in
    return solvated_in(amber14, *peptide(), "dodecahedron", padding=1.32)


_WORKER_STATS = []


def pytest_sessionfinish(session):
    """In a pytest-xdist worker: hand this process's compile-cache counts to the controller."""
    if hasattr(session.config, "workeroutput"):
        from mdjac import compile_cache
        session.config.workeroutput["mdjac_compile_cache"] = dict(compile_cache.STATS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """In the pytest-xdist controller: keep each finished worker's compile-cache counts."""
    stats = getattr(node, "workeroutput", {}).get("mdjac_compile_cache")
    if stats is not None:
        _WORKER_STATS.append(stats)


def pytest_terminal_summary(terminalreporter):
    """How many of the test processes' compiled graphs came from the store (mdjac.compile_cache):
    this process's, or, under pytest-xdist, its workers' added up."""
    from mdjac import compile_cache
    stats = {k: sum(s[k] for s in _WORKER_STATS) for k in compile_cache.STATS} if _WORKER_STATS else compile_cache.STATS
    processes = f"the {len(_WORKER_STATS)} test processes" if _WORKER_STATS else "the test process"
    terminalreporter.write_line(f"mdjac compile cache, graphs of {processes}: {stats}")
