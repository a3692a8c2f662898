"""mdjac against what a user would pick instead: JAX and matscipy, side by side in one run.

System: a one-type Lennard-Jones liquid at 100 atoms per nm^3 (a jittered lattice), sigma 0.2 nm,
epsilon 0.6 kJ/mol, truncated (not shifted) at 0.7 nm, periodic cubic box. The positions are
made once per N, written to an .npz file, and every program reads exactly those.

Each program runs in its own process, in its own environment:

* ``mdjac``: ``Potential.force_jacobian`` (float32, float64) and ``Potential.forces``, in the
  project's ``.venv`` (numpy 1.23, MindSpore). The Jacobian's time includes a new neighbour search
  in every call (the potential's Verlet list is emptied first); the forces' warm calls reuse the
  Verlet list (the positions do not move), as the JAX force is given its pairs;
* ``jax``: the pair list from scipy's cKDTree, then ``jax.jit(jax.vmap(jax.hessian(pair_energy)))``
  over the pairs and a scatter-add of the diagonal blocks, returned as numpy (rows, cols, blocks:
  both triangles and every diagonal block, unsorted); its pair search is included in the time;
* ``mdjac kept``: the Jacobian with the potential's neighbour list kept from the previous call
  (the state the forces' warm calls are timed in), for the ratio Jacobian / force evaluation;
* ``jax force``: jitted ``jax.grad`` of the summed pair energy, on the same pairs, given (the pair
  search is not timed);
* ``jax dense`` (N = 300 only): ``jax.hessian`` of the total energy of all positions, dense;
* ``matscipy``: the analytic Hessian of ``LennardJonesCut`` by ``get_hessian(atoms, "sparse")``
  (float64; hand-derived formulas, matscipy's own neighbour list included).

JAX and matscipy need numpy 2: they live in ``.venv-peers`` (``make peers-env``). Arrays go in
and out by .npz files. For each N, every program runs in a fresh process per round, the rounds
interleave the programs (so that all see the same load), and each process times one cold call
(compilation included) and then ``CALLS`` warm calls. Reported: min and median of the warm calls
over all rounds, compile time apart (cold call minus the fastest warm call), the process's peak
resident memory, and agreement with mdjac's float64 result: max |dJ| / max |J| over the matrix,
the worst block's |dJ_b| / |J_b| (Frobenius norms, over the blocks both hold with |J_b| > 1e-6 max |J|),
and how many blocks only one of the two holds (pairs at the cutoff that float32 positions put on the
other side: the liquid is truncated without a shift, so such a pair's block is not small).

With ``--baseline DIR`` (a checkout of an earlier mdjac, e.g. ``git worktree add DIR COMMIT``), the
rows "base ..." run that mdjac in the same rounds, so a change is measured before and after in
one interleaved run. Given again, the next checkouts' rows are "base2 ...", "base3 ...".

Run: .venv/bin/python benchmarks/bench_peers.py [--rounds 5] [--calls 2] [--baseline DIR ...] [--only T,T,...] [N ...]
     (default N: 300 3000 30000)
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench_jacobian import jittered_lattice

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_PYTHON = os.path.join(HERE, "..", ".venv-peers", "bin", "python")
DENSITY, CUTOFF, SIGMA, EPSILON = 100.0, 0.7, 0.2, 0.6
#: (task, environment, dtype, what it computes); "dense" only at N <= DENSE_MAX.
TASKS = [
    ("mdjac f32", "project", "float32", "jacobian"),
    ("mdjac f64", "project", "float64", "jacobian"),
    ("jax f32", "peers", "float32", "jacobian"),
    ("jax f64", "peers", "float64", "jacobian"),
    ("matscipy f64", "peers", "float64", "jacobian"),
    ("jax dense f64", "peers", "float64", "dense"),
    ("mdjac force f32", "project", "float32", "forces"),
    ("jax force f32", "peers", "float32", "forces"),
    ("mdjac force f64", "project", "float64", "forces"),
    ("jax force f64", "peers", "float64", "forces"),
    ("mdjac kept f32", "project", "float32", "jacobian kept"),
]
DENSE_MAX = 300
#: With --baseline: the earlier mdjac's rows, run from that directory (the k-th's named by baseline_label).
BASELINE_TASKS = [
    ("base f32", "baseline", "float32", "jacobian"),
    ("base f64", "baseline", "float64", "jacobian"),
    ("base force f32", "baseline", "float32", "forces"),
]


def liquid_positions(n, seed=0):
    """(positions (n, 3) float64 nm, box edge nm) of a jittered lattice at DENSITY atoms/nm^3, in the box."""
    x, edge = jittered_lattice(n, DENSITY, seed)
    return x % edge, edge


# ----------------------------------------------------------------------------- the programs
def mdjac_program(x, box, dtype, what):
    """The mdjac call: a function of no arguments returning the result as a dict of arrays."""
    import mdjac
    from mdjac import terms

    n = len(x)
    pot = mdjac.Potential([terms.LennardJones([SIGMA], [EPSILON], np.zeros(n, int), cutoff=CUTOFF)], box=[box] * 3)
    xd = x.astype(dtype)
    if what == "forces":
        return lambda: {"forces": pot.forces(xd)}

    def jacobian():
        if what != "jacobian kept":   # kept: the neighbour list of the previous call, as the forces' warm calls
            getattr(pot, "_verlet", {}).clear()  # a new neighbour search in every call, like the peers'
        J = pot.force_jacobian(xd)
        return {"rows": J.rows, "cols": J.cols, "blocks": J.blocks}
    return jacobian


def jax_program(x, box, dtype, what):
    """The JAX programs (a skilled user's): see the module docstring."""
    import jax
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from scipy.spatial import cKDTree

    n = len(x)
    xd = x.astype(dtype)
    L = jnp.asarray([box] * 3, dtype=dtype)

    def pairs_of(positions):
        tree = cKDTree(positions % box, boxsize=box)
        p = tree.query_pairs(CUTOFF, output_type="ndarray")
        return np.ascontiguousarray(p[:, 0]), np.ascontiguousarray(p[:, 1])

    def pair_energy(y):  # y (2, 3): the two atoms' positions
        d = y[1] - y[0]
        d = d - L * jnp.round(d / L)
        s2 = SIGMA ** 2 / jnp.dot(d, d)
        s6 = s2 * s2 * s2
        return 4 * EPSILON * (s6 * s6 - s6)

    @jax.jit
    def blocks_of(positions, i, j):
        H = jax.vmap(jax.hessian(pair_energy))(jnp.stack([positions[i], positions[j]], axis=1))  # (P, 2, 3, 2, 3)
        diag = jnp.zeros((n, 3, 3), positions.dtype).at[i].add(-H[:, 0, :, 0, :]).at[j].add(-H[:, 1, :, 1, :])
        return -H[:, 0, :, 1, :], diag

    def total_energy(positions, i, j):
        return jax.vmap(pair_energy)(jnp.stack([positions[i], positions[j]], axis=1)).sum()

    if what == "forces":
        i, j = pairs_of(x)
        force = jax.jit(lambda p, i, j: -jax.grad(total_energy)(p, i, j))
        xj, ij, jj = jnp.asarray(xd), jnp.asarray(i), jnp.asarray(j)
        return lambda: {"forces": np.asarray(force(xj, ij, jj))}
    if what == "dense":
        i, j = pairs_of(x)
        hessian = jax.jit(jax.hessian(total_energy))

        def dense():
            return {"dense": -np.asarray(hessian(jnp.asarray(xd), i, j))}
        return dense

    def jacobian():
        i, j = pairs_of(x)
        off, diag = blocks_of(jnp.asarray(xd), i, j)
        off, diag = np.asarray(off), np.asarray(diag)
        ar = np.arange(n)
        return {"rows": np.concatenate([i, j, ar]), "cols": np.concatenate([j, i, ar]),
                "blocks": np.concatenate([off, off.transpose(0, 2, 1), diag])}
    return jacobian


def matscipy_program(x, box, dtype, what):
    """matscipy's analytic sparse Hessian of LennardJonesCut (float64)."""
    import ase
    from matscipy.calculators.pair_potential import LennardJonesCut, PairPotential

    atoms = ase.Atoms(numbers=np.ones(len(x), int), positions=x, cell=[box] * 3, pbc=True)
    calc = PairPotential({(1, 1): LennardJonesCut(epsilon=EPSILON, sigma=SIGMA, cutoff=CUTOFF)})

    def jacobian():
        H = calc.get_hessian(atoms, "sparse")
        H.sort_indices()
        return {"bsr_data": -H.data, "bsr_indices": H.indices, "bsr_indptr": H.indptr}
    return jacobian


PROGRAMS = {"mdjac": mdjac_program, "jax": jax_program, "matscipy": matscipy_program}


def baseline_label(k):
    """The row prefix of the k-th ``--baseline`` (from 0): base, base2, base3, ..."""
    return "base" if k == 0 else f"base{k + 1}"


def task_spec(task):
    """(task, environment, dtype, what) of a task name; a baseline's rows as BASELINE_TASKS, any prefix."""
    spec = next((t for t in TASKS if t[0] == task), None)
    if spec is not None:
        return spec
    rest = task.split(" ", 1)[1]
    return (task,) + next(t for t in BASELINE_TASKS if t[0] == "base " + rest)[1:]


def worker(task, positions_file, output_file, calls):
    """Run one task in this process: a cold call, ``calls`` warm calls; print a JSON line."""
    name, environment, dtype, what = task_spec(task)
    data = np.load(positions_file)
    program = PROGRAMS["mdjac" if environment == "baseline" else name.split()[0]](data["x"], float(data["box"]), dtype, what)
    t = time.perf_counter()
    result = program()
    cold = time.perf_counter() - t
    warm = []
    for _ in range(calls):
        t = time.perf_counter()
        result = program()
        warm.append(time.perf_counter() - t)
    if output_file:
        np.savez(output_file, **result)
    print(json.dumps({"cold": cold, "warm": warm, "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2}))


# ----------------------------------------------------------------------------- agreement
def _bsr(result, n):
    """A result file's Jacobian as a (3n, 3n) scipy.sparse.csr_matrix."""
    import scipy.sparse

    if "dense" in result:
        return scipy.sparse.csr_matrix(result["dense"].reshape(3 * n, 3 * n).astype(np.float64))
    if "bsr_data" in result:
        return scipy.sparse.bsr_matrix((result["bsr_data"], result["bsr_indices"], result["bsr_indptr"]),
                                       shape=(3 * n, 3 * n)).tocsr().astype(np.float64)
    rows, cols, blocks = result["rows"], result["cols"], result["blocks"].astype(np.float64)
    r = (3 * rows[:, None, None] + np.arange(3)[None, :, None]).repeat(3, axis=2)
    c = (3 * cols[:, None, None] + np.arange(3)[None, None, :]).repeat(3, axis=1)
    return scipy.sparse.csr_matrix((blocks.ravel(), (r.ravel(), c.ravel())), shape=(3 * n, 3 * n))


def agreement(result, reference, n):
    """(max |d| / max |ref|, worst block |d_b| / |ref_b| on the blocks both hold, blocks only one holds) of a
    result against the reference result."""
    if "forces" in result:
        d = result["forces"].astype(np.float64) - reference["forces"]
        ref = reference["forces"]
        norms = np.linalg.norm(ref, axis=1)
        keep = norms > 1e-6 * norms.max()
        return np.abs(d).max() / np.abs(ref).max(), (np.linalg.norm(d, axis=1)[keep] / norms[keep]).max(), 0
    A, B = (_bsr(r, n).tobsr(blocksize=(3, 3)) for r in (result, reference))
    for M in (A, B):
        M.sort_indices()

    def keyed(M):
        """row * n + column of each stored block of M (BSR, 3x3 blocks), in M's order."""
        rows = np.repeat(np.arange(n), np.diff(M.indptr))
        return rows * n + M.indices

    keys_a, keys_b = keyed(A), keyed(B)
    common, at_a, at_b = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
    d = A.data[at_a].astype(np.float64) - B.data[at_b]
    ref_norm = np.sqrt((B.data[at_b] ** 2).sum(axis=(1, 2)))
    big = ref_norm > 1e-6 * np.sqrt((B.data ** 2).sum(axis=(1, 2))).max()
    worst = np.max(np.sqrt((d[big] ** 2).sum(axis=(1, 2))) / ref_norm[big]) if big.any() else 0.0
    D = (A - B).tobsr(blocksize=(3, 3))
    return abs(D.data).max() / abs(B.data).max() if D.nnz else 0.0, worst, len(keys_a) + len(keys_b) - 2 * len(common)


# ----------------------------------------------------------------------------- the driver
def run_task(task, positions_file, output_file, calls, baselines=()):
    env_name = task_spec(task)[1]
    python = PEERS_PYTHON if env_name == "peers" else sys.executable
    env = dict(os.environ, GLOG_v="3")
    if env_name in ("project", "baseline"):
        root = os.path.join(HERE, "..")
        if env_name == "baseline":
            root = baselines[[baseline_label(k) for k in range(len(baselines))].index(task.split()[0])]
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    else:
        env.pop("PYTHONPATH", None)
        env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([python, __file__, "--worker", task, positions_file, output_file or "", str(calls)],
                         capture_output=True, text=True, env=env)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
    return {"error": tail[:100]}


def main(argv):
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2], argv[3] or None, int(argv[4]))
        return
    rounds, calls, ns, baselines, only = 5, 2, [], [], None
    it = iter(argv)
    for a in it:
        if a == "--rounds":
            rounds = int(next(it))
        elif a == "--calls":
            calls = int(next(it))
        elif a == "--baseline":
            baselines.append(os.path.abspath(next(it)))
        elif a == "--only":
            only = next(it).split(",")
        else:
            ns.append(int(a))
    ns = ns or [300, 3000, 30000]
    peers = [t[0] for t in TASKS if t[1] == "peers" and (only is None or t[0] in only)]
    if peers and not os.path.exists(PEERS_PYTHON):
        sys.exit(f"{PEERS_PYTHON} is missing (for {', '.join(peers)}): run `make peers-env` first, or leave them out (--only)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns:
            x, box = liquid_positions(n)
            positions_file = os.path.join(tmp, f"positions_{n}.npz")
            np.savez(positions_file, x=x, box=box)
            based = [(baseline_label(k) + " " + t[0].split(" ", 1)[1],) + t[1:] for k in range(len(baselines)) for t in BASELINE_TASKS]
            tasks = [t[0] for t in TASKS + based if t[3] != "dense" or n <= DENSE_MAX]
            tasks = [t for t in tasks if only is None or t in only]
            seen = {t: {"warm": [], "cold": [], "rss": []} for t in tasks}
            for k in range(rounds):
                for task in tasks[k % len(tasks):] + tasks[:k % len(tasks)]:  # a different order each round
                    output = os.path.join(tmp, f"{task.replace(' ', '_')}_{n}.npz") if k == 0 else None
                    r = run_task(task, positions_file, output, calls, baselines)
                    if "error" in r:
                        seen[task]["error"] = r["error"]
                        continue
                    seen[task]["warm"] += r["warm"]
                    seen[task]["cold"].append(r["cold"])
                    seen[task]["rss"].append(r["rss_gb"])
            references = {}
            for kind, ref_task in (("jacobian", "mdjac f64"), ("forces", "mdjac force f64")):
                path = os.path.join(tmp, f"{ref_task.replace(' ', '_')}_{n}.npz")
                if os.path.exists(path):
                    references[kind] = dict(np.load(path))
            for task in tasks:
                s = seen[task]
                row = {"n": n, "task": task}
                if not s["warm"]:
                    row["error"] = s.get("error", "no result")
                    rows.append(row)
                    continue
                row.update(min=min(s["warm"]), median=float(np.median(s["warm"])),
                           compile=float(np.median(s["cold"])) - min(s["warm"]), rss=max(s["rss"]))
                what = task_spec(task)[3]
                ref = references.get("forces" if what == "forces" else "jacobian")
                path = os.path.join(tmp, f"{task.replace(' ', '_')}_{n}.npz")
                if ref is not None and os.path.exists(path):
                    row["max_rel"], row["worst_block"], row["unshared"] = agreement(dict(np.load(path)), ref, n)
                rows.append(row)
            print_table(rows, rounds, calls)  # after each N, so that a partial run still shows its table
    return rows


def print_table(rows, rounds, calls):
    print(f"\nLJ liquid, {DENSITY:.0f} atoms/nm^3, sigma {SIGMA} nm, eps {EPSILON} kJ/mol, truncated at {CUTOFF} nm, "
          f"periodic; {rounds} rounds x {calls} warm calls, each program in a fresh process per round")
    head = f"{'N':>6} {'program':>16} {'min (s)':>9} {'median (s)':>11} {'compile (s)':>12} {'peak RSS (GB)':>14} " \
           f"{'max|dJ|/max|J|':>15} {'worst block':>12} {'unshared':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['n']:>6} {r['task']:>16}  failed: {r['error']}")
            continue
        acc = (f"{r['max_rel']:>15.1e} {r['worst_block']:>12.1e} {r['unshared']:>9d}" if "max_rel" in r
               else f"{'-':>15} {'-':>12} {'-':>9}")
        print(f"{r['n']:>6} {r['task']:>16} {r['min']:>9.4f} {r['median']:>11.4f} {r['compile']:>12.2f} {r['rss']:>14.2f} {acc}")
    print("agreement against mdjac f64 (Jacobians) or mdjac force f64 (forces); compile = median cold call - fastest "
          "warm call; jax force: pairs given, not timed; everything else includes its pair search")
    by = {(r["n"], r["task"]): r for r in rows if "min" in r}
    for n in sorted({r["n"] for r in rows}):
        parts = []
        for a, b in (("mdjac f32", "jax f32"), ("mdjac f64", "jax f64"), ("mdjac f64", "matscipy f64"),
                     ("mdjac force f32", "jax force f32"), ("mdjac force f64", "jax force f64"),
                     ("mdjac f32", "base f32"), ("mdjac f64", "base f64"), ("mdjac f32", "mdjac force f32"),
                     ("mdjac kept f32", "mdjac force f32")):
            if (n, a) in by and (n, b) in by:
                parts.append(f"{a}/{b} {by[n, a]['median'] / by[n, b]['median']:.2f}")
        if parts:
            print(f"N={n} median ratios: " + ", ".join(parts))


if __name__ == "__main__":
    main(sys.argv[1:])
