"""Frames per second of ``mdjac compute`` on a Dask LocalCluster of 1 and of 2 worker processes.

System: the catalogue's ``water-box`` (1,000 flexible SPC/E waters, 3,000 atoms, periodic,
float32, gzip). Input: FRAMES jittered copies of its coordinates in an H5MD file. For each worker
count W (each worker gets its share of the cores: MindSpore kernel threads and OMP threads =
cores / W), one ``compute_trajectory(..., client=...)`` run on a fresh LocalCluster, rows
interleaved over REPEATS rounds (the machine is shared: read the ratios within one run):

* start (s): the cluster up, workers connected (MindSpore is imported by the first task);
* compile (s): each worker process's first frame (graph compilation included), reported apart;
* steady frames/s: the sum over workers of (frames after its first) / (their compute seconds):
  the rate the cluster sustains once compiled, join excluded;
* wall frames/s: all frames / wall time of compute_trajectory (first frames and join included);
* join (s): the client's time appending the shards to the output (read, decompress, compress,
  write), and the join's own rate in frames/s; MB/frame: the output's bytes per frame on disk;
* threads: per worker process, its OS threads (MindSpore's pools included) and, after the slash,
  how many of them were busy (over 5% of the run's wall time in CPU): what the thread setting
  leaves running.

Scaling efficiency = steady frames/s of W workers / (W x that of 1 worker).

Run: .venv/bin/python benchmarks/bench_dask.py [FRAMES] [REPEATS]        (default 12 1)
"""
import os
import shutil
import sys
import tempfile
import time

import numpy as np


def write_input(path, system, frames, seed=0):
    """``frames`` jittered copies (0.005 nm) of the system's coordinates, positions and box only."""
    from mdjac.io.h5md_writer import H5MDWriter

    rng = np.random.default_rng(seed)
    x0 = np.asarray(system.positions, dtype=np.float64)
    with H5MDWriter(path, len(x0), periodic=True, forces=False, jacobian_atoms=None, batch=64) as w:
        for k in range(frames):
            w.append(k, 0.01 * k, (x0 + rng.normal(scale=0.005, size=x0.shape)) % system.box, system.box)
    return path


def thread_seconds():
    """{thread id: CPU seconds} of this process's OS threads."""
    import psutil

    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def busy_threads(before, after, wall, share=0.05):
    """(OS threads, threads that used more than ``share`` of ``wall`` seconds of CPU in between)."""
    return len(after), sum(after[k] - before.get(k, 0.0) > share * wall for k in after)


def one_run(workers, traj, out):
    """One distributed compute of ``traj`` on a fresh LocalCluster of ``workers`` processes."""
    from mdjac import cluster
    from mdjac.io.h5md_reader import describe
    from mdjac.jobs import compute_trajectory

    t0 = time.perf_counter()
    with cluster.local_client(workers) as client:
        client.wait_for_workers(workers)
        start = time.perf_counter() - t0
        before = client.run(thread_seconds)
        result = compute_trajectory(traj, "water-box", out, client=client, overwrite=True, progress=False)
        after = client.run(thread_seconds)
        threads = sorted(busy_threads(before[a], after[a], result["seconds"]) for a in after)
    rates, compile_ = [], []
    for pid in {t["worker"] for t in result["tasks"]}:
        seconds = [s for t in result["tasks"] if t["worker"] == pid for s in (t["seconds"][1:] if t["compile"]
                                                                               else t["seconds"])]
        compile_ += [t["seconds"][0] for t in result["tasks"] if t["worker"] == pid and t["compile"]]
        if seconds:
            rates.append(len(seconds) / sum(seconds))
    info = describe(out)
    return dict(workers=workers, start=start, compile=compile_, steady=sum(rates),
                wall=result["computed"] / result["seconds"], join=result["join_seconds"],
                join_rate=result["computed"] / result["join_seconds"], threads=threads,
                mb=info["file_bytes"] / info["frames"] / 1e6, frames=result["computed"])


def main(frames=12, repeats=1):
    import mdjac

    system = mdjac.load_system("water-box")
    cores = len(os.sched_getaffinity(0))
    folder = tempfile.mkdtemp(prefix="bench-dask-")
    try:
        traj = write_input(os.path.join(folder, "in.h5md"), system, frames)
        rows = []
        for _ in range(repeats):
            for workers in (1, 2):
                rows.append(one_run(workers, traj, os.path.join(folder, f"out{workers}.h5md")))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"mdjac compute on a Dask LocalCluster: water-box ({len(system.positions)} atoms), {frames} frames, "
          f"float32, gzip; {cores} cores, threads per worker = cores / workers; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    head = (f"{'workers':>7} {'start (s)':>9} {'compile per worker (s)':>23} {'steady frames/s':>15} "
            f"{'wall frames/s':>13} {'join (s)':>8} {'join frames/s':>13} {'MB/frame':>8} {'threads/busy':>14}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['workers']:>7} {r['start']:>9.1f} {', '.join(f'{c:.1f}' for c in r['compile']):>23} "
              f"{r['steady']:>15.3f} {r['wall']:>13.3f} {r['join']:>8.1f} {r['join_rate']:>13.2f} "
              f"{r['mb']:>8.1f} {', '.join(f'{n}/{b}' for n, b in r['threads']):>14}")
    for k in range(0, len(rows), 2):
        one, two = rows[k], rows[k + 1]
        print(f"scaling efficiency (2 workers vs 1): steady {two['steady'] / (2 * one['steady']):.2f}, "
              f"wall {two['wall'] / (2 * one['wall']):.2f}")
    return rows


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:3]])
