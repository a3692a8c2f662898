"""Engine ``"mindsponge"``: a MindSPONGE molecule built from residue templates and a parameter set.

Fields: ``coordinates``, ``template`` ('protein0.yaml', 'water.spce.yaml'), ``residues`` (names,
or ``[name, copies]``), ``forcefield`` ('AMBER.FF14SB', 'SPCE', 'TIP3P'), optionally ``cutoff``
(nm or null) and ``md`` (run settings: ``temperature`` K, ``time_step`` ps). The molecule is built
by :mod:`mdjac.sponge.systems`, the potential is :func:`mdjac.sponge.adapt` of it, and
:meth:`SpongeSystem.sponge` gives the MindSPONGE objects for an MD run. MindSPONGE is imported
only when the atoms' names and masses, the potential or those objects are first asked for.
"""
from dataclasses import dataclass, field

from ..errors import InputError
from .checks import check_strings, positive_number, shown
from .system import System

ENGINE = "mindsponge"
REQUIRED_FIELDS = ("coordinates", "template", "residues", "forcefield")
OPTIONAL_FIELDS = ("name", "description", "cutoff", "md")
MD_SETTINGS = ("temperature", "time_step")


@dataclass
class SpongeSystem(System):
    """A MindSPONGE system: its potential is MindSPONGE's force field, adapted term by term."""

    _sponge: tuple = field(default=None, repr=False)

    engine = ENGINE

    def build_potential(self):
        from ..sponge.adapter import adapt
        return adapt(*self.sponge(), box=self.box)   # the box in float64 from the coordinates file

    @property
    def md_settings(self):
        """The file's MD settings: dict with ``temperature`` (K) and ``time_step`` (ps), where given."""
        return dict(self.spec.get("md", {}))

    def sponge(self, fresh=False):
        """(Molecule, ForceField) of MindSPONGE at this system's positions.

        Cached; ``fresh=True`` builds new ones (an MD run moves the molecule's coordinates).
        """
        if fresh or self._sponge is None:
            from ..sponge.systems import build_sponge
            built = build_sponge(self.spec, self.positions, self.box)
            if fresh:
                return built
            self._sponge = built
        return self._sponge


def check(spec, path):
    """The checks of this engine's fields beyond their presence: the file names, residues, cutoff, md settings."""
    check_strings(spec, ("coordinates", "template", "forcefield"), path)
    _check_residues(spec["residues"], path)
    if spec.get("cutoff") is not None:
        positive_number(spec["cutoff"], "the cutoff (nm)", path)
    md = spec.get("md", {})
    if not isinstance(md, dict) or set(md) - set(MD_SETTINGS):
        raise InputError(f"{path}: 'md' is {shown(md)}; give an object with {' and '.join(MD_SETTINGS)}")
    for key in md:
        positive_number(md[key], f"md {key}", path)


def load(spec, path):
    """The :class:`SpongeSystem` of a checked system file ``spec`` read from ``path``."""
    from ..sponge.systems import sponge_names_and_masses
    return SpongeSystem.from_file(spec, path, lambda spec, coords: sponge_names_and_masses(spec))


def _check_residues(residues, path):
    """'residues': a list of names or [name, copies] pairs."""
    fix = "give a list of residue names or [name, copies] pairs, e.g. [\"ACE\", \"ALA\", [\"WAT\", 10]]"
    if not isinstance(residues, list) or not residues:
        raise InputError(f"{path}: 'residues' is {shown(residues)}; {fix}")
    for item in residues:
        if not (isinstance(item, str) or (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                                          and isinstance(item[1], int) and item[1] > 0)):
            raise InputError(f"{path}: the residue {shown(item)} is not a name or a [name, copies] pair; {fix}")
