"""Vibrational density of states of alanine dipeptide (AMBER ff14SB, in vacuum).

Makes: out/vdos_alanine_dipeptide.png (Gaussian-broadened density of states, 10 cm^-1, with the
60 vibrations as ticks) and prints the frequency table. The structure is first minimised with
saddle-free Newton steps on the exact Jacobian (mdjac.analysis.minimise); the six rigid-body
modes are projected out.

Run from the repository root:  .venv/bin/python examples/vdos_alanine_dipeptide.py
"""
import numpy as np

import mdjac
from mdjac.analysis import minimise, plots

OUTPUT = "out/vdos_alanine_dipeptide.png"


def main():
    system = mdjac.load_system("alanine-dipeptide")
    x, fmax = minimise.minimise_energy(system.potential, system.positions)
    jacobian = system.potential.force_jacobian(x)                  # float64 positions: float64 Jacobian
    nm = mdjac.normal_modes(jacobian, system.masses, positions=x, project="molecule")
    print(nm.table(title=f"alanine dipeptide, minimised (largest force {fmax:.1e} kJ/mol/nm)"))
    print("imaginary modes:", int(np.sum(nm.frequencies < 0)))
    print("wrote", plots.plot_vdos(nm, OUTPUT, width=10.0,
                                   title="Alanine dipeptide (ff14SB, vacuum): vibrational DOS"))


if __name__ == "__main__":
    main()
