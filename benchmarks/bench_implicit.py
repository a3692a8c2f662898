"""Generalized Born implicit solvent on a protein: what the factored Jacobian costs against a force
evaluation, how far it is from OpenMM's Reference platform, and the protein's normal modes.

The DHFR of OpenMM's implicit-solvent benchmark: the protein of the JAC PDB (shared/data/dhfr-jac.pdb)
without water and ions, hydrogens rebuilt by OpenMM's Modeller, amber99sb.xml + amber99_obc.xml
(GBSAOBCForce: OBC2, ACE), no cutoff, minimised by OpenMM (L-BFGS, CPU platform) to settle the
hydrogens. In one process, float64 then float32 positions: the best of 3 calls of energy_and_forces
and of force_jacobian, each on a new frame, (the replicate strategy: bonded and nonbonded terms by the radial route, the
GB term's Jacobian part factored) after a first call, their ratio, each for the whole potential and
the GB term alone; the Jacobian's matvec against a force evaluation; energy, forces and a few
Jacobian columns against OpenMM's Reference platform (central differences of its forces, h = 1e-5
nm); the 10 lowest normal modes (dense eigh, :data:`MODES_METHOD`), timed against a force evaluation. Then
``mdjac modes`` on the System XML (no minimisation) as a user runs it, timed.

Run: .venv/bin/python benchmarks/bench_implicit.py [PDB, or villin (OpenMM's test.pdb); default
../shared/data/dhfr-jac.pdb or /work/shared/data/dhfr-jac.pdb] [quick: float64 and the whole potential
only, one timed call each; or modes: modes_through_a_file alone, each step in a process of its own: DHFR's
modes this way, since one process holding the table's Jacobians and the modes would pass 4 GB]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import best, peak_gb

HERE = os.path.dirname(os.path.abspath(__file__))
#: the modes' solver: dense eigh, the GB part added in place (BornJacobian.add_dense). Lanczos on the matvec took
#: 18,485 matvecs on minimised villin (its lowest modes crowd near zero): benchmarks/bench-implicit-2026-12-03.txt
MODES_METHOD = "dense"
CANDIDATES = [os.path.join(HERE, "..", "..", "shared", "data", "dhfr-jac.pdb"), "/work/shared/data/dhfr-jac.pdb"]


def protein_system(pdb_path):
    """(openmm.System, topology, positions nm (N, 3)) of the protein in OBC2, minimised by OpenMM."""
    import openmm
    from openmm import app, unit
    if pdb_path == "villin":        # OpenMM's test.pdb: the villin headpiece in water
        pdb_path = os.path.join(os.path.dirname(app.__file__), "data", "test.pdb")
    pdb = app.PDBFile(pdb_path)
    ff = app.ForceField("amber99sb.xml", "amber99_obc.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.deleteWater()
    modeller.delete([r for r in modeller.topology.residues() if r.name.upper() in ("NA", "CL", "NA+", "CL-", "SOD", "CLA", "POT")])
    modeller.delete([a for a in modeller.topology.atoms() if a.element is not None and a.element.symbol == "H"])
    modeller.addHydrogens(ff)
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff, constraints=None)
    context = openmm.Context(system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 100)
    x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return system, modeller.topology, np.array(x)


def openmm_reference(system, x, columns):
    """OpenMM Reference: (energy, forces (N, 3), J columns (N, 3, len(columns), 3) by central differences)."""
    import openmm
    from openmm import unit
    context = openmm.Context(system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))

    def ef(pos):
        context.setPositions(pos)
        s = context.getState(getEnergy=True, getForces=True)
        return (s.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
                s.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
    e, f = ef(x)
    cols = np.zeros((len(x), 3, len(columns), 3))
    h = 1e-5
    for c, j in enumerate(columns):
        for b in range(3):
            xp, xm = x.copy(), x.copy()
            xp[j, b] += h
            xm[j, b] -= h
            cols[:, :, c, b] = (ef(xp)[1] - ef(xm)[1]) / (2 * h)
    return e, np.array(f), cols


MODES_CHILD = """
import json, resource, sys, time
import numpy as np
import mdjac
ref = np.load(sys.argv[2])
t = time.perf_counter()
with mdjac.open_trajectory(sys.argv[1]) as frames:
    frame = frames[0]
J, n, columns = frame.jacobian, len(ref["x"]), ref["columns"]
read = time.perf_counter() - t
basis = np.zeros((n, 3, len(columns), 3))
for c, j in enumerate(columns):
    basis[j, :, c, :] = np.eye(3)
got = J.matvec(basis.reshape(3 * n, -1)).reshape(n, 3, len(columns), 3)
cols = ref["cols"]
t = time.perf_counter()
modes = mdjac.normal_modes(J, ref["masses"], positions=ref["x"], project="molecule", k=10, method=sys.argv[3])
print(json.dumps(dict(read_s=read, modes_s=time.perf_counter() - t, solver=modes.solver,
                      lowest=[round(float(w), 2) for w in modes.frequencies[:10]],
                      column_error=float(np.abs(got - cols).max() / np.abs(cols).max()),
                      force_error=float(np.abs(frame.forces - ref["f"]).max() / np.abs(ref["f"]).max()),
                      part_bytes=J.long_range.nbytes, blocks=len(J.rows), mindspore="mindspore" in sys.modules,
                      peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2)))
"""


def modes_through_a_file(system, topology, x0, potential):
    """The 10 lowest modes as a user gets them, each step in a process of its own (peak memory per process):
    ``mdjac compute`` of the frame (float64) into H5MD, then a reader (no MindSpore) takes its Jacobian, compares
    its columns and forces with OpenMM's, and runs the modes. Prints one line per step."""
    import resource
    import openmm
    from openmm import app, unit
    from mdjac.io import open_writer
    bindir = os.path.dirname(sys.executable)
    n = len(x0)
    columns = [0, n // 2, n - 1]
    e_ref, f_ref, cols_ref = openmm_reference(system, x0, columns)
    t_force, (e, f) = best(lambda: potential.energy_and_forces(x0), 1)
    print(f"against OpenMM Reference (double): energy {e_ref:.10g} kJ/mol, rel. error {abs(e - e_ref) / abs(e_ref):.1e}; "
          f"forces max rel. error {np.abs(f - f_ref).max() / np.abs(f_ref).max():.1e}; force evaluation {t_force:.1f} s "
          f"(first call, the compiled graphs cached); peak RSS {peak_gb():.2f} GB", flush=True)
    t_force, _ = best(lambda: potential.energy_and_forces(x0 + 3e-5), 1)     # a new frame: the force time alone
    print(f"force evaluation (a new frame): {t_force:.1f} s", flush=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as folder:
        xml, frame, out, ref = (os.path.join(folder, name) for name in ("system.xml", "frame.h5", "jacobian.h5", "ref.npz"))
        with open(xml, "w") as handle:
            handle.write(openmm.XmlSerializer.serialize(system))
        with open(os.path.join(folder, "system.pdb"), "w") as handle:     # the topology the XML needs beside it
            app.PDBFile.writeFile(topology, x0 * unit.nanometer, handle)
        with open_writer(frame, n, forces=False, jacobian_atoms=None, dtype=np.float64) as writer:
            writer.append(0, 0.0, x0)           # the positions in full precision (a PDB keeps 1e-4 nm)
        np.savez(ref, x=x0, f=f_ref, cols=cols_ref, columns=columns, masses=potential.masses)
        command = [os.path.join(bindir, "mdjac"), "compute", frame, "--system", xml, "--float64", "-o", out]
        t = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        t_jac = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
        if done.returncode:
            print(f"mdjac compute failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1]}")
            return
        print(f"$ mdjac compute frame.h5 --system system.xml --float64 -o jacobian.h5   [{t_jac:.0f} s with the process's "
              f"start and compilation ({t_jac / t_force:.1f} force evaluations), peak RSS {peak:.2f} GB; file "
              f"{os.path.getsize(out) / 1e9:.2f} GB; load average {os.getloadavg()[0]:.1f}]", flush=True)
        done = subprocess.run([sys.executable, "-c", MODES_CHILD, out, ref, MODES_METHOD], capture_output=True, text=True)
        if done.returncode:
            print(f"the modes failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1]}")
            return
        found = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"read back (a process without MindSpore: {not found['mindspore']}): {found['blocks']} blocks and a GB part of "
              f"{found['part_bytes'] / 1e9:.2f} GB in {found['read_s']:.1f} s; Jacobian columns {columns} vs central differences "
              f"of OpenMM's forces: max rel. error {found['column_error']:.1e}; stored forces {found['force_error']:.1e}")
        print(f"10 lowest normal modes (float64, method={MODES_METHOD!r}): {found['modes_s']:.1f} s "
              f"({found['modes_s'] / t_force:.1f} force evaluations), {found['solver']}; peak RSS {found['peak_gb']:.2f} GB; "
              f"lowest wavenumbers (cm^-1): {', '.join(f'{w:.2f}' for w in found['lowest'])}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def main():
    pdb_path = sys.argv[1] if len(sys.argv) > 1 else next((p for p in CANDIDATES if os.path.isfile(p)), CANDIDATES[-1])
    quick = "quick" in sys.argv[2:]      # float64 and the whole potential only, one timed call each
    modes_only = "modes" in sys.argv[2:]     # modes_through_a_file only
    import mdjac
    from mdjac.longrange.born import GeneralizedBorn
    from mdjac.openmm import adapt
    t = time.perf_counter()
    system, topology, x0 = protein_system(pdb_path)
    n = len(x0)
    print(f"Generalized Born (GBSAOBCForce, OBC2, no cutoff): the protein of {os.path.basename(pdb_path)}, {n} atoms, "
          f"amber99sb + amber99_obc, minimised by OpenMM ({time.perf_counter() - t:.0f} s); "
          f"load average {os.getloadavg()[0]:.1f} at the start (2 cores, shared)")
    potential = adapt(system)
    if modes_only:
        modes_through_a_file(system, topology, x0, potential)
        return
    gb = mdjac.Potential([t for t in potential.terms if isinstance(t, GeneralizedBorn)], n_atoms=n)
    header = (f"{'potential':>10} {'dtype':>8} {'force (s)':>10} {'Jacobian (s)':>13} {'J/force':>8} "
              f"{'matvec (s)':>11} {'first J (s)':>12}")
    print(header)
    print("-" * len(header))
    repeat = 1 if quick else 3
    for dtype in (np.float64,) if quick else (np.float64, np.float32):
        x = x0.astype(dtype)
        # a new frame at each call (1e-5 nm apart): the GB term keeps the last frame's derivatives for its Jacobian
        frames = [(x0 + 1e-5 * k).astype(dtype) for k in range(1, 8)]
        fresh = lambda: frames.append(frames.pop(0)) or frames[0]  # noqa: E731
        for name, pot in (("whole", potential),) + ((("GB alone", gb),) if not quick else ()):
            pot.energy_and_forces(x)
            t = time.perf_counter()
            pot.force_jacobian(x)
            first = time.perf_counter() - t
            t_force, _ = best(lambda: pot.energy_and_forces(fresh()), repeat)
            t_jac, J = best(lambda: pot.force_jacobian(fresh()), repeat)
            v = np.random.default_rng(0).normal(size=3 * n)
            t_mv, _ = best(lambda: J.matvec(v), 3)
            print(f"{name:>10} {np.dtype(dtype).name:>8} {t_force:>10.3f} {t_jac:>13.3f} {t_jac / t_force:>8.2f} "
                  f"{t_mv:>11.3f} {first:>12.1f}", flush=True)
            del J
    print(f"peak RSS {peak_gb():.2f} GB; load average {os.getloadavg()[0]:.1f}")

    columns = [0, n // 2, n - 1]
    e_ref, f_ref, cols_ref = openmm_reference(system, x0, columns)
    e, f = potential.energy_and_forces(x0)
    J = potential.force_jacobian(x0)
    basis = np.zeros((n, 3, len(columns), 3))
    for c, j in enumerate(columns):
        basis[j, :, c, :] = np.eye(3)
    got = J.matvec(basis.reshape(3 * n, -1)).reshape(n, 3, len(columns), 3)
    del J
    print(f"against OpenMM Reference (double): energy {e_ref:.10g} kJ/mol, rel. error {abs(e - e_ref) / abs(e_ref):.1e}; "
          f"forces max rel. error {np.abs(f - f_ref).max() / np.abs(f_ref).max():.1e}; Jacobian columns {columns} "
          f"vs central differences of its forces: max rel. error {np.abs(got - cols_ref).max() / np.abs(cols_ref).max():.1e}")

    t_force, _ = best(lambda: potential.energy_and_forces(x0 + 3e-5), 1)     # a new frame: the force time alone
    t = time.perf_counter()
    J = potential.force_jacobian(x0)
    t_jac = time.perf_counter() - t
    part = J.long_range
    print(f"float64 Jacobian: {t_jac:.1f} s ({t_jac / t_force:.2f} force evaluations of {t_force:.1f} s); its GB part "
          f"{part.nbytes / 1e9:.2f} GB ({len(part.pairs)} pairs), its {len(J.rows)} blocks {J.blocks.nbytes / 1e9:.2f} GB; "
          f"peak RSS {peak_gb():.2f} GB")
    t = time.perf_counter()
    modes = mdjac.normal_modes(J, potential.masses, positions=x0, project="molecule", k=10, method=MODES_METHOD)
    t_modes = time.perf_counter() - t
    print(f"normal modes (float64 Jacobian, method={MODES_METHOD!r}, 10 lowest): {t_modes:.1f} s "
          f"({t_modes / t_force:.1f} force evaluations; with the Jacobian {(t_modes + t_jac) / t_force:.1f}), {modes.solver}; "
          f"lowest wavenumbers (cm^-1): {', '.join(f'{w:.2f}' for w in modes.frequencies[:10])}")
    print(f"peak RSS {peak_gb():.2f} GB; load average {os.getloadavg()[0]:.1f}", flush=True)
    del J, part

    import openmm
    from openmm import app, unit
    with tempfile.TemporaryDirectory() as folder:
        xml = os.path.join(folder, "dhfr-obc2.xml")
        with open(xml, "w") as out:
            out.write(openmm.XmlSerializer.serialize(system))
        with open(os.path.join(folder, "dhfr-obc2.pdb"), "w") as out:
            app.PDBFile.writeFile(topology, x0 * unit.nanometer, out)
        command = [os.path.join(os.path.dirname(sys.executable), "mdjac"), "modes", xml, "--no-minimise", "-k", "10"]
        t = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        print(f"$ mdjac modes dhfr-obc2.xml --no-minimise -k 10   [{time.perf_counter() - t:.0f} s, exit {done.returncode}]")
        print(done.stdout.rstrip() or done.stderr.strip().splitlines()[-1])
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
