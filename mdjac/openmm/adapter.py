"""An OpenMM ``System`` as an mdjac ``Potential``: ``adapt(system)``.

Each OpenMM force becomes mdjac terms stating the same energy (units: nm, kJ/mol, rad, e, amu;
OpenMM's own, read in float64 from the System):

=========================  ===================================================================
OpenMM force               mdjac terms
=========================  ===================================================================
HarmonicBondForce          terms.HarmonicBond, E = k/2 (r - r0)^2
HarmonicAngleForce         terms.HarmonicAngle, E = k/2 (theta - theta0)^2
PeriodicTorsionForce       terms.PeriodicTorsion, E = k (1 + cos(n phi - phase))
CMAPTorsionForce           terms.CMAPTorsion, bicubic patches of the map (as OpenMM builds them)
NonbondedForce             custom.PairFunction (LJ + Coulomb / reaction field / Ewald direct
                           space, switch) over non-exception pairs and over the exceptions
                           (fixed pairs); terms.LongRangeDispersion (see mdjac.openmm.nonbonded);
                           with Ewald or PME also terms.EwaldExclusion over every exception
                           pair, and ewald.EwaldReciprocal (Ewald: OpenMM's alpha and k grid) or
                           pme.PMEReciprocal (PME: OpenMM's smooth PME, its alpha and grid);
                           with LJPME as PME plus the LJ-PME direct space, a
                           DispersionExclusion pair term over every exception pair and
                           ljpme.DispersionPMEReciprocal (its own alpha and grid)
CustomBondForce, -Angle-,  custom.Bond/Angle/Torsion/PositionFunction of the Lepton expression
-Torsion-, -ExternalForce  (mdjac.openmm.expressions), per-instance parameters from the force
CustomNonbondedForce       custom.PairFunction of the expression with the per-particle
                           parameters of both atoms, exclusions, cutoff, switch, interaction
                           groups; its long-range correction as terms.LongRangeDispersion
                           (E = c / V, c as OpenMM integrates it: mdjac.openmm.corrections)
GBSAOBCForce               longrange.born.GeneralizedBorn (OBC2), NoCutoff or a cutoff
CustomGBForce              the same, for OpenMM's amber implicit solvents HCT, OBC1, OBC2, GBn and
                           GBn2 (with salt screening, ACE or not), recognised by their expressions
                           (mdjac.openmm.implicit); other CustomGBForces refused
CMMotionRemover            nothing (it changes velocities, not the potential)
=========================  ===================================================================

Virtual sites (Two/ThreeParticleAverage, OutOfPlane, LocalCoordinates) become mdjac.sites.VirtualSites:
the potential places them from their parents and its Jacobian is over the real atoms.
SymmetrySite, computed values and any other force are refused with an InputError naming them: mdjac
never returns a partial potential. Constraints are not part of the potential: the
Jacobian is that of the unconstrained potential, said once in a warning.

Periodicity: mdjac applies the minimum image to every displacement when the System is periodic
(OpenMM does it for nonbonded pairs only); the two agree whenever each molecule's bonded
displacements are shorter than half the box, as for whole molecules.
"""
import warnings

import numpy as np

from .. import sites, terms
from ..longrange import ewald, ljpme, pme, pme_grid
from ..terms import custom
from ..errors import InputError
from ..potential import Potential
from ..space import check_box
from . import corrections, implicit, nonbonded
from .expressions import Expression, Tabulated

IGNORED = ("CMMotionRemover",)


def _value(q):
    """A float in OpenMM's MD units (nm, kJ/mol, ps, e, amu, rad) from a Quantity or a number."""
    from openmm import unit
    if unit.is_quantity(q):
        return float(q.value_in_unit_system(unit.md_unit_system))
    return float(q)


def periodic_box(system):
    """The box of a periodic System, or None: (3,) edges nm if rectangular, else its (3, 3) box vectors
    (rows, nm; OpenMM keeps them in the reduced form mdjac.space uses)."""
    if not system.usesPeriodicBoundaryConditions():
        return None
    return check_box([[_value(c) for c in v] for v in system.getDefaultPeriodicBoxVectors()])


def masses(system):
    """(N,) particle masses in amu."""
    return np.array([_value(system.getParticleMass(i)) for i in range(system.getNumParticles())])


# ----------------------------------------------------------------------------- standard forces
def _harmonic_bonds(force, n):
    rows = [force.getBondParameters(i) for i in range(force.getNumBonds())]
    if not rows:
        return []
    pairs = np.array([r[:2] for r in rows], dtype=np.int64)
    return [terms.HarmonicBond(pairs, [_value(r[3]) for r in rows], [_value(r[2]) for r in rows])]


def _harmonic_angles(force, n):
    rows = [force.getAngleParameters(i) for i in range(force.getNumAngles())]
    if not rows:
        return []
    triples = np.array([r[:3] for r in rows], dtype=np.int64)
    return [terms.HarmonicAngle(triples, [_value(r[4]) for r in rows], [_value(r[3]) for r in rows])]


def _periodic_torsions(force, n):
    rows = [force.getTorsionParameters(i) for i in range(force.getNumTorsions())]
    if not rows:
        return []
    quads = np.array([r[:4] for r in rows], dtype=np.int64)
    return [terms.PeriodicTorsion(quads, [_value(r[6]) for r in rows], [float(r[4]) for r in rows],
                                  [_value(r[5]) for r in rows])]


def _cmap_torsions(force, n):
    maps = []
    for k in range(force.getNumMaps()):
        size, energy = force.getMapParameters(k)
        values = np.array([_value(e) for e in energy], dtype=np.float64)
        maps.append(values.reshape(size, size).T)        # OpenMM: energy[a + size*b], a the first angle
    rows = [force.getTorsionParameters(i) for i in range(force.getNumTorsions())]
    if not rows:
        return []
    return [terms.CMAPTorsion(np.array([r[1:9] for r in rows], dtype=np.int64), maps, [r[0] for r in rows])]


# ----------------------------------------------------------------------------- NonbondedForce
_NONBONDED_METHODS = {0: "NoCutoff", 1: "CutoffNonPeriodic", 2: "CutoffPeriodic", 3: "Ewald", 4: "PME", 5: "LJPME"}


def _global_defaults(force):
    return {force.getGlobalParameterName(i): float(force.getGlobalParameterDefaultValue(i))
            for i in range(force.getNumGlobalParameters())}


def _nonbonded(force, n, box=None):
    method = _NONBONDED_METHODS[force.getNonbondedMethod()]
    table = np.array([[_value(v) for v in force.getParticleParameters(i)] for i in range(force.getNumParticles())])
    charge, sigma, epsilon = table.T.copy()
    globals_ = _global_defaults(force)
    for k in range(force.getNumParticleParameterOffsets()):
        name, i, dq, ds, de = force.getParticleParameterOffset(k)
        charge[i] += globals_[name] * dq
        sigma[i] += globals_[name] * ds
        epsilon[i] += globals_[name] * de
    exceptions = [force.getExceptionParameters(k) for k in range(force.getNumExceptions())]
    pairs = np.array([e[:2] for e in exceptions], dtype=np.int64).reshape(-1, 2)
    params = np.array([[_value(v) for v in e[2:]] for e in exceptions]).reshape(-1, 3)  # chargeProd, sigma, epsilon
    for k in range(force.getNumExceptionParameterOffsets()):
        name, e, dq, ds, de = force.getExceptionParameterOffset(k)
        params[e] += globals_[name] * np.array([dq, ds, de])
    f = nonbonded.ONE_4PI_EPS0
    cutoff = None if method == "NoCutoff" else _value(force.getCutoffDistance())
    switched = cutoff is not None and force.getUseSwitchingFunction() and method != "LJPME"   # the Lennard-Jones switch (OpenMM ignores it under LJPME)
    shared = (np.float64(_value(force.getSwitchingDistance())), np.float64(cutoff)) if switched else ()
    out = []
    c6 = None                           # LJ-PME's dispersion coefficients (a cell every closure below can read)
    if method == "NoCutoff":
        function = nonbonded.lennard_jones_coulomb
    elif method in ("Ewald", "PME", "LJPME"):
        tolerance = float(force.getEwaldErrorTolerance())
        if method in ("PME", "LJPME"):   # the force's own alpha and grid if set (alpha 0: OpenMM chooses both)
            given, *grid = force.getPMEParameters()
            alpha, grid = pme_grid.pme_parameters(tolerance, cutoff, box, alpha=_value(given), grid=grid)
        else:
            alpha, kmax = ewald.ewald_parameters(tolerance, cutoff, box)
        shared = (np.float64(alpha),) + shared
        function = nonbonded.switched_lennard_jones_ewald if switched else nonbonded.lennard_jones_ewald
        if method == "LJPME":   # the dispersion mesh's own alpha and grid, chosen alike
            given, *dispersion_grid = force.getLJPMEParameters()
            dispersion_alpha, dispersion_grid = pme_grid.pme_parameters(tolerance, cutoff, box, alpha=_value(given),
                                                                        grid=dispersion_grid, dispersion=True)
            c6 = ljpme.dispersion_coefficients(sigma, epsilon)
            shared = (np.float64(alpha), np.float64(dispersion_alpha), np.float64(cutoff))
            function = nonbonded.lennard_jones_ljpme
    else:
        shared = tuple(map(np.float64, nonbonded.reaction_field_constants(
            cutoff, float(force.getReactionFieldDielectric())))) + shared
        function = (nonbonded.switched_lennard_jones_reaction_field if switched
                    else nonbonded.lennard_jones_reaction_field)

    def pair_parameters(i, j):   # per pair sigma, epsilon, qq (and LJ-PME's c6c6); the form's constants as 0-d arrays
        combined = nonbonded.combined_pair_parameters(i, j, sigma, epsilon, charge)
        return combined + ((c6[i] * c6[j],) if c6 is not None else ()) + shared
    out.append(custom.PairFunction(n, function, pair_parameters, cutoff=cutoff, exclusions=pairs, name="Nonbonded"))
    live = (params[:, 0] != 0) | (params[:, 2] != 0)
    if live.any():
        exception = (params[live, 1], params[live, 2], f * params[live, 0])
        out.append(custom.PairFunction(n, nonbonded.lennard_jones_coulomb, lambda i, j: exception, pairs=pairs[live],
                                       name="NonbondedExceptions"))
    if method in ("Ewald", "PME", "LJPME"):
        out.append(terms.EwaldExclusion(charge, pairs, alpha, coulomb_constant=f))
        out.append(pme.PMEReciprocal(charge, alpha=alpha, grid=grid, coulomb_constant=f) if method != "Ewald"
                   else ewald.EwaldReciprocal(charge, alpha=alpha, kmax=kmax, coulomb_constant=f))
    if method == "LJPME":       # every exception pair's dispersion share back, and the dispersion mesh
        if len(pairs):
            products = (c6[pairs[:, 0]] * c6[pairs[:, 1]], np.float64(dispersion_alpha))
            out.append(custom.PairFunction(n, nonbonded.dispersion_exclusion, lambda i, j: products, pairs=pairs,
                                           name="DispersionExclusion"))
        out.append(ljpme.DispersionPMEReciprocal(c6, dispersion_alpha, dispersion_grid))
    if method in ("CutoffPeriodic", "Ewald", "PME") and force.getUseDispersionCorrection():
        switching = _value(force.getSwitchingDistance()) if force.getUseSwitchingFunction() else None
        out.append(terms.LongRangeDispersion(terms.dispersion_coefficient(sigma, epsilon, cutoff, switching), n))
    return out


# ----------------------------------------------------------------------------- custom forces
def _tabulated_functions(force):
    import openmm
    out = {}
    for k in range(getattr(force, "getNumTabulatedFunctions", lambda: 0)()):
        name, fn = force.getTabulatedFunctionName(k), force.getTabulatedFunction(k)
        if isinstance(fn, openmm.Discrete1DFunction):
            out[name] = Tabulated(name, "discrete", np.array(fn.getFunctionParameters()))
        elif isinstance(fn, openmm.Discrete2DFunction):
            nx, ny, values = fn.getFunctionParameters()
            out[name] = Tabulated(name, "discrete", np.array(values).reshape(ny, nx).T)
        elif isinstance(fn, openmm.Discrete3DFunction):
            nx, ny, nz, values = fn.getFunctionParameters()
            out[name] = Tabulated(name, "discrete", np.array(values).reshape(nz, ny, nx).transpose(2, 1, 0))
        elif isinstance(fn, openmm.Continuous1DFunction):
            values, lo, hi = fn.getFunctionParameters()
            out[name] = Tabulated(name, "spline", np.array(values), float(lo), float(hi), bool(fn.getPeriodic()))
        else:
            raise InputError(f"{type(force).__name__} uses the tabulated function {name} ({type(fn).__name__}), "
                             "which mdjac does not support")
    return out


def _per_instance_values(force, names, rows):
    """{parameter name: (M,) float64} from per-instance parameter tuples, plus the global defaults."""
    values = _global_defaults(force)
    table = np.array([[float(v) for v in r] for r in rows], dtype=np.float64).reshape(len(rows), len(names))
    for k, name in enumerate(names):
        values[name] = table[:, k]
    return values


def _custom_fixed(force, n, term_class, count, get, n_atoms_per, names_of, coordinates):
    """The term of a CustomBond/Angle/Torsion/ExternalForce: (atoms, parameters) rows -> term_class."""
    expression = Expression(force.getEnergyFunction(), coordinates, _tabulated_functions(force))
    rows = [get(i) for i in range(count)]
    if not rows:
        return []
    index = np.array([r[:n_atoms_per] for r in rows], dtype=np.int64).reshape(-1, n_atoms_per)
    names = [names_of(k) for k in range(len(rows[0][n_atoms_per]))]
    values = _per_instance_values(force, names, [r[n_atoms_per] for r in rows])
    return [term_class(index, expression.function, expression.slots(values, len(rows)), name=type(force).__name__)]


def _custom_bonds(force, n):
    return _custom_fixed(force, n, custom.BondFunction, force.getNumBonds(), force.getBondParameters, 2,
                         force.getPerBondParameterName, ("r",))


def _custom_angles(force, n):
    return _custom_fixed(force, n, custom.AngleFunction, force.getNumAngles(), force.getAngleParameters, 3,
                         force.getPerAngleParameterName, ("theta",))


def _custom_torsions(force, n):
    return _custom_fixed(force, n, custom.TorsionFunction, force.getNumTorsions(), force.getTorsionParameters, 4,
                         force.getPerTorsionParameterName, ("theta",))


def _custom_external(force, n):
    return _custom_fixed(force, n, custom.PositionFunction, force.getNumParticles(), force.getParticleParameters, 1,
                         force.getPerParticleParameterName, ("x", "y", "z"))


def _custom_nonbonded(force, n):
    name = type(force).__name__
    if force.getNumComputedValues():
        raise InputError(f"{name} with computed values is not supported by mdjac")
    method = {0: "NoCutoff", 1: "CutoffNonPeriodic", 2: "CutoffPeriodic"}[force.getNonbondedMethod()]
    cutoff = None if method == "NoCutoff" else _value(force.getCutoffDistance())
    expression = Expression(force.getEnergyFunction(), ("r",), _tabulated_functions(force))
    names = [force.getPerParticleParameterName(k) for k in range(force.getNumPerParticleParameters())]
    table = np.array([[float(v) for v in force.getParticleParameters(i)] for i in range(force.getNumParticles())],
                     dtype=np.float64).reshape(force.getNumParticles(), len(names))
    globals_ = _global_defaults(force)

    def pair_parameters(i, j):
        values = dict(globals_)
        for k, p in enumerate(names):
            values[p + "1"], values[p + "2"] = table[i, k], table[j, k]
        return expression.slots(values, len(i))
    exclusions = np.array([force.getExclusionParticles(k) for k in range(force.getNumExclusions())], dtype=np.int64).reshape(-1, 2)
    switch = _value(force.getSwitchingDistance()) if (cutoff is not None and force.getUseSwitchingFunction()) else None
    groups = [tuple(force.getInteractionGroupParameters(g)) for g in range(force.getNumInteractionGroups())] or None
    out = [custom.PairFunction(n, expression.function, pair_parameters, cutoff=cutoff, exclusions=exclusions,
                               switch=switch, name=name, groups=groups)]
    if method == "CutoffPeriodic" and force.getUseLongRangeCorrection():
        out.append(terms.LongRangeDispersion(corrections.correction_coefficient(
            expression, table, names, globals_, cutoff, switch, groups), n))
    return out


READERS = {
    "HarmonicBondForce": _harmonic_bonds,
    "HarmonicAngleForce": _harmonic_angles,
    "PeriodicTorsionForce": _periodic_torsions,
    "CMAPTorsionForce": _cmap_torsions,
    "NonbondedForce": _nonbonded,
    "CustomBondForce": _custom_bonds,
    "CustomAngleForce": _custom_angles,
    "CustomTorsionForce": _custom_torsions,
    "CustomExternalForce": _custom_external,
    "CustomNonbondedForce": _custom_nonbonded,
    "GBSAOBCForce": implicit.gbsa_obc,
    "CustomGBForce": implicit.custom_gb,
}


def virtual_sites(system):
    """The System's virtual sites as mdjac.sites.VirtualSites (None if it has none).

    TwoParticleAverageSite, ThreeParticleAverageSite, OutOfPlaneSite and LocalCoordinatesSite; any
    other kind (SymmetrySite) is refused by name.
    """
    import openmm
    n = system.getNumParticles()
    found = []
    for i in range(n):
        if not system.isVirtualSite(i):
            continue
        site = system.getVirtualSite(i)
        parents = [site.getParticle(k) for k in range(site.getNumParticles())]
        if isinstance(site, (openmm.TwoParticleAverageSite, openmm.ThreeParticleAverageSite)):
            kind, weights = sites.AverageSite(len(parents)), [site.getWeight(k) for k in range(len(parents))]
        elif isinstance(site, openmm.OutOfPlaneSite):
            kind, weights = sites.OutOfPlaneSite(), [site.getWeight12(), site.getWeight13(), site.getWeightCross()]
        elif isinstance(site, openmm.LocalCoordinatesSite):
            kind = sites.LocalCoordinatesSite(len(parents))
            weights = [*site.getOriginWeights(), *site.getXWeights(), *site.getYWeights(),
                       *(_value(c) for c in site.getLocalPosition())]
        else:
            raise InputError(f"particle {i} is a {type(site).__name__}, a kind of virtual site mdjac does not support "
                             "(it supports TwoParticleAverageSite, ThreeParticleAverageSite, OutOfPlaneSite and "
                             "LocalCoordinatesSite)")
        found.append((i, kind, parents, [float(w) for w in weights]))
    return sites.VirtualSites(n, found) if found else None


def force_terms(system):
    """[(force index, force class name, [terms])] for every force of the System that has a potential.

    Raises InputError for any force mdjac cannot state exactly.
    """
    n = system.getNumParticles()
    out = []
    for index, force in enumerate(system.getForces()):
        name = type(force).__name__
        if name in IGNORED:
            continue
        if name not in READERS:
            raise InputError(f"the System has a {name}, which mdjac cannot state exactly: remove it or use a "
                             f"supported force ({', '.join(READERS)})")
        extra = {"box": periodic_box(system)} if name == "NonbondedForce" else {}
        out.append((index, name, READERS[name](force, n, **extra)))
    return out


def adapt(system, topology=None):
    """The mdjac Potential of exactly an OpenMM System's potential energy.

    With virtual sites the Potential places them from their parents (mdjac.sites) and its Jacobian
    is over the real atoms. system: openmm.System. topology: openmm.app.Topology (optional; its box is used if the System
    has none set but is periodic). Returns :class:`mdjac.Potential` with the System's box (nm, or
    None) and ``masses`` (N,) amu. Warns once if the System has constraints.
    """
    if system.getNumConstraints():
        warnings.warn(f"the System has {system.getNumConstraints()} constraints: mdjac's Jacobian is that of the "
                      "unconstrained potential", stacklevel=2)
    box = periodic_box(system)
    found = [t for _, _, ts in force_terms(system) for t in ts]
    if not found:
        raise InputError("the System has no force with a potential energy: nothing to differentiate")
    potential = Potential(found, box=box, n_atoms=system.getNumParticles(), sites=virtual_sites(system))
    potential.masses = masses(system)
    return potential
