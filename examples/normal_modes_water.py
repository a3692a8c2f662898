"""Normal modes of one flexible SPC/E water, as MindSPONGE ships it.

Makes: out/normal_modes_water.png (the three vibrations, atoms and displacement arrows, in the
plane of the molecule) and prints the frequency table, next to the same analysis of a float64
finite-difference Hessian (central differences of the forces) as a check.

Run from the repository root:  .venv/bin/python examples/normal_modes_water.py
"""
import numpy as np

import mdjac
from mdjac import numerical
from mdjac.analysis import minimise, plots

OUTPUT = "out/normal_modes_water.png"


def spce_water():
    """(Potential, positions (3, 3) nm, masses (3,) amu, names) of MindSPONGE's SPC/E water."""
    from mindsponge import ForceField, Molecule
    from mdjac.sponge import adapt

    molecule = Molecule(template="water.spce.yaml")
    potential = adapt(molecule, ForceField(molecule, parameters="SPCE"))
    x = np.asarray(molecule.coordinate.asnumpy()[0], dtype=np.float64)
    masses = np.asarray(molecule.atom_mass.asnumpy()[0], dtype=np.float64)
    return potential, x, masses, ["OW", "HW1", "HW2"]


def finite_difference_jacobian(potential, x, h=1e-5):
    """float64 central differences of the forces, as a ForceJacobian (the reference)."""
    n = len(x)
    dense = numerical.central_difference_jacobian(potential.forces, x, h=h)
    return mdjac.ForceJacobian.from_bsr(dense.reshape(3 * n, 3 * n))


def main():
    potential, x, masses, names = spce_water()
    x, fmax = minimise.minimise_energy(potential, x, gtol=1e-9)
    exact = mdjac.normal_modes(potential.force_jacobian(x), masses, positions=x, project="molecule")
    fd = mdjac.normal_modes(finite_difference_jacobian(potential, x), masses, positions=x, project="molecule")
    print(exact.table(title=f"SPC/E water at its minimum (largest force {fmax:.1e} kJ/mol/nm), exact Jacobian"))
    print("finite differences (h = 1e-5 nm):", np.array2string(fd.frequencies, precision=3), "cm^-1")
    print("difference:", np.array2string(exact.frequencies - fd.frequencies, precision=6), "cm^-1")
    print("wrote", plots.plot_modes(exact, x, OUTPUT, names=names, scale=0.05))


if __name__ == "__main__":
    main()
