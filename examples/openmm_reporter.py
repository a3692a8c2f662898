"""A small solvated peptide from OpenMM's own force-field files, simulated a few steps with
mdjac's ForceJacobianReporter, read back with MDAnalysis.

    python examples/openmm_reporter.py [out.h5md]

Alanine dipeptide (mdjac's systems/alanine-dipeptide.pdb) with amber14 and TIP3P, solvated by
Modeller, reaction-field cutoff 0.8 nm (Ewald/PME are not supported yet), no constraints.
"""
import os
import sys

import numpy as np
import openmm
from openmm import app, unit

import MDAnalysis
import mdjac
from mdjac.openmm import ForceJacobianReporter

out = sys.argv[1] if len(sys.argv) > 1 else "openmm_reporter.h5md"
here = os.path.dirname(os.path.abspath(__file__))
pdb = app.PDBFile(os.path.join(here, "..", "systems", "alanine-dipeptide.pdb"))
forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
modeller = app.Modeller(pdb.topology, pdb.positions)
modeller.addSolvent(forcefield, model="tip3p", padding=0.8 * unit.nanometer)
system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.CutoffPeriodic,
                                 nonbondedCutoff=0.8 * unit.nanometer, constraints=None, rigidWater=False)
integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.0005 * unit.picoseconds)
simulation = app.Simulation(modeller.topology, system, integrator, openmm.Platform.getPlatformByName("CPU"))
simulation.context.setPositions(modeller.positions)
simulation.minimizeEnergy(maxIterations=50)

reporter = ForceJacobianReporter(out, 5, atoms=np.arange(22), overwrite=True)  # the peptide's rows and columns
simulation.reporters.append(reporter)
simulation.step(20)
reporter.close()

u = MDAnalysis.Universe(out)
print(f"{out}: {u.trajectory.n_frames} frames of {u.atoms.n_atoms} atoms, steps "
      f"{[ts.data['step'] for ts in u.trajectory]}")
with mdjac.open_trajectory(out) as frames:
    J = frames[-1].jacobian
    print(f"last frame: Jacobian of {len(J.atoms)} atoms, {J.nnz_blocks} nonzero 3x3 blocks, "
          f"|J|max {np.abs(J.blocks).max():.4g} kJ mol^-1 nm^-2")
