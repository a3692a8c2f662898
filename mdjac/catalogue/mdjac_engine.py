"""Engine ``"mdjac"``: a system file that lists mdjac terms.

Fields: ``coordinates`` (an npz or PDB file beside it), ``atom_types`` (a list of
{"name", "mass"}, masses > 0 amu), ``terms``: objects such as ``{"term": "LennardJones", "sigma":
[...], "types": "@types", "cutoff": 0.85}``, where a string ``"@key"`` stands for the array ``key``
of the coordinates file. Optional ``box``: 3 edges, or 3 box vectors [[ax, 0, 0], [bx, by, 0],
[cx, cy, cz]] (a triclinic box, OpenMM's form), in nm, in place of the coordinates file's. Each entry is checked against its term's parameters, and their values by
the term itself, when the potential is built.
"""
import inspect
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .checks import check_keys, check_strings, field_hint, positive_number, shown
from .system import System

ENGINE = "mdjac"
REQUIRED_FIELDS = ("coordinates", "atom_types", "terms")
OPTIONAL_FIELDS = ("name", "description", "box")


@dataclass
class TermsSystem(System):
    """A system whose potential is the terms its file lists."""

    engine = ENGINE

    def build_potential(self):
        return build_terms_potential(self)


def check(spec, path):
    """The checks of this engine's fields beyond their presence: 'coordinates', 'atom_types' and 'terms'."""
    check_strings(spec, ("coordinates",), path)
    _check_atom_types(spec["atom_types"], path)
    _check_term_entries(spec["terms"], path)


def load(spec, path):
    """The :class:`TermsSystem` of a checked system file ``spec`` read from ``path``."""
    return TermsSystem.from_file(spec, path, type_names_and_masses)


def _check_atom_types(table, path):
    """'atom_types': a list of {"name": str, "mass": amu > 0}."""
    fix = 'give a list of {"name": ..., "mass": amu} objects, one per atom type'
    if not isinstance(table, list) or not table:
        raise InputError(f"{path}: 'atom_types' is {shown(table)}; {fix}")
    for t, entry in enumerate(table):
        if not isinstance(entry, dict) or set(entry) != {"name", "mass"}:
            raise InputError(f"{path}: atom type {t} is {shown(entry)}; {fix}")
        positive_number(entry["mass"], f"the mass (amu) of atom type {t} ({entry['name']!r})", path)


def _check_term_entries(entries, path):
    """'terms': a list of objects, each with a 'term' naming a class of mdjac.terms (checked on build)."""
    fix = 'give a list of objects like {"term": "LennardJones", "sigma": [...], ...}'
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: 'terms' is {type(entries).__name__} {shown(entries)}; {fix}")
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("term"), str):
            raise InputError(f"{path}: the term entry {shown(entry)} names no 'term'; {fix}")


def type_names_and_masses(spec, coords):
    """Names (N,) and masses (N,) amu of an mdjac system from its atom types and the types array."""
    types = np.asarray(coords.get("types", np.zeros(len(coords["positions"]), np.int64)))
    table = spec.get("atom_types") or []
    if types.shape != (len(coords["positions"]),) or not np.issubdtype(types.dtype, np.integer):
        raise InputError(f"the coordinates' 'types' array is {types.dtype} {types.shape}: give one integer type per atom")
    if not table or types.min() < 0 or types.max() >= len(table):
        raise InputError("the system's atom_types list does not cover every atom type: give one {name, mass} per type")
    return (np.array([table[t]["name"] for t in types]), np.array([float(table[t]["mass"]) for t in types]))


def build_terms_potential(system):
    """The Potential of an engine-"mdjac" system: its 'terms' list, '@key' resolved from the coordinates file's
    arrays (:attr:`System.coordinates`)."""
    from .. import terms
    from ..potential import Potential

    built = []
    for entry in system.spec.get("terms", []):
        built.append(_build_term(terms, dict(entry), system.coordinates, system.path))
    try:
        return Potential(built, box=system.box, n_atoms=len(system.positions))
    except InputError as err:
        raise InputError(f"{system.path}: {err}") from None


def _build_term(terms, entry, coords, path):
    """One term of a system file from its entry {"term": class name, parameter: value or "@key"}."""
    kind = entry.pop("term", None)
    classes = sorted(terms.BY_NAME)
    if kind not in classes:
        raise InputError(f"{path}: unknown term {shown(kind)}{field_hint(kind, classes)}; use one of {', '.join(classes)}")
    cls = terms.BY_NAME[kind]
    parameters = inspect.signature(cls).parameters
    check_keys(entry, list(parameters), [n for n, p in parameters.items() if p.default is inspect.Parameter.empty],
               f"{path}: {kind}")
    args = {}
    for key, value in entry.items():
        if isinstance(value, str) and value.startswith("@"):
            if value[1:] not in coords:
                raise InputError(f"{path}: {kind} {key} refers to {value!r} but the coordinates file has no "
                                 f"array {value[1:]!r} (it has {', '.join(sorted(k for k in coords if coords[k] is not None))})")
            value = coords[value[1:]]
        args[key] = value
    try:
        return cls(**args)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None
