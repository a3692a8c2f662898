"""Users' force-field files through mdjac.load_system: what each electrostatics option gives, against
OpenMM's Reference platform (double), and what loading costs.

    .venv/bin/python benchmarks/bench_force_field_files.py [--files JAC explicit] [--options default reaction-field ...]

Files from openmmtools' data (requirements-test.lock): JAC (DHFR in water, 23,558 atoms) and the
alanine dipeptide in water (2,269 atoms). Columns: the description's electrostatics, load (s:
OpenMM's readers and mdjac's adapter), first (s: the first float64 energy and forces, with
compilation), mdjac's and OpenMM's energies (kJ/mol), their relative difference, and the forces'
largest difference relative to the largest force.
"""
import argparse
import importlib.util
import os
import time

import numpy as np

FILES = {"JAC": ("dhfr", "JAC.prmtop"), "explicit": ("alanine-dipeptide-explicit", "alanine-dipeptide.prmtop")}
OPTIONS = ("default", "pme", "ewald", "reaction-field", "cutoff", "none")


def data_file(folder, name):
    return os.path.join(importlib.util.find_spec("openmmtools").submodule_search_locations[0], "data", folder, name)


def row(label, path, option):
    import openmm
    from openmm import unit

    import mdjac
    start = time.perf_counter()
    system = mdjac.load_system(path, **({} if option == "default" else {"nonbonded": option}))
    load = time.perf_counter() - start
    start = time.perf_counter()
    energy, forces = system.potential.energy_and_forces(system.positions)
    first = time.perf_counter() - start
    context = openmm.Context(system.openmm_system, openmm.VerletIntegrator(1e-3),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(system.positions)
    state = context.getState(getEnergy=True, getForces=True)
    e_ref = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    f_ref = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return (f"{label:>9} {option:>15} {system.n_atoms:6d} {load:7.1f} {first:7.1f} {energy:16.3f} {e_ref:16.3f} "
            f"{abs(energy - e_ref) / abs(e_ref):8.1e} {np.abs(forces - f_ref).max() / np.abs(f_ref).max():8.1e}  "
            f"{system.electrostatics}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=list(FILES), choices=list(FILES))
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    print(f"{'file':>9} {'option':>15} {'atoms':>6} {'load s':>7} {'first s':>7} {'mdjac E':>16} {'OpenMM E':>16} "
          f"{'rel dE':>8} {'rel dF':>8}  electrostatics")
    for label in args.files:
        for option in args.options:
            print(row(label, data_file(*FILES[label]), option), flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
