"""Why mdjac force f32 got slower with triclinic boxes: the pair geometry's two forms, side by side.

The LJ liquid of bench_peers.py (N atoms at 100 atoms/nm^3, cubic box, 0.7 nm cutoff) and its
pairs; the minimum-image displacements of every pair (mdjac.assembly.pair_displacements, float32
out), timed in one process, the forms interleaved, least of ``--repeat``:

* ``axis by axis``: what the package does for an untilted box: each component wrapped apart in a
  loop over the three (mdjac.neighbours.axis_image), which the compiler turns into vector
  instructions;
* ``order c, b, a``: the general triclinic form (mdjac.neighbours.minimum_image_components) on the
  same cubic box, as every box took it between the triclinic support and its fix: a prototype
  loop here;
* ``tilted box``: the package on a box with a tilt (b_x = 0.1 a_x; the pairs are not those of
  that box, only the cost counts);
* the Verlet filter (mdjac.neighbours.pairs_within) over the pairs within cutoff + 0.1 nm.

Run: .venv/bin/python benchmarks/probe_pair_geometry_forms.py [N] [--repeat R]
"""
import os
import sys

import numba
import numpy as np

from bench_peers import CUTOFF, liquid_positions
from common import interleaved_times
from mdjac.neighbours import minimum_image_components


@numba.njit(cache=True, nogil=True)
def chained_pair_displacements(x, pairs, vectors, d, r):
    """pair_displacements as it was with the general order for every box: one call of
    minimum_image_components per pair."""
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        d[p, 0], d[p, 1], d[p, 2] = minimum_image_components(x[j, 0] - x[i, 0], x[j, 1] - x[i, 1], x[j, 2] - x[i, 2], vectors)
        r[p] = np.sqrt(d[p, 0] * d[p, 0] + d[p, 1] * d[p, 1] + d[p, 2] * d[p, 2])


def main(argv):
    from mdjac import assembly
    from mdjac.neighbours import neighbour_pairs, pairs_within

    n = int(next((a for a in argv if a.isdigit() and argv[argv.index(a) - 1] != "--repeat"), 30000))
    repeat = int(argv[argv.index("--repeat") + 1]) if "--repeat" in argv else 10
    x, edge = liquid_positions(n)
    box = np.array([edge] * 3)
    vectors = np.diag(box)
    tilted = vectors.copy()
    tilted[1, 0] = 0.1 * edge
    pairs = neighbour_pairs(x, CUTOFF, box)
    candidates = neighbour_pairs(x, CUTOFF + 0.1, box)
    d, r = np.empty((len(pairs), 3), np.float32), np.empty(len(pairs), np.float32)
    d2, r2 = d.copy(), r.copy()
    assembly.pair_displacements(x, pairs, vectors, d, r)
    chained_pair_displacements(x, pairs, vectors, d2, r2)
    same = np.array_equal(d, d2) and np.array_equal(r, r2)
    cases = {
        "pair geometry, axis by axis (untilted box)": lambda: assembly.pair_displacements(x, pairs, vectors, d, r),
        "pair geometry, order c, b, a (same box)": lambda: chained_pair_displacements(x, pairs, vectors, d, r),
        "pair geometry, tilted box": lambda: assembly.pair_displacements(x, pairs, tilted, d, r),
        f"Verlet filter, {len(candidates)} candidates": lambda: pairs_within(x, candidates, box, CUTOFF),
    }
    for call in cases.values():
        call()
    print(f"LJ liquid N = {n}, {len(pairs)} pairs; the two forms agree bit for bit: {same}; "
          f"load average before: {os.getloadavg()}")
    times = interleaved_times(cases, repeat)
    print(f"load average after: {os.getloadavg()}")
    print(f"{'form':>48} {'least':>8} {'median':>8} {'ns/pair':>8}")
    for name, values in times.items():
        print(f"{name:>48} {min(values) * 1e3:>6.1f}ms {np.median(values) * 1e3:>6.1f}ms {min(values) / len(pairs) * 1e9:>8.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
