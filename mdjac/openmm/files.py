"""Systems from OpenMM's file readers, by file type, for ``mdjac.load_system`` and ``--system``.

==========================  ===============================================================
file given                  what else is read (beside it: same folder and stem, unless given)
==========================  ===============================================================
System XML (.xml)           a PDB for positions and names (``<stem>.pdb``)
AMBER prmtop (.prmtop/.parm7)  coordinates ``<stem>.inpcrd`` / ``.rst7`` / ``.crd``
GROMACS top (.top)          coordinates ``<stem>.gro`` (its ``#include``s from GROMACS' data dir)
CHARMM psf (.psf)           coordinates ``<stem>.crd`` / ``.pdb``; every .prm .rtf .str .par
                            .inp file in the folder as the parameter set
==========================  ===============================================================

The potential is built by OpenMM's ``createSystem`` without constraints and with
``NoCutoff`` in open boundaries, ``CutoffPeriodic`` (reaction field, 0.9 nm or half the box)
in a periodic box: Ewald/PME wait for the Ewald issue. A System XML is taken as it is.
"""
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..space import check_box, face_distances

SUFFIXES = (".xml", ".prmtop", ".parm7", ".top", ".psf")
PERIODIC_CUTOFF = 0.9


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
    raise InputError(f"{path} needs {what} beside it ({' or '.join(path.stem + s for s in suffixes)}): put it there")


def _positions(quantity):
    from openmm import unit
    return np.asarray(quantity.value_in_unit(unit.nanometer), dtype=np.float64)


def _box(vectors):
    from openmm import unit
    if vectors is None:
        return None
    return check_box(np.asarray(vectors.value_in_unit(unit.nanometer), dtype=np.float64))   # (3,), or (3, 3) if triclinic


def _nonbonded_options(box):
    from openmm import app, unit
    if box is None:
        return {"nonbondedMethod": app.NoCutoff}
    return {"nonbondedMethod": app.CutoffPeriodic,
            "nonbondedCutoff": min(PERIODIC_CUTOFF, 0.5 * float(np.min(face_distances(box)))) * unit.nanometer}


def read_openmm_files(path, coordinates=None):
    """(openmm.System, topology, positions (N, 3) nm, box (3,) nm or None) from a force-field file."""
    import openmm
    from openmm import app
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".xml":
            system = openmm.XmlSerializer.deserialize(path.read_text())
            pdb = app.PDBFile(str(_beside(path, (".pdb",), "a PDB", coordinates)))
            box = _box(pdb.topology.getPeriodicBoxVectors())
            if system.usesPeriodicBoundaryConditions():
                vectors = system.getDefaultPeriodicBoxVectors()
                box = check_box([_positions(v) for v in vectors])
            return system, pdb.topology, _positions(pdb.positions), box
        if suffix in (".prmtop", ".parm7"):
            prmtop = app.AmberPrmtopFile(str(path))
            crd = app.AmberInpcrdFile(str(_beside(path, (".inpcrd", ".rst7", ".crd"), "coordinates", coordinates)))
            box = _box(crd.boxVectors) if crd.boxVectors is not None else None
            system = prmtop.createSystem(constraints=None, rigidWater=False, **_nonbonded_options(box))
            if box is not None:
                system.setDefaultPeriodicBoxVectors(*crd.boxVectors)
            return system, prmtop.topology, _positions(crd.positions), box
        if suffix == ".top":
            gro = app.GromacsGroFile(str(_beside(path, (".gro",), "a .gro file", coordinates)))
            vectors = gro.getPeriodicBoxVectors()
            top = app.GromacsTopFile(str(path), periodicBoxVectors=vectors)
            box = _box(vectors)
            system = top.createSystem(constraints=None, rigidWater=False, **_nonbonded_options(box))
            return system, top.topology, _positions(gro.positions), box
        if suffix == ".psf":
            psf = app.CharmmPsfFile(str(path))
            params = sorted(p for p in path.parent.iterdir() if p.suffix.lower() in (".prm", ".rtf", ".str", ".par", ".inp"))
            if not params:
                raise InputError(f"{path}: no CHARMM parameter files (.prm .rtf .str .par) beside it")
            parameters = app.CharmmParameterSet(*map(str, params))
            crd_path = _beside(path, (".crd", ".pdb"), "coordinates", coordinates)
            crd = app.CharmmCrdFile(str(crd_path)) if crd_path.suffix.lower() == ".crd" else app.PDBFile(str(crd_path))
            system = psf.createSystem(parameters, constraints=None, rigidWater=False, **_nonbonded_options(None))
            return system, psf.topology, _positions(crd.positions), None
    except InputError:
        raise
    except Exception as err:  # OpenMM's readers raise plain Exceptions with their own messages
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: OpenMM could not read it ({message})") from None
    raise InputError(f"{path}: unknown force-field file type {suffix!r}; give one of {', '.join(SUFFIXES)}")


def load_openmm_system(path, coordinates=None):
    """What a catalogue System needs from a force-field file, as a dict: name, description,
    positions (N, 3) nm, masses (N,) amu, box (3,) nm or None, names (N,), potential (adapted)."""
    from .adapter import adapt
    system, topology, positions, box = read_openmm_files(path, coordinates)
    potential = adapt(system, topology)
    if len(positions) != potential.n_atoms:
        raise InputError(f"{path}: the coordinates hold {len(positions)} atoms but the System has {potential.n_atoms}")
    return dict(name=Path(path).stem, description=f"OpenMM System from {Path(path).name}", positions=positions,
                masses=potential.masses, box=potential.box if potential.box is not None else box,
                names=np.array([a.name for a in topology.atoms()]), potential=potential)
