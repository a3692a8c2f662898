"""No frame lost, no file destroyed, every bad input named: `mdjac compute` interrupted by
Ctrl-C in the middle of a batch write, on a full disk, with --overwrite and a failing check, with
--resume over a changed input, through a symlink; inputs that MDAnalysis cannot read.

Every interrupted or failed run is checked frame by frame against an uninterrupted run of the same
command (the reference), and every refused one byte for byte against the file it must not touch.
"""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mdjac.catalogue import load_system
from mdjac.cli import main
from mdjac.io import open_trajectory

from helpers import ENV, assert_same_datasets, write_frames

QUIET = dict(ENV, GLOG_v="3")     # MindSpore logs errors only
N_FRAMES = 36


def write_input(path, n_frames, box=None, seed=0, shift=0.0):
    """Jittered argon frames (positions and box only) as an H5MD input; ``box`` overrides the edges."""
    system = load_system("argon")
    box = system.box if box is None else box
    return write_frames(path, system.positions, box, n_frames, jitter=0.005, seed=seed, shift=shift)


def mdjac(*argv, preexec_fn=None, timeout=600):
    """Run ``python -m mdjac argv`` in a new process; (exit code, stderr)."""
    done = subprocess.run([sys.executable, "-m", "mdjac"] + [str(a) for a in argv], env=QUIET, timeout=timeout,
                          capture_output=True, text=True, preexec_fn=preexec_fn)
    return done.returncode, done.stderr


def mdjac_at_once(*argvs, timeout=600):
    """``python -m mdjac argv`` for each of ``argvs``, two processes at a time (independent runs, most
    of each is the start-up; two for the two cores); [(exit code, stderr)] in the order given."""
    results = []
    for first in range(0, len(argvs), 2):
        procs = [subprocess.Popen([sys.executable, "-m", "mdjac"] + [str(a) for a in argv], env=QUIET,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for argv in argvs[first:first + 2]]
        errs = [p.communicate(timeout=timeout)[1] for p in procs]
        results += [(p.returncode, err) for p, err in zip(procs, errs)]
    return results


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The input, and the uninterrupted run's output."""
    folder = tmp_path_factory.mktemp("reliability")
    traj = write_input(folder / "in.h5md", N_FRAMES)
    ref = folder / "ref.h5md"
    assert main(["compute", traj, "-s", "argon", "-o", str(ref), "-q", "--batch", "4"]) == 0
    with open_trajectory(ref) as t:
        frames = [(f.positions, f.forces, f.jacobian.blocks, f.jacobian.cols) for f in t]
    return dict(traj=traj, ref=str(ref), frames=frames)


def assert_frames_are_the_references(path, reference):
    """Every frame stored in ``path`` equals the uninterrupted run's frame of the same index."""
    with open_trajectory(path) as t:
        n = len(t)
        for i, f in enumerate(t):
            x, forces, blocks, cols = reference["frames"][i]
            np.testing.assert_array_equal(f.positions, x, err_msg=f"frame {i}")
            np.testing.assert_array_equal(f.forces, forces, err_msg=f"frame {i}")
            np.testing.assert_array_equal(f.jacobian.cols, cols, err_msg=f"frame {i}")
            np.testing.assert_array_equal(f.jacobian.blocks, blocks, err_msg=f"frame {i}")
            assert np.abs(f.jacobian.blocks).max() > 0, f"frame {i} holds a Jacobian of zeros"
    return n


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_batch_writes(reference, tmp_path):
    """SIGINT sent while a batch is being written (its journal exists), three times, resuming in
    between: each run ends with exit code 130 and the one-line message, every stored frame is the
    uninterrupted run's, and resuming to the end gives the same file as the uninterrupted run."""
    out = tmp_path / "out.h5md"
    journal = f"{out}.journal"
    rng = random.Random(5)
    stored = 0
    for trial in range(3):
        argv = ["compute", reference["traj"], "-s", "argon", "-o", out, "-q", "--batch", "4"]
        argv += ["--resume"] if trial else []
        proc = subprocess.Popen([sys.executable, "-m", "mdjac"] + [str(a) for a in argv], env=QUIET,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not os.path.exists(journal) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)
        assert proc.poll() is None, f"the run ended before a batch write was seen: {proc.stderr.read()}"
        time.sleep(rng.uniform(0.0, 0.03))                 # 0 to 30 ms into the batch write
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=300)[1]
        assert proc.returncode == 130, err
        assert err.strip().splitlines() == [
            "mdjac: interrupted; the frames written so far are complete (continue with --resume)"], err
        assert not os.path.exists(journal)
        n = assert_frames_are_the_references(out, reference)
        assert n > stored, "an interrupted run stored nothing new"
        stored = n
    assert stored < N_FRAMES, "the runs were not interrupted before the end"
    assert main(["compute", reference["traj"], "-s", "argon", "-o", str(out), "-q", "--batch", "4", "--resume"]) == 0
    assert_same_datasets(out, reference["ref"])


def _file_size_limit(limit):
    """preexec_fn: writes past ``limit`` bytes fail with EFBIG, as on a disk that fills up."""
    def apply():
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_full_disk_mid_run(reference, tmp_path):
    """A write that fails half-way (file size limit: the same failure as a full disk): exit 2 with one
    line, no traceback, the stored frames intact; after making room, --resume completes the file."""
    out = tmp_path / "full.h5md"
    argv = ["compute", reference["traj"], "-s", "argon", "-o", out, "-q", "--batch", "4"]
    limit = os.path.getsize(reference["ref"]) // 2     # about half way, whatever the blocks' filter
    code, err = mdjac(*argv, preexec_fn=_file_size_limit(limit))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mdjac: error: cannot write {out}") and "--resume" in lines[0], err
    assert not os.path.exists(f"{out}.journal")
    assert 0 < assert_frames_are_the_references(out, reference) < N_FRAMES
    assert mdjac(*argv, "--resume")[0] == 0
    assert_same_datasets(out, reference["ref"])


def main_err(argv, capsys):
    """``mdjac argv`` in this process (for checks, not the process's own behaviour): (exit code, stderr)."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_overwrite_survives_a_failing_check(reference, tmp_path, capsys):
    """A check that fails after --overwrite was accepted (a box too small for the cutoff) leaves the
    existing output byte for byte as it was, and a new output is not created."""
    small = write_input(tmp_path / "smallbox.h5md", 3, box=[1.6, 1.6, 1.6])   # cutoff 0.85 > 1.6 / 2
    keep = tmp_path / "keep.h5md"
    keep.write_bytes(open(reference["ref"], "rb").read())
    before = sorted(os.listdir(tmp_path))
    for out, extra in ((keep, ["--overwrite"]), (tmp_path / "new.h5md", [])):
        code, err = main_err(["compute", small, "-s", "argon", "-o", out, "-q", *extra], capsys)
        assert code == 2 and "over half the smallest box edge" in err and len(err.strip().splitlines()) == 1, err
    assert keep.read_bytes() == open(reference["ref"], "rb").read()
    assert sorted(os.listdir(tmp_path)) == before


def test_resume_refuses_a_changed_input(reference, tmp_path, capsys):
    """--resume over an input rewritten at the same path is refused; the output is untouched."""
    traj = write_input(tmp_path / "in.h5md", 8)
    out = tmp_path / "out.h5md"
    assert main(["compute", traj, "-s", "argon", "-o", str(out), "-q", "--stop", "4"]) == 0
    write_input(tmp_path / "changed.h5md", 8, seed=1)
    os.replace(tmp_path / "changed.h5md", traj)
    before = out.read_bytes()
    capsys.readouterr()
    code, err = main_err(["compute", traj, "-s", "argon", "-o", out, "-q", "--stop", "4", "--resume"], capsys)
    assert code == 2 and "differs from frame 0 of the input" in err and len(err.strip().splitlines()) == 1, err
    assert out.read_bytes() == before


def test_output_naming_the_input_through_a_link_is_refused(reference, tmp_path, capsys):
    traj = write_input(tmp_path / "in.h5md", 2)
    before = open(traj, "rb").read()
    os.symlink(traj, tmp_path / "link.h5md")
    os.link(traj, tmp_path / "hard.h5md")
    for out in ("link.h5md", "hard.h5md"):
        code, err = main_err(["compute", traj, "-s", "argon", "-o", tmp_path / out, "-q", "--overwrite"], capsys)
        assert code == 2 and "would replace the input" in err, err
    assert open(traj, "rb").read() == before


@pytest.mark.parametrize("step", ["0", "-1"])
def test_non_positive_step_refused(reference, tmp_path, capsys, step):
    out = tmp_path / "o.h5md"
    code = main(["compute", reference["traj"], "-s", "argon", "-o", str(out), "-q", "--step", step])
    err = capsys.readouterr().err
    assert code == 2 and f"--step {step}" in err and err.count("\n") == 1 and not out.exists(), err


UNREADABLE = {"empty.dcd": b"", "garbage.xtc": bytes(range(256)) * 12, "junk.pdb": b"junk\n", "adir": None}


@pytest.fixture(scope="module")
def unreadable_runs(tmp_path_factory):
    """Each unreadable input given to ``mdjac compute`` (two processes at a time), each in a folder of
    its own: {name: (input path, output path, exit code, stderr)}."""
    cases = {}
    for name, content in UNREADABLE.items():
        folder = tmp_path_factory.mktemp("unreadable")
        path = folder / name
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
        cases[name] = (path, folder / "o.h5md")
    results = mdjac_at_once(*[("compute", path, "-s", "argon", "-o", out, "-q") for path, out in cases.values()])
    return {name: case + result for (name, case), result in zip(cases.items(), results)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unreadable_inputs_one_line(unreadable_runs, name):
    """Empty or garbage inputs and a directory: one line, exit code 2 (no destructor noise from
    MDAnalysis's half-built readers), nothing created."""
    path, out, code, err = unreadable_runs[name]
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith(f"mdjac: error: {path}"), err
    assert "no such file" not in err and not out.exists()


def test_modes_refuses_a_system_of_another_size(reference, capsys):
    code = main(["modes", reference["ref"], "--system", "alanine-dipeptide", "-k", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "256 atoms" in err and "22" in err and err.count("\n") == 1, err


def test_run_messages_name_run_options(tmp_path, capsys, monkeypatch):
    """`mdjac run` over an existing output suggests --overwrite (run has no --resume), also for its
    default output, and never Python's overwrite=True."""
    monkeypatch.chdir(tmp_path)
    for argv in (["run", "-o", "exists.h5md"], ["run"]):
        target = "exists.h5md" if "-o" in argv else "mdjac-md.h5md"
        (tmp_path / target).write_bytes(b"keep")
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and "--overwrite" in err and "--resume" not in err and "overwrite=True" not in err, err
        assert (tmp_path / target).read_bytes() == b"keep"
