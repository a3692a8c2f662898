"""Engine ``"openmm"``: not a system file but a force-field file that OpenMM reads.

System XML (+ PDB), AMBER prmtop (+ inpcrd), GROMACS top (+ gro), CHARMM psf (+ parameters +
crd), recognised by their suffix (:data:`SUFFIXES`); what is read beside each, and how the
electrostatics are chosen, is in :mod:`mdjac.openmm.files`. The potential is
:func:`mdjac.openmm.adapt` of OpenMM's System, built when the file is loaded.
"""
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .system import System

ENGINE = "openmm"
#: Force-field files read through OpenMM (mdjac.openmm.files.SUFFIXES, named here so that finding
#: the engine of a path does not import OpenMM; a test checks that the two lists agree).
SUFFIXES = (".xml", ".prmtop", ".parm7", ".top", ".psf")
#: The keywords of :func:`load` (``load_system``'s loader options; the command line's ``--nonbonded``,
#: ``--cutoff``, ``--ewald-tolerance``, ``--coordinates``, ``--parameters``, ``--box``).
OPTIONS = ("nonbonded", "cutoff", "ewald_tolerance", "coordinates", "parameters", "box", "implicit_solvent", "salt")


def topology_folder():
    """Where the PDBs of force-field systems' topologies are written: $XDG_CACHE_HOME/mdjac/topologies
    (else ~/.cache/mdjac/topologies)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mdjac" / "topologies"


@dataclass
class OpenMMSystem(System):
    """A system from OpenMM's file readers; its potential is adapted when the file is read.

    openmm_topology : openmm.app.Topology, written as a PDB the first time :attr:`topology` is asked for.
    openmm_system : openmm.System, the potential's source (what ``mdjac run`` integrates).
    """

    openmm_topology: object = field(default=None, repr=False)
    openmm_system: object = field(default=None, repr=False)
    _topology_pdb: Path = field(default=None, repr=False)

    engine = ENGINE

    @property
    def electrostatics(self):
        """What the NonbondedForce computes, one phrase (:func:`mdjac.openmm.files.describe_nonbonded`)."""
        return self.spec.get("electrostatics")

    @property
    def load_options(self):
        """The loader options the system was loaded with (:data:`OPTIONS`; to load it again alike)."""
        return dict(self.spec.get("options", {}))

    @property
    def topology(self):
        """A PDB of OpenMM's topology at the loaded positions, for MDAnalysis:
        ``MDAnalysis.Universe(system.topology, "out.h5md")``. Written once into :func:`topology_folder`,
        named by its contents' hash."""
        if self._topology_pdb is None:
            from openmm import app, unit
            text = io.StringIO()
            app.PDBFile.writeFile(self.openmm_topology, self.positions * unit.nanometer, text)
            data = text.getvalue().encode()
            folder = topology_folder()
            path = folder / f"{self.name}-{hashlib.sha256(data).hexdigest()[:16]}.pdb"
            if not path.is_file():
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    partial = path.with_suffix(f".{os.getpid()}.tmp")
                    partial.write_bytes(data)
                    os.replace(partial, path)
                except OSError as err:
                    raise InputError(f"cannot write the topology PDB {path} ({err.strerror}): set XDG_CACHE_HOME "
                                     "to a writable folder") from None
            self._topology_pdb = path
        return self._topology_pdb

    @property
    def jacobian_atoms(self):
        """The real atoms (virtual sites have no rows or columns in the Jacobian)."""
        return self.potential.jacobian_atoms


def matches(path):
    """True if ``path`` is a file for this engine, by its suffix."""
    return Path(os.fspath(path)).suffix.lower() in SUFFIXES


def _recorded(options):
    """The options given, JSON-able (files as absolute paths), as an output's metadata records them."""
    out = {}
    for key, value in options.items():
        if value is None:
            continue
        if key == "coordinates":
            value = os.path.abspath(value)
        elif key == "parameters":
            value = [os.path.abspath(p) for p in ([value] if isinstance(value, (str, os.PathLike)) else value)]
        elif key == "box":
            value = [float(e) for e in np.ravel(value)]
        out[key] = value
    return out


def load(path, **options):
    """The :class:`OpenMMSystem` of a force-field file ``path``; ``options``: :data:`OPTIONS`."""
    if not Path(os.fspath(path)).is_file():
        raise InputError(f"{path}: no such file")
    from ..openmm.files import load_openmm_system
    got = load_openmm_system(path, **options)
    given = _recorded(options)
    spec = {"engine": ENGINE, "name": got["name"], "cutoff": None, "source": os.fspath(path),
            "electrostatics": got["electrostatics"], "options": given}
    return OpenMMSystem(got["name"], got["description"], got["positions"], got["masses"], got["box"], got["names"],
                        Path(path), spec, _potential=got["potential"], openmm_topology=got["topology"],
                        openmm_system=got["openmm_system"])
