"""Engine ``"openmm"``: not a system file but a force-field file that OpenMM reads.

System XML (+ PDB), AMBER prmtop (+ inpcrd), GROMACS top (+ gro), CHARMM psf (+ parameters +
crd), recognised by their suffix (:data:`SUFFIXES`); what is read beside each is in
:mod:`mdjac.openmm.files`. The potential is :func:`mdjac.openmm.adapt` of OpenMM's System, built
when the file is loaded.
"""
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .system import System

ENGINE = "openmm"
#: Force-field files read through OpenMM (mdjac.openmm.files.SUFFIXES, named here so that finding
#: the engine of a path does not import OpenMM; a test checks that the two lists agree).
SUFFIXES = (".xml", ".prmtop", ".parm7", ".top", ".psf")


@dataclass
class OpenMMSystem(System):
    """A system from OpenMM's file readers; its potential is adapted when the file is read."""

    engine = ENGINE

    @property
    def jacobian_atoms(self):
        """The real atoms (virtual sites have no rows or columns in the Jacobian)."""
        return self.potential.jacobian_atoms


def matches(path):
    """True if ``path`` is a file for this engine, by its suffix."""
    return Path(os.fspath(path)).suffix.lower() in SUFFIXES


def load(path):
    """The :class:`OpenMMSystem` of a force-field file ``path``."""
    if not Path(os.fspath(path)).is_file():
        raise InputError(f"{path}: no such file")
    from ..openmm.files import load_openmm_system
    got = load_openmm_system(path)
    spec = {"engine": ENGINE, "name": got["name"], "cutoff": None, "source": os.fspath(path)}
    return OpenMMSystem(got["name"], got["description"], got["positions"], got["masses"], got["box"], got["names"],
                        Path(path), spec, _potential=got["potential"])
