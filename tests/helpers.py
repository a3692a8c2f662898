"""Plain helpers shared by the test modules (no test module imports another one; shared objects
that cost time are fixtures in conftest.py instead).

* ``ENV``: the environment of a fresh ``python`` process that imports this checkout's mdjac;
* ``rel``: the relative error of an array against a reference (max abs difference over max abs);
* ``assert_same_datasets``: two HDF5 files hold the same groups, datasets and attributes;
* ``write_frames``, ``write_input``, ``write_system``: input trajectories (H5MD) and the tiny
  periodic Lennard-Jones system file of the command-line tests;
* ``both_routes``: a potential's results by the radial route and by the general one;
* ``small_waters``, ``water_exclusions``: SPC/E-charged waters on a jittered lattice and the
  intramolecular pairs of n waters (Ewald and PME tests);
* ``atoms_away_from_cutoff``: the atoms with no pair near the cutoff (where central differences of a
  truncated potential are smooth);
* ``read_without_mindspore``: what a fresh process reads of a stored Jacobian, checking it never
  imported MindSpore.
"""
import json
import math
import os
import sys

import h5py
import numpy as np

#: Environment of a child ``python``: this process's import path, so that it finds this mdjac.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def rel(got, ref):
    """max |got - ref| / max |ref|, in float64."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


# ----------------------------------------------------------------------------- HDF5 files compared
def all_datasets(path):
    """{name: (attributes, data)} of every group and dataset of an HDF5 file."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: np.asarray(v).tolist() for k, v in obj.attrs.items()}
            out[name] = (attrs, obj[()] if isinstance(obj, h5py.Dataset) else None)
        f.visititems(visit)
    return out


def assert_same_datasets(a, b, ignore=()):
    """Every dataset and attribute of the files ``a`` and ``b`` equal (hard links compared once by
    name), except the attributes ``ignore``: (object name, attribute name) pairs."""
    da, db = all_datasets(a), all_datasets(b)
    assert sorted(da) == sorted(db)
    for name in da:
        skip = {attr for obj, attr in ignore if obj == name}
        assert ({k: v for k, v in da[name][0].items() if k not in skip}
                == {k: v for k, v in db[name][0].items() if k not in skip}), name
        if da[name][1] is not None:
            np.testing.assert_array_equal(da[name][1], db[name][1], err_msg=name)


# ----------------------------------------------------------------------------- input files
def write_frames(path, positions, box, n_frames, jitter, seed=0, shift=0.0, nan_frame=None):
    """An input H5MD trajectory (positions and box only): ``positions`` (N, 3) nm shifted by
    ``shift``, jittered by normal noise of ``jitter`` nm and wrapped into ``box`` (3,), at steps
    0, 10, 20... (time 0.01 ps a step); frame ``nan_frame`` holds a NaN coordinate."""
    from mdjac.io.h5md_writer import H5MDWriter
    rng = np.random.default_rng(seed)
    box = np.asarray(box, dtype=np.float64)
    with H5MDWriter(path, len(positions), periodic=True, forces=False, jacobian_atoms=None, batch=64) as w:
        for k in range(n_frames):
            x = (positions + shift + rng.normal(scale=jitter, size=positions.shape)) % box
            if k == nan_frame:
                x[3, 1] = np.nan
            w.append(10 * k, 0.01 * k, x, box)
    return str(path)


#: The tiny system of the command-line tests: 64 argon-like atoms on a lattice in a 1.6 nm box,
#: Lennard-Jones cut at 0.7 nm.
TINY_EDGE = 1.6
TINY_LATTICE = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3) * (TINY_EDGE / 4)
TINY_ATOMS = len(TINY_LATTICE)


def write_system(folder):
    """The tiny periodic Lennard-Jones system file (engine "mdjac") in ``folder``; its path."""
    np.savez(folder / "tiny.npz", positions=TINY_LATTICE, types=np.zeros(TINY_ATOMS, int), box=np.full(3, TINY_EDGE))
    spec = {"name": "tiny", "engine": "mdjac", "coordinates": "tiny.npz",
            "atom_types": [{"name": "Ar", "mass": 39.948}],
            "terms": [{"term": "LennardJones", "sigma": [0.3405], "epsilon": [0.99774],
                       "types": "@types", "cutoff": 0.7}]}
    (folder / "tiny.json").write_text(json.dumps(spec))
    return str(folder / "tiny.json")


def write_input(path, n_frames, n_atoms=TINY_ATOMS, nan_frame=None, seed=0):
    """Jittered lattice frames of the tiny system (its first ``n_atoms`` atoms) as an H5MD input."""
    return write_frames(path, TINY_LATTICE[:n_atoms], np.full(3, TINY_EDGE), n_frames, jitter=0.01, seed=seed,
                        nan_frame=nan_frame)


# ----------------------------------------------------------------------------- the radial route
def both_routes(pot, x, **kw):
    """[(Jacobian, energy, forces) by the radial route, the same by the general route]."""
    out = []
    try:
        for radial in (True, False):
            pot.radial = radial
            e, f = pot.energy_and_forces(x)
            out.append((pot.force_jacobian(x, **kw), e, f))
    finally:
        pot.radial = True
    return out


#: SPC/E charges (e) of O, H, H.
SPCE_CHARGES = (-0.8476, 0.4238, 0.4238)


def small_waters(n_waters, box, seed=0):
    """Rigid-geometry waters on a jittered lattice in a box (3,) nm: positions, charges, exclusions."""
    rng = np.random.default_rng(seed)
    m = int(math.ceil(n_waters ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n_waters]
    oxygen = (grid + 0.5) * np.asarray(box) / m + rng.normal(scale=0.02, size=grid.shape)
    rot = np.linalg.qr(rng.normal(size=(n_waters, 3, 3)))[0]
    h1 = oxygen + rot @ np.array([0.1, 0.0, 0.0])
    h2 = oxygen + rot @ np.array([-0.0333, 0.0943, 0.0])
    x = np.stack([oxygen, h1, h2], 1).reshape(-1, 3)
    return x, np.tile(SPCE_CHARGES, n_waters), water_exclusions(n_waters)


def water_exclusions(n_waters):
    """The intramolecular pairs (O-H1, O-H2, H1-H2) of n waters stored O, H, H: (3 n, 2) atom indices."""
    return np.array([[3 * w + a, 3 * w + b] for w in range(n_waters) for a, b in ((0, 1), (0, 2), (1, 2))])


def atoms_away_from_cutoff(x, box, cutoff, margin):
    """Indices of the atoms with no pair distance (minimum image in ``box`` (3,) nm) within ``margin`` nm of
    ``cutoff`` nm: a truncated direct space is smooth there over a finite-difference step. x: (N, 3) nm."""
    d = x[:, None, :] - x[None, :, :]
    d -= box * np.round(d / box)
    r = np.sqrt((d * d).sum(-1))
    return np.flatnonzero(np.all(np.abs(r - cutoff) > margin, axis=1))


def read_without_mindspore(path, fields):
    """The words a fresh process prints of ``fields`` (an expression of J, frame 0's Jacobian of the H5MD
    file ``path`` read by mdjac.io), after checking that it never imported MindSpore."""
    import subprocess
    import sys

    child = (
        "import sys, mdjac.io\n"
        f"with mdjac.io.open_trajectory({str(path)!r}) as traj:\n"
        "    J = traj[0].jacobian\n"
        f"    print({fields})\n"
        "assert 'mindspore' not in sys.modules, sorted(m for m in sys.modules if m.startswith('mindspore'))[:5]\n")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()
