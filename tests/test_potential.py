"""Potential: the three strategies, partial Jacobians, float32, periodic boxes.

References: the strategies against each other (float64, 1e-9), the full Jacobian's sub-blocks for
partial ones, float64 for float32, float64 central differences of the forces, and a numpy
brute-force minimum-image Lennard-Jones + harmonic-bond model for periodic boxes.
"""
import numpy as np
import pytest

import mdjac
from mdjac import terms
from mdjac.jacobian import ForceJacobian

from helpers import both_routes

STRATEGY_TOL = 1e-9


# ----------------------------------------------------------------------------- a small mixed system
def mixed_system(geometry):
    """A 12-atom system with every kind of term: an 8-atom chain plus 4 free atoms, open boundaries."""
    rc = 0.8
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        chain = geometry.chain(rng, 8, start=np.array([0.4, 0.4, 0.4]))
        free = rng.uniform(0, 1.2, (4, 3))
        x = np.concatenate([chain, free])
        i, j = np.triu_indices(len(x), k=1)
        r = np.linalg.norm(x[j] - x[i], axis=1)
        wall = np.linalg.norm(x - 0.6, axis=1)
        if (r.min() > 0.12 and not np.any(np.abs(r - rc) < 0.02) and np.min(r[j >= 8]) > 0.25
                and not np.any(np.abs(wall - 0.45) < 0.02) and np.sum(wall > 0.45) >= 3):
            break
    else:
        raise RuntimeError("no well-conditioned mixed system found")
    n = len(x)
    bonds = np.array([[a, a + 1] for a in range(7)])
    angles = np.array([[a, a + 1, a + 2] for a in range(6)])
    quads = np.array([[a, a + 1, a + 2, a + 3] for a in range(5)])
    pairs14 = quads[:, [0, 3]]
    excl = np.concatenate([bonds, angles[:, [0, 2]], pairs14])
    types = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2, 1, 0])
    sigma, eps = np.array([0.25, 0.22, 0.28]), np.array([0.4, 0.2, 0.6])
    q = rng.choice([-1, 1], n) * rng.uniform(0.2, 0.6, n)
    r0 = np.linalg.norm(x[bonds[:, 1]] - x[bonds[:, 0]], axis=1) + rng.uniform(-0.01, 0.01, len(bonds))
    theta = np.array([geometry.angle(*x[t]) for t in angles])
    # Terms that share an instance list (nonbonded LJ + DSF over one neighbour list, the 1-4 pairs,
    # the per-atom restraint, field and wall over every atom) are evaluated together by the core,
    # which keeps the number of compiled functions (and the test time) down.
    term_list = [
        terms.HarmonicBond(bonds, 3e5, r0),
        terms.HarmonicAngle(angles, 400.0, theta + rng.uniform(-0.1, 0.1, len(angles))),
        terms.PeriodicTorsion(quads, [1.0, 2.0, 3.0, 0.5, 1.5], [1, 2, 3, 2, 1], [0.0, np.pi, 0.2, 0.0, -0.5]),
        terms.LennardJones(sigma, eps, types, cutoff=rc, exclusions=excl),
        terms.Coulomb(q, cutoff=rc, exclusions=excl, method="dsf", alpha=2.0),
        terms.LennardJones(sigma, eps, types, pairs=pairs14, scale=0.5),
        terms.Coulomb(q, pairs=pairs14, scale=1 / 1.2),
        terms.HarmonicRestraint([100.0, 200.0, 50.0], types, x + rng.normal(scale=0.05, size=x.shape)),
        terms.ElectricField(q, [5.0, 0.0, -3.0]),
        terms.FlatBottomWall(np.arange(n), 500.0, [0.6, 0.6, 0.6], 0.45),
    ]
    return mdjac.Potential(term_list), x


@pytest.fixture(scope="module")
def mixed(geometry):
    pot, x = mixed_system(geometry)
    out = {"pot": pot, "x": x}
    for s in ("replicate", "colour", "dense"):
        out[s] = pot.force_jacobian(x, strategy=s)
    return out


def test_result_contract(mixed):
    J = mixed["replicate"]
    n = mixed["pot"].n_atoms
    assert isinstance(J, ForceJacobian) and J.n_atoms == n and J.dtype == np.float64
    assert np.array_equal(J.atoms, np.arange(n))
    keys = J.rows * n + J.cols
    assert np.all(np.diff(keys) > 0)
    assert np.array_equal(J.rows[J.rows == J.cols], np.arange(n))
    e, f = mixed["pot"].energy_and_forces(mixed["x"])
    assert mixed["pot"].energy(mixed["x"]) == e
    np.testing.assert_array_equal(mixed["pot"].forces(mixed["x"]), f)
    assert f.dtype == np.float64 and f.shape == (n, 3)


@pytest.mark.parametrize("other", ["colour", "dense"])
def test_strategies_agree(mixed, fd, other):
    a, b = mixed["replicate"].to_dense(), mixed[other].to_dense()
    err = fd.rel_err(b, a)
    print(f"\nreplicate vs {other}: {err:.2e}")
    assert err <= STRATEGY_TOL


def test_colour_and_dense_agree(mixed, fd):
    assert fd.rel_err(mixed["colour"].to_dense(), mixed["dense"].to_dense()) <= STRATEGY_TOL


def test_mixed_system_against_finite_differences(mixed, fd):
    pot, x = mixed["pot"], mixed["x"]
    cols = np.array([0, 3, 6, 9, 11])
    ref = fd.jacobian(pot, x, columns=cols)
    got = mixed["replicate"].to_dense()[:, :, cols, :]
    err = fd.rel_err(got, ref)
    print(f"\nmixed system vs FD (5 columns): {err:.2e}")
    assert err <= 1e-6
    assert fd.sym_err(mixed["replicate"].to_dense()) <= 1e-12


@pytest.mark.parametrize("sel", [[1, 4, 7, 10], [11], [0, 1, 2, 3, 4, 5, 6, 7]])
def test_partial_jacobian_is_sub_blocks(mixed, sel):
    pot, x = mixed["pot"], mixed["x"]
    full = mixed["replicate"].to_dense()
    P = pot.force_jacobian(x, atoms=sel)
    keep = np.array(sorted(sel))
    assert np.array_equal(P.atoms, keep) and P.n_atoms == pot.n_atoms
    sub = full[np.ix_(keep, range(3), keep, range(3))]
    assert np.max(np.abs(P.to_dense() - sub)) <= 1e-12 * np.max(np.abs(full))
    assert np.max(np.abs(mixed["replicate"].select(keep).to_dense() - P.to_dense())) <= 1e-12 * np.max(np.abs(full))
    mask = np.zeros(pot.n_atoms, dtype=bool)
    mask[keep] = True
    np.testing.assert_array_equal(pot.force_jacobian(x, atoms=mask).to_dense(), P.to_dense())


def test_float32_agrees_with_float64(mixed, fd):
    pot, x = mixed["pot"], mixed["x"]
    J32 = pot.force_jacobian(x.astype(np.float32))
    assert J32.dtype == np.float32
    err = fd.rel_err(J32.to_dense(), mixed["replicate"].to_dense())
    e32, f32 = pot.energy_and_forces(x.astype(np.float32))
    e64, f64 = pot.energy_and_forces(x)
    assert f32.dtype == np.float32
    ferr = fd.rel_err(f32, f64)
    print(f"\nfloat32 vs float64: J {err:.2e}, forces {ferr:.2e}, energy {abs(e32 - e64) / abs(e64):.2e}")
    assert err <= 1e-5
    assert ferr <= 1e-5
    assert e32 == pytest.approx(e64, rel=1e-5)


# ----------------------------------------------------------------------------- periodic boxes
BOX = np.array([1.6, 1.7, 1.8])
RC = 0.75
SIGMA, EPS = np.array([0.30, 0.26]), np.array([0.8, 0.5])
BOND = (0, 1)
K_BOND, R0_BOND = 2e5, 0.16


def periodic_positions(geometry):
    """20 atoms in BOX, minimum-image distances > 0.28 nm and clear of the cutoff (rejection sampling)."""
    rng = np.random.default_rng(77)
    x = np.zeros((20, 3))
    # atoms 0 and 1: a bond across the x boundary (0 near x = 0, 1 near x = L)
    x[0] = [0.03, 0.8, 0.9]
    x[1] = [BOX[0] - 0.11, 0.85, 0.95]
    placed = 2
    while placed < 20:
        p = rng.uniform(0, 1, 3) * BOX
        d = x[:placed] - p
        d -= BOX * np.round(d / BOX)
        r = np.linalg.norm(d, axis=1)
        if np.all(r > 0.28) and not np.any(np.abs(r - RC) < 0.02):
            x[placed] = p
            placed += 1
    return x


def numpy_periodic_model(x, box, types):
    """Energy, forces and dense Jacobian of LJ (minimum image, all pairs r < RC, bonded pair excluded)
    plus the harmonic bond 0-1, by brute force in numpy."""
    n = len(x)
    E, F, J = 0.0, np.zeros((n, 3)), np.zeros((n, 3, n, 3))

    def add(i, j, d, phi, dphi, d2phi):
        nonlocal E
        r = np.linalg.norm(d)
        u = d / r
        E += phi
        F[i] += dphi * u  # U = phi(|x_j - x_i|): F_i = +phi' u, F_j = -phi' u
        F[j] -= dphi * u
        K = d2phi * np.outer(u, u) + dphi / r * (np.eye(3) - np.outer(u, u))
        J[i, :, i] -= K
        J[j, :, j] -= K
        J[i, :, j] += K
        J[j, :, i] += K

    for i in range(n):
        for j in range(i + 1, n):
            d = x[j] - x[i]
            d = d - box * np.round(d / box)
            r = np.linalg.norm(d)
            if (i, j) == BOND:
                add(i, j, d, 0.5 * K_BOND * (r - R0_BOND) ** 2, K_BOND * (r - R0_BOND), K_BOND)
            elif r < RC:
                s = 0.5 * (SIGMA[types[i]] + SIGMA[types[j]])
                e = np.sqrt(EPS[types[i]] * EPS[types[j]])
                s6 = (s / r) ** 6
                add(i, j, d, 4 * e * (s6 * s6 - s6), 4 * e * (-12 * s6 * s6 + 6 * s6) / r,
                    4 * e * (156 * s6 * s6 - 42 * s6) / r ** 2)
    return E, F, J


@pytest.fixture(scope="module")
def periodic(geometry):
    x = periodic_positions(geometry)
    types = np.arange(20) % 2
    pot = mdjac.Potential([terms.LennardJones(SIGMA, EPS, types, cutoff=RC, exclusions=[BOND]),
                           terms.HarmonicBond([BOND], K_BOND, R0_BOND)], box=BOX)
    return {"pot": pot, "x": x, "types": types, "J": pot.force_jacobian(x), "ref": numpy_periodic_model(x, BOX, types)}


def test_periodic_matches_numpy_minimum_image(periodic, fd):
    pot, x = periodic["pot"], periodic["x"]
    E_ref, F_ref, J_ref = periodic["ref"]
    raw = x[None] - x[:, None]
    crossing = np.linalg.norm(raw, axis=-1) >= RC
    coupled = np.abs(J_ref).max(axis=(1, 3)) > 0
    assert np.sum(crossing & coupled) >= 6, "the test needs pairs that interact only through the boundary"
    e, f = pot.energy_and_forces(x)
    assert e == pytest.approx(E_ref, rel=1e-11)
    assert fd.rel_err(f, F_ref) <= 1e-11
    err = fd.rel_err(periodic["J"].to_dense(), J_ref)
    assert err <= 1e-11


def test_periodic_against_finite_differences(periodic, fd):
    pot, x = periodic["pot"], periodic["x"]
    assert fd.rel_err(pot.forces(x), fd.forces(pot, x)) <= 1e-6
    cols = np.array([0, 1, 5, 12, 19])
    err = fd.rel_err(periodic["J"].to_dense()[:, :, cols, :], fd.jacobian(pot, x, columns=cols))
    print(f"\nperiodic vs FD: {err:.2e}")
    assert err <= 1e-6


def test_periodic_translation_by_box_vectors(periodic, fd):
    pot, x = periodic["pot"], periodic["x"]
    J0 = periodic["J"].to_dense()
    shifted = x + BOX * np.array([1, -2, 3])
    assert fd.rel_err(pot.force_jacobian(shifted).to_dense(), J0) <= 1e-10
    # every atom moved by its own box vector, many outside the primary box
    rng = np.random.default_rng(3)
    scrambled = x + BOX * rng.integers(-2, 3, (len(x), 3))
    assert fd.rel_err(pot.force_jacobian(scrambled).to_dense(), J0) <= 1e-10
    assert pot.energy(scrambled) == pytest.approx(pot.energy(x), rel=1e-11)


def test_bond_across_boundary_equals_unwrapped(periodic, fd):
    """The bond 0-1 across the boundary, against the same bond in open space with atom 1 unwrapped."""
    x = periodic["x"][:2].copy()
    periodic_bond = mdjac.Potential([terms.HarmonicBond([[0, 1]], K_BOND, R0_BOND)], box=BOX)
    open_bond = mdjac.Potential([terms.HarmonicBond([[0, 1]], K_BOND, R0_BOND)])
    unwrapped = x.copy()
    unwrapped[1, 0] -= BOX[0]  # the explicit image next to atom 0
    assert np.linalg.norm(unwrapped[1] - unwrapped[0]) < 0.2 < np.linalg.norm(x[1] - x[0])
    assert periodic_bond.energy(x) == pytest.approx(open_bond.energy(unwrapped), rel=1e-12)
    np.testing.assert_allclose(periodic_bond.forces(x), open_bond.forces(unwrapped), rtol=1e-12)
    np.testing.assert_allclose(periodic_bond.force_jacobian(x).to_dense(),
                               open_bond.force_jacobian(unwrapped).to_dense(), rtol=1e-12, atol=1e-9)


def test_periodic_strategies_agree(periodic, fd):
    pot, x = periodic["pot"], periodic["x"]
    Jc = pot.force_jacobian(x, strategy="colour").to_dense()
    err = fd.rel_err(Jc, periodic["J"].to_dense())
    assert err <= STRATEGY_TOL


def test_box_override_per_frame(periodic, fd):
    """box=... on a call equals a potential built with that box (NPT frames)."""
    pot, x, types = periodic["pot"], periodic["x"], periodic["types"]
    other = BOX * 1.02
    E_ref, F_ref, J_ref = numpy_periodic_model(x, other, types)
    e, f = pot.energy_and_forces(x, box=other)
    assert e == pytest.approx(E_ref, rel=1e-11)
    assert fd.rel_err(f, F_ref) <= 1e-11
    assert fd.rel_err(pot.force_jacobian(x, box=other).to_dense(), J_ref) <= 1e-11


def test_every_kind_of_term_against_general_route_and_finite_differences(mixed, fd):
    """The radial route (pair terms by phi', phi'' of r) against the general per-term route and
    float64 finite differences, whole and partial."""
    pot, x = mixed["pot"], mixed["x"]
    (J, e, f), (J0, e0, f0) = both_routes(pot, x)
    np.testing.assert_array_equal(J.rows, J0.rows)
    np.testing.assert_array_equal(J.cols, J0.cols)
    assert fd.rel_err(J.blocks, J0.blocks) <= 1e-12
    assert fd.rel_err(f, f0) <= 1e-12 and e == pytest.approx(e0, rel=1e-12)
    assert fd.rel_err(J.to_dense(), fd.jacobian(pot, x)) <= 1e-6
    sel = [1, 4, 5, 9, 11]
    (Js, _, _), (Js0, _, _) = both_routes(pot, x, atoms=sel)
    np.testing.assert_array_equal(Js.rows, Js0.rows)
    assert fd.rel_err(Js.blocks, Js0.blocks) <= 1e-12
    assert fd.rel_err(Js.to_dense(), J.to_dense()[np.ix_(sel, range(3), sel, range(3))]) <= 1e-12
