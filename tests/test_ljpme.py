"""LJ-PME (NonbondedForce.LJPME) through the OpenMM adapter, against OpenMM's Reference platform (double):
the dispersion mesh's alpha and grid, energy and forces, and Jacobian columns against central differences
of OpenMM's forces; its long-range part (two meshes) as an operator."""
import numpy as np
import pytest

from helpers import read_without_mindspore, rel
from openmm_reference import fd_jacobian_columns, jacobian_columns, openmm, openmm_energy_forces, reference_context
from openmm import unit

from mdjac import open_trajectory
from mdjac.io import describe, open_writer
from mdjac.jobs.checks import check_storable
from mdjac.longrange.ljpme import DispersionPMEReciprocal
from mdjac.openmm import adapt

ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL = 1e-8, 1e-8, 1e-6


@pytest.fixture(scope="module")
def lj_fluid():
    """40 Lennard-Jones particles of 3 sigmas and 4 epsilons, alternating charges, one excluded pair and one
    1-4-like exception, LJPME at 0.8 nm in a rectangular box (the force's switch set: OpenMM ignores it under
    LJPME): (System, NonbondedForce, positions nm)."""
    rng = np.random.default_rng(3)
    edges = np.array([1.8, 1.9, 2.0])
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*(np.diag(edges) * unit.nanometer))
    cells = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)[:40]
    x = (cells + 0.5) * edges / 4 + rng.normal(0, 0.02, (40, 3))
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(openmm.NonbondedForce.LJPME)
    force.setCutoffDistance(0.8)
    force.setUseSwitchingFunction(True)
    force.setSwitchingDistance(0.7)
    force.setEwaldErrorTolerance(5e-4)
    for i in range(40):
        system.addParticle(40.0)
        force.addParticle(0.2 * (-1) ** i, 0.34 + 0.02 * (i % 3), 0.9 + 0.1 * (i % 4))
    force.addException(0, 1, 0.0, 0.3, 0.0)
    force.addException(2, 3, -0.02, 0.33, 0.5)
    system.addForce(force)
    return system, force, x


def test_ljpme_is_openmms_ljpme(lj_fluid):
    system, force, x = lj_fluid
    context = reference_context(system, x)
    e_ref, f_ref = openmm_energy_forces(context, range(32), x)
    potential = adapt(system)
    (mesh,) = [t for t in potential.terms if isinstance(t, DispersionPMEReciprocal)]
    alpha, *grid = force.getLJPMEParametersInContext(context)
    assert mesh.alpha == pytest.approx(alpha, rel=1e-14) and mesh.grid.tolist() == grid
    e, f = potential.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < ENERGY_TOL
    assert np.abs(f - f_ref).max() / np.abs(f_ref).max() < FORCE_TOL
    J = potential.force_jacobian(x)
    columns = [0, 2, 5]                     # an excluded pair's atom, an exception's, a plain one
    ref = fd_jacobian_columns(context, range(32), x, columns)
    assert np.abs(jacobian_columns(J, columns) - ref).max() / np.abs(ref).max() < JACOBIAN_TOL
    dense = J.to_dense()
    assert np.allclose(J.diagonal(), np.einsum("iaib->iab", dense), rtol=0, atol=1e-10 * np.abs(dense).max())
    assert len(J.long_range.parts) == 2     # the Coulomb and the dispersion meshes


def test_ljpme_jacobian_read_back_from_a_file(lj_fluid, tmp_path):
    """Stored, each mesh's recipe is a part of the file's (the dispersion mesh's of its own kind); read back
    without MindSpore, the Jacobian is the one computed (1e-12), so its columns are OpenMM's central differences."""
    system, force, x = lj_fluid
    potential = adapt(system)
    check_storable(potential)
    J = potential.force_jacobian(x)
    path = tmp_path / "ljpme.h5md"
    with open_writer(path, len(x), periodic=True, forces=False, jacobian_atoms="all", dtype=np.float64) as writer:
        writer.append(0, 0.0, x, box=potential.box, jacobian=J)
    with open_trajectory(path) as frames:
        got = frames[0].jacobian
    v = np.random.default_rng(4).normal(size=x.shape)
    assert rel(got.matvec(v), J.matvec(v)) < 1e-12 and rel(got.diagonal(), J.diagonal()) < 1e-12
    assert rel(got.to_dense(), J.to_dense()) < 1e-12
    columns = [0, 2, 5]
    ref = fd_jacobian_columns(reference_context(system, x), range(32), x, columns)
    assert np.abs(jacobian_columns(got, columns) - ref).max() / np.abs(ref).max() < JACOBIAN_TOL
    parts = describe(path)["long_range"]["parts"]
    assert [p["kind"] for p in parts] == ["pme-mesh-1", "pme-dispersion-mesh-1"]
    assert parts[1]["grid"] == list(force.getLJPMEParametersInContext(reference_context(system, x))[1:])
    assert read_without_mindspore(path, "*[type(p).__name__ for p in J.long_range.parts]") == [
        "PMEJacobian", "DispersionPMEJacobian"]


def test_ljpme_with_the_forces_own_parameters(lj_fluid):
    """The force's own LJ-PME alpha and grid (setLJPMEParameters) are used as given, as OpenMM does."""
    system, force, x = lj_fluid
    copy = openmm.XmlSerializer.clone(system)
    copy.getForce(0).setLJPMEParameters(2.6, 8, 9, 12)
    e_ref, f_ref = openmm_energy_forces(reference_context(copy, x), range(32), x)
    potential = adapt(copy)
    (mesh,) = [t for t in potential.terms if isinstance(t, DispersionPMEReciprocal)]
    assert mesh.alpha == 2.6 and mesh.grid.tolist() == [8, 9, 12]
    e, f = potential.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < ENERGY_TOL
    assert np.abs(f - f_ref).max() / np.abs(f_ref).max() < FORCE_TOL
