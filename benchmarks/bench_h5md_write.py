"""What writing a frame costs against computing it: `mdjac compute` on the water box, per filter.

The water box (catalogue ``water-box``: 3,000 atoms, 1.26 M Jacobian blocks a frame) in float32
and float64. Frames: the catalogue positions and copies moved by 0.002 nm Gaussian noise (fixed
seed). Per round and precision:

* compute: :func:`mdjac.jobs.frame_forces_and_jacobian` on every frame (forces, then the
  Jacobian, as ``mdjac compute`` does), timed per frame; the first round's results are the
  frames every write stores (the same Jacobians for every setting);
* write, for every setting in turn (the order rotates from round to round): a new
  :class:`~mdjac.io.h5md_writer.H5MDWriter` in a temporary directory on the local disk, the
  frames appended in batches of ``--batch`` and the writer closed: the real path, its journal
  included. Timed from the first append to the end of close, per frame. The bytes the journal
  copied (pre-images of what a batch overwrote) are counted;
* read back: every frame's positions, forces, block columns and blocks with h5py, timed per frame,
  and compared with what was written (must be equal).

Once per setting (first round, float32), in a fresh process with ``HDF5_PLUGIN_PATH`` pointing
at an empty directory (no filter plugins) and without hdf5plugin: plain h5py reads every dataset
and MDAnalysis's H5MD reader reads every frame's positions and forces (against the water box's
PDB); both compared with what was written.

Columns: write s/frame (min and median over rounds), write/compute (median write over median
compute of the same precision), MB/frame on disk, compression ratio (bytes of the arrays over
bytes on disk), journal MB/frame, read s/frame (median), h5py and MDAnalysis readable.

With ``--overlap`` instead: compute and write together, as ``mdjac compute`` does, the writer's
``append`` called in the computing thread (serial) or handed to one writer thread (so that a
batch is written while the next frames are computed), float32, for the default filter and gzip;
wall seconds per frame and the seconds the journal spent copying pre-images.

Run: .venv/bin/python benchmarks/bench_h5md_write.py [--frames 4] [--rounds 3] [--batch 2] [--overlap]
"""
import argparse
import concurrent.futures
import contextlib
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

GZIP = {"compression": "gzip"}
GZIP_1_SHUFFLE = dict(GZIP, compression_opts=1, shuffle=True)
#: (label, the blocks' h5py filter arguments, blocks per chunk, the other datasets' filter or None
#: for the writer's OTHERS_COMPRESSION); "--compression X": what mdjac compute --compression X writes
SETTINGS = [
    ("gzip-1 shuffle (before)", GZIP_1_SHUFFLE, 1 << 13, None),
    ("gzip-1 (--compression gzip)", dict(GZIP, compression_opts=1), 1 << 13, None),
    ("gzip-4 shuffle", dict(GZIP, compression_opts=4, shuffle=True), 1 << 13, None),
    ("gzip-4", dict(GZIP, compression_opts=4), 1 << 13, None),
    ("gzip-6 shuffle", dict(GZIP, compression_opts=6, shuffle=True), 1 << 13, None),
    ("gzip-6", dict(GZIP, compression_opts=6), 1 << 13, None),
    ("lzf shuffle", {"compression": "lzf", "shuffle": True}, 1 << 13, None),
    ("lzf (--compression lzf)", {"compression": "lzf"}, 1 << 13, None),
    ("none (--compression none)", {}, 1 << 13, None),
    ("gzip-1", dict(GZIP, compression_opts=1), 1 << 11, None),
    ("gzip-1", dict(GZIP, compression_opts=1), 1 << 15, None),
    ("lzf", {"compression": "lzf"}, 1 << 11, None),
    ("lzf", {"compression": "lzf"}, 1 << 15, None),
    ("none", {}, 1 << 15, None),
    ("none, others none too", {}, 1 << 13, {}),
]

READABLE = r"""
import sys, h5py, numpy as np
path, pdb, reference = sys.argv[1:4]
ref = np.load(reference)
assert "hdf5plugin" not in sys.modules
with h5py.File(path, "r") as f:
    g = f["particles/trajectory"]
    every = []
    f.visititems(lambda name, obj: every.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    h5 = (np.array_equal(g["position/value"][()], ref["positions"]) and np.array_equal(g["force/value"][()], ref["forces"])
          and np.array_equal(g["force_jacobian/blocks"][()], ref["blocks"]))
try:
    import MDAnalysis
    u = MDAnalysis.Universe(pdb, path)
    mda = len(u.trajectory) == len(ref["positions"]) and all(
        np.allclose(ts.positions, 10 * ref["positions"][k], rtol=1e-6, atol=1e-5)
        and np.allclose(ts.forces, ref["forces"][k] / 10, rtol=1e-6, atol=1e-4) for k, ts in enumerate(u.trajectory))
except Exception as err:
    print(f"MDAnalysis: {type(err).__name__}: {err}", file=sys.stderr)
    mda = False
print("yes" if h5 else "no", "yes" if mda else "no")
"""


def frames_of(system, n_frames, seed=0):
    """(positions (F, N, 3) nm float64, box (3,) nm): the catalogue frame and jittered copies."""
    rng = np.random.default_rng(seed)
    x0 = np.asarray(system.positions, dtype=np.float64)
    return np.stack([x0] + [x0 + rng.normal(scale=0.002, size=x0.shape) for _ in range(n_frames - 1)]), system.box


def compute(system, positions, dtype):
    """[(x, box, forces, ForceJacobian)] of every frame and the seconds of each."""
    from mdjac.io.frames import Frame
    from mdjac.jobs import frame_forces_and_jacobian

    out, seconds = [], []
    for k, x in enumerate(positions):
        frame = Frame(step=k, time=float(k), positions=x, box=system.box)
        start = time.perf_counter()
        out.append(frame_forces_and_jacobian(system.potential, frame, system, dtype, "replicate"))
        seconds.append(time.perf_counter() - start)
    return out, seconds


@contextlib.contextmanager
def journal_probe():
    """Count the bytes the journal copies (pre-images) and the seconds it takes while the block
    runs: yields a list [bytes, seconds] of running totals."""
    from mdjac.io import journal

    total, save = [0, 0.0], journal.JournaledFile._save

    def probed(self, start, stop):
        begin = time.perf_counter()
        save(self, start, stop)
        total[0] += stop - start
        total[1] += time.perf_counter() - begin

    journal.JournaledFile._save = probed
    try:
        yield total
    finally:
        journal.JournaledFile._save = save


def write(path, system, frames, dtype, filters, chunk, others, batch):
    """Seconds to append ``frames`` and close the writer, bytes the journal copied."""
    from mdjac.io import h5md_writer

    h5md_writer.BLOCK_CHUNK, kept = chunk, h5md_writer.OTHERS_COMPRESSION
    if others is not None:
        h5md_writer.OTHERS_COMPRESSION = others
    try:
        writer = h5md_writer.H5MDWriter(path, len(system.positions), names=system.names, masses=system.masses,
                                        periodic=True, dtype=dtype, batch=batch, compression=filters)
    finally:
        h5md_writer.OTHERS_COMPRESSION = kept
    with journal_probe() as journaled:
        start = time.perf_counter()
        for k, (x, box, forces, jacobian) in enumerate(frames):
            writer.append(k, float(k), x, box, forces, jacobian)
        writer.close()
        seconds = time.perf_counter() - start
    return seconds, journaled[0]


def read_back(path, frames, dtype):
    """Seconds per frame to read positions, forces, columns and blocks with h5py; checked equal."""
    import h5py

    start = time.perf_counter()
    with h5py.File(path, "r") as f:
        g = f["particles/trajectory"]
        jac = g["force_jacobian"]
        for k, (x, _, forces, jacobian) in enumerate(frames):
            lo = int(jac["offset"][k])
            hi = lo + int(jac["indptr"][k, -1])
            got = (g["position/value"][k], g["force/value"][k], jac["indices"][lo:hi], jac["blocks"][lo:hi])
            want = (np.asarray(x, dtype), np.asarray(forces, dtype), jacobian.cols, np.asarray(jacobian.blocks, dtype))
            if not all(np.array_equal(a, b) for a, b in zip(got, want)):
                raise AssertionError(f"{path}: frame {k} reads back differently")
    return (time.perf_counter() - start) / len(frames)


def raw_bytes(frames, dtype):
    """Bytes per frame of the arrays stored (positions, forces, box, blocks, columns, row pointers)."""
    size = np.dtype(dtype).itemsize
    total = sum(x.size * size * 2 + 3 * size + j.nnz_blocks * (9 * size + 4) + (j.n_atoms + 1) * 8 + 24
                for x, _, _, j in frames)
    return total / len(frames)


def readable(path, system, frames, dtype, workdir):
    """('yes'|'no', 'yes'|'no'): plain h5py and MDAnalysis read the file, in a fresh process
    with no filter plugins."""
    reference = os.path.join(workdir, "reference.npz")
    np.savez(reference, positions=np.stack([np.asarray(x, dtype) for x, _, _, _ in frames]),
             forces=np.stack([np.asarray(f, dtype) for _, _, f, _ in frames]),
             blocks=np.concatenate([np.asarray(j.blocks, dtype) for _, _, _, j in frames]))
    empty = os.path.join(workdir, "no-plugins")
    os.makedirs(empty, exist_ok=True)
    env = dict(os.environ, HDF5_PLUGIN_PATH=empty)
    done = subprocess.run([sys.executable, "-c", READABLE, path, str(system.topology), reference], env=env,
                          capture_output=True, text=True)
    os.remove(reference)
    if done.returncode:
        print(done.stderr.strip().splitlines()[-1], file=sys.stderr)
        return "no", "no"
    return tuple(done.stdout.split())


def compute_and_write(path, system, positions, dtype, compression, batch, threaded):
    """Wall seconds per frame of computing and writing every frame; journal seconds per frame."""
    from mdjac.io.frames import Frame
    from mdjac.io.h5md_writer import H5MDWriter
    from mdjac.jobs import frame_forces_and_jacobian

    writer = H5MDWriter(path, len(system.positions), names=system.names, masses=system.masses, periodic=True,
                        dtype=dtype, batch=batch, compression=compression)
    pool = concurrent.futures.ThreadPoolExecutor(1) if threaded else None
    with journal_probe() as journaled:
        start, pending = time.perf_counter(), []
        for k, x in enumerate(positions):
            out = frame_forces_and_jacobian(system.potential, Frame(k, float(k), x, system.box), system, dtype,
                                            "replicate")
            if pool is None:
                writer.append(k, float(k), *out)
            else:
                pending.append(pool.submit(writer.append, k, float(k), *out))
        for done in pending:
            done.result()
        writer.close()
        seconds = time.perf_counter() - start
    if pool is not None:
        pool.shutdown()
    return seconds / len(positions), journaled[1] / len(positions)


def overlap(system, positions, rounds, batch):
    """Print serial against threaded writing, interleaved over ``rounds``."""
    dtype, results = np.dtype("float32"), {}
    compute(system, positions[:1], dtype)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP", "/tmp")) as workdir:
        for _ in range(rounds):
            for compression in ("none", "gzip"):
                for threaded in (False, True):
                    path = os.path.join(workdir, "out.h5md")
                    results.setdefault((compression, threaded), []).append(
                        compute_and_write(path, system, positions, dtype, compression, batch, threaded))
                    os.remove(path)
    print(f"mdjac compute's loop on water-box, float32, {len(positions)} frames, batches of {batch}, {rounds} rounds "
          f"interleaved; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'--compression':>13} {'writer':>7} {'s/frame min':>11} {'s/frame med':>11} {'journal s/frame':>15}")
    for (compression, threaded), values in results.items():
        values = np.array(values)
        print(f"{compression:>13} {'thread' if threaded else 'serial':>7} {values[:, 0].min():11.3f} "
              f"{np.median(values[:, 0]):11.3f} {np.median(values[:, 1]):15.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2, help="frames per journaled batch")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--overlap", action="store_true", help="serial against a writer thread instead")
    args = parser.parse_args()

    from mdjac.catalogue import resolve_system

    system = resolve_system("water-box")
    positions, _ = frames_of(system, args.frames)
    if args.overlap:
        return overlap(system, positions, args.rounds, args.batch)
    dtypes = [np.dtype(d) for d in args.dtypes]
    for dtype in dtypes:                            # compilation, outside the timings
        compute(system, positions[:1], dtype)
    frames, compute_s = {}, {d: [] for d in dtypes}
    write_s = {(d, i): [] for d in dtypes for i in range(len(SETTINGS))}
    stored, journaled, reads = {}, {}, {}
    read_s = {key: [] for key in write_s}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP", "/tmp")) as workdir:
        for r in range(args.rounds):
            for dtype in dtypes:
                result, seconds = compute(system, positions, dtype)
                compute_s[dtype] += seconds
                frames.setdefault(dtype, result)
                del result
                order = np.roll(np.arange(len(SETTINGS)), -r * len(SETTINGS) // args.rounds)
                for i in order:
                    label, filters, chunk, others = SETTINGS[i]
                    path = os.path.join(workdir, f"{dtype}-{i}.h5md")
                    seconds, copied = write(path, system, frames[dtype], dtype, filters, chunk, others, args.batch)
                    write_s[dtype, i].append(seconds / args.frames)
                    read_s[dtype, i].append(read_back(path, frames[dtype], dtype))
                    stored[dtype, i] = os.path.getsize(path) / args.frames
                    journaled[dtype, i] = copied / args.frames
                    if r == 0 and dtype == dtypes[0]:
                        reads[i] = readable(path, system, frames[dtype], dtype, workdir)
                    os.remove(path)
                print(f"round {r + 1}/{args.rounds} {dtype} done", file=sys.stderr, flush=True)
    print(f"Writing mdjac compute's frames: water-box ({len(system.positions)} atoms, "
          f"{frames[dtypes[0]][0][3].nnz_blocks} blocks a frame), {args.frames} frames, batches of {args.batch}, "
          f"{args.rounds} rounds interleaved; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for dtype in dtypes:
        c = np.array(compute_s[dtype])
        print(f"compute (forces + Jacobian) {dtype}: min {c.min():.3f} s/frame, median {np.median(c):.3f} s/frame; "
              f"arrays {raw_bytes(frames[dtype], dtype) / 1e6:.1f} MB/frame")
    header = (f"{'dtype':>7} {'blocks':>27} {'chunk':>6} {'write min':>9} {'write med':>9} {'write/compute':>13} "
              f"{'MB/frame':>8} {'ratio':>5} {'journal MB/fr':>13} {'read s/fr':>9} {'h5py':>4} {'MDA':>4}")
    print(header)
    print("-" * len(header))
    for dtype in dtypes:
        raw, c = raw_bytes(frames[dtype], dtype), np.median(compute_s[dtype])
        for i, (label, _, chunk, _) in enumerate(SETTINGS):
            w = np.array(write_s[dtype, i])
            h5, mda = reads.get(i, ("-", "-")) if dtype == dtypes[0] else ("", "")
            print(f"{str(dtype):>7} {label:>27} {chunk:>6} {w.min():9.3f} {np.median(w):9.3f} {np.median(w) / c:13.2f} "
                  f"{stored[dtype, i] / 1e6:8.1f} {raw / stored[dtype, i]:5.2f} {journaled[dtype, i] / 1e6:13.3f} "
                  f"{np.median(read_s[dtype, i]):9.3f} {h5:>4} {mda:>4}")
    print("blocks: their filter and blocks per chunk; every other dataset gzip-1 shuffle unless said; "
          "write: append every frame and close (journal included), s/frame; write/compute: medians; ratio: "
          "array bytes / file bytes; journal: pre-images copied; read: h5py, positions + forces + columns + blocks; "
          "h5py/MDA: read in a fresh process without filter plugins (float32 file)")


if __name__ == "__main__":
    main()
