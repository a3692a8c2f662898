"""The OpenMM adapter against OpenMM itself, force group by force group, on systems built with
OpenMM's packaged force fields: energies and forces to 1e-9 relative, the Jacobian against central
differences of OpenMM's forces to 1e-6 relative."""
import numpy as np
import pytest

from openmm_reference import app, parity_by_force, peptide, solvated, unit, villin

import mdjac
from mdjac.openmm import adapt

ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL = 1e-9, 1e-9, 1e-6


def assert_parity(results):
    for name, (e, f, j) in results.items():
        assert e < ENERGY_TOL, f"{name}: energy relative error {e:.2e}"
        assert f < FORCE_TOL, f"{name}: force relative error {f:.2e}"
        assert j is None or j < JACOBIAN_TOL, f"{name}: Jacobian relative error {j:.2e}"


@pytest.fixture(scope="module")
def amber14():
    return app.ForceField("amber14-all.xml", "amber14/tip3p.xml")


@pytest.mark.parametrize("method", ["NoCutoff", "CutoffNonPeriodic"])
def test_amber14_peptide_in_vacuum(amber14, method):
    topology, x = peptide()
    kwargs = {} if method == "NoCutoff" else {"nonbondedCutoff": 0.6 * unit.nanometer}
    system = amber14.createSystem(topology, nonbondedMethod=getattr(app, method), constraints=None, **kwargs)
    assert_parity(parity_by_force(system, x, jacobian_atoms=[0, 6, 14], report=print))
    potential = adapt(system)
    assert potential.box is None and np.allclose(potential.masses[:3], [1.008, 12.01, 1.008])


@pytest.mark.parametrize("switch", [None, 0.7])
def test_amber14_peptide_in_tip3p_with_reaction_field(amber14, switch):
    topology, x, box = solvated(amber14, *peptide(), padding=0.9)
    kwargs = {} if switch is None else {"switchDistance": switch * unit.nanometer}
    system = amber14.createSystem(topology, nonbondedMethod=app.CutoffPeriodic, nonbondedCutoff=0.8 * unit.nanometer,
                                  constraints=None, rigidWater=False, **kwargs)
    assert_parity(parity_by_force(system, x, box=box, jacobian_atoms=[3, 40, 300], report=print))
    potential = adapt(system)
    assert np.allclose(potential.box, box, rtol=0, atol=1e-12)


def test_spce_water_box_whole_potential():
    forcefield = app.ForceField("amber14/spce.xml")
    topology, x, box = solvated(forcefield, app.Topology(), np.zeros((0, 3)), padding=1.0, model="spce")
    system = forcefield.createSystem(topology, nonbondedMethod=app.CutoffPeriodic, nonbondedCutoff=0.9 * unit.nanometer,
                                     constraints=None, rigidWater=False)
    assert_parity(parity_by_force(system, x, box=box, report=print))
    with pytest.warns(UserWarning, match="unconstrained"):
        adapt(forcefield.createSystem(topology, nonbondedMethod=app.CutoffPeriodic, nonbondedCutoff=0.9 * unit.nanometer))


def test_charmm36_villin_in_vacuum():
    topology, x = villin()
    system = app.ForceField("charmm36.xml").createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None)
    cmap = [k for k, f in enumerate(system.getForces()) if type(f).__name__ == "CMAPTorsionForce"]
    with pytest.raises(mdjac.InputError, match="CMAPTorsionForce"):
        adapt(system)
    system.removeForce(cmap[0])  # CMAP is not stated yet: every other force of CHARMM36 is
    assert_parity(parity_by_force(system, x, jacobian_atoms=[10, 200], report=print))


def test_ewald_and_pme_are_refused_by_name(amber14):
    topology, x, box = solvated(amber14, *peptide(), padding=0.9)
    for method in ("PME", "Ewald"):
        system = amber14.createSystem(topology, nonbondedMethod=getattr(app, method), nonbondedCutoff=0.8 * unit.nanometer)
        with pytest.raises(mdjac.InputError, match=method):
            adapt(system)
