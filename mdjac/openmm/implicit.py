"""OpenMM's implicit solvents as mdjac.longrange.born.GeneralizedBorn: GBSAOBCForce, and the CustomGBForces
of OpenMM's amber implicit solvents (openmm.app.internal.customgbforces: HCT, OBC1, OBC2, GBn, GBn2,
with or without salt screening and the ACE term, with or without a cutoff).

A CustomGBForce is recognised, not parsed: its settings (dielectrics, kappa, cutoff) are read from
the constants its energy terms carry, each amber class is built again with them, and the force is
taken only if every computed value, energy term, per-particle parameter and tabulated function's
name and kind is that class's, string for string. GBn's and GBn2's neck tables (Discrete2DFunctions
over radius indices, mdjac.longrange.born_neck) and each particle's radius index are read from the
force itself, so the neck's constants are the ones OpenMM evaluates. Any other CustomGBForce is refused.
"""
import math
import re

import numpy as np

from ..errors import InputError
from ..longrange.born import GBN, OBC2, GeneralizedBorn
from ..longrange.born_neck import GBN2_NECK_SCALE, GBN_NECK_SCALE, Neck

#: kJ mol^-1 nm e^-2, the Coulomb constant the CustomGBForces' expressions write.
CUSTOM_COULOMB_CONSTANT = 138.935485
#: kJ mol^-1 nm^-2: the ACE constant the CustomGBForces write, 28.3919551 = 4 pi gamma_sa.
CUSTOM_SURFACE_AREA_ENERGY = 28.3919551 / (4.0 * math.pi)
#: the amber classes mdjac states: class name -> (model, OBC coefficients or None for per-particle ones (GBn2's
#: alpha, beta, gamma), the name said in messages)
AMBER_FORMS = {
    "GBSAHCTForce": ("HCT", (0.0, 0.0, 0.0), "HCT (igb=1)"),
    "GBSAOBC1Force": ("OBC", (0.8, 0.0, 2.909125), "OBC1 (igb=2)"),
    "GBSAOBC2Force": ("OBC", OBC2, "OBC2 (igb=5)"),
    "GBSAGBnForce": ("OBC", GBN, "GBn (igb=7)"),
    "GBSAGBn2Force": ("OBC", None, "GBn2 (igb=8)"),
}
#: the amber classes with a neck correction, and its scale
NECK_FORMS = {"GBSAGBnForce": GBN_NECK_SCALE, "GBSAGBn2Force": GBN2_NECK_SCALE}
#: a particle's parameters that let a neck class build its energy terms (finalize): charge, radius nm,
#: screen, and GBn2's alpha, beta, gamma
_PROBE_PARTICLE = {"GBSAGBnForce": [0.0, 0.15, 0.5], "GBSAGBn2Force": [0.0, 0.15, 0.5, 1.0, 0.8, 4.85]}
_SETTINGS = re.compile(r"; solventDielectric=([^;]+); soluteDielectric=([^;]+); kappa=([^;]+); offset=([^;]+)"
                       r"(?:; cutoff=([^;]+))?$")


def _number(q):
    """A float in OpenMM's MD units from a Quantity or a number."""
    from openmm import unit
    return float(q.value_in_unit_system(unit.md_unit_system)) if unit.is_quantity(q) else float(q)


def _cutoff(force, method_names):
    """The force's cutoff (nm), or None for NoCutoff; method_names: (NoCutoff, CutoffNonPeriodic, CutoffPeriodic) values."""
    method = force.getNonbondedMethod()
    if method == method_names[0]:
        return None
    if method in method_names[1:]:
        return _number(force.getCutoffDistance())
    raise InputError(f"{type(force).__name__} has nonbonded method {method}, which mdjac does not know: "
                     "use NoCutoff, CutoffNonPeriodic or CutoffPeriodic")


def gbsa_obc(force, n):
    """[GeneralizedBorn] of a GBSAOBCForce (OBC2, the inside-atom term, ACE with its surface-area energy)."""
    import openmm
    rows = [force.getParticleParameters(i) for i in range(force.getNumParticles())]
    if len(rows) != n:
        raise InputError(f"the GBSAOBCForce has {len(rows)} particles but the System {n}: give every particle its parameters")
    charges, radii, scales = (np.array([_number(row[k]) for row in rows]) for k in range(3))
    cls = openmm.GBSAOBCForce
    cutoff = _cutoff(force, (cls.NoCutoff, cls.CutoffNonPeriodic, cls.CutoffPeriodic))
    return [GeneralizedBorn(charges, radii, scales, solute_dielectric=force.getSoluteDielectric(),
                            solvent_dielectric=force.getSolventDielectric(),
                            surface_area_energy=_number(force.getSurfaceAreaEnergy()), cutoff=cutoff)]


def _signature(force):
    """Everything that defines a CustomGBForce's energy besides its particles' values."""
    return (tuple(force.getPerParticleParameterName(k) for k in range(force.getNumPerParticleParameters())),
            tuple(tuple(force.getComputedValueParameters(k)) for k in range(force.getNumComputedValues())),
            tuple(tuple(force.getEnergyTermParameters(k)) for k in range(force.getNumEnergyTerms())),
            force.getNumGlobalParameters(), force.getNumExclusions(),
            tuple((force.getTabulatedFunctionName(k), type(force.getTabulatedFunction(k)).__name__)
                  for k in range(force.getNumTabulatedFunctions())))


def _amber_class(force):
    """(class name, settings dict) of the amber CustomGBForce ``force`` is, or raise InputError."""
    from openmm.app.internal import customgbforces
    unknown = ("the System has a CustomGBForce that is not one of OpenMM's amber implicit solvents "
               f"({', '.join(f[2] for f in AMBER_FORMS.values())}): mdjac cannot state it; use one of those")
    mine = _signature(force)
    if not force.getNumEnergyTerms():
        raise InputError(unknown)
    found = _SETTINGS.search(force.getEnergyTermParameters(0)[0])
    if found is None:
        raise InputError(unknown)
    solvent, solute, kappa, offset = (float(v) for v in found.groups()[:4])
    cutoff = None if found.group(5) is None else float(found.group(5))
    sa = "ACE" if any("28.3919551" in force.getEnergyTermParameters(k)[0] for k in range(force.getNumEnergyTerms())) else None
    for name in AMBER_FORMS:
        candidate = getattr(customgbforces, name)(solventDielectric=solvent, soluteDielectric=solute, SA=sa,
                                                  cutoff=cutoff, kappa=kappa)
        if name in _PROBE_PARTICLE:            # the neck classes write their terms when finalized
            candidate.addParticle(list(_PROBE_PARTICLE[name]))
            candidate.finalize()
        if _signature(candidate) == mine:
            return name, dict(solvent=solvent, solute=solute, kappa=kappa, offset=offset, cutoff=cutoff, sa=sa)
    raise InputError(unknown)


def custom_gb(force, n):
    """[GeneralizedBorn] of a CustomGBForce made by OpenMM's amber implicit solvents (module docstring)."""
    import openmm
    from openmm.app.internal import customgbforces
    name, s = _amber_class(force)
    offset = getattr(customgbforces, name).OFFSET
    if s["offset"] != offset:
        raise InputError(f"the CustomGBForce's offset is {s['offset']} nm, not {offset}: mdjac cannot state it")
    cls = openmm.CustomGBForce
    cutoff = _cutoff(force, (cls.NoCutoff, cls.CutoffNonPeriodic, cls.CutoffPeriodic))
    if (cutoff is None) != (s["cutoff"] is None) or (cutoff is not None and abs(cutoff - s["cutoff"]) > 1e-12 * cutoff):
        raise InputError(f"the CustomGBForce's cutoff ({cutoff} nm) is not the one its energy is shifted by "
                         f"({s['cutoff']} nm): build it with the same cutoff")
    rows = np.array([force.getParticleParameters(i) for i in range(force.getNumParticles())],
                    dtype=np.float64).reshape(-1, force.getNumPerParticleParameters())
    if len(rows) != n:
        raise InputError(f"the CustomGBForce has {len(rows)} particles but the System {n}: give every particle its parameters")
    charges, offset_radii, scaled = rows[:, :3].T
    model, obc, _ = AMBER_FORMS[name]
    return [GeneralizedBorn(charges, offset_radii + offset, scaled / offset_radii, solute_dielectric=s["solute"],
                            solvent_dielectric=s["solvent"],
                            surface_area_energy=CUSTOM_SURFACE_AREA_ENERGY if s["sa"] else 0.0, model=model,
                            obc=rows[:, 3:6] if obc is None else obc, inside=False, kappa=s["kappa"], cutoff=cutoff,
                            coulomb_constant=CUSTOM_COULOMB_CONSTANT, offset=offset,
                            neck=_neck(force, NECK_FORMS[name], rows[:, -1]) if name in NECK_FORMS else None)]


def _neck(force, scale, index):
    """The :class:`mdjac.longrange.born_neck.Neck` of a GBn or GBn2 CustomGBForce: its getm0 and getd0
    Discrete2DFunctions, [a, b] = values[a + K b], and the particles' radius indices (N,)."""
    tables = {}
    for k in range(force.getNumTabulatedFunctions()):
        xsize, ysize, values = force.getTabulatedFunction(k).getFunctionParameters()
        tables[force.getTabulatedFunctionName(k)] = np.array(values, dtype=np.float64).reshape(ysize, xsize).T
    return Neck(scale, index, tables["getm0"], tables["getd0"])
