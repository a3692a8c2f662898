"""Terms whose energy is a given function of one internal coordinate (custom force fields).

Each term here pairs a geometry with an energy function written in MindSpore ops:

==================  =====  ==================================================================
term                k      variables the function sees (each (..., M))
==================  =====  ==================================================================
BondFunction        2      (r,) the distance |x_j - x_i|, nm
AngleFunction       3      (theta,) the angle i-j-k at j, rad in [0, pi]
TorsionFunction     4      (phi,) the IUPAC dihedral of (i, j, k, l), rad in (-pi, pi]
PositionFunction    1      (x, y, z) the atom's position as given (no wrap), nm
PairFunction        2      (r,) over neighbour pairs within a cutoff (or all pairs), exclusions removed
==================  =====  ==================================================================

``function(variables, params)`` -> (..., M) energies in kJ/mol, where ``params`` is the tuple of
per-instance parameter arrays (M,) the term was given (for pairs: computed per pair by
``pair_parameters(i, j)``). Every number the function needs that is not an exact small integer
must travel in ``params``: a Python float inside a compiled MindSpore graph is float32.

A pair function may be switched off smoothly between ``switch`` (r_s) and the cutoff (r_c):
E(r) S(r) with S = 1 - 10 t^3 + 15 t^4 - 6 t^5, t = (r - r_s)/(r_c - r_s) for r_s < r < r_c and
S = 1 below r_s (OpenMM's and CHARMM's switch; :func:`mdjac.terms.pairs.switching_function`). The
derivatives all come from automatic differentiation of these energies.
"""
import abc

import numpy as np

from ..errors import InputError
from .base import FixedTerm, PairTerm
from .checks import index_array, per_instance
from .geometry import bond_angle, dihedral, distance
from .pairs import switching_function


class _FunctionTerm(FixedTerm):
    """A fixed list of instances with an energy function of one geometric variable."""

    def __init__(self, index, function, params, name=None):
        index = index_array(index, self.n_body, f"{type(self).__name__} atoms")
        super().__init__(index, tuple(per_instance(p, len(index), f"{type(self).__name__} parameter") for p in params))
        self.function = function
        self.name = name or type(self).__name__

    @abc.abstractmethod
    def variables(self, q):
        """The geometric variables (tuple of (..., M) arrays) of coordinates q (..., M, c, 3)."""

    def energy(self, q, *params):
        return self.function(self.variables(q), params)

    def __repr__(self):
        return f"{self.name}({len(self.index)} instances)"


class _CoordinateFunction(_FunctionTerm):
    """E = function((c,), params) of one internal coordinate c of relative positions: a subclass sets
    ``n_body`` and ``coordinate`` (a function of q (..., M, c, 3), mdjac.terms.geometry, as a staticmethod)."""
    relative = True

    def variables(self, q):
        return (self.coordinate(q),)


class BondFunction(_CoordinateFunction):
    """E = function((r,), params) per atom pair; pairs (M, 2) int. A function of the distance: the
    radial route (mdjac.strategies.replicate)."""
    n_body = 2
    radial = True
    coordinate = staticmethod(distance)

    def radial_energy(self, r, *params):
        return self.function((r,), params)


class AngleFunction(_CoordinateFunction):
    """E = function((theta,), params) per triple (i, j, k), theta the angle at j; triples (M, 3) int."""
    n_body = 3
    coordinate = staticmethod(bond_angle)


class TorsionFunction(_CoordinateFunction):
    """E = function((phi,), params) per quadruple, phi the IUPAC dihedral; quads (M, 4) int."""
    n_body = 4
    coordinate = staticmethod(dihedral)


class PositionFunction(_FunctionTerm):
    """E = function((x, y, z), params) per atom, positions as given; atoms (M,) or (M, 1) int."""
    n_body = 1
    relative = False

    def __init__(self, atoms, function, params, name=None):
        super().__init__(np.asarray(atoms).reshape(-1, 1), function, params, name)

    def variables(self, q):
        x = q[..., 0, :]
        return (x[..., 0], x[..., 1], x[..., 2])


class PairFunction(PairTerm):
    """E = function((r,), params) S(r) over atom pairs (neighbours within the cutoff, or all pairs).

    n_atoms: N. function: see the module docstring. pair_parameters: (i (P,), j (P,)) -> tuple
    of (P,) float64 arrays, the parameters of each pair (combined from per-atom values, looked up
    in tables, ...), or 0-d arrays, one value shared by every pair (mdjac.chunks). cutoff,
    exclusions, pairs: see :class:`mdjac.terms.base.PairTerm` (with ``pairs``, a fixed list such as
    OpenMM's exceptions, pair_parameters is called with that list's two columns). switch: None or
    the distance (nm, below the cutoff) where the switching function starts. groups: None (every pair)
    or interaction groups, a list of (set1, set2) of atom indices: only pairs with one atom in set1
    and the other in set2 of some group (OpenMM's CustomNonbondedForce interaction groups; a pair
    may belong to one group only).
    """

    def __init__(self, n_atoms, function, pair_parameters, cutoff=None, exclusions=None, switch=None, name=None,
                 pairs=None, groups=None):
        super().__init__(n_atoms, cutoff, exclusions, pairs)
        self.groups = None
        if groups is not None:
            self.groups = np.zeros((len(groups), 2, self.n_atoms), dtype=bool)   # [group, set, atom]
            for g, sets in enumerate(groups):
                for s, members in enumerate(sets):
                    members = np.asarray(list(members), dtype=np.int64)
                    if len(members) and (members.min() < 0 or members.max() >= self.n_atoms):
                        raise InputError(f"interaction group {g} names atoms outside 0..{self.n_atoms - 1}")
                    self.groups[g, s, members] = True
        if switch is not None and (self.cutoff is None or not 0 <= float(switch) < self.cutoff):
            raise InputError(f"the switching distance {switch} nm must lie in [0, cutoff) and needs a cutoff")
        self.function, self.pair_parameters = function, pair_parameters
        self.switch = None if switch is None else float(switch)
        self.name = name or "PairFunction"

    def candidate_pairs(self, config):
        pairs = super().candidate_pairs(config)
        if self.groups is None:
            return pairs
        i, j = pairs[:, 0], pairs[:, 1]
        count = ((self.groups[:, 0][:, i] & self.groups[:, 1][:, j]) | (self.groups[:, 1][:, i] & self.groups[:, 0][:, j])).sum(0)
        if count.max(initial=0) > 1:
            k = int(np.argmax(count))
            raise InputError(f"atoms {i[k]} and {j[k]} are paired by {count[k]} interaction groups, which OpenMM counts "
                             "as many times: mdjac takes each pair once; give each pair one group")
        return pairs[count == 1]

    def pair_params(self, i, j):
        params = tuple(np.asarray(p, dtype=np.float64) for p in self.pair_parameters(i, j))
        if self.switch is None:
            return params
        # switch and cutoff travel as 0-d float64 arrays (Python floats in a graph are float32)
        return params + (np.float64(self.switch), np.float64(self.cutoff))

    def radial_energy(self, r, *params):
        """The energy as a function of the distance r (..., M) nm: the radial route of pair terms."""
        if self.switch is None:
            return self.function((r,), params)
        return self.function((r,), params[:-2]) * switching_function(r, params[-2], params[-1])

    def __repr__(self):
        groups = "" if self.groups is None else f", {len(self.groups)} interaction groups"
        return f"{self.name}(cutoff={self.cutoff}, switch={self.switch}{groups})"
