"""The term protocol: what a term states, and what the potential and the kernel do with it.

A term states its energy and nothing else; every derivative comes from automatic differentiation
in the kernel (mdjac.kernel). There are three kinds, each an abstract class here:

* **instance terms** (:class:`Term`, :class:`FixedTerm`): a set of instances (one bond, one angle,
  one restrained atom), each touching ``n_body`` = k atoms, listed by ``instances(config)`` ->
  (index (M, k) int64, params tuple of (M, ...) float64 arrays). The energy of every instance is
  ``energy(q, *params)`` -> (..., M) kJ/mol in MindSpore ops of the per-instance coordinates q:
  the displacements ``q[m, a-1] = x[index[m, a]] - x[index[m, 0]]`` (a = 1..k-1, minimum image;
  ``relative = True``, q (..., M, k-1, 3)), or the positions ``x[index]`` themselves
  (``relative = False``, q (..., M, k, 3)). It must accept leading copy axes on q (MindSpore
  broadcasting does this for free).
* **radial pair terms** (:class:`PairTerm`): instances are atom pairs (neighbours within a cutoff,
  or a fixed list) and the energy is a function of the distance alone, ``radial_energy(r, *params)``
  -> (..., M) of r (..., M) nm; ``energy(q)`` is that of r = |q|, and the potential takes the radial
  route (mdjac.strategies.replicate) with phi'(r), phi''(r) from AD.
* **long-range terms** (:class:`LongRangeTerm`): not instance lists (a reciprocal sum couples every
  pair of atoms). They give their energy and forces, the block-diagonal part of their Hessian, the
  low-rank rest of their Jacobian as data (mdjac.long_range_jacobian) and their energy as one function
  of all positions (for the colour and dense strategies), all by AD.

``config`` is a :class:`mdjac.potential.Configuration` (positions, box, dtype, ``neighbour_pairs(cutoff)``).
"""
import abc
import math
import weakref

import numpy as np

from ..errors import InputError, finite_numbers
from ..neighbours import pair_keys, pairs_without
from ..space import box_volume
from .checks import at_least, index_array, scalar
from .geometry import norm


class Term(metaclass=abc.ABCMeta):
    """An instance term: ``instances(config)`` and ``energy(q, *params)`` (module docstring).

    Attributes
    ----------
    n_body : int, atoms per instance (k).
    relative : bool, q holds displacements from the first atom (True) or positions (False).
    radial : bool, a two-atom term whose energy is ``radial_energy(r, *params)`` of the distance
        r (..., M) nm: pair terms, and fixed terms such as harmonic bonds.
    n_atoms : int or None, atoms the term's per-atom tables describe (None if it has none).
    cutoff : float or None, nm, the neighbour-search cutoff if the term uses one.
    max_index : int, the largest atom the term names (-1 for none).
    """
    n_body = 1
    relative = False
    radial = False
    n_atoms = None
    cutoff = None

    @property
    def max_index(self):
        return -1

    @abc.abstractmethod
    def instances(self, config):
        """(index (M, k) int64, params tuple of (M, ...) float64 arrays) in ``config``."""

    @abc.abstractmethod
    def energy(self, q, *params):
        """Per-instance energies (..., M) kJ/mol of coordinates q (..., M, c, 3) nm, in MindSpore ops."""

    def __repr__(self):
        return f"{type(self).__name__}()"


class FixedTerm(Term):
    """An instance term whose instances are a fixed list (bonds, angles, torsions, restrained atoms).

    Parameters
    ----------
    index : (M, k) int64 ndarray, checked by the subclass (:func:`mdjac.terms.checks.index_array`).
    params : tuple of (M, ...) arrays; each is checked finite here, also those of terms added later.
    """

    def __init__(self, index, params):
        self.index = index
        self.params = tuple(finite_numbers(p, f"{type(self).__name__} parameters") for p in params)

    @property
    def max_index(self):
        return int(self.index.max()) if len(self.index) else -1

    def instances(self, config):
        return self.index, self.params

    def __repr__(self):
        return f"{type(self).__name__}({len(self.index)} instances)"


class PairTerm(Term):
    """A radial pair term: neighbours within a cutoff, or a fixed list (scaled 1-4 pairs).

    Parameters
    ----------
    n_atoms : int, N (the per-atom tables' length).
    cutoff : float or None, nm; None for all pairs (open boundaries only).
    exclusions : (E, 2) int or None, pairs left out (bonded neighbours).
    pairs : (P, 2) int or None, fixed pairs instead of a neighbour search (then no cutoff applies).
    scale : float, factor on the energy (0.5 or 1/1.2 for AMBER 1-4 pairs).

    Subclasses state ``radial_energy(r, *params)`` -> (..., P) kJ/mol of distances r (..., P) nm,
    and ``pair_params(i, j)`` -> tuple of (P,) arrays if the energy has parameters.
    """
    n_body = 2
    relative = True
    radial = True

    def __init__(self, n_atoms, cutoff=None, exclusions=None, pairs=None, scale=1.0):
        name = type(self).__name__
        self.n_atoms = int(n_atoms)
        self.scale = at_least(scalar(scale, f"{name} scale"), 0.0, f"{name} scale",
                              "the scale multiplies the pair energy (e.g. 0.5 for 1-4 pairs); give it >= 0")
        self.fixed_pairs = None if pairs is None else index_array(pairs, 2, "pairs")
        if self.fixed_pairs is not None and cutoff is not None:
            raise InputError("give either a cutoff (neighbour search) or an explicit pair list, not both")
        self.cutoff = None if cutoff is None else scalar(cutoff, f"{name} cutoff")
        if self.cutoff is not None and not self.cutoff > 0:
            raise InputError(f"the cutoff {cutoff} is not a positive length: give it in nm, or None for all pairs")
        ex = index_array(exclusions if exclusions is not None else np.zeros((0, 2), np.int64), 2, "exclusions")
        for what, a in (("exclusions", ex), ("pairs", self.fixed_pairs)):
            if a is not None and len(a) and a.max() >= self.n_atoms:
                raise InputError(f"{what} name atom {a.max()} but the per-atom tables describe {self.n_atoms} atoms: "
                                 "indices count from 0 to N-1")
        self._excluded_keys = np.unique(pair_keys(ex[:, 0], ex[:, 1], self.n_atoms))
        self._kept = None

    def __getstate__(self):      # what instances() keeps is not pickled (a weak reference)
        state = dict(self.__dict__)
        state["_kept"] = None
        return state

    @property
    def max_index(self):
        return self.n_atoms - 1

    def candidate_pairs(self, config):
        """(P, 2) int64 pairs this term acts on in ``config``, exclusions removed."""
        if self.fixed_pairs is not None:
            return self.fixed_pairs
        if self.cutoff is None:
            if config.box is not None:
                raise InputError(f"{type(self).__name__} has no cutoff in a periodic box: give a cutoff <= half the box edge")
            i, j = np.triu_indices(self.n_atoms, k=1)
            pairs = np.stack([i, j], axis=1).astype(np.int64)
        else:
            pairs = config.neighbour_pairs(self.cutoff)
        if len(self._excluded_keys):
            pairs = pairs_without(pairs, self._excluded_keys, self.n_atoms)
        return pairs

    def instances(self, config):
        """The pairs (:meth:`candidate_pairs`) and their parameters, kept for the next call with the
        same neighbour list or fixed pairs (a frame's forces, then its Jacobian: the potential's
        Verlet list gives the same array for the same positions)."""
        source = self.fixed_pairs
        if source is None and self.cutoff is not None:
            source = config.neighbour_pairs(self.cutoff)
        kept = getattr(self, "_kept", None)
        if source is not None and kept is not None and kept[0]() is source:
            return kept[1]
        pairs = self.candidate_pairs(config)
        found = pairs, self.pair_params(pairs[:, 0], pairs[:, 1])
        if source is not None:
            self._kept = (weakref.ref(source), found)
        return found

    def pair_params(self, i, j):
        """Parameters of the pairs (i (P,), j (P,)): a tuple of (P,) float64 arrays, or 0-d arrays
        for values every pair shares (none by default)."""
        return ()

    def energy(self, q, *params):
        return self.radial_energy(norm(q[..., 0, :]), *params)

    @abc.abstractmethod
    def radial_energy(self, r, *params):
        """Pair energies (..., P) kJ/mol of distances r (..., P) nm, in MindSpore ops."""

    def __repr__(self):
        source = f"pairs={len(self.fixed_pairs)}" if self.fixed_pairs is not None else f"cutoff={self.cutoff}"
        return f"{type(self).__name__}({source}, scale={self.scale})"


class LongRangeTerm(metaclass=abc.ABCMeta):
    """A long-range term of a Potential: every pair of atoms interacts, through a low-rank Jacobian.

    A subclass sets ``n_atoms`` and states the four methods below, each by AD through the kernel.
    The potential sums the energies and forces of its long-range terms, subtracts their Hessians'
    block diagonals from the replicate strategy's diagonal blocks and keeps their Jacobian parts
    beside the short-range blocks; colour and dense put :meth:`energy_function` into the one
    opaque energy. Several long-range terms (LJ-PME's two meshes) give one part, their sum (mdjac.long_range_jacobian.PartSum).
    """
    radial = False
    cutoff = None
    n_atoms = None
    #: a reciprocal sum needs the periodic box; a sum over all pairs in open space (generalized Born) does not
    needs_box = True
    #: None if a file can store the Jacobian part (mdjac.io), else why not: one line, checked before any output is opened
    not_storable = None
    #: whether the term works with virtual sites: its part has ``pair_blocks`` (mdjac.site_jacobian) and its
    #: ``hessian_diagonal`` and forces cover every particle (sites included)
    maps_through_sites = False

    @property
    def max_index(self):
        return self.n_atoms - 1

    @abc.abstractmethod
    def energy_and_forces(self, config):
        """(energy kJ/mol, forces (N, 3) float64 kJ mol^-1 nm^-1)."""

    @abc.abstractmethod
    def hessian_diagonal(self, config, atoms):
        """(n, 3, 3) diagonal blocks d2E/dr_i dr_i (kJ mol^-1 nm^-2) of atoms (n,) int, that the
        Jacobian part (:meth:`jacobian_part`) does not hold."""

    @abc.abstractmethod
    def jacobian_part(self, config, atoms):
        """The rest of the force Jacobian on atoms (n,) int, as long-range Jacobian data
        (the protocol of mdjac.long_range_jacobian: n, dtype, diagonal(), matvec(v), dense(), select(where))."""

    @abc.abstractmethod
    def energy_function(self, config):
        """(energy, args): ``energy(X, *args)`` maps copies X (C, N, 3) nm to (C,) energies kJ/mol,
        a MindSpore function (the colour and dense strategies); args: tuple of ndarrays."""


class ChargedLongRangeTerm(LongRangeTerm):
    """A long-range sum of point charges split by Ewald's alpha (mdjac.longrange: Ewald, PME).

    Holds what every such sum shares: the charges (N,) e, alpha nm^-1, the Coulomb constant
    kJ mol^-1 nm e^-2, and the two energies that do not depend on positions, the self term
    E_self = -k alpha / sqrt(pi) sum_i q_i^2 and the net charge's neutralising background
    E_net = -pi k (sum_i q_i)^2 / (2 V alpha^2). A subclass checks the charges first
    (:meth:`finite_charges`), chooses alpha, then calls this ``__init__``.
    """

    maps_through_sites = True

    def __init__(self, charges, alpha, coulomb_constant):
        self.charges = charges
        self.n_atoms = len(charges)
        self.alpha = float(alpha)
        self.coulomb_constant = float(coulomb_constant)
        self.self_energy = -self.coulomb_constant * self.alpha / math.sqrt(math.pi) * float(charges @ charges)

    @classmethod
    def finite_charges(cls, charges):
        """charges (N,) e as float64, refusing non-numbers, NaN and inf (mdjac.errors.finite_numbers)."""
        return finite_numbers(charges, f"{cls.__name__} charges (e)").reshape(-1)

    def constant_energy(self, box):
        """E_self + E_net (kJ/mol): the self term and the net charge's background term in a box ((3,) or (3, 3) nm)."""
        total = float(self.charges.sum())
        return self.self_energy - math.pi * self.coulomb_constant * total * total / (2.0 * box_volume(box) * self.alpha ** 2)
