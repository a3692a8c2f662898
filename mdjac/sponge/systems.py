"""MindSPONGE molecules for the catalogue's ``"mindsponge"`` systems (mdjac.catalogue).

A system file names a template ('protein0.yaml', 'water.spce.yaml'), residues (names, or
[name, copies]) and a parameter set ('AMBER.FF14SB', 'SPCE'); :func:`build_sponge` builds the
``Molecule`` and ``ForceField`` from them. Atom names and masses come from the templates alone
(:func:`sponge_names_and_masses`), which is all the catalogue needs to load a system.
"""
import functools

import numpy as np

from ..errors import InputError


def _residue_list(spec):
    """[(name, copies)] from the spec's 'residues' (names, or [name, copies])."""
    out = []
    for item in spec["residues"]:
        name, copies = (item, 1) if isinstance(item, str) else (item[0], int(item[1]))
        out.append((name, copies))
    return out


@functools.lru_cache(maxsize=None)
def _template(name):
    from mindsponge.data import get_template
    return get_template(name)


def _template_residue(spec, name):
    tmpl = _template(spec["template"]).get(name)
    if tmpl is None:
        raise InputError(f"residue {name!r} is not in MindSPONGE's template {spec['template']!r}: fix 'residues'")
    return tmpl


def sponge_names_and_masses(spec):
    """Atom names (N,) and masses (N,) amu of a mindsponge system, from MindSPONGE's templates.

    Reads the template YAML through MindSPONGE's loader (which imports mindsponge)."""
    names, masses = [], []
    for name, copies in _residue_list(spec):
        t = _template_residue(spec, name)
        names += list(t["atom_name"]) * copies
        masses += list(t["atom_mass"]) * copies
    return np.array(names), np.array(masses, dtype=np.float64)


def _build_residue(spec, name, copies):
    """A MindSPONGE residue: a template residue, or ``copies`` of one merged into a single residue.

    One merged residue instead of 1,000 small ones: Molecule.build_system is quadratic in residues
    (1,000 waters took 270 s); the force field is the same (bonds stay within each copy)."""
    from mindsponge.system import Residue
    from mindsponge.system.residue.amino import AminoAcid

    t = _template_residue(spec, name)
    if copies == 1:
        cls = AminoAcid if spec["template"].startswith("protein") else Residue
        return cls(name=name, template=_template(spec["template"]))
    n = len(t["atom_name"])
    bond = np.asarray(t.get("bond") or np.zeros((0, 2)), dtype=np.int32)
    bonds = (bond[None] + n * np.arange(copies)[:, None, None]).reshape(-1, 2)
    tile = lambda key, dtype: np.tile(np.asarray(t[key], dtype=dtype), copies)  # noqa: E731
    return Residue(name=name, atom_name=tile("atom_name", np.str_), atom_type=tile("atom_type", np.str_),
                   atom_mass=tile("atom_mass", np.float32), atomic_number=tile("atomic_number", np.int32),
                   atom_charge=tile("atom_charge", np.float32) if "atom_charge" in t else None, bond=bonds)


def build_sponge(spec, positions, box):
    """(Molecule, ForceField) of MindSPONGE for a mindsponge system spec at ``positions`` (N, 3) nm.

    The force field's cells get the spec's cutoff (nm), as a SimulationCell would set it.
    """
    from mindsponge import ForceField, Molecule

    residues = [_build_residue(spec, name, copies) for name, copies in _residue_list(spec)]
    pbc = None if box is None else np.asarray(box, dtype=np.float32).reshape(1, 3)
    molecule = Molecule(residue=residues, coordinate=np.asarray(positions, dtype=np.float32)[None], pbc_box=pbc)
    forcefield = ForceField(molecule, spec["forcefield"])
    if spec.get("cutoff") is not None:
        forcefield.set_cutoff(float(spec["cutoff"]))
    return molecule, forcefield
