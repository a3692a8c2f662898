"""Dense eigh or Lanczos for the lowest normal modes: where one becomes faster than the other.

``mdjac.normal_modes(..., k=K)`` solves by dense ``eigh`` up to ``mdjac.analysis.modes.DENSE_MAX_DOF``
degrees of freedom and by Lanczos on the Jacobian's operator above. This script measures both on
frames that are not minima (imaginary modes at the low end, as every MD frame has): TIP3P water
cubes from ``Modeller.addSolvent`` (amber99sb/tip3p as in ``bench_pme.py``, flexible; cutoff 0.9 nm,
or 0.45 times the edge in the small cubes), with PME
(the long-range operator: sparse blocks plus the mesh) and with OpenMM's reaction field (sparse
blocks only), at the positions Modeller gives, in float64. For each it prints the seconds of
``normal_modes(J, masses, project='periodic', k=K, method='dense')`` and ``method='sparse'`` (with
its matvecs), the largest difference of their eigenvalues relative to the largest |eigenvalue|
found, the lowest wavenumber, and the memory each is estimated to need (``solver_bytes``).

Run: .venv/bin/python benchmarks/bench_modes_solvers.py [-k K] [EDGE_NM ...]   (default 1.2 1.5 1.9 2.4)
"""
import os
import sys
import time

import numpy as np

import bench_pme


def measure(edge, nonbonded, k):
    import mdjac
    import mdjac.openmm
    from mdjac.analysis import modes

    name = f"water-{edge:g}"
    bench_pme.WATER_EDGE_NM[name] = edge
    bench_pme.CUTOFF_NM = min(0.9, round(0.45 * edge, 2))     # at most half the edge (minimum image)
    system, x, masses = bench_pme.build_system(name, nonbonded)
    J = mdjac.openmm.adapt(system).force_jacobian(x)
    dim = 3 * len(x)
    row = dict(system=name, nonbonded=nonbonded, atoms=len(x), dof=dim, cutoff=bench_pme.CUTOFF_NM)
    found = {}
    for method in ("dense", "sparse"):
        t = time.perf_counter()
        found[method] = mdjac.normal_modes(J, masses, positions=x, project="periodic", k=k, method=method)
        row[method + "_s"] = time.perf_counter() - t
    row["solver"] = found["sparse"].solver
    row["rel_diff"] = float(np.abs(found["dense"].eigenvalues - found["sparse"].eigenvalues).max()
                            / np.abs(found["dense"].eigenvalues).max())
    row["lowest_cm"] = float(found["dense"].frequencies[0])
    lr = J.long_range is not None
    row["dense_mb"] = modes.solver_bytes("dense", dim, k, J.nnz_blocks, lr) / 1e6
    row["lanczos_mb"] = modes.solver_bytes("lanczos", dim, max(2 * k + 1, modes.LANCZOS_MIN_NCV), J.nnz_blocks, lr) / 1e6
    return row


def main(argv):
    k = 10
    if argv[:1] == ["-k"]:
        k, argv = int(argv[1]), argv[2:]
    edges = [float(a) for a in argv] or [1.2, 1.5, 1.9, 2.4]
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'system':>10} {'nonbonded':>16} {'atoms':>6} {'dof':>6} {'dense':>8} {'Lanczos':>8} {'matvecs':>8} "
          f"{'rel diff':>9} {'lowest cm^-1':>13} {'dense MB':>9} {'Lanczos MB':>11}")
    for edge in edges:
        for nonbonded in ("PME", "CutoffPeriodic"):
            r = measure(edge, nonbonded, k)
            matvecs = r["solver"].split("(")[1].split()[0]
            print(f"{r['system']:>10} {r['nonbonded']:>16} {r['atoms']:>6} {r['dof']:>6} {r['dense_s']:>7.2f}s "
                  f"{r['sparse_s']:>7.2f}s {matvecs:>8} {r['rel_diff']:>9.1e} {r['lowest_cm']:>13.2f} "
                  f"{r['dense_mb']:>9.0f} {r['lanczos_mb']:>11.0f}", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"k = {k}; seconds of normal_modes(J, masses, project='periodic', k={k}, method=...), float64 Jacobians "
          "at Modeller's positions (not minima); rel diff: max |lambda_dense - lambda_Lanczos| / max |lambda|")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1:])
