"""``mdjac compute`` on Dask (mdjac/cluster.py) against the serial run of the same frames.

A LocalCluster of 2 worker processes on a tiny periodic Lennard-Jones system: the output of a
distributed run, of one whose worker is killed with SIGKILL in the middle of a task, and of one
whose client is killed and then resumed, each equal dataset for dataset (and attribute for
attribute, but the one that records the distributed run) to a serial ``compute_trajectory`` of
the same frames; bad input fails before any worker starts. No cluster process outlives a test.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from mdjac import cluster
from mdjac.cli import main
from mdjac.io.h5md_reader import describe
from mdjac.jobs import compute_trajectory

from helpers import ENV, assert_same_datasets, write_input, write_system

RUN_ATTRIBUTE = [("parameters/mdjac", "distributed")]


FRAMES = 24


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The tiny system, an input of FRAMES frames, and its serial output (the reference)."""
    folder = tmp_path_factory.mktemp("cluster")
    system = write_system(folder)
    traj = write_input(folder / "in.h5md", FRAMES, seed=5)
    serial = folder / "serial.h5md"
    compute_trajectory(traj, system, str(serial), batch=1, progress=False)
    return dict(folder=folder, system=system, traj=traj, serial=serial)


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes (1 thread each), shut down after the module; then no
    worker process may be left."""
    with cluster.local_client(2, threads=1) as c:
        c.wait_for_workers(2)
        seen = set(c.run(os.getpid).values())
        yield c
        seen |= set(c.run(os.getpid).values())
    assert not gone_within(seen, 30), f"worker processes left running: {alive(seen)}"


def alive(pids):
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def gone_within(pids, seconds):
    """The pids still alive after waiting up to ``seconds`` for them to end (then killed)."""
    deadline = time.time() + seconds
    while alive(pids) and time.time() < deadline:
        time.sleep(0.2)
    left = alive(pids)
    for p in left:
        os.kill(p, signal.SIGKILL)
    return left


def assert_same_as_serial(out, reference, workers=2):
    """Equal to the serial file but for the attribute that records the distributed run; the shard
    folder holds the part files the output indexes and nothing else."""
    from mdjac.io.h5md_index import parts_of

    assert_same_datasets(out, reference, ignore=RUN_ATTRIBUTE)
    run = json.loads(read_metadata_attribute(out))
    assert (run["workers"] == workers if workers else run["workers"] >= 1) and run["shards"] >= 1
    for leftover in (".lock", ".journal"):
        assert not os.path.exists(f"{out}{leftover}"), leftover
    folder = cluster.shard_folder(out)
    assert sorted(os.path.join(folder, p) for p in os.listdir(folder)) == sorted(parts_of(out))


def read_metadata_attribute(path):
    import h5py
    with h5py.File(path, "r") as f:
        return f["parameters/mdjac"].attrs["distributed"]


def shard_frames_stored(out):
    """{shard index: complete frames} of the shard files of ``out`` now that it does not index yet."""
    from mdjac.io.h5md_index import parts_of

    folder = cluster.shard_folder(out)
    joined = set(parts_of(out)) if os.path.exists(out) else set()
    found = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.startswith("shard-") and name.endswith(".h5md") and os.path.join(folder, name) not in joined:
            try:
                found[int(name[-11:-5])] = cluster.stored_frames(os.path.join(folder, name))
            except Exception:      # created but not yet renamed into place, or just joined and deleted
                pass
    return found


def test_plan_covers_the_frames_in_contiguous_blocks():
    assert cluster.plan_shards(0, 10, 2) == [(0, 1), (1, 2), (2, 3), (3, 5), (5, 6), (6, 7), (7, 8), (8, 10)]
    for first, total, workers, size in [(0, 10, 2, None), (3, 40, 2, 7), (0, 5, 4, None), (9, 10, 3, 4)]:
        shards = cluster.plan_shards(first, total, workers, size)
        assert shards[0][0] == first and shards[-1][1] == total
        assert all(a < b for a, b in shards) and all(s[1] == t[0] for s, t in zip(shards, shards[1:]))
        if size:
            assert max(b - a for a, b in shards) <= size
    assert cluster.plan_shards(10, 10, 2) == []


@pytest.mark.slow
def test_two_workers_equal_serial(files, client, tmp_path):
    out = tmp_path / "two.h5md"
    result = compute_trajectory(files["traj"], files["system"], str(out), client=client, shard_frames=6,
                                batch=2, progress=False)
    assert result["computed"] == FRAMES and result["kept"] == 0 and result["shards"] == 4
    assert sorted(t["index"] for t in result["tasks"]) == [0, 1, 2, 3]
    assert_same_as_serial(out, files["serial"])
    assert main(["consolidate", str(out)]) == 0                 # one self-contained file, shards gone
    assert_same_datasets(out, files["serial"], ignore=RUN_ATTRIBUTE)
    assert not os.path.exists(cluster.shard_folder(out))


@pytest.mark.slow
def test_truncated_shard_is_computed_again_not_joined(files, client, tmp_path, monkeypatch):
    """A finished shard file cut short on disk before its join is caught, computed again and
    joined only then; every frame equals the serial run's."""
    out = tmp_path / "truncated.h5md"
    check, cut = cluster.check_shard, []

    def truncate_once(path, a, b):
        if a > 0 and not cut:
            cut.append(path)
            os.truncate(path, os.path.getsize(path) // 2)
        return check(path, a, b)

    monkeypatch.setattr(cluster, "check_shard", truncate_once)
    result = compute_trajectory(files["traj"], files["system"], str(out), client=client, shard_frames=8,
                                batch=2, progress=False)
    assert cut and result["recomputed"] == 1 and result["computed"] == FRAMES
    assert sorted(t["index"] for t in result["tasks"]) == [0, 1, 1, 2]
    assert_same_as_serial(out, files["serial"])


@pytest.mark.slow
def test_worker_killed_mid_task(files, client, tmp_path):
    """SIGKILL the worker running a shard once that shard holds a few frames: Dask reruns the task,
    which continues the shard file; the output is still the serial one."""
    out = tmp_path / "killed-worker.h5md"
    outcome = {}

    def run():
        try:
            outcome["result"] = compute_trajectory(files["traj"], files["system"], str(out), client=client,
                                                   shard_frames=12, batch=1, progress=False)
        except BaseException as err:       # reported by the main thread
            outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    pids = client.run(os.getpid)
    victim, deadline = None, time.time() + 180
    while victim is None and time.time() < deadline and thread.is_alive():
        stored = shard_frames_stored(out)
        for address, keys in client.processing().items():
            for key in keys:
                k = int(str(key).split("-")[2])
                if 2 <= stored.get(k, 0) < 10:
                    victim = (k, address, stored[k])
        time.sleep(0.02)
    assert victim is not None, "no shard was caught in the middle"
    os.kill(pids[victim[1]], signal.SIGKILL)
    thread.join(300)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    rerun = [t for t in outcome["result"]["tasks"] if t["index"] == victim[0]]
    assert rerun and rerun[0]["resumed"] >= victim[2] > 0      # the rerun continued the killed shard
    assert_same_as_serial(out, files["serial"])


@pytest.mark.slow
def test_client_killed_then_resume(files, client, tmp_path):
    """SIGKILL ``mdjac compute --workers 2`` in the middle: its workers end with it; --resume (here
    on the test's cluster) keeps the finished shards, redoes the rest, and gives the serial file."""
    out = tmp_path / "killed-client.h5md"
    argv = [sys.executable, "-m", "mdjac", "compute", files["traj"], "-s", files["system"], "-o", str(out),
            "--workers", "2", "--batch", "1", "--shard-frames", "4", "-q"]
    log = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=log)
    family, deadline = set(), time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            family |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            stored = shard_frames_stored(out)
            joined = describe(out)["frames"] if out.exists() else 0
            if joined + sum(stored.values()) >= 8:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "mdjac compute ended early: " + open(log.name).read()[-2000:]
        family |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not gone_within(family, 30), "the killed client's workers kept running"
    joined = describe(out)["frames"] if out.exists() else 0      # killed before the first join: no output yet
    done = joined + sum(shard_frames_stored(out).values())
    assert 0 < done < FRAMES, f"the run was not killed in the middle ({done} frames stored)"

    result = compute_trajectory(files["traj"], files["system"], str(out), resume=True, client=client, batch=1,
                                progress=False)
    assert result["kept"] >= 1 and result["kept"] + result["computed"] == FRAMES
    assert_same_as_serial(out, files["serial"])


def test_bad_input_fails_before_any_worker_starts(files, tmp_path, capsys, monkeypatch):
    import distributed

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started for bad input")

    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    monkeypatch.setattr(distributed, "Client", no_cluster)
    traj = write_input(tmp_path / "nan.h5md", 6, nan_frame=4)
    before = sorted(os.listdir(tmp_path))
    for extra in (["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:9"]):
        code = main(["compute", traj, "-s", files["system"], "-o", str(tmp_path / "out.h5md")] + extra)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("mdjac: error: ") and err.count("\n") == 1, err
        assert "frame 4 has NaN" in err
        assert sorted(os.listdir(tmp_path)) == before
    code = main(["compute", traj, "-s", files["system"], "-o", str(tmp_path / "o.h5md"), "--workers", "0"])
    assert code == 2 and "--workers 0" in capsys.readouterr().err


@pytest.mark.slow
def test_unreachable_scheduler_one_line(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2.0)
    traj = write_input(tmp_path / "in.h5md", 2)
    code = main(["compute", traj, "-s", files["system"], "-o", str(tmp_path / "o.h5md"),
                 "--scheduler", "tcp://127.0.0.1:9", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot reach the Dask scheduler" in err, err
    assert not (tmp_path / "o.h5md").exists()


def test_a_rerun_shard_waits_for_the_lock_and_only_for_it(tmp_path, monkeypatch):
    """A shard file whose writer is still held by an ending attempt (OutputLocked) is waited for;
    any other refusal of the writer is raised at once."""
    from types import SimpleNamespace

    import numpy as np

    from mdjac.errors import InputError, OutputLocked
    from mdjac.io.h5md_writer import OutputLock
    from mdjac.jobs.records import ComputeOptions

    system = SimpleNamespace(positions=np.zeros((4, 3)), names=None, masses=None, box=None, jacobian_atoms="all")
    job = cluster.ShardJob(trajectory="", selection=(0, 1, 1), system="", compute_frame=None,
                           options=ComputeOptions(), metadata={}, times=True, queue="")
    path = str(tmp_path / "shard-000000.h5md")
    lock = OutputLock(path)
    threading.Timer(1.0, lock.release).start()
    started = time.monotonic()
    with cluster._shard_writer(path, system, job) as writer:          # waits for the release
        assert writer.n_frames == 0
    assert time.monotonic() - started >= 0.9
    monkeypatch.setattr(cluster, "LOCK_WAIT", 0.0)
    lock = OutputLock(path)
    try:
        with pytest.raises(OutputLocked):
            cluster._shard_writer(path, system, job)
    finally:
        lock.release()
    monkeypatch.setattr(cluster, "LOCK_WAIT", 60.0)
    other = SimpleNamespace(positions=np.zeros((5, 3)), names=None, masses=None, box=None, jacobian_atoms="all")
    started = time.monotonic()
    with pytest.raises(InputError, match="n_atoms differs"):
        cluster._shard_writer(path, other, job)                          # not a lock: no waiting
    assert time.monotonic() - started < 5


def test_a_task_whose_shard_is_joined_while_it_waits_leaves_no_file(files, tmp_path):
    """A rerun task that got its shard's lock only after the join had moved the shard to its part
    (the join held the lock) computes nothing and removes the shard file its writer began."""
    from mdjac.io.h5md_writer import OutputLock
    from mdjac.jobs import frame_forces_and_jacobian
    from mdjac.jobs.records import ComputeOptions

    job = cluster.ShardJob(trajectory=str(files["traj"]), selection=(0, FRAMES, 1), system=str(files["system"]),
                           compute_frame=frame_forces_and_jacobian, options=ComputeOptions(), metadata={},
                           times=True, queue="")
    path, joined = str(tmp_path / "shard-r-000000.h5md"), tmp_path / "part-r-000000.h5md"
    lock = OutputLock(path)                                   # the join, checking the shard

    def join():
        joined.write_bytes(b"joined")
        lock.release()

    threading.Timer(1.0, join).start()
    result = cluster.compute_shard(job, 0, 0, 4, path, str(joined))
    assert result["computed"] == 0
    assert sorted(os.listdir(tmp_path)) == [joined.name]


def test_sweep_leaves_the_parts_and_what_a_writer_holds(tmp_path):
    """The end of a run removes the shard folder's leftovers: a stray shard file and its journal,
    free lock files (of a part too), a killed client's store segments (finished or .tmp) that the
    index does not read; it keeps the parts, the files a writer still holds, and files that are
    not mdjac's."""
    from mdjac.io.h5md_writer import OutputLock

    names = ["part-r-000000.h5md", "part-r-000000.h5md.lock", "store-a-000000.h5", "store-b-000000.h5.tmp",
             "store-c-000000.h5", "shard-r-000000.h5md", "shard-r-000000.h5md.journal", "shard-r-000001.h5md.lock",
             "shard-r-000002.h5md", "notes.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    held = OutputLock(str(tmp_path / "shard-r-000002.h5md"))
    try:
        cluster.sweep_folder(str(tmp_path), [str(tmp_path / n) for n in ("part-r-000000.h5md", "store-a-000000.h5")])
        assert sorted(os.listdir(tmp_path)) == ["notes.txt", "part-r-000000.h5md", "shard-r-000002.h5md",
                                                "shard-r-000002.h5md.lock", "store-a-000000.h5"]
    finally:
        held.release()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_scheduler_restarted(files, tmp_path):
    """``dask scheduler`` killed in the middle of a run and started again on its port, with new
    workers (dask's end with their scheduler): the client reconnects, the tasks lost with the
    scheduler are submitted again and continue their shard files, and the output is the serial one."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    env = dict(ENV, MDJAC_THREADS="1", OMP_NUM_THREADS="1")

    def scheduler():
        return subprocess.Popen(dask + ["--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def workers():
        return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                                 "--nthreads", "1", "--death-timeout", "60"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    procs = [scheduler(), workers()]
    out, outcome = tmp_path / "restarted.h5md", {}

    def run():
        try:
            outcome["result"] = compute_trajectory(files["traj"], files["system"], str(out), shard_frames=8, batch=1,
                                                   progress=False, client=lambda: cluster.scheduler_client(address))
        except BaseException as err:       # reported by the main thread
            outcome["error"] = err

    family = set()
    try:
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.time() + 240
        while time.time() < deadline and thread.is_alive() and not any(1 <= n < 6 for n in shard_frames_stored(out).values()):
            time.sleep(0.02)
        assert thread.is_alive(), outcome
        family |= {c.pid for c in psutil.Process(procs[1].pid).children(recursive=True)}
        procs[0].kill()
        procs[0].wait()
        procs += [scheduler(), workers()]    # dask's workers end with their scheduler: started again,
        thread.join(300)                     # as a batch system (or dask-jobqueue) does
        assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
        assert outcome["result"]["recomputed"] >= 1
        assert_same_as_serial(out, files["serial"], workers=1)
    finally:
        for p in procs:
            family |= {c.pid for c in psutil.Process(p.pid).children(recursive=True)} if p.poll() is None else set()
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    assert not gone_within(family, 30)
