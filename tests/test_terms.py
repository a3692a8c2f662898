"""Every term of mdjac.terms against references that do not use mdjac's kernel.

For each term, on a random but well-conditioned geometry (seeded numpy RNG):

* the energy equals a hand-written numpy formula (the term's textbook definition);
* the forces equal minus float64 central differences of the energy;
* the Jacobian equals float64 central differences of the forces, relative error <= 1e-6 of the
  largest |J| entry (step 1e-5 nm);
* J_ij = J_ji^T; block rows sum to zero for terms of relative positions, and do not for
  restraints (whose row sums are -k I);
* analytic Jacobians where they exist: restraint -k I, harmonic bond and flat-bottom wall
  k uu^T + k (r - r0)/r (I - uu^T), pair potentials phi'' uu^T + phi'/r (I - uu^T), and the
  electric field's exact zero.

One potential per case, built once per module (MindSpore compiles each term once).
"""
import math

import numpy as np
import pytest

import mdjac
from mdjac import terms

from helpers import both_routes

F_COULOMB = 138.935458
FD_TOL = 1e-6
MEASURED = {}  # case -> (forces FD error, Jacobian FD error), printed with -s


# ----------------------------------------------------------------------------- numpy references
def _unit(v):
    return v / np.linalg.norm(v)


def radial_block(d, dphi, d2phi):
    """Hessian of phi(|d|) w.r.t. d: phi'' uu^T + phi'/r (I - uu^T)."""
    r = np.linalg.norm(d)
    u = d / r
    P = np.outer(u, u)
    return d2phi * P + dphi / r * (np.eye(3) - P)


def pair_jacobian(n, x, pairs, dphi, d2phi):
    """Dense (n, 3, n, 3) Jacobian of sum over pairs of phi(|x_j - x_i|): J_ij = +K, J_ii = -K."""
    J = np.zeros((n, 3, n, 3))
    for p, (i, j) in enumerate(pairs):
        d = x[j] - x[i]
        r = np.linalg.norm(d)
        K = radial_block(d, dphi(r, p), d2phi(r, p))
        J[i, :, i, :] -= K
        J[j, :, j, :] -= K
        J[i, :, j, :] += K
        J[j, :, i, :] += K
    return J


def lj_parts(sig, eps):
    def phi(r, p):
        s6 = (sig[p] / r) ** 6
        return 4 * eps[p] * (s6 * s6 - s6)

    def dphi(r, p):
        s6 = (sig[p] / r) ** 6
        return 4 * eps[p] * (-12 * s6 * s6 + 6 * s6) / r

    def d2phi(r, p):
        s6 = (sig[p] / r) ** 6
        return 4 * eps[p] * (156 * s6 * s6 - 42 * s6) / r ** 2
    return phi, dphi, d2phi


def coulomb_parts(qq):
    return (lambda r, p: qq[p] / r, lambda r, p: -qq[p] / r ** 2, lambda r, p: 2 * qq[p] / r ** 3)


def dsf_parts(qq, alpha, rc):
    """Damped shifted force (Fennell & Gezelter 2006), derived by hand."""
    c = 2 * alpha / math.sqrt(math.pi)
    slope = math.erfc(alpha * rc) / rc ** 2 + c * math.exp(-(alpha * rc) ** 2) / rc

    def phi(r, p):
        return qq[p] * (math.erfc(alpha * r) / r - math.erfc(alpha * rc) / rc + slope * (r - rc))

    def dphi(r, p):
        return qq[p] * (-math.erfc(alpha * r) / r ** 2 - c * math.exp(-(alpha * r) ** 2) / r + slope)

    def d2phi(r, p):
        return qq[p] * (2 * math.erfc(alpha * r) / r ** 3 + c * math.exp(-(alpha * r) ** 2) * (2 / r ** 2 + 2 * alpha ** 2))
    return phi, dphi, d2phi


def pair_energy(x, pairs, phi):
    return sum(phi(np.linalg.norm(x[j] - x[i]), p) for p, (i, j) in enumerate(pairs))


def all_pairs(n):
    i, j = np.triu_indices(n, k=1)
    return np.stack([i, j], 1)


def within(x, pairs, cutoff):
    r = np.linalg.norm(x[pairs[:, 1]] - x[pairs[:, 0]], axis=1)
    return pairs[r < cutoff]


# ----------------------------------------------------------------------------- the cases
class Case:
    """pot, x, energy_ref(x) (numpy), relative (row sums vanish), jac_ref (analytic dense or None)."""

    def __init__(self, pot, x, energy_ref, relative, jac_ref=None, notes=None):
        self.pot, self.x, self.energy_ref, self.relative, self.jac_ref = pot, x, energy_ref, relative, jac_ref
        self.notes = notes or {}


def case_restraint(rng, g):
    n = 6
    x = rng.uniform(0, 1, (n, 3))
    ref = x + rng.normal(scale=0.1, size=(n, 3))
    types = np.array([0, 1, 2, 0, 1, 2])
    k = np.array([150.0, 400.0, 0.0])
    pot = mdjac.Potential([terms.HarmonicRestraint(k, types, ref)])
    e = lambda y: float(np.sum(0.5 * k[types] * np.sum((y - ref) ** 2, axis=1)))
    J = np.zeros((n, 3, n, 3))
    for i in range(n):
        J[i, :, i, :] = -k[types[i]] * np.eye(3)
    return Case(pot, x, e, relative=False, jac_ref=J, notes={"k_atom": k[types]})


def case_field(rng, g):
    n = 5
    x = rng.uniform(0, 1, (n, 3))
    q = np.array([0.5, -1.0, 0.0, 0.3, 0.2])
    field = np.array([10.0, -5.0, 3.0])
    pot = mdjac.Potential([terms.ElectricField(q, field)])
    e = lambda y: float(-np.sum(q * (y @ field)))
    return Case(pot, x, e, relative=False, jac_ref=np.zeros((n, 3, n, 3)), notes={"q": q, "field": field})


def case_wall(rng, g):
    centre = np.array([0.5, 0.4, 0.6])
    radius = np.array([0.4, 0.35, 0.4, 0.45, 0.3, 0.4])
    k = np.array([500.0, 800.0, 300.0, 500.0, 1000.0, 250.0])
    dist = np.array([0.2, 0.55, 0.1, 0.7, 0.45, 0.3])  # inside, outside, inside, outside, outside, inside
    x = centre + dist[:, None] * np.array([g.unit(v) for v in rng.normal(size=(6, 3))])
    pot = mdjac.Potential([terms.FlatBottomWall(np.arange(6), k, centre, radius)])

    def e(y):
        r = np.linalg.norm(y - centre, axis=1)
        return float(np.sum(0.5 * k * np.maximum(0, r - radius) ** 2))
    J = np.zeros((6, 3, 6, 3))
    for i in range(6):
        if dist[i] > radius[i]:
            J[i, :, i, :] = -radial_block(x[i] - centre, k[i] * (dist[i] - radius[i]), k[i])
    return Case(pot, x, e, relative=False, jac_ref=J)


def case_bond(rng, g):
    x = g.chain(rng, 6)
    pairs = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [1, 4]])
    r = np.linalg.norm(x[pairs[:, 1]] - x[pairs[:, 0]], axis=1)
    r0 = r + rng.uniform(-0.03, 0.03, len(pairs))
    k = rng.uniform(2e5, 4e5, len(pairs))
    pot = mdjac.Potential([terms.HarmonicBond(pairs, k, r0)])
    e = lambda y: float(np.sum(0.5 * k * (np.linalg.norm(y[pairs[:, 1]] - y[pairs[:, 0]], axis=1) - r0) ** 2))
    # textbook: H = k uu^T + k (r - r0)/r (I - uu^T) for d2U/dx_i2; J_ii = -H, J_ij = +H
    J = pair_jacobian(6, x, pairs, lambda rr, p: k[p] * (rr - r0[p]), lambda rr, p: k[p])
    return Case(pot, x, e, relative=True, jac_ref=J)


def case_angle(rng, g):
    x = g.chain(rng, 6)
    triples = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 1, 3]])
    theta = np.array([g.angle(*x[t]) for t in triples])
    assert np.all((theta > np.radians(25)) & (theta < np.radians(155)))
    theta0 = theta + rng.uniform(-0.2, 0.2, len(triples))
    k = rng.uniform(300, 600, len(triples))
    pot = mdjac.Potential([terms.HarmonicAngle(triples, k, theta0)])
    e = lambda y: float(sum(0.5 * k[m] * (g.angle(*y[t]) - theta0[m]) ** 2 for m, t in enumerate(triples)))
    return Case(pot, x, e, relative=True)


def case_torsion(rng, g):
    x = g.chain(rng, 6)
    quads = np.array([[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [0, 1, 2, 3], [1, 2, 3, 4]])
    k = np.array([2.0, 5.0, 1.5, 3.0, 0.7])
    n = np.array([1.0, 2.0, 3.0, 2.0, 4.0])
    phase = np.array([0.0, np.pi, 0.3, -1.0, 2.0])
    pot = mdjac.Potential([terms.PeriodicTorsion(quads, k, n, phase)])
    e = lambda y: float(sum(k[m] * (1 + np.cos(n[m] * g.dihedral(*y[qd]) - phase[m])) for m, qd in enumerate(quads)))
    return Case(pot, x, e, relative=True)


def case_improper(rng, g):
    # two trigonal centres (atoms 2 and 5), each with three neighbours, slightly pyramidal
    x = np.zeros((8, 3))
    for centre, nbrs, origin in ((2, (0, 1, 3), np.zeros(3)), (5, (4, 6, 7), np.array([0.5, 0.1, 0.2]))):
        x[centre] = origin
        frame = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        for a, nb in enumerate(nbrs):
            ang = 2 * np.pi * a / 3 + rng.uniform(-0.2, 0.2)
            v = np.array([np.cos(ang), np.sin(ang), rng.uniform(0.15, 0.4)])
            x[nb] = origin + rng.uniform(0.12, 0.15) * (frame @ g.unit(v))
    quads = np.array([[0, 1, 2, 3], [4, 6, 5, 7], [1, 3, 2, 0]])  # AMBER order: central atom third
    k = np.array([4.6, 10.5, 1.1])
    n = np.array([2.0, 2.0, 1.0])
    phase = np.array([np.pi, np.pi, 0.5])
    pot = mdjac.Potential([terms.ImproperTorsion(quads, k, n, phase)])
    e = lambda y: float(sum(k[m] * (1 + np.cos(n[m] * g.dihedral(*y[qd]) - phase[m])) for m, qd in enumerate(quads)))
    return Case(pot, x, e, relative=True)


def case_lj_lb(rng, g):
    n = 10
    x = g.scattered(rng, n, 1.1, 0.3)
    types = rng.integers(0, 3, n)
    sigma = np.array([0.30, 0.25, 0.34])
    eps = np.array([0.6, 0.3, 1.1])
    excl = np.array([[0, 1], [5, 2]])
    pot = mdjac.Potential([terms.LennardJones(sigma, eps, types, cutoff=None, exclusions=excl)])
    pairs = np.array([p for p in all_pairs(n).tolist() if p not in ([0, 1], [2, 5])])
    sig = 0.5 * (sigma[types[pairs[:, 0]]] + sigma[types[pairs[:, 1]]])   # Lorentz
    ep = np.sqrt(eps[types[pairs[:, 0]]] * eps[types[pairs[:, 1]]])       # Berthelot
    phi, dphi, d2phi = lj_parts(sig, ep)
    return Case(pot, x, lambda y: pair_energy(y, pairs, phi), relative=True,
                jac_ref=pair_jacobian(n, x, pairs, dphi, d2phi), notes={"excluded": [(0, 1), (2, 5)]})


def case_lj_table(rng, g):
    n, rc = 12, 0.8
    x = g.scattered(rng, n, 1.2, 0.3, avoid=(rc - 0.02, rc + 0.02))
    types = rng.integers(0, 3, n)
    sigma = np.array([[0.30, 0.29, 0.33], [0.29, 0.25, 0.27], [0.33, 0.27, 0.34]])
    eps = np.array([[0.6, 0.2, 0.9], [0.2, 0.3, 0.5], [0.9, 0.5, 1.1]])
    pot = mdjac.Potential([terms.LennardJones(sigma, eps, types, cutoff=rc)])
    pairs = within(x, all_pairs(n), rc)
    assert 5 < len(pairs) < len(all_pairs(n))  # the cutoff matters
    sig, ep = sigma[types[pairs[:, 0]], types[pairs[:, 1]]], eps[types[pairs[:, 0]], types[pairs[:, 1]]]
    phi, dphi, d2phi = lj_parts(sig, ep)

    def e(y):
        p = within(y, all_pairs(n), rc)
        return pair_energy(y, p, lj_parts(sigma[types[p[:, 0]], types[p[:, 1]]], eps[types[p[:, 0]], types[p[:, 1]]])[0])
    return Case(pot, x, e, relative=True, jac_ref=pair_jacobian(n, x, pairs, dphi, d2phi))


def case_coulomb(rng, g):
    n = 8
    x = g.scattered(rng, n, 1.0, 0.25)
    q = rng.uniform(-1, 1, n)
    excl = np.array([[3, 4]])
    pot = mdjac.Potential([terms.Coulomb(q, cutoff=None, exclusions=excl)])
    pairs = np.array([p for p in all_pairs(n).tolist() if p != [3, 4]])
    qq = F_COULOMB * q[pairs[:, 0]] * q[pairs[:, 1]]
    phi, dphi, d2phi = coulomb_parts(qq)
    return Case(pot, x, lambda y: pair_energy(y, pairs, phi), relative=True,
                jac_ref=pair_jacobian(n, x, pairs, dphi, d2phi), notes={"excluded": [(3, 4)]})


def case_dsf(rng, g):
    n, rc, alpha = 12, 0.9, 2.5
    x = g.scattered(rng, n, 1.4, 0.25, avoid=(rc - 0.02, rc + 0.02))
    q = rng.uniform(-1, 1, n)
    pot = mdjac.Potential([terms.Coulomb(q, cutoff=rc, method="dsf", alpha=alpha)])
    pairs = within(x, all_pairs(n), rc)
    assert 5 < len(pairs) < len(all_pairs(n))
    qq = F_COULOMB * q[pairs[:, 0]] * q[pairs[:, 1]]
    phi, dphi, d2phi = dsf_parts(qq, alpha, rc)
    return Case(pot, x, lambda y: pair_energy(y, pairs, phi), relative=True,
                jac_ref=pair_jacobian(n, x, pairs, dphi, d2phi), notes={"alpha": alpha, "rc": rc})


def case_lj14(rng, g):
    x = g.chain(rng, 7, bond=(0.14, 0.16), theta=(np.radians(105), np.radians(125)))
    types = np.array([0, 1, 0, 1, 0, 1, 1])
    sigma, eps = np.array([0.30, 0.25]), np.array([0.5, 0.2])
    pairs14 = np.array([[0, 3], [1, 4], [2, 5], [6, 3]])
    scale = 0.5
    pot = mdjac.Potential([terms.LennardJones(sigma, eps, types, pairs=pairs14, scale=scale)])
    sig = 0.5 * (sigma[types[pairs14[:, 0]]] + sigma[types[pairs14[:, 1]]])
    ep = scale * np.sqrt(eps[types[pairs14[:, 0]]] * eps[types[pairs14[:, 1]]])
    phi, dphi, d2phi = lj_parts(sig, ep)
    return Case(pot, x, lambda y: pair_energy(y, pairs14, phi), relative=True,
                jac_ref=pair_jacobian(7, x, pairs14, dphi, d2phi))


def case_coulomb14(rng, g):
    x = g.chain(rng, 7, bond=(0.14, 0.16), theta=(np.radians(105), np.radians(125)))
    q = rng.uniform(-0.8, 0.8, 7)
    pairs14 = np.array([[0, 3], [1, 4], [2, 5], [3, 6]])
    scale = 1 / 1.2
    pot = mdjac.Potential([terms.Coulomb(q, pairs=pairs14, scale=scale)])
    qq = scale * F_COULOMB * q[pairs14[:, 0]] * q[pairs14[:, 1]]
    phi, dphi, d2phi = coulomb_parts(qq)
    return Case(pot, x, lambda y: pair_energy(y, pairs14, phi), relative=True,
                jac_ref=pair_jacobian(7, x, pairs14, dphi, d2phi))


CASES = {
    "HarmonicRestraint": case_restraint,
    "ElectricField": case_field,
    "FlatBottomWall": case_wall,
    "HarmonicBond": case_bond,
    "HarmonicAngle": case_angle,
    "PeriodicTorsion": case_torsion,
    "ImproperTorsion": case_improper,
    "LennardJones-LB+exclusions": case_lj_lb,
    "LennardJones-table-cutoff": case_lj_table,
    "Coulomb-plain+exclusions": case_coulomb,
    "Coulomb-dsf": case_dsf,
    "LennardJones-14-scaled": case_lj14,
    "Coulomb-14-scaled": case_coulomb14,
}


class Computed:
    """A case with mdjac's results and the finite-difference references, computed once."""

    def __init__(self, case, fd):
        self.case = case
        self.energy, self.forces = case.pot.energy_and_forces(case.x)
        self.J = case.pot.force_jacobian(case.x)
        self.dense = self.J.to_dense()
        self.fd_forces = fd.forces(case.pot, case.x)
        self.fd_jacobian = fd.jacobian(case.pot, case.x)


@pytest.fixture(scope="module", params=list(CASES))
def computed(request, fd, geometry):
    rng = np.random.default_rng(list(CASES).index(request.param) + 101)
    case = CASES[request.param](rng, geometry)
    out = Computed(case, fd)
    out.name = request.param
    return out


# ----------------------------------------------------------------------------- tests for every term
def test_energy_matches_hand_formula(computed):
    ref = computed.case.energy_ref(computed.case.x)
    assert abs(ref) > 1e-3, "the reference energy should not be trivially zero"
    assert computed.energy == pytest.approx(ref, rel=1e-10, abs=1e-10)


def test_forces_match_energy_differences(computed, fd):
    if computed.name == "ElectricField":  # forces are q E exactly; compare absolutely too
        q, field = computed.case.notes["q"], computed.case.notes["field"]
        np.testing.assert_allclose(computed.forces, q[:, None] * field[None, :], rtol=1e-12, atol=1e-12)
    err = fd.rel_err(computed.forces, computed.fd_forces)
    MEASURED.setdefault(computed.name, {})["forces_fd"] = err
    assert err <= FD_TOL


def test_jacobian_matches_force_differences(computed, fd):
    assert computed.J.dtype == np.float64
    if computed.name == "ElectricField":
        assert np.max(np.abs(computed.fd_jacobian)) < 1e-6  # FD of constant forces: round-off only
        assert np.all(computed.J.blocks == 0)
        MEASURED.setdefault(computed.name, {})["jacobian_fd_abs"] = float(np.max(np.abs(computed.fd_jacobian)))
        return
    err = fd.rel_err(computed.dense, computed.fd_jacobian)
    MEASURED.setdefault(computed.name, {})["jacobian_fd"] = err
    print(f"\n{computed.name}: forces FD {MEASURED[computed.name].get('forces_fd')}, Jacobian FD {err:.2e}")
    assert err <= FD_TOL


WITH_CLOSED_FORM = [c for c in CASES if c not in ("HarmonicAngle", "PeriodicTorsion", "ImproperTorsion")]


@pytest.mark.parametrize("computed", WITH_CLOSED_FORM, indirect=True)
def test_jacobian_matches_analytic_form(computed, fd):
    ref = computed.case.jac_ref
    assert ref is not None
    if not np.any(ref):
        assert np.array_equal(computed.dense, ref)
        return
    err = fd.rel_err(computed.dense, ref)
    MEASURED.setdefault(computed.name, {})["analytic"] = err
    assert err <= 1e-10


def test_symmetric(computed, fd):
    d = computed.dense
    if not np.any(d):
        return
    assert fd.sym_err(d) <= 1e-12
    # block-level statement, J_ij = J_ji^T, through the stored blocks themselves
    J = computed.J
    lookup = {(r, c): b for r, c, b in zip(J.rows.tolist(), J.cols.tolist(), J.blocks)}
    for (r, c), b in lookup.items():
        np.testing.assert_allclose(b, lookup[(c, r)].T, rtol=0, atol=1e-12 * np.max(np.abs(d)))


def test_block_rows_sum(computed):
    d = computed.dense
    row_sums = d.sum(axis=2)  # (n, 3, 3): sum_j J_ij
    scale = max(np.max(np.abs(d)), 1e-300)
    if computed.case.relative:
        assert np.max(np.abs(row_sums)) <= 1e-12 * scale
    elif computed.name == "HarmonicRestraint":
        k_atom = computed.case.notes["k_atom"]
        np.testing.assert_allclose(row_sums, -k_atom[:, None, None] * np.eye(3), rtol=1e-12, atol=1e-12)
        assert np.max(np.abs(row_sums)) > 0
    elif computed.name == "FlatBottomWall":
        assert np.max(np.abs(row_sums)) > 0.1 * scale  # a wall is not translation invariant
    elif computed.name == "ElectricField":
        assert np.all(d == 0)  # a uniform field: constant forces, the Jacobian is exactly zero
    else:
        raise AssertionError(f"no row-sum rule for the per-atom term {computed.name}: add one")


def test_pattern_holds_only_coupled_blocks(computed):
    """Stored off-diagonal blocks are those of atoms some instance couples (plus every diagonal)."""
    J = computed.J
    n = computed.case.pot.n_atoms
    assert np.array_equal(J.atoms, np.arange(n))
    assert np.all(J.rows[J.rows == J.cols] == np.arange(n))
    keys = J.rows * n + J.cols
    assert np.all(np.diff(keys) > 0)  # row-major, unique
    fd_blocks = np.abs(computed.fd_jacobian).max(axis=(1, 3))
    nonzero = fd_blocks > 1e-6 * max(1, fd_blocks.max())
    pattern = computed.J.pattern().toarray()
    assert np.all(pattern[nonzero])  # nothing nonzero is missing from the pattern
    off = pattern & ~np.eye(n, dtype=bool)
    assert np.all(nonzero[off])  # and no stored off-diagonal block is one that no instance couples


# ----------------------------------------------------------------------------- specific checks
def test_restraint_is_minus_k_by_type():
    rng = np.random.default_rng(7)
    n = 5
    types = np.array([1, 0, 1, 2, 0])
    k = np.array([10.0, 1000.0, 55.5])
    ref = rng.normal(size=(n, 3))
    pot = mdjac.Potential([terms.HarmonicRestraint(k, types, ref)])
    # the Jacobian of a restraint does not depend on where the atoms are
    for x in (rng.normal(size=(n, 3)), ref, ref + 5.0):
        D = pot.force_jacobian(x).diagonal()
        np.testing.assert_allclose(D, -k[types][:, None, None] * np.eye(3), rtol=1e-13, atol=0)
        assert pot.force_jacobian(x).nnz_blocks == n


@pytest.mark.parametrize("computed", ["LennardJones-LB+exclusions", "Coulomb-plain+exclusions"], indirect=True)
def test_excluded_pairs_have_no_block(computed):
    excluded = computed.case.notes["excluded"]
    pattern = computed.J.pattern().toarray()
    for i, j in excluded:
        assert not pattern[i, j] and not pattern[j, i]
        assert np.max(np.abs(computed.fd_jacobian[i, :, j, :])) < 1e-6


def test_dsf_reference_is_shifted_force():
    """The hand DSF formula goes to zero with its force at the cutoff (a check on the reference itself)."""
    qq, alpha, rc = np.array([100.0]), 2.5, 0.9
    phi, dphi, _ = dsf_parts(qq, alpha, rc)
    assert abs(phi(rc, 0)) < 1e-12 and abs(dphi(rc, 0)) < 1e-10
    h = 1e-5
    assert abs((phi(0.5 + h, 0) - phi(0.5 - h, 0)) / (2 * h) - dphi(0.5, 0)) < 1e-6


def test_dihedral_reference_sign(geometry):
    """The numpy dihedral used as reference: rotating l by +phi about the j->k axis gives +phi."""
    dihedral = geometry.dihedral
    for phi in (0.3, 1.2, -2.0, 3.0):
        x = np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.0], [np.cos(phi), np.sin(phi), 1.0]])
        assert dihedral(*x) == pytest.approx(phi, abs=1e-12)


def test_torsion_energy_at_known_dihedrals():
    """E = k (1 + cos(n phi - phase)) at dihedrals set by construction."""
    pot = mdjac.Potential([terms.PeriodicTorsion([[0, 1, 2, 3]] * 3, [1.0, 2.0, 0.5], [1, 2, 3], [0.0, 0.4, np.pi])])
    for phi in (0.5, -1.3, 2.9):
        x = np.array([[0.15, 0, 0], [0, 0, 0], [0, 0, 0.15], [0.15 * np.cos(phi), 0.15 * np.sin(phi), 0.15]])
        ref = 1.0 * (1 + np.cos(phi)) + 2.0 * (1 + np.cos(2 * phi - 0.4)) + 0.5 * (1 + np.cos(3 * phi - np.pi))
        assert pot.energy(x) == pytest.approx(ref, rel=1e-12)


def test_exclusion_lookup_equals_isin():
    """The bisection lookup of excluded pair keys (sorted neighbour lists) against np.isin, sorted or not."""
    from mdjac.neighbours import excluded_mask as _excluded
    rng = np.random.default_rng(0)
    for _ in range(200):
        keys = np.unique(rng.integers(0, 500, rng.integers(0, 60)))
        excluded = np.unique(rng.integers(0, 500, rng.integers(0, 30)))
        for k in (keys, rng.permutation(keys)):
            np.testing.assert_array_equal(_excluded(k, excluded), np.isin(k, excluded))


# ----------------------------------------------------------------------------- the radial route
PAIR_CASES = [name for name in CASES if name.startswith(("LennardJones", "Coulomb"))]


@pytest.mark.parametrize("name", PAIR_CASES)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_radial_route_equals_general_route(name, dtype, tol, geometry, fd):
    case = CASES[name](np.random.default_rng(PAIR_CASES.index(name) + 7), geometry)
    assert all(t.radial for t in case.pot.terms)
    (J, e, f), (J0, e0, f0) = both_routes(case.pot, case.x.astype(dtype))
    assert J.dtype == dtype and f.dtype == dtype
    np.testing.assert_array_equal(J.rows, J0.rows)
    np.testing.assert_array_equal(J.cols, J0.cols)
    assert fd.rel_err(J.blocks, J0.blocks) <= tol
    assert fd.rel_err(f, f0) <= tol
    assert e == pytest.approx(e0, rel=tol)
