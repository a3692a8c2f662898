"""Where a PME force's time goes on DHFR, and what each lever tried against it gives: one table.

OpenMM's DHFR benchmark (bench_pme.build_system("dhfr", "PME"), 23,558 atoms), one dtype per run.
Every figure is the least of ``--repeat`` calls in this one process, the levers interleaved so
that load changes hit them alike; the load average is printed before and after.

Parts of one force evaluation (a new frame, as bench_pme times it; the whole force is timed after
another frame's pairs were taken, so it pays the new frame's pair work as well):

* ``new frame: pairs + parameters``: the Verlet list's filtering, the exclusions and the pair
  parameters of the ~3.5 M pairs (what a new frame pays before any energy), and its three parts
  apart on the same arrays each time (``pairs_within`` over the skin list's candidates,
  ``pairs_without`` of the nonbonded term's exclusions, its ``pair_params``); a new frame's part
  also pays the first touch of the fresh memory its arrays take (on this VM a large share, and
  the most variable one);
* ``pair geometry``, ``pair AD``, ``pair force scatter``: the radial route of the nonbonded group
  (mdjac.potential.Potential._radial_forces): displacements and distances (numba), MindSpore's
  compiled value-and-grad of the stated pair energy (Lennard-Jones + erfc Coulomb, one element-wise
  call per chunk), the forces' scatter (numba);
* ``PME reciprocal``: the whole long-range term (grid geometry, spline derivatives by AD, spread,
  FFT pair, gather).

Levers, each on the same pairs:

* (a) the chunk size of the element-wise call (mdjac.chunks.RADIAL_CHUNK is the default);
* (b) MindSpore's graph-kernel fusion (``enable_graph_kernel=True``), tried in a child process;
* (c) the stated energy's cost: Lennard-Jones and erfc Coulomb in one call (what the adapter's
  Nonbonded term already is), erfc Coulomb alone (the cost of the pairs whose epsilon is 0 if they
  were split off), and ``qq * r``: the floor of any element-wise value-and-grad over these pairs;
* (d) numba ``parallel=True`` (prange over the cores) for the pair geometry, with the scatter
  into per-thread force arrays: prototypes here, against the serial loops in mdjac.assembly.

Run: .venv/bin/python benchmarks/probe_pme_force_levers.py [float32|float64] [--repeat R]
"""
import os
import subprocess
import sys
import tempfile

import numba
import numpy as np

from bench_pme import build_system
from common import interleaved_times, peak_gb

CHUNKS = (1 << 16, 1 << 18, 1 << 20, 1 << 22)


@numba.njit(parallel=True, cache=True)
def parallel_pair_displacements(x, pairs, box, d, r):
    """pair displacements x_j - x_i, minimum image in a rectangular box (3,), and r: prange over pairs."""
    for p in numba.prange(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        s = 0.0
        for c in range(3):
            v = x[j, c] - x[i, c]
            v -= box[c] * np.floor(v / box[c] + 0.5)
            d[p, c] = v
            s += v * v
        r[p] = np.sqrt(s)


@numba.njit(parallel=True, cache=True)
def parallel_pair_forces(pairs, d, r, dphi, n_atoms, threads):
    """Forces of pair energies, each thread's share of the pairs into its own (N, 3) array, summed after."""
    parts = np.zeros((threads, n_atoms, 3))
    size = (pairs.shape[0] + threads - 1) // threads
    for t in numba.prange(threads):
        for p in range(t * size, min(pairs.shape[0], (t + 1) * size)):
            w = dphi[p] / r[p]
            for c in range(3):
                parts[t, pairs[p, 0], c] += w * d[p, c]
                parts[t, pairs[p, 1], c] -= w * d[p, c]
    return parts.sum(axis=0)


def graph_kernel_attempt(dtype):
    """Run the pair AD with enable_graph_kernel=True in a child: its time, or the error's last line."""
    code = ("import mindspore as ms, numpy as np, time\n"
            "ms.set_context(enable_graph_kernel=True)\n"
            "from mdjac import kernel\nfrom mdjac.openmm import nonbonded\n"
            f"r = np.random.default_rng(0).uniform(0.1, 0.9, 1 << 20).astype('{dtype}')\n"
            f"p = tuple(np.full(1 << 20, v, '{dtype}') for v in (0.3, 0.5, 10.0)) + (np.asarray(3.12, '{dtype}'),)\n"
            "def energy(r, *p):\n    return nonbonded.lennard_jones_ewald((r,), p)\n"
            "w = np.ones_like(r)\nkernel.term_energy_and_gradient(energy, r, w, p)\n"
            "t = time.perf_counter(); kernel.term_energy_and_gradient(energy, r, w, p); print('ok', time.perf_counter() - t)\n")
    with tempfile.TemporaryDirectory() as folder:     # MindSpore compiles from files only; AKG leaves files in the cwd
        script = os.path.join(folder, "graph_kernel.py")
        with open(script, "w") as f:
            f.write(code)
        out = subprocess.run([sys.executable, script], capture_output=True, text=True, cwd=folder,
                             env=dict(os.environ, GLOG_v="3"))
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    ok = [line for line in lines if line.startswith("ok ")]
    if ok:
        return f"works: {float(ok[0].split()[1]) * 1e3:.0f} ms per 1 M pairs"
    errors = [line.strip() for line in lines if "Error:" in line]
    return "fails: " + (errors[-1] if errors else lines[-1] if lines else f"exit {out.returncode}")[:150]


def main(argv):
    dtype = "float64" if "float64" in argv else "float32"
    repeat = int(argv[argv.index("--repeat") + 1]) if "--repeat" in argv else 3
    import mdjac.openmm
    from mdjac import assembly, kernel, neighbours
    from mdjac.chunks import RADIAL_CHUNK, padded_chunks
    from mdjac.openmm import nonbonded
    from mdjac.strategies.coordinates import pair_geometry
    from bench_real_systems import frames

    system, x0, _ = build_system("dhfr", "PME")
    pot = mdjac.openmm.adapt(system)
    x = x0.astype(dtype)
    pot.energy_and_forces(x)
    config = pot.configuration(x)
    group, index, _, params = max(pot.instance_groups(config, coordinates=False), key=lambda g: len(g[1]))
    pairs = np.ascontiguousarray(index, dtype=np.int64)
    d, r = pair_geometry(config, pairs)
    long_range = pot.long_range_terms[0]
    box = np.asarray(config.box, dtype=np.float64)
    qq, alpha = params[2], params[3]

    def ewald_only(r, qq, alpha):
        return nonbonded.ewald_direct(r, 1.0 / r, qq, alpha)

    def floor(r, qq):
        return qq * r

    def pair_ad(energy, p, chunk=RADIAL_CHUNK):
        for start, stop, r_chunk, p_chunk, weights in padded_chunks(r, p, chunk):
            kernel.term_energy_and_gradient(energy, r_chunk, weights, p_chunk)

    def new_frame_pairs(y):
        c = pot.configuration(y)
        for term in pot.short_range_terms:
            term.instances(c)

    def reciprocal():
        long_range._mesh = (None, None)
        long_range.energy_and_forces(config)

    dphi = np.ones_like(r)
    forces = np.zeros((len(x), 3))
    threads = numba.get_num_threads()
    d64, r64 = np.empty((len(r), 3)), np.empty(len(r))
    new_positions = iter(y.astype(dtype) for y in frames(x0, 10 * repeat + 10))
    nonbonded_term = next(t for t in pot.short_range_terms if t.cutoff is not None)
    new_frame_pairs(next(new_positions))    # a new frame near the last: the Verlet list holds its skin candidates
    frame = pot.configuration(next(new_positions))
    candidates = pot._verlet[nonbonded_term.cutoff]._candidates
    filtered = neighbours.pairs_within(frame.positions, candidates, frame.box, nonbonded_term.cutoff)
    kept = neighbours.pairs_without(filtered, nonbonded_term._excluded_keys, nonbonded_term.n_atoms)
    cases = {
        "whole force (positions the list last saw change)": lambda: pot.energy_and_forces(x),
        "new frame: pairs + parameters": lambda: new_frame_pairs(next(new_positions)),
        f"  Verlet filter ({len(candidates)} candidates)":
            lambda: neighbours.pairs_within(frame.positions, candidates, frame.box, nonbonded_term.cutoff),
        "  exclusions": lambda: neighbours.pairs_without(filtered, nonbonded_term._excluded_keys, nonbonded_term.n_atoms),
        "  pair parameters": lambda: nonbonded_term.pair_params(kept[:, 0], kept[:, 1]),
        "pair geometry (numba, serial)": lambda: pair_geometry(config, pairs),
        "(d) pair geometry, numba prange": lambda: parallel_pair_displacements(config.positions, pairs, box, d64, r64),
        "pair force scatter (numba, serial)": lambda: assembly.radial_pair_forces(pairs, d, r, dphi, forces),
        "(d) pair force scatter, prange + per-thread arrays": lambda: parallel_pair_forces(pairs, d, r, dphi, len(x), threads),
        "PME reciprocal (term.energy_and_forces)": reciprocal,
    }
    for chunk in CHUNKS:
        mark = " (default)" if chunk == RADIAL_CHUNK else ""
        cases[f"(a) pair AD, LJ + erfc Coulomb, chunk {chunk}{mark}"] = lambda c=chunk: pair_ad(group.radial_energy, params, c)
    cases["(c) pair AD, erfc Coulomb alone"] = lambda: pair_ad(ewald_only, (qq, alpha))
    cases["(c) pair AD floor: qq * r"] = lambda: pair_ad(floor, (qq,))
    for call in cases.values():       # compile, load numba
        call()
    print(f"DHFR {len(x)} atoms, {len(r)} nonbonded pairs, {dtype}, {threads} numba threads; "
          f"load average before: {os.getloadavg()}", flush=True)
    times = interleaved_times(cases, repeat)
    gk = graph_kernel_attempt(dtype)
    print(f"load average after: {os.getloadavg()}; peak RSS {peak_gb():.2f} GB")
    print(f"{'part or lever':>52} {'time':>9} {'ns/pair':>8}")
    for name, values in times.items():
        best = min(values)
        print(f"{name:>52} {best * 1e3:>7.1f}ms {best / len(r) * 1e9:>8.1f}")
    print(f"{'(b) graph-kernel fusion (enable_graph_kernel=True)':>52} {gk}")


if __name__ == "__main__":
    main(sys.argv[1:])
