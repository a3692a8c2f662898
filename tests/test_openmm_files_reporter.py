"""Systems from OpenMM files through mdjac.load_system, and ForceJacobianReporter read back by
MDAnalysis and by mdjac's reader, compared with OpenMM's forces and mdjac's own Jacobian."""
import numpy as np
import pytest

from openmm_reference import (app, fd_jacobian_columns, openmm, openmm_energy_forces, peptide,
                              reference_context, unit)

import mdjac
from mdjac.cli import main
from mdjac.io.h5md_writer import H5MDWriter
from mdjac.openmm import ForceJacobianReporter, adapt


def _amber_peptide_system():
    topology, x = peptide()
    forcefield = app.ForceField("amber14-all.xml")
    return forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None), topology, x


@pytest.mark.slow
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


def _amber_and_charmm_files(folder):
    """The amber14 peptide written by ParmEd (an independent writer) as AMBER prmtop + inpcrd and as
    CHARMM psf + crd with a parameter set (rtf + par) made from the same force field."""
    import parmed      # test-only: pinned in requirements.lock
    system, topology, x = _amber_peptide_system()
    structure = parmed.openmm.load_topology(topology, system, xyz=x * 10.0)     # Angstrom
    for name in ("pep.prmtop", "pep.inpcrd", "pep.psf"):
        structure.save(str(folder / name), overwrite=True)
    structure.save(str(folder / "pep.crd"), format="charmmcrd", overwrite=True)
    parmed.charmm.CharmmParameterSet.from_structure(structure).write(par=str(folder / "pep.par"),
                                                                      top=str(folder / "pep.rtf"))


@pytest.fixture(scope="module")
def peptide_files(tmp_path_factory):
    """The folder of the amber14 peptide's AMBER and CHARMM files (written once for the module)."""
    folder = tmp_path_factory.mktemp("peptide-files")
    _amber_and_charmm_files(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["prmtop", "psf"])
def test_amber_and_charmm_files_through_load_system(peptide_files, tmp_path, kind):
    """prmtop + inpcrd and psf + crd (+ rtf, par found beside it) give the potential of the System
    OpenMM builds from the same files: energy and forces to 1e-9, Jacobian columns against central
    differences of OpenMM's forces to 1e-6; and the command line computes with them."""
    path = peptide_files / f"pep.{kind}"
    loaded = mdjac.load_system(str(path))
    if kind == "prmtop":
        crd = app.AmberInpcrdFile(str(peptide_files / "pep.inpcrd"))
        system = app.AmberPrmtopFile(str(path)).createSystem(nonbondedMethod=app.NoCutoff, constraints=None,
                                                             rigidWater=False)
    else:
        crd = app.CharmmCrdFile(str(peptide_files / "pep.crd"))
        params = app.CharmmParameterSet(str(peptide_files / "pep.rtf"), str(peptide_files / "pep.par"))
        system = app.CharmmPsfFile(str(path)).createSystem(params, nonbondedMethod=app.NoCutoff, constraints=None,
                                                           rigidWater=False)
    x = np.array(crd.positions.value_in_unit(unit.nanometer))
    assert loaded.n_atoms == 22 and loaded.box is None
    np.testing.assert_allclose(loaded.positions, x, atol=1e-12)
    context = reference_context(system, x)
    groups = set(range(system.getNumForces()))
    e_ref, f_ref = openmm_energy_forces(context, groups)
    e, f = loaded.potential.energy_and_forces(x)
    assert abs(e - e_ref) <= 1e-9 * abs(e_ref)
    assert np.abs(f - f_ref).max() <= 1e-9 * np.abs(f_ref).max()
    atoms = [0, 4, 9, 14]
    ref = fd_jacobian_columns(context, groups, x, atoms)
    got = loaded.potential.force_jacobian(x).to_dense()[:, :, atoms, :]
    assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max()
    out = tmp_path / f"{kind}.h5md"
    with H5MDWriter(tmp_path / "in.h5md", 22, forces=False, jacobian_atoms=None, dtype=np.float64) as w:
        w.append(0, 0.0, x)
    assert main(["compute", str(tmp_path / "in.h5md"), "-s", str(path), "-o", str(out), "-q", "--float64"]) == 0
    with mdjac.open_trajectory(out) as frames:
        np.testing.assert_allclose(frames[0].forces, f_ref, rtol=0, atol=1e-9 * np.abs(f_ref).max())


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


@pytest.mark.slow
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


SPCE_TOP = """[ defaults ]
; nbfunc comb-rule gen-pairs fudgeLJ fudgeQQ
  1       2         yes       0.5     0.8333

[ atomtypes ]
; name  at.num  mass     charge  ptype  sigma    epsilon
  OW    8       15.9994  0.0     A      0.316557 0.650194
  HW    1       1.008    0.0     A      0.0      0.0

[ moleculetype ]
SOL  2

[ atoms ]
  1  OW  1  SOL  OW   1  -0.8476  15.9994
  2  HW  1  SOL  HW1  1   0.4238   1.008
  3  HW  1  SOL  HW2  1   0.4238   1.008

[ bonds ]
  1  2  1  0.1  345000.0
  1  3  1  0.1  345000.0

[ angles ]
  2  1  3  1  109.47  383.0

[ system ]
two flexible SPC/E waters

[ molecules ]
SOL  2
"""

SPCE_GRO = """two waters
    6
    1SOL     OW    1   1.000   1.000   1.000
    1SOL    HW1    2   1.100   1.000   1.000
    1SOL    HW2    3   0.967   1.094   1.000
    2SOL     OW    4   1.300   1.250   1.100
    2SOL    HW1    5   1.390   1.290   1.110
    2SOL    HW2    6   1.250   1.330   1.060
   3.00000   3.00000   3.00000
"""


def test_gromacs_top_and_gro_through_load_system(tmp_path):
    """A hand-written GROMACS topology: load_system's potential against an independent numpy sum
    (harmonic bonds and angle, Lennard-Jones O-O and reaction-field Coulomb between the waters)."""
    (tmp_path / "water.top").write_text(SPCE_TOP)
    (tmp_path / "water.gro").write_text(SPCE_GRO)
    loaded = mdjac.load_system(str(tmp_path / "water.top"), nonbonded="reaction-field")
    x = loaded.positions
    assert loaded.engine == "openmm" and np.allclose(loaded.box, 3.0)
    energy = 0.0
    for w in (0, 3):
        for h in (1, 2):
            energy += 0.5 * 345000.0 * (np.linalg.norm(x[w + h] - x[w]) - 0.1) ** 2
        u, v = x[w + 1] - x[w], x[w + 2] - x[w]
        theta = np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
        energy += 0.5 * 383.0 * (theta - np.deg2rad(109.47)) ** 2
    rc, eps_rf = 0.9, 78.3    # files.py's default cutoff and OpenMM's default reaction-field dielectric
    k_rf, c_rf = rc ** -3 * (eps_rf - 1) / (2 * eps_rf + 1), 3 * eps_rf / ((2 * eps_rf + 1) * rc)
    q = [-0.8476, 0.4238, 0.4238]
    for a in range(3):
        for b in range(3):
            r = np.linalg.norm(x[3 + b] - x[a])
            energy += 138.93545764438198 * q[a] * q[b] * (1 / r + k_rf * r * r - c_rf)
    r = np.linalg.norm(x[3] - x[0])
    energy += 4 * 0.650194 * ((0.316557 / r) ** 12 - (0.316557 / r) ** 6)
    # OpenMM's dispersion correction over the N(N+1)/2 class pairs: 2 oxygens of 6 atoms
    s6 = 0.316557 ** 6
    dispersion = 8 * 6 ** 2 * np.pi * (3 / 21) * 0.650194 * (s6 * s6 / (9 * rc ** 9) - s6 / (3 * rc ** 3))
    energy += dispersion / 27.0
    assert loaded.potential.energy(x) == pytest.approx(energy, rel=1e-9)
