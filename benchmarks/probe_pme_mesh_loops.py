"""PME's mesh loops before and after their rework, and the grid-order lever tried beside them: one table.

On the bench_pme systems (OpenMM's amber99sb + TIP3P, PME at 0.9 nm, tolerance 5e-4), on the first
frame's grid coordinates, float64 weights and random stand-ins for their derivatives:

* ``stencil factors``: mdjac.longrange.pme_grid.stencil_factors, now one compiled loop, before a
  numpy stack and fancy index (kept below as ``stencil_factors_before``); for the force's three
  gradient stencils and the Jacobian diagonal's six curvature stencils;
* ``spread`` (the charges) and ``gather`` (the three gradient stencils), what a force evaluation
  does: now each atom's 3 x 5 wrapped grid indices are computed once, before one modulo per grid
  point (``spread_before``, ``gather_before``, copies of the old loops);
* ``in grid order``: the new loops with the atoms sorted by grid cell (the arrays permuted, the
  forces put back), a lever tried and not kept: it pays on a 90^3 grid, not on DHFR's 56^3.

Each figure is the least and the median of ``--repeat`` calls, all interleaved.

Run: .venv/bin/python benchmarks/probe_pme_mesh_loops.py [dhfr water-100k ...] [--repeat R]
"""
import argparse
import os

import numba
import numpy as np

from bench_pme import build_system
from common import interleaved_times

ORDER = 5


def stencil_factors_before(derivatives, orders):
    """stencil_factors as it was: a stack and a fancy index."""
    orders = np.asarray(orders, dtype=np.int64)
    stacked = np.stack([np.asarray(d, dtype=np.float64) for d in derivatives], axis=2)
    return np.ascontiguousarray(stacked[:, np.arange(3)[None, :], orders, :])


@numba.njit(cache=True)
def spread_before(origins, factors, coefficients, grid):
    """spread as it was: one modulo per grid point."""
    nx, ny, nz = grid.shape
    n_stencils = factors.shape[1]
    column = np.empty(ORDER)
    for i in range(origins.shape[0]):
        for a in range(ORDER):
            gx = (origins[i, 0] + a) % nx
            for b in range(ORDER):
                gy = (origins[i, 1] + b) % ny
                for c in range(ORDER):
                    column[c] = 0.0
                for p in range(n_stencils):
                    s = coefficients[i, p] * factors[i, p, 0, a] * factors[i, p, 1, b]
                    for c in range(ORDER):
                        column[c] += s * factors[i, p, 2, c]
                for c in range(ORDER):
                    grid[gx, gy, (origins[i, 2] + c) % nz] += column[c]


@numba.njit(cache=True)
def gather_before(origins, factors, potential, out):
    """gather as it was: one modulo per grid point."""
    nx, ny, nz = potential.shape
    n_stencils = factors.shape[1]
    column = np.empty(ORDER)
    for i in range(origins.shape[0]):
        for p in range(n_stencils):
            out[i, p] = 0.0
        for a in range(ORDER):
            gx = (origins[i, 0] + a) % nx
            for b in range(ORDER):
                gy = (origins[i, 1] + b) % ny
                for c in range(ORDER):
                    column[c] = potential[gx, gy, (origins[i, 2] + c) % nz]
                for p in range(n_stencils):
                    s = 0.0
                    for c in range(ORDER):
                        s += factors[i, p, 2, c] * column[c]
                    out[i, p] += factors[i, p, 0, a] * factors[i, p, 1, b] * s


def probe(name, repeat):
    from openmm import unit

    import mdjac.openmm
    from mdjac.longrange import pme_grid
    from mdjac.longrange.pme import PMEReciprocal

    system, x, _ = build_system(name, "PME")
    term = next(t for t in mdjac.openmm.adapt(system).long_range_terms if isinstance(t, PMEReciprocal))
    box = np.array([v[k].value_in_unit(unit.nanometer) for k, v in enumerate(system.getDefaultPeriodicBoxVectors())])
    grid, n = term.grid, len(x)
    _, _, origins, _, weights = pme_grid.frame_geometry(x, box, grid)
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=weights.shape), rng.normal(size=weights.shape)
    charges, potential = term.charges, rng.normal(size=tuple(grid))
    order = np.argsort((origins[:, 0] * grid[1] + origins[:, 1]) * grid[2] + origins[:, 2], kind="stable")
    gradient = (weights, first)

    def spread(loop, factors_of, atoms=None):
        def call():
            take = slice(None) if atoms is None else atoms
            rho = np.zeros(tuple(grid))
            factors = factors_of((weights,), ((0, 0, 0),)) if atoms is None else factors_of((weights,), ((0, 0, 0),), atoms)
            loop(np.ascontiguousarray(origins[take]), factors, np.ascontiguousarray(charges[take, None]), rho)
        return call

    def gather(loop, factors_of, atoms=None):
        def call():
            gathered, forces = np.empty((n, 3)), np.empty((n, 3))
            if atoms is None:
                loop(origins, factors_of(gradient, pme_grid.GRADIENT_ORDERS), potential, forces)
            else:
                loop(np.ascontiguousarray(origins[atoms]), factors_of(gradient, pme_grid.GRADIENT_ORDERS, atoms),
                     potential, gathered)
                forces[atoms] = gathered
        return call

    new = pme_grid.stencil_factors
    cases = {
        "stencil factors, gradient, before": lambda: stencil_factors_before(gradient, pme_grid.GRADIENT_ORDERS),
        "stencil factors, gradient, now": lambda: new(gradient, pme_grid.GRADIENT_ORDERS),
        "stencil factors, curvature, before": lambda: stencil_factors_before((weights, first, second),
                                                                             pme_grid.CURVATURE_ORDERS),
        "stencil factors, curvature, now": lambda: new((weights, first, second), pme_grid.CURVATURE_ORDERS),
        "spread, before": spread(spread_before, stencil_factors_before),
        "spread, now": spread(pme_grid.spread, new),
        "spread, now in grid order": spread(pme_grid.spread, new, order),
        "gather, before": gather(gather_before, stencil_factors_before),
        "gather, now": gather(pme_grid.gather, new),
        "gather, now in grid order": gather(pme_grid.gather, new, order),
    }
    for call in cases.values():         # compile
        call()
    times = interleaved_times(cases, repeat)
    print(f"{name}: {n} atoms, grid {grid.tolist()}")
    for key, t in times.items():
        print(f"  {key:36s} least {min(t) * 1e3:8.2f} ms   median {np.median(t) * 1e3:8.2f} ms")
    for key in ("stencil factors, gradient", "stencil factors, curvature", "spread", "gather"):
        a, b = times[f"{key}, before"], times[f"{key}, now"]
        print(f"  {key}: before / now, medians {np.median(a) / np.median(b):.2f}, least {min(a) / min(b):.2f}")
    for key in ("spread", "gather"):
        a, b = times[f"{key}, now"], times[f"{key}, now in grid order"]
        print(f"  {key}: now / now in grid order, medians {np.median(a) / np.median(b):.2f}, least {min(a) / min(b):.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("systems", nargs="*", default=["dhfr", "water-100k"])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"# probe_pme_mesh_loops.py {' '.join(args.systems)} --repeat {args.repeat}; load average {os.getloadavg()}")
    for name in args.systems:
        probe(name, args.repeat)
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
