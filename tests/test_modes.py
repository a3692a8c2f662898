"""Normal modes (mdjac.modes) against independent references.

References: the analytic diatomic frequency sqrt(k/mu) in SI units (scipy.constants), float64
central finite differences of mdjac's forces, the dense solver for the sparse one, and a spring
network whose Hessian is written down by hand. Nothing is compared with a stored number.
"""
import numpy as np
import pytest
import scipy.constants as sc
from mindspore import ops
from scipy.spatial import cKDTree

import mdjac
from mdjac import numerical, terms
from mdjac.analysis import minimise, modes
from mdjac.errors import InputError
from mdjac.jacobian import ForceJacobian, assemble_blocks
from mdjac.jobs import modes_text


# --------------------------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------------------------
def wavenumber_si(k, mu):
    """Harmonic wavenumber (cm^-1) of force constant k (kJ mol^-1 nm^-2) and mass mu (amu), in SI."""
    k_si = k * 1e3 / sc.N_A / 1e-18                     # J m^-2
    mu_si = mu * sc.physical_constants["atomic mass constant"][0]
    return np.sqrt(k_si / mu_si) / (2 * np.pi * sc.c * 100.0)


def fd_jacobian(potential, x, h=1e-5):
    """Central differences of the forces, float64: ForceJacobian of all atoms."""
    n = len(x)
    return ForceJacobian.from_bsr(numerical.central_difference_jacobian(potential.forces, x, h=h).reshape(3 * n, 3 * n))


def random_rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def spring_network(n, seed=0, cutoff=0.6):
    """Random springs at rest length: Jacobian (blocks -k u u^T), masses, positions.

    Every spring is at rest, so the Hessian sum_s k_s (e_i - e_j)(e_i - e_j)^T (x) u_s u_s^T
    has the three translations and three rotations as exact null vectors.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 2.0, (n, 3))
    pairs = cKDTree(x).query_pairs(cutoff, output_type="ndarray")
    u = x[pairs[:, 1]] - x[pairs[:, 0]]
    u /= np.linalg.norm(u, axis=1)[:, None]
    h = rng.uniform(100.0, 1000.0, len(pairs))[:, None, None] * u[:, :, None] * u[:, None, :]
    i, j = pairs.T
    rows, cols, blocks = assemble_blocks(n, np.concatenate([i, j, i, j]), np.concatenate([i, j, j, i]),
                                         -np.concatenate([h, h, -h, -h]))
    return ForceJacobian(n, rows, cols, blocks), rng.uniform(1.0, 20.0, n), x


class Morse(terms.FixedTerm):
    """Morse bond E = D (1 - exp(-a (r - r0)))^2 (test-only term; curvature at r0 is 2 D a^2)."""
    n_body = 2
    relative = True

    def __init__(self, pairs, depth, a, r0):
        pairs = np.asarray(pairs, dtype=np.int64)
        m = len(pairs)
        super().__init__(pairs, tuple(np.full(m, float(v)) for v in (depth, a, r0)))

    def energy(self, q, depth, a, r0):
        r = ops.sqrt((q[..., 0, :] * q[..., 0, :]).sum(-1))
        s = 1.0 - ops.exp(-a * (r - r0))
        return depth * s * s


@pytest.fixture(scope="module")
def spce_water():
    """One flexible SPC/E water as MindSPONGE ships it (template water.spce.yaml, parameters
    'SPCE'), through mdjac's adapter: (Potential, positions at its minimum (3, 3) nm, randomly
    rotated, masses (3,) amu)."""
    from mindsponge import ForceField, Molecule
    from mdjac.sponge import adapt
    molecule = Molecule(template="water.spce.yaml")
    pot = adapt(molecule, ForceField(molecule, parameters="SPCE"))
    x0 = np.asarray(molecule.coordinate.asnumpy()[0], dtype=np.float64)
    x, _ = minimise.minimise_energy(pot, x0 @ random_rotation(3).T + 0.3, gtol=1e-9)
    return pot, x, np.asarray(molecule.atom_mass.asnumpy()[0], dtype=np.float64)


# --------------------------------------------------------------------------------------------
# units
# --------------------------------------------------------------------------------------------
def test_unit_conversion_matches_si():
    k, mu = np.array([1.0, 345000.0, 3e6]), np.array([1.0, 1.06727, 7.0])
    # 1 amu N_A = 1e-3 kg/mol only to 4e-10 since the 2019 SI
    assert np.allclose(modes.eigenvalues_to_wavenumbers(k / mu), wavenumber_si(k, mu), rtol=1e-9)
    nu = np.array([-500.0, -1.0, 0.0, 3.0, 4000.0])
    assert np.allclose(modes.eigenvalues_to_wavenumbers(modes.wavenumbers_to_eigenvalues(nu)), nu)


# --------------------------------------------------------------------------------------------
# diatomics: frequency sqrt(k/mu)
# --------------------------------------------------------------------------------------------
DIATOMIC_MASSES = np.array([15.9994, 1.008])


def diatomic_positions(r0, seed):
    direction = random_rotation(seed)[:, 0]
    return np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3] + r0 * direction])


@pytest.mark.parametrize("kind", ["harmonic", "morse"])
def test_diatomic_frequency_is_sqrt_k_over_mu(kind):
    r0 = 0.1
    if kind == "harmonic":
        k = 345000.0
        term = terms.HarmonicBond([[0, 1]], k, r0)
    else:
        depth, a = 400.0, 22.0
        k = 2 * depth * a * a
        term = Morse([[0, 1]], depth, a, r0)
    x = diatomic_positions(r0, seed=1)
    jac = mdjac.Potential([term]).force_jacobian(x)
    assert jac.dtype == np.float64
    mu = DIATOMIC_MASSES.prod() / DIATOMIC_MASSES.sum()

    nm = mdjac.normal_modes(jac, DIATOMIC_MASSES, positions=x, project="molecule")
    assert nm.n_rigid == 5 and nm.n_modes == 1        # linear: three translations, two rotations
    assert nm.frequencies[0] == pytest.approx(wavenumber_si(k, mu), rel=1e-6)
    assert nm.frequencies_thz[0] == pytest.approx(wavenumber_si(k, mu) * sc.c * 100 / 1e12, rel=1e-6)
    m1, m2 = DIATOMIC_MASSES
    assert nm.reduced_masses[0] == pytest.approx(m1 * m2 * (m1 + m2) / (m1**2 + m2**2), rel=1e-9)
    stretch = nm.displacements[0]
    bond = (x[1] - x[0]) / r0
    assert abs(stretch[1] @ bond) > 0.9 and np.allclose(np.cross(stretch[1], bond), 0, atol=1e-9)

    free = mdjac.normal_modes(jac, DIATOMIC_MASSES, positions=x, project=None)
    assert free.n_modes == 6
    assert np.all(np.abs(free.frequencies[:5]) < 1e-2)
    assert free.frequencies[5] == pytest.approx(nm.frequencies[0], rel=1e-9)


def test_modes_command_takes_an_openmm_system_xml(tmp_path):
    """``mdjac modes peptide.xml`` reads the file as a system (not as a trajectory): a harmonic
    diatomic in OpenMM's System XML gives sqrt(k/mu) at its minimum."""
    import openmm
    from openmm import app, unit
    k, r0 = 345000.0, 0.1
    system = openmm.System()
    for m in DIATOMIC_MASSES:
        system.addParticle(m)
    bond = openmm.HarmonicBondForce()
    bond.addBond(0, 1, r0, k)
    system.addForce(bond)
    (tmp_path / "oh.xml").write_text(openmm.XmlSerializer.serialize(system))
    topology = app.Topology()
    residue = topology.addResidue("OH", topology.addChain())
    for name, element in (("O", "O"), ("H", "H")):
        topology.addAtom(name, app.Element.getBySymbol(element), residue)
    with open(tmp_path / "oh.pdb", "w") as f:
        app.PDBFile.writeFile(topology, diatomic_positions(1.05 * r0, seed=2) * 10 * unit.angstrom, f)
    text = modes_text(str(tmp_path / "oh.xml"))
    mu = DIATOMIC_MASSES.prod() / DIATOMIC_MASSES.sum()
    assert "minimised" in text and f"{wavenumber_si(k, mu):.3f}" in text


# --------------------------------------------------------------------------------------------
# one flexible SPC/E water
# --------------------------------------------------------------------------------------------
def test_water_matches_finite_difference_hessian(spce_water):
    pot, x, masses = spce_water
    assert np.abs(pot.forces(x)).max() < 1e-8            # built at its minimum
    jac = pot.force_jacobian(x)
    projected = mdjac.normal_modes(jac, masses, positions=x, project="molecule")
    reference = mdjac.normal_modes(fd_jacobian(pot, x), masses, positions=x, project="molecule")
    assert projected.n_modes == 3 and projected.n_rigid == 6
    assert np.all(projected.frequencies > 1000.0)
    assert np.abs(projected.frequencies - reference.frequencies).max() < 0.1

    free = mdjac.normal_modes(jac, masses, positions=x)
    assert np.all(np.abs(free.frequencies[:6]) < 0.5)    # six near-zero rigid-body modes
    assert np.allclose(free.frequencies[6:], projected.frequencies, rtol=1e-8)
    # the projected vibrations are orthogonal to every rigid-body direction
    basis = modes.rigid_body_basis(x, masses, "molecule")
    assert np.abs(projected.vectors.reshape(3, -1) @ basis).max() < 1e-10


def test_water_away_from_minimum_still_matches_finite_differences(spce_water):
    pot, x, masses = spce_water
    x = x + np.random.default_rng(5).normal(0.0, 0.004, x.shape)
    got = mdjac.normal_modes(pot.force_jacobian(x), masses, positions=x, project="molecule")
    ref = mdjac.normal_modes(fd_jacobian(pot, x), masses, positions=x, project="molecule")
    assert np.abs(got.frequencies - ref.frequencies).max() < 0.1


# --------------------------------------------------------------------------------------------
# sparse shift-invert against dense
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("project", ["molecule", "periodic"])
def test_sparse_solver_matches_dense(project):
    jac, masses, x = spring_network(300, seed=2)
    dense = mdjac.normal_modes(jac, masses, positions=x, project=project)
    low = mdjac.normal_modes(jac, masses, positions=x, project=project, k=20, method="sparse")
    high = mdjac.normal_modes(jac, masses, positions=x, project=project, k=5, which="highest",
                              method="sparse")
    assert low.n_rigid == dense.n_rigid == (6 if project == "molecule" else 3)
    scale = dense.frequencies.max()
    assert np.abs(low.frequencies - dense.frequencies[:20]).max() < 1e-6 * scale
    assert np.abs(high.frequencies - dense.frequencies[-5:]).max() < 1e-9 * scale
    # same modes: the sparse vectors lie in the span of the dense ones of (nearly) equal eigenvalue
    v_dense = dense.vectors.reshape(dense.n_modes, -1)
    for lam, v in zip(low.eigenvalues, low.vectors.reshape(20, -1)):
        near = np.abs(dense.eigenvalues - lam) < 10 * modes.LANCZOS_TOL * max(abs(lam), 1e-3)
        assert np.linalg.norm(v_dense[near] @ v) == pytest.approx(1.0, abs=1e-6)


def test_dense_with_k_selects_ends():
    jac, masses, x = spring_network(60, seed=4)
    full = mdjac.normal_modes(jac, masses, positions=x, project="molecule")
    scale = 1e-12 * full.eigenvalues.max()       # the same LAPACK driver, asked for a subset
    low = mdjac.normal_modes(jac, masses, x, "molecule", k=4)
    assert np.allclose(low.eigenvalues, full.eigenvalues[:4], rtol=0, atol=scale)
    top = mdjac.normal_modes(jac, masses, x, "molecule", k=4, which="highest")
    assert np.allclose(top.eigenvalues, full.eigenvalues[-4:], rtol=0, atol=scale)


def test_vectors_are_orthonormal_and_diagonalise_mass_weighted_hessian():
    jac, masses, x = spring_network(40, seed=7)
    nm = mdjac.normal_modes(jac, masses, positions=x, project="periodic")
    v = nm.vectors.reshape(nm.n_modes, -1)
    assert np.allclose(v @ v.T, np.eye(nm.n_modes), atol=1e-10)
    w = np.repeat(1.0 / np.sqrt(masses), 3)
    d = -w[:, None] * jac.to_dense().reshape(120, 120) * w[None, :]
    assert np.allclose(v @ d @ v.T, np.diag(nm.eigenvalues), atol=1e-8 * np.abs(d).max())


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------
def test_bad_input_raises_one_line_input_error():
    jac, masses, x = spring_network(10, seed=1)
    cases = [dict(masses=masses[:-1]), dict(masses=np.where(np.arange(10) == 3, 0.0, masses)),
             dict(masses=-masses), dict(project="crystal"), dict(k=0), dict(k=31),
             dict(which="middle"), dict(project="molecule", positions=None),
             dict(positions=x[:5], project="molecule"), dict(masses=3.0), dict(masses=["a"] * 10)]
    for case in cases:
        kwargs = dict(masses=masses, positions=x, project="periodic") | case
        with pytest.raises(InputError) as err:
            mdjac.normal_modes(jac, **kwargs)
        assert "\n" not in str(err.value)
    broken = ForceJacobian(10, jac.rows, jac.cols, np.where(jac.blocks == 0, np.nan, jac.blocks))
    with pytest.raises(InputError, match="NaN"):
        mdjac.normal_modes(broken, masses)
    with pytest.raises(InputError, match="all 10 atoms"):
        mdjac.normal_modes(jac.select([0, 1, 2]), masses, x, project="molecule")


def test_partial_jacobian_takes_masses_of_the_whole_system():
    jac, masses, x = spring_network(12, seed=3)
    part = jac.select([2, 5, 7])
    a = mdjac.normal_modes(part, masses)                  # (N,) masses, picked by atoms
    b = mdjac.normal_modes(part, masses[[2, 5, 7]])       # (n,) masses
    assert np.array_equal(a.eigenvalues, b.eigenvalues) and np.array_equal(a.atoms, [2, 5, 7])


# --------------------------------------------------------------------------------------------
# the command line's text, from an mdjac file
# --------------------------------------------------------------------------------------------
def test_modes_command_reads_an_mdjac_file(tmp_path, spce_water):
    from mdjac.io.h5md_writer import H5MDWriter as TrajectoryWriter
    pot, x, masses = spce_water
    path = tmp_path / "water.h5"
    with TrajectoryWriter(path, 3, names=["OW", "HW1", "HW2"], masses=masses, dtype=np.float64) as w:
        for step in range(2):
            xs = x + 0.001 * step
            w.append(step, 0.1 * step, xs, None, pot.forces(xs), pot.force_jacobian(xs))
    text = modes_text(str(path), frame=1)
    expected = mdjac.normal_modes(pot.force_jacobian(x), masses, x, project="molecule")
    for f in expected.frequencies:
        assert f"{f:.3f}" in text
    assert "6 rigid-body modes removed" in text
    with pytest.raises(InputError, match="out of range"):
        modes_text(str(path), frame=2)


# --------------------------------------------------------------------------------------------
# alanine dipeptide (AMBER ff14SB through the MindSPONGE adapter), minimised
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def alanine():
    """(System, minimised positions, largest remaining force, Jacobian there)."""
    from mdjac.catalogue import load_system
    system = load_system("alanine-dipeptide")
    x, fmax = minimise.minimise_energy(system.potential, system.positions)
    return system, x, fmax, system.potential.force_jacobian(x)


@pytest.mark.slow
def test_alanine_dipeptide_minimum_has_only_real_vibrations(alanine):
    system, x, fmax, jac = alanine
    assert fmax < 1e-6
    assert np.abs(system.potential.forces(x)).max() == pytest.approx(fmax)
    vib = mdjac.normal_modes(jac, system.masses, positions=x, project="molecule")
    assert vib.n_modes == 3 * 22 - 6
    assert vib.frequencies.min() > 10.0                   # all real, none soft
    free = mdjac.normal_modes(jac, system.masses, positions=x)
    assert np.all(np.abs(free.frequencies[:6]) < 0.5)     # the only imaginary ones: rigid-body
    assert free.frequencies[6] > 10.0
    assert np.allclose(free.frequencies[6:], vib.frequencies, rtol=1e-6)


@pytest.mark.slow
def test_alanine_dipeptide_sparse_lowest_20_equal_dense(alanine):
    system, x, _, jac = alanine
    dense = mdjac.normal_modes(jac, system.masses, positions=x, project="molecule")
    sparse = mdjac.normal_modes(jac, system.masses, positions=x, project="molecule", k=20,
                                method="sparse")
    assert np.allclose(sparse.frequencies, dense.frequencies[:20], rtol=modes.LANCZOS_TOL, atol=0)
    overlaps = np.abs(np.einsum("kia,kia->k", sparse.vectors, dense.vectors[:20]))
    assert np.allclose(overlaps, 1.0, atol=1e-6)          # non-degenerate: the same vectors


@pytest.mark.slow
def test_modes_command_minimises_a_system(alanine):
    system, x, _, jac = alanine
    text = modes_text(system, k=5)
    expected = mdjac.normal_modes(jac, system.masses, positions=x, project="molecule", k=5)
    assert "minimised" in text and "6 rigid-body modes removed (molecule)" in text
    for f in expected.frequencies:
        assert f"{f:.3f}" in text
    with pytest.raises(InputError, match="unknown system"):
        modes_text("no-such-system")


def test_both_minimisers_reach_the_same_water_minimum(spce_water, monkeypatch):
    pot, x, masses = spce_water
    start = x + np.random.default_rng(9).normal(0.0, 0.01, x.shape)
    newton, f_newton = minimise.minimise_energy(pot, start)
    monkeypatch.setattr(minimise, "DENSE_MAX_DOF", 0)              # force the L-BFGS-B path
    lbfgs, f_lbfgs = minimise.minimise_energy(pot, start, gtol=1e-4)
    assert f_newton < 1e-6 and f_lbfgs < 1e-3
    # same internal geometry (bond lengths and angle), whatever the rigid-body motion
    def internal(y):
        u, v = y[1] - y[0], y[2] - y[0]
        return np.linalg.norm(u), np.linalg.norm(v), np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v)
    assert np.allclose(internal(newton), internal(x), atol=1e-10)
    assert np.allclose(internal(lbfgs), internal(x), atol=1e-6)


def test_minimiser_reports_progress_on_stderr(capsys):
    """progress=True: a bar on stderr with the energy and the largest force; the same minimum as without it."""
    pot = mdjac.Potential([terms.HarmonicBond([[0, 1], [1, 2]], 3e5, 0.1), terms.HarmonicAngle([[0, 1, 2]], 400.0, 1.9)])
    start = np.array([[0.0, 0.0, 0.0], [0.11, 0.0, 0.0], [0.14, 0.08, 0.01]])
    quiet, f_quiet = minimise.minimise_energy(pot, start, progress=False)
    assert capsys.readouterr().err == ""
    shown, f_shown = minimise.minimise_energy(pot, start, progress=True)
    err = capsys.readouterr().err
    assert "minimising" in err and "max |F|" in err and "step" in err
    assert np.array_equal(quiet, shown) and f_quiet == f_shown < 1e-6
    assert np.isclose(np.linalg.norm(shown[1] - shown[0]), 0.1, atol=1e-9)


# --------------------------------------------------------------------------------------------
# off a minimum: the lowest are the most negative; sigma; memory refused up front
# --------------------------------------------------------------------------------------------
def strained_network(n, seed=0, cutoff=0.6):
    """Random springs away from their rest lengths (most compressed): Jacobian, masses, positions.

    A spring of stiffness k, rest length l0 and length l has the Hessian block
    k [u u^T + (1 - l0 / l)(I - u u^T)]; compressed (l0 > l) its transverse part is negative, so
    the network has imaginary modes, as an MD frame does. Translations stay exact null vectors.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 2.0, (n, 3))
    pairs = cKDTree(x).query_pairs(cutoff, output_type="ndarray")
    d = x[pairs[:, 1]] - x[pairs[:, 0]]
    length = np.linalg.norm(d, axis=1)
    u = d / length[:, None]
    rest = length * rng.uniform(0.9, 1.3, len(pairs))
    k = rng.uniform(100.0, 1000.0, len(pairs))
    uu = u[:, :, None] * u[:, None, :]
    h = k[:, None, None] * (uu + (1.0 - rest / length)[:, None, None] * (np.eye(3) - uu))
    i, j = pairs.T
    rows, cols, blocks = assemble_blocks(n, np.concatenate([i, j, i, j]), np.concatenate([i, j, j, i]),
                                         -np.concatenate([h, h, -h, -h]))
    return ForceJacobian(n, rows, cols, blocks), rng.uniform(1.0, 20.0, n), x


def projected_eigh(jac, masses):
    """numpy.linalg.eigh of D = M^-1/2 (-J) M^-1/2 on the complement of the three mass-weighted
    translations (an orthonormal basis of it from scipy.linalg.null_space): eigenvalues ascending."""
    import scipy.linalg
    n = len(masses)
    w = np.repeat(1.0 / np.sqrt(masses), 3)
    d = -w[:, None] * jac.to_dense().reshape(3 * n, 3 * n) * w[None, :]
    translations = np.kron(np.sqrt(masses)[:, None], np.eye(3))          # (3n, 3)
    q = scipy.linalg.null_space(translations.T)
    return np.linalg.eigvalsh(q.T @ (0.5 * (d + d.T)) @ q)


@pytest.fixture(scope="module")
def strained():
    jac, masses, x = strained_network(250, seed=11)
    return jac, masses, x, projected_eigh(jac, masses)


@pytest.mark.parametrize("method", ["dense", "sparse", "lobpcg", "auto"])
def test_lowest_k_off_a_minimum_are_the_smallest_eigenvalues(strained, method, monkeypatch):
    jac, masses, x, reference = strained
    assert reference[5] < -5.0 * abs(modes.wavenumbers_to_eigenvalues(-10.0))   # well below -10 cm^-1
    if method == "auto":
        monkeypatch.setattr(modes, "DENSE_MAX_DOF", 300)      # 750 degrees of freedom: Lanczos
    low = mdjac.normal_modes(jac, masses, positions=x, project="periodic", k=6, method=method)
    assert low.solver.startswith({"dense": "dense", "lobpcg": "LOBPCG"}.get(method, "Lanczos"))
    # dense: to rounding; LOBPCG and Lanczos: each within its residual bound, LANCZOS_TOL |lambda|
    bound = (1e-12 if method == "dense" else modes.LANCZOS_TOL) * np.abs(reference[:6]) + 1e-12 * np.abs(reference).max()
    assert np.all(np.abs(low.eigenvalues - reference[:6]) <= bound)
    v = low.vectors.reshape(6, -1)                # eigenvectors of D, orthogonal to the translations
    w = np.repeat(1.0 / np.sqrt(masses), 3)
    d = -w[:, None] * jac.to_dense().reshape(v.shape[1], -1) * w[None, :]
    assert np.all(np.linalg.norm(d @ v.T - v.T * low.eigenvalues, axis=0) <= 1.5 * bound)
    translations = np.kron(np.sqrt(masses)[:, None], np.eye(3)) / np.sqrt(masses.sum())    # orthonormal
    assert np.abs(v @ translations).max() < 1e-8


def test_lobpcg_and_lanczos_give_the_same_lowest_modes_as_dense_eigh_where_they_cluster(strained):
    """Off a minimum the lowest eigenvalues crowd together; LOBPCG and Lanczos (the default) find the same
    ones as dense eigh of the projected matrix, each within its residual bound, and LOBPCG's vectors
    diagonalise D with residuals below that bound."""
    jac, masses, x, reference = strained
    k = 12
    got = {method: mdjac.normal_modes(jac, masses, positions=x, project="periodic", k=k, method=method)
           for method in ("sparse", "lobpcg")}
    assert got["lobpcg"].solver.startswith("LOBPCG") and got["sparse"].solver.startswith("Lanczos")
    bound = modes.LANCZOS_TOL * np.abs(reference[:k])
    for found in got.values():
        assert np.all(np.abs(found.eigenvalues - reference[:k]) <= bound)
    v = got["lobpcg"].vectors.reshape(k, -1)
    w = np.repeat(1.0 / np.sqrt(masses), 3)
    d = -w[:, None] * jac.to_dense().reshape(v.shape[1], -1) * w[None, :]
    residuals = np.linalg.norm(d @ v.T - v.T * got["lobpcg"].eigenvalues, axis=0)
    assert np.all(residuals <= bound)
    assert np.allclose(v @ v.T, np.eye(k), atol=1e-10)


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_sigma_gives_the_modes_nearest_it(strained, method):
    jac, masses, x, reference = strained
    sigma = 150.0                                          # cm^-1
    target = modes.wavenumbers_to_eigenvalues(sigma)
    nearest = np.sort(reference[np.argsort(np.abs(reference - target))[:4]])
    got = mdjac.normal_modes(jac, masses, positions=x, project="periodic", k=4, sigma=sigma, method=method)
    assert np.abs(got.eigenvalues - nearest).max() < 1e-9 * np.abs(reference).max()
    assert "nearest 150 cm^-1" in got.solver


def test_memory_over_budget_is_refused_with_the_numbers(strained):
    jac, masses, x, _ = strained
    dense_bytes = 8 * 750 ** 2
    for kwargs in (dict(), dict(k=5, method="dense"), dict(k=5, sigma=-10.0, method="dense")):
        with pytest.raises(InputError, match=r"dense eigh of 750 degrees of freedom needs about \d\.\d MB of "
                                             r"memory and 2\.2 MB is available"):
            mdjac.normal_modes(jac, masses, x, "periodic", max_memory=dense_bytes / 2, **kwargs)
    # the automatic choice falls back to Lanczos when dense eigh does not fit
    low = mdjac.normal_modes(jac, masses, x, "periodic", k=3, max_memory=dense_bytes / 2)
    assert low.solver.startswith("Lanczos")
    with pytest.raises(InputError, match="Lanczos of 750 degrees of freedom needs about"):
        mdjac.normal_modes(jac, masses, x, "periodic", k=3, max_memory=1e5)
    with pytest.raises(InputError, match="LOBPCG of 750 degrees of freedom needs about"):
        mdjac.normal_modes(jac, masses, x, "periodic", k=3, method="lobpcg", max_memory=1e5)
    with pytest.raises(InputError, match="LOBPCG finds the lowest modes only"):
        mdjac.normal_modes(jac, masses, x, "periodic", k=3, sigma=10.0, method="lobpcg")
    with pytest.raises(InputError, match="give k"):
        mdjac.normal_modes(jac, masses, x, "periodic", sigma=10.0)
