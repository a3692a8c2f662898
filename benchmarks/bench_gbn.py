"""GBn and GBn2 (amber's neck models) against OBC2 on a protein: what the neck term costs a force
evaluation and a Jacobian, and how far each model is from OpenMM's Reference platform.

The protein of bench_implicit.py (villin by default: OpenMM's test.pdb without water, hydrogens
rebuilt, minimised by OpenMM in amber99sb + amber99_obc), then, at those positions, the CustomGBForce
of each of OpenMM's implicit/obc2.xml, gbn.xml and gbn2.xml (ACE, no cutoff) alone, float64: first
energy, forces and three Jacobian columns against OpenMM's Reference platform (central differences
of its forces, h = 1e-5 nm); then, in 3 rounds with the models in turn (reversed every other round),
the best of 3 calls of energy_and_forces and of force_jacobian, each on a new frame, and their
ratio, so the models' times are compared within a round.

Run: .venv/bin/python benchmarks/bench_gbn.py [PDB, or villin (default)]
"""
import os
import sys
import time

import numpy as np

from bench_implicit import openmm_reference, protein_system
from common import best, peak_gb

MODELS = ("obc2", "gbn", "gbn2")
ROUNDS = 3


def gb_alone(topology, model):
    """The OpenMM System of the protein with only the CustomGBForce of implicit/<model>.xml (amber99sb charges)."""
    import openmm
    from openmm import app
    system = app.ForceField("amber99sb.xml", f"implicit/{model}.xml").createSystem(topology, nonbondedMethod=app.NoCutoff,
                                                                                  constraints=None)
    for k in reversed(range(system.getNumForces())):
        if not isinstance(system.getForce(k), openmm.CustomGBForce):
            system.removeForce(k)
    return system


def main():
    pdb_path = sys.argv[1] if len(sys.argv) > 1 else "villin"
    import mdjac
    from mdjac.openmm import adapt
    t = time.perf_counter()
    _, topology, x0 = protein_system(pdb_path)
    n = len(x0)
    print(f"Generalized Born, the CustomGBForce alone: the protein of {os.path.basename(pdb_path)}, {n} atoms, "
          f"minimised by OpenMM ({time.perf_counter() - t:.0f} s); float64; load average {os.getloadavg()[0]:.1f} "
          "at the start (2 cores, shared)")
    frames = [x0 + 1e-5 * k for k in range(1, 8)]    # a new frame at each call: the term keeps the last frame's derivatives
    fresh = lambda: frames.append(frames.pop(0)) or frames[0]  # noqa: E731
    columns = [0, n // 2, n - 1]
    potentials = {}
    for model in MODELS:                      # the first calls (compilation) and the parity, once per model
        system = gb_alone(topology, model)
        potential = potentials[model] = mdjac.Potential(adapt(system).terms, n_atoms=n)
        e, f = potential.energy_and_forces(x0)
        t = time.perf_counter()
        J = potential.force_jacobian(x0)
        first = time.perf_counter() - t
        got = J.matvec(np.eye(3 * n)[:, (3 * np.array(columns)[:, None] + np.arange(3)).ravel()])
        got = got.reshape(n, 3, len(columns), 3)
        e_ref, f_ref, cols_ref = openmm_reference(system, x0, columns)
        print(f"{model}: first Jacobian {first:.1f} s; against OpenMM Reference (double): energy {e_ref:.10g} kJ/mol, "
              f"rel. error {abs(e - e_ref) / abs(e_ref):.1e}; forces {np.abs(f - f_ref).max() / np.abs(f_ref).max():.1e}; "
              f"Jacobian columns {columns} vs central differences {np.abs(got - cols_ref).max() / np.abs(cols_ref).max():.1e}",
              flush=True)
    header = f"{'round':>5} {'model':>6} {'force (s)':>10} {'Jacobian (s)':>13} {'J/force':>8} {'load':>5}"
    print(header)
    print("-" * len(header))
    for round_ in range(1, ROUNDS + 1):       # the models alternate, so each round's ratios share a load
        for model in MODELS if round_ % 2 else MODELS[::-1]:
            potential = potentials[model]
            t_force, _ = best(lambda: potential.energy_and_forces(fresh()), 3)
            t_jac, _ = best(lambda: potential.force_jacobian(fresh()), 3)
            print(f"{round_:>5} {model:>6} {t_force:>10.3f} {t_jac:>13.3f} {t_jac / t_force:>8.2f} "
                  f"{os.getloadavg()[0]:>5.1f}", flush=True)
    print(f"peak RSS {peak_gb():.2f} GB; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
