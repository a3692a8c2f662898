"""``mdjac compute`` on Dask: what the join costs, what many workers reach, and the water box on 1
and 2 workers. Three sections, each printing a table (the machine is shared: read ratios within
one run; the load is printed beside them):

``join`` (no cluster). The water box (1,000 SPC/E waters, 3,000 atoms, float32, blocks
uncompressed: the default): one frame computed (the second of two, the first paying for
compilation), then SHARDS shard files of PER_SHARD copies of it (default: one-frame shards, the
join's worst case) written with the output's writer. The same bytes are then

* copied as files (``shutil.copyfile``): the limit of any join that moves bytes;
* joined as before the index (every frame read back through the reader and appended by the writer);
* joined by the index (``mdjac.io.h5md_index``: HDF5 virtual datasets over the shard files,
  metadata only), shard by shard as the client does: the first join writes the index with every
  planned shard, each later one renames its shard into place and appends to the index;
* consolidated (the index copied into one file: ``mdjac consolidate``, slabs of datasets);
* copied chunk by chunk raw (h5py's ``read_direct_chunk``/``write_direct_chunk``) for the first
  shard's blocks, where chunks line up: design (b)'s best case.

Each as seconds, frames/s, MB/s of the frames' bytes, and per frame against computing one. Then
the index's cost as it grows: PARTS one-frame parts joined one by one into an index planned for
them all, the time of the k-th join for k = 2, 10, 100, 1000.

``many`` (a LocalCluster of WORKERS processes, default 8, on the 256-atom argon crystal: cheap
frames, so the client and the scheduler are what is measured). FRAMES jittered frames in shards of
SHARD frames: frames/s produced by the workers (frames / time until the last task ended) against
frames/s reaching the output (frames / time until the last join), each shard's lag from its end to
its join, the scheduler's overhead per task (worker-seconds not spent in tasks, per task, over the
run; and the round trip of empty tasks with every worker busy), and each worker's memory.

``water`` (a fresh LocalCluster of 1 then 2 processes, water box, FRAMES frames): start, compile
per worker, steady and wall frames/s, the join's seconds, threads per worker, as before.

Then the estimate for 100 machines from these figures.

Run: .venv/bin/python benchmarks/bench_dask.py [join] [many] [water]     (default: all three)
Options by environment: BENCH_SHARDS (6), BENCH_PER_SHARD (1), BENCH_PARTS (1000), BENCH_WORKERS (8),
BENCH_MANY_FRAMES (960), BENCH_SHARD (30), BENCH_WATER_FRAMES (6).
"""
import os
import shutil
import sys
import tempfile
import time

import numpy as np


def env_int(name, default):
    return int(os.environ.get(name, default))


def threads():
    """MindSpore's CPU kernel threads in this process (its default: the cores)."""
    return os.environ.get("MDJAC_THREADS") or len(os.sched_getaffinity(0))


def load():
    return f"load average {os.getloadavg()[0]:.1f} (2 cores shared with other jobs)"


def write_input(path, system, frames, seed=0, jitter=0.005):
    """``frames`` jittered copies of the system's coordinates, positions and box only."""
    from mdjac.io.h5md_writer import H5MDWriter

    rng = np.random.default_rng(seed)
    x0 = np.asarray(system.positions, dtype=np.float64)
    with H5MDWriter(path, len(x0), periodic=True, forces=False, jacobian_atoms=None, batch=64) as w:
        for k in range(frames):
            w.append(k, 0.01 * k, (x0 + rng.normal(scale=jitter, size=x0.shape)) % system.box, system.box)
    return path


# --------------------------------------------------------------------------------------------
# join
# --------------------------------------------------------------------------------------------

def frames_bytes(paths):
    """Bytes of the frames stored in shard files (their sizes on disk)."""
    return sum(os.path.getsize(p) for p in paths)


def old_join(out, shards, system):
    """The join before the index: every frame read back and appended by the output's writer."""
    from mdjac.io import open_trajectory
    from mdjac.io.h5md_writer import H5MDWriter

    with H5MDWriter(out, len(system.positions), names=system.names, masses=system.masses, periodic=True,
                    batch=8) as writer:
        for path in shards:
            with open_trajectory(path) as shard:
                for frame in shard:
                    writer.append(frame.step, frame.time, frame.positions, frame.box, frame.forces, frame.jacobian)
            writer.flush()


def raw_chunk_copy(src_path, dst_path, name="particles/trajectory/force_jacobian/blocks"):
    """Design (b)'s best case: the stored chunks of one dataset copied raw into an empty one with the
    same chunks (aligned, as only the first shard of a flat store is). Returns the bytes copied."""
    import h5py

    copied = 0
    with h5py.File(src_path, "r") as s, h5py.File(dst_path, "w") as d:
        src = s[name]
        dst = d.create_dataset("blocks", shape=src.shape, maxshape=src.maxshape, chunks=src.chunks, dtype=src.dtype)
        for i in range(src.id.get_num_chunks()):
            info = src.id.get_chunk_info(i)
            mask, data = src.id.read_direct_chunk(info.chunk_offset)
            dst.id.write_direct_chunk(info.chunk_offset, data, mask)
            copied += len(data)
    return copied


def fake_parts(folder, count):
    """``count`` one-frame part files of a 12-atom frame with a dense Jacobian (the index's cost
    does not depend on the frames' bytes); their paths."""
    from mdjac.io.h5md_writer import H5MDWriter
    from mdjac.jacobian import ForceJacobian

    rng = np.random.default_rng(0)
    first = os.path.join(folder, "done-0.h5md")
    n = 12
    rows, cols = np.nonzero(np.ones((n, n), bool))
    with H5MDWriter(first, n, periodic=True) as w:
        w.append(0, 0.0, rng.random((n, 3)), np.ones(3), rng.random((n, 3)),
                 ForceJacobian(n, rows, cols, rng.random((len(rows), 3, 3)).astype(np.float32)))
    return [first] + [shutil.copyfile(first, os.path.join(folder, f"done-{k}.h5md")) for k in range(1, count)]


def planned_joins(out, done, frames=1):
    """Join the finished part files ``done`` (of ``frames`` frames each) one at a time into a new
    index ``out`` that planned them all, as the client does (each join checks its part first, as
    the client does before). Returns the seconds of each join (the first writes the index whole,
    with every planned part), and the CPU seconds of each (this thread's)."""
    from mdjac.io.h5md_index import H5MDIndex

    folder = f"{out}.shards"
    os.makedirs(folder, exist_ok=True)
    seconds, cpu = [], []
    with H5MDIndex(out) as index:
        index.plan([(os.path.join(folder, f"part-{k:06d}.h5md"), frames) for k in range(len(done))])
        for path in done:
            t0, c0 = time.perf_counter(), time.thread_time()
            index.add([path])
            seconds.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    return seconds, cpu


def index_growth(folder, parts):
    """Seconds of the k-th join of one-frame parts into an index planned for ``parts`` of them:
    ({k: (the k-th join, mean of joins k/2+1..k)} for k in 2, 10, 100, 1000 up to ``parts``,
    the first join (it writes the index whole, every planned part mapped), every join, the index's
    bytes at the end)."""
    out = os.path.join(folder, "index.h5md")
    seconds, _ = planned_joins(out, fake_parts(folder, parts))
    ks = [k for k in (2, 10, 100, 1000, 10000) if k <= parts]
    return {k: (seconds[k - 1], float(np.mean(seconds[k // 2:k]))) for k in ks}, seconds[0], seconds, \
        os.path.getsize(out)


def join_section(shards=6, per_shard=1, parts=1000):
    import mdjac
    from mdjac.io.h5md_index import SEGMENT_PARTS, materialise
    from mdjac.io.h5md_writer import H5MDWriter

    system = mdjac.load_system("water-box")
    potential, box = system.potential, np.asarray(system.box)
    x = np.asarray(system.positions, dtype=np.float32)
    times = []
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        forces, jacobian = potential.forces(x, box=box), potential.force_jacobian(x, box=box)
        times.append(time.perf_counter() - t0)
    compute, compute_cpu = times[1], time.process_time() - c0
    folder = tempfile.mkdtemp(prefix="bench-join-", dir=os.environ.get("BENCH_DIR"))
    try:
        paths, t0 = [], time.perf_counter()
        for k in range(shards):
            paths.append(os.path.join(folder, f"out.h5md.shards/shard-{k:06d}.h5md"))
            os.makedirs(os.path.dirname(paths[-1]), exist_ok=True)
            with H5MDWriter(paths[-1], len(x), names=system.names, masses=system.masses, periodic=True,
                            batch=per_shard) as w:
                for i in range(per_shard):
                    w.append(k * per_shard + i, 0.0, x, box, forces, jacobian)
        frames = shards * per_shard
        write = (time.perf_counter() - t0) / frames
        size = frames_bytes(paths)
        rows = []

        def row(name, seconds, note=""):
            rows.append((name, seconds, frames / seconds, size / seconds / 1e6, seconds / frames / compute, note))

        t0 = time.perf_counter()
        for k, p in enumerate(paths):
            shutil.copyfile(p, os.path.join(folder, f"copy-{k}.h5md"))
        row("plain file copy (the limit)", time.perf_counter() - t0)
        for k in range(shards):
            os.remove(os.path.join(folder, f"copy-{k}.h5md"))
        t0 = time.perf_counter()
        old_join(os.path.join(folder, "old.h5md"), paths, system)
        row("join before: read + append every frame", time.perf_counter() - t0)
        os.remove(os.path.join(folder, "old.h5md"))
        out = os.path.join(folder, "out.h5md")
        joins, joins_cpu = planned_joins(out, paths, per_shard)
        later, later_cpu = joins[1:], np.mean(joins_cpu[1:])
        rows.append(("index: first join (writes the plan)", joins[0], per_shard / joins[0],
                     size / shards / joins[0] / 1e6, joins[0] / per_shard / compute, "once per run"))
        rows.append(("index: each later join", sum(later), len(later) * per_shard / sum(later),
                     size * len(later) / shards / sum(later) / 1e6, np.mean(later) / per_shard / compute,
                     f"{1e3 * np.mean(later):.1f} ms per shard (median {1e3 * np.median(later):.1f}), "
                     f"CPU {1e3 * later_cpu:.1f} ms"))
        t0 = time.perf_counter()
        materialise(out)
        row("consolidate (index -> one file)", time.perf_counter() - t0)
        t0 = time.perf_counter()
        copied = raw_chunk_copy(os.path.join(f"{out}.shards", "part-000000.h5md"), os.path.join(folder, "raw.h5"))
        raw = time.perf_counter() - t0
        growth, first_join, all_joins, index_bytes = index_growth(tempfile.mkdtemp(dir=folder), parts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\njoin: water-box ({len(x)} atoms, {jacobian.nnz_blocks} blocks), float32, blocks uncompressed; "
          f"{shards} shards of {per_shard} frames, {size / frames / 1e6:.1f} MB per frame on disk; "
          f"a frame computed in {compute:.2f} s (first {times[0]:.1f} s, compilation), written by a worker in "
          f"{write:.2f} s; {load()}")
    head = f"{'':42} {'seconds':>8} {'frames/s':>9} {'MB/s':>8} {'per frame / compute':>20}"
    print(head + "\n" + "-" * len(head))
    for name, seconds, fps, mbs, ratio, note in rows:
        print(f"{name:42} {seconds:>8.3f} {fps:>9.1f} {mbs:>8.0f} {ratio:>20.4f}  {note}")
    print(f"{'raw chunk copy, blocks of shard 0 (b)':42} {raw:>8.3f} {'':>9} {copied / raw / 1e6:>8.0f}")
    print(f"\nindex growth: one-frame parts (12 atoms) joined one by one into an index planned for {parts}; the "
          f"first join wrote it whole in {1e3 * first_join:.0f} ms; the index, copied by each join, holds "
          f"{index_bytes / 1e3:.0f} kB at the end (segments of {SEGMENT_PARTS} parts); {load()}")
    head = f"{'shards joined k':>15} {'k-th join (ms)':>15} {'mean of joins k/2..k (ms)':>26}"
    print(head + "\n" + "-" * len(head))
    for k in sorted(growth):
        print(f"{k:>15} {1e3 * growth[k][0]:>15.2f} {1e3 * growth[k][1]:>26.2f}")
    later = np.array(all_joins[1:])
    print(f"joins 2..{parts}: mean {1e3 * later.mean():.2f} ms, median {1e3 * np.median(later):.2f}, max "
          f"{1e3 * later.max():.1f} ms; water-box {per_shard}-frame shard: a later join is "
          f"{rows[3][4]:.4f} of a frame's compute per frame in wall time at this load; in CPU time "
          f"{later_cpu / per_shard / compute_cpu:.4f} (the join's thread {1e3 * later_cpu:.1f} ms, the frame's process "
          f"{compute_cpu:.2f} s on {threads()} threads)")
    return dict(compute=compute, join_per_shard=float(np.mean(joins[1:])), per_shard=per_shard,
                cpu_ratio=later_cpu / per_shard / compute_cpu,
                mb_per_frame=size / frames / 1e6, growth={k: v[1] for k, v in growth.items()}, copy_mbs=rows[0][3],
                old_ratio=rows[1][4])


# --------------------------------------------------------------------------------------------
# many workers, cheap frames
# --------------------------------------------------------------------------------------------

def rss():
    import psutil
    return psutil.Process().memory_info().rss


def noop(i):
    return i


def many_section(workers=8, frames=960, shard=30):
    import mdjac
    from mdjac import cluster
    from mdjac.jobs import compute_trajectory

    system = mdjac.load_system("argon")
    folder = tempfile.mkdtemp(prefix="bench-many-", dir=os.environ.get("BENCH_DIR"))
    try:
        traj = write_input(os.path.join(folder, "in.h5md"), system, frames, jitter=0.002)
        out = os.path.join(folder, "out.h5md")
        with cluster.local_client(workers, threads=1) as client:
            client.wait_for_workers(workers)
            t0 = time.time()
            result = compute_trajectory(traj, "argon", out, client=client, shard_frames=shard, progress=False)
            memory = sorted(client.run(rss).values())
            client.map(noop, range(workers), pure=False)       # warm
            n = 50 * workers
            t1 = time.perf_counter()
            client.gather(client.map(noop, range(n), pure=False))
            empty = (time.perf_counter() - t1) * workers / n
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    tasks = result["tasks"]
    first = min(t["started"] for t in tasks)
    last_task = max(t["ended"] for t in tasks)
    last_join = max(t for t, _ in result["joins"])
    produced = frames / (last_task - first)
    reached = frames / (last_join - first)
    busy = sum(t["ended"] - t["started"] for t in tasks)
    overhead = (workers * (last_task - first) - busy) / len(tasks)
    end = {t["index"]: t["ended"] for t in tasks}
    joinable = np.maximum.accumulate([end[k] for k in range(len(end))])     # it and every shard before ended
    joined = [next(t for t, n in result["joins"] if n >= (k + 1) * shard) for k in range(len(end))]
    lags = [j - e for j, e in zip(joined, joinable)]
    compile_ = sorted(result["compile_seconds"].values())
    steady = [s for t in tasks for s in (t["seconds"][1:] if t["compile"] else t["seconds"])]
    print(f"\nmany: argon ({len(system.positions)} atoms), {frames} frames in {len(tasks)} shards of {shard}, "
          f"LocalCluster of {workers} single-threaded workers on 2 cores; {load()}")
    print(f"  from submission: the first task started after {first - t0:.1f} s (worker imports MindSpore, builds the "
          f"system), the last ended after {last_task - t0:.1f} s, the last join after {last_join - t0:.1f} s; each "
          f"worker's first frame (compilation, or the compile cache) took {compile_[0]:.1f} to {compile_[-1]:.1f} s")
    print(f"  from the first task's start: frames/s produced by the workers {produced:.2f} (to the last task's end), "
          f"reaching the output {reached:.2f} (to the last join): ratio {reached / produced:.3f}")
    print(f"  a frame's compute in a worker: {1e3 * np.median(steady):.0f} ms median ({len(steady)} steady frames; "
          f"{workers} workers share 2 cores, so about {workers / 2:.0f}x a lone worker's time)")
    print(f"  joinable (it and every shard before ended) -> joined: median {1e3 * np.median(lags):.0f} ms, max "
          f"{1e3 * max(lags):.0f} ms; client join "
          f"time {result['join_seconds']:.2f} s in all ({1e3 * result['join_seconds'] / len(tasks):.1f} ms per shard)")
    print(f"  scheduler overhead per task: {overhead:.2f} worker-seconds not in tasks between the first start and the "
          f"last end (imbalance at the end included); empty tasks with every worker busy: {1e3 * empty:.1f} ms each")
    print(f"  worker memory (RSS): {', '.join(f'{m / 1e9:.2f}' for m in memory)} GB")
    return dict(produced=produced, reached=reached, overhead=overhead, empty=empty, workers=workers,
                join_per_shard=result["join_seconds"] / len(tasks), shard=shard)


# --------------------------------------------------------------------------------------------
# water box on 1 and 2 workers
# --------------------------------------------------------------------------------------------

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
    steady = [s for t in result["tasks"] for s in (t["seconds"][1:] if t["compile"] else t["seconds"])]
    steady_cpu = [s for t in result["tasks"] for s in (t["cpu"][1:] if t["compile"] else t["cpu"])]
    info = describe(out)
    return dict(workers=workers, start=start, compile=compile_, steady=sum(rates),
                wall=result["computed"] / result["seconds"], join=result["join_seconds"],
                join_frame=result["join_seconds"] / result["computed"], frame=float(np.median(steady)),
                join_cpu=result["join_cpu_seconds"] / result["computed"] / float(np.median(steady_cpu)),
                threads=threads, mb=info["file_bytes"] / info["frames"] / 1e6, frames=result["computed"])


def water_section(frames=6):
    import mdjac

    system = mdjac.load_system("water-box")
    folder = tempfile.mkdtemp(prefix="bench-dask-", dir=os.environ.get("BENCH_DIR"))
    try:
        traj = write_input(os.path.join(folder, "in.h5md"), system, frames)
        rows = [one_run(workers, traj, os.path.join(folder, f"out{workers}.h5md")) for workers in (1, 2)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nwater: mdjac compute on a Dask LocalCluster, water-box ({len(system.positions)} atoms), {frames} frames, "
          f"float32, blocks uncompressed; threads per worker = cores / workers; {load()}")
    head = (f"{'workers':>7} {'start (s)':>9} {'compile per worker (s)':>23} {'steady frames/s':>15} "
            f"{'wall frames/s':>13} {'join (s)':>8} {'join / frame':>12} {'CPU':>7} {'MB/frame':>8} {'threads/busy':>14}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['workers']:>7} {r['start']:>9.1f} {', '.join(f'{c:.1f}' for c in r['compile']):>23} "
              f"{r['steady']:>15.3f} {r['wall']:>13.3f} {r['join']:>8.3f} {r['join_frame'] / r['frame']:>12.5f} "
              f"{r['join_cpu']:>7.4f} "
              f"{r['mb']:>8.1f} {', '.join(f'{n}/{b}' for n, b in r['threads']):>14}")
    print("join / frame: the client's join time per frame over a worker's median compute time per frame (wall, "
          "at this load; the first join, which writes the index with every planned shard, included); CPU: the "
          "join's CPU time (the client's thread) per frame over a frame's (the worker process's)")
    one, two = rows
    print(f"scaling efficiency (2 workers vs 1): steady {two['steady'] / (2 * one['steady']):.2f}, "
          f"wall {two['wall'] / (2 * one['wall']):.2f}")
    return rows


# --------------------------------------------------------------------------------------------
# the estimate
# --------------------------------------------------------------------------------------------

def estimate(join, many, machines=100, quiet_rate=0.6, frames=100_000):
    """The run of ``frames`` water-box frames on ``machines`` machines like this one (2 workers, the
    default shards) and like the README's dask-jobqueue recipe (32 workers, 200 frames a shard),
    each worker computing ``quiet_rate`` frames/s (a quiet core: README's Benchmark), from the
    figures measured above (the index's cost, under this machine's load, is an upper bound)."""
    ks = np.array(sorted(join["growth"]), dtype=float)
    cost = [join["growth"][int(k)] for k in ks]
    slope, intercept = np.polyfit(ks, cost, 1) if len(ks) > 2 else (0.0, float(np.mean(cost)))
    if slope <= 0:        # no growth: the mean cost
        slope, intercept = 0.0, float(np.mean(cost))
    print(f"\nestimate for {machines} machines, {frames} water-box frames ({join['mb_per_frame']:.0f} MB each), "
          f"{quiet_rate} frames/s per worker on a quiet core; adding a shard to an index of k shards measured above "
          f"as {1e3 * intercept:.1f} ms + {1e6 * slope:.0f} us x k (fitted)")
    for per_machine, shard_frames in ((2, None), (32, 200)):
        workers = machines * per_machine
        rate = workers * quiet_rate
        shards = min(frames, 4 * workers) if shard_frames is None else -(-frames // shard_frames)
        per_shard = frames / shards
        shard_rate = rate / per_shard
        last = intercept + slope * shards
        busy = shard_rate * (intercept + slope * shards / 2)
        print(f"  {per_machine:>2} workers a machine ({workers} workers): {rate:.0f} frames/s computed; {shards} shards "
              f"of {per_shard:.0f} frames, {shard_rate:.1f} finishing a second")
        if busy <= 1:
            how = f"joined one by one they keep it busy {busy:.2f} of the time"
        else:
            how = (f"one by one would need {busy:.1f} clients, but a join takes every shard that is ready: "
                   f"{shard_rate * last:.0f} a join at the end")
        print(f"     client: a join takes {1e3 * intercept:.0f} ms at first, {1e3 * last:.0f} ms at the last shard; "
              f"{how}; the output trails the workers by about one join, the rate is the workers'")
        print(f"     scheduler: {shard_rate:.1f} tasks/s and at most {min(rate, 2 * workers):.0f} progress messages/s "
              f"(a few bytes each)")
        print(f"     shared file system: {rate * join['mb_per_frame'] / 1e3:.1f} GB/s of shard writes, each byte written "
              f"once (the join before: written, read back and written again: 3x)")
    ratio = join["join_per_shard"] / join["per_shard"] / join["compute"]
    print(f"  the join before cost {join['old_ratio']:.3f} of a frame's compute per frame here: one client kept at "
          f"most {1 / join['old_ratio']:.1f} workers busy, whatever the number of machines; the index's join of a "
          f"{join['per_shard']}-frame shard costs {ratio:.4f} in wall time at this load ({join['cpu_ratio']:.4f} in CPU "
          f"time): one client joins for {1 / ratio:.0f} workers ({1 / join['cpu_ratio']:.0f} by CPU time)")


def main(sections):
    join = many = None
    if "join" in sections:
        join = join_section(env_int("BENCH_SHARDS", 6), env_int("BENCH_PER_SHARD", 1), env_int("BENCH_PARTS", 1000))
    if "many" in sections:
        many = many_section(env_int("BENCH_WORKERS", 8), env_int("BENCH_MANY_FRAMES", 960), env_int("BENCH_SHARD", 30))
    if "water" in sections:
        water_section(env_int("BENCH_WATER_FRAMES", 6))
    if join:
        estimate(join, many)


if __name__ == "__main__":
    main(sys.argv[1:] or ["join", "many", "water"])
