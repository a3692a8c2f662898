"""The catalogue: every system loads, from the package data, with consistent arrays.

References are independent of the code under test: the article's Jacobian is built by hand from
its y and index, argon's energy by an all-pairs numpy sum, PDB coordinates by MDAnalysis.
"""
import json
import subprocess
import sys
from importlib.resources import files

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


def test_water_box_size():
    s = load_system("water-box")
    assert len(s.positions) == 3000 and list(s.names[:3]) == ["O", "H1", "H2"]
    density = s.masses.sum() * 1.66053907e-27 / np.prod(s.box * 1e-9)   # kg/m^3
    assert 950 < density < 1050
    # the documented edge is the coordinates file's, and the potential keeps it in float64
    assert f"{s.box[0]:.5f} nm" in s.description
    assert s.potential.box.tolist() == s.box.tolist()


def test_argon_energy_against_all_pairs():
    """The catalogue's argon potential against a brute-force minimum-image Lennard-Jones sum."""
    s = load_system("argon")
    spec = s.spec["terms"][0]
    sigma, eps, rc = spec["sigma"][0], spec["epsilon"][0], spec["cutoff"]
    x = s.positions
    d = x[:, None, :] - x[None, :, :]
    d -= s.box * np.round(d / s.box)
    r = np.sqrt((d ** 2).sum(-1))[np.triu_indices(len(x), 1)]
    r = r[r < rc]
    reference = np.sum(4 * eps * ((sigma / r) ** 12 - (sigma / r) ** 6))
    assert s.potential.energy(x) == pytest.approx(reference, rel=1e-10)


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


def test_importing_mdjac_does_not_import_mindsponge():
    code = ("import sys, mdjac; s = mdjac.load_system('argon'); s.potential; "
            "assert 'mindsponge' not in sys.modules, 'mindsponge imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
