"""``System``: a molecular system ready for mdjac, whatever engine described it.

Every engine of the catalogue (:mod:`mdjac.catalogue`) returns one: atoms with positions,
masses, names and a box, and a :class:`mdjac.Potential` built on first use by the engine's own
subclass (:meth:`System.build_potential`).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .checks import check_atom_count, file_positions


@dataclass
class System:
    """A molecular system: its atoms and, on first use, its potential.

    Attributes
    ----------
    name, description : str.
    positions : (N, 3) nm, float64.
    masses : (N,) amu.
    box : None, (3,) nm (orthorhombic edges) or (3, 3) nm (triclinic box vectors, mdjac.space).
    names : (N,) atom names.
    path : Path, the file the system was read from.
    spec : dict, the system file's contents (an engine's settings: ``cutoff``, ``md``, ...).
    coordinates : dict or None, the arrays of its coordinates file (:func:`.checks.read_coordinates`),
        read once, for an engine that refers to them (an "mdjac" system's ``"@key"``).
    engine : str (class attribute), the engine that read it: 'mdjac', 'mindsponge', 'openmm'.
    """
    name: str
    description: str
    positions: np.ndarray
    masses: np.ndarray
    box: Optional[np.ndarray]
    names: np.ndarray
    path: Path = field(repr=False)
    spec: dict = field(default_factory=dict, repr=False)
    coordinates: dict = field(default=None, repr=False)
    _potential: object = field(default=None, repr=False)

    engine = None
    #: Only the seed article's demo (:class:`mdjac.catalogue.article.ArticleDemo`) has a function.
    function = None

    @classmethod
    def from_file(cls, spec, path, names_and_masses):
        """The system of a checked system file: positions and box from its coordinates file.

        Parameters
        ----------
        spec : dict, the file's contents.  path : Path, the file.
        names_and_masses : the engine's function (spec, coordinates dict) -> (names (N,), masses (N,) amu).
        """
        coords, x, box = file_positions(spec, path)
        names, masses = names_and_masses(spec, coords)
        check_atom_count(names, x, path)
        return cls(spec.get("name", path.stem), spec.get("description", ""), x, masses, box, names, path, spec,
                   coords)

    @property
    def is_mindsponge(self):
        """True for a system MindSPONGE can run (a :class:`~mdjac.catalogue.sponge_engine.SpongeSystem`,
        whose ``sponge()`` gives its objects)."""
        return self.engine == "mindsponge"

    @property
    def n_atoms(self):
        return len(self.positions)

    @property
    def jacobian_atoms(self):
        """The atoms a full Jacobian of this system is over: "all" (every engine but OpenMM's, whose
        virtual sites are left out: :attr:`mdjac.Potential.jacobian_atoms`)."""
        return "all"

    @property
    def cutoff(self):
        """The file's cutoff (nm) or None."""
        return self.spec.get("cutoff")

    @property
    def potential(self):
        """The :class:`mdjac.Potential` (built on first use)."""
        if self._potential is None:
            self._potential = self.build_potential()
        return self._potential

    def build_potential(self):
        """The engine's Potential of this system; each engine's subclass states it."""
        raise NotImplementedError(f"{type(self).__name__} builds no potential")

    @property
    def topology(self):
        """Path of the PDB beside the system file (``NAME.pdb``) that MDAnalysis takes as the topology of
        this system's output files, ``MDAnalysis.Universe(system.topology, "out.h5md")``; None if there is none."""
        pdb = self.path.with_suffix(".pdb")
        return pdb if pdb.is_file() else None
