"""Virtual sites (mdjac.sites) through the OpenMM adapter, against OpenMM's Reference platform:
energies and the real atoms' forces, and Jacobian columns against central differences of
OpenMM's forces where a displacement of a real atom moves its sites (Context.computeVirtualSites)."""
import h5py
import numpy as np
import pytest

from helpers import read_without_mindspore, rel
from openmm_reference import fd_jacobian_columns, openmm, openmm_energy_forces, reference_context
from openmm import app, unit

import MDAnalysis

from mdjac import InputError, open_trajectory
from mdjac.io import open_writer
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


@pytest.fixture(scope="module")
def every_site():
    """One molecule of four real atoms and four sites, one of each kind, each in a bond, one in a
    site-site bond and one in a per-atom term, in a periodic box across its x face: (System, positions nm)."""
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*(np.diag([1.6] * 3) * unit.nanometer))
    x = np.array([[1.55, 0.8, 0.8], [1.66, 0.8, 0.81], [1.52, 0.9, 0.8], [1.57, 0.76, 0.9]] + [[0.0] * 3] * 4)
    for mass in (12.0, 1.0, 14.0, 16.0, 0.0, 0.0, 0.0, 0.0):
        system.addParticle(mass)
    system.setVirtualSite(4, openmm.TwoParticleAverageSite(0, 1, 0.3, 0.7))
    system.setVirtualSite(5, openmm.ThreeParticleAverageSite(0, 2, 3, 0.5, 0.2, 0.3))
    system.setVirtualSite(6, openmm.OutOfPlaneSite(0, 1, 2, 0.3, -0.4, 5.0))
    system.setVirtualSite(7, openmm.LocalCoordinatesSite([0, 1, 2, 3], [0.4, 0.2, 0.2, 0.2], [-1.0, 1.0, 0.0, 0.0],
                                                         [-1.0, 0.0, 0.5, 0.5], openmm.Vec3(0.03, -0.02, 0.04)))
    bonds = openmm.HarmonicBondForce()
    for i, j, r0, k in ((0, 1, 0.11, 3e4), (0, 2, 0.1, 3e4), (0, 3, 0.11, 3e4),
                        (2, 4, 0.09, 2e3), (1, 5, 0.1, 2e3), (3, 6, 0.12, 2e3), (2, 7, 0.08, 2e3)):
        bonds.addBond(i, j, r0, k)
    pair = openmm.CustomBondForce("k*(r - r0)^2 + 0.01/r")                 # a term between two nonlinear sites
    pair.addGlobalParameter("k", 500.0)
    pair.addGlobalParameter("r0", 0.05)
    pair.addBond(6, 7, [])
    external = openmm.CustomExternalForce("c*(x^2 + y*z)")                # a per-atom term on a site
    external.addGlobalParameter("c", 3.0)
    external.addParticle(6, [])
    for force in (bonds, pair, external):
        system.addForce(force)
    context = reference_context(system, x)
    context.computeVirtualSites()
    placed = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return system, np.array(placed)


@pytest.mark.slow
def test_every_site_kind_against_openmm(every_site):
    system, x = every_site
    e_err, f_err, j_err, f = _parity(system, x)
    assert e_err < ENERGY_TOL and f_err < FORCE_TOL and j_err["replicate"] < JACOBIAN_TOL
    assert np.all(f[adapt(system).sites.is_site] == 0)                 # forces are on the real atoms only


def test_sites_are_placed_from_their_parents(every_site):
    """A frame whose sites are stale gets them placed as Context.computeVirtualSites places them."""
    system, x = every_site
    potential = adapt(system)
    stale = x.copy()
    stale[potential.sites.is_site] += 0.05
    assert np.allclose(potential.configuration(stale).positions, x, rtol=0, atol=1e-13)


def test_sites_across_a_triclinic_box(every_site):
    """In a triclinic box (OpenMM's reduced form, given to the potential), real atoms moved by lattice
    vectors: the sites are placed in their first parent's image, where Context.computeVirtualSites
    placed them on the whole molecule, and energy and forces are OpenMM's of the whole molecule (the
    minimum image c, b, a)."""
    system, x = every_site
    vectors = np.array([[1.6, 0.0, 0.0], [0.5, 1.5, 0.0], [-0.6, 0.4, 1.4]])
    potential = adapt(system)
    moved = x.copy()
    moved[1] += vectors[1] - vectors[2]
    moved[3] += vectors[0] + vectors[2]
    moved[potential.sites.is_site] += 0.05                                  # stale sites
    assert np.allclose(potential.configuration(moved, box=vectors).positions[potential.sites.is_site],
                       x[potential.sites.is_site], rtol=0, atol=1e-13)
    real = np.flatnonzero(~potential.sites.is_site)
    e_ref, f_ref = openmm_energy_forces(reference_context(system, x), range(32), x)
    e, f = potential.energy_and_forces(moved, box=vectors)
    assert abs(e - e_ref) / abs(e_ref) < ENERGY_TOL
    assert np.abs(f[real] - f_ref[real]).max() / np.abs(f_ref[real]).max() < FORCE_TOL


def _water_box(method, model="tip4pew"):
    """A 1.2 nm box of a four-site water (amber14's tip4pew.xml or opc.xml), ``method`` (an app method name) at
    0.55 nm: (System, positions nm, Topology). Its NonbondedForce alone (the bonded forces touch no site; fewer
    graphs to compile). OpenMM's Modeller has no OPC box: OPC's waters are placed from TIP4P-Ew's (the same four
    atoms, O, H1, H2, M, which opc.xml's template matches; the flexible waters keep TIP4P-Ew's geometry)."""
    ff = app.ForceField(f"amber14/{model}.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, model="tip4pew", boxSize=openmm.Vec3(1.2, 1.2, 1.2) * unit.nanometer)
    system = ff.createSystem(modeller.topology, nonbondedMethod=getattr(app, method),
                             nonbondedCutoff=0.55 * unit.nanometer, rigidWater=False, ewaldErrorTolerance=5e-4)
    for k in reversed(range(system.getNumForces())):
        if not isinstance(system.getForce(k), openmm.NonbondedForce):
            system.removeForce(k)
    return system, np.array(modeller.positions.value_in_unit(unit.nanometer)), modeller.topology


def _tip4pew(method):
    """TIP4P-Ew (:func:`_water_box`): (System, positions nm)."""
    return _water_box(method)[:2]


@pytest.fixture(scope="module")
def tip4pew_box():
    """TIP4P-Ew with reaction field (:func:`_tip4pew`)."""
    return _tip4pew("CutoffPeriodic")


def test_tip4pew_box_against_openmm(tip4pew_box, tmp_path):
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
    # stored: every particle's position, the Jacobian over the real atoms (read back by MDAnalysis' reader too)
    path = tmp_path / "tip4pew.h5md"
    with open_writer(path, potential.n_atoms, masses=potential.masses, periodic=True, forces=True,
                     jacobian_atoms=potential.jacobian_atoms, dtype=np.float64) as writer:
        writer.append(0, 0.0, x, box=potential.box, forces=f, jacobian=J)
    frame = open_trajectory(path)[0]
    assert np.array_equal(frame.jacobian.atoms, real) and np.array_equal(frame.jacobian.to_bsr().toarray(), J.to_bsr().toarray())
    universe = MDAnalysis.Universe(str(path))
    assert universe.atoms.n_atoms == system.getNumParticles()
    assert np.allclose(universe.trajectory[0].positions, 10 * x)             # MDAnalysis: angstrom


def test_site_selection_is_refused(every_site):
    system, x = every_site
    potential = adapt(system)
    with pytest.raises(InputError, match="virtual site"):
        potential.force_jacobian(x, atoms=[0, 4])


@pytest.mark.parametrize("method", ["PME", "Ewald", "LJPME"])
def test_tip4pew_with_a_reciprocal_sum_against_openmm(method, tmp_path):
    """TIP4P-Ew with PME, Ewald and LJ-PME: energy and the real atoms' forces as OpenMM's, Jacobian columns as central
    differences of OpenMM's forces (the M sites moved with their parents), the diagonal blocks as the dense
    matrix's; the lowest modes by Lanczos on the matvec as the dense solver's. Stored (whole, and a partial Jacobian
    of five atoms), the file reads back the Jacobian computed: its long-range part rebuilt from the inner part's
    recipe over every particle and the frame's site map, as OpenMM's central differences too."""
    from mdjac import normal_modes
    from mdjac.analysis.modes import default_projection
    from mdjac.jobs.checks import check_storable

    system, x = _tip4pew(method)
    context = reference_context(system, x)
    e_ref, f_ref = openmm_energy_forces(context, range(32), x)
    potential = adapt(system)
    real = np.flatnonzero(~potential.sites.is_site)
    e, f = potential.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < ENERGY_TOL
    assert np.abs(f[real] - f_ref[real]).max() / np.abs(f_ref[real]).max() < FORCE_TOL
    assert np.all(f[potential.sites.is_site] == 0)
    J = potential.force_jacobian(x)
    assert np.array_equal(J.atoms, real)
    columns = [0, 1, 2, 4]                                # the first water's O, H1, H2 and the next O
    ref = fd_jacobian_columns(context, range(32), x, columns)[real]
    dense = J.to_dense()
    assert np.abs(dense[:, :, np.searchsorted(real, columns), :] - ref).max() / np.abs(ref).max() < JACOBIAN_TOL
    assert np.allclose(J.diagonal(), np.einsum("iaib->iab", dense), rtol=0, atol=1e-9 * np.abs(dense).max())
    part = J.select(real[:5]).long_range                  # a selection's part: the rows and columns of its atoms
    assert np.allclose(part.dense(), J.long_range.dense()[:5, :, :5], rtol=0, atol=1e-9 * np.abs(dense).max())
    if method == "PME":
        masses = potential.masses                         # the sites' zero masses: the Jacobian leaves them out
        assert default_projection(J, potential.box, masses) == "periodic" and default_projection(J, potential.box) is None
        lanczos = normal_modes(J, masses, project="periodic", k=4, method="sparse")
        full = normal_modes(J, masses, project="periodic", k=4, method="dense")
        assert np.allclose(lanczos.eigenvalues, full.eigenvalues, rtol=1e-6, atol=1e-8 * np.abs(full.eigenvalues).max())
    check_storable(potential)
    v = np.random.default_rng(3).normal(size=(len(real), 3))
    for name, stored in (("whole", J), ("partial", potential.force_jacobian(x, atoms=real[:5]))):
        with open_writer(tmp_path / f"{name}.h5md", potential.n_atoms, periodic=True, forces=False,
                         jacobian_atoms=stored.atoms, dtype=np.float64) as writer:
            writer.append(0, 0.0, x, box=potential.box, jacobian=stored)
        with open_trajectory(tmp_path / f"{name}.h5md") as frames:
            got = frames[0].jacobian
            assert type(got.long_range).__name__ == "SiteMappedPart" and np.array_equal(got.atoms, stored.atoms)
            assert rel(got.matvec(v[:stored.n]), stored.matvec(v[:stored.n])) < 1e-12
            assert rel(got.diagonal(), stored.diagonal()) < 1e-12 and rel(got.to_dense(), stored.to_dense()) < 1e-12
    partial = got.to_dense()[:, :, np.searchsorted(real, columns)]        # the columns are among the five atoms
    assert np.abs(partial - ref[:5]).max() / np.abs(ref[:5]).max() < JACOBIAN_TOL
    # appended (the recipe and site map read back and compared), a frame counts once its site map is stored too
    with open_writer(tmp_path / "whole.h5md", potential.n_atoms, periodic=True, forces=False,
                     jacobian_atoms=J.atoms, dtype=np.float64, mode="a") as writer:
        writer.append(1, 0.1, x, box=potential.box, jacobian=J)
    with open_trajectory(tmp_path / "whole.h5md") as frames:
        assert len(frames) == 2 and rel(frames[1].jacobian.matvec(v), J.matvec(v)) < 1e-12
    with h5py.File(tmp_path / "whole.h5md", "r+") as f:
        f["particles/trajectory/force_jacobian/long_range/site_map/blocks"].resize(1, axis=0)
    with open_trajectory(tmp_path / "whole.h5md") as frames:
        assert len(frames) == 1


def test_nonlinear_sites_with_pme_against_openmm():
    """Charged OutOfPlane and LocalCoordinates sites with PME: the placement's curvature and the mesh operator
    through the chain dX/dx. The reciprocal part alone (OpenMM's reciprocal-space force group: the mesh, self and
    plasma terms; mdjac's PMEReciprocal), against OpenMM's energy, forces and central differences of its forces,
    and against the dense strategy (the whole energy, sites placed inside it, differentiated at once)."""
    from mdjac import Potential
    from mdjac.longrange.pme import PMEReciprocal

    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*(np.diag([1.6] * 3) * unit.nanometer))
    for mass in (16.0, 1.0, 1.0, 0.0, 0.0):
        system.addParticle(mass)
    system.setVirtualSite(3, openmm.OutOfPlaneSite(0, 1, 2, 0.3, -0.4, 5.0))
    system.setVirtualSite(4, openmm.LocalCoordinatesSite([0, 1, 2], [0.6, 0.2, 0.2], [-1.0, 1.0, 0.0],
                                                         [-1.0, 0.0, 1.0], openmm.Vec3(0.03, -0.02, 0.04)))
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(openmm.NonbondedForce.PME)
    force.setCutoffDistance(0.7)
    force.setPMEParameters(3.75, 8, 8, 8)                   # a small grid: the dense strategy states the mesh whole
    for q in (0.4, -0.3, 0.2, 0.5, -0.8):
        force.addParticle(q, 0.3, 0.0)
    system.addForce(force)
    x = np.array([[1.55, 0.8, 0.8], [1.64, 0.82, 0.81], [1.52, 0.9, 0.78], [0.0] * 3, [0.0] * 3])
    context = reference_context(system, x)
    force.setReciprocalSpaceForceGroup(1)
    context.reinitialize()
    context.setPositions(x)
    context.computeVirtualSites()
    x = np.array(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    e_ref, f_ref = openmm_energy_forces(context, {1}, x)
    full = adapt(system)
    potential = Potential([t for t in full.terms if isinstance(t, PMEReciprocal)], box=full.box, sites=full.sites)
    real = np.flatnonzero(~potential.sites.is_site)
    e, f = potential.energy_and_forces(x)
    assert abs(e - e_ref) / abs(e_ref) < ENERGY_TOL
    assert np.abs(f[real] - f_ref[real]).max() / np.abs(f_ref[real]).max() < FORCE_TOL
    ref = fd_jacobian_columns(context, {1}, x, real)[real]
    got = potential.force_jacobian(x).to_dense()
    assert np.abs(got - ref).max() / np.abs(ref).max() < JACOBIAN_TOL
    whole = potential.force_jacobian(x, strategy="dense").to_dense()     # AD through the placement, whole
    assert np.abs(whole - got).max() / np.abs(got).max() < 1e-10


def test_compute_stores_an_opc_box_with_pme(tmp_path, capsys):
    """`mdjac compute` on a box of OPC (amber14's opc.xml, System XML) with PME, two frames (the second with
    stale sites): each stored frame reads back as the Jacobian computed in memory (1e-12 in float64), whose
    columns are OpenMM's central differences; the frames written again as two part files joined by an index (as
    a distributed run joins its shards) read back the same, their site maps concatenated frame by frame."""
    from mdjac.cli import main
    from mdjac.io.h5md_index import H5MDIndex

    system, x, topology = _water_box("PME", "opc")
    (tmp_path / "opc.xml").write_text(openmm.XmlSerializer.serialize(system))
    with open(tmp_path / "opc.pdb", "w") as f:
        app.PDBFile.writeFile(topology, x * unit.nanometer, f)
    potential = adapt(system)
    real = np.flatnonzero(~potential.sites.is_site)
    frames = [x, x + np.random.default_rng(5).normal(scale=0.003, size=x.shape)]   # its sites are off their places
    with open_writer(tmp_path / "in.h5md", len(x), periodic=True, forces=False, jacobian_atoms=None,
                     dtype=np.float64) as writer:
        for k, y in enumerate(frames):
            writer.append(k, 0.1 * k, y, box=potential.box)
    out = tmp_path / "out.h5md"
    assert main(["compute", str(tmp_path / "in.h5md"), "-s", str(tmp_path / "opc.xml"), "-o", str(out), "-q",
                 "--float64"]) == 0
    v = np.random.default_rng(6).normal(size=(len(real), 3))
    jacobians = [potential.force_jacobian(y) for y in frames]
    with open_trajectory(out) as stored:
        read = [stored[k] for k in range(2)]
    for frame, J in zip(read, jacobians):
        got = frame.jacobian
        assert np.array_equal(got.atoms, real) and rel(got.matvec(v), J.matvec(v)) < 1e-12
        assert rel(got.diagonal(), J.diagonal()) < 1e-12 and rel(got.to_dense(), J.to_dense()) < 1e-12
    columns = [0, 1, 2, 4]                                # the first water's O, H1, H2 and the next O
    ref = fd_jacobian_columns(reference_context(system, frames[1]), range(32), frames[1], columns)[real]
    got = read[1].jacobian.to_dense()[:, :, np.searchsorted(real, columns)]
    assert np.abs(got - ref).max() / np.abs(ref).max() < JACOBIAN_TOL
    assert main(["info", str(out)]) == 0
    assert f"site map of {len(potential.sites)} virtual sites" in capsys.readouterr().out
    # `mdjac modes` on the stored frame (Lanczos through the rebuilt part) against numpy's eigh of the Jacobian
    # computed in memory, mass-weighted over the real atoms, translations projected out (a periodic box)
    assert main(["modes", str(out), "--frame", "1", "-k", "4", "--method", "sparse"]) == 0
    printed = [float(line.split()[1]) for line in capsys.readouterr().out.splitlines()
               if line.split()[:1] in (["0"], ["1"], ["2"], ["3"])]
    masses = np.array([system.getParticleMass(int(i)).value_in_unit(unit.dalton) for i in real])
    w = np.repeat(1.0 / np.sqrt(masses), 3)
    d = -w[:, None] * jacobians[1].to_dense().reshape(3 * len(real), 3 * len(real)) * w[None, :]
    q = np.linalg.svd(np.kron(np.sqrt(masses)[:, None], np.eye(3)), full_matrices=True)[0][:, 3:]
    lam = np.linalg.eigvalsh(q.T @ (0.5 * (d + d.T)) @ q)
    wavenumbers = np.sign(lam) * np.sqrt(np.abs(lam)) / (2 * np.pi * 2.99792458e-2)
    np.testing.assert_allclose(printed, wavenumbers[:4], atol=2e-3)
    assert read_without_mindspore(out, "type(J.long_range).__name__, type(J.long_range.inner).__name__") == [
        "SiteMappedPart", "PMEJacobian"]
    shards = tmp_path / "index.h5md.shards"
    shards.mkdir()
    for k, frame in enumerate(read):
        with open_writer(shards / f"part-{k}.h5md", len(x), periodic=True, forces=True, jacobian_atoms=real,
                         dtype=np.float64) as writer:
            writer.append(k, 0.1 * k, frame.positions, box=frame.box, forces=frame.forces, jacobian=frame.jacobian)
    with H5MDIndex(tmp_path / "index.h5md") as index:
        assert index.add([str(shards / f"part-{k}.h5md") for k in range(2)]) == 2
    with open_trajectory(tmp_path / "index.h5md") as joined:
        for k, J in enumerate(jacobians):
            assert rel(joined[k].jacobian.matvec(v), J.matvec(v)) < 1e-12


def test_reporter_stores_an_opc_box_with_pme(tmp_path):
    """ForceJacobianReporter in a Simulation of an OPC box with PME (OpenMM places the sites as it
    steps): each report reads back as the Jacobian of its positions computed in memory (1e-12,
    float64), its PME part through the frame's site map, over the real atoms."""
    from mdjac.openmm import ForceJacobianReporter

    system, x, topology = _water_box("PME", "opc")
    integrator = openmm.VerletIntegrator(0.0005 * unit.picoseconds)
    simulation = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(x)
    simulation.context.computeVirtualSites()
    reporter = ForceJacobianReporter(str(tmp_path / "run.h5md"), 2, dtype=np.float64)
    simulation.reporters.append(reporter)
    simulation.step(4)
    reporter.close()
    potential = adapt(system)
    real = np.flatnonzero(~potential.sites.is_site)
    v = np.random.default_rng(7).normal(size=(len(real), 3))
    with open_trajectory(tmp_path / "run.h5md") as frames:
        assert len(frames) == 2
        for frame in frames:
            got, want = frame.jacobian, potential.force_jacobian(frame.positions)
            assert type(got.long_range).__name__ == "SiteMappedPart" and np.array_equal(got.atoms, real)
            assert rel(got.matvec(v), want.matvec(v)) < 1e-12 and rel(got.diagonal(), want.diagonal()) < 1e-12
