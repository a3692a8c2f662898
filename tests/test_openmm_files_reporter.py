"""Systems from OpenMM files through mdjac.load_system, and ForceJacobianReporter read back by
MDAnalysis and by mdjac's reader, compared with OpenMM's forces and mdjac's own Jacobian."""
import numpy as np
import pytest

from openmm_reference import app, openmm, openmm_energy_forces, peptide, reference_context, unit

import mdjac
from mdjac.openmm import ForceJacobianReporter, adapt


def _amber_peptide_system():
    topology, x = peptide()
    forcefield = app.ForceField("amber14-all.xml")
    return forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None), topology, x


def test_system_xml_with_pdb_through_load_system(tmp_path):
    system, topology, x = _amber_peptide_system()
    (tmp_path / "peptide.xml").write_text(openmm.XmlSerializer.serialize(system))
    with open(tmp_path / "peptide.pdb", "w") as f:
        app.PDBFile.writeFile(topology, x * unit.nanometer, f)
    loaded = mdjac.load_system(str(tmp_path / "peptide.xml"))
    assert loaded.engine == "openmm" and loaded.n_atoms == len(x) and loaded.box is None
    np.testing.assert_allclose(loaded.positions, x, atol=5e-5)  # PDB precision
    e_ref, f_ref = openmm_energy_forces(reference_context(system, loaded.positions), set(range(32)))
    e, f = loaded.potential.energy_and_forces(loaded.positions)
    assert abs(e - e_ref) <= 1e-9 * abs(e_ref)
    assert np.abs(f - f_ref).max() <= 1e-9 * np.abs(f_ref).max()
    np.testing.assert_allclose(loaded.masses, [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(len(x))])


def test_missing_companion_file_is_an_input_error(tmp_path):
    system, _, _ = _amber_peptide_system()
    (tmp_path / "lonely.xml").write_text(openmm.XmlSerializer.serialize(system))
    with pytest.raises(mdjac.InputError, match="PDB"):
        mdjac.load_system(str(tmp_path / "lonely.xml"))
    (tmp_path / "broken.prmtop").write_text("not a prmtop\n")
    (tmp_path / "broken.inpcrd").write_text("nor coordinates\n")
    with pytest.raises(mdjac.InputError, match="OpenMM could not read it"):
        mdjac.load_system(str(tmp_path / "broken.prmtop"))


def _simulation(system, topology, x):
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.0005 * unit.picoseconds)
    integrator.setRandomNumberSeed(11)
    simulation = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(x)
    return simulation


def test_reporter_writes_frames_read_back_by_mdanalysis_and_resumes(tmp_path):
    MDAnalysis = pytest.importorskip("MDAnalysis")
    system, topology, x = _amber_peptide_system()
    out = tmp_path / "run.h5md"
    simulation = _simulation(system, topology, x)
    reporter = ForceJacobianReporter(str(out), 2, dtype=np.float64)
    simulation.reporters.append(reporter)
    simulation.step(6)
    reporter.close()
    state = simulation.context.getState(getPositions=True, getVelocities=True)

    # a restart: a new Simulation from the last state, the same file appended
    again = _simulation(system, topology, x)
    again.context.setState(state)
    again.currentStep = 6
    resumed = ForceJacobianReporter(str(out), 2, dtype=np.float64, append=True)
    again.reporters.append(resumed)
    again.step(4)
    resumed.close()

    u = MDAnalysis.Universe(str(out))
    assert u.trajectory.n_frames == 5
    steps = [ts.data["step"] for ts in u.trajectory]
    assert steps == [2, 4, 6, 8, 10]
    potential = adapt(system)
    context = reference_context(system, x)
    with mdjac.open_trajectory(str(out)) as frames:
        assert len(frames) == 5
        for ts, frame in zip(u.trajectory, frames):
            positions = ts.positions / 10.0  # MDAnalysis reads nm as Angstrom x 10
            np.testing.assert_allclose(positions, frame.positions, rtol=0, atol=1e-5)
            _, f_ref = openmm_energy_forces(context, set(range(32)), frame.positions)
            assert np.abs(frame.forces - f_ref).max() <= 1e-9 * np.abs(f_ref).max()
            want = potential.force_jacobian(frame.positions).to_dense()
            got = frame.jacobian.to_dense()
            assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()
