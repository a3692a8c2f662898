"""How the catalogue's coordinate files were made (run from the clone: python systems/build_coordinates.py NAME).

* alanine-dipeptide.pdb: the extended ACE-ALA-NME geometry of AMBER's LEaP (atom names of
  MindSPONGE's protein0.yaml template), minimised in ff14SB (L-BFGS on the adapted potential,
  float64, to a force below 1 kJ/mol/nm).
* water-box.npz: 1,000 SPC/E waters on a 10x10x10 cubic lattice at 0.997 g/cm3 (edge 3.10609 nm; 0.998 g/cm3 with masses 1.008 and 15.999), random
  orientations (seed 7), minimised, then MindSPONGE NVT MD at 300 K (1 fs steps).
* argon.npz: a 4x4x4 fcc crystal (a = 0.5256 nm) with Gaussian displacements of 0.005 nm (seed 3).

Not part of the package's API; kept so that the data can be made again.
"""
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def minimise(potential, x, box=None, gtol=1.0, maxiter=2000):
    """L-BFGS on a Potential in float64; returns positions (N, 3) nm."""
    from scipy.optimize import minimize

    def fun(flat):
        e, f = potential.energy_and_forces(flat.reshape(-1, 3), box=box)
        return e, -f.reshape(-1)
    res = minimize(fun, np.asarray(x, np.float64).reshape(-1), jac=True, method="L-BFGS-B",
                   options={"gtol": gtol, "maxiter": maxiter})
    print(f"minimised: E = {res.fun:.3f} kJ/mol, max |F| = {np.abs(res.jac).max():.3g}, {res.nit} iterations")
    return res.x.reshape(-1, 3)


def write_pdb(path, x, names, resnames, resids):
    """PDB with coordinates in Angstrom (3 decimals)."""
    with open(path, "w") as f:
        for i, (p, name, res, rid) in enumerate(zip(10 * np.asarray(x), names, resnames, resids)):
            label = f" {name:<3s}" if len(name) < 4 else name
            f.write(f"ATOM  {i + 1:5d} {label} {res:>3s} A{rid:4d}    {p[0]:8.3f}{p[1]:8.3f}{p[2]:8.3f}  1.00  0.00\n")
        f.write("TER\nEND\n")


def alanine_dipeptide():
    from mdjac.catalogue import load_system, read_pdb
    system = load_system("alanine-dipeptide")
    x = minimise(system.potential, system.positions)
    _, names, resnames, _ = read_pdb(HERE / "alanine-dipeptide.pdb")
    resids = np.cumsum(np.r_[1, resnames[1:] != resnames[:-1]])
    write_pdb(HERE / "alanine-dipeptide.pdb", x, names, resnames, resids)


def water_lattice(n=10, density=33.37, seed=7):
    """n^3 SPC/E waters (O, H1, H2) on a cubic lattice, random orientations; (positions (3n^3, 3), box (3,))."""
    from scipy.spatial.transform import Rotation
    length = (n ** 3 / density) ** (1 / 3)
    water = np.array([[0.0, 0.0, 0.0], [0.081649043, 0.057735897, 0.0], [-0.081649043, 0.057735897, 0.0]])
    water -= water.mean(axis=0)
    rot = Rotation.random(n ** 3, random_state=seed).as_matrix()
    centres = (np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * length / n
    x = np.einsum("mij,aj->mai", rot, water) + centres[:, None, :]
    return x.reshape(-1, 3), np.full(3, length)


def water_box(md_steps=1000):
    import json
    from mdjac.catalogue import build_sponge
    from mdjac.sponge import adapt, graph_mode, molecule_positions, sponge_md
    spec = json.loads((HERE / "water-box.json").read_text())
    x, box = water_lattice()
    molecule, forcefield = build_sponge(spec, x, box)
    x = minimise(adapt(molecule, forcefield), x, box, gtol=50.0, maxiter=200)
    molecule, forcefield = build_sponge(spec, x, box)
    with graph_mode():
        engine = sponge_md(molecule, forcefield, spec["cutoff"], 300.0, 1e-3)
        engine.run(md_steps)
    x, _ = molecule_positions(molecule)
    np.savez_compressed(HERE / "water-box.npz", positions=x, box=box)


def argon(cells=4, a=0.5256, sigma=0.005, seed=3):
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 3)
    x = (grid[:, None, :] + basis[None]).reshape(-1, 3) * a
    x += np.random.default_rng(seed).normal(scale=sigma, size=x.shape)
    box = np.full(3, cells * a)
    np.savez_compressed(HERE / "argon.npz", positions=x % box, box=box, types=np.zeros(len(x), np.int64))


if __name__ == "__main__":
    builders = {"alanine-dipeptide": alanine_dipeptide, "water-box": water_box, "argon": argon}
    for name in sys.argv[1:] or builders:
        builders[name]()
