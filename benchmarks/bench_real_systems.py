"""Real systems: a protein's frame against the benchmark liquid's, per stored block, in one run.

Rows (each in a process of its own, so that its peak memory is its own):

* ``water-box``: the catalogue's water box (``mdjac.load_system("water-box")``: 3,000 atoms of
  flexible SPC/E, MindSPONGE's terms, damped shifted force Coulomb at 1.0 nm), the liquid that
  ``mdjac compute`` is measured on;
* ``dhfr-rf`` and ``dhfr-pme``: OpenMM's DHFR benchmark (JAC, ``../shared/data/dhfr-jac.pdb``,
  23,558 atoms) built with amber99sb.xml and tip3p.xml, flexible, 0.9 nm cutoff, reaction field
  (CutoffPeriodic) or PME (tolerance 5e-4), through ``mdjac.openmm.adapt``;
* ``dhfr-openmm``: OpenMM's CPU platform on the PME System, forces and energy (``getState``).

Each of float32 and float64. A row takes a first frame (compiling, building the Verlet list), then
``--frames`` new frames (the first positions plus Gaussian noise of 0.002 nm, new every frame, as
in a trajectory: nothing is reused from frame to frame but what a real run reuses, the Verlet list)
and times, per frame, ``forces`` and then ``force_jacobian`` of the same frame, as ``mdjac compute``
does. It reports the least time of each and of their sum (a frame), the stored blocks of the
Jacobian (``nnz_blocks``) and the frame's time per stored block.

Targets (issue 23's item 4 and issue 18's), computed from the same run and printed after the table:
a DHFR frame's time per stored block within 1.5x of the water box's (each dtype, RF and PME), the
DHFR Jacobian at most 6 forces (PME), and mdjac's DHFR force at most 3x OpenMM's CPU force.

Run: .venv/bin/python benchmarks/bench_real_systems.py [--frames F] [ROW[:DTYPE] ...]
     (default: every row, float32 and float64)
"""
import json
import os
import sys
import time

import numpy as np

from common import child_row, peak_gb

ROWS = ("water-box", "dhfr-rf", "dhfr-pme", "dhfr-openmm")
JITTER_NM = 0.002


def build(name):
    """(potential or openmm.System, positions (N, 3) float64 nm) of a row."""
    if name == "water-box":
        import mdjac
        system = mdjac.load_system("water-box")
        return system.potential, np.asarray(system.positions, dtype=np.float64)
    import mdjac.openmm
    from bench_pme import build_system
    system, x, _ = build_system("dhfr", "CutoffPeriodic" if name == "dhfr-rf" else "PME")
    return (system if name == "dhfr-openmm" else mdjac.openmm.adapt(system)), x


def frames(x, count):
    """``count`` frames: x (N, 3) nm plus new Gaussian noise of JITTER_NM each."""
    rng = np.random.default_rng(7)
    return [x + rng.normal(scale=JITTER_NM, size=x.shape) for _ in range(count)]


def measure_openmm(x, system, count):
    import openmm
    from openmm import unit

    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    times = []
    for y in [x] + frames(x, count):
        context.setPositions(y * unit.nanometer)
        t = time.perf_counter()
        context.getState(getForces=True, getEnergy=True)
        times.append(time.perf_counter() - t)
    return dict(force_s=min(times[1:]), threads=openmm.Platform.getPlatformByName("CPU").getPropertyValue(context, "Threads"))


def measure(spec, count):
    name, dtype = spec.split(":")
    t = time.perf_counter()
    potential, x = build(name)
    row = dict(row=name, dtype=dtype, atoms=len(x), build_s=time.perf_counter() - t)
    if name == "dhfr-openmm":
        row.update(measure_openmm(x, potential, count))
    else:
        t = time.perf_counter()
        potential.forces(x.astype(dtype))
        potential.force_jacobian(x.astype(dtype))
        row["first_frame_s"] = time.perf_counter() - t
        force, jacobian = [], []
        for y in frames(x, count):
            y = y.astype(dtype)
            t = time.perf_counter()
            potential.forces(y)
            force.append(time.perf_counter() - t)
            t = time.perf_counter()
            J = potential.force_jacobian(y)
            jacobian.append(time.perf_counter() - t)
            row["blocks"] = int(J.nnz_blocks)
            del J
        frame = np.add(force, jacobian)
        row.update(force_s=min(force), jacobian_s=min(jacobian), frame_s=float(frame.min()),
                   us_per_block=float(frame.min()) / row["blocks"] * 1e6)
    row["peak_gb"] = peak_gb()
    return row


def print_table(rows):
    print(f"{'row':>11} {'dtype':>7} {'atoms':>6} {'blocks':>9} {'force':>8} {'Jacobian':>9} {'frame':>8} "
          f"{'us/block':>9} {'peak RSS':>9} {'load':>5}")
    for r in rows:
        if "error" in r:
            print(f"{r['row']:>11} {r['dtype']:>7} {r['error']}")
            continue
        cells = [f"{r[k]:>7.3f}s" if k in r else f"{'-':>8}" for k in ("force_s", "jacobian_s", "frame_s")]
        block = f"{r['us_per_block']:>9.3f}" if "us_per_block" in r else f"{'-':>9}"
        print(f"{r['row']:>11} {r['dtype']:>7} {r['atoms']:>6} {r.get('blocks', '-'):>9} {cells[0]} {cells[1]:>9} "
              f"{cells[2]} {block} {r['peak_gb']:>7.2f}GB {r['load_before']:>5.1f}")
    print("force: forces(x); Jacobian: force_jacobian(x) of the same frame; frame: their sum; each the least over "
          "new frames; us/block: a frame's time per stored Jacobian block (nnz_blocks); openmm: CPU platform "
          "getState(forces, energy); load: 1-minute load average before the row (2 cores).")


def print_targets(rows):
    table = {(r["row"], r["dtype"]): r for r in rows if "error" not in r}

    def get(row, dtype, key):
        return table.get((row, dtype), {}).get(key)

    def line(text, a, b, limit):
        if a is None or b is None:
            print(f"  {text}: not measured")
            return
        print(f"  {text}: {a / b:.2f} (target <= {limit}) {'met' if a / b <= limit else 'MISSED'}")

    print("targets, this run:")
    for dtype in ("float32", "float64"):
        for row in ("dhfr-rf", "dhfr-pme"):
            line(f"{dtype} {row} time per stored block / water-box's", get(row, dtype, "us_per_block"),
                 get("water-box", dtype, "us_per_block"), 1.5)
        for row in ("dhfr-rf", "dhfr-pme"):
            line(f"{dtype} {row} Jacobian / force", get(row, dtype, "jacobian_s"), get(row, dtype, "force_s"), 6)
        line(f"{dtype} dhfr-pme mdjac force / OpenMM CPU force", get("dhfr-pme", dtype, "force_s"),
             get("dhfr-openmm", "mixed", "force_s"), 3)


def main(argv):
    if argv[:1] == ["--child"]:
        print(json.dumps(measure(argv[1], int(argv[2]))))
        return
    count = 3
    if argv[:1] == ["--frames"]:
        count, argv = int(argv[1]), argv[2:]
    specs = []
    for arg in argv or ROWS:
        name, _, dtype = arg.partition(":")
        if name not in ROWS:
            raise SystemExit(f"unknown row {name!r}: one of {', '.join(ROWS)}")
        specs += [f"{name}:mixed"] if name == "dhfr-openmm" else [f"{name}:{d}" for d in ([dtype] if dtype else ["float32", "float64"])]
    print(f"load average at start: {os.getloadavg()}; {os.cpu_count()} cores", flush=True)
    rows = []
    for spec in specs:
        name, dtype = spec.split(":")
        rows.append(child_row(__file__, [spec, str(count)], dict(row=name, dtype=dtype)))
    print(f"load average at end: {os.getloadavg()}", flush=True)
    print_table(rows)
    print_targets(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
