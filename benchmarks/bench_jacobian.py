"""Cost of one full force Jacobian, in units of one force evaluation, measured in one run.

System: a two-type liquid at 100 atoms per nm^3 (a jittered lattice, water's atom density),
Lennard-Jones plus damped-shifted-force Coulomb, 0.7 nm cutoff, periodic, float32. For each N it
times the same frame again and again, so the potential's Verlet list is reused and neither force
nor Jacobian pays a neighbour search (benchmarks/bench_peers.py times new frames, search included):

* force: ``Potential.forces`` (one energy-and-gradient pass over every term);
* Jacobian: ``Potential.force_jacobian`` (per-term replication, the default strategy);
* finite differences: 6N force evaluations (central differences of every coordinate); a sample
  of columns is timed and extrapolated to 3N columns;
* Hessian-vector products: 3N compiled HVPs of the whole potential (one per Cartesian
  coordinate); timed on a sample and extrapolated;
* dense: the article's identity mask over all 3N rows, tried for N <= DENSE_MAX in a process of
  its own whose address space is capped at DENSE_LIMIT_GB ("no fit" when it fails there; N = 100
  is impossible at this density with this cutoff: the box would be under twice the cutoff).

Peak memory is the process's maximum resident set size (each N runs in its own process).
Ratios are what to read: the machine is shared and absolute times vary from run to run.

Run: .venv/bin/python benchmarks/bench_jacobian.py [N ...]      (default 300 3000 30000)
     .venv/bin/python benchmarks/bench_jacobian.py --systems     (catalogue systems, issue 3 rows)
"""
import json
import resource
import subprocess
import sys
import time

import numpy as np

from common import best, peak_gb, run_child

#: The dense article kernel (3N copies of the system) is tried up to this N, in its own process
#: with its address space capped at DENSE_LIMIT_GB, so that failing to fit is a row, not a kill.
DENSE_MAX = 300
DENSE_LIMIT_GB = 16


def jittered_lattice(n, density, seed=0):
    """(positions (n, 3) float64 nm, box edge nm): n sites of a cubic lattice at ``density``
    atoms/nm^3, chosen at random and jittered by 0.02 nm (not wrapped into the box)."""
    rng = np.random.default_rng(seed)
    edge = (n / density) ** (1 / 3)
    m = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3)
    sites = grid[rng.choice(len(grid), n, replace=False)]
    return (sites + 0.5) * (edge / m) + rng.normal(scale=0.02, size=(n, 3)), edge


def liquid(n, density=100.0, cutoff=0.7, seed=0):
    """Potential and float32 positions of an N-atom two-type liquid at ``density`` atoms/nm^3."""
    import mdjac
    from mdjac import terms

    x, edge = jittered_lattice(n, density, seed)
    types = np.arange(n) % 2
    charges = np.where(types == 0, 0.4, -0.4)
    pot = mdjac.Potential([terms.LennardJones([0.2, 0.18], [0.6, 0.4], types, cutoff=cutoff),
                           terms.Coulomb(charges, cutoff=cutoff, method="dsf", alpha=2.0)], box=[edge] * 3)
    return pot, x.astype(np.float32)


def hvp_seconds(pot, x, samples=6):
    """Seconds per Hessian-vector product of the whole potential (compiled), from a few samples."""
    from mdjac import kernel

    energy, args = pot.energy_function(x)
    gradient = kernel.instance_gradient_of(energy)
    # three HVPs per call, copy a keeping gradient component (0, a): H e_(0,a). (One copy alone
    # trips a MindSpore 2.7.1 shape bug in the backward pass of broadcasting over a size-1 axis.)
    rows = np.full((len(x), 3), -1)
    rows[0] = [0, 1, 2]
    hvp3 = lambda: kernel.row_compressed_jacobian(gradient, x, rows, 3, args, batched=True)  # noqa: E731
    hvp3()  # compile
    return best(hvp3, samples)[0] / 3


def measure(n):
    """One row of the table for an N-atom liquid (dict)."""
    pot, x = liquid(n)
    pot.forces(x), pot.force_jacobian(x)  # compile every shape once
    force, jac = [], []
    for _ in range(4):  # interleaved, so that both see the same load; the best of each is kept
        force.append(_timed(pot.forces, x))
        jac.append(_timed(pot.force_jacobian, x))
    force, jac = min(force), min(jac)
    # The force evaluation is the unit: take the fastest one seen, finite-difference ones included
    # (a force call right after a Jacobian pays for the Jacobian's freed memory). This can only make
    # the Jacobian look more expensive, never less.
    fd_column = fd_column_seconds(pot, x)
    force = min(force, fd_column / 2)
    jacobian = pot.force_jacobian(x)
    row = {"n": n, "pairs": int(len(pot.terms[0].candidate_pairs(pot.configuration(x)))), "blocks": jacobian.nnz_blocks,
           "force_s": force, "jacobian_s": jac, "fd_s": 3 * n * fd_column, "hvp_s": 3 * n * hvp_seconds(pot, x)}
    row["peak_gb"] = peak_gb()
    return row


def fd_column_seconds(pot, x, samples=3, step=1e-3):
    """Seconds per finite-difference column (two force evaluations at x +- step e_c), best of samples."""
    from mdjac import numerical

    def column(c):
        return numerical.central_difference_columns(pot.forces, x, [c], h=step)
    return min(_timed(column, c) for c in range(samples))


def measure_dense(n):
    """Dense article kernel over force time, in this process (run under an address-space cap)."""
    resource.setrlimit(resource.RLIMIT_AS, (DENSE_LIMIT_GB * 1024 ** 3,) * 2)
    pot, x = liquid(n)
    pot.forces(x)
    force = best(lambda: pot.forces(x), 2)[0]
    return {"dense_s": best(lambda: pot.force_jacobian(x, strategy="dense"), 1)[0], "dense_force_s": force}


def _run_child(flag, n):
    """Run this script with ``flag n`` in a new process; its JSON line, or the reason it failed."""
    row, code, stderr = run_child(__file__, [flag, str(n)], stderr=subprocess.PIPE)
    if code == 0 and row is not None:
        return row, None
    why = "killed (out of memory)" if code in (-9, 137) else \
        next((ln for ln in reversed(stderr.splitlines()) if "Error" in ln or "error" in ln), f"exit code {code}")
    return None, why


def _timed(fn, arg):
    t = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t


def print_table(rows):
    print("Liquid, 100 atoms/nm^3, LJ + DSF Coulomb, cutoff 0.7 nm, periodic, float32; "
          "costs in force evaluations (time / time of one force evaluation)")
    head = f"{'N':>7} {'pairs':>9} {'blocks':>10} {'force (s)':>10} {'Jacobian (s)':>13} {'Jacobian':>9} " \
           f"{'FD 6N':>9} {'HVP 3N':>9} {'dense':>9} {'peak RSS (GB)':>14}"
    print(head)
    print("-" * len(head))
    for r in rows:
        f = r["force_s"]
        dense = f"{r['dense_s'] / r['dense_force_s']:9.1f}" if "dense_s" in r else f"{r.get('dense', '-'):>9}"
        print(f"{r['n']:>7} {r['pairs']:>9} {r['blocks']:>10} {f:>10.3f} {r['jacobian_s']:>13.3f} {r['jacobian_s'] / f:>9.2f} "
              f"{r['fd_s'] / f:>9.0f} {r['hvp_s'] / f:>9.0f} {dense} {r['peak_gb']:>14.2f}")


def measure_systems(steps=60, every=10):
    """Rows for the catalogue's MindSPONGE systems (float32): Jacobian time over force time, and
    the ForceJacobianCallback's cost per saved frame in a short MindSPONGE run (``run_md``)."""
    import os
    import tempfile

    import mdjac
    from mdjac.io.h5md_reader import describe
    from mdjac.jobs import run_md

    head = f"{'system':>18} {'N':>6} {'blocks':>9} {'force (s)':>10} {'Jacobian (s)':>13} {'Jacobian/force':>15} " \
           f"{'new frame (s)':>14} {'MD step (s)':>12} {'callback/frame, best (s)':>25} {'mean':>7} {'callback/new frame':>19} " \
           f"{'Jacobian MB/frame':>18}"
    print("MindSPONGE systems, float32, adapter path; callback measured in a run_md of "
          f"{steps} steps with a Jacobian every {every}")
    print(head)
    print("-" * len(head))
    for name in ("alanine-dipeptide", "water-box"):
        system = mdjac.load_system(name)
        x = system.positions.astype(np.float32)
        pot = system.potential
        pot.forces(x), pot.force_jacobian(x)
        f, j = [], []
        for _ in range(4):  # interleaved best of 4, as for the liquid
            f.append(_timed(pot.forces, x))
            j.append(_timed(pot.force_jacobian, x))
        f, j = min(f), min(j)
        new = []
        for _ in range(3):   # a frame new to the potential: its Verlet list emptied (as in bench_peers.py)
            getattr(pot, "_verlet", {}).clear()
            new.append(_timed(pot.force_jacobian, x))
        new = min(new)
        blocks = pot.force_jacobian(x).nnz_blocks
        with tempfile.TemporaryDirectory() as tmp:
            run = run_md(name, steps=steps, every=every, output=os.path.join(tmp, "run.h5md"), check=False)
            on_disk = describe(os.path.join(tmp, "run.h5md"))["jacobian_bytes_per_frame"] / 1e6
        cb = min(run["callback_seconds"][1:] or run["callback_seconds"])   # best of the frames, as j is
        print(f"{name:>18} {len(x):>6} {blocks:>9} {f:>10.4f} {j:>13.4f} {j / f:>15.2f} {new:>14.4f} "
              f"{run['seconds_per_md_step']:>12.4f} {cb:>25.4f} {run['callback_seconds_per_frame']:>7.4f} "
              f"{cb / new:>19.2f} {on_disk:>18.3f}")
    print("Jacobian: the same frame again (the potential's Verlet list reused, no neighbour search); "
          "new frame: with the neighbour search, as for a frame the potential has not seen; "
          "callback/frame: the callback's wall time per saved frame in the MD run (the Jacobian of that "
          "step plus handing it to the writer), best and mean of the frames after the first (most MD frames "
          "10 steps apart rebuild the Verlet list); callback/new frame: best over best, like with like (a mean "
          "over a best reads 1.3 to 1.6 on this shared machine with no slowdown at all; "
          "benchmarks/probe_callback.py compares them interleaved); "
          "MB/frame: the Jacobian's bytes on disk per frame (gzip, float32)")


def main(argv):
    if argv[:1] == ["--one"]:
        print(json.dumps(measure(int(argv[1]))))
        return
    if argv[:1] == ["--dense"]:
        print(json.dumps(measure_dense(int(argv[1]))))
        return
    if argv[:1] == ["--systems"]:
        measure_systems()
        return
    rows = []
    for n in [int(a) for a in argv] or [300, 3000, 30000]:  # one process per N: peak memory is that N's own
        row, why = _run_child("--one", n)
        if row is None:
            print(f"N={n} failed: {why}")
            continue
        if n <= DENSE_MAX:
            dense, why = _run_child("--dense", n)
            row.update(dense or {"dense": "no fit"})
            if why:
                print(f"N={n} dense kernel: {why}")
        rows.append(row)
    print_table(rows)
    print(f"dense: the article's identity mask, 3N copies, address space capped at {DENSE_LIMIT_GB} GB; "
          "FD and HVP: sampled columns, extrapolated to 3N")


if __name__ == "__main__":
    main(sys.argv[1:])
