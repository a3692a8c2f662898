"""Topology PDBs for the catalogue (run from the clone: python systems/build_topologies.py [NAME ...]).

MDAnalysis needs a topology beside an mdjac output file (``MDAnalysis.Universe("systems/NAME.pdb",
"out.h5md")``, or ``mdjac.load_system(NAME).topology``): ``NAME.pdb`` holds the system's atoms in
order, with their names, residue names and residue numbers, at the catalogue positions, and the box
(CRYST1) of a periodic system.

* alanine-dipeptide: its coordinates file is already such a PDB (ACE-ALA-NME, names of
  MindSPONGE's protein0.yaml template); it is checked, not rewritten.
* water-box: 1,000 residues WAT (O, H1, H2 of MindSPONGE's water.spce.yaml), one per molecule,
  numbered 1..1000 (MindSPONGE merges them into one residue for speed; the atoms are the same).
* argon: 256 residues AR of one atom Ar each.
* seed-article: not a molecule (no atoms), so no topology.

Not part of the package's API; kept so that the data can be made again.
"""
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def residues(system):
    """(residue names (N,), residue numbers (N,) from 1) of a catalogue System."""
    spec = system.spec
    if system.engine == "mindsponge":
        from mdjac.sponge.systems import _residue_list, _template_residue
        resnames, resids = [], []
        for name, copies in _residue_list(spec):
            n = len(_template_residue(spec, name)["atom_name"])
            for _ in range(copies):
                resids += [(resids[-1] if resids else 0) + 1] * n
                resnames += [name] * n
        return np.array(resnames), np.array(resids)
    names = np.asarray(system.names)          # engine "mdjac": one residue per atom, named by its type
    return np.array([n.upper()[:3] for n in names]), np.arange(1, len(names) + 1)


def write_topology(path, positions, names, resnames, resids, box=None):
    """A PDB: CRYST1 (box (3,) nm, or none), then one ATOM record per atom (Angstrom, 3 decimals)."""
    with open(path, "w") as f:
        if box is not None:
            a, b, c = 10 * np.asarray(box, dtype=np.float64)
            f.write(f"CRYST1{a:9.3f}{b:9.3f}{c:9.3f}{90:7.2f}{90:7.2f}{90:7.2f} P 1           1\n")
        for i, (p, name, res, rid) in enumerate(zip(10 * np.asarray(positions), names, resnames, resids)):
            label = f" {name:<3s}" if len(name) < 4 else name
            element = "".join(ch for ch in name if ch.isalpha())[:2].capitalize()
            element = element if element in ("Ar", "Cl", "Na") else element[:1]
            f.write(f"ATOM  {(i + 1) % 100000:5d} {label} {res:>3s} A{rid % 10000:4d}    "
                    f"{p[0]:8.3f}{p[1]:8.3f}{p[2]:8.3f}  1.00  0.00          {element:>2s}\n")
        f.write("TER\nEND\n")


def build(name):
    from mdjac.catalogue import load_system, read_pdb
    system = load_system(name)
    if system.n_atoms is None:
        print(f"{name}: not a molecule, no topology")
        return
    resnames, resids = residues(system)
    target = HERE / f"{name}.pdb"
    if system.spec["coordinates"] == target.name:       # the coordinates file is the topology: check it
        _, names, pdb_resnames, _ = read_pdb(target)
        assert list(names) == list(system.names) and list(pdb_resnames) == list(resnames), name
        print(f"{name}: {target.name} (the coordinates file) already is the topology")
        return
    write_topology(target, system.positions, system.names, resnames, resids, system.box)
    print(f"{name}: wrote {target.name}, {system.n_atoms} atoms in {resids.max()} residues")


if __name__ == "__main__":
    from mdjac.catalogue import available_systems
    for name in sys.argv[1:] or available_systems():
        build(name)
