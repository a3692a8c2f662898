"""The catalogue: every system loads, from the package data, with consistent arrays.

References are independent of the code under test: the article's Jacobian is built by hand from
its y and index, argon's energy by an all-pairs numpy sum, PDB coordinates by MDAnalysis.
"""
import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

import mdjac
from mdjac import InputError
from mdjac.catalogue import available_systems, load_system, systems_dir

REQUIRED = {"alanine-dipeptide", "water-box", "argon", "seed-article"}


def test_catalogue_names_and_default():
    assert REQUIRED <= set(available_systems())
    assert load_system().name == "alanine-dipeptide"
    assert mdjac.load_system is load_system


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(InputError) as err:
        load_system("no-such-system")
    message = str(err.value)
    assert "\n" not in message
    for name in REQUIRED:
        assert name in message


def test_bad_system_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError):
        load_system(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"engine": "gromacs"}))
    with pytest.raises(InputError):
        load_system(wrong)


def test_files_ship_as_package_data():
    """Every file a system names is in the ``mdjac.systems`` package (what an install carries)."""
    folder = files("mdjac.systems")
    assert systems_dir().samefile(str(folder))
    for name in REQUIRED:
        spec = json.loads(folder.joinpath(f"{name}.json").read_text())
        if "coordinates" in spec:
            assert folder.joinpath(spec["coordinates"]).is_file()


@pytest.mark.parametrize("name", sorted(REQUIRED - {"seed-article"}))
def test_molecular_systems_are_consistent(name):
    s = load_system(name)
    n = len(s.positions)
    assert s.positions.shape == (n, 3) and s.positions.dtype == np.float64
    assert np.all(np.isfinite(s.positions))
    assert s.masses.shape == (n,) and np.all(s.masses > 0)
    assert s.names.shape == (n,)
    assert s.box is None or (s.box.shape == (3,) and np.all(s.box > 0))
    if s.box is not None and s.cutoff is not None:
        assert s.cutoff <= 0.5 * s.box.min()


def test_pdb_coordinates_match_mdanalysis():
    """alanine-dipeptide's positions and names as MDAnalysis reads the same PDB (Angstrom -> nm)."""
    import MDAnalysis
    s = load_system("alanine-dipeptide")
    u = MDAnalysis.Universe(str(s.path.parent / s.spec["coordinates"]))
    assert np.allclose(s.positions, u.atoms.positions / 10, atol=1e-6)
    assert list(s.names) == list(u.atoms.names)
    assert s.potential.n_atoms == len(s.positions) == 22


def test_water_box_size(water_box):
    s = water_box
    assert len(s.positions) == 3000 and list(s.names[:3]) == ["O", "H1", "H2"]
    density = s.masses.sum() * 1.66053907e-27 / np.prod(s.box * 1e-9)   # kg/m^3
    assert 950 < density < 1050
    # the documented edge is the coordinates file's, and the potential keeps it in float64
    assert f"{s.box[0]:.5f} nm" in s.description
    assert s.potential.box.tolist() == s.box.tolist()


def test_argon_energy_against_all_pairs():
    """The catalogue's argon potential against a brute-force minimum-image Lennard-Jones sum."""
    s = load_system("argon")
    assert s.potential.energy(s.positions) == pytest.approx(all_pairs_lennard_jones(s), rel=1e-10)


def all_pairs_lennard_jones(system):
    """The energy (kJ/mol) of a one-type LennardJones system file at its positions: a minimum-image numpy sum."""
    term = system.spec["terms"][0]
    sigma, eps, rc = term["sigma"][0], term["epsilon"][0], term["cutoff"]
    x = system.positions
    d = x[:, None, :] - x[None, :, :]
    d -= system.box * np.round(d / system.box)
    r = np.sqrt((d ** 2).sum(-1))[np.triu_indices(len(x), 1)]
    r = r[r < rc]
    return np.sum(4 * eps * ((sigma / r) ** 12 - (sigma / r) ** 6))


def test_mdjac_system_reads_its_coordinates_file_once(tmp_path):
    """The potential of an "mdjac" system takes its '@types' from the arrays read when it was loaded:
    the coordinates file is not opened again (here it is gone), and the energy is the all-pairs sum."""
    from helpers import write_system
    system = load_system(write_system(tmp_path))
    (tmp_path / "tiny.npz").unlink()
    assert system.potential.energy(system.positions) == pytest.approx(all_pairs_lennard_jones(system), rel=1e-10)


def test_seed_article_function_and_jacobian():
    """z = y[index] * x, and its Jacobian by the article's masked grad, against numpy."""
    import mindspore as ms
    from mdjac import kernel

    s = load_system("seed-article")
    assert s.potential is None and s.function is not None
    x = s.positions
    y, index = np.asarray(s.spec["y"]), np.asarray(s.spec["index"])
    z = s.function(ms.Tensor(x)).asnumpy()
    assert np.allclose(z, y[index, 0] * x)
    R = kernel.row_compressed_jacobian(s.function, x, np.arange(len(x)), len(x), batched=False)
    expected = np.zeros((len(x), len(x)))
    expected[np.arange(len(x)), np.arange(len(x))] = y[index, 0]   # dz_i/dx_j = y[index[i]] delta_ij
    assert np.allclose(R, expected)


@pytest.mark.slow
def test_importing_mdjac_does_not_import_mindsponge():
    code = ("import sys, mdjac; s = mdjac.load_system('argon'); s.potential; "
            "assert 'mindsponge' not in sys.modules, 'mindsponge imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- bad system files
GOOD_TINY = {"name": "tiny", "engine": "mdjac", "coordinates": "tiny.npz",
             "atom_types": [{"name": "Ar", "mass": 39.948}],
             "terms": [{"term": "LennardJones", "sigma": [0.3405], "epsilon": [0.99774], "types": "@types",
                        "cutoff": 0.5}]}


def _spoil(change):
    spec = json.loads(json.dumps(GOOD_TINY))
    change(spec)
    return spec


def _term(**kw):
    return lambda s: s["terms"][0].update(kw)


def _drop(key, where=lambda s: s["terms"][0]):
    return lambda s: where(s).pop(key)


BAD_SYSTEM_FILES = {
    "missing sigma": (_drop("sigma"), ("LennardJones", "sigma")),
    "misspelled key": (_term(sigmaa=[0.3]), ("sigmaa", "did you mean 'sigma'")),
    "sigma a word": (_term(sigma="big"), ("LennardJones sigma", "big")),
    "epsilon NaN": (_term(epsilon=[float("nan")]), ("epsilon", "NaN")),
    "negative epsilon": (_term(epsilon=[-1.0]), ("LennardJones epsilon", "not >= 0")),
    "terms an object": (lambda s: s.update(terms=s["terms"][0]), ("'terms'", "list")),
    "term unknown": (_term(term="LenardJones"), ("LenardJones", "did you mean 'LennardJones'")),
    "term missing": (_drop("term"), ("names no 'term'",)),
    "reference to no array": (_term(types="@kinds"), ("@kinds", "no array")),
    "no coordinates": (_drop("coordinates", where=lambda s: s), ("lacks the key 'coordinates'",)),
    "misspelled field": (lambda s: s.update(coordinate=s.pop("coordinates")), ("coordinate", "did you mean 'coordinates'")),
    "negative mass": (lambda s: s["atom_types"][0].update(mass=-39.948), ("mass", "positive")),
    "zero mass": (lambda s: s["atom_types"][0].update(mass=0), ("mass", "positive")),
    "mass a word": (lambda s: s["atom_types"][0].update(mass="heavy"), ("mass", "heavy")),
    "not an object": (lambda s: None, ("JSON object",)),
    "coordinates a number": (lambda s: s.update(coordinates=3), ("'coordinates' is 3; give a string",)),
    "name a list": (lambda s: s.update(name=["tiny"]), ("'name' is ['tiny']; give a string",)),
    "box not in OpenMM's form": (lambda s: s.update(box=[[1.5, 0.2, 0], [0, 1.5, 0], [0, 0, 1.5]]),
                                 ("box", "OpenMM's form", "3 box vectors")),
    "box a word": (lambda s: s.update(box="big"), ("box", "big", "3 edges or 3 box vectors")),
}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A folder with the tiny system's coordinates and an XYZ trajectory of 2 frames of its 4 atoms."""
    folder = tmp_path_factory.mktemp("bad_systems")
    x = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.5, 0.5, 0.5]]) + 0.2
    np.savez(folder / "tiny.npz", positions=x, types=np.zeros(4, int), box=np.full(3, 1.5))
    frames = "".join(f"4\nframe {k}\n" + "".join(f"Ar {10 * a:.4f} {10 * b:.4f} {10 * c:.4f}\n" for a, b, c in x)
                     for k in range(2))
    (folder / "in.xyz").write_text(frames)
    return folder


@pytest.mark.parametrize("case", sorted(BAD_SYSTEM_FILES))
def test_bad_system_file_is_one_line_from_the_command_line(case, tiny_folder, capsys):
    """Each bad system file: exit 2, one line naming the problem, no traceback, no output file."""
    from mdjac.cli import main
    change, words = BAD_SYSTEM_FILES[case]
    spec = [1, 2] if case == "not an object" else _spoil(change)
    bad = tiny_folder / f"{case.replace(' ', '_')}.json"
    bad.write_text(json.dumps(spec))
    out = tiny_folder / f"{case.replace(' ', '_')}.h5md"
    before = sorted(p.name for p in tiny_folder.iterdir())
    code = main(["compute", str(tiny_folder / "in.xyz"), "-s", str(bad), "-o", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 2
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mdjac: error:"), lines
    assert "Traceback" not in captured.err
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    assert sorted(p.name for p in tiny_folder.iterdir()) == before      # nothing created
    # the library says the same, as an InputError
    with pytest.raises(InputError):
        load_system(bad).potential


def test_the_good_tiny_system_computes(tiny_folder, capsys):
    """The reference for the bad cases above: the same files unspoiled give an output."""
    from mdjac.cli import main
    good = tiny_folder / "good.json"
    good.write_text(json.dumps(GOOD_TINY))
    code = main(["compute", str(tiny_folder / "in.xyz"), "-s", str(good), "-o", str(tiny_folder / "good.h5md"), "-q"])
    assert code == 0, capsys.readouterr()
    assert (tiny_folder / "good.h5md").is_file()
    (tiny_folder / "good.h5md").unlink()
    good.unlink()


def test_system_file_without_coordinates_is_not_called_unknown(tmp_path):
    spec = _spoil(_drop("coordinates", where=lambda s: s))
    (tmp_path / "nocoords.json").write_text(json.dumps(spec))
    with pytest.raises(InputError) as err:
        mdjac.catalogue.resolve_system(str(tmp_path / "nocoords.json"))
    assert "unknown" not in str(err.value) and "lacks the key 'coordinates'" in str(err.value)


@pytest.mark.parametrize("change,words", [
    (lambda s: s.pop("template"), ("lacks the key 'template'",)),
    (lambda s: s.update(template=["protein0.yaml"]), ("'template' is ['protein0.yaml']; give a string",)),
    (lambda s: s.update(forcefield=14), ("'forcefield' is 14; give a string",)),
    (lambda s: s.update(coordinates=None), ("'coordinates' is None; give a string",)),
    (lambda s: s.update(residues="ACE"), ("'residues'",)),
    (lambda s: s.update(cutoff="far"), ("cutoff", "positive")),
    (lambda s: s.update(md={"temperature": -300.0, "time_step": 0.001}), ("temperature", "positive")),
    (lambda s: s.update(md={"temprature": 300.0}), ("'md'",)),
])
def test_bad_mindsponge_system_file(tmp_path, change, words):
    spec = json.loads((systems_dir() / "alanine-dipeptide.json").read_text())
    spec["coordinates"] = str(systems_dir() / spec["coordinates"])
    change(spec)
    (tmp_path / "ala.json").write_text(json.dumps(spec))
    with pytest.raises(InputError) as err:
        load_system(tmp_path / "ala.json")
    message = str(err.value)
    assert "\n" not in message
    for w in words:
        assert w in message, (w, message)


# ----------------------------------------------------------------------------- topologies for MDAnalysis
#: The clone's systems/ folder: what the package data ``mdjac.systems`` is built from.
CLONE_SYSTEMS = Path(__file__).resolve().parents[1] / "systems"


def _mdjac_output(system, folder):
    """An output file of ``system`` as mdjac writes it: 2 jittered frames of its positions, with forces and
    Jacobians by ``compute_trajectory`` for argon; for the MindSPONGE systems, positions and box by the
    same writer (building MindSPONGE's force field takes minutes on a loaded machine, and the topology
    concerns only the atoms). Returns (path, positions (2, N, 3) nm)."""
    from mdjac.io import open_writer
    from mdjac.jobs import compute_trajectory

    rng = np.random.default_rng(5)
    x = system.positions[None] + rng.normal(scale=0.002, size=(2,) + system.positions.shape)
    if system.box is not None:
        x %= system.box
    out = folder / f"{system.name}.h5md"
    if system.is_mindsponge:
        with open_writer(out, system.n_atoms, names=system.names, masses=system.masses,
                         periodic=system.box is not None, forces=False, jacobian_atoms=None) as w:
            for k in range(2):
                w.append(k, 0.1 * k, x[k], system.box)
    else:
        source = folder / f"{system.name}-in.h5md"
        with open_writer(source, system.n_atoms, periodic=system.box is not None, forces=False,
                         jacobian_atoms=None) as w:
            for k in range(2):
                w.append(k, 0.1 * k, x[k], system.box)
        compute_trajectory(str(source), system, str(out), progress=False)
    return out, x


@pytest.mark.parametrize("name", sorted(REQUIRED - {"seed-article"}))
def test_topology_pdb_opens_the_output_in_mdanalysis(name, tmp_path):
    """MDAnalysis.Universe(NAME.pdb, out.h5md): right atoms, names, residues and every position."""
    import warnings
    import MDAnalysis

    system = load_system(CLONE_SYSTEMS / f"{name}.json")
    assert system.topology == CLONE_SYSTEMS / f"{name}.pdb"
    out, x = _mdjac_output(system, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = MDAnalysis.Universe(str(system.topology), str(out))
    assert len(u.atoms) == system.n_atoms
    assert list(u.atoms.names) == list(system.names)
    assert u.trajectory.n_frames == 2
    for ts, want in zip(u.trajectory, x):
        np.testing.assert_allclose(ts.positions, 10 * want, atol=1e-4)          # Angstrom, float32 storage
        if system.box is not None:
            np.testing.assert_allclose(ts.dimensions[:3], 10 * system.box, rtol=1e-6)
    residues = {"alanine-dipeptide": ["ACE", "ALA", "NME"], "water-box": ["WAT"] * 1000, "argon": ["AR"] * 256}[name]
    assert list(u.residues.resnames) == residues


def test_every_molecular_system_has_a_topology_shipped():
    """systems/NAME.pdb for every catalogue system with atoms, and *.pdb in the package data."""
    for spec_path in CLONE_SYSTEMS.glob("*.json"):
        if json.loads(spec_path.read_text())["engine"] != "article":
            assert spec_path.with_suffix(".pdb").is_file(), spec_path
    assert '"*.pdb"' in (CLONE_SYSTEMS.parent / "pyproject.toml").read_text()


def test_openmm_engine_knows_the_suffixes_openmm_files_reads():
    """The catalogue finds OpenMM's files by suffix without importing OpenMM: the same list as the reader's."""
    from mdjac.catalogue import openmm_engine
    from mdjac.openmm import files
    assert openmm_engine.SUFFIXES == files.SUFFIXES
