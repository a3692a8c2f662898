"""Virtual sites (mdjac.sites) through the OpenMM adapter, against OpenMM's Reference platform:
energies and the real atoms' forces, and Jacobian columns against central differences of
OpenMM's forces where a displacement of a real atom moves its sites (Context.computeVirtualSites)."""
import numpy as np
import pytest

from openmm_reference import fd_jacobian_columns, openmm, openmm_energy_forces, reference_context
from openmm import app, unit

from mdjac import InputError
from mdjac.openmm import adapt

ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL = 1e-8, 1e-8, 1e-6


def _parity(system, x, strategies=("replicate",)):
    """(relative energy error, relative force error on real atoms, {strategy: relative Jacobian error})."""
    context = reference_context(system, x)
    e_ref, f_ref = openmm_energy_forces(context, range(32), x)
    potential = adapt(system)
    real = np.flatnonzero(~potential.sites.is_site)
    e, f = potential.energy_and_forces(x)
    ref = fd_jacobian_columns(context, range(32), x, real)[real]         # (R, 3, R, 3)
    errors = {}
    for strategy in strategies:
        J = potential.force_jacobian(x, strategy=strategy)
        assert np.array_equal(J.atoms, real)
        errors[strategy] = float(np.abs(J.to_dense() - ref).max() / np.abs(ref).max())
    return (abs(e - e_ref) / abs(e_ref), float(np.abs(f[real] - f_ref[real]).max() / np.abs(f_ref[real]).max()),
            errors, f)


def _molecule_with_every_site(system, offset, forces):
    """Four real atoms and four sites (one of each kind) at ``offset`` (3,) nm: (positions (8, 3) nm, site indices)."""
    bonds, nonbonded, external = forces
    base = system.getNumParticles()
    real = np.array([[0.0, 0.0, 0.0], [0.11, 0.0, 0.01], [-0.03, 0.1, 0.0], [0.02, -0.04, 0.1]]) + offset
    for mass in (12.0, 1.0, 14.0, 16.0):
        system.addParticle(mass)
    for _ in range(4):
        system.addParticle(0.0)
    a, b, c, d = range(base, base + 4)
    system.setVirtualSite(base + 4, openmm.TwoParticleAverageSite(a, b, 0.3, 0.7))
    system.setVirtualSite(base + 5, openmm.ThreeParticleAverageSite(a, c, d, 0.5, 0.2, 0.3))
    system.setVirtualSite(base + 6, openmm.OutOfPlaneSite(a, b, c, 0.3, -0.4, 5.0))
    system.setVirtualSite(base + 7, openmm.LocalCoordinatesSite([a, b, c, d], [0.4, 0.2, 0.2, 0.2], [-1.0, 1.0, 0.0, 0.0],
                                                                [-1.0, 0.0, 0.5, 0.5], openmm.Vec3(0.03, -0.02, 0.04)))
    for i, j in ((a, b), (a, c), (a, d)):
        bonds.addBond(i, j, float(np.linalg.norm(real[j - base] - real[i - base])) * 1.02, 3e4)
    bonds.addBond(b, base + 7, 0.08, 2e3)                               # a bonded term on a site
    charges = (0.2, 0.1, -0.3, 0.1, -0.25, 0.3, -0.2, 0.05)
    for q, s, eps in zip(charges, (0.3, 0.2, 0.3, 0.3, 0.1, 0.1, 0.1, 0.25), (0.4, 0.1, 0.5, 0.3, 0.0, 0.0, 0.05, 0.2)):
        nonbonded.addParticle(q, s, eps)
    for i in range(base, base + 8):
        for j in range(i + 1, base + 8):
            nonbonded.addException(i, j, 0.0, 0.1, 0.0)
    external.addParticle(base + 6, [])                                    # a per-atom term on a site
    sites = real[[0]] * 0.0                                               # placed by computeVirtualSites
    return np.concatenate([real, np.repeat(sites, 4, axis=0) + offset]), list(range(base + 4, base + 8))


@pytest.fixture(scope="module")
def every_site():
    """Two molecules with one site of each kind, in a periodic box, across its boundary: (System, positions nm)."""
    system = openmm.System()
    box = 1.6
    system.setDefaultPeriodicBoxVectors(*(np.diag([box] * 3) * unit.nanometer))
    bonds, nonbonded = openmm.HarmonicBondForce(), openmm.NonbondedForce()
    external = openmm.CustomExternalForce("k*(x^2 + y*z)")
    external.addGlobalParameter("k", 3.0)
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    nonbonded.setCutoffDistance(0.75)
    nonbonded.setUseDispersionCorrection(False)
    forces = (bonds, nonbonded, external)
    x0, _ = _molecule_with_every_site(system, np.array([1.55, 0.8, 0.8]), forces)   # near the x = L face
    x1, _ = _molecule_with_every_site(system, np.array([0.25, 0.85, 0.75]), forces)  # its image neighbour
    for force in forces:
        system.addForce(force)
    x = np.concatenate([x0, x1])
    context = reference_context(system, x)
    context.computeVirtualSites()
    placed = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return system, np.array(placed)


def test_every_site_kind_against_openmm(every_site):
    system, x = every_site
    e_err, f_err, j_err, f = _parity(system, x, strategies=("replicate", "dense"))
    assert e_err < ENERGY_TOL and f_err < FORCE_TOL
    assert j_err["replicate"] < JACOBIAN_TOL and j_err["dense"] < JACOBIAN_TOL
    assert np.all(f[adapt(system).sites.is_site] == 0)                 # forces are on the real atoms only


def test_sites_are_placed_from_their_parents(every_site):
    """A frame whose sites are stale gets them placed as Context.computeVirtualSites places them."""
    system, x = every_site
    potential = adapt(system)
    stale = x.copy()
    stale[potential.sites.is_site] += 0.05
    assert np.allclose(potential.configuration(stale).positions, x, rtol=0, atol=1e-13)


@pytest.fixture(scope="module")
def tip4pew_box():
    """A 1.2 nm box of TIP4P-Ew (amber14's tip4pew.xml), reaction field at 0.55 nm, flexible: (System, positions nm)."""
    ff = app.ForceField("amber14/tip4pew.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, model="tip4pew", boxSize=openmm.Vec3(1.2, 1.2, 1.2) * unit.nanometer)
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.CutoffPeriodic,
                             nonbondedCutoff=0.55 * unit.nanometer, rigidWater=False)
    return system, np.array(modeller.positions.value_in_unit(unit.nanometer))


def test_tip4pew_box_against_openmm(tip4pew_box):
    system, x = tip4pew_box
    context = reference_context(system, x)
    e_ref, f_ref = openmm_energy_forces(context, range(32), x)
    potential = adapt(system)
    assert len(potential.sites) == system.getNumParticles() // 4
    real = np.flatnonzero(~potential.sites.is_site)
    e, f = potential.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < ENERGY_TOL
    assert np.abs(f[real] - f_ref[real]).max() / np.abs(f_ref[real]).max() < FORCE_TOL
    J = potential.force_jacobian(x)
    columns = [0, 1, 2, 4]                                # the first water's O, H1, H2 and the next O
    ref = fd_jacobian_columns(context, range(32), x, columns)[real]
    got = J.to_dense()[:, :, np.searchsorted(real, columns), :]
    assert np.abs(got - ref).max() / np.abs(ref).max() < JACOBIAN_TOL


def test_site_selection_and_long_range_are_refused(every_site):
    system, x = every_site
    potential = adapt(system)
    with pytest.raises(InputError, match="virtual site"):
        potential.force_jacobian(x, atoms=[0, 4])
    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    force.setNonbondedMethod(openmm.NonbondedForce.PME)
    try:
        with pytest.raises(InputError, match="virtual sites with a reciprocal-space sum"):
            adapt(system)
    finally:
        force.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
