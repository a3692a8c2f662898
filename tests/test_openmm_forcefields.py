"""The OpenMM adapter against OpenMM itself, force group by force group, on systems built with
OpenMM's packaged force fields: energies and forces to 1e-9 relative, the Jacobian against central
differences of OpenMM's forces to 1e-6 relative."""
import numpy as np
import pytest

from openmm_reference import app, assert_parity, openmm, parity_by_force, peptide, solvated, unit, villin

import mdjac
from mdjac.openmm import adapt

pytestmark = pytest.mark.slow    # every test builds and differentiates a force field system

ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL = 1e-9, 1e-9, 1e-6


@pytest.mark.parametrize("method", ["NoCutoff", "CutoffNonPeriodic"])
def test_amber14_peptide_in_vacuum(amber14, method):
    topology, x = peptide()
    kwargs = {} if method == "NoCutoff" else {"nonbondedCutoff": 0.6 * unit.nanometer}
    system = amber14.createSystem(topology, nonbondedMethod=getattr(app, method), constraints=None, **kwargs)
    results = parity_by_force(system, x, jacobian_atoms=[0, 6, 14], report=print)
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)
    potential = adapt(system)
    assert potential.box is None and np.allclose(potential.masses[:3], [1.008, 12.01, 1.008])


@pytest.mark.parametrize("switch", [None, 0.7])
def test_amber14_peptide_in_tip3p_with_reaction_field(amber14, solvated_peptide, switch):
    topology, x, box = solvated_peptide
    kwargs = {} if switch is None else {"switchDistance": switch * unit.nanometer}
    system = amber14.createSystem(topology, nonbondedMethod=app.CutoffPeriodic, nonbondedCutoff=0.8 * unit.nanometer,
                                  constraints=None, rigidWater=False, **kwargs)
    results = parity_by_force(system, x, box=box, jacobian_atoms=[3, 40, 300], report=print)
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)
    potential = adapt(system)
    assert np.allclose(potential.box, box, rtol=0, atol=1e-12)


def test_spce_water_box_whole_potential():
    forcefield = app.ForceField("amber14/spce.xml")
    topology, x, box = solvated(forcefield, app.Topology(), np.zeros((0, 3)), padding=1.0, model="spce")
    system = forcefield.createSystem(topology, nonbondedMethod=app.CutoffPeriodic, nonbondedCutoff=0.9 * unit.nanometer,
                                     constraints=None, rigidWater=False)
    results = parity_by_force(system, x, box=box, report=print)
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)
    with pytest.warns(UserWarning, match="unconstrained"):
        adapt(forcefield.createSystem(topology, nonbondedMethod=app.CutoffPeriodic, nonbondedCutoff=0.9 * unit.nanometer))


def test_charmm36_villin_in_vacuum():
    topology, x = villin()
    system = app.ForceField("charmm36.xml").createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None)
    results = parity_by_force(system, x, jacobian_atoms=[10, 200, 205], report=print)
    assert {name.split("#")[0] for name in results} >= {"CMAPTorsionForce", "CustomTorsionForce", "CustomNonbondedForce",
                                                         "CustomBondForce"}
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)


def test_amber19_villin_with_cmap_in_vacuum():
    topology, x = villin()
    system = app.ForceField("amber19-all.xml").createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None)
    results = parity_by_force(system, x, jacobian_atoms=[4, 20, 205], report=print)
    assert "CMAPTorsionForce" in {name.split("#")[0] for name in results}
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)


def test_amber14_peptide_in_tip3p_with_ewald(amber14, solvated_peptide):
    """NonbondedForce.Ewald (scaled 1-4 exceptions, TIP3P, switch): energies and forces to 1e-9 of
    OpenMM's, force group by force group, the Jacobian (with its long-range part) against central
    differences of OpenMM's forces."""
    topology, x, box = solvated_peptide
    system = amber14.createSystem(topology, nonbondedMethod=app.Ewald, nonbondedCutoff=0.8 * unit.nanometer,
                                  constraints=None, rigidWater=False, switchDistance=0.7 * unit.nanometer)
    results = parity_by_force(system, x, box=box, jacobian_atoms=[3, 40, 300], report=print)
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)
    potential = adapt(system)
    assert potential.force_jacobian(x, atoms=[0, 1, 2]).long_range is not None


def test_pme_is_openmms_pme(amber14, solvated_peptide):
    """PME is OpenMM's own smooth PME (mdjac.longrange.pme): energies and forces to OpenMM's PME force group by
    force group at a tight tolerance (its own grid), the Jacobian (with its mesh part) against central
    differences of OpenMM's forces."""
    topology, x, box = solvated_peptide
    system = amber14.createSystem(topology, nonbondedMethod=app.PME, nonbondedCutoff=0.8 * unit.nanometer,
                                  constraints=None, rigidWater=False, ewaldErrorTolerance=1e-5)
    results = parity_by_force(system, x, box=box, jacobian_atoms=[3, 40, 300], report=print)
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)
