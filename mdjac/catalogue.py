"""The catalogue of ready systems: ``load_system(name_or_path)``.

Each system is a declarative JSON file in ``systems/`` (installed as the package data
``mdjac.systems``) next to its coordinates (PDB or npz). Three engines:

* ``"mindsponge"``: a MindSPONGE Molecule built from residue templates and a parameter set
  ('AMBER.FF14SB', 'SPCE', 'TIP3P') by :mod:`mdjac.sponge.systems`; the potential is
  :func:`mdjac.sponge.adapt` of it, and
  :meth:`System.sponge` gives the MindSPONGE objects for an MD run. MindSPONGE is imported only
  when the potential or those objects are first asked for.
* ``"mdjac"``: mdjac terms listed in the file, e.g. ``{"term": "LennardJones", "sigma": [...],
  "types": "@types", "cutoff": 0.85}``; a string ``"@key"`` stands for the array ``key`` of the
  coordinates file.
* ``"openmm"``: not a JSON file but a force-field file read by OpenMM (System XML, prmtop, top,
  psf): :func:`mdjac.openmm.files.load_openmm_system`, the potential :func:`mdjac.openmm.adapt`.
* ``"article"``: the article's example z = y[index] * x, not a molecule: ``.potential`` is None
  and ``.function`` maps x (3,) to z (3,) in MindSpore ops.

Fields of every file: ``name``, ``description``, ``engine``, ``coordinates`` (file name, relative
to the JSON file; not for "article"). mindsponge: ``template``, ``residues`` (list of residue
names, or ``[name, copies]``), ``forcefield``, ``cutoff`` (nm or null), ``md`` (run settings).
mdjac: ``atom_types`` (list of {"name", "mass"}), ``terms``.
"""
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import InputError

DEFAULT_SYSTEM = "alanine-dipeptide"
ENGINES = ("mindsponge", "mdjac", "article")


# ----------------------------------------------------------------------------- where the files are
def systems_dir():
    """The folder of the catalogue: the installed package data ``mdjac.systems``, else the clone's ``systems/``."""
    try:
        from importlib.resources import files
        return Path(str(files("mdjac.systems")))
    except (ModuleNotFoundError, TypeError):
        return Path(__file__).resolve().parent.parent / "systems"


def available_systems():
    """Sorted names of the catalogue's systems."""
    return sorted(p.stem for p in systems_dir().glob("*.json"))


def _spec_path(name_or_path):
    """The JSON file for a catalogue name or a path to a system file."""
    s = os.fspath(name_or_path)
    if s.endswith(".json") or os.sep in s:
        p = Path(s)
        if not p.is_file():
            raise InputError(f"{s}: no such system file; give a catalogue name ({', '.join(available_systems())}) or a JSON path")
        return p
    p = systems_dir() / f"{s}.json"
    if not p.is_file():
        raise InputError(f"unknown system {s!r}: available are {', '.join(available_systems())} (or give a path to a system JSON)")
    return p


# ----------------------------------------------------------------------------- coordinates
def read_pdb(path):
    """Atoms of a PDB file: (positions (N, 3) nm, names (N,), residue names (N,), box None or (3,) nm)."""
    xyz, names, resnames, box = [], [], [], None
    with open(path) as f:
        for line in f:
            if line.startswith(("ATOM", "HETATM")):
                xyz.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
                names.append(line[12:16].strip())
                resnames.append(line[17:20].strip())
            elif line.startswith("CRYST1"):
                box = 0.1 * np.array([float(line[6:15]), float(line[15:24]), float(line[24:33])])
    if not xyz:
        raise InputError(f"{path} holds no ATOM records: give a PDB file with coordinates")
    return 0.1 * np.array(xyz), np.array(names), np.array(resnames), box


def read_coordinates(path):
    """dict with 'positions' (N, 3) nm, 'box' None or (3,) nm, 'names' or None, and any other arrays (npz)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: coordinates file missing; the system file names it under 'coordinates'")
    if path.suffix == ".pdb":
        x, names, resnames, box = read_pdb(path)
        return {"positions": x, "box": box, "names": names, "resnames": resnames}
    if path.suffix == ".npz":
        with np.load(path) as data:
            out = {k: data[k] for k in data.files}
        if "positions" not in out:
            raise InputError(f"{path} has no 'positions' array: store positions (N, 3) in nm under that key")
        out["box"] = out.get("box")
        out["names"] = out.get("names")
        return out
    raise InputError(f"{path}: unknown coordinates format {path.suffix!r}; use .pdb or .npz")


# ----------------------------------------------------------------------------- the system
@dataclass
class System:
    """A ready system.

    name, description: str. positions: (N, 3) nm float64 (article: x (3,)). masses: (N,) amu.
    box: None or (3,) nm. names: (N,) atom names. spec: the JSON file's contents; path: its file.
    potential: :class:`mdjac.Potential` (None for the article). function: the article's z(x)
    (None otherwise). See :meth:`sponge` for the MindSPONGE objects.
    """
    name: str
    description: str
    positions: np.ndarray
    masses: Optional[np.ndarray]
    box: Optional[np.ndarray]
    names: Optional[np.ndarray]
    spec: dict = field(repr=False)
    path: Path = field(repr=False)
    _potential: object = field(default=None, repr=False)
    _sponge: tuple = field(default=None, repr=False)

    @property
    def engine(self):
        return self.spec["engine"]

    @property
    def is_mindsponge(self):
        return self.engine == "mindsponge"

    @property
    def n_atoms(self):
        return None if self.engine == "article" else len(self.positions)

    @property
    def cutoff(self):
        return self.spec.get("cutoff")

    @property
    def potential(self):
        """The mdjac Potential (built on first use; None for the article)."""
        if self._potential is None and self.engine != "article":
            if self.is_mindsponge:
                from .sponge.adapter import adapt
                self._potential = adapt(*self.sponge(), box=self.box)   # the box in float64 from the coordinates file
            else:
                self._potential = build_terms_potential(self)
        return self._potential

    @property
    def function(self):
        """The article's example as a MindSpore function x (3,) -> y[index] * x (3,); None for molecules."""
        if self.engine != "article":
            return None
        return article_function(self.spec)

    def sponge(self, fresh=False):
        """(Molecule, ForceField) of MindSPONGE at this system's positions, or None for other engines.

        Cached; ``fresh=True`` builds new ones (an MD run moves the molecule's coordinates).
        """
        if not self.is_mindsponge:
            return None
        if fresh or self._sponge is None:
            from .sponge.systems import build_sponge
            built = build_sponge(self.spec, self.positions, self.box)
            if fresh:
                return built
            self._sponge = built
        return self._sponge


#: force-field files read through OpenMM (mdjac.openmm.files), by suffix
OPENMM_SUFFIXES = (".xml", ".prmtop", ".parm7", ".top", ".psf")


def load_system(name_or_path=DEFAULT_SYSTEM):
    """A :class:`System` by catalogue name (see :func:`available_systems`), by path to a system JSON,
    or by path to a force-field file OpenMM reads (System XML + PDB, AMBER prmtop + inpcrd, GROMACS
    top + gro, CHARMM psf + parameters + crd; see mdjac.openmm.files)."""
    if Path(os.fspath(name_or_path)).suffix.lower() in OPENMM_SUFFIXES:
        if not Path(os.fspath(name_or_path)).is_file():
            raise InputError(f"{name_or_path}: no such file")
        from .openmm.files import load_openmm_system
        got = load_openmm_system(name_or_path)
        spec = {"engine": "openmm", "name": got["name"], "cutoff": None, "source": os.fspath(name_or_path)}
        return System(got["name"], got["description"], got["positions"], got["masses"], got["box"], got["names"],
                      spec, Path(name_or_path), _potential=got["potential"])
    path = _spec_path(name_or_path)
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}): fix the system file") from None
    engine = spec.get("engine")
    if engine not in ENGINES:
        raise InputError(f"{path}: engine {engine!r} unknown; use one of {', '.join(ENGINES)}")
    name = spec.get("name", path.stem)
    description = spec.get("description", "")
    if engine == "article":
        x = np.asarray(spec["x"], dtype=np.float64)
        return System(name, description, x, None, None, None, spec, path)
    coords = read_coordinates(path.parent / spec["coordinates"])
    x = np.asarray(coords["positions"], dtype=np.float64)
    box = None if coords["box"] is None else np.asarray(coords["box"], dtype=np.float64).reshape(3)
    if engine == "mindsponge":
        from .sponge.systems import sponge_names_and_masses
        names, masses = sponge_names_and_masses(spec)
    else:
        names, masses = type_names_and_masses(spec, coords)
    if len(names) != len(x):
        raise InputError(f"{path}: the coordinates hold {len(x)} atoms but the residues/types describe {len(names)}")
    return System(name, description, x, masses, box, names, spec, path)


def resolve_system(system):
    """``system`` itself if it is a loaded :class:`System`, else :func:`load_system` of the name or
    path, with a missing file or a missing key in it as a one-line InputError."""
    if isinstance(system, System):
        return system
    try:
        return load_system(system)
    except (FileNotFoundError, KeyError) as err:
        raise InputError(f"unknown system {system!r} ({err}); give a name from systems/ or a system file") from None


# ----------------------------------------------------------------------------- engine "mdjac"
def type_names_and_masses(spec, coords):
    """Names (N,) and masses (N,) amu of an mdjac system from its atom types and the types array."""
    types = np.asarray(coords.get("types", np.zeros(len(coords["positions"]), np.int64)), dtype=np.int64)
    table = spec.get("atom_types") or []
    if not table or types.max() >= len(table):
        raise InputError("the system's atom_types list does not cover every atom type: give one {name, mass} per type")
    return (np.array([table[t]["name"] for t in types]), np.array([float(table[t]["mass"]) for t in types]))


def build_terms_potential(system):
    """The Potential of an engine-"mdjac" system: its 'terms' list, '@key' resolved from the coordinates file."""
    from . import terms
    from .potential import Potential

    coords = read_coordinates(system.path.parent / system.spec["coordinates"])
    built = []
    for entry in system.spec.get("terms", []):
        entry = dict(entry)
        kind = entry.pop("term", None)
        cls = getattr(terms, str(kind), None)
        if not isinstance(cls, type) or not issubclass(cls, terms.Term):
            raise InputError(f"{system.path}: unknown term {kind!r}; use a class of mdjac.terms")
        args = {k: (coords[v[1:]] if isinstance(v, str) and v.startswith("@") else v) for k, v in entry.items()}
        built.append(cls(**args))
    return Potential(built, box=system.box, n_atoms=len(system.positions))


# ----------------------------------------------------------------------------- engine "article"
def article_function(spec):
    """The article's z = y[index] * x as a MindSpore function of x (3,) (float32 or float64 Tensor)."""
    import mindspore as ms
    from mindspore import ops

    y = ms.Tensor(np.asarray(spec["y"], dtype=np.float64))
    index = ms.Tensor(np.asarray(spec["index"], dtype=np.int32))

    def z(x):
        return ops.cast(ops.gather(y, index, 0).reshape(-1), x.dtype) * x
    return z
