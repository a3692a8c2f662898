"""Dense eigh, Lanczos or LOBPCG for the lowest normal modes: which is the faster, and by how many matvecs.

``mdjac.normal_modes(..., k=K)`` solves by dense ``eigh`` up to ``mdjac.analysis.modes.DENSE_MAX_DOF``
degrees of freedom and above by ARPACK's Lanczos (``method='sparse'``) on the Jacobian's operator;
``method='lobpcg'`` is LOBPCG preconditioned with the atoms' 3x3 diagonal blocks instead. This script
measures them on frames that are not minima (imaginary modes at the low end, as every MD frame has): TIP3P
water cubes from ``Modeller.addSolvent`` (amber99sb/tip3p as in ``bench_pme.py``, flexible; cutoff 0.9 nm,
or 0.45 times the edge in the small cubes), with PME (the long-range operator: sparse blocks plus the mesh)
and with OpenMM's reaction field (sparse blocks only), at the positions Modeller gives, in float64; and
``dhfr``, OpenMM's DHFR benchmark (``bench_pme.py``'s, PME at 0.9 nm, float32, as its DHFR row), without dense
eigh. For each it prints the seconds of ``normal_modes(J, masses, project='periodic', k=K, method=...)`` for
each solver with its matvecs (a block of m vectors counts m), the largest difference of the eigenvalues from
the reference's (dense eigh, else Lanczos) relative to the largest |eigenvalue| found, the largest residual
|D v - lambda v| of each iterative solver's modes relative to |lambda| and to the largest |eigenvalue| of D (the top of
its spectrum, by Lanczos to 1e-3), the lowest wavenumber, one product of the modes' operator D with a vector
(best of 3, to scale the times by the load), and the memory each solver is estimated to need (``solver_bytes``).

Run: .venv/bin/python benchmarks/bench_modes_solvers.py [-k K] [EDGE_NM | dhfr ...]   (default 1.2 1.5 1.9 2.4)
"""
import os
import sys
import time

import numpy as np

import bench_pme
from common import best

SOLVERS = ("dense", "sparse", "lobpcg")


def build(spec):
    """(name, nonbonded, ForceJacobian, masses, positions) for 'dhfr' or (edge nm, nonbonded)."""
    import mdjac.openmm

    if spec == "dhfr":
        bench_pme.CUTOFF_NM = 0.9
        system, x, masses = bench_pme.build_system("dhfr", "PME")
        return "dhfr", "PME", mdjac.openmm.adapt(system).force_jacobian(x.astype(np.float32)), masses, x
    edge, nonbonded = spec
    name = f"water-{edge:g}"
    bench_pme.WATER_EDGE_NM[name] = edge
    bench_pme.CUTOFF_NM = min(0.9, round(0.45 * edge, 2))     # at most half the edge (minimum image)
    system, x, masses = bench_pme.build_system(name, nonbonded)
    return name, nonbonded, mdjac.openmm.adapt(system).force_jacobian(x), masses, x


def measure(spec, k):
    import scipy.sparse.linalg as spla

    import mdjac
    from mdjac.analysis import modes

    name, nonbonded, J, masses, x = build(spec)
    dim = 3 * len(x)
    row = dict(system=name, nonbonded=nonbonded, atoms=len(x), dof=dim, dtype=str(J.dtype),
               load_before=os.getloadavg()[0])
    d = modes.mass_weighted_operator(J, masses)
    row["matvec_s"], _ = best(lambda: d @ np.random.default_rng(1).standard_normal(dim), 3)
    found = {}
    for method in SOLVERS if name != "dhfr" else SOLVERS[1:]:
        t = time.perf_counter()
        found[method] = mdjac.normal_modes(J, masses, positions=x, project="periodic", k=k, method=method)
        row[method + "_s"] = time.perf_counter() - t
        if method != "dense":
            row[method + "_matvecs"] = int(found[method].solver.split("(")[1].split()[0])
            row[method + "_solver"] = found[method].solver
    reference = found["dense" if "dense" in found else "sparse"].eigenvalues
    scale = np.abs(reference).max()
    row["rel_diff"] = {m: float(np.abs(f.eigenvalues - reference).max() / scale) for m, f in found.items()}
    top = abs(float(spla.eigsh(d, k=1, which="LM", tol=1e-3, return_eigenvectors=False)[0]))
    for method in ("sparse", "lobpcg"):
        v = found[method].vectors.reshape(k, -1).T
        residuals = np.linalg.norm(d @ v - v * found[method].eigenvalues, axis=0)
        row[method + "_residual_rel_lambda"] = float((residuals / np.abs(found[method].eigenvalues)).max())
        row[method + "_residual_rel_top"] = float(residuals.max() / top)
    row["lowest_cm"] = [round(float(f), 2) for f in found["sparse"].frequencies[:3]]
    lr = J.long_range is not None
    row["dense_mb"] = modes.solver_bytes("dense", dim, k, J.nnz_blocks, lr) / 1e6
    row["lanczos_mb"] = modes.solver_bytes("lanczos", dim, max(2 * k + 1, modes.LANCZOS_MIN_NCV), J.nnz_blocks, lr) / 1e6
    row["lobpcg_mb"] = modes.solver_bytes("lobpcg", dim, k + modes.LOBPCG_EXTRA, J.nnz_blocks, lr) / 1e6
    row["load_after"] = os.getloadavg()[0]
    return row


def main(argv):
    k = 10
    if argv[:1] == ["-k"]:
        k, argv = int(argv[1]), argv[2:]
    specs = []
    for a in argv or ["1.2", "1.5", "1.9", "2.4"]:
        specs += ["dhfr"] if a == "dhfr" else [(float(a), nonbonded) for nonbonded in ("PME", "CutoffPeriodic")]
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'system':>10} {'nonbonded':>15} {'atoms':>6} {'dof':>6} {'dtype':>7} {'matvec':>7} {'dense':>8} "
          f"{'Lanczos':>16} {'LOBPCG':>16} {'rel diff':>9} {'res/|lam|':>17} {'res/top':>17} {'lowest cm^-1':>13} "
          f"{'dense MB':>9} {'Lanczos MB':>11} {'LOBPCG MB':>10} {'load':>10}")
    for spec in specs:
        r = measure(spec, k)
        print(f"row: {r}", file=sys.stderr, flush=True)
        dense = f"{r['dense_s']:>7.2f}s" if "dense_s" in r else f"{'-':>8}"
        cells = [f"{r[m + '_s']:.2f}s ({r[m + '_matvecs']} mv)" for m in ("sparse", "lobpcg")]
        print(f"{r['system']:>10} {r['nonbonded']:>15} {r['atoms']:>6} {r['dof']:>6} {r['dtype']:>7} "
              f"{r['matvec_s']:>6.3f}s {dense} {cells[0]:>16} {cells[1]:>16} {max(r['rel_diff'].values()):>9.1e} "
              f"{r['sparse_residual_rel_lambda']:>8.1e} {r['lobpcg_residual_rel_lambda']:>8.1e} "
              f"{r['sparse_residual_rel_top']:>8.1e} {r['lobpcg_residual_rel_top']:>8.1e} {r['lowest_cm'][0]:>13.2f} "
              f"{r['dense_mb']:>9.0f} {r['lanczos_mb']:>11.0f} {r['lobpcg_mb']:>10.0f} "
              f"{r['load_before']:>4.1f}-{r['load_after']:<4.1f}", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"k = {k}; seconds of normal_modes(J, masses, project='periodic', k={k}, method=...): dense eigh, Lanczos "
          "(method='sparse', ARPACK, the default), LOBPCG (method='lobpcg'), with their matvecs (mv); matvec: one "
          "product of the modes' operator D (best of 3); rel diff: max |lambda - lambda_ref| / max |lambda| over the "
          "solvers, against dense eigh (Lanczos for dhfr); res: max over the modes of |D v - lambda v|, over |lambda| "
          "and over D's largest |eigenvalue|, Lanczos's then LOBPCG's; load: the 1-minute load average before and after the row")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1:])
