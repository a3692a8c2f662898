"""OpenMM's custom forces through their Lepton expressions, against OpenMM (Reference platform):
each force type with expressions that use every supported function, tabulated functions,
sub-expressions, global and per-instance parameters."""
import numpy as np
import pytest

from openmm_reference import assert_parity, openmm, parity_by_force

import mdjac
from mdjac.openmm import adapt
from mdjac.openmm.expressions import parse

ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL = 1e-9, 1e-9, 1e-6

# every supported function at least once, away from their kinks at these geometries
BOND = ("k*(r-r0)^2 + a*exp(-r) + 0.3*log(r) + sqrt(r) + sin(r) + cos(2*r) + tan(r/3) + sec(r/3) + csc(r+1)"
        " + cot(r+0.5) + asin(r/3) + acos(r/4) + atan(r) + atan2(r, 2) + sinh(r) + cosh(r) + tanh(r) + erf(r) + erfc(r)"
        " + step(r-0.05)*r^3 + delta(r0-0.1)*r + min(r, 5)^2 + max(r, 0.01) + select(k-100, r, 2*r) + abs(r-3)^3"
        " + square(r) + cube(r) + recip(r) + floor(r0*10)*r + ceil(r0)*r + idx*r^-2 + g*u^2; u = r - half; half = r0/2")
ANGLE = "k*(theta-theta0)^2 + 0.1*cot(theta)^2 - theta^3/7 + h"
TORSION = "k*(1+cos(n*theta-theta0)) + 0.5*theta + 0.2*theta^2 + 0.1*sin(theta)"
EXTERNAL = "k*((x-x0)^2 + (y-y0)^2 + (z-z0)^2) + 0.01*x*y*z + w*z^4"
PAIR = ("acoef(type1, type2)/r^12 - bcoef(type1, type2)/r^6 + q1*q2*erfc(alpha*r)/r + sqrt(eps1*eps2)*exp(-r^2)"
        " + scale(type1)*scale(type2)*r^-4; alpha = 2.5")


def _positions(n, seed=7):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(3), np.arange(3), np.arange(2), indexing="ij"), -1).reshape(-1, 3)[:n]
    return 0.35 * grid + 0.05 * rng.standard_normal((n, 3)) + 0.4


def _custom_system(n=12):
    system = openmm.System()
    for i in range(n):
        system.addParticle(12.0)
    bond = openmm.CustomBondForce(BOND)
    for p in ("k", "r0", "a", "idx"):
        bond.addPerBondParameter(p)
    bond.addGlobalParameter("g", 3.0)
    for b, (i, j) in enumerate([(0, 1), (1, 2), (3, 4), (5, 9)]):
        bond.addBond(i, j, [150.0 + 20 * b, 0.1 + 0.05 * b, 0.7, float(b % 3)])
    angle = openmm.CustomAngleForce(ANGLE)
    angle.addPerAngleParameter("k")
    angle.addPerAngleParameter("theta0")
    angle.addGlobalParameter("h", 1.5)
    for a, (i, j, k) in enumerate([(0, 1, 2), (2, 3, 4), (6, 7, 8)]):
        angle.addAngle(i, j, k, [40.0 + a, 1.8 + 0.1 * a])
    torsion = openmm.CustomTorsionForce(TORSION)
    for p in ("k", "n", "theta0"):
        torsion.addPerTorsionParameter(p)
    for t, quad in enumerate([(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]):
        torsion.addTorsion(*quad, [3.0 + t, float(t + 1), 0.3 * t])
    external = openmm.CustomExternalForce(EXTERNAL)
    for p in ("k", "x0", "y0", "z0"):
        external.addPerParticleParameter(p)
    external.addGlobalParameter("w", 0.25)
    for i in range(0, n, 2):
        external.addParticle(i, [500.0 + i, 0.4, 0.5, 0.6])
    for force in (bond, angle, torsion, external):
        system.addForce(force)
    return system


def _pair_force(method, cutoff=None, switch=None):
    pair = openmm.CustomNonbondedForce(PAIR)
    for p in ("type", "q", "eps"):
        pair.addPerParticleParameter(p)
    acoef = np.array([[1e-6, 2e-6, 3e-6], [2e-6, 4e-6, 5e-6], [3e-6, 5e-6, 9e-6]])
    bcoef = np.array([[1e-3, 2e-3, 2.5e-3], [2e-3, 3e-3, 3.5e-3], [2.5e-3, 3.5e-3, 4e-3]])
    bcoef[0, 1] = bcoef[1, 0] = 2.2e-3  # an NBFIX-like override (OpenMM indexes values[x + 3 y]; tables are symmetric:
    # OpenMM's neighbour list may present a pair in either order)
    pair.addTabulatedFunction("acoef", openmm.Discrete2DFunction(3, 3, acoef.T.ravel().tolist()))
    pair.addTabulatedFunction("bcoef", openmm.Discrete2DFunction(3, 3, bcoef.T.ravel().tolist()))
    pair.addTabulatedFunction("scale", openmm.Discrete1DFunction([1e-4, 2e-4, 3e-4]))
    pair.setNonbondedMethod(method)
    if cutoff is not None:
        pair.setCutoffDistance(cutoff)
    if switch is not None:
        pair.setUseSwitchingFunction(True)
        pair.setSwitchingDistance(switch)
    return pair


def _add_particles(pair, n, exclusions):
    for i in range(n):
        pair.addParticle([float(i % 3), 0.3 * (-1) ** i, 0.2 + 0.01 * i])
    for i, j in exclusions:
        pair.addExclusion(i, j)


@pytest.mark.slow
def test_bond_angle_torsion_external_with_every_function():
    system = _custom_system()
    x = _positions(12)
    results = parity_by_force(system, x, jacobian_atoms=[0, 1, 2, 5, 9], report=print)
    assert len(results) == 4
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)


@pytest.mark.parametrize("method, cutoff, switch", [
    (openmm.CustomNonbondedForce.NoCutoff, None, None),
    (openmm.CustomNonbondedForce.CutoffNonPeriodic, 0.6, None),
    (openmm.CustomNonbondedForce.CutoffNonPeriodic, 0.6, 0.45),
    (openmm.CustomNonbondedForce.CutoffPeriodic, 0.6, 0.5)])
def test_custom_nonbonded_with_tables_exclusions_cutoff_and_switch(method, cutoff, switch):
    n = 12
    system = openmm.System()
    for i in range(n):
        system.addParticle(1.0)
    pair = _pair_force(method, cutoff, switch)
    _add_particles(pair, n, [(0, 1), (2, 5), (3, 4)])
    system.addForce(pair)
    box = None
    if method == openmm.CustomNonbondedForce.CutoffPeriodic:
        box = np.array([1.3, 1.4, 1.5])
        system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in np.diag(box)))
    results = parity_by_force(system, _positions(n), box=box, jacobian_atoms=[0, 4, 11], report=print)
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)


def test_lepton_precedence_matches_python_semantics():
    # -x^2 is -(x^2) and ^ is right-associative in Lepton, as ** in Python
    assert parse("-x^2") == ("neg", ("op", "^", ("var", "x"), ("num", 2.0)))
    assert parse("2^3^2") == ("op", "^", ("num", 2.0), ("op", "^", ("num", 3.0), ("num", 2.0)))
    assert parse("a*b; b = c + 1; c = 2") == ("op", "*", ("var", "a"), ("op", "+", ("num", 2.0), ("num", 1.0)))


def test_unsupported_forces_and_functions_are_refused_by_name():
    system = openmm.System()
    for _ in range(4):
        system.addParticle(1.0)
    system.addForce(openmm.CustomCompoundBondForce(2, "distance(p1, p2)"))
    with pytest.raises(mdjac.InputError, match="CustomCompoundBondForce"):
        adapt(system)
    system.removeForce(0)
    bond = openmm.CustomBondForce("foo(r)")
    bond.addBond(0, 1, [])
    system.addForce(bond)
    with pytest.raises(mdjac.InputError, match="foo"):
        adapt(system)


def _periodic_pair_system(n, groups=None):
    """A periodic CustomNonbondedForce with a switch and the long-range correction: (System, box (3,) nm)."""
    system = openmm.System()
    for _ in range(n):
        system.addParticle(1.0)
    pair = _pair_force(openmm.CustomNonbondedForce.CutoffPeriodic, 0.6, 0.5)
    pair.setUseLongRangeCorrection(True)
    _add_particles(pair, n, [(0, 1), (2, 5), (3, 4)])
    for set1, set2 in groups or ():
        pair.addInteractionGroup(set1, set2)
    system.addForce(pair)
    box = np.array([1.3, 1.4, 1.5])
    system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in np.diag(box)))
    return system, box


@pytest.mark.parametrize("groups", [None, [([0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8]), ([9, 10], [0, 11])]],
                         ids=["all pairs", "interaction groups"])
def test_custom_nonbonded_long_range_correction_and_interaction_groups(groups):
    n = 12
    system, box = _periodic_pair_system(n, groups)
    results = parity_by_force(system, _positions(n), box=box, jacobian_atoms=[0, 4, 9, 11], report=print)
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)
    # the correction alone: OpenMM's energy with it minus without, against mdjac's c / V
    context = openmm.Context(system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(_positions(n))
    with_correction = context.getState(getEnergy=True).getPotentialEnergy()._value
    system.getForce(0).setUseLongRangeCorrection(False)
    context.reinitialize(preserveState=True)
    correction = with_correction - context.getState(getEnergy=True).getPotentialEnergy()._value
    ours = [t for t in adapt(_periodic_pair_system(n, groups)[0]).terms if isinstance(t, mdjac.terms.LongRangeDispersion)]
    assert len(ours) == 1 and abs(correction) > 1e-6
    assert abs(ours[0].coefficient / np.prod(box) - correction) < 1e-7 * abs(correction)   # OpenMM evaluates in float32: 4e-9, 7e-9
