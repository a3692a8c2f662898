"""Systems from OpenMM's file readers, by file type, for ``mdjac.load_system`` and ``--system``.

==========================  ===============================================================
file given                  what else is read (beside it: same folder and stem, unless given
                            by ``coordinates=`` / ``parameters=``)
==========================  ===============================================================
System XML (.xml)           a PDB for positions and names (``<stem>.pdb``)
AMBER prmtop (.prmtop/.parm7)  coordinates ``<stem>.inpcrd`` / ``.rst7`` / ``.crd``
GROMACS top (.top)          coordinates ``<stem>.gro`` (its ``#include``s from GROMACS' data dir);
                            run settings ``<stem>.mdp`` if there
CHARMM psf (.psf)           coordinates ``<stem>.crd`` / ``.pdb``; every .prm .rtf .str .par
                            .inp file in the folder as the parameter set
==========================  ===============================================================

Electrostatics (:data:`NONBONDED`) are chosen as the engines choose them, and said in the
system's description (:func:`describe_nonbonded`):

* periodic (a box in the coordinates, or given; rectangular or triclinic): OpenMM's PME at a 0.9 nm
  cutoff (or half the shortest box edge, for a triclinic box the smallest distance between opposite
  faces, if less) and Ewald tolerance 5e-4 (OpenMM's default); open: no cutoff.
* A prmtop is periodic when its coordinates hold a box; a .gro's box counts unless the .mdp says
  ``pbc = no`` (GROMACS' default is ``pbc = xyz``), and the .mdp's ``coulombtype``, ``rcoulomb``
  and ``ewald-rtol`` are taken; a psf is periodic when its coordinates (a PDB's CRYST1) or
  ``box=`` give a box. A System XML keeps the method it was built with unless told.
* ``implicit_solvent=`` (a prmtop only): OpenMM's amber generalized Born model of that name
  (:data:`IMPLICIT_SOLVENTS`; ``createSystem(implicitSolvent=...)``, open boundaries; mdjac states
  all five, mdjac.openmm.implicit); ``salt=`` (mol/L) its salt concentration
  (``createSystem(implicitSolventSaltConc=...)``: the Debye screening of the GB energy).
* ``nonbonded=`` overrides: 'pme', 'ewald', 'reaction-field' (OpenMM's reaction field,
  dielectric 78.3), 'cutoff' (the same with dielectric 1: Coulomb shifted to zero at the cutoff),
  'none' (every pair, open boundaries: the box is dropped). ``cutoff=`` (nm) and
  ``ewald_tolerance=`` likewise.

The System is built by OpenMM's ``createSystem`` without constraints (rigid water off). Refused
in one line: PME or Ewald without a box, a cutoff over half the box, and a non-periodic prmtop
whose GB radius set (:data:`GB_RADIUS_SETS`: those tleap gives on request, not its default
mbondi) says it was made for implicit solvent, unless ``implicit_solvent=`` names the model or
``nonbonded='none'`` asks for it in vacuum. (A GB prmtop made with tleap's default radii cannot
be told from a vacuum one: it loads in vacuum, as the description says.)
"""
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..space import box_vectors, check_box, face_distances, is_triclinic

#: The electrostatics ``nonbonded=`` names (``--nonbonded``).
NONBONDED = ("pme", "ewald", "reaction-field", "cutoff", "none")
PERIODIC_CUTOFF = 0.9
EWALD_TOLERANCE = 5e-4
#: OpenMM's NonbondedForce methods by number, and the name mdjac gives each (1, 2: see :func:`_method_of`).
_METHOD_NAMES = {0: "none", 1: "reaction-field", 2: "reaction-field", 3: "ewald", 4: "pme", 5: "ljpme"}
#: tleap's GB radius sets chosen on purpose (``set default PBradii``): all but its default, mbondi,
#: which every prmtop carries whether made for GB or not.
GB_RADIUS_SETS = ("bondi", "amber6", "mbondi2", "mbondi3", "parse")
#: The ``implicit_solvent=`` names (``--implicit-solvent``): OpenMM's amber GB models (app.HCT, ...).
IMPLICIT_SOLVENTS = ("HCT", "OBC1", "OBC2", "GBn", "GBn2")


def check_load_options(nonbonded=None, cutoff=None, ewald_tolerance=None, box=None, implicit_solvent=None, salt=None):
    """Refuse (InputError, one line) electrostatics options that no file could take."""
    if salt is not None:
        if implicit_solvent is None:
            raise InputError(f"salt {salt!r} mol/L is the implicit solvent's: give --implicit-solvent with it")
        if not (isinstance(salt, (int, float)) and math.isfinite(salt) and salt >= 0):
            raise InputError(f"salt {salt!r}: give a concentration >= 0 in mol/L")
    if nonbonded is not None and nonbonded not in NONBONDED:
        raise InputError(f"nonbonded {nonbonded!r} unknown: give one of {', '.join(NONBONDED)}")
    if implicit_solvent is not None and implicit_solvent not in IMPLICIT_SOLVENTS:
        raise InputError(f"implicit solvent {implicit_solvent!r} unknown: give one of {', '.join(IMPLICIT_SOLVENTS)}")
    for value, what, high in ((cutoff, "cutoff", math.inf), (ewald_tolerance, "Ewald tolerance", 1.0)):
        if value is not None and not (isinstance(value, (int, float)) and 0 < value < high):
            raise InputError(f"{what} {value!r}: give a number above 0" + (f" and below {high:g}" if high < math.inf else ""))
    if box is not None:
        given_box(box)


def given_box(box):
    """The box given beside a file, checked: 3 edges (nm) -> (3,), or 9 numbers, the box vectors a, b, c
    (rows, nm, OpenMM's form) -> (3, 3) reduced (mdjac.space.check_box); refused in one line otherwise."""
    try:
        b = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        b = None
    if b is None or b.size not in (3, 9):
        raise InputError(f"box {box!r}: give three positive edges in nm (a rectangular box), or nine numbers, "
                         "the box vectors ax 0 0 bx by 0 cx cy cz in nm (a triclinic box)")
    try:
        return check_box(b.reshape(3) if b.size == 3 else b.reshape(3, 3))
    except InputError as err:
        raise InputError(f"box {box!r}: {err}") from None


def _beside(path, suffixes, what, given=None):
    if given is not None:
        p = Path(given)
        if not p.is_file():
            raise InputError(f"{p}: no such {what} file")
        return p
    for suffix in suffixes:
        p = path.with_suffix(suffix)
        if p.is_file():
            return p
    raise InputError(f"{path} needs {what} beside it ({' or '.join(path.stem + s for s in suffixes)}) "
                     "or named by --coordinates")


def _positions(quantity):
    from openmm import unit
    return np.asarray(quantity.value_in_unit(unit.nanometer), dtype=np.float64)


def _box(vectors):
    """The box of OpenMM box vectors (mdjac.space.check_box: (3,) edges in nm, or (3, 3) box vectors
    if triclinic), None for none or a zero box."""
    from openmm import unit
    if vectors is None:
        return None
    v = np.asarray(vectors.value_in_unit(unit.nanometer) if unit.is_quantity(vectors)
                   else [_positions(a) for a in vectors], dtype=np.float64)
    return check_box(v) if np.all(np.diag(v) > 0) else None


def _vectors(box):
    """OpenMM box vectors (Quantity, nm) of a box ((3,) edges or (3, 3) vectors)."""
    from openmm import Vec3, unit
    return tuple(Vec3(*(float(e) for e in row)) for row in box_vectors(box)) * unit.nanometer


def read_mdp(path):
    """The electrostatics a GROMACS .mdp states: dict with any of nonbonded, cutoff, ewald_tolerance, periodic."""
    settings = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.split(";")[0].partition("=")
        settings[key.strip().lower().replace("_", "-")] = value.strip().lower()
    out = {}
    if "pbc" in settings:
        out["periodic"] = settings["pbc"] != "no"
    kinds = {"pme": "pme", "ewald": "ewald", "reaction-field": "reaction-field", "cut-off": "cutoff"}
    if "coulombtype" in settings:
        if settings["coulombtype"] not in kinds:
            raise InputError(f"{path}: coulombtype {settings['coulombtype']!r} has no OpenMM counterpart mdjac takes "
                             f"({', '.join(kinds)}): give --nonbonded")
        out["nonbonded"] = kinds[settings["coulombtype"]]
    for key, name in (("rcoulomb", "cutoff"), ("ewald-rtol", "ewald_tolerance")):
        if key in settings:
            try:
                out[name] = float(settings[key])
            except ValueError:
                raise InputError(f"{path}: {key} = {settings[key]!r} is not a number") from None
    return out


def _choose(path, periodic_box, nonbonded, cutoff, tolerance):
    """(method name, cutoff nm or None, tolerance) for a file with box ``periodic_box`` (or None)."""
    if nonbonded is None:
        nonbonded = "pme" if periodic_box is not None else "none"
    if nonbonded in ("pme", "ewald") and periodic_box is None:
        raise InputError(f"{path}: --nonbonded {nonbonded} needs a periodic box and the coordinates hold none: "
                         "give --box or coordinates with a box")
    if nonbonded == "none":
        return nonbonded, None, None
    half = None if periodic_box is None or nonbonded == "none" else 0.5 * float(np.min(face_distances(periodic_box)))
    if cutoff is None:
        cutoff = PERIODIC_CUTOFF if half is None else min(PERIODIC_CUTOFF, half)
    elif half is not None and cutoff > half:
        shortest = "distance between opposite faces of the triclinic box" if is_triclinic(periodic_box) else "box edge"
        raise InputError(f"{path}: cutoff {cutoff:g} nm is over half the shortest {shortest} ({half:g} nm): give a "
                         "smaller --cutoff")
    return nonbonded, float(cutoff), float(EWALD_TOLERANCE if tolerance is None else tolerance)


def _openmm_options(method, periodic, cutoff, tolerance):
    """createSystem's keywords for the chosen electrostatics."""
    from openmm import app, unit
    methods = {"pme": app.PME, "ewald": app.Ewald, "none": app.NoCutoff,
               "reaction-field": app.CutoffPeriodic if periodic else app.CutoffNonPeriodic}
    methods["cutoff"] = methods["reaction-field"]
    options = {"nonbondedMethod": methods[method]}
    if cutoff is not None:
        options["nonbondedCutoff"] = cutoff * unit.nanometer
    if tolerance is not None:
        options["ewaldErrorTolerance"] = tolerance
    return options


def _nonbonded_forces(system):
    import openmm
    return [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]


def _set_method(system, method, periodic, cutoff, tolerance):
    """Put the chosen electrostatics on the System's NonbondedForce (a System XML told otherwise; the
    dielectric 1 of 'cutoff')."""
    from openmm import NonbondedForce, unit
    numbers = {"pme": NonbondedForce.PME, "ewald": NonbondedForce.Ewald, "none": NonbondedForce.NoCutoff,
               "reaction-field": NonbondedForce.CutoffPeriodic if periodic else NonbondedForce.CutoffNonPeriodic}
    numbers["cutoff"] = numbers["reaction-field"]
    for force in _nonbonded_forces(system):
        force.setNonbondedMethod(numbers[method])
        if cutoff is not None:
            force.setCutoffDistance(cutoff * unit.nanometer)
        if tolerance is not None:
            force.setEwaldErrorTolerance(tolerance)
        if method == "cutoff":
            force.setReactionFieldDielectric(1.0)


def _method_of(force):
    """The :data:`NONBONDED` name of a NonbondedForce's method ('cutoff': a reaction field of dielectric 1)."""
    method = _METHOD_NAMES[force.getNonbondedMethod()]
    return "cutoff" if method == "reaction-field" and force.getReactionFieldDielectric() == 1.0 else method


def describe_nonbonded(system):
    """One phrase: the electrostatics of an OpenMM System's NonbondedForce, e.g. 'PME, cutoff 0.9 nm,
    Ewald tolerance 0.0005'."""
    forces = _nonbonded_forces(system)
    if not forces:
        return "no NonbondedForce"
    force = forces[0]
    from openmm import unit
    method = _method_of(force)
    cutoff = force.getCutoffDistance().value_in_unit(unit.nanometer)
    if method == "none":
        return "no cutoff (every pair, open boundaries)"
    if method in ("pme", "ewald", "ljpme"):
        return f"{method.upper() if method != 'ewald' else 'Ewald'}, cutoff {cutoff:g} nm, Ewald tolerance {force.getEwaldErrorTolerance():g}"
    dielectric = force.getReactionFieldDielectric()
    where = "periodic" if force.usesPeriodicBoundaryConditions() else "open boundaries"
    if method == "cutoff":
        return f"cutoff {cutoff:g} nm, Coulomb shifted to zero there ({where})"
    return f"reaction field (dielectric {dielectric:g}), cutoff {cutoff:g} nm ({where})"


def _refuse_gb(path, prmtop, nonbonded, box):
    """A non-periodic prmtop made for GB implicit solvent (one of :data:`GB_RADIUS_SETS`) is refused
    unless vacuum is asked for."""
    radii = " ".join(prmtop._prmtop._raw_data.get("RADIUS_SET", [])).strip()
    named = re.search(r"\((\w+)\)$", radii)
    if box is None and nonbonded is None and named and named.group(1) in GB_RADIUS_SETS:
        raise InputError(f"{path}: its GB radius set ({radii}) is for implicit solvent: give --implicit-solvent "
                         "(OBC2, OBC1, HCT, GBn or GBn2) for it, or --nonbonded none for the molecule in vacuum")


def read_openmm_files(path, coordinates=None, parameters=None, nonbonded=None, cutoff=None, ewald_tolerance=None,
                      box=None, implicit_solvent=None, salt=None):
    """An OpenMM System from a force-field file, with its electrostatics chosen (see the module docstring).

    Parameters
    ----------
    path : the force-field file.  coordinates : its coordinates file, if not beside it.
    parameters : sequence of CHARMM parameter files (psf) or a GROMACS .mdp (top), if not beside it.
    nonbonded : one of :data:`NONBONDED` or None (the file's default).  cutoff : nm.
    ewald_tolerance : OpenMM's ewaldErrorTolerance.  box : a box for files without one: (3,) edges
    nm, or the box vectors (3, 3) (or 9 numbers) nm, rows a, b, c in OpenMM's form (:func:`given_box`).
    implicit_solvent : one of :data:`IMPLICIT_SOLVENTS` or None: a prmtop's generalized Born model.
    salt : None or mol/L, the implicit solvent's salt concentration (OpenMM's implicitSolventSaltConc; None: 0).

    Returns
    -------
    (openmm.System, topology, positions (N, 3) nm, box (3,) or (3, 3) nm or None, companion files [Path])
    """
    check_load_options(nonbonded, cutoff, ewald_tolerance, box, implicit_solvent, salt)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise InputError(f"{path}: unknown force-field file type {suffix!r}; give one of {', '.join(SUFFIXES)}")
    if implicit_solvent is not None and READERS[suffix] is not _read_prmtop:
        raise InputError(f"{path}: --implicit-solvent is for an AMBER prmtop; build this System with implicit "
                         "solvent in OpenMM and give its System XML")
    given = _Given(coordinates, [Path(p) for p in ([parameters] if isinstance(parameters, (str, Path))
                                                   else parameters or [])],
                   None if box is None else given_box(box), nonbonded, cutoff, ewald_tolerance,
                   implicit_solvent, salt)
    for p in given.parameters:
        if not p.is_file():
            raise InputError(f"{p}: no such parameter file")
    try:
        return READERS[suffix](path, given)
    except InputError:
        raise
    except Exception as err:  # OpenMM's readers raise plain Exceptions with their own messages
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: OpenMM could not read it ({message})") from None


@dataclass(frozen=True)
class _Given:
    """What the caller gave beside the file: coordinates path, parameter paths, box ((3,) or (3, 3) nm), and the
    electrostatics (None: the file's default)."""
    coordinates: object
    parameters: list
    box: object
    nonbonded: object
    cutoff: object
    tolerance: object
    implicit: object = None
    salt: object = None


def _read_xml(path, given):
    import openmm
    from openmm import app
    system = openmm.XmlSerializer.deserialize(path.read_text())
    pdb_path = _beside(path, (".pdb",), "a PDB", given.coordinates)
    pdb = app.PDBFile(str(pdb_path))
    own = system.getDefaultPeriodicBoxVectors() if system.usesPeriodicBoundaryConditions() else None
    file_box = given.box if given.box is not None else _box(own) if own is not None else \
        _box(pdb.topology.getPeriodicBoxVectors())
    if given.nonbonded is not None or given.cutoff is not None or given.tolerance is not None:
        forces = _nonbonded_forces(system)
        own_method = _method_of(forces[0]) if forces else None
        method, rc, tol = _choose(path, file_box, given.nonbonded or own_method, given.cutoff, given.tolerance)
        _set_method(system, method, file_box is not None, rc, tol)
    if given.box is not None:
        system.setDefaultPeriodicBoxVectors(*_vectors(given.box))
    box = _box(system.getDefaultPeriodicBoxVectors()) if system.usesPeriodicBoundaryConditions() else None
    return system, pdb.topology, _positions(pdb.positions), box, [pdb_path]


def _read_prmtop(path, given):
    from openmm import app
    prmtop = app.AmberPrmtopFile(str(path))
    crd_path = _beside(path, (".inpcrd", ".rst7", ".crd"), "coordinates", given.coordinates)
    crd = app.AmberInpcrdFile(str(crd_path))
    file_box = given.box if given.box is not None else _box(crd.boxVectors)
    extra = {}
    if given.implicit is None:
        _refuse_gb(path, prmtop, given.nonbonded, file_box)
    else:
        file_box = None                 # implicit solvent: open boundaries, whatever box the coordinates hold
        extra["implicitSolvent"] = getattr(app, given.implicit)
        if given.salt is not None:
            from openmm import unit
            extra["implicitSolventSaltConc"] = float(given.salt) * unit.molar
    method, rc, tol = _choose(path, file_box, given.nonbonded, given.cutoff, given.tolerance)
    system = prmtop.createSystem(constraints=None, rigidWater=False,
                                 **_openmm_options(method, file_box is not None, rc, tol), **extra)
    return (*_finish(system, prmtop.topology, crd.positions, file_box, method, rc, tol), [crd_path])


def _read_top(path, given):
    from openmm import app
    gro_path = _beside(path, (".gro",), "a .gro file", given.coordinates)
    gro = app.GromacsGroFile(str(gro_path))
    mdp_path = next((p for p in given.parameters if p.suffix.lower() == ".mdp"), None) or \
        (path.with_suffix(".mdp") if path.with_suffix(".mdp").is_file() else None)
    mdp = read_mdp(mdp_path) if mdp_path is not None else {}
    file_box = given.box if given.box is not None else \
        _box(gro.getPeriodicBoxVectors()) if mdp.get("periodic", True) else None
    nonbonded, cutoff, tolerance = given.nonbonded, given.cutoff, given.tolerance
    if nonbonded is None and file_box is not None:   # the .mdp's settings, unless told otherwise
        nonbonded = mdp.get("nonbonded")
        cutoff = mdp.get("cutoff") if cutoff is None else cutoff
        tolerance = mdp.get("ewald_tolerance") if tolerance is None else tolerance
    method, rc, tol = _choose(path, file_box, nonbonded, cutoff, tolerance)
    top = app.GromacsTopFile(str(path), periodicBoxVectors=None if method == "none" or file_box is None
                             else _vectors(file_box))
    system = top.createSystem(constraints=None, rigidWater=False,
                              **_openmm_options(method, file_box is not None, rc, tol))
    return (*_finish(system, top.topology, gro.positions, file_box, method, rc, tol),
            [gro_path] + ([mdp_path] if mdp_path else []))


def _read_psf(path, given):
    from openmm import app, unit
    psf = app.CharmmPsfFile(str(path))
    params = given.parameters or sorted(p for p in path.parent.iterdir()
                                        if p.suffix.lower() in (".prm", ".rtf", ".str", ".par", ".inp"))
    if not params:
        raise InputError(f"{path}: no CHARMM parameter files (.prm .rtf .str .par) beside it: "
                         "put them there or name them with --parameters")
    parameter_set = app.CharmmParameterSet(*map(str, params))
    crd_path = _beside(path, (".crd", ".pdb"), "coordinates", given.coordinates)
    crd = app.CharmmCrdFile(str(crd_path)) if crd_path.suffix.lower() == ".crd" else app.PDBFile(str(crd_path))
    file_box = given.box if given.box is not None else \
        (_box(crd.topology.getPeriodicBoxVectors()) if hasattr(crd, "topology") else None)
    method, rc, tol = _choose(path, file_box, given.nonbonded, given.cutoff, given.tolerance)
    if file_box is not None and method != "none":
        psf.setBox(*_lengths_and_angles(file_box, unit))
    system = psf.createSystem(parameter_set, constraints=None, rigidWater=False, flexibleConstraints=False,
                              **_openmm_options(method, file_box is not None, rc, tol))
    return (*_finish(system, psf.topology, crd.positions, file_box, method, rc, tol), [crd_path] + list(params))


def _lengths_and_angles(box, unit):
    """(a, b, c, alpha, beta, gamma) of a box as OpenMM Quantities (nm, degrees), for CharmmPsfFile.setBox."""
    v = box_vectors(box)
    lengths = np.linalg.norm(v, axis=1)
    angles = [np.degrees(np.arccos(np.clip(np.dot(v[k], v[m]) / (lengths[k] * lengths[m]), -1.0, 1.0)))
              for k, m in ((1, 2), (0, 2), (0, 1))]
    return (*(float(e) * unit.nanometer for e in lengths), *(float(t) * unit.degree for t in angles))


#: The reader of each suffix: (path, _Given) -> (System, topology, positions, box, companion files).
READERS = {".xml": _read_xml, ".prmtop": _read_prmtop, ".parm7": _read_prmtop, ".top": _read_top, ".psf": _read_psf}
SUFFIXES = tuple(READERS)


def _finish(system, topology, positions, box, method, cutoff, tolerance):
    """(system, topology, positions, box) with the 'cutoff' method's dielectric and the box set."""
    if method == "cutoff":
        _set_method(system, method, box is not None, cutoff, tolerance)
    periodic = box is not None and method != "none"
    if periodic:
        system.setDefaultPeriodicBoxVectors(*_vectors(box))
    return system, topology, _positions(positions), box if periodic else None


def load_openmm_system(path, **options):
    """What a catalogue System needs from a force-field file, as a dict: name, description (the
    files and the electrostatics, one line), electrostatics, positions (N, 3) nm, masses (N,) amu,
    box (3,) or (3, 3) nm or None, names (N,), topology (openmm.app.Topology), potential (adapted), openmm_system.
    ``options``: the keywords of :func:`read_openmm_files`."""
    from .adapter import adapt
    system, topology, positions, box, companions = read_openmm_files(path, **options)
    potential = adapt(system, topology)
    if len(positions) != potential.n_atoms:
        raise InputError(f"{path}: the coordinates hold {len(positions)} atoms but the System has {potential.n_atoms}")
    box = potential.box if potential.box is not None else box
    electrostatics = describe_nonbonded(system)
    if options.get("implicit_solvent"):
        electrostatics += f", implicit solvent {options['implicit_solvent']}"
        if options.get("salt"):
            electrostatics += f" with {options['salt']:g} mol/L salt"
    if box is None:
        where = "no box"
    elif is_triclinic(box):
        where = f"triclinic box {'; '.join(' '.join(f'{e:.4g}' for e in row) for row in box)} nm"
    else:
        where = f"box {' x '.join(f'{e:.4g}' for e in box)} nm"
    description = (f"{Path(path).name} (+ {', '.join(p.name for p in companions)}): {potential.n_atoms} atoms, "
                   f"{where}, electrostatics: {electrostatics}")
    return dict(name=Path(path).stem, description=description, electrostatics=electrostatics, positions=positions,
                masses=potential.masses, box=box, names=np.array([a.name for a in topology.atoms()]),
                topology=topology, potential=potential, openmm_system=system)
