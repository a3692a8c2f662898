"""What virtual sites cost: a TIP4P-Ew box against a TIP3P box of the same waters.

Both from amber14's water files through ``mdjac.openmm.adapt``, reaction field (CutoffPeriodic) or PME
(tolerance 5e-4) at 0.9 nm, flexible,
one box of pre-equilibrated water from OpenMM's Modeller (the TIP4P-Ew box then has one M site per
water, so 4/3 the particles and the same real atoms). In one process, float32 and float64 (the
positions' dtype): the best of 3 calls of energy_and_forces and of force_jacobian after a first
call (compilation), their ratio (the Jacobian in force evaluations), and the Jacobian's blocks.

Run: .venv/bin/python benchmarks/bench_sites.py [box edge nm, default 2.5] [methods, default CutoffPeriodic,PME]
"""
import os
import sys

import numpy as np

from common import best


def water_box(model, edge, method="CutoffPeriodic"):
    """(System, positions nm) of a box of ``model`` water (tip3p or tip4pew), edge nm, an app method name."""
    import openmm
    from openmm import app, unit
    ff = app.ForceField(f"amber14/{model}.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, model=model, boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
    system = ff.createSystem(modeller.topology, nonbondedMethod=getattr(app, method),
                             nonbondedCutoff=0.9 * unit.nanometer, rigidWater=False, ewaldErrorTolerance=5e-4)
    return system, np.array(modeller.positions.value_in_unit(unit.nanometer))


def main():
    edge = float(sys.argv[1]) if len(sys.argv) > 1 else 2.5
    methods = sys.argv[2].split(",") if len(sys.argv) > 2 else ["CutoffPeriodic", "PME"]
    from mdjac.openmm import adapt
    print(f"Virtual sites: TIP3P against TIP4P-Ew (amber14), {edge} nm box, 0.9 nm cutoff, flexible; "
          f"best of 3 after a first call; load average {os.getloadavg()[0]:.1f} at the start")
    header = (f"{'model':>8} {'method':>14} {'dtype':>8} {'particles':>9} {'real':>6} {'force (s)':>10} {'Jacobian (s)':>13} "
              f"{'J/force':>8} {'blocks':>9}")
    print(header)
    print("-" * len(header))
    for method in methods:
        for model in ("tip3p", "tip4pew"):
            system, x0 = water_box(model, edge, method)
            potential = adapt(system)
            for dtype in (np.float32, np.float64):
                x = x0.astype(dtype)
                potential.energy_and_forces(x)
                potential.force_jacobian(x)
                t_force, _ = best(lambda: potential.energy_and_forces(x), 3)
                t_jac, J = best(lambda: potential.force_jacobian(x), 3)
                print(f"{model:>8} {method:>14} {np.dtype(dtype).name:>8} {potential.n_atoms:>9} {len(potential.jacobian_atoms):>6} "
                      f"{t_force:>10.3f} {t_jac:>13.3f} {t_jac / t_force:>8.2f} {J.nnz_blocks:>9}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
