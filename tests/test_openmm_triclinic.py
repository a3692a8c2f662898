"""Triclinic boxes against OpenMM's Reference platform (double precision): a peptide in a truncated
octahedron and in a rhombic dodecahedron (amber14/TIP3P), with PME and with the reaction field, and a
box sheared to the edges of OpenMM's reduced form. Energies to 1e-8, forces to 1e-7 (relative to the
largest), Jacobian columns to 1e-6 against central differences of OpenMM's forces.

OpenMM 8.6's Reference platform misses pairs inside the cutoff in small triclinic boxes, so the
solvated boxes are above that size (octahedron vectors 3.44 nm, dodecahedron 2.64 nm) and the
sheared box's pair energy is also checked against brute force over explicit images."""
import numpy as np
import pytest

from openmm_reference import (app, fd_jacobian_columns, jacobian_columns, openmm, openmm_energy_forces,
                              reference_context, unit)

from mdjac.numerical import spot_columns
from mdjac.openmm import adapt
from mdjac.space import check_box, face_distances

ENERGY, FORCE, JACOBIAN = 1e-8, 1e-7, 1e-6


def assert_matches_openmm(system, x, jacobian_atoms=0, box=None):
    """The whole System: mdjac's energy and forces against OpenMM's Reference platform, and the Jacobian
    columns of ``jacobian_atoms`` atoms spread over the system, away from the cutoff (mdjac.numerical.spot_columns:
    a truncated pair's force jumps there), against central differences of OpenMM's forces. ``box``: the box
    given to mdjac (default: the System's)."""
    context = reference_context(system, x)
    groups = range(len(system.getForces()))
    e_ref, f_ref = openmm_energy_forces(context, groups)
    potential = adapt(system)
    assert potential.box.shape == (3, 3)
    e, f = potential.energy_and_forces(x, box=box)
    assert abs(e - e_ref) / abs(e_ref) < ENERGY
    assert np.abs(f - f_ref).max() / np.abs(f_ref).max() < FORCE
    if not jacobian_atoms:
        return
    spots = spot_columns(potential, x, potential.box, count=max(2, jacobian_atoms))
    jacobian_atoms = sorted({c // 3 for c in spots})[-jacobian_atoms:]
    ref = fd_jacobian_columns(context, groups, x, jacobian_atoms)
    got = jacobian_columns(potential.force_jacobian(x), jacobian_atoms)
    assert np.abs(got - ref).max() / np.abs(ref).max() < JACOBIAN


@pytest.mark.parametrize("shape,method,columns", [("octahedron", "PME", 1), ("octahedron", "CutoffPeriodic", 0),
                                                  ("dodecahedron", "PME", 0), ("dodecahedron", "CutoffPeriodic", 0)])
def test_solvated_peptide_in_a_triclinic_box_equals_openmm(amber14, peptide_in_octahedron, peptide_in_dodecahedron,
                                                          shape, method, columns):
    """Energies and forces of each shape with each method; the Jacobian columns of one atom (three
    columns) in the octahedron with PME (the reaction field's: the sheared box below)."""
    topology, x, box = peptide_in_octahedron if shape == "octahedron" else peptide_in_dodecahedron
    assert np.count_nonzero(box[np.tril_indices(3, -1)]) >= 2              # truly triclinic
    system = amber14.createSystem(topology, nonbondedMethod=getattr(app, method), nonbondedCutoff=0.9 * unit.nanometer,
                                  constraints=None, rigidWater=False)
    assert_matches_openmm(system, x, columns)


def sheared_particles(n=300, seed=8):
    """A box at the edges of the reduced form (b_x = a_x / 2, c_x = -a_x / 2, c_y = b_y / 2; face distances
    3.8 to 4.8 nm) and n particles in it, none closer than 0.28 nm (explicit images). In such a box OpenMM's
    Reference platform misses pairs for most placements, even this large; this one (seed) it does not."""
    box = 1.5 * np.array([[3.6, 0, 0], [1.8, 3.3, 0], [-1.8, 1.65, 3.2]])
    rng = np.random.default_rng(seed)
    shifts = (np.array(list(np.ndindex(3, 3, 3))) - 1) @ box
    x = []
    while len(x) < n:
        p = rng.uniform(0, 1, 3) @ box
        if not x or np.min(np.linalg.norm(p[None, None] - np.array(x)[:, None] + shifts[None], axis=2)) > 0.28:
            x.append(p)
    return box, np.array(x)


def particle_system(box, n, charges, method, cutoff=0.9):
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*(box * unit.nanometer))
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(getattr(openmm.NonbondedForce, method))
    force.setCutoffDistance(cutoff)
    force.setUseDispersionCorrection(True)
    for k in range(n):
        system.addParticle(20.0)
        force.addParticle(float(charges[k]), 0.3 + 0.02 * (k % 3), 0.4 + 0.1 * (k % 2))
    system.addForce(force)
    return system


def brute_force_lennard_jones(x, box, cutoff):
    """Lennard-Jones energy of particle_system's parameters over the shortest explicit image of every pair."""
    n = len(x)
    k = np.arange(n)
    sigma, eps = 0.3 + 0.02 * (k % 3), 0.4 + 0.1 * (k % 2)
    i, j = np.triu_indices(n, 1)
    shifts = (np.array(list(np.ndindex(5, 5, 5))) - 2) @ box
    d = x[j] - x[i]
    d -= np.floor(d @ np.linalg.inv(box)) @ box
    r = np.sqrt(np.min(np.einsum("psk,psk->ps", d[:, None] + shifts, d[:, None] + shifts), axis=1))
    s, e = 0.5 * (sigma[i] + sigma[j]), np.sqrt(eps[i] * eps[j])
    inside = r < cutoff
    return float(np.sum(4 * e[inside] * ((s[inside] / r[inside]) ** 12 - (s[inside] / r[inside]) ** 6)))


def test_box_at_the_edges_of_the_reduced_form(fd):
    """OpenMM's Reference pair set checked against brute force first (Lennard-Jones alone), then PME and the
    reaction field with charges; for the reaction field mdjac is given the same lattice unreduced
    (b + a, c - a + 2 b) and reduces it."""
    box, x = sheared_particles()
    unreduced = np.stack([box[0], box[1] + box[0], box[2] - box[0] + 2 * box[1]])
    reduced = check_box(unreduced)               # a reduced form of the same lattice (at the edges, not unique)
    change = reduced @ np.linalg.inv(box)
    np.testing.assert_allclose(change, np.round(change), atol=1e-12)
    assert max(abs(reduced[1, 0]), abs(reduced[2, 0])) <= 2.7 + 1e-12 and abs(reduced[2, 1]) <= 2.475 + 1e-12
    assert 0.5 * face_distances(box).min() > 0.9
    n = len(x)
    plain = particle_system(box, n, np.zeros(n), "CutoffPeriodic")
    plain.getForce(0).setUseDispersionCorrection(False)
    e_ref, _ = openmm_energy_forces(reference_context(plain, x), [0])
    assert e_ref == pytest.approx(brute_force_lennard_jones(x, box, 0.9), rel=1e-12)
    charges = np.where(np.arange(n) % 2, 0.5, -0.5)
    # PME's mesh depends on the basis (at the edges two reduced forms exist): the System's own box there
    assert_matches_openmm(particle_system(box, n, charges, "PME"), x, 1)
    assert_matches_openmm(particle_system(box, n, charges, "CutoffPeriodic"), x, 1, box=unreduced)


def test_ewald_in_a_triclinic_box_converges_to_openmms_pme(fd):
    """OpenMM refuses Ewald in a triclinic box; mdjac's (k vectors through the reciprocal box, kmax from
    the vectors' lengths) at tolerance 1e-5 and OpenMM's PME at 1e-6 approximate the same Ewald sum (PME
    at 1e-6 and 1e-7 differ by 3e-7 with 120 particles; kmax from a_x, b_y, c_z instead gives 2e-5);
    the Jacobian of a coarse k grid against central differences."""
    import mdjac
    from mdjac.longrange import ewald
    box, x = sheared_particles(n=30, seed=8)
    n = len(x)
    charges = np.where(np.arange(n) % 2, 0.5, -0.5)
    system = particle_system(box, n, charges, "Ewald")
    system.getForce(0).setEwaldErrorTolerance(1e-5)
    potential = adapt(system)
    system.getForce(0).setNonbondedMethod(openmm.NonbondedForce.PME)
    system.getForce(0).setEwaldErrorTolerance(1e-6)
    e_ref, f_ref = openmm_energy_forces(reference_context(system, x), [0])
    e, f = potential.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < 1e-6
    assert np.abs(f - f_ref).max() / np.abs(f_ref).max() < 5e-5
    coarse = mdjac.Potential(ewald.ewald_terms(charges, 0.9, box, alpha=3.0, kmax=[5, 6, 7]), box=box)
    got = jacobian_columns(coarse.force_jacobian(x), [n - 1])
    assert fd.rel_err(got, fd.jacobian(coarse, x, columns=[n - 1])) < 1e-6


def test_reporter_writes_the_triclinic_box_of_each_frame(tmp_path):
    """ForceJacobianReporter in a sheared box: each frame's box as OpenMM's vectors, its Jacobian that of
    the frame's positions in that box."""
    from mdjac.io import open_trajectory
    from mdjac.openmm import ForceJacobianReporter
    box, x = sheared_particles(n=60, seed=8)
    n = len(x)
    system = particle_system(box, n, np.where(np.arange(n) % 2, 0.5, -0.5), "CutoffPeriodic")
    topology = app.Topology()
    residue = topology.addResidue("AR", topology.addChain())
    for _ in range(n):
        topology.addAtom("AR", app.Element.getBySymbol("Ar"), residue)
    topology.setPeriodicBoxVectors(box * unit.nanometer)
    simulation = app.Simulation(topology, system, openmm.VerletIntegrator(0.001 * unit.picosecond),
                                openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(x * unit.nanometer)
    reporter = ForceJacobianReporter(str(tmp_path / "run.h5md"), 2, dtype=np.float64)
    simulation.reporters.append(reporter)
    simulation.step(4)
    reporter.close()
    potential = adapt(system)
    with open_trajectory(str(tmp_path / "run.h5md")) as traj:
        assert len(traj) == 2
        for frame in traj:
            np.testing.assert_allclose(frame.box, box, atol=1e-15)
            want = potential.force_jacobian(frame.positions, box=frame.box).to_dense()
            np.testing.assert_allclose(frame.jacobian.to_dense(), want, rtol=0, atol=1e-12 * np.abs(want).max())
