"""Smooth PME (mdjac.longrange.pme, mdjac.longrange.pme_grid, mdjac.pme_jacobian) against independent references.

* OpenMM's NonbondedForce.PME on the Reference platform (double precision): alpha and grid
  (getPMEParametersInContext, or given to both), energy and forces on a non-neutral water box with scaled
  exceptions, and through the adapter on alanine dipeptide in TIP3P (amber14);
* central differences of OpenMM's reciprocal-space forces (their own force group): Jacobian
  columns, diagonal blocks and a matvec along a random direction;
* a box whose grid (6 x 7 x 8) is smaller than the stencil's reach, so stencils wrap around: energy
  and forces against OpenMM's PME on that grid, the Jacobian against the dense strategy (the whole
  energy as one MindSpore function, the article's identity mask);
* OpenMM's B-spline recursion (update_bsplines, ported here) and hand-derived M_5'' for the splines;
* float32 against float64.
"""
import math

import numpy as np
import pytest

import mdjac
from mdjac.longrange import pme, pme_grid, splines
from mdjac.analysis.modes import LANCZOS_TOL
from mdjac.numerical import central_difference_columns

openmm = pytest.importorskip("openmm")
from openmm import unit  # noqa: E402

from helpers import atoms_away_from_cutoff, read_without_mindspore, rel, small_waters  # noqa: E402
from openmm_reference import charges_energy_forces, openmm_context, openmm_energy_forces  # noqa: E402


# ----------------------------------------------------------------------------- references
def openmm_bsplines(fraction, order=5):
    """OpenMM's ReferencePME::update_bsplines for one fraction: (weights, derivatives), each (order,)."""
    dr = fraction
    data = np.zeros(order)
    data[order - 1], data[1], data[0] = 0.0, dr, 1 - dr
    for k in range(3, order):
        div = 1.0 / (k - 1.0)
        data[k - 1] = div * dr * data[k - 2]
        for l in range(1, k - 1):
            data[k - l - 1] = div * ((dr + l) * data[k - l - 2] + (k - l - dr) * data[k - l - 1])
        data[0] = div * (1 - dr) * data[0]
    ddata = np.empty(order)
    ddata[0] = -data[0]
    for k in range(1, order):
        ddata[k] = data[k - 1] - data[k]
    div = 1.0 / (order - 1)
    data[order - 1] = div * dr * data[order - 2]
    for l in range(1, order - 1):
        data[order - l - 1] = div * ((dr + l) * data[order - l - 2] + (order - l - dr) * data[order - l - 1])
    data[0] = div * (1 - dr) * data[0]
    return data, ddata


def m3(x):
    """The cardinal B-spline of order 3 (hand-written): x^2/2, (-2x^2 + 6x - 3)/2, (3 - x)^2/2 on [0, 3)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where((x >= 0) & (x < 1), x * x / 2, np.where((x >= 1) & (x < 2), (-2 * x * x + 6 * x - 3) / 2,
                                                            np.where((x >= 2) & (x < 3), (3 - x) ** 2 / 2, 0.0)))


def pme_context(charges, exclusions, box, cutoff, tolerance, exceptions=(), parameters=None, reciprocal_group=1):
    """(context, force): a Reference context of NonbondedForce.PME (charges only), the reciprocal part in its own force group."""
    forces = []

    def configure(force):
        force.setReciprocalSpaceForceGroup(reciprocal_group)
        if parameters is not None:
            force.setPMEParameters(*parameters)
        forces.append(force)
    context = openmm_context(charges, exclusions, box, cutoff, tolerance, exceptions, method="PME", configure=configure)
    return context, forces[0]


def charged_waters(n_waters, box, seed, extra=0.25):
    """Waters with a net charge (``extra`` e on the first oxygen) and scaled exceptions between molecules 0 and 1."""
    x, charges, exclusions = small_waters(n_waters, box, seed=seed)
    charges = charges.copy()
    charges[0] += extra
    exceptions = [(0, 3, 0.5 * charges[0] * charges[3]), (1, 4, 0.8333 * charges[1] * charges[4])]
    return x, charges, exclusions, exceptions


def pairs_and_products(exceptions):
    """OpenMM's exceptions [(i, j, charge product), ...] as mdjac's (pairs (M, 2), products (M,))."""
    return np.array([e[:2] for e in exceptions]), np.array([e[2] for e in exceptions])


# ----------------------------------------------------------------------------- splines
def test_spline_weights_and_derivatives_equal_openmms_recursion():
    """Weights against OpenMM's recursion, M_5' (AD) against its ddata, M_5'' (AD) against M_3(x) - 2 M_3(x-1) + M_3(x-2)."""
    fractions = np.random.default_rng(0).random((40, 3))
    fractions[0] = [0.0, 1e-12, 1 - 1e-12]
    w = pme_grid.spline_weights(fractions)
    dw, d2w = splines.spline_derivatives(fractions, np.float64)
    for i in range(len(fractions)):
        for a in range(3):
            data, ddata = openmm_bsplines(fractions[i, a])
            assert np.allclose(w[i, a], data, rtol=0, atol=1e-15)
            assert np.allclose(dw[i, a], ddata, rtol=0, atol=1e-14)
            x = fractions[i, a] + 4 - np.arange(5)               # the argument of M_5 in column k
            assert np.allclose(d2w[i, a], m3(x) - 2 * m3(x - 1) + m3(x - 2), rtol=0, atol=1e-13)


def test_spread_equals_spread_columns_and_gather_is_its_adjoint():
    """spread gives what spread_columns gives a single column, on stencils that wrap around the
    grid; gather is its adjoint, <spread c, psi> = <c, gather psi>, and gather_columns gives what
    gather gives; stencil factors of chosen atoms are those atoms' rows."""
    rng = np.random.default_rng(3)
    grid = np.array([9, 10, 12])
    origins = np.stack([rng.integers(0, k, 200) for k in grid], axis=1)
    derivatives = [rng.normal(size=(200, 3, 5)) for _ in range(3)]
    factors = pme_grid.stencil_factors(derivatives, pme_grid.GRADIENT_ORDERS)
    for p, orders in enumerate(pme_grid.GRADIENT_ORDERS):
        for a in range(3):
            np.testing.assert_array_equal(factors[:, p, a], derivatives[orders[a]][:, a])
    atoms = rng.permutation(200)[:50]
    np.testing.assert_array_equal(pme_grid.stencil_factors(derivatives, pme_grid.CURVATURE_ORDERS, atoms),
                                  pme_grid.stencil_factors([d[atoms] for d in derivatives], pme_grid.CURVATURE_ORDERS))
    c, psi = rng.normal(size=(200, factors.shape[1])), rng.normal(size=tuple(grid))
    rho, out = np.zeros(tuple(grid)), np.empty_like(c)
    pme_grid.spread(origins, factors, c, rho)
    pme_grid.gather(origins, factors, psi, out)
    columns = np.zeros(tuple(grid) + (1,))
    pme_grid.spread_columns(origins, factors, np.ascontiguousarray(c[:, None, :]), columns)
    np.testing.assert_allclose(rho, columns[..., 0], rtol=0, atol=1e-12)
    gathered = np.empty((200, 1, factors.shape[1]))
    pme_grid.gather_columns(origins, factors, np.ascontiguousarray(psi[..., None]), gathered)
    np.testing.assert_allclose(gathered[:, 0], out, rtol=0, atol=1e-12)
    assert math.isclose(np.vdot(rho, psi), np.vdot(c, out), rel_tol=1e-12)


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("box", [(2.0, 2.2, 2.6), (3.1, 3.41, 4.03), (1.9, 5.3, 7.7)])
def test_alpha_and_grid_equal_openmms_choice(box):
    context, force = pme_context([1.0, -1.0], [], np.array(box), 0.9, 5e-4)
    alpha, *grid = force.getPMEParametersInContext(context)
    got_alpha, got_grid = pme_grid.pme_parameters(5e-4, 0.9, box)
    assert got_alpha == pytest.approx(alpha, rel=1e-15) and got_grid.tolist() == grid
    # alpha and grid given (setPMEParameters): both are used, energy and forces to OpenMM's
    box = np.array(box)
    x, charges, exclusions, exceptions = charged_waters(16, box, seed=10)
    context, force = pme_context(charges, exclusions, box, 0.9, 5e-4, exceptions, parameters=(3.1, 11, 13, 16),
                                 reciprocal_group=0)
    assert force.getPMEParametersInContext(context) == pytest.approx([3.1, 11, 13, 16], rel=1e-15)
    assert pme_grid.pme_parameters(5e-4, 0.9, box, alpha=3.1, grid=(11, 13, 16))[1].tolist() == [11, 13, 16]
    terms = pme.pme_terms(charges, 0.9, box, exclusions=exclusions, exceptions=pairs_and_products(exceptions),
                          alpha=3.1, grid=(11, 13, 16))
    e_ref, f_ref = charges_energy_forces(context, x)
    e, f = mdjac.Potential(terms, box=box).energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < 1e-9, (e, e_ref)
    assert rel(f, f_ref) < 1e-9


def test_grid_rounding_of_other_platforms():
    """CPU: the next size of prime factors up to 7 times at most one 11; GPU platforms: up to 7 (factorised here)."""
    def factors(n):
        out, p = [], 2
        while n > 1:
            while n % p == 0:
                out.append(p)
                n //= p
            p += 1
        return out

    def cpu_friendly(n):
        f = factors(n)
        if 11 in f:
            f.remove(11)
        return all(p <= 7 for p in f)

    def gpu_friendly(n):
        return all(p <= 7 for p in factors(n))
    for n in range(6, 120):
        cpu, gpu = pme_grid.GRID_ROUNDING["CPU"](n), pme_grid.GRID_ROUNDING["CUDA"](n)
        assert cpu_friendly(cpu) and not any(cpu_friendly(m) for m in range(n, cpu))
        assert gpu_friendly(gpu) and not any(gpu_friendly(m) for m in range(n, gpu))


# ----------------------------------------------------------------------------- energy and forces
def test_non_neutral_box_with_exceptions_equals_openmm():
    """A box with net charge (plasma term), exclusions and scaled exceptions: energy and forces to OpenMM's PME."""
    box = np.array([2.0, 2.1, 2.3])
    x, charges, exclusions, exceptions = charged_waters(60, box, seed=1)
    context, _ = pme_context(charges, exclusions, box, 0.8, 5e-4, exceptions, reciprocal_group=0)
    e_ref, f_ref = charges_energy_forces(context, x)
    terms = pme.pme_terms(charges, 0.8, box, exclusions=exclusions, exceptions=pairs_and_products(exceptions))
    e, f = mdjac.Potential(terms, box=box).energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < 1e-9, (e, e_ref)
    assert rel(f, f_ref) < 1e-9
    reciprocal = terms[-1]
    assert reciprocal.constant_energy(box) != reciprocal.self_energy         # the plasma term is there


@pytest.mark.slow      # builds amber14 and differentiates a solvated system
def test_solvated_peptide_equals_openmm_through_the_adapter(amber14, solvated_peptide):
    """Alanine dipeptide in TIP3P (amber14, PME at 5e-4): the NonbondedForce's energy and forces, and
    Jacobian columns of two atoms, against OpenMM's Reference PME."""
    from openmm import app
    from openmm_reference import reference_context
    from mdjac.openmm import adapt, force_terms

    topology, x, box = solvated_peptide
    system = amber14.createSystem(topology, nonbondedMethod=app.PME, nonbondedCutoff=0.8 * unit.nanometer,
                                  constraints=None, rigidWater=False, ewaldErrorTolerance=5e-4)
    context = reference_context(system, x)
    index, _, terms = next(t for t in force_terms(system) if t[1] == "NonbondedForce")
    assert any(isinstance(t, pme.PMEReciprocal) for t in terms)
    potential = mdjac.Potential(terms, box=box, n_atoms=len(x))
    e_ref, f_ref = openmm_energy_forces(context, {index})
    e, f = potential.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < 1e-9, (e, e_ref)
    assert rel(f, f_ref) < 1e-9
    whole = adapt(system)
    e_all, _ = openmm_energy_forces(context, set(range(system.getNumForces())))
    assert abs(whole.energy(x) - e_all) / abs(e_all) < 1e-9
    # Jacobian columns of two atoms away from the cutoff (the truncated direct space is smooth there)
    smooth = atoms_away_from_cutoff(x, box, 0.8, 2e-3)
    columns = (3 * np.array([smooth[5], smooth[len(smooth) // 2]])[:, None] + np.arange(3)).ravel()
    fd = central_difference_columns(lambda y: openmm_energy_forces(context, {index}, y)[1], x, columns)
    J = potential.force_jacobian(x)
    assert J.long_range is not None
    unit_vectors = np.zeros((3 * len(x), len(columns)))
    unit_vectors[columns, np.arange(len(columns))] = 1.0
    got = J.matvec(unit_vectors)
    for c in range(len(columns)):
        assert rel(got[:, c], fd[:, c]) < 1e-7, columns[c]


# ----------------------------------------------------------------------------- the Jacobian against OpenMM's reciprocal forces
@pytest.fixture(scope="module")
def reciprocal_only():
    """A charged water box; mdjac's PMEReciprocal alone and OpenMM's reciprocal-space force group."""
    box = np.array([1.6, 1.7, 1.8])
    x, charges, exclusions, exceptions = charged_waters(30, box, seed=2)
    context, force = pme_context(charges, exclusions, box, 0.7, 5e-4, exceptions)
    alpha, *grid = force.getPMEParametersInContext(context)
    term = pme.PMEReciprocal(charges, alpha=alpha, grid=grid)
    return mdjac.Potential([term], box=box), x, context


def test_reciprocal_forces_equal_openmm(reciprocal_only):
    potential, x, context = reciprocal_only
    e_ref, f_ref = openmm_energy_forces(context, {1}, x)
    e, f = potential.energy_and_forces(x)                     # the mesh sum, self and plasma terms, as OpenMM's group
    assert abs(e - e_ref) / abs(e_ref) < 1e-9, (e, e_ref)
    assert rel(f, f_ref) < 1e-9


def test_jacobian_columns_diagonal_and_matvec_equal_central_differences(reciprocal_only):
    """Columns (curvature blocks plus the mesh operator), the diagonal blocks and J v along a random v,
    against float64 central differences of OpenMM's reciprocal-space forces."""
    potential, x, context = reciprocal_only
    J = potential.force_jacobian(x)
    atoms = [0, 1, 17, 50]
    columns = (3 * np.array(atoms)[:, None] + np.arange(3)).ravel()
    fd = central_difference_columns(lambda y: openmm_energy_forces(context, {1}, y)[1], x, columns)
    unit_vectors = np.zeros((3 * len(x), len(columns)))
    unit_vectors[columns, np.arange(len(columns))] = 1.0
    got = J.matvec(unit_vectors)
    assert rel(got, fd) < 2e-8
    diagonal = J.diagonal()
    for k, a in enumerate(atoms):
        assert rel(diagonal[a], fd[3 * a:3 * a + 3, 3 * k:3 * k + 3]) < 3e-8
    v = np.random.default_rng(3).normal(size=x.shape)
    h = 1e-5
    forward, backward = (openmm_energy_forces(context, {1}, x + s * h * v)[1] for s in (1, -1))
    assert rel(J.matvec(v), (forward - backward) / (2 * h)) < 5e-7


# ----------------------------------------------------------------------------- against the dense strategy
def test_structured_jacobian_equals_dense_strategy_on_a_wrapping_grid():
    """A 1.2 nm box on a 6 x 7 x 8 grid (the 5-point stencil wraps around it), net charge: energy and forces
    equal OpenMM's PME on that grid; the structured Jacobian (blocks + mesh operator) equals the whole
    energy's dense Hessian; so do diagonal(), matvec and a selection."""
    box = np.array([1.2, 1.25, 1.3])
    x, charges, exclusions, exceptions = charged_waters(12, box, seed=3, extra=0.3)
    terms = pme.pme_terms(charges, 0.55, box, exclusions=exclusions, alpha=3.0, grid=(6, 7, 8),
                          exceptions=pairs_and_products(exceptions))
    potential = mdjac.Potential(terms, box=box)
    context, force = pme_context(charges, exclusions, box, 0.55, 5e-4, exceptions, parameters=(3.0, 6, 7, 8),
                                 reciprocal_group=0)
    assert force.getPMEParametersInContext(context) == pytest.approx([3.0, 6, 7, 8], rel=1e-15)
    e_ref, f_ref = charges_energy_forces(context, x)
    e, f = potential.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < 1e-9, (e, e_ref)
    assert rel(f, f_ref) < 1e-9
    J = potential.force_jacobian(x)
    dense = potential.force_jacobian(x, strategy="dense").to_dense()
    n = len(x)
    assert rel(J.to_dense(), dense) < 1e-10
    assert rel(J.diagonal(), np.einsum("iaib->iab", dense)) < 1e-10
    v = np.random.default_rng(4).normal(size=(n, 3))
    assert rel(J.matvec(v), (dense.reshape(3 * n, 3 * n) @ v.ravel()).reshape(n, 3)) < 1e-10
    block = np.random.default_rng(5).normal(size=(3 * n, 5))       # the mesh part's matmat: one spread of all columns
    assert rel(J.long_range.matvec(block), np.stack([J.long_range.matvec(c) for c in block.T], axis=1)) < 1e-12
    sel = np.array([0, 5, 6, 20, 35])
    part = J.select(sel)
    assert rel(part.to_dense(), dense[np.ix_(sel, range(3), sel, range(3))]) < 1e-10
    assert rel(potential.force_jacobian(x, atoms=sel).to_dense(), dense[np.ix_(sel, range(3), sel, range(3))]) < 1e-10


# ----------------------------------------------------------------------------- float32
def test_float32_agrees_with_float64(reciprocal_only):
    potential, x, _ = reciprocal_only
    e64, f64 = potential.energy_and_forces(x)
    e32, f32 = potential.energy_and_forces(x.astype(np.float32))
    assert abs(e32 - e64) / abs(e64) < 1e-4 and rel(f32, f64) < 1e-4
    J64, J32 = potential.force_jacobian(x), potential.force_jacobian(x.astype(np.float32))
    assert J32.dtype == np.float32
    assert rel(J32.diagonal(), J64.diagonal()) < 1e-4
    v = np.random.default_rng(5).normal(size=x.shape)
    assert rel(J32.matvec(v), J64.matvec(v)) < 1e-4


def test_bad_parameters_are_refused():
    with pytest.raises(mdjac.InputError, match="alpha"):
        pme.PMEReciprocal([1.0, -1.0])
    with pytest.raises(mdjac.InputError, match="grid"):
        pme_grid.pme_parameters(5e-4, 0.9, (2, 2, 2), alpha=3.0)
    with pytest.raises(mdjac.InputError, match="platform"):
        pme_grid.pme_parameters(5e-4, 0.9, (2, 2, 2), platform="Metal")
    assert math.isclose(pme_grid.pme_parameters(5e-4, 0.9, (2, 2, 2))[0], math.sqrt(-math.log(1e-3)) / 0.9)


def test_normal_modes_periodic_by_lanczos_equal_dense():
    """mdjac.normal_modes(project='periodic') on a PME Jacobian: the Lanczos solver on its matvec
    gives the dense solver's lowest modes."""
    box = np.array([1.2, 1.25, 1.3])
    x, charges, exclusions = small_waters(12, box, seed=6)
    from mdjac import terms
    bonds = terms.HarmonicBond(exclusions[np.arange(len(exclusions)) % 3 != 2], 3e5, 0.1)
    potential = mdjac.Potential(pme.pme_terms(charges, 0.55, box, exclusions=exclusions, tolerance=5e-4) + [bonds], box=box)
    J = potential.force_jacobian(x)
    masses = np.tile([15.999, 1.008, 1.008], 12)
    dense = mdjac.normal_modes(J, masses, project="periodic", k=6, method="dense")
    lanczos = mdjac.normal_modes(J, masses, project="periodic", k=6, method="sparse")
    assert dense.eigenvalues.shape == (6,)
    assert np.allclose(lanczos.eigenvalues, dense.eigenvalues, rtol=LANCZOS_TOL, atol=1e-8 * np.abs(dense.eigenvalues).max())


def test_h5md_file_rebuilds_the_mesh_part(tmp_path):
    """A float64 file stores PME's recipe once (kind, grid, alpha, constant, charges); read back, each
    frame's whole Jacobian (blocks and mesh operator, rebuilt from its positions and box) is the one
    written; an appended run keeps the recipe, and a different one is refused in one line."""
    from mdjac.io.h5md_reader import describe
    from mdjac.io.h5md_writer import H5MDWriter

    box = np.array([1.2, 1.25, 1.3])
    x, charges, exclusions = small_waters(8, box, seed=7)
    potential = mdjac.Potential(pme.pme_terms(charges, 0.55, box, exclusions=exclusions, alpha=3.0, grid=(6, 7, 8)), box=box)
    frames = [x, x + np.random.default_rng(8).normal(scale=0.01, size=x.shape)]
    jacobians = [potential.force_jacobian(y) for y in frames]
    path = str(tmp_path / "pme.h5md")
    with H5MDWriter(path, len(x), periodic=True, forces=False, jacobian_atoms="all", dtype=np.float64) as writer:
        for k, (y, J) in enumerate(zip(frames, jacobians)):
            writer.append(k, 0.1 * k, y, box=box, jacobian=J)
    v = np.random.default_rng(9).normal(size=x.shape)
    with mdjac.open_trajectory(path) as trajectory:
        for k, J in enumerate(jacobians):
            got = trajectory[k].jacobian
            assert type(got.long_range).__name__ == "PMEJacobian"
            assert rel(got.matvec(v), J.matvec(v)) < 1e-12 and rel(got.diagonal(), J.diagonal()) < 1e-12
    info = describe(path)["long_range"]
    assert info["kind"] == "pme-mesh-1" and info["grid"] == [6, 7, 8] and info["alpha"] == 3.0
    with H5MDWriter(path, len(x), periodic=True, forces=False, jacobian_atoms="all", dtype=np.float64, mode="a") as writer:
        writer.append(2, 0.2, frames[1], box=box, jacobian=jacobians[1])
        other = mdjac.Potential([pme.PMEReciprocal(charges, alpha=3.0, grid=(6, 6, 6))], box=box).force_jacobian(x)
        with pytest.raises(mdjac.InputError, match="differs") as err:
            writer.append(3, 0.3, x, box=box, jacobian=other)
        assert "\n" not in str(err.value)
    with mdjac.open_trajectory(path) as trajectory:
        assert rel(trajectory[2].jacobian.matvec(v), jacobians[1].matvec(v)) < 1e-12
    # a fresh process reads the part without MindSpore (its AD derivatives come on its first use)
    assert read_without_mindspore(path, "J.long_range.kind, J.long_range.n, *J.long_range.grid") == [
        "pme-mesh-1", str(len(x)), "6", "7", "8"]
