"""A protein in a truncated octahedron against the same protein in a cube: the Jacobian's time per atom.

The protein (``villin``: the villin headpiece of OpenMM's test.pdb, waters and ions removed; or
``dhfr``: the protein of ../shared/data/dhfr-jac.pdb) is solvated by OpenMM's Modeller with the same
padding (``--padding``, nm) in a cube and in a truncated octahedron (``boxShape``), amber14/TIP3P,
PME at a 0.9 nm cutoff (tolerance 5e-4), flexible, dispersion correction on; ``mdjac.openmm.adapt``
maps each System. The octahedron holds fewer waters; what should not change is the cost per atom:
the target is an octahedron's Jacobian time per atom within 1.2 times the cube's.

Each (shape, round) runs in a process of its own, the shapes alternating for ``--rounds`` rounds so
that both see the same load; each process times the force (``energy_and_forces``) and the Jacobian
(``force_jacobian``: short-range blocks, PME diagonal part) as the best of ``--repeat`` warm calls.
The table shows the best over rounds; the load average is printed beside it.

Run: .venv/bin/python benchmarks/bench_triclinic.py [--protein villin|dhfr] [--padding NM] [--rounds R]
     [--repeat R] [--float64]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from common import best, peak_gb, run_child

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DHFR_PDB_CANDIDATES = [os.path.normpath(os.path.join(REPO, *up, "shared", "data", "dhfr-jac.pdb")) for up in ([".."], ["..", ".."])]
SHAPES = ("cube", "octahedron")
TARGET = 1.2


def protein(name):
    """(topology, positions) of the protein alone."""
    import openmm
    from openmm import app

    if name == "villin":
        pdb = app.PDBFile(os.path.join(os.path.dirname(openmm.__file__), "app", "data", "test.pdb"))
    else:
        found = [p for p in DHFR_PDB_CANDIDATES if os.path.exists(p)]
        if not found:
            raise SystemExit(f"dhfr: {DHFR_PDB_CANDIDATES[0]} is missing")
        pdb = app.PDBFile(found[0])
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.deleteWater()
    modeller.delete([r for r in modeller.topology.residues() if r.name in ("Cl", "Na", "CL", "NA")])
    return modeller.topology, modeller.positions


def measure(name, shape, padding, repeat, dtype):
    """One process's row: build, adapt, time force and Jacobian."""
    from openmm import app, unit
    from mdjac.openmm import adapt
    from mdjac.space import box_volume

    ff = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(*protein(name))
    modeller.addSolvent(ff, model="tip3p", padding=padding * unit.nanometer, boxShape=shape)
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                             constraints=None, rigidWater=False)
    x = np.array(modeller.positions.value_in_unit(unit.nanometer), dtype=dtype)
    potential = adapt(system)
    pme = potential.long_range_terms[0]
    potential.energy_and_forces(x)
    force_s, _ = best(lambda: potential.energy_and_forces(x), repeat)
    potential.force_jacobian(x)
    jacobian_s, J = best(lambda: potential.force_jacobian(x), repeat)
    return dict(shape=shape, atoms=len(x), volume=box_volume(potential.box), grid="x".join(str(int(n)) for n in pme.grid),
                blocks=int(J.nnz_blocks), force_s=force_s, jacobian_s=jacobian_s,
                us_per_atom=1e6 * jacobian_s / len(x), peak_gb=peak_gb())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protein", default="villin", choices=("villin", "dhfr"))
    parser.add_argument("--padding", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--float64", action="store_true")
    parser.add_argument("--child", choices=SHAPES)
    args = parser.parse_args()
    dtype = np.float64 if args.float64 else np.float32
    if args.child:
        print(json.dumps(measure(args.protein, args.child, args.padding, args.repeat, dtype)))
        return
    rows = {s: [] for s in SHAPES}
    for r in range(args.rounds):
        for shape in SHAPES:
            row, code, _ = run_child(os.path.abspath(__file__), ["--child", shape, "--protein", args.protein,
                                                                 "--padding", str(args.padding), "--repeat", str(args.repeat)]
                                     + (["--float64"] if args.float64 else []))
            if code != 0 or row is None:
                raise SystemExit(f"{shape}, round {r}: the child failed (exit {code})")
            rows[shape].append(row)
            print(f"  round {r} {shape:10s} atoms {row['atoms']}  Jacobian {row['jacobian_s']:.3f} s  "
                  f"load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    load = os.getloadavg()
    print(f"{args.protein} solvated with {args.padding} nm padding, amber14/TIP3P, PME 0.9 nm (tolerance 5e-4), "
          f"{np.dtype(dtype).name}; best of {args.repeat} calls per process, best of {args.rounds} processes per shape; "
          f"2 cores, load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {time.strftime('%Y-%m-%d %H:%M')}")
    header = f"{'shape':>11} {'atoms':>6} {'volume nm3':>10} {'PME grid':>9} {'blocks':>9} {'force s':>8} {'Jacobian s':>10} {'us/atom':>8} {'peak GB':>8}"
    print(header)
    print("-" * len(header))
    bests = {}
    for shape in SHAPES:
        row = min(rows[shape], key=lambda r: r["jacobian_s"])
        row["force_s"] = min(r["force_s"] for r in rows[shape])
        bests[shape] = row
        print(f"{shape:>11} {row['atoms']:6d} {row['volume']:10.2f} {row['grid']:>9} {row['blocks']:9d} {row['force_s']:8.3f} "
              f"{row['jacobian_s']:10.3f} {row['us_per_atom']:8.1f} {row['peak_gb']:8.2f}")
    ratio = bests["octahedron"]["us_per_atom"] / bests["cube"]["us_per_atom"]
    saved = 1 - bests["octahedron"]["atoms"] / bests["cube"]["atoms"]
    print(f"octahedron / cube, Jacobian time per atom: {ratio:.2f} (target <= {TARGET}: {'met' if ratio <= TARGET else 'missed'}); "
          f"the octahedron has {100 * saved:.0f}% fewer atoms, its Jacobian takes "
          f"{bests['octahedron']['jacobian_s'] / bests['cube']['jacobian_s']:.2f} of the cube's time")


if __name__ == "__main__":
    main()
