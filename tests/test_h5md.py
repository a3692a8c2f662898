"""H5MD files: the writer and reader round trip, the layout, real clients (MDAnalysis, pyh5md,
plain h5py), input trajectories (MindSPONGE's WriteH5MD, PDB/XYZ/DCD/XTC), and never losing a
frame (complete frames only, resume, the rollback journal, the single-writer lock)."""
import os
import subprocess
import sys
import textwrap
import warnings

import h5py
import numpy as np
import pytest
import scipy.sparse

from mdjac.io import journal, open_trajectory, open_writer
from mdjac.errors import InputError, OutputLocked
from mdjac.io.h5md_layout import complete_frames, modify
from mdjac.io.h5md_reader import describe, read_metadata
from mdjac.io.h5md_writer import COMPRESSIONS, DEFAULT_COMPRESSION, OTHERS_COMPRESSION, H5MDWriter as TrajectoryWriter
from mdjac.jacobian import ForceJacobian

from helpers import ENV, assert_same_datasets

N = 12
BOX = np.array([1.5, 1.6, 1.7])
MASSES = 1.0 + np.arange(N, dtype=np.float64)  # amu, one per atom, all different


def random_jacobian(rng, n_atoms, atoms=None, density=0.3, dtype=np.float32):
    """A random symmetric ForceJacobian (J_ij = J_ji^T), every diagonal block present."""
    atoms = np.arange(n_atoms) if atoms is None else np.asarray(atoms)
    n = len(atoms)
    upper = np.triu(rng.random((n, n)) < density, 1)
    rows, cols = np.nonzero(upper | upper.T | np.eye(n, dtype=bool))
    full = rng.normal(size=(n, n, 3, 3))
    full = full + full.transpose(1, 0, 3, 2)
    return ForceJacobian(n_atoms, rows, cols, full[rows, cols].astype(dtype), atoms)


def random_frames(n_frames, periodic=True, dtype=np.float32, atoms=None, seed=0):
    """Frames as append() keyword dicts; the Jacobian pattern changes from frame to frame."""
    rng = np.random.default_rng(seed)
    return [dict(step=5 * k, time=0.01 * k, positions=rng.random((N, 3)),
                 box=BOX * (1 + 0.01 * k) if periodic else None,
                 forces=rng.normal(size=(N, 3)), jacobian=random_jacobian(rng, N, atoms, dtype=dtype))
            for k in range(n_frames)]


def write(path, frames, periodic=True, **options):
    with TrajectoryWriter(path, N, periodic=periodic, masses=MASSES,
                          names=[f"C{i}" for i in range(N)], **options) as w:
        for frame in frames:
            w.append(**frame)


def assert_frame_equal(got, want, dtype=np.float32):
    assert got.step == want["step"]
    assert got.time == pytest.approx(want["time"])
    np.testing.assert_array_equal(got.positions, np.asarray(want["positions"], dtype=dtype))
    np.testing.assert_array_equal(got.forces, np.asarray(want["forces"], dtype=dtype))
    if want["box"] is None:
        assert got.box is None
    else:
        np.testing.assert_allclose(got.box, want["box"], rtol=1e-6)
    jw, jg = want["jacobian"], got.jacobian
    assert jg.n_atoms == jw.n_atoms
    np.testing.assert_array_equal(jg.atoms, jw.atoms)
    np.testing.assert_array_equal(jg.rows, jw.rows)
    np.testing.assert_array_equal(jg.cols, jw.cols)
    np.testing.assert_array_equal(jg.blocks, jw.blocks.astype(dtype))


# ------------------------------------------------------------------------------------ round trip

@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 3])
def test_round_trip(tmp_path, periodic, dtype, batch):
    path = tmp_path / "t.h5md"
    frames = random_frames(7, periodic, dtype)
    write(path, frames, periodic=periodic, dtype=dtype, batch=batch)
    with open_trajectory(path) as traj:
        assert len(traj) == 7 and traj.n_atoms == N
        np.testing.assert_array_equal(traj.masses, MASSES)
        for got, want in zip(traj, frames):
            assert_frame_equal(got, want, dtype)
        assert_frame_equal(traj[-1], frames[-1], dtype)
        assert_frame_equal(traj[-7], frames[0], dtype)
        view = traj[1:6:2]
        assert len(view) == 3 and [f.step for f in view] == [5, 15, 25]
        assert view[-1].step == 25 and traj[::-1][0].step == 30
        with pytest.raises(IndexError):
            traj[7]
        with pytest.raises(IndexError):
            traj[-8]
    assert not (tmp_path / "t.h5md.lock").exists()
    assert not (tmp_path / "t.h5md.journal").exists()


@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_compression_reads_back_identically(tmp_path, compression, dtype):
    """Each filter mdjac compute offers for the blocks: the blocks have it, every other dataset
    gzip, and mdjac's reader, plain h5py (in a fresh process with no filter plugins) and
    MDAnalysis read back what was written."""
    path, frames = tmp_path / "t.h5md", random_frames(5, True, dtype)
    write(path, frames, dtype=dtype, batch=2, compression=compression)
    with open_trajectory(path) as traj:
        assert len(traj) == 5
        for got, want in zip(traj, frames):
            assert_frame_equal(got, want, dtype)
    with h5py.File(path, "r") as f:
        g = f["particles/trajectory"]
        for name in ("position/value", "force/value", "box/edges/value", "position/step", "position/time",
                     "force_jacobian/indptr", "force_jacobian/offset", "force_jacobian/indices",
                     "force_jacobian/blocks"):
            expected = COMPRESSIONS[compression] if name.endswith("blocks") else OTHERS_COMPRESSION
            assert g[name].compression == expected.get("compression"), name
            assert g[name].compression_opts == expected.get("compression_opts"), name
            assert g[name].shuffle == expected.get("shuffle", False), name
    reference = tmp_path / "reference.npz"
    np.savez(reference, positions=[np.asarray(w["positions"], dtype) for w in frames],
             forces=[np.asarray(w["forces"], dtype) for w in frames],
             cols=np.concatenate([w["jacobian"].cols for w in frames]),
             blocks=np.concatenate([w["jacobian"].blocks for w in frames]).astype(dtype))
    plain = textwrap.dedent("""
        import sys, h5py, numpy as np
        ref = np.load(sys.argv[2])
        with h5py.File(sys.argv[1], "r") as f:
            g = f["particles/trajectory"]
            ok = [np.array_equal(g["position/value"][()], ref["positions"]), np.array_equal(g["force/value"][()], ref["forces"]),
                  np.array_equal(g["force_jacobian/indices"][()], ref["cols"]), np.array_equal(g["force_jacobian/blocks"][()], ref["blocks"])]
        print(ok, "hdf5plugin" in sys.modules)
        """)
    (tmp_path / "no-plugins").mkdir()
    done = subprocess.run([sys.executable, "-c", plain, str(path), str(reference)], capture_output=True, text=True,
                          env=dict(os.environ, HDF5_PLUGIN_PATH=str(tmp_path / "no-plugins")))
    assert done.returncode == 0 and done.stdout.split("\n")[0] == "[True, True, True, True] False", done.stderr
    assert_mdanalysis_reads(path, frames, tmp_path, dtype)


def assert_mdanalysis_reads(path, frames, folder, dtype=np.float32):
    """MDAnalysis (with a PDB topology written in ``folder``) reads the positions, forces and box
    of every frame of ``path`` as written (in Angstrom)."""
    import MDAnalysis as mda
    write_pdb(folder / "top.pdb", N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(folder / "top.pdb"), str(path))
    assert u.trajectory.n_frames == len(frames)
    for ts, want in zip(u.trajectory, frames):
        np.testing.assert_allclose(ts.positions, 10 * np.asarray(want["positions"], dtype), rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(ts.forces, np.asarray(want["forces"], dtype) / 10, rtol=1e-6, atol=1e-6)
        if want["box"] is not None:
            np.testing.assert_allclose(ts.dimensions[:3], 10 * np.asarray(want["box"], dtype), rtol=1e-6)


def test_partial_jacobian(tmp_path):
    atoms = np.array([1, 4, 5, 9])
    frames = random_frames(3, atoms=atoms)
    write(tmp_path / "p.h5md", frames, jacobian_atoms=atoms)
    with open_trajectory(tmp_path / "p.h5md") as traj:
        for got, want in zip(traj, frames):
            assert_frame_equal(got, want)
    with pytest.raises(InputError, match="atoms differ"):
        write(tmp_path / "q.h5md", frames)      # file made for all atoms, frames for a subset


def test_upper_triangle_round_trip(tmp_path):
    frames = random_frames(5)               # exactly symmetric blocks: the mirror is lossless
    write(tmp_path / "u.h5md", frames, triangle="upper")
    write(tmp_path / "f.h5md", frames)
    with open_trajectory(tmp_path / "u.h5md") as traj:
        for got, want in zip(traj, frames):
            assert_frame_equal(got, want)
    full, upper = describe(tmp_path / "f.h5md"), describe(tmp_path / "u.h5md")
    assert upper["triangle"] == "upper" and full["triangle"] == "full"
    assert upper["blocks_per_frame"][1] == pytest.approx((full["blocks_per_frame"][1] + N) / 2)
    with pytest.raises(InputError, match="triangle differs"):
        TrajectoryWriter(tmp_path / "u.h5md", N, periodic=True, mode="a")


@pytest.mark.parametrize("triangle", ["full", "upper"])
def test_bsr_with_h5py_alone(tmp_path, triangle):
    """The snippet of docs/h5md.md: a frame's scipy.sparse.bsr_matrix from h5py and scipy only."""
    frames = random_frames(4)
    write(tmp_path / "t.h5md", frames, triangle=triangle)
    k = 2
    with h5py.File(tmp_path / "t.h5md", "r") as f:
        jac = f["particles/trajectory/force_jacobian"]
        n = len(jac["atoms"])                        # block rows/columns: atoms jac["atoms"]
        indptr = jac["indptr"][k]                    # (n + 1,) row pointers of frame k
        start = jac["offset"][k]                     # where frame k's blocks start
        stop = start + indptr[-1]
        indices = jac["indices"][start:stop]         # (nnz,) block columns
        blocks = jac["blocks"][start:stop]           # (nnz, 3, 3) kJ mol-1 nm-2
        J = scipy.sparse.bsr_matrix((blocks, indices, indptr), shape=(3 * n, 3 * n))
        if jac.attrs["triangle"] == "upper":         # only blocks j >= i stored: J_ji = J_ij^T
            rows = np.repeat(np.arange(n), np.diff(indptr))
            diagonal = scipy.sparse.block_diag(blocks[rows == indices], format="bsr")
            J = (J + J.T - diagonal).tobsr(blocksize=(3, 3))
    want = frames[k]["jacobian"].to_bsr()
    assert J.blocksize == (3, 3)
    np.testing.assert_array_equal(J.toarray(), want.toarray())


def test_layout(tmp_path):
    path = tmp_path / "t.h5md"
    write(path, random_frames(3), metadata={"system": "argon"})
    with h5py.File(path, "r") as f:
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert f["h5md/creator"].attrs["name"] == "mdjac" and "version" in f["h5md/creator"].attrs
        assert "name" in f["h5md/author"].attrs
        assert list(f["h5md/modules/units"].attrs["version"]) == [1, 0]
        g = f["particles/trajectory"]
        assert list(f["particles"]) == ["trajectory"]
        assert g["box"].attrs["dimension"] == 3
        assert [b.decode() if isinstance(b, bytes) else b for b in g["box"].attrs["boundary"]] == ["periodic"] * 3
        units = {"position/value": "nm", "position/time": "ps", "force/value": "kJ mol-1 nm-1",
                 "box/edges/value": "nm", "force_jacobian/blocks": "kJ mol-1 nm-2", "mass": "u"}
        for name, unit in units.items():
            assert g[name].attrs["unit"] == unit, name
        for name in ("force", "box/edges", "force_jacobian"):       # one clock, hard links
            assert g[f"{name}/step"] == g["position/step"] and g[f"{name}/time"] == g["position/time"]
        for name in ("position/value", "force/value", "force_jacobian/blocks", "force_jacobian/indices"):
            assert g[name].chunks is not None and g[name].maxshape[0] is None
            expected = COMPRESSIONS[DEFAULT_COMPRESSION] if name.endswith("blocks") else OTHERS_COMPRESSION
            assert g[name].compression == expected.get("compression") and g[name].shuffle == expected.get("shuffle", False)
        assert g["position/value"].compression == "gzip"
        assert g["position/step"].dtype == np.int64 and g["force_jacobian/indices"].dtype == np.int32
    assert read_metadata(path) == {"system": "argon"}
    info = describe(path)
    assert info["frames"] == 3 and info["n_atoms"] == N and info["steps"] == (0, 10)
    assert info["blocks_per_frame"][0] >= N and info["jacobian_bytes_per_frame"] > 0


# ------------------------------------------------------------------------------------ real clients

def write_pdb(path, n_atoms):
    """A minimal PDB topology of n_atoms carbon atoms."""
    with open(path, "w") as f:
        for i in range(n_atoms):
            f.write(f"ATOM  {i + 1:5d}  C   MOL A   1    {0:8.3f}{0:8.3f}{0:8.3f}  1.00  0.00           C\n")
        f.write("END\n")


@pytest.mark.parametrize("periodic", [True, False])
def test_mdanalysis_reads_every_frame(tmp_path, periodic):
    import MDAnalysis as mda
    frames = random_frames(5, periodic)
    write(tmp_path / "t.h5md", frames, periodic=periodic)
    write_pdb(tmp_path / "top.pdb", N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(tmp_path / "top.pdb"), str(tmp_path / "t.h5md"))
    assert u.trajectory.n_frames == 5
    for ts, want in zip(u.trajectory, frames):
        np.testing.assert_allclose(ts.positions, 10 * want["positions"], rtol=1e-6, atol=1e-5)   # Angstrom
        np.testing.assert_allclose(ts.forces, want["forces"] / 10, rtol=1e-6, atol=1e-6)        # kJ/(mol A)
        assert ts.data["step"] == want["step"] and ts.time == pytest.approx(want["time"])
        if periodic:
            np.testing.assert_allclose(ts.dimensions, [*(10 * want["box"]), 90, 90, 90], rtol=1e-6)
        else:
            assert ts.dimensions is None


def cell_of(vectors):
    """Lengths (3,) and angles alpha, beta, gamma (3,) in degrees of box vectors (rows)."""
    a, b, c = vectors
    lengths = np.linalg.norm(vectors, axis=1)
    cosines = [b @ c / (lengths[1] * lengths[2]), a @ c / (lengths[0] * lengths[2]), a @ b / (lengths[0] * lengths[1])]
    return lengths, np.degrees(np.arccos(cosines))


def test_triclinic_boxes_are_h5md_edges_matrices_that_mdanalysis_reads(tmp_path):
    """NPT frames in a truncated octahedron: each box stored as H5MD's (3, 3) edges matrix (rows the
    vectors), read back by mdjac and by MDAnalysis (lengths and angles of the vectors); a rectangular
    file refuses a triclinic frame."""
    import MDAnalysis as mda
    d = 2.0
    octahedron = np.array([[d, 0, 0], [d / 3, 2 * np.sqrt(2) * d / 3, 0], [-d / 3, np.sqrt(2) * d / 3, np.sqrt(6) * d / 3]])
    frames = random_frames(3)
    for k, frame in enumerate(frames):
        frame["box"] = octahedron * (1 + 0.02 * k)
    write(tmp_path / "t.h5md", frames, triclinic=True)
    with h5py.File(tmp_path / "t.h5md", "r") as f:
        stored = f["particles/trajectory/box/edges/value"][()]
    assert stored.shape == (3, 3, 3)
    with open_trajectory(str(tmp_path / "t.h5md")) as traj:
        for k in range(3):
            np.testing.assert_allclose(traj[k].box, frames[k]["box"], rtol=1e-6, atol=1e-7)
    write_pdb(tmp_path / "top.pdb", N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(tmp_path / "top.pdb"), str(tmp_path / "t.h5md"))
    for ts, frame in zip(u.trajectory, frames):
        lengths, angles = cell_of(frame["box"])
        np.testing.assert_allclose(ts.dimensions, [*(10 * lengths), *angles], rtol=1e-5)
    with pytest.raises(InputError, match="triclinic"):
        write(tmp_path / "rect.h5md", frames[:1])


def test_pyh5md_reads(tmp_path):
    import pyh5md
    frames = random_frames(3)
    write(tmp_path / "t.h5md", frames)
    f = pyh5md.File(str(tmp_path / "t.h5md"), "r")
    try:
        g = f["particles/trajectory"]
        position = pyh5md.element(g, "position")
        assert position.element_type == "TimeElement" and position.value.shape == (3, N, 3)
        assert list(position.step[:]) == [0, 5, 10]
        np.testing.assert_allclose(pyh5md.element(g["box"], "edges").value[2], frames[2]["box"], rtol=1e-6)
        np.testing.assert_allclose(pyh5md.element(g, "force").value[1], frames[1]["forces"], rtol=1e-6)
    finally:
        f.close()


# ------------------------------------------------------------------------------------ inputs

MINDSPONGE_RUN = textwrap.dedent("""
    import sys
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE)
    from mindsponge import Sponge, Molecule, ForceField, DynamicUpdater
    from mindsponge.callback import WriteH5MD
    from mindsponge.control import LeapFrog
    system = Molecule(template='water.spce.yaml')
    system.reduplicate([0.3, 0, 0])
    system.set_pbc_box([0.8, 0.8, 0.8])
    potential = ForceField(system, parameters='SPCE', cutoff=0.35)
    updater = DynamicUpdater(system, integrator=LeapFrog(system), time_step=1e-3)
    md = Sponge(system, potential, updater)
    md.run(10, callbacks=[WriteH5MD(system, sys.argv[1], save_freq=2, write_force=True)])
""")


@pytest.fixture(scope="module")
def mindsponge_file(tmp_path_factory):
    """A trajectory written by MindSPONGE 1.0.0rc1's own WriteH5MD callback (two SPC/E waters)."""
    path = tmp_path_factory.mktemp("sponge") / "sponge.h5md"
    subprocess.run([sys.executable, "-c", MINDSPONGE_RUN, str(path)], check=True, capture_output=True,
                   timeout=300)
    return path


@pytest.mark.slow
def test_reads_mindsponge_writeh5md(mindsponge_file):
    with h5py.File(mindsponge_file, "r") as f:     # the layout MDAnalysis cannot read
        assert isinstance(f["particles/trajectory/box/edges"], h5py.Dataset)
        assert f["h5md/creator"].attrs["name"] == "MindSPONGE"
        raw = f["particles/trajectory/position/value"][()]
    with open_trajectory(mindsponge_file, n_atoms=6) as traj:
        assert len(traj) == 5 and traj.n_atoms == 6
        assert [fr.step for fr in traj] == [0, 2, 4, 6, 8]
        np.testing.assert_allclose(traj[-1].box, [0.8, 0.8, 0.8], rtol=1e-6)
        np.testing.assert_array_equal(traj[3].positions, raw[3])
        assert traj[2].forces.shape == (6, 3) and traj[2].jacobian is None
        assert traj[4].time == pytest.approx(0.008)


# MDAnalysis writes one CRYST1 before the first MODEL and reads the cell only inside a MODEL, so
# a multi-model PDB comes back without a box (the command line then uses the system's).
@pytest.mark.parametrize("ext,tol,has_box", [("pdb", 1e-4, False), ("xyz", 1e-4, False),
                                             ("dcd", 1e-5, True), ("xtc", 1e-3, True)])
def test_mdanalysis_formats(tmp_path, ext, tol, has_box):
    import MDAnalysis as mda
    rng = np.random.default_rng(3)
    positions = rng.random((4, N, 3)) * 1.4          # nm
    path = str(tmp_path / f"t.{ext}")
    u = mda.Universe.empty(N, trajectory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mda.Writer(path, n_atoms=N) as w:
            for x in positions:
                u.atoms.positions = 10 * x
                u.dimensions = [15.0, 16.0, 17.0, 90, 90, 90]
                w.write(u.atoms)
    with open_trajectory(path, n_atoms=N) as traj:
        assert len(traj) == 4
        for frame, x in zip(traj, positions):
            np.testing.assert_allclose(frame.positions, x, atol=tol)
            if has_box:
                np.testing.assert_allclose(frame.box, BOX, atol=1e-4)
            else:
                assert frame.box is None
        assert traj[-1].positions.shape == (N, 3)


def test_open_errors(tmp_path):
    good = tmp_path / "good.h5md"
    write(good, random_frames(3))
    truncated = tmp_path / "truncated.h5md"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "text.h5"
    text.write_text("not a trajectory\n")
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    cases = {tmp_path / "missing.h5md": "no such file", truncated: "truncated",
             text: "not HDF5", empty: "no /particles"}
    for path, message in cases.items():
        with pytest.raises(InputError, match=message):
            open_trajectory(path)
    with pytest.raises(InputError, match="has 12 atoms but the system has 13"):
        open_trajectory(good, n_atoms=13)


# ------------------------------------------------------------------------------------ never lose a frame

def test_existing_output_and_second_writer_refused(tmp_path):
    path = tmp_path / "t.h5md"
    write(path, random_frames(2))
    before = path.read_bytes()
    with pytest.raises(InputError, match="exists"):
        write(path, random_frames(2))
    assert path.read_bytes() == before
    with TrajectoryWriter(path, N, periodic=True, mode="a"):
        with pytest.raises(InputError, match="being written by another mdjac") as refused:
            TrajectoryWriter(path, N, periodic=True, mode="a")
        assert isinstance(refused.value, OutputLocked)      # a lock has a type of its own
    assert path.read_bytes() == before
    with pytest.raises(InputError, match="n_atoms differs") as mismatch:
        TrajectoryWriter(path, N + 1, periodic=True, mode="a")
    assert not isinstance(mismatch.value, OutputLocked)


def test_record_stores_a_run_attribute_beside_the_metadata(tmp_path):
    """What a distributed run records of itself (``writer.record``) goes beside the metadata, read back by h5py."""
    import json
    path = tmp_path / "r.h5md"
    with TrajectoryWriter(path, N, periodic=True, metadata={"system": "x"}) as w:
        w.record("distributed", {"workers": 2, "shards": 3})
    assert read_metadata(path) == {"system": "x"}
    with h5py.File(path, "r") as f:
        assert json.loads(f["parameters/mdjac"].attrs["distributed"]) == {"shards": 3, "workers": 2}


def test_frame_checks(tmp_path):
    frames = random_frames(1)
    with TrajectoryWriter(tmp_path / "t.h5md", N, periodic=True) as w:
        bad = [dict(positions=np.zeros((N + 1, 3))), dict(box=None), dict(forces=None), dict(jacobian=None)]
        for change in bad:
            with pytest.raises(InputError):
                w.append(**{**frames[0], **change})
        assert w.buffer == []
    with open_trajectory(tmp_path / "t.h5md") as traj:
        assert len(traj) == 0


def test_incomplete_frames_ignored_and_cut_on_resume(tmp_path):
    path = tmp_path / "t.h5md"
    frames = random_frames(8)
    write(path, frames[:5])
    with h5py.File(path, "a") as f:        # a frame half written: data without its step and time
        g = f["particles/trajectory"]
        for name in ("position/value", "force/value", "box/edges/value", "force_jacobian/indptr"):
            g[name].resize(6, axis=0)
        g["force_jacobian/blocks"].resize(len(g["force_jacobian/blocks"]) + 10, axis=0)
        assert complete_frames(g) == 5
    with open_trajectory(path) as traj:
        assert len(traj) == 5
    with TrajectoryWriter(path, N, periodic=True, mode="a", batch=2) as w:
        assert w.n_frames == 5 and w.last_step == 20
        for frame in frames[5:]:
            w.append(**frame)
    with open_trajectory(path) as traj:
        assert len(traj) == 8
        for got, want in zip(traj, frames):
            assert_frame_equal(got, want)
    uninterrupted = tmp_path / "u.h5md"
    write(uninterrupted, frames)
    assert_same_datasets(path, uninterrupted)


KILLED_BATCH = textwrap.dedent("""
    import os, sys
    import numpy as np
    from mdjac.io.h5md_layout import modify
    with modify(sys.argv[1]) as f:          # a batch killed half-way through
        g = f["particles/trajectory"]
        for name in ("force_jacobian/blocks", "force_jacobian/indices", "position/value", "force/value"):
            ds = g[name]
            ds.resize(len(ds) + 40, axis=0)
            ds[-40:] = 7
            ds[0] = 9                        # committed data overwritten in place
        f.flush()
        os._exit(9)
""")


def test_killed_batch_rolls_back(tmp_path):
    path = tmp_path / "t.h5md"
    frames = random_frames(4)
    write(path, frames)
    before = path.read_bytes()
    done = subprocess.run([sys.executable, "-c", KILLED_BATCH, str(path)], env=ENV, capture_output=True)
    assert done.returncode == 9 and os.path.exists(journal.journal_path(str(path)))
    assert path.read_bytes() != before
    with open_trajectory(path) as traj:      # readers see the state before the batch
        assert len(traj) == 4
        for got, want in zip(traj, frames):
            assert_frame_equal(got, want)
    assert journal.recover(str(path))
    assert path.read_bytes() == before and not os.path.exists(journal.journal_path(str(path)))


def test_exception_in_batch_rolls_back(tmp_path):
    path = tmp_path / "t.h5md"
    write(path, random_frames(2))
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with modify(str(path)) as f:
            f["particles/trajectory/position/value"].resize(5, axis=0)
            raise RuntimeError("boom")
    assert path.read_bytes() == before


def test_open_writer_picks_h5md_and_reads_back(tmp_path):
    """The writer registry gives the H5MD writer for .h5md (and for an unknown extension); what it
    writes is what the reader registry reads back."""
    from mdjac.io.h5md_writer import H5MDWriter
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, 3))
    for name in ("a.h5md", "b.traj"):
        with open_writer(tmp_path / name, N, forces=False, jacobian_atoms=None, dtype=np.float64) as w:
            assert isinstance(w, H5MDWriter)
            w.append(7, 0.5, x)
        with open_trajectory(tmp_path / name) as traj:
            assert len(traj) == 1 and traj[0].step == 7
            np.testing.assert_array_equal(traj[0].positions, x)



# ----------------------------------------------------------------------------- an index of part files
def write_parts(folder, frames, bounds):
    """Part files of ``frames`` cut at ``bounds`` [(a, b), ...] in ``folder``; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (a, b) in enumerate(bounds):
        paths.append(str(folder / f"part-{k}.h5md"))
        write(paths[-1], frames[a:b], batch=2)
    return paths


def test_index_of_parts_reads_as_the_serial_file(tmp_path, monkeypatch):
    """An index over three part files holds the datasets of the file written in one go; h5py,
    MDAnalysis and open_trajectory read it from another directory after the folder moved; a
    missing part is refused in one line; consolidate makes it the serial file again."""
    from mdjac.io.h5md_index import H5MDIndex, consolidate

    frames = random_frames(7)
    write(tmp_path / "serial.h5md", frames, batch=3)
    out = tmp_path / "run" / "out.h5md"
    parts = write_parts(tmp_path / "run" / "out.h5md.shards", frames, [(0, 2), (2, 3), (3, 7)])
    with H5MDIndex(out) as index:
        assert index.add(parts[:1]) == 2 and index.add(parts[1:]) == 5
        assert index.n_frames == 7 and index.last_step == frames[-1]["step"]
    assert os.path.getsize(out) < sum(os.path.getsize(p) for p in parts)
    os.rename(tmp_path / "run", tmp_path / "moved")
    monkeypatch.chdir(tmp_path / "moved" / "out.h5md.shards")
    out = tmp_path / "moved" / "out.h5md"
    assert_same_datasets(out, tmp_path / "serial.h5md")
    with h5py.File(out, "r") as f:
        assert f["particles/trajectory/force_jacobian/blocks"].is_virtual
    with open_trajectory(out) as traj:
        assert len(traj) == 7
        for got, want in zip(traj, frames):
            assert_frame_equal(got, want)
            np.testing.assert_array_equal(got.jacobian.to_bsr().toarray(), want["jacobian"].to_bsr().toarray())
    assert_mdanalysis_reads(out, frames, tmp_path)

    os.rename(tmp_path / "moved" / "out.h5md.shards" / "part-1.h5md", tmp_path / "away.h5md")
    with pytest.raises(InputError, match=r"part-1.h5md is missing \(1 missing\)"):
        open_trajectory(out)
    with pytest.raises(InputError, match="is missing"):
        consolidate(out)
    os.rename(tmp_path / "away.h5md", tmp_path / "moved" / "out.h5md.shards" / "part-1.h5md")
    assert consolidate(out) == 3
    assert not (tmp_path / "moved" / "out.h5md.shards").exists()
    assert_same_datasets(out, tmp_path / "serial.h5md")
    with h5py.File(out, "r") as f, h5py.File(tmp_path / "serial.h5md", "r") as ref:
        for name in ("position/value", "force_jacobian/blocks", "force_jacobian/indices"):
            got, want = f[f"particles/trajectory/{name}"], ref[f"particles/trajectory/{name}"]
            assert not got.is_virtual and (got.chunks, got.maxshape, got.compression) == \
                (want.chunks, want.maxshape, want.compression)


def test_planned_index_joins_in_place_and_shows_exactly_the_joined_frames(tmp_path, monkeypatch):
    """An index written once with every planned part (Jacobian store segments of 2 parts): each
    later join moves its part into place without rewriting the index, and h5py, MDAnalysis and
    open_trajectory then see exactly the frames joined; a part missing before a present one is
    refused; a part moved into place by a join killed before it counted is not a frame of the
    index, and a resumed index joins it; at the end the datasets are the serial file's."""
    from mdjac.io import h5md_index
    from mdjac.io.h5md_index import H5MDIndex, parts_of

    frames = random_frames(9, seed=4)
    write(tmp_path / "serial.h5md", frames, batch=4)
    bounds = [(0, 2), (2, 3), (3, 5), (5, 6), (6, 9)]
    done = write_parts(tmp_path / "done", frames, bounds)            # where the workers wrote them
    folder = tmp_path / "out.h5md.shards"
    folder.mkdir()
    planned = [str(folder / f"part-{k}.h5md") for k in range(len(bounds))]
    out = tmp_path / "out.h5md"
    with H5MDIndex(out, segment_parts=2) as index:
        index.plan([(p, b - a) for p, (a, b) in zip(planned, bounds)])
        for k, (a, b) in enumerate(bounds[:3]):
            assert index.add([done[k]]) == b - a and index.n_frames == b
            assert not os.path.exists(done[k]) and os.path.exists(planned[k])
            with h5py.File(out, "r") as f:
                assert f["particles/trajectory/position/value"].shape == (b, N, 3)
                assert len(f["particles/trajectory/position/value"].virtual_sources()) == len(bounds)
            with open_trajectory(out) as traj:
                assert len(traj) == b
                assert_frame_equal(traj[b - 1], frames[b - 1])
            monkeypatch.setattr(h5md_index, "write_index", None)     # later joins never rewrite it whole
    assert_mdanalysis_reads(out, frames[:5], tmp_path)
    os.rename(planned[1], tmp_path / "away.h5md")
    with pytest.raises(InputError, match=r"part-1.h5md is missing \(1 missing\)"):
        open_trajectory(out)
    os.rename(tmp_path / "away.h5md", planned[1])
    os.replace(done[3], planned[3])          # a join killed after moving the part, before counting it
    with open_trajectory(out) as traj:
        assert len(traj) == 5
    monkeypatch.undo()
    with H5MDIndex(out, mode="a", segment_parts=2) as index:
        assert index.n_frames == 5 and [p.path for p in index.parts] == planned[:3]
        index.plan([(p, b - a) for p, (a, b) in zip(planned[3:], bounds[3:])])
        index.add([planned[3]])
        index.add([done[4]])
        index.record("run", {"parts": 5})
    assert_same_datasets(out, tmp_path / "serial.h5md", ignore=[("parameters/mdjac", "run")])
    assert sorted(str(p) for p in folder.iterdir()) == sorted(parts_of(out))
    with open_trajectory(out) as traj:
        for got, want in zip(traj, frames):
            assert_frame_equal(got, want)


def test_index_continues_a_file_and_a_writer_continues_an_index(tmp_path):
    """An index resumed over an ordinary file takes its frames as its first part; a writer
    resumed over an index makes it one file first and appends to it."""
    from mdjac.io.h5md_index import H5MDIndex

    frames = random_frames(6, seed=3)
    write(tmp_path / "serial.h5md", frames)
    out = tmp_path / "out.h5md"
    write(out, frames[:2])
    parts = write_parts(tmp_path / "out.h5md.shards", frames, [(2, 4)])
    with H5MDIndex(out, mode="a", base_part=str(tmp_path / "out.h5md.shards" / "base.h5md")) as index:
        assert index.n_frames == 2 and index.last_step == frames[1]["step"]
        index.add(parts)
    with H5MDIndex(out, mode="a") as index:
        assert index.n_frames == 4 and len(index.parts) == 2
    with TrajectoryWriter(out, N, periodic=True, masses=MASSES, mode="a") as w:
        assert w.n_frames == 4
        for frame in frames[4:]:
            w.append(**frame)
    assert not (tmp_path / "out.h5md.shards").exists()
    assert_same_datasets(out, tmp_path / "serial.h5md")
