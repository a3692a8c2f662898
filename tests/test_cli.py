"""The ``mdjac`` command line: compute, info, run and modes; bad inputs (one line, exit code 2,
nothing written or destroyed); kill -9 in the middle of compute, then --resume, gives the same
file as an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time
import warnings

import h5py
import numpy as np
import pytest

from mdjac.cli import main
from mdjac.io import open_trajectory
from mdjac.io.h5md_reader import describe
from mdjac.io.h5md_writer import OutputLock

from helpers import ENV, TINY_ATOMS as N, TINY_EDGE as L, assert_same_datasets, write_input, write_system


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    return dict(folder=folder, system=write_system(folder), traj=write_input(folder / "in.h5md", 6))


def run(argv, capsys):
    """main(argv) -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compute_every_frame(files, tmp_path, capsys):
    from mdjac.catalogue import load_system
    out = tmp_path / "out.h5md"
    code, stdout, _ = run(["compute", files["traj"], "--system", files["system"], "-o", out, "-q"], capsys)
    assert code == 0 and "6 frames of 64 atoms" in stdout and "blocks of 3x3 per frame" in stdout
    system = load_system(files["system"])
    with open_trajectory(files["traj"]) as src, open_trajectory(out) as traj:
        assert len(traj) == 6
        for frame, source in zip(traj, src):
            x = source.positions.astype(np.float32)
            np.testing.assert_array_equal(frame.positions, x)
            assert frame.step == source.step
            want = system.potential.force_jacobian(x, box=source.box)
            np.testing.assert_allclose(frame.jacobian.to_dense(), want.to_dense(), rtol=1e-6, atol=1e-3)
            np.testing.assert_allclose(frame.forces, system.potential.forces(x, box=source.box), rtol=1e-5, atol=1e-3)
    import MDAnalysis as mda
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(out))
    assert u.trajectory.n_frames == 6 and u.trajectory[5].forces.shape == (N, 3)
    np.testing.assert_allclose(u.dimensions[:3], 10 * L)

    code, stdout, _ = run(["info", out], capsys)
    assert code == 0
    for text in ("atoms            64", "frames           6 complete", "blocks per frame", "per frame on disk"):
        assert text in stdout


def test_selection_and_existing_output(files, tmp_path, capsys):
    out = tmp_path / "sel.h5md"
    args = ["compute", files["traj"], "-s", files["system"], "-o", out, "-q"]
    assert run(args + ["--start", 1, "--stop", 6, "--step", 2], capsys)[0] == 0
    with open_trajectory(out) as traj:
        assert [f.step for f in traj] == [10, 30, 50]
    before = out.read_bytes()
    code, _, err = run(args, capsys)                   # exists: refused, untouched
    assert code == 2 and "--overwrite" in err and out.read_bytes() == before
    code, stdout, _ = run(args + ["--start", 1, "--stop", 6, "--step", 2, "--resume"], capsys)
    assert code == 0 and "0 computed now" in stdout and out.read_bytes() == before
    code, _, err = run(args + ["--resume"], capsys)    # resume with another selection: refused
    assert code == 2 and "resume with the same arguments" in err and out.read_bytes() == before
    assert run(args + ["--overwrite", "--stop", 2], capsys)[0] == 0
    with open_trajectory(out) as traj:
        assert [f.step for f in traj] == [0, 10]


def test_upper_and_uncompressed(files, tmp_path, capsys):
    full, upper = tmp_path / "full.h5md", tmp_path / "upper.h5md"
    args = ["compute", files["traj"], "-s", files["system"], "-q", "--stop", 3]
    code, _, err = run(args + ["-o", full, "--uncompressed"], capsys)     # the option is gone: argparse's error
    assert code == 2 and "unrecognized arguments: --uncompressed" in err and not full.exists()
    assert run(args + ["-o", full, "--compression", "none"], capsys)[0] == 0
    assert run(args + ["-o", upper, "--upper", "--compression", "gzip"], capsys)[0] == 0   # the default of earlier versions
    with h5py.File(full, "r") as f:
        assert f["particles/trajectory/force_jacobian/blocks"].compression is None
    with open_trajectory(full) as a, open_trajectory(upper) as b:
        for fa, fb in zip(a, b):
            np.testing.assert_array_equal(fa.jacobian.rows, fb.jacobian.rows)
            np.testing.assert_allclose(fb.jacobian.blocks, fa.jacobian.blocks, rtol=1e-5, atol=1e-3)
    assert describe(upper)["jacobian_bytes_per_frame"] < 0.7 * describe(full)["jacobian_bytes_per_frame"]
    code, _, err = run(args + ["-o", upper, "--resume"], capsys)     # stored upper, asked full
    assert code == 2 and "upper=True" in err


BAD_INPUTS = ["missing", "not-hdf5", "truncated", "atom-count", "nan", "unknown-system",
              "unwritable", "batch", "empty-selection", "same-file"]


def bad_arguments(case, files, folder):
    """(trajectory, system, output) of one bad input."""
    traj, system, out = files["traj"], files["system"], str(folder / "out.h5md")
    if case == "missing":
        traj = str(folder / "missing.h5md")
    elif case == "not-hdf5":
        traj = str(folder / "notes.h5md")
        (folder / "notes.h5md").write_text("these are not coordinates\n")
    elif case == "truncated":
        traj = str(folder / "cut.h5md")
        data = open(files["traj"], "rb").read()
        (folder / "cut.h5md").write_bytes(data[: len(data) * 2 // 3])
    elif case == "atom-count":
        traj = write_input(folder / "small.h5md", 2, n_atoms=N - 1)
    elif case == "nan":
        traj = write_input(folder / "nan.h5md", 5, nan_frame=3)
    elif case == "unknown-system":
        system = "no-such-system"
    elif case == "unwritable":
        (folder / "afile").write_text("")
        out = str(folder / "afile" / "out.h5md")
    elif case == "same-file":
        out = traj
    return traj, system, out


@pytest.mark.parametrize("case", BAD_INPUTS)
@pytest.mark.parametrize("existing", [False, True])
def test_bad_input(files, tmp_path, capsys, case, existing):
    traj, system, out = bad_arguments(case, files, tmp_path)
    extra = {"batch": ["--batch", "0"], "empty-selection": ["--start", 6]}.get(case, [])
    if existing and case not in ("unwritable", "same-file"):
        with open(out, "wb") as f:
            f.write(b"an existing output that must survive")
        extra = extra + ["--overwrite"]
    before = sorted(os.listdir(tmp_path))
    snapshot = open(out, "rb").read() if os.path.exists(out) else None
    code, stdout, err = run(["compute", traj, "--system", system, "-o", out] + extra, capsys)
    assert code == 2
    assert err.startswith("mdjac: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == before                     # nothing written
    assert (open(out, "rb").read() if os.path.exists(out) else None) == snapshot   # nothing destroyed


def test_second_writer_refused(files, tmp_path, capsys):
    out = tmp_path / "locked.h5md"
    lock = OutputLock(out)
    try:
        code, _, err = run(["compute", files["traj"], "-s", files["system"], "-o", out, "-q"], capsys)
    finally:
        lock.release()
    assert code == 2 and "being written by another mdjac" in err and not out.exists()


@pytest.mark.slow
def test_python_m_mdjac_one_line_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mdjac", "compute", str(tmp_path / "nope.h5md"),
                           "--system", "argon", "-o", str(tmp_path / "o.h5md")],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"mdjac: error: {tmp_path / 'nope.h5md'}: no such file"]
    assert not (tmp_path / "o.h5md").exists()


@pytest.mark.parametrize("edges", [[1.6, 1.6, 0.0], [1.6, -1.6, 1.6], [1.6, np.nan, 1.6]])
def test_compute_refuses_a_frame_with_a_bad_box(files, tmp_path, capsys, edges):
    """A frame whose box is not 3 positive finite edges: one line naming the file, the frame and the edges."""
    traj = write_input(tmp_path / "badbox.h5md", 3)
    with h5py.File(traj, "r+") as f:
        group = next(iter(f["particles"].values()))
        group["box/edges/value"][1] = edges
    out = tmp_path / "out.h5md"
    code, _, err = run(["compute", traj, "-s", files["system"], "-o", out, "-q"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not out.exists()
    assert f"{traj}: frame 1: the box edges" in err and "not all positive and finite" in err


def test_md_job_loads_numba_only_for_its_spot_check():
    """Importing the MD job (``mdjac run``'s module) loads neither mdjac.numerical nor numba."""
    code = "import sys, mdjac.jobs.md; print(sorted(m for m in ('numba', 'mdjac.numerical') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.stdout.strip() == "[]", (done.stdout, done.stderr)


def test_compute_missing_input_refused_before_mindspore(tmp_path):
    """A missing input is refused before anything builds the potential (which imports MindSpore)."""
    code = ("import sys\n"
            "from mdjac.cli import main\n"
            f"rc = main(['compute', {str(tmp_path / 'missing.h5md')!r}, '-s', 'argon', '-o', {str(tmp_path / 'o.h5md')!r}])\n"
            "print(rc, 'mindspore' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert "missing.h5md: no such file" in done.stderr and not (tmp_path / "o.h5md").exists()


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(files, tmp_path, capsys):
    traj = write_input(tmp_path / "long.h5md", 120, seed=7)
    killed, whole = tmp_path / "killed.h5md", tmp_path / "whole.h5md"
    args = ["compute", traj, "--system", files["system"], "--batch", "1", "-q"]
    log = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "mdjac"] + [str(a) for a in args] + ["-o", str(killed)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if killed.exists() and describe(killed)["frames"] >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"mdjac compute ended early ({proc.returncode}): " + open(log.name).read()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = describe(killed)["frames"]
    assert 3 <= done < 120, f"the run was not killed in the middle ({done} frames)"

    code, stdout, _ = run(args + ["-o", killed, "--resume"], capsys)
    assert code == 0 and f"{120 - done} computed now, {done} kept from before" in stdout
    assert run(args + ["-o", whole], capsys)[0] == 0
    assert_same_datasets(killed, whole)
    assert not os.path.exists(f"{killed}.journal") and not os.path.exists(f"{killed}.lock")


def test_compression_choices(files, tmp_path, capsys):
    """--compression: the writer's filters and default (named twice so that --help need not import
    h5py); each gives every dataset its filter and the same numbers as the others, read back by
    mdjac's reader and by h5py."""
    from mdjac import cli
    from mdjac.io import h5md_writer
    assert sorted(cli.COMPRESSIONS) == sorted(h5md_writer.COMPRESSIONS)
    assert cli.DEFAULT_COMPRESSION == h5md_writer.DEFAULT_COMPRESSION
    args = ["compute", files["traj"], "-s", files["system"], "-q", "--stop", 3, "--batch", 2]
    outputs = {name: tmp_path / f"{name}.h5md" for name in cli.COMPRESSIONS}
    for name, out in outputs.items():
        assert run(args + ["-o", out, "--compression", name], capsys)[0] == 0
    assert run(args + ["-o", tmp_path / "default.h5md"], capsys)[0] == 0
    assert run(args + ["-o", tmp_path / "zip.h5md", "--compression", "zip"], capsys)[0] == 2
    reference = outputs["none"]
    for name, out in list(outputs.items()) + [(cli.DEFAULT_COMPRESSION, tmp_path / "default.h5md")]:
        with h5py.File(out, "r") as f:
            blocks = f["particles/trajectory/force_jacobian/blocks"]
            assert blocks.compression == h5md_writer.COMPRESSIONS[name].get("compression")
            assert f["particles/trajectory/position/value"].compression == "gzip"
        assert_same_datasets(out, reference)
        with open_trajectory(out) as a, open_trajectory(reference) as b:
            assert len(a) == len(b) == 3
            for fa, fb in zip(a, b):
                np.testing.assert_array_equal(fa.positions, fb.positions)
                np.testing.assert_array_equal(fa.forces, fb.forces)
                np.testing.assert_array_equal(fa.jacobian.cols, fb.jacobian.cols)
                np.testing.assert_array_equal(fa.jacobian.blocks, fb.jacobian.blocks)


def test_strategy_choices_are_the_potentials():
    """--strategy offers exactly the strategies of Potential.force_jacobian (listed twice so that
    --help need not import MindSpore)."""
    from mdjac import cli
    from mdjac.strategies import STRATEGIES
    assert sorted(cli.STRATEGIES) == sorted(STRATEGIES)


def test_nonbonded_choices_are_the_loaders():
    """--nonbonded offers exactly the electrostatics the force-field loader takes (listed twice so that
    --help need not import OpenMM), and every command that takes a system takes the loader options."""
    from mdjac import cli
    from mdjac.catalogue import openmm_engine
    from mdjac.openmm import files
    assert cli.NONBONDED == files.NONBONDED
    for command in ("compute", "run", "modes"):
        args = cli.build_parser().parse_args([command] + (["t", "-s", "s", "-o", "o"] if command == "compute" else
                                                          ["s"] if command == "modes" else []))
        assert sorted(cli.system_options(args)) == sorted(openmm_engine.OPTIONS)


def test_modes_and_run_wiring(files, tmp_path, capsys, monkeypatch):
    out = tmp_path / "m.h5md"
    assert run(["compute", files["traj"], "-s", files["system"], "-o", out, "-q", "--stop", 1], capsys)[0] == 0
    code, stdout, err = run(["modes", out, "--frame", 0, "-k", 4], capsys)
    assert code == 0 and stdout.strip(), err
    with open_trajectory(out) as traj:       # the 4 lowest: numpy's eigh, translations projected out
        jac, masses = traj[0].jacobian, traj.masses
    w = np.repeat(1.0 / np.sqrt(masses), 3)
    d = -w[:, None] * jac.to_dense().reshape(3 * N, 3 * N).astype(np.float64) * w[None, :]
    q = np.linalg.svd(np.kron(np.sqrt(masses)[:, None], np.eye(3)), full_matrices=True)[0][:, 3:]
    lam = np.linalg.eigvalsh(q.T @ (0.5 * (d + d.T)) @ q)
    wavenumbers = np.sign(lam) * np.sqrt(np.abs(lam)) / (2 * np.pi * 2.99792458e-2)
    printed = [float(line.split()[1]) for line in stdout.splitlines() if line.split()[:1] in (["0"], ["1"], ["2"], ["3"])]
    np.testing.assert_allclose(printed, wavenumbers[:4], atol=2e-3)
    code, stdout, _ = run(["modes", out, "-k", 2, "--sigma", wavenumbers[10]], capsys)
    assert code == 0 and "nearest" in stdout and f"{wavenumbers[10]:.3f}" in stdout
    code, _, err = run(["modes", out, "--max-memory", 1e-4], capsys)
    assert code == 2 and "needs about" in err and "MB is available" in err and len(err.splitlines()) == 1

    import mdjac.jobs
    calls = []

    def fake_run_md(system, **options):
        calls.append((system, options))
        return {"system": system, "frames": 3}
    monkeypatch.setattr(mdjac.jobs, "run_md", fake_run_md)
    code, stdout, _ = run(["run", "--steps", 20, "--every", 10, "-o", tmp_path / "md.h5md"], capsys)
    assert code == 0 and "frames" in stdout and calls[0][0] == "alanine-dipeptide"
    assert calls[0][1] == dict(steps=20, every=10, output=str(tmp_path / "md.h5md"), overwrite=False, progress=True,
                               system_options=dict(nonbonded=None, cutoff=None, ewald_tolerance=None, coordinates=None,
                                                   parameters=None, box=None, implicit_solvent=None, salt=None))
    import mdjac.jobs.md
    md_runs = []
    monkeypatch.setattr(mdjac.jobs, "run_md", mdjac.jobs.md.run_md)      # the job itself checks the output
    monkeypatch.setattr(mdjac.jobs.md, "_run_md", lambda *args: md_runs.append(args))
    code, _, err = run(["run", "-o", out], capsys)      # exists: refused before any MD
    assert code == 2 and "--overwrite" in err and len(calls) == 1 and not md_runs


def test_compute_npt_trajectory_in_a_triclinic_box_frame_by_frame(tmp_path, capsys):
    """A DCD of NPT frames in a rhombic dodecahedron (each frame its own box, written and read by
    MDAnalysis): mdjac compute stores each frame's box as vectors, and its forces and Jacobian equal
    those computed frame by frame in that frame's box."""
    import json
    import MDAnalysis as mda
    from mdjac.catalogue import load_system
    from mdjac.space import check_box
    d = 2.2
    box = np.array([[d, 0, 0], [0, d, 0], [d / 2, d / 2, np.sqrt(2) * d / 2]])
    fractions = (np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) / 4
    np.savez(tmp_path / "dodec.npz", positions=fractions @ box, types=np.zeros(N, int))
    spec = {"engine": "mdjac", "coordinates": "dodec.npz", "box": box.tolist(),
            "atom_types": [{"name": "Ar", "mass": 39.948}],
            "terms": [{"term": "LennardJones", "sigma": [0.3405], "epsilon": [0.99774], "types": "@types", "cutoff": 0.7}]}
    (tmp_path / "dodec.json").write_text(json.dumps(spec))
    rng = np.random.default_rng(3)
    u = mda.Universe.empty(N, trajectory=True)
    boxes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mda.Writer(str(tmp_path / "npt.dcd"), N) as w:
            for k in range(3):
                frame_box = box * (1 + 0.03 * k)
                u.atoms.positions = 10 * ((fractions + rng.normal(scale=0.004, size=fractions.shape)) @ frame_box)
                a, b, c = frame_box
                lengths = np.linalg.norm(frame_box, axis=1)
                angles = np.degrees(np.arccos([b @ c / lengths[1] / lengths[2], a @ c / lengths[0] / lengths[2],
                                               a @ b / lengths[0] / lengths[1]]))
                u.dimensions = [*(10 * lengths), *angles]
                w.write(u)
                boxes.append(frame_box)
    code, _, err = run(["compute", tmp_path / "npt.dcd", "--system", tmp_path / "dodec.json", "-o", tmp_path / "o.h5md",
                        "--float64", "--quiet"], capsys)
    assert code == 0, err
    system = load_system(str(tmp_path / "dodec.json"))
    assert system.box.shape == (3, 3)
    with open_trajectory(str(tmp_path / "npt.dcd")) as inp, open_trajectory(str(tmp_path / "o.h5md")) as out:
        for k in range(3):
            x, frame_box = inp.coordinates(k)
            np.testing.assert_allclose(frame_box, check_box(boxes[k]), atol=2e-6)      # DCD keeps float32 cells
            stored = out[k]
            np.testing.assert_array_equal(stored.box, frame_box)
            np.testing.assert_allclose(stored.forces, system.potential.forces(x, box=frame_box), rtol=0, atol=1e-9)
            want = system.potential.force_jacobian(x, box=frame_box).to_dense()
            np.testing.assert_allclose(stored.jacobian.to_dense(), want, rtol=0, atol=1e-9 * np.abs(want).max())
        assert not np.allclose(out[0].box, out[2].box)
