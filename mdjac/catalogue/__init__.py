"""The catalogue of ready systems: ``load_system(name_or_path)``, a registry of engines.

A system comes from one of two kinds of file, each read by an engine that returns a
:class:`~mdjac.catalogue.system.System`:

* a declarative JSON file (the catalogue's own in ``systems/``, installed as the package data
  ``mdjac.systems``, or any path), whose ``engine`` field names its engine in :data:`ENGINES`:

  ==============  =====================================================================
  ``mindsponge``  a MindSPONGE molecule from residue templates (:mod:`.sponge_engine`)
  ``mdjac``       a list of mdjac terms (:mod:`.mdjac_engine`)
  ``article``     the seed article's demo, a function and not a molecule: an
                  :class:`~mdjac.catalogue.article.ArticleDemo` (:mod:`.article`)
  ==============  =====================================================================

* a force-field file another program reads, recognised by :data:`FILE_ENGINES` (today OpenMM's
  System XML, prmtop, top and psf: :mod:`.openmm_engine`).

Fields of every JSON file: ``name``, ``description`` (optional), ``engine``, and the engine's
own (its ``REQUIRED_FIELDS`` and ``OPTIONAL_FIELDS``). A file is checked when it is loaded
(:func:`check_spec`): a missing field, an unknown one (with the near miss it probably meant), a
value of the wrong kind is a one-line InputError naming the file and the fix. ``NAME.pdb`` beside
``NAME.json`` is the system's topology for MDAnalysis (:attr:`System.topology`).

To add an engine: a module here with ``REQUIRED_FIELDS``, ``OPTIONAL_FIELDS``, ``check(spec,
path)`` and ``load(spec, path)`` (a JSON engine) or ``matches(path)`` and ``load(path)`` (a file
engine), and one line in :data:`ENGINES` or :data:`FILE_ENGINES`.
"""
import json
import os
from pathlib import Path

from ..errors import InputError
from . import article, mdjac_engine, openmm_engine, sponge_engine
from .article import ArticleDemo
from .checks import check_keys, check_strings, read_coordinates, read_pdb, shown
from .system import System

__all__ = ["ArticleDemo", "DEFAULT_SYSTEM", "ENGINES", "FILE_ENGINES", "System", "available_systems", "check_spec",
           "is_system_file", "load_system", "read_coordinates", "read_pdb", "resolve_system", "systems_dir"]

DEFAULT_SYSTEM = "alanine-dipeptide"
#: Engines of system JSON files, by the file's ``engine`` field.
ENGINES = {sponge_engine.ENGINE: sponge_engine, mdjac_engine.ENGINE: mdjac_engine, article.ENGINE: article}
#: Engines of files other programs read, tried in order: name -> module with matches(path), load(path).
FILE_ENGINES = {openmm_engine.ENGINE: openmm_engine}


# --------------------------------------------------------------------------------------------
# where the files are
# --------------------------------------------------------------------------------------------

def systems_dir():
    """The folder of the catalogue: the installed package data ``mdjac.systems``, else the clone's ``systems/``."""
    try:
        from importlib.resources import files
        return Path(str(files("mdjac.systems")))
    except (ModuleNotFoundError, TypeError):
        return Path(__file__).resolve().parents[2] / "systems"


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


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------

def check_spec(spec, path):
    """The engine name of a system file's contents ``spec``, after checking its fields.

    Every required field there, no unknown one, each of the right kind (the engine's ``check``
    for its own fields). Raises a one-line InputError naming the file, the field and the fix.
    An "mdjac" system's term parameters are checked by the terms themselves when the potential
    is built.
    """
    if not isinstance(spec, dict):
        raise InputError(f"{path}: a system file holds a JSON object {{\"engine\": ..., ...}}, not a {type(spec).__name__}")
    name = spec.get("engine")
    if name not in ENGINES:
        raise InputError(f"{path}: engine {shown(name)} unknown; use one of {', '.join(ENGINES)}")
    engine = ENGINES[name]
    required = engine.REQUIRED_FIELDS
    check_keys(spec, ("engine",) + required + engine.OPTIONAL_FIELDS, required,
               f"{path}: an engine-{name!r} system (see systems/README.md)")
    check_strings(spec, ("name", "description"), path)
    engine.check(spec, path)
    return name


def is_system_file(path):
    """True if ``path`` names a system file by its name: a system JSON or a file of :data:`FILE_ENGINES`."""
    return os.fspath(path).endswith(".json") or any(engine.matches(path) for engine in FILE_ENGINES.values())


def load_system(name_or_path=DEFAULT_SYSTEM, **options):
    """A :class:`System` by catalogue name (see :func:`available_systems`), by path to a system
    JSON, or by path to a force-field file another program reads (:data:`FILE_ENGINES`: System
    XML + PDB, AMBER prmtop + inpcrd, GROMACS top + gro, CHARMM psf + parameters + crd; see
    :mod:`mdjac.openmm.files`). The file ``seed-article`` gives an :class:`ArticleDemo`.

    ``options`` (force-field files only; None: the file's default): ``nonbonded`` ('pme', 'ewald',
    'reaction-field', 'cutoff' or 'none'), ``cutoff`` (nm), ``ewald_tolerance``, ``coordinates``
    (a coordinates file not beside it), ``parameters`` (CHARMM parameter files, a GROMACS .mdp),
    ``box`` ((3,) edges or (3, 3) box vectors nm, for coordinates without one); see :mod:`mdjac.openmm.files`.
    """
    for engine in FILE_ENGINES.values():
        if engine.matches(name_or_path):
            unknown = sorted(set(options) - set(engine.OPTIONS))
            if unknown:
                raise TypeError(f"load_system() got unexpected keywords {unknown}")
            return engine.load(name_or_path, **options)
    given = sorted(k.replace("_", "-") for k, v in options.items() if v is not None)
    if given:
        raise InputError(f"--{', --'.join(given)} apply to force-field files (prmtop, top, psf, System XML), not to "
                         f"system {os.fspath(name_or_path)!r}: leave them out")
    path = _spec_path(name_or_path)
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}): fix the system file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text file: give a system JSON") from None
    return ENGINES[check_spec(spec, path)].load(spec, path)


def resolve_system(system, **options):
    """``system`` itself if it is a loaded :class:`System` (or :class:`ArticleDemo`), else
    :func:`load_system` of the name or path with the loader ``options``."""
    if isinstance(system, (System, ArticleDemo)):
        if any(v is not None for v in options.values()):
            raise InputError(f"loader options apply to a system name or file, not to the loaded system {system.name!r}")
        return system
    return load_system(system, **options)
