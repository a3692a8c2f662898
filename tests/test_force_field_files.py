"""Users' own force-field files as they bring them: real files from openmmtools' and MDAnalysisTests'
data (installed for the tests by requirements-test.lock) through mdjac.load_system and the command
line. The electrostatics chosen (PME with a box by default, every --nonbonded option) against the
System OpenMM builds from the same files with that method stated, the adapted potential against
OpenMM's Reference platform (double), and every refusal as one line with exit code 2."""
import importlib.util
import os

import numpy as np
import pytest

from openmm_reference import app, openmm, openmm_energy_forces, reference_context, unit

import mdjac
from mdjac.cli import main
from mdjac.jobs import modes_text


def registry_data(package, *parts):
    """A data file of an installed package (found without importing it: openmmtools' import needs
    packages the tests do not install)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None, f"{package} is missing: make env installs requirements-test.lock"
    path = os.path.join(spec.submodule_search_locations[0], *parts)
    assert os.path.isfile(path), path
    return path


EXPLICIT = registry_data("openmmtools", "data", "alanine-dipeptide-explicit", "alanine-dipeptide.prmtop")
GBSA = registry_data("openmmtools", "data", "alanine-dipeptide-gbsa", "alanine-dipeptide.prmtop")
ADK_PSF = registry_data("MDAnalysisTests", "data", "adk.psf")
ADK_CRD = registry_data("MDAnalysisTests", "data", "adk_open.crd")
BAD_TOP = registry_data("MDAnalysisTests", "data", "bad_top.top")
WATERS = 60     # waters kept beside the dipeptide in the trimmed copies (202 atoms in the original box)


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory):
    """The explicit alanine dipeptide with its first 60 waters, in the original box, written by ParmEd
    (an independent writer) as prmtop + inpcrd, GROMACS top + gro, CHARMM psf + crd + pdb (CRYST1) +
    rtf/par, and an OpenMM System XML (reaction field at 1.0 nm, built by OpenMM) + pdb."""
    import parmed      # pinned in requirements.lock
    folder = tmp_path_factory.mktemp("force-field-files")
    structure = parmed.load_file(EXPLICIT, xyz=EXPLICIT[:-len("prmtop")] + "crd")
    structure.strip(f":{4 + WATERS}-{len(structure.residues)}")
    for name in ("a.prmtop", "a.inpcrd", "a.top", "a.gro", "a.psf", "a.pdb"):
        structure.save(str(folder / name), overwrite=True)
    structure.save(str(folder / "a.crd"), format="charmmcrd", overwrite=True)
    parmed.charmm.CharmmParameterSet.from_structure(structure).write(par=str(folder / "a.par"), top=str(folder / "a.rtf"))
    crd = app.AmberInpcrdFile(str(folder / "a.inpcrd"))
    system = app.AmberPrmtopFile(str(folder / "a.prmtop")).createSystem(
        nonbondedMethod=app.CutoffPeriodic, nonbondedCutoff=1.0 * unit.nanometer, constraints=None, rigidWater=False)
    system.setDefaultPeriodicBoxVectors(*crd.boxVectors)
    (folder / "a.xml").write_text(openmm.XmlSerializer.serialize(system))
    return folder


METHODS = {"pme": app.PME, "ewald": app.Ewald, "none": app.NoCutoff, "reaction-field": app.CutoffPeriodic,
           "cutoff": app.CutoffPeriodic}


def box_vectors(folder, source):
    """The box vectors of a trimmed coordinates file: 'inpcrd', 'gro' or 'pdb' (CRYST1)."""
    if source == "inpcrd":
        return app.AmberInpcrdFile(str(folder / "a.inpcrd")).boxVectors
    if source == "gro":
        return app.GromacsGroFile(str(folder / "a.gro")).getPeriodicBoxVectors()
    return app.PDBFile(str(folder / "a.pdb")).topology.getPeriodicBoxVectors()


def stated_system(kind, folder, nonbonded, cutoff, box_source, tolerance=5e-4):
    """The System OpenMM builds from the trimmed files with the electrostatics stated (the reference:
    what each --nonbonded option means), in the box of ``box_source`` (:func:`box_vectors`)."""
    method = METHODS[nonbonded]
    keywords = dict(nonbondedMethod=method, nonbondedCutoff=cutoff * unit.nanometer, ewaldErrorTolerance=tolerance,
                    constraints=None, rigidWater=False)
    vectors = box_vectors(folder, box_source) if nonbonded != "none" else None
    if kind == "prmtop":
        system = app.AmberPrmtopFile(str(folder / "a.prmtop")).createSystem(**keywords)
    elif kind == "top":
        system = app.GromacsTopFile(str(folder / "a.top"), periodicBoxVectors=vectors).createSystem(**keywords)
    elif kind == "psf":
        psf = app.CharmmPsfFile(str(folder / "a.psf"))
        if vectors is not None:
            psf.setBox(*(vectors[k][k] for k in range(3)))
        system = psf.createSystem(app.CharmmParameterSet(str(folder / "a.rtf"), str(folder / "a.par")),
                                  flexibleConstraints=False, **keywords)
    else:
        system = openmm.XmlSerializer.deserialize((folder / "a.xml").read_text())
        force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
        force.setNonbondedMethod({"pme": force.PME, "ewald": force.Ewald, "none": force.NoCutoff}.get(
            nonbonded, force.CutoffPeriodic))
        force.setCutoffDistance(cutoff)
        force.setEwaldErrorTolerance(tolerance)
    if nonbonded == "cutoff":
        for force in system.getForces():
            if isinstance(force, openmm.NonbondedForce):
                force.setReactionFieldDielectric(1.0)
    if vectors is not None:
        system.setDefaultPeriodicBoxVectors(*vectors)
    return system


def loaded_openmm_system(path, **options):
    from mdjac.openmm.files import read_openmm_files
    system, _, x, box, _ = read_openmm_files(path, **options)
    return system, x, box


# (kind, loader options, what they mean: nonbonded, cutoff nm)
CHOICES = [("prmtop", {}, ("pme", 0.9)), ("top", {}, ("pme", 0.9)), ("xml", {}, ("reaction-field", 1.0)),
           ("psf", {}, ("none", 0.9)), ("psf", {"coordinates": "a.pdb"}, ("pme", 0.9)),
           ("psf", {"box": "file"}, ("pme", 0.9))] + \
    [(kind, {"nonbonded": m, "cutoff": 1.1, **({"coordinates": "a.pdb"} if kind == "psf" else {})}, (m, 1.1))
     for kind in ("prmtop", "top", "psf", "xml") for m in ("pme", "ewald", "reaction-field", "cutoff", "none")]


@pytest.mark.parametrize("kind,options,meaning", CHOICES,
                         ids=[f"{k}-{'-'.join(f'{a}={b}' for a, b in o.items()) or 'default'}" for k, o, _ in CHOICES])
def test_the_chosen_electrostatics_are_the_stated_ones(trimmed, kind, options, meaning):
    """Every format with every --nonbonded option (and the defaults: PME with a box, none without, a
    System XML's own) gives OpenMM's System with that method stated: the same energy and forces on
    the Reference platform, the same box."""
    options = dict(options)
    if "coordinates" in options:
        options["coordinates"] = str(trimmed / options["coordinates"])
    if options.get("box") == "file":
        options["box"] = np.diag(app.AmberInpcrdFile(str(trimmed / "a.inpcrd")).boxVectors.value_in_unit(unit.nanometer))
    system, x, box = loaded_openmm_system(trimmed / f"a.{kind}", **options)
    nonbonded, cutoff = meaning
    source = "gro" if kind == "top" else "pdb" if "a.pdb" in options.get("coordinates", "") else "inpcrd"
    reference = stated_system(kind, trimmed, nonbonded, cutoff, source)
    assert (box is None) == (nonbonded == "none") == (not reference.usesPeriodicBoundaryConditions())
    e, f = openmm_energy_forces(reference_context(system, x), set(range(32)))
    e_ref, f_ref = openmm_energy_forces(reference_context(reference, x), set(range(32)))
    assert abs(e - e_ref) <= 1e-10 * abs(e_ref)
    assert np.abs(f - f_ref).max() <= 1e-10 * np.abs(f_ref).max()


def test_a_triclinic_box_given_to_a_psf(trimmed):
    """box= as nine numbers (--box AX 0 0 BX BY 0 CX CY CZ): a psf's crd in a truncated octahedron gets
    PME in that box, the System OpenMM's own psf reader builds for the cell given by its lengths and
    angles (70.53, 109.47, 70.53 degrees); a cutoff over half its smallest face distance is refused."""
    d = 4.5
    vectors = np.array([[d, 0, 0], [d / 3, 2 * np.sqrt(2) * d / 3, 0], [-d / 3, np.sqrt(2) * d / 3, np.sqrt(6) * d / 3]])
    system, x, box = loaded_openmm_system(trimmed / "a.psf", box=vectors.ravel().tolist())
    np.testing.assert_allclose(box, vectors, rtol=0, atol=1e-12)
    psf = app.CharmmPsfFile(str(trimmed / "a.psf"))
    third = np.degrees(np.arccos(1 / 3))
    psf.setBox(d * unit.nanometer, d * unit.nanometer, d * unit.nanometer, third * unit.degree,
               (180 - third) * unit.degree, third * unit.degree)
    reference = psf.createSystem(app.CharmmParameterSet(str(trimmed / "a.rtf"), str(trimmed / "a.par")),
                                 nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer, ewaldErrorTolerance=5e-4,
                                 constraints=None, rigidWater=False, flexibleConstraints=False)
    reference.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*v) for v in vectors) * unit.nanometer)
    e, f = openmm_energy_forces(reference_context(system, x), set(range(32)))
    e_ref, f_ref = openmm_energy_forces(reference_context(reference, x), set(range(32)))
    assert abs(e - e_ref) <= 1e-10 * abs(e_ref)
    assert np.abs(f - f_ref).max() <= 1e-10 * np.abs(f_ref).max()
    loaded = mdjac.load_system(str(trimmed / "a.psf"), box=vectors.ravel().tolist())
    assert "triclinic box" in loaded.description and "PME, cutoff 0.9 nm" in loaded.description
    np.testing.assert_allclose(loaded.potential.box, vectors, rtol=0, atol=1e-12)
    with pytest.raises(mdjac.InputError, match=r"over half the shortest distance between opposite faces .* \(0\.816"):
        loaded_openmm_system(trimmed / "a.psf", box=(vectors * 2.0 / d).ravel().tolist(), cutoff=0.9)


def test_top_follows_its_mdp(trimmed, tmp_path):
    """A .gro's box is not periodic when the .mdp beside the top says pbc = no; its coulombtype, rcoulomb
    and ewald-rtol are taken otherwise."""
    mdp = tmp_path / "run.mdp"
    mdp.write_text("pbc = no\n")
    system, _, box = loaded_openmm_system(trimmed / "a.top", parameters=str(mdp))
    assert box is None and not system.usesPeriodicBoundaryConditions()
    mdp.write_text("; GROMACS settings\ncoulombtype = Reaction-Field\nrcoulomb = 1.2\n")
    system, _, box = loaded_openmm_system(trimmed / "a.top", parameters=str(mdp))
    force = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    assert box is not None and force.getNonbondedMethod() == force.CutoffPeriodic
    assert force.getCutoffDistance().value_in_unit(unit.nanometer) == pytest.approx(1.2)
    mdp.write_text("coulomb_type = PME\newald_rtol = 1e-5\n")
    force = next(f for f in loaded_openmm_system(trimmed / "a.top", parameters=str(mdp))[0].getForces()
                 if isinstance(f, openmm.NonbondedForce))
    assert force.getNonbondedMethod() == force.PME and force.getEwaldErrorTolerance() == pytest.approx(1e-5)


def _parity(system, x, box, potential, rtol=1e-8):
    e_ref, f_ref = openmm_energy_forces(reference_context(system, x), set(range(32)))
    e, f = potential.energy_and_forces(x, box=box)
    assert abs(e - e_ref) <= rtol * abs(e_ref)
    assert np.abs(f - f_ref).max() <= rtol * np.abs(f_ref).max()


@pytest.mark.slow
def test_real_prmtop_loads_with_pme_equal_to_openmm():
    """The explicit alanine dipeptide as shipped (2,269 atoms): PME by default, said in the description,
    energy and forces equal to OpenMM's Reference PME of the same files to 1e-8."""
    loaded = mdjac.load_system(EXPLICIT)
    assert "PME, cutoff 0.9 nm, Ewald tolerance 0.0005" in loaded.description and loaded.n_atoms == 2269
    prmtop = app.AmberPrmtopFile(EXPLICIT)
    crd = app.AmberInpcrdFile(EXPLICIT[:-len("prmtop")] + "crd")
    system = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer, constraints=None,
                                 rigidWater=False)
    system.setDefaultPeriodicBoxVectors(*crd.boxVectors)
    _parity(system, loaded.positions, loaded.box, loaded.potential)


@pytest.mark.slow
@pytest.mark.parametrize("kind,nonbonded", [("top", "ewald"), ("psf", "reaction-field"), ("xml", "cutoff")])
def test_adapted_electrostatics_equal_openmm(trimmed, kind, nonbonded):
    """The potential of each other method, each through another format, against OpenMM's Reference
    platform: energy and forces to 1e-8."""
    loaded = mdjac.load_system(str(trimmed / f"a.{kind}"), nonbonded=nonbonded, cutoff=1.0,
                               **({"box": [3.2852863, 3.2861648, 3.1855098]} if kind == "psf" else {}))
    system, x, _ = loaded_openmm_system(trimmed / f"a.{kind}", nonbonded=nonbonded, cutoff=1.0,
                                        **({"box": loaded.box} if kind == "psf" else {}))
    assert loaded.electrostatics.split(",")[0].split(" (")[0] in ("Ewald", "reaction field", "cutoff 1 nm")
    _parity(system, x, loaded.box, loaded.potential)


@pytest.mark.slow
def test_run_modes_and_topology_of_a_vacuum_prmtop(tmp_path, monkeypatch, capsys):
    """mdjac run on a prmtop runs OpenMM's MD with the reporter: the frame's forces are OpenMM's at its
    positions, the output records the electrostatics and the options, MDAnalysis reads it with the
    system's topology; the modes job takes the prmtop as its source."""
    MDAnalysis = pytest.importorskip("MDAnalysis")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--system", GBSA, "--nonbonded", "none", "--steps", "10", "--every", "10", "-o", "md.h5md"]) == 0
    assert "fd_max_relative_error" in capsys.readouterr().out
    assert main(["info", "md.h5md"]) == 0
    assert "electrostatics   no cutoff (every pair, open boundaries)" in capsys.readouterr().out
    metadata = mdjac.io.read_metadata("md.h5md")
    assert metadata["electrostatics"].startswith("no cutoff") and metadata["system_options"] == {"nonbonded": "none"}
    loaded = mdjac.load_system(GBSA, nonbonded="none")
    u = MDAnalysis.Universe(str(loaded.topology), "md.h5md")
    assert u.trajectory.n_frames == 1 and [a.name for a in u.atoms] == list(loaded.names)
    with mdjac.open_trajectory("md.h5md") as frames:
        frame = frames[0]
    assert frame.step == 10
    np.testing.assert_allclose(u.trajectory[0].positions / 10.0, frame.positions, atol=1e-5)
    system = app.AmberPrmtopFile(GBSA).createSystem(nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    _, f_ref = openmm_energy_forces(reference_context(system, np.asarray(frame.positions, np.float64)), set(range(32)))
    assert np.abs(frame.forces - f_ref).max() <= 1e-4 * np.abs(f_ref).max()     # float32 file, OpenMM's CPU platform
    table = modes_text(GBSA, k=3, minimise=False, system_options={"nonbonded": "none"})   # what mdjac modes FILE runs
    assert "system alanine-dipeptide (no cutoff" in table and "3 modes of 22 atoms" in table


REFUSALS = [
    (["modes", GBSA], "GB radius set (H(N)-modified Bondi radii (mbondi2)) is for implicit solvent"),
    (["modes", GBSA, "--nonbonded", "pme"], "--nonbonded pme needs a periodic box"),
    (["modes", EXPLICIT, "--cutoff", "2.0"], "cutoff 2 nm is over half the shortest box edge"),
    (["modes", EXPLICIT, "--ewald-tolerance", "0"], "Ewald tolerance 0.0: give a number above 0"),
    (["modes", EXPLICIT, "--box", "3", "3"], "give three positive edges in nm (a rectangular box), or nine numbers"),
    (["modes", ADK_PSF, "--coordinates", ADK_CRD], "no CHARMM parameter files"),
    (["modes", BAD_TOP], "needs a .gro file beside it"),
    (["modes", BAD_TOP, "--coordinates", ADK_CRD], "OpenMM could not read it"),
    (["modes", "water-box", "--nonbonded", "pme"], "--nonbonded apply to force-field files"),
    (["run", "--system", "argon", "--steps", "2"], "mdjac run takes a MindSPONGE system of the catalogue or a force-field"),
    (["modes", GBSA, "--parameters", "no-such.prm"], "no-such.prm: no such parameter file"),
    (["modes", ADK_PSF, "--implicit-solvent", "OBC2"], "--implicit-solvent is for an AMBER prmtop"),
    (["modes", GBSA, "--salt", "0.1"], "salt 0.1 mol/L is the implicit solvent's: give --implicit-solvent with it"),
    (["modes", GBSA, "--implicit-solvent", "OBC2", "--salt", "-1"], "salt -1.0: give a concentration >= 0 in mol/L"),
]


@pytest.mark.parametrize("argv,message", REFUSALS, ids=[f"{a[0]}-{m[:24]}" for a, m in REFUSALS])
def test_refusals_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_compute_stores_a_gb_jacobian_that_reads_back(capsys, tmp_path, monkeypatch):
    """mdjac compute on a prmtop in OBC2 stores the generalized-Born part's per-pair arrays with each frame: the
    Jacobian read back gives the products of the one computed in memory, and info names the part."""
    monkeypatch.chdir(tmp_path)
    argv = ["compute", GBSA.replace(".prmtop", ".pdb"), "--system", GBSA, "--implicit-solvent", "OBC2", "--float64"]
    assert main(argv + ["-o", "gb.h5"]) == 0
    assert main(["info", "gb.h5"]) == 0
    assert "long range       generalized Born" in capsys.readouterr().out
    with mdjac.open_trajectory("gb.h5") as frames:
        frame = frames[0]
    assert type(frame.jacobian.long_range).__name__ == "BornJacobian"
    stored = mdjac.load_system(GBSA, implicit_solvent="OBC2").potential.force_jacobian(frame.positions)
    v = np.random.default_rng(3).normal(size=(3 * 22, 2))
    expected = stored.matvec(v)
    np.testing.assert_allclose(frame.jacobian.matvec(v), expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_cluster_workers_load_the_system_with_the_runs_options():
    """A Dask worker loads a force-field system with the loader options the run was given, once."""
    from mdjac import cluster
    state = cluster.WorkerState()
    system = state.system(GBSA, {"nonbonded": "none"})
    assert system.electrostatics.startswith("no cutoff") and state.system(GBSA, {"nonbonded": "none"}) is system
    with pytest.raises(mdjac.InputError, match="GB radius set"):
        state.system(GBSA, {})


@pytest.mark.parametrize("model,salt", [("OBC2", None), ("HCT", None), ("GBn", None), ("GBn2", None), ("OBC2", 0.15)])
def test_gb_prmtop_in_its_implicit_solvent_equals_openmm(model, salt, capsys):
    """A GB prmtop with implicit_solvent=: OpenMM's GBSAOBCForce (OBC2) or CustomGBForce (the others, and OBC2 with
    salt= mol/L) from the file, energy and forces against OpenMM's Reference platform at that salt."""
    loaded = mdjac.load_system(GBSA, implicit_solvent=model, salt=salt)
    said = f"implicit solvent {model}" + (f" with {salt:g} mol/L salt" if salt else "")
    assert loaded.electrostatics.endswith(said) and loaded.box is None
    system = app.AmberPrmtopFile(GBSA).createSystem(nonbondedMethod=app.NoCutoff, implicitSolvent=getattr(app, model),
                                                    implicitSolventSaltConc=(salt or 0.0) * unit.molar,
                                                    constraints=None, rigidWater=False)
    if salt:        # OpenMM states the screening in its CustomGBForce; the energy differs from no salt's
        assert any(isinstance(f, openmm.CustomGBForce) for f in system.getForces())
        x = np.asarray(loaded.positions, dtype=np.float64)
        unsalted = mdjac.load_system(GBSA, implicit_solvent=model).potential.energy_and_forces(x)[0]
        assert abs(loaded.potential.energy_and_forces(x)[0] - unsalted) > 1e-3
    x = np.asarray(loaded.positions, dtype=np.float64)
    e_ref, f_ref = openmm_energy_forces(reference_context(system, x), set(range(32)))
    e, f = loaded.potential.energy_and_forces(x)
    assert abs(e - e_ref) < 1e-8 * abs(e_ref) and np.abs(f - f_ref).max() < 1e-8 * np.abs(f_ref).max()
    if model == "OBC2":     # the command line: its normal modes where the file puts the atoms
        assert main(["modes", GBSA, "--implicit-solvent", model, "--no-minimise", "-k", "3"]) == 0
        out = capsys.readouterr().out
        assert "implicit solvent OBC2" in out and "3 modes of 22 atoms" in out and "minimised" not in out
