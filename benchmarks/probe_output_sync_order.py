"""Which output of a compiled energy-and-gradient call to wait on first: one table.

``mdjac.kernel.term_energy_and_gradient`` returns the weighted energy sum (a scalar tensor) and
its gradient (an array tensor) of one MindSpore call. Converting the scalar first
(``float(e.asnumpy())``, then ``g.asnumpy()``) or the array first gives the same numbers; this
probe times both orders on OpenMM's DHFR benchmark (bench_pme.build_system("dhfr", "PME"),
23,558 atoms, float32):

* one call of the HarmonicAngle group (11,584 angles, one padded chunk), the orders interleaved;
* one radial chunk of the nonbonded pairs (mdjac.chunks.RADIAL_CHUNK distances), interleaved;
* the whole force (``Potential.energy_and_forces``) on new frames, each order on every other frame.

Run: .venv/bin/python benchmarks/probe_output_sync_order.py [--rounds R]
"""
import os
import sys
import time

import numpy as np

from bench_pme import build_system
from bench_real_systems import frames
from common import interleaved_times, peak_gb


def call_in_order(fn, args, scalar_first):
    """One compiled call of ``fn``; wait on its (energy, gradient) outputs in the given order."""
    e, g = fn(*args)
    if scalar_first:
        float(e.asnumpy())
        g.asnumpy()
    else:
        g.asnumpy()
        float(e.asnumpy())


def main(argv):
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 20
    import mdjac
    import mdjac.openmm
    from mdjac import kernel
    from mdjac.chunks import RADIAL_CHUNK, padded_chunks
    from mdjac.strategies.coordinates import local_coordinates, pair_geometry

    mdjac.keep_freed_memory()
    system, x0, _ = build_system("dhfr", "PME")
    pot = mdjac.openmm.adapt(system)
    config = pot.configuration(x0.astype(np.float32))
    groups = list(pot.instance_groups(config, coordinates=False))

    angle, index, _, params = next(g for g in groups if "HarmonicAngle" in str(g[0]))
    q = local_coordinates(angle, index, config.positions, config.box).astype(np.float32)
    _, _, q_chunk, p_chunk, weights = next(iter(padded_chunks(q, params)))
    angle_call = (kernel._compiled(angle.energy, "energy_and_gradient"),
                  (kernel._tensor(q_chunk), kernel._tensor(weights, np.float32), *map(kernel._tensor, p_chunk)))

    pairs, index, _, params = max(groups, key=lambda g: len(g[1]))
    _, r = pair_geometry(config, np.ascontiguousarray(index, dtype=np.int64))
    _, _, r_chunk, p_chunk, weights = next(iter(padded_chunks(r, params, RADIAL_CHUNK)))
    radial_call = (kernel._compiled(pairs.radial_energy, "energy_and_gradient"),
                   (kernel._tensor(r_chunk), kernel._tensor(weights, np.float32), *map(kernel._tensor, p_chunk)))

    cases = {}
    for label, (fn, args) in (("HarmonicAngle call (11,584 angles)", angle_call),
                              (f"radial chunk ({len(r_chunk):,} pairs)", radial_call)):
        for scalar_first in (True, False):
            call_in_order(fn, args, scalar_first)
            cases[(label, scalar_first)] = (lambda fn=fn, args=args, s=scalar_first: call_in_order(fn, args, s))
    times = interleaved_times(cases, rounds)

    original = kernel.term_energy_and_gradient

    def scalar_first_version(energy, q, weights, params):
        fn = kernel._compiled(energy, "energy_and_gradient")
        e, g = fn(kernel._tensor(q), kernel._tensor(weights, q.dtype), *[kernel._tensor(p) for p in params])
        return float(e.asnumpy()), g.asnumpy()

    new = [y.astype(np.float32) for y in frames(x0, 2 * rounds + 2)]
    pot.energy_and_forces(new[0])
    pot.energy_and_forces(new[1])
    label = "whole force, new frames (DHFR)"
    times[(label, True)], times[(label, False)] = [], []
    try:
        for k, y in enumerate(new[2:]):
            scalar_first = k % 2 == 0
            kernel.term_energy_and_gradient = scalar_first_version if scalar_first else original
            t = time.perf_counter()
            pot.energy_and_forces(y)
            times[(label, scalar_first)].append(time.perf_counter() - t)
    finally:
        kernel.term_energy_and_gradient = original

    print(f"# probe_output_sync_order.py --rounds {rounds}; {time.strftime('%c')}; load average after: "
          f"{os.getloadavg()}; peak RSS {peak_gb():.2f} GB")
    print(f"{'call':>36} {'waits first on':>15} {'median':>9} {'least':>9} {'median ratio':>13}")
    for (label, scalar_first), t in times.items():
        ratio = np.median(t) / np.median(times[(label, False)])
        print(f"{label:>36} {'energy (scalar)' if scalar_first else 'gradient':>15} "
              f"{1e3 * np.median(t):7.1f}ms {1e3 * min(t):7.1f}ms {ratio:13.2f}")


if __name__ == "__main__":
    main(sys.argv)
