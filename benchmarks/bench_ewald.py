"""Memory and time of the structured (sparse + low-rank) Ewald Jacobian, against a dense Hessian.

Systems: flexible SPC/E water (Ewald electrostatics with OpenMM's parameters at tolerance 5e-4
and a 1.0 nm cutoff, intramolecular pairs excluded; Lennard-Jones between oxygens within the
cutoff; harmonic O-H bonds and H-O-H angles), float64:

* ``water-box``: the catalogue's 1,000 waters (3,000 atoms, 3.106 nm box);
* ``water-30k``: 10,000 waters (30,000 atoms) on a jittered lattice at the same density
  (6.692 nm box), random orientations.

Per system, in a process of its own (peak memory is that system's own):

* Jacobian: ``Potential.force_jacobian`` (short-range blocks by replication, the reciprocal
  block diagonal from AD phase derivatives; the low-rank part is held as k vectors, weights,
  charges, positions);
* diagonal(): the per-atom stiffness with the long-range part; its first call builds the AD
  scalar factors c', s' (2 K N numbers) and keeps them (up to ``KEEP_FACTOR_BYTES``);
* matvec: one J v with the long-range part (factors kept);
* modes: the 10 lowest normal modes (translations projected out) with ``mdjac.normal_modes``
  (method 'sparse'), and the number of matvecs it used (a block of m vectors counts m);
* memory: the structured Jacobian's bytes (blocks; rebuild data; kept factors), the process's
  peak resident set, and the 8 (3N)^2 bytes that a dense float64 Hessian would need.

Run: .venv/bin/python benchmarks/bench_ewald.py [--modes-max-atoms N] [water-box] [water-30k:float32] ...
(a system name, optionally with ":float32" for a float32 Jacobian; float64 otherwise; the modes
are skipped for systems above N atoms)
"""
import json
import os
import sys
import time

import numpy as np

from common import run_child, with_modes

SPCE_CHARGES = (-0.8476, 0.4238, 0.4238)
MASSES = (15.9994, 1.008, 1.008)
CUTOFF, TOLERANCE = 1.0, 5e-4
#: the AD factors are kept up to this size whatever the memory free at the time (default: half of it).
KEEP_FACTOR_BYTES = 10 * 1024 ** 3


def water_system(name):
    """(positions (N, 3) nm, box (3,) nm) of a benchmark system."""
    if name == "water-box":
        import mdjac.systems

        data = np.load(os.path.join(os.path.dirname(mdjac.systems.__file__), "water-box.npz"))
        return np.asarray(data["positions"], np.float64), np.asarray(data["box"], np.float64)
    n_waters = int(name.split("-")[1].rstrip("k")) * 1000 // 3
    edge = 3.10609402 * (n_waters / 1000) ** (1 / 3)
    rng = np.random.default_rng(0)
    m = int(np.ceil(n_waters ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3)
    grid = grid[rng.choice(len(grid), n_waters, replace=False)]
    oxygen = (grid + 0.5) * edge / m + rng.normal(scale=0.01, size=grid.shape)
    rot = np.linalg.qr(rng.normal(size=(n_waters, 3, 3)))[0]
    x = np.stack([oxygen, oxygen + rot @ np.array([0.1, 0.0, 0.0]), oxygen + rot @ np.array([-0.0333, 0.0943, 0.0])], 1)
    return x.reshape(-1, 3), np.full(3, edge)


def measure(spec, modes_max_atoms):
    import mdjac
    from mdjac import terms
    from mdjac.longrange import ewald

    name, _, dtype = spec.partition(":")
    x, box = water_system(name)
    n_waters = len(x) // 3
    charges = np.tile(SPCE_CHARGES, n_waters)
    exclusions = np.array([[3 * w + a, 3 * w + b] for w in range(n_waters) for a, b in ((0, 1), (0, 2), (1, 2))])
    oxygen = np.arange(n_waters) * 3
    water_terms = [terms.LennardJones([0.316557, 0.1], [0.650194, 0.0], np.tile([0, 1, 1], n_waters), cutoff=CUTOFF,
                                      exclusions=exclusions),
                   terms.HarmonicBond(np.concatenate([np.stack([oxygen, oxygen + 1], 1), np.stack([oxygen, oxygen + 2], 1)]),
                                      k=345000.0, r0=0.1),
                   terms.HarmonicAngle(np.stack([oxygen + 1, oxygen, oxygen + 2], 1), k=383.0, theta0=np.radians(109.47))]
    pot = mdjac.Potential(water_terms + ewald.ewald_terms(charges, CUTOFF, box, exclusions=exclusions, tolerance=TOLERANCE),
                          box=box)
    rec = pot.long_range_terms[0]
    row = dict(system=name, dtype=dtype or "float64", atoms=len(x), K=len(rec.numbers), kmax=int(rec.kmax[0]))
    x = x.astype(row["dtype"])
    pot.energy_and_forces(x)                       # compile the force path
    t = time.perf_counter()
    pot.energy_and_forces(x)
    row["force_s"] = time.perf_counter() - t
    t = time.perf_counter()
    J = pot.force_jacobian(x)
    row["jacobian_s"] = time.perf_counter() - t
    J.long_range.cache_bytes = KEEP_FACTOR_BYTES
    t = time.perf_counter()
    J.diagonal()
    row["diagonal_s"] = time.perf_counter() - t
    v = np.random.default_rng(1).normal(size=(len(x), 3))
    t = time.perf_counter()
    J.matvec(v)
    row["matvec_s"] = time.perf_counter() - t
    lr = J.long_range
    row["sparse_mb"] = (J.blocks.nbytes + J.rows.nbytes + J.cols.nbytes) / 1e6
    row["rebuild_kb"] = lr.nbytes / 1e3          # charges, kmax, alpha, box, constant (positions are the frame's)
    row["factors_mb"] = lr.cached_bytes / 1e6
    row["dense_gb"] = 8.0 * (3 * len(x)) ** 2 / 1e9

    def progress(matvecs, seconds):
        print(f"{name}: {matvecs} matvecs in {seconds:.0f} s", file=sys.stderr, flush=True)
    return with_modes(spec, row, J, np.tile(MASSES, n_waters), x, modes_max_atoms, progress=progress)


def print_table(rows):
    print(f"{'system':>10} {'dtype':>7} {'atoms':>6} {'K':>6} {'force':>7} {'Jacobian':>9} {'diagonal':>9} {'matvec':>8} "
          f"{'10 modes':>18} {'sparse':>8} {'rebuild':>8} {'factors':>8} {'peak RSS':>9} {'dense H':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['system']:>10} failed: {r['error']}")
            continue
        modes = f"{r['modes_s']:.0f} s ({r['modes_matvecs']} mv)" if "modes_s" in r else "not run"
        print(f"{r['system']:>10} {r['dtype']:>7} {r['atoms']:>6} {r['K']:>6} {r['force_s']:>6.1f}s {r['jacobian_s']:>8.1f}s "
              f"{r['diagonal_s']:>8.1f}s {r['matvec_s']:>7.2f}s {modes:>18} {r['sparse_mb']:>6.0f}MB "
              f"{r['rebuild_kb']:>6.0f}kB {r['factors_mb']:>6.0f}MB {r['peak_gb']:>7.1f}GB {r['dense_gb']:>7.1f}GB")
    print("force: one energy_and_forces; Jacobian: force_jacobian (short-range blocks + reciprocal block diagonal, "
          "by AD); diagonal: with the low-rank part (first call: builds the AD factors c', s'); matvec: one J v; "
          "10 modes: normal_modes(k=10, method='sparse') (mv = matvecs); sparse: stored blocks; rebuild: what H5MD "
          "keeps besides positions (charges, kmax, alpha, box, constant); factors: kept c', s'; dense H: 8 (3N)^2 bytes.")
    for r in rows:
        if "lowest_cm" in r:
            print(f"{r['system']}: lowest wavenumbers (cm^-1) {r['lowest_cm']}")


def main(argv):
    if argv[:1] == ["--child"]:
        print(json.dumps(measure(argv[1], int(argv[2]))))
        return
    modes_max_atoms = 10 ** 9
    if argv[:1] == ["--modes-max-atoms"]:
        modes_max_atoms, argv = int(argv[1]), argv[2:]
    rows = []
    for name in argv or ["water-box", "water-30k"]:
        row, code, _ = run_child(__file__, ["--child", name, str(modes_max_atoms)], env={"GLOG_v": "3"})
        rows.append(row or dict(system=name, error=f"exit {code} (its stderr is above)"))
    print_table(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
