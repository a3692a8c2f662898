"""PME's Jacobian at the sizes people simulate: force, Jacobian, diagonal, matvec, modes, memory.

Systems, all built with OpenMM's amber99sb.xml and tip3p.xml, PME at a 0.9 nm cutoff (tolerance
5e-4, OpenMM's alpha and grid), flexible (no constraints, no rigid water), dispersion correction on:

* ``water-3k``, ``water-24k``, ``water-100k``: TIP3P boxes from ``Modeller.addSolvent`` in cubes
  of 3.2, 6.2 and 10.0 nm (about 3,000, 24,000 and 99,000 atoms);
* ``dhfr``: OpenMM's DHFR benchmark (JAC), ``../shared/data/dhfr-jac.pdb`` (23,558 atoms, 6.223 nm).

Routes, each system in a process of its own (so that peak memory is its own):

* ``pme``: ``mdjac.openmm.adapt`` of the System (NonbondedForce.PME -> mdjac's PME);
* ``ewald``: the same System with its NonbondedForce switched to Ewald (the route PME systems took
  before), up to ``--ewald-max-atoms`` atoms (its cost grows as N^2);
* ``openmm``: OpenMM's CPU platform, forces and energy (``getState``), for scale: best of 5 at the
  first positions, and the least over the new frames mdjac is timed on (``setPositions``, then
  ``getState``; OpenMM keeps its neighbour list while no atom moves past half its padding).

What is timed, as a trajectory is computed (``mdjac compute``): a first frame compiles (force and
Jacobian, not timed); then ``--repeat`` new frames (the first positions plus Gaussian noise of
0.002 nm, new every frame, bench_real_systems.frames: nothing reused but what a real run reuses,
the Verlet list), and per frame the force (``energy_and_forces``) and then the Jacobian
(``force_jacobian``) of that frame, the previous Jacobian freed first; each the least over the
frames. The Jacobian is what the issue's target counts, "short-range blocks and PME diagonal,
ready for matvec": the stored blocks with the long-range curvature on their diagonal, and the PME
mesh part (PMEJacobian) with its stencils; what its first matvec still builds (the block-row
pointers, the stencils' factors) is the ``1st mv`` column. The Jacobian after the force
reuses the frame's pair list and pair parameters (as ``mdjac compute`` does, forces then Jacobian);
``cold J`` is the Jacobian alone on ``--repeat`` other new frames, paying them. All of these run before
any parallel numba loop (a matvec): OpenMP's threads left waiting after one slow MindSpore's later calls.
Then, on the last frame's Jacobian: diagonal (``J.diagonal()``, with the long-range part, its first call on this Jacobian), matvec (one
``J.matvec`` of a random (N, 3) vector, best of 5), ``mv/16`` (one ``J.matvec`` of 16 columns,
per column, best of 3), the 10 lowest modes (``mdjac.normal_modes(J, masses, k=10,
project='periodic')``, once, with the number of matvecs; only for the systems given to
``--modes``), and the process's peak RSS. OpenMM: best of 5 ``getState`` calls.
After the table, the issue-18 target ratios computed from the same run, each met or missed.

Run: .venv/bin/python benchmarks/bench_pme.py [--repeat R] [--ewald-max-atoms N] [--modes SYSTEM[,SYSTEM]]
     [--only SPEC[,SPEC]] [--rows FILE] [SPEC ...]
     SPEC is SYSTEM[:ROUTE[:DTYPE]] (default: every system, every route, float32 and float64);
     --only takes them comma-separated (the same as giving them as arguments); --modes computes the
     10 lowest modes on the pme rows of these systems (default: none); --rows FILE adds the rows an
     earlier run printed to this run's table, and alone only tables them. For example the 100k
     row and DHFR's modes in one run:
     bench_pme.py --modes dhfr --only water-100k:pme:float32,dhfr:pme:float32
"""
import json
import os
import sys
import time

import numpy as np

from bench_real_systems import frames
from common import best, child_row, new_frame_times, peak_gb, with_modes

SYSTEMS = ("water-3k", "water-24k", "water-100k", "dhfr")
WATER_EDGE_NM = {"water-3k": 3.2, "water-24k": 6.2, "water-100k": 10.0}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: ../shared/data/dhfr-jac.pdb beside the repository (or beside the worktrees' folder, for a worktree in /work/wt/)
DHFR_PDB_CANDIDATES = [os.path.normpath(os.path.join(REPO, *up, "shared", "data", "dhfr-jac.pdb")) for up in ([".."], ["..", ".."])]
CUTOFF_NM = 0.9


def build_system(name, method):
    """(openmm.System, positions (N, 3) nm, masses (N,) amu) of a benchmark system; method 'PME' or 'Ewald'."""
    import openmm
    from openmm import app, unit

    ff = app.ForceField("amber99sb.xml", "tip3p.xml")
    if name == "dhfr":
        found = [p for p in DHFR_PDB_CANDIDATES if os.path.exists(p)]
        if not found:
            raise SystemExit(f"dhfr: {DHFR_PDB_CANDIDATES[0]} is missing: put OpenMM's DHFR (JAC) benchmark PDB there")
        path = found[0]
        pdb = app.PDBFile(path)
        topology, positions = pdb.topology, pdb.positions
    else:
        modeller = app.Modeller(app.Topology(), [])
        edge = WATER_EDGE_NM[name]
        modeller.addSolvent(ff, model="tip3p", boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
        topology, positions = modeller.topology, modeller.positions
    system = ff.createSystem(topology, nonbondedMethod=getattr(app, method), nonbondedCutoff=CUTOFF_NM * unit.nanometer,
                             constraints=None, rigidWater=False)
    x = np.array(positions.value_in_unit(unit.nanometer), dtype=np.float64)
    masses = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())])
    return system, x, masses


def measure_openmm(name, repeat):
    import openmm
    from openmm import unit

    t = time.perf_counter()
    system, x, _ = build_system(name, "PME")
    row = dict(system=name, route="openmm", dtype="mixed", atoms=len(x), build_s=time.perf_counter() - t)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(x * unit.nanometer)
    context.getState(getForces=True, getEnergy=True)
    row["force_s"], _ = best(lambda: context.getState(getForces=True, getEnergy=True), 5)
    new_frames = []
    for y in frames(x, repeat):           # the new frames mdjac's force is timed on (the same seed)
        t = time.perf_counter()
        context.setPositions(y * unit.nanometer)
        context.getState(getForces=True, getEnergy=True)
        new_frames.append(time.perf_counter() - t)
    row["force_new_frames_s"] = min(new_frames)
    row["threads"] = openmm.Platform.getPlatformByName("CPU").getPropertyValue(context, "Threads")
    row["peak_gb"] = peak_gb()
    return row


def measure(spec, repeat, modes):
    """One row (dict) of a spec SYSTEM:ROUTE:DTYPE in this process; modes: compute the 10 lowest modes."""
    name, route, dtype = spec.split(":")
    if route == "openmm":
        return measure_openmm(name, repeat)
    import gc

    import mdjac
    import mdjac.openmm

    t = time.perf_counter()
    system, x0, masses = build_system(name, "PME" if route == "pme" else "Ewald")
    pot = mdjac.openmm.adapt(system)
    row = dict(system=name, route=route, dtype=dtype, atoms=len(x0), build_s=time.perf_counter() - t)
    t = time.perf_counter()
    v = np.random.default_rng(1).normal(size=(len(x0), 3))
    pot.energy_and_forces(x0.astype(dtype))               # the first frame compiles (MindSpore graphs)
    first_J = pot.force_jacobian(x0.astype(dtype))
    row["first_frame_s"] = time.perf_counter() - t
    # before any parallel numba loop: its OpenMP threads slow MindSpore's after it
    force, jacobian, J = new_frame_times(pot, frames(x0, repeat), dtype)
    cold = []
    for z in frames(x0 + 0.001, repeat):     # other new frames: the Jacobian alone, paying the frame's pair list
        J = None
        gc.collect()
        t = time.perf_counter()
        J = pot.force_jacobian(z.astype(dtype))
        cold.append(time.perf_counter() - t)
    first_J.matvec(v)                 # numba's loops loaded on the compile frame's Jacobian
    first_J.diagonal()
    del first_J
    t = time.perf_counter()
    J.matvec(v)
    row.update(force_s=min(force), jacobian_s=min(jacobian), first_matvec_s=time.perf_counter() - t,
               cold_jacobian_s=min(cold), long_range=type(J.long_range).__name__)
    t = time.perf_counter()
    J.diagonal()
    row["diagonal_s"] = time.perf_counter() - t
    row["matvec_s"], _ = best(lambda: J.matvec(v), 5)
    block = np.random.default_rng(2).normal(size=(3 * len(z), 16))
    row["matvec16_s"] = best(lambda: J.matvec(block), 3)[0] / 16
    return with_modes(spec, row, J, masses, z, len(z) if modes else 0)     # J is z's Jacobian


def print_table(rows):
    print(f"{'system':>10} {'route':>6} {'dtype':>7} {'atoms':>6} {'force':>8} {'Jacobian':>9} {'1st mv':>8} {'cold J':>8} {'diagonal':>9} "
          f"{'matvec':>8} {'mv/16':>8} {'10 modes':>17} {'peak RSS':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['system']:>10} {r.get('route', ''):>6} {r.get('dtype', ''):>7} {r['error']}")
            continue
        cells = [f"{r[k]:>7.3f}s" if k in r else f"{'-':>8}"
                 for k in ("force_s", "jacobian_s", "first_matvec_s", "cold_jacobian_s", "diagonal_s", "matvec_s", "matvec16_s")]
        modes = (f"{r['modes_s']:.0f} s ({r['modes_matvecs']} mv)" if "modes_s" in r else
                 "not run" if r["route"] != "openmm" else "-")
        print(f"{r['system']:>10} {r['route']:>6} {r['dtype']:>7} {r['atoms']:>6} {cells[0]} {cells[1]:>9} {cells[2]} "
              f"{cells[3]} {cells[4]:>9} {cells[5]} {cells[6]} {modes:>17} {r['peak_gb']:>7.2f}GB")
    print("force: energy_and_forces, Jacobian: force_jacobian (short-range blocks + PME diagonal, ready for matvec), each "
          "the least over new frames (openmm: CPU platform getState(forces, energy), best of 5 at the first positions; on the same new frames, setPositions and getState, in the targets); 1st mv: the Jacobian's "
          "first matvec; cold J: the Jacobian alone on other new frames; diagonal: J.diagonal() first call; matvec: one J v (best of 5); mv/16: J of 16 columns, per "
          "column (best of 3); 10 modes: normal_modes(k=10, project='periodic', method='sparse'), mv = matvecs.")
    for r in rows:
        if "lowest_cm" in r:
            print(f"{r['system']} {r['route']} {r['dtype']}: lowest wavenumbers (cm^-1) {r['lowest_cm']}")


def print_targets(rows):
    """Issue 18's targets, from this run's rows (pme route; each dtype)."""
    table = {(r["system"], r["route"], r["dtype"]): r for r in rows if "error" not in r}

    def line(text, value, limit, unit=""):
        if value is None:
            print(f"{text}: not measured")
        else:
            print(f"{text}: {value:.2f}{unit} (target <= {limit}{unit}) {'met' if value <= limit else 'MISSED'}")

    def ratio(a, b):
        return None if a is None or b is None else a / b

    def get(system, route, dtype, key):
        return table.get((system, route, dtype), {}).get(key)

    print("targets (issue 18), this run:")
    for dtype in ("float32", "float64"):
        for key in ("force_s", "jacobian_s", "matvec_s"):
            line(f"  {dtype} growth water-3k -> water-24k, {key[:-2]}",
                 ratio(get("water-24k", "pme", dtype, key), get("water-3k", "pme", dtype, key)), 12, "x")
        for system in ("water-24k", "dhfr"):
            force = get(system, "pme", dtype, "force_s")
            line(f"  {dtype} {system} matvec / force", ratio(get(system, "pme", dtype, "matvec_s"), force), 1)
            jacobian = get(system, "pme", dtype, "jacobian_s")
            line(f"  {dtype} {system} Jacobian / force", ratio(jacobian, force), 6)
            first = get(system, "pme", dtype, "first_matvec_s")
            line(f"  {dtype} {system} (Jacobian + its first matvec) / force",
                 ratio(None if first is None else jacobian + first, force), 6)
            line(f"  {dtype} {system} cold Jacobian (alone on a new frame) / force",
                 ratio(get(system, "pme", dtype, "cold_jacobian_s"), force), 6)
            line(f"  {dtype} {system} mdjac force / OpenMM CPU force", ratio(force, get(system, "openmm", "mixed", "force_s")), 3)
            line(f"  {dtype} {system} mdjac force / OpenMM CPU force on the same new frames",
                 ratio(force, get(system, "openmm", "mixed", "force_new_frames_s")), 3)
        line(f"  {dtype} dhfr 10 modes", get("dhfr", "pme", dtype, "modes_s"), 180, " s")
    line("  float32 water-100k peak RSS", get("water-100k", "pme", "float32", "peak_gb"), 8, " GB")


def specs(argv, ewald_max_atoms):
    """The (system, route, dtype) specs asked for; ewald above ewald_max_atoms atoms marked not run."""
    out = []
    for arg in argv or SYSTEMS:
        name, _, rest = arg.partition(":")
        if name not in SYSTEMS:
            raise SystemExit(f"unknown system {name!r}: one of {', '.join(SYSTEMS)}")
        route, _, dtype = rest.partition(":")
        for r in [route] if route else ["openmm", "pme", "ewald"]:
            if r == "openmm":
                out.append(f"{name}:openmm:mixed")
                continue
            out.extend(f"{name}:{r}:{d}" for d in ([dtype] if dtype else ["float32", "float64"]))
    return out


def main(argv):
    if argv[:1] == ["--child"]:
        print(json.dumps(measure(argv[1], int(argv[2]), argv[3] == "modes")))
        return
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return
    options = {"--repeat": 3, "--ewald-max-atoms": 3000}
    rows, modes, only = [], [], []
    while argv[:1] and argv[0] in list(options) + ["--rows", "--modes", "--only"]:
        if len(argv) < 2:
            raise SystemExit(f"{argv[0]} needs a value (see --help)")
        if argv[0] == "--rows":      # rows printed ("row: {...}") by an earlier run, tabled with this run's
            rows += [json.loads(line[5:]) for line in open(argv[1]) if line.startswith("row: ")]
        elif argv[0] == "--modes":
            modes += argv[1].split(",")
        elif argv[0] == "--only":
            only += argv[1].split(",")
        else:
            options[argv[0]] = int(argv[1])
        argv = argv[2:]
    for name in modes:
        if name not in SYSTEMS:
            raise SystemExit(f"--modes: unknown system {name!r}: one of {', '.join(SYSTEMS)}")
    argv = only + argv
    if rows and not argv:
        print_table(rows)
        print_targets(rows)
        return
    approx_atoms = {"water-3k": 3000, "water-24k": 24000, "water-100k": 99000, "dhfr": 23558}
    print(f"load average at start: {os.getloadavg()}; {os.cpu_count()} cores", flush=True)
    for spec in specs(argv, options["--ewald-max-atoms"]):
        name, route, dtype = spec.split(":")
        if route == "ewald" and approx_atoms[name] > options["--ewald-max-atoms"]:
            rows.append(dict(system=name, route=route, dtype=dtype,
                             error=f"not run (above --ewald-max-atoms {options['--ewald-max-atoms']})"))
            continue
        rows.append(child_row(__file__, [spec, str(options["--repeat"]), "modes" if name in modes else "no-modes"],
                              dict(system=name, route=route, dtype=dtype)))
    print(f"load average at end: {os.getloadavg()}", flush=True)
    print_table(rows)
    print_targets(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
