"""The Verlet filter and the pair displacements of the tree on the path: one line, for A/B runs of two trees.

A DHFR-sized random box (23,558 atoms, 6.2231 nm, a Verlet list with a 0.1 nm skin at a 0.9 nm cutoff):
``neighbours.pairs_within`` over the candidates and ``assembly.pair_displacements`` of the kept pairs
(float32 out), least and median of 15 calls each, and the sum of r (the same in both trees if the
geometry is the same). Run it in each tree alternately, e.g.

    for k in 1 2 3; do PYTHONPATH=/work/wt/base .venv/bin/python benchmarks/probe_pair_loops.py base
                       PYTHONPATH=. .venv/bin/python benchmarks/probe_pair_loops.py now; done
"""
import sys
import time

import numpy as np

from mdjac import assembly, neighbours
from mdjac.space import box_vectors


def main():
    label = sys.argv[1] if len(sys.argv) > 1 else "this tree"
    rng = np.random.default_rng(0)
    n, edge = 23558, 6.2231
    x = rng.uniform(0, edge, (n, 3))
    box = np.array([edge, edge, edge])
    vectors = box_vectors(box)
    candidates = neighbours.neighbour_pairs(x, 1.0, box)
    pairs = neighbours.pairs_within(x, candidates, box, 0.9)
    d, r = np.empty((len(pairs), 3), np.float32), np.empty(len(pairs), np.float32)
    assembly.pair_displacements(x, pairs, vectors, d, r)
    filtering, geometry = [], []
    for _ in range(15):
        t = time.perf_counter()
        neighbours.pairs_within(x, candidates, box, 0.9)
        filtering.append(time.perf_counter() - t)
        t = time.perf_counter()
        assembly.pair_displacements(x, pairs, vectors, d, r)
        geometry.append(time.perf_counter() - t)
    print(f"{label}: {len(candidates)} candidates, {len(pairs)} pairs: filter least {min(filtering) * 1e3:.1f} "
          f"median {np.median(filtering) * 1e3:.1f} ms; displacements least {min(geometry) * 1e3:.1f} "
          f"median {np.median(geometry) * 1e3:.1f} ms; sum of r {float(r.astype(np.float64).sum()):.6f} nm")


if __name__ == "__main__":
    main()
