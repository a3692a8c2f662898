"""Cost of one full force Jacobian, in units of one force evaluation, measured in one run.

System: a two-type liquid at 100 atoms per nm^3 (a jittered lattice, water's atom density),
Lennard-Jones plus damped-shifted-force Coulomb, 0.7 nm cutoff, periodic, float32. For each N it
times, on a frame the potential has not seen (the neighbour search is part of both):

* force: ``Potential.forces`` (one energy-and-gradient pass over every term);
* Jacobian: ``Potential.force_jacobian`` (per-term replication, the default strategy);
* finite differences: 6N force evaluations (central differences of every coordinate); a sample
  of columns is timed and extrapolated to 3N columns;
* Hessian-vector products: 3N compiled HVPs of the whole potential (one per Cartesian
  coordinate); timed on a sample and extrapolated;
* dense: the article's identity mask over all 3N rows, run where it fits (N = 100; at N = 300
  its 900 copies of the system ran out of this machine's 24 GB).

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

#: The dense article kernel (3N copies of the system) is run up to this N: at N = 300 it was
#: killed for lack of memory on this 24 GB machine.
DENSE_MAX = 100


def liquid(n, density=100.0, cutoff=0.7, seed=0):
    """Potential and float32 positions of an N-atom two-type liquid at ``density`` atoms/nm^3."""
    import mdjac
    from mdjac import terms

    rng = np.random.default_rng(seed)
    edge = (n / density) ** (1 / 3)
    m = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3)
    sites = grid[rng.choice(len(grid), n, replace=False)]
    x = (sites + 0.5) * (edge / m) + rng.normal(scale=0.02, size=(n, 3))
    types = np.arange(n) % 2
    charges = np.where(types == 0, 0.4, -0.4)
    pot = mdjac.Potential([terms.LennardJones([0.2, 0.18], [0.6, 0.4], types, cutoff=cutoff),
                           terms.Coulomb(charges, cutoff=cutoff, method="dsf", alpha=2.0)], box=[edge] * 3)
    return pot, x.astype(np.float32)


def best_of(fn, repeats):
    """Smallest wall time of ``repeats`` calls, seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


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
    return best_of(hvp3, samples) / 3


def measure(n):
    """One row of the table for an N-atom liquid (dict)."""
    pot, x = liquid(n)
    rng = np.random.default_rng(1)
    frames = [x + rng.normal(scale=1e-3, size=x.shape).astype(np.float32) for _ in range(4)]
    pot.forces(x), pot.force_jacobian(x)  # compile every shape once
    force = min(_timed(pot.forces, f) for f in frames[:2])
    jac = min(_timed(pot.force_jacobian, f) for f in frames[2:])
    jacobian = pot.force_jacobian(x)
    row = {"n": n, "pairs": int(len(pot.terms[0].candidate_pairs(pot.frame(x)))), "blocks": jacobian.nnz_blocks,
           "force_s": force, "jacobian_s": jac,
           "fd_s": 3 * n * fd_column_seconds(pot, x),
           "hvp_s": 3 * n * hvp_seconds(pot, x)}
    if n <= DENSE_MAX:
        row["dense_s"] = best_of(lambda: pot.force_jacobian(x, strategy="dense"), 1)
    row["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    return row


def fd_column_seconds(pot, x, samples=2, step=1e-3):
    """Seconds per finite-difference column (two force evaluations at x +- step e_c), sampled."""
    def column(c):
        xp, xm = x.copy(), x.copy()
        xp.flat[c] += step
        xm.flat[c] -= step
        return (pot.forces(xp) - pot.forces(xm)) / (2 * step)
    t = time.perf_counter()
    for c in range(samples):
        column(c)
    return (time.perf_counter() - t) / samples


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
        dense = f"{r['dense_s'] / f:9.1f}" if "dense_s" in r else f"{'-':>9}"
        print(f"{r['n']:>7} {r['pairs']:>9} {r['blocks']:>10} {f:>10.3f} {r['jacobian_s']:>13.3f} {r['jacobian_s'] / f:>9.2f} "
              f"{r['fd_s'] / f:>9.0f} {r['hvp_s'] / f:>9.0f} {dense} {r['peak_gb']:>14.2f}")


def measure_systems():
    """Rows for the catalogue's MindSPONGE systems: Jacobian time over force time (float32)."""
    import mdjac

    print(f"{'system':>18} {'N':>6} {'force (s)':>10} {'Jacobian (s)':>13} {'Jacobian/force':>15}")
    for name in ("alanine-dipeptide", "water-box"):
        system = mdjac.load_system(name)
        x = system.positions.astype(np.float32)
        pot = system.potential
        pot.forces(x), pot.force_jacobian(x)
        f = best_of(lambda: pot.forces(x), 3)
        j = best_of(lambda: pot.force_jacobian(x), 3)
        print(f"{name:>18} {len(x):>6} {f:>10.4f} {j:>13.4f} {j / f:>15.2f}")


def main(argv):
    if argv[:1] == ["--one"]:
        print(json.dumps(measure(int(argv[1]))))
        return
    if argv[:1] == ["--systems"]:
        measure_systems()
        return
    sizes = [int(a) for a in argv] or [100, 300, 3000, 30000]
    rows = []
    for n in sizes:  # one process per N, so that peak memory is that N's own
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode != 0 or not lines:
            why = "killed (out of memory?)" if out.returncode in (-9, 137) else \
                next((ln for ln in reversed(out.stderr.splitlines()) if "Error" in ln), f"exit code {out.returncode}")
            print(f"N={n} failed: {why}")
            continue
        rows.append(json.loads(lines[-1]))
    print_table(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
