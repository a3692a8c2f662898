"""OpenMM as the independent reference for the adapter's tests: energies, forces and central
differences of OpenMM's forces (Reference platform, double precision)."""
import os

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
from openmm import app, unit  # noqa: E402

import mdjac  # noqa: E402
from mdjac.openmm import force_terms  # noqa: E402

DATA = os.path.join(os.path.dirname(openmm.__file__), "app", "data")
PEPTIDE_PDB = os.path.join(os.path.dirname(__file__), "..", "systems", "alanine-dipeptide.pdb")


def reference_context(system, positions):
    """A Reference-platform Context (always double precision), each force in its own group (group = force index, < 32)."""
    for k, force in enumerate(system.getForces()):
        force.setForceGroup(k)
    context = openmm.Context(system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    return context


def openmm_energy_forces(context, groups, positions=None):
    """(energy kJ/mol, forces (N, 3) kJ mol^-1 nm^-1) of the force groups (ints < 32), at ``positions`` (N, 3) nm
    if given (virtual sites then placed from their parents, as OpenMM's integrators place them)."""
    if positions is not None:
        context.setPositions(positions)
        context.computeVirtualSites()
    state = context.getState(getEnergy=True, getForces=True, groups=set(groups))
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def fd_jacobian_columns(context, groups, positions, atoms, h=1e-5):
    """Central differences of OpenMM's forces: (N, 3, len(atoms), 3) = dF_i / dx_j for j in atoms."""
    x = np.array(positions, dtype=np.float64)
    out = np.zeros((len(x), 3, len(atoms), 3))
    for c, j in enumerate(atoms):
        for b in range(3):
            xp, xm = x.copy(), x.copy()
            xp[j, b] += h
            xm[j, b] -= h
            fp = openmm_energy_forces(context, groups, xp)[1]
            fm = openmm_energy_forces(context, groups, xm)[1]
            out[:, :, c, b] = (fp - fm) / (2 * h)
    context.setPositions(x)
    return out


def jacobian_columns(jacobian, atoms):
    """The columns of ``atoms`` of a ForceJacobian that keeps every atom, (N, 3, len(atoms), 3) =
    dF_i / dx_j for j in atoms: J times unit vectors (:meth:`ForceJacobian.matvec`, long-range part
    included), without the dense (N, 3, N, 3) matrix."""
    n = jacobian.n
    flat = (3 * np.asarray(atoms)[:, None] + np.arange(3)).ravel()
    unit_vectors = np.zeros((3 * n, len(flat)))
    unit_vectors[flat, np.arange(len(flat))] = 1.0
    return jacobian.matvec(unit_vectors).reshape(n, 3, len(atoms), 3)


def assert_parity(results, energy_tol, force_tol, jacobian_tol=1e-6):
    """Assert every force's relative errors of :func:`parity_by_force` ({name: (energy, forces, Jacobian or None)})."""
    for name, (e, f, j) in results.items():
        assert e < energy_tol, f"{name}: energy relative error {e:.2e}"
        assert f < force_tol, f"{name}: force relative error {f:.2e}"
        assert j is None or j < jacobian_tol, f"{name}: Jacobian relative error {j:.2e}"


def parity_by_force(system, positions, box=None, jacobian_atoms=(), report=None):
    """Compare every force group of the System with the mdjac terms of that force.

    jacobian_atoms: atoms whose Jacobian columns are compared with central differences of OpenMM's
    forces (with, for each force, the first and last atom of its first listed instance).
    Returns {force name: (energy rel error, force rel error, jacobian rel error or None)}.
    """
    x = np.array(positions, dtype=np.float64)
    context = reference_context(system, x)
    out = {}
    for index, name, terms in force_terms(system):
        e_ref, f_ref = openmm_energy_forces(context, {index})
        potential = mdjac.Potential(terms, box=box, n_atoms=system.getNumParticles())
        e, f = potential.energy_and_forces(x)
        e_err = abs(e - e_ref) / max(abs(e_ref), 1e-12)
        f_err = float(np.abs(f - f_ref).max() / max(np.abs(f_ref).max(), 1e-12))
        j_err = None
        if len(jacobian_atoms):
            # the given columns, and those of the first atoms of the force's first listed instance
            listed = [t.index[0, [0, -1]] for t in terms if getattr(t, "index", None) is not None and len(t.index)]
            atoms = sorted(set(int(a) for a in jacobian_atoms) | (set(int(a) for a in listed[0]) if listed else set()))
            ref = fd_jacobian_columns(context, {index}, x, atoms)
            got = jacobian_columns(potential.force_jacobian(x), atoms)
            j_err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))
        out[f"{name}#{index}"] = (e_err, f_err, j_err)
        if report is not None:
            report(f"{name:22s} E {e_ref: .10g}  rel dE {e_err:.1e}  rel dF {f_err:.1e}  rel dJ {j_err if j_err is None else f'{j_err:.1e}'}")
    return out


def peptide():
    """Alanine dipeptide (mdjac's PDB): (topology, positions nm (N, 3))."""
    pdb = app.PDBFile(PEPTIDE_PDB)
    return pdb.topology, np.array(pdb.positions.value_in_unit(unit.nanometer))


def villin():
    """The villin headpiece of OpenMM's test.pdb, without water and ions: (topology, positions nm)."""
    pdb = app.PDBFile(os.path.join(DATA, "test.pdb"))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.deleteWater()
    modeller.delete([r for r in modeller.topology.residues() if r.name == "Cl"])
    return modeller.topology, np.array(modeller.positions.value_in_unit(unit.nanometer))


def solvated(forcefield, topology, positions, padding, model="tip3p"):
    """Modeller.addSolvent: (topology, positions nm, box (3,) nm)."""
    modeller = app.Modeller(topology, positions * unit.nanometer)
    modeller.addSolvent(forcefield, model=model, padding=padding * unit.nanometer)
    box = np.diag(np.array(modeller.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)))
    return modeller.topology, np.array(modeller.positions.value_in_unit(unit.nanometer)), box


def solvated_in(forcefield, topology, positions, shape, padding, model="tip3p"):
    """Modeller.addSolvent in a box of ``shape`` ('octahedron', 'dodecahedron'): (topology, positions nm,
    box vectors (3, 3) nm, rows, OpenMM's reduced form)."""
    modeller = app.Modeller(topology, positions * unit.nanometer)
    modeller.addSolvent(forcefield, model=model, padding=padding * unit.nanometer, boxShape=shape)
    box = np.array(modeller.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    return modeller.topology, np.array(modeller.positions.value_in_unit(unit.nanometer)), box


def openmm_context(charges, exclusions, box, cutoff, tolerance, exceptions=(), method="Ewald", configure=None):
    """An OpenMM Reference context (double precision) of NonbondedForce.Ewald (or ``method``): charges only
    (epsilon 0). configure: None, or a function called on the NonbondedForce before the context is made."""
    system = openmm.System()
    for _ in charges:
        system.addParticle(1.0)
    system.setDefaultPeriodicBoxVectors(*(np.diag(box) * unit.nanometer))
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(getattr(openmm.NonbondedForce, method))
    force.setCutoffDistance(cutoff)
    force.setEwaldErrorTolerance(tolerance)
    force.setUseDispersionCorrection(False)
    for q in charges:
        force.addParticle(float(q), 0.3, 0.0)
    for i, j in exclusions:
        force.addException(int(i), int(j), 0.0, 0.3, 0.0)
    for i, j, c in exceptions:
        force.addException(int(i), int(j), float(c), 0.3, 0.0)
    if configure is not None:
        configure(force)
    system.addForce(force)
    platform = openmm.Platform.getPlatformByName("Reference")
    return openmm.Context(system, openmm.VerletIntegrator(0.001), platform)


def charges_energy_forces(context, x):
    """(energy kJ/mol, forces (N, 3) kJ mol^-1 nm^-1) of a context of :func:`openmm_context` at x (N, 3) nm
    (every force group)."""
    return openmm_energy_forces(context, range(32), x)
