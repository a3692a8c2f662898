"""Force-field terms: each states its energy, and nothing else.

A term is a set of *instances* (one bond, one angle, one pair within the cutoff, one restrained
atom), each touching ``k`` atoms listed in a row of an (M, k) index array. Its parameters are looked
up from tables by atom or atom type, the article's form ``y[index] * f(x)``. The energy of every
instance is written in MindSpore ops as a function of per-instance coordinates ``q``:

* terms of relative positions (``relative = True``) see the displacements
  ``q[m, a-1] = x[index[m, a]] - x[index[m, 0]]``, a = 1..k-1 (minimum image in a periodic box),
  so q is (..., M, k-1, 3);
* per-atom terms (``relative = False``) see the positions themselves, q = x[index], (..., M, k, 3).

``energy(q, *params)`` returns (..., M) energies in kJ/mol and must accept leading copy axes on q
(MindSpore broadcasting does this for free). Pair terms (``radial = True``) state their energy as a
function of the distance alone, ``radial_energy(r, *params)`` -> (..., M) with r (..., M) in nm;
their ``energy(q)`` is that of r = |q|. The potential can then ask AD for phi'(r) and phi''(r)
only (mdjac.kernel.elementwise_derivatives) and build the 3x3 blocks by the chain rule through r.
The kernel (mdjac.kernel) takes every derivative by automatic differentiation; no term writes a force or a Hessian. Hand-derived formulas live in the
tests, as references.

Conventions (units: nm, kJ/mol, e, rad):

==================  ==========================================================================
HarmonicBond        E = k/2 (r - r0)^2
HarmonicAngle       E = k/2 (theta - theta0)^2, theta at the middle atom (i, j, k): angle i-j-k
PeriodicTorsion     E = k (1 + cos(n phi - phase)), phi the IUPAC dihedral of (i, j, k, l)
ImproperTorsion     the same form; AMBER order, the central atom third
LennardJones        E = 4 eps ((sigma/r)^12 - (sigma/r)^6), r < cutoff (truncated, not shifted)
Coulomb             plain: E = f qi qj / r; 'dsf': damped shifted force (Fennell & Gezelter 2006);
                    'ewald': f qi qj erfc(alpha r) / r, the direct space of an Ewald sum (mdjac.ewald)
EwaldExclusion      E = -f qi qj erf(alpha r) / r over excluded pairs (the Ewald sum's correction)
HarmonicRestraint   E = k/2 |x - x_ref|^2, k by atom type
ElectricField       E = -q E . x (uniform field, E in kJ mol^-1 nm^-1 e^-1)
FlatBottomWall      E = k/2 max(0, |x - centre| - radius)^2
CMAPTorsion         E = f(phi, psi), bicubic patches of a periodic map (CHARMM CMAP, ff19SB)
LongRangeDispersion E = c / V (box volume V); c from :func:`dispersion_coefficient` or the caller
==================  ==========================================================================
"""
import math


import numpy as np
from mindspore import ops

from .errors import InputError, finite_numbers
from .neighbours import pair_keys

#: Coulomb's constant f = 1 / (4 pi eps0), kJ mol^-1 nm e^-2 (the value GROMACS and MindSPONGE use).
COULOMB_CONSTANT = 138.935458


# ----------------------------------------------------------------------------- input checks
def _index_array(index, k, what):
    a = np.asarray(index)
    if a.size == 0:
        return np.zeros((0, k), dtype=np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"{what} must be integer atom indices, got dtype {a.dtype}")
    a = a.astype(np.int64).reshape(-1, k) if a.ndim == 1 and k == 1 else a.astype(np.int64)
    if a.ndim != 2 or a.shape[1] != k:
        raise InputError(f"{what} has shape {np.shape(index)}: expected (M, {k}) atom indices")
    if a.min() < 0:
        raise InputError(f"{what} holds a negative atom index ({a.min()}): indices count from 0")
    return a


def _parameter(value, what):
    """``value`` as a float64 array, refusing what is not a number and NaN or inf (every term's parameters pass here)."""
    return finite_numbers(value, what)


def _scalar(value, what):
    """One finite number (a float), refusing arrays of several."""
    v = _parameter(value, what)
    if v.size != 1:
        raise InputError(f"{what} has shape {v.shape}: give one number")
    return float(v.reshape(()))


def _at_least(v, lowest, what, fix, highest=np.inf):
    """``v``, refusing values below ``lowest`` or above ``highest`` (physically impossible) with a message
    naming the parameter (``what``, with the term's name and unit) and the fix."""
    values = np.asarray(v)
    bad = (values < lowest) | (values > highest)
    if np.any(bad):
        allowed = f">= {lowest:g}" if highest == np.inf else f"in [{lowest:g}, {highest:g}]"
        raise InputError(f"{what} holds {values[bad].flat[0]:g}, not {allowed}: {fix}")
    return v


def _per_instance(value, m, what, shape=()):
    """Broadcast a scalar or (M, *shape) parameter to (M, *shape) float64, checking it is finite."""
    v = _parameter(value, what)
    if v.ndim == len(shape):
        v = np.broadcast_to(v, (m,) + shape)
    if v.shape != (m,) + shape:
        raise InputError(f"{what} has shape {v.shape} but there are {m} instances: give one value per instance or a scalar")
    return np.ascontiguousarray(v)


def _table_lookup(table, types, what):
    """``table[types]`` with a clear error for a type outside the table or a table entry that is not finite."""
    table = _parameter(table, f"the {what} table")
    types = np.asarray(types)
    if not np.issubdtype(types.dtype, np.integer):
        raise InputError(f"atom types for {what} must be integers, got dtype {types.dtype}")
    if types.size and (types.min() < 0 or types.max() >= len(table)):
        raise InputError(f"atom types for {what} run from {types.min()} to {types.max()} but the table has {len(table)} "
                         "entries: the parameter table and the types do not match")
    return table[types]


#: The largest equilibrium angle accepted, rad: pi, with room for pi rounded to float32 (MindSPONGE's tables).
ANGLE_MAX = math.pi + 1e-6

FORCE_CONSTANT_FIX = "a force constant must not be negative (a negative one pushes atoms apart without bound); give its magnitude"


# ----------------------------------------------------------------------------- geometry in MindSpore ops
def _norm(v):
    """|v| over the last axis; (..., 3) -> (...)."""
    return ops.sqrt((v * v).sum(-1))


def _dot(u, v):
    return (u * v).sum(-1)


def cross(u, v):
    """u x v by slicing (mindspore.numpy.cross has no second derivative); (..., 3)."""
    ux, uy, uz = u[..., 0], u[..., 1], u[..., 2]
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    return ops.stack([uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx], axis=-1)


def distance(q):
    """|x_j - x_i| of a 2-atom instance; q (..., M, 1, 3) -> (..., M) nm."""
    return _norm(q[..., 0, :])


def bond_angle(q):
    """The angle i-j-k at atom j of a 3-atom instance; q (..., M, 2, 3) -> (..., M) rad in [0, pi].

    atan2(|u x v|, u . v) with u = x_i - x_j, v = x_k - x_j (well conditioned away from 0 and pi).
    """
    u = -q[..., 0, :]
    v = q[..., 1, :] - q[..., 0, :]
    return ops.atan2(_norm(cross(u, v)), _dot(u, v))


def dihedral(q):
    """The IUPAC dihedral of a 4-atom instance (i, j, k, l); q (..., M, 3, 3) -> (..., M) rad in (-pi, pi].

    atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3)) with b1 = x_j - x_i, b2 = x_k - x_j, b3 = x_l - x_k.
    """
    b1 = q[..., 0, :]
    b2 = q[..., 1, :] - q[..., 0, :]
    b3 = q[..., 2, :] - q[..., 1, :]
    n2 = cross(b2, b3)
    return ops.atan2(_norm(b2) * _dot(b1, n2), _dot(cross(b1, b2), n2))


# ----------------------------------------------------------------------------- base classes
class Term:
    """A force-field term.

    Subclasses set ``n_body`` (k, atoms per instance) and ``relative``, and define
    ``instances(config)`` -> (index (M, k) int64, params tuple of (M, ...) float64 arrays) and
    ``energy(q, *params)`` -> (..., M) kJ/mol. ``n_atoms`` is the number of atoms the term's
    per-atom tables describe (None if it has none); ``max_index`` the largest atom it names.
    ``radial``: a pair term whose energy is ``radial_energy(r, *params)`` of the distance alone.
    """
    n_body = 1
    relative = False
    radial = False
    n_atoms = None
    cutoff = None

    @property
    def max_index(self):
        return -1

    def instances(self, config):
        raise NotImplementedError

    def energy(self, q, *params):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class FixedTerm(Term):
    """A term whose instances are a fixed list (bonds, angles, torsions, restrained atoms)."""

    def __init__(self, index, params):
        self.index = index
        # every parameter array passes the finiteness check, also those of terms added later
        self.params = tuple(_parameter(p, f"{type(self).__name__} parameters") for p in params)

    @property
    def max_index(self):
        return int(self.index.max()) if len(self.index) else -1

    def instances(self, config):
        return self.index, self.params

    def __repr__(self):
        return f"{type(self).__name__}({len(self.index)} instances)"


# ----------------------------------------------------------------------------- per-atom terms
class HarmonicRestraint(FixedTerm):
    """Harmonic position restraint, E_i = k_{type(i)} / 2 |x_i - ref_i|^2.

    k: (T,) kJ mol^-1 nm^-2, indexed by atom type; types: (N,) int; reference: (N, 3) nm.
    Atoms whose k is 0 are left out. Positions are used as given (no periodic wrap).
    Analytic Jacobian: J_ii = -k I.
    """
    n_body = 1

    def __init__(self, k, types, reference):
        ref = _parameter(reference, "HarmonicRestraint reference (nm)")
        types = np.asarray(types)
        if ref.shape != (len(types), 3):
            raise InputError(f"reference positions have shape {ref.shape} but there are {len(types)} atom types: "
                             "give (N, 3) positions in nm, one per atom")
        k_atom = _at_least(_table_lookup(k, types, "HarmonicRestraint k"), 0.0, "HarmonicRestraint k (kJ mol^-1 nm^-2)",
                           FORCE_CONSTANT_FIX)
        atoms = np.flatnonzero(k_atom != 0)
        self.n_atoms = len(types)
        super().__init__(atoms[:, None], (k_atom[atoms], _per_instance(ref[atoms], len(atoms), "reference", (3,))))

    def energy(self, q, k, reference):
        d = q[..., 0, :] - reference
        return 0.5 * k * _dot(d, d)


class ElectricField(FixedTerm):
    """Uniform external electric field, E_i = -q_i field . x_i.

    charges: (N,) e; field: (3,) kJ mol^-1 nm^-1 e^-1 (1 V/nm = 96.4853 kJ mol^-1 nm^-1 e^-1).
    Linear in x: its Jacobian is exactly zero.
    """
    n_body = 1

    def __init__(self, charges, field):
        charges = _parameter(charges, "ElectricField charges").reshape(-1)
        field = _parameter(field, "ElectricField field")
        if field.shape != (3,):
            raise InputError(f"the field has shape {field.shape}: give its 3 components in kJ mol^-1 nm^-1 e^-1")
        atoms = np.flatnonzero(charges != 0)
        self.n_atoms = len(charges)
        super().__init__(atoms[:, None], (_per_instance(charges[atoms, None] * field, len(atoms), "charges x field", (3,)),))

    def energy(self, q, charge_field):
        return -_dot(q[..., 0, :], charge_field)


class FlatBottomWall(FixedTerm):
    """Spherical flat-bottom wall, E_i = k/2 max(0, |x_i - centre| - radius)^2.

    atoms: (M,) int; k: kJ mol^-1 nm^-2; centre: (3,) nm; radius: nm (scalars or per atom).
    Zero inside the sphere; its second derivative jumps at the radius.
    """
    n_body = 1

    def __init__(self, atoms, k, centre, radius):
        index = _index_array(np.asarray(atoms).reshape(-1, 1), 1, "wall atoms")
        m = len(index)
        k = _at_least(_per_instance(k, m, "FlatBottomWall k"), 0.0, "FlatBottomWall k (kJ mol^-1 nm^-2)", FORCE_CONSTANT_FIX)
        radius = _at_least(_per_instance(radius, m, "FlatBottomWall radius"), 0.0, "FlatBottomWall radius (nm)",
                           "a radius is a length; give it >= 0 in nm")
        super().__init__(index, (k, _per_instance(centre, m, "FlatBottomWall centre", (3,)), radius))

    def energy(self, q, k, centre, radius):
        excess = ops.relu(_norm(q[..., 0, :] - centre) - radius)
        return 0.5 * k * excess * excess


# ----------------------------------------------------------------------------- bonded terms
class HarmonicBond(FixedTerm):
    """Harmonic bond, E = k/2 (r - r0)^2.

    pairs: (M, 2) int; k: kJ mol^-1 nm^-2; r0: nm (scalars or (M,)).
    """
    n_body = 2
    relative = True

    def __init__(self, pairs, k, r0):
        index = _index_array(pairs, 2, "bond pairs")
        m = len(index)
        k = _at_least(_per_instance(k, m, "HarmonicBond k"), 0.0, "HarmonicBond k (kJ mol^-1 nm^-2)", FORCE_CONSTANT_FIX)
        r0 = _at_least(_per_instance(r0, m, "HarmonicBond r0"), 0.0, "HarmonicBond r0 (nm)",
                       "a bond length is a distance; give it >= 0 in nm")
        super().__init__(index, (k, r0))

    def energy(self, q, k, r0):
        dr = distance(q) - r0
        return 0.5 * k * dr * dr


class HarmonicAngle(FixedTerm):
    """Harmonic angle, E = k/2 (theta - theta0)^2, theta the angle i-j-k at atom j.

    triples: (M, 3) int (i, j, k); k: kJ mol^-1 rad^-2; theta0: rad. theta = atan2(|u x v|, u . v)
    with u = x_i - x_j, v = x_k - x_j (well conditioned away from 0 and pi).
    """
    n_body = 3
    relative = True

    def __init__(self, triples, k, theta0):
        index = _index_array(triples, 3, "angle triples")
        m = len(index)
        k = _at_least(_per_instance(k, m, "HarmonicAngle k"), 0.0, "HarmonicAngle k (kJ mol^-1 rad^-2)", FORCE_CONSTANT_FIX)
        theta0 = _at_least(_per_instance(theta0, m, "HarmonicAngle theta0"), 0.0, "HarmonicAngle theta0 (rad)",
                           "an angle i-j-k lies in [0, pi]; give theta0 in radians, not degrees", highest=ANGLE_MAX)
        super().__init__(index, (k, theta0))

    def energy(self, q, k, theta0):
        d = bond_angle(q) - theta0
        return 0.5 * k * d * d


class PeriodicTorsion(FixedTerm):
    """Periodic (AMBER) torsion, E = k (1 + cos(n phi - phase)).

    quads: (M, 4) int (i, j, k, l); k: kJ/mol; n: periodicity (integer-valued); phase: rad.
    phi is the IUPAC dihedral: atan2(|b2| b1 . (b2 x b3), (b1 x b2) . (b2 x b3)) with
    b1 = x_j - x_i, b2 = x_k - x_j, b3 = x_l - x_k. A torsion with several periodicities is
    several instances on the same four atoms.
    """
    n_body = 4
    relative = True

    def __init__(self, quads, k, n, phase):
        index = _index_array(quads, 4, "torsion quads")
        m = len(index)
        n = _at_least(_per_instance(n, m, f"{type(self).__name__} periodicity"), 0.0,
                      f"{type(self).__name__} periodicity n", "n counts the minima in a turn; give a whole number >= 0")
        if np.any(np.abs(n - np.round(n)) > 1e-6):
            raise InputError(f"{type(self).__name__} periodicity n holds {n[np.abs(n - np.round(n)) > 1e-6][0]:g}: "
                             "n counts the minima in a turn; give a whole number")
        super().__init__(index, (_per_instance(k, m, f"{type(self).__name__} k"), n,
                                 _per_instance(phase, m, f"{type(self).__name__} phase")))

    def energy(self, q, k, n, phase):
        return k * (1.0 + ops.cos(n * dihedral(q) - phase))


class ImproperTorsion(PeriodicTorsion):
    """Improper torsion in AMBER's periodic form, E = k (1 + cos(n phi - phase)).

    Same maths as :class:`PeriodicTorsion`; the four atoms come in AMBER's improper order, the
    central (trigonal) atom third, e.g. (C_alpha, O, C, N) at a peptide carbonyl.
    """


# ----------------------------------------------------------------------------- pair terms
def _excluded(keys, excluded_keys):
    """Boolean mask (P,): which pair keys are among ``excluded_keys`` (sorted, unique).

    Keys of a neighbour list come sorted (row-major pairs): then each excluded key is looked up by
    bisection, O(E log P), instead of sorting both lists (np.isin).
    """
    if len(keys) < 2 or np.all(keys[1:] > keys[:-1]):
        at = np.searchsorted(keys, excluded_keys)
        found = at < len(keys)
        found[found] = keys[at[found]] == excluded_keys[found]
        mask = np.zeros(len(keys), dtype=bool)
        mask[at[found]] = True
        return mask
    return np.isin(keys, excluded_keys)


class PairTerm(Term):
    """A term over atom pairs: neighbours within a cutoff, or a fixed list (scaled 1-4 pairs).

    cutoff: nm, or None for all pairs (open boundaries only). exclusions: (E, 2) pairs left out
    (bonded neighbours). pairs: (P, 2) fixed pairs instead of a neighbour search (then no cutoff
    applies). scale: factor on the energy (0.5 or 1/1.2 for AMBER 1-4 pairs).
    Subclasses define ``pair_params(i, j)`` -> tuple of (P,) arrays and ``radial_energy(r, *params)``
    -> (..., P) kJ/mol of the distances r (..., P) nm.
    """
    n_body = 2
    relative = True
    radial = True

    def __init__(self, n_atoms, cutoff=None, exclusions=None, pairs=None, scale=1.0):
        self.n_atoms = int(n_atoms)
        self.scale = _at_least(_scalar(scale, f"{type(self).__name__} scale"), 0.0, f"{type(self).__name__} scale",
                               "the scale multiplies the pair energy (e.g. 0.5 for 1-4 pairs); give it >= 0")
        self.fixed_pairs = None if pairs is None else _index_array(pairs, 2, "pairs")
        if self.fixed_pairs is not None and cutoff is not None:
            raise InputError("give either a cutoff (neighbour search) or an explicit pair list, not both")
        self.cutoff = None if cutoff is None else _scalar(cutoff, f"{type(self).__name__} cutoff")
        if self.cutoff is not None and not self.cutoff > 0:
            raise InputError(f"the cutoff {cutoff} is not a positive length: give it in nm, or None for all pairs")
        ex = _index_array(exclusions if exclusions is not None else np.zeros((0, 2), np.int64), 2, "exclusions")
        for what, a in (("exclusions", ex), ("pairs", self.fixed_pairs)):
            if a is not None and len(a) and a.max() >= self.n_atoms:
                raise InputError(f"{what} name atom {a.max()} but the per-atom tables describe {self.n_atoms} atoms: "
                                 "indices count from 0 to N-1")
        self._excluded_keys = np.unique(pair_keys(ex[:, 0], ex[:, 1], self.n_atoms))

    @property
    def max_index(self):
        return self.n_atoms - 1

    def candidate_pairs(self, config):
        """(P, 2) int64 pairs this term acts on in ``config`` (a potential.Configuration), exclusions removed."""
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
            pairs = pairs[~_excluded(pair_keys(pairs[:, 0], pairs[:, 1], self.n_atoms), self._excluded_keys)]
        return pairs

    def instances(self, config):
        pairs = self.candidate_pairs(config)
        return pairs, self.pair_params(pairs[:, 0], pairs[:, 1])

    def pair_params(self, i, j):
        raise NotImplementedError

    def energy(self, q, *params):
        return self.radial_energy(_norm(q[..., 0, :]), *params)

    def radial_energy(self, r, *params):
        raise NotImplementedError

    def __repr__(self):
        source = f"pairs={len(self.fixed_pairs)}" if self.fixed_pairs is not None else f"cutoff={self.cutoff}"
        return f"{type(self).__name__}({source}, scale={self.scale})"


class LennardJones(PairTerm):
    """Lennard-Jones, E = 4 eps ((sigma/r)^12 - (sigma/r)^6), truncated at the cutoff.

    sigma, epsilon: (T,) per atom type (nm, kJ/mol), combined by Lorentz-Berthelot
    (sigma_ij = (sigma_i + sigma_j)/2, eps_ij = sqrt(eps_i eps_j)); or (T, T) explicit pair
    tables. types: (N,) int. See :class:`PairTerm` for cutoff, exclusions, pairs and scale.
    """

    def __init__(self, sigma, epsilon, types, cutoff=None, exclusions=None, pairs=None, scale=1.0):
        types = np.asarray(types)
        super().__init__(len(types), cutoff, exclusions, pairs, scale)
        sigma = _parameter(sigma, "LennardJones sigma")
        epsilon = _parameter(epsilon, "LennardJones epsilon")
        if sigma.shape != epsilon.shape or sigma.ndim not in (1, 2) or (sigma.ndim == 2 and sigma.shape[0] != sigma.shape[1]):
            raise InputError(f"sigma {sigma.shape} and epsilon {epsilon.shape} must both be (T,) per type or (T, T) pair tables")
        _at_least(sigma, 0.0, "LennardJones sigma (nm)", "sigma is a distance; it must not be negative, give it in nm")
        _at_least(epsilon, 0.0, "LennardJones epsilon (kJ/mol)",
                  "epsilon is a well depth; it must not be negative (0 switches the pair off), give it in kJ/mol")
        if sigma.ndim == 1:
            sigma = 0.5 * (sigma[:, None] + sigma[None, :])
            epsilon = np.sqrt(epsilon[:, None] * epsilon[None, :])
        _table_lookup(sigma, types, "Lennard-Jones sigma")  # checks types against the table
        self.types, self.sigma_table, self.epsilon_table = types.astype(np.int64), sigma, epsilon
        self._pair_tables = None

    def pair_params(self, i, j):
        if self._pair_tables is None:   # flat (T * T,) tables, epsilon scaled, made once
            self._pair_tables = (self.sigma_table.ravel(), self.scale * self.epsilon_table.ravel())
        type_pair = self.types[i] * len(self.sigma_table)
        type_pair += self.types[j]
        return tuple(np.take(table, type_pair) for table in self._pair_tables)

    def radial_energy(self, r, sigma, epsilon):
        s2 = sigma * sigma / (r * r)
        s6 = s2 * s2 * s2
        return 4.0 * epsilon * (s6 * s6 - s6)


class Coulomb(PairTerm):
    """Coulomb interaction between point charges.

    charges: (N,) e. method 'plain': E = f qi qj / r. method 'dsf' (needs a cutoff rc): damped
    shifted force, E = f qi qj [erfc(a r)/r - erfc(a rc)/rc + (erfc(a rc)/rc^2
    + 2a/sqrt(pi) exp(-a^2 rc^2)/rc)(r - rc)], which with its force goes to zero at rc.
    method 'ewald' (needs a cutoff): the direct-space part of an Ewald sum, E = f qi qj
    erfc(a r)/r (see mdjac.ewald for the rest of the sum). alpha (a): nm^-1.
    f = ``coulomb_constant`` (default COULOMB_CONSTANT; mdjac.ewald.OPENMM_COULOMB_CONSTANT is
    OpenMM's). charge_products: with ``pairs``, (P,) e^2 per pair in place of qi qj (OpenMM's
    exceptions, whose chargeProd is given per pair; ``scale`` still applies). See :class:`PairTerm`
    for the rest.
    """

    def __init__(self, charges, cutoff=None, exclusions=None, pairs=None, scale=1.0, method="plain", alpha=0.25,
                 charge_products=None, coulomb_constant=COULOMB_CONSTANT):
        charges = _parameter(charges, "Coulomb charges (e)").reshape(-1)
        super().__init__(len(charges), cutoff, exclusions, pairs, scale)
        if method not in ("plain", "dsf", "ewald"):
            raise InputError(f"unknown Coulomb method {method!r}: use 'plain', 'dsf' or 'ewald'")
        if method in ("dsf", "ewald") and self.cutoff is None:
            raise InputError(f"the {method} Coulomb needs a cutoff (nm)")
        alpha = _at_least(_scalar(alpha, "Coulomb alpha"), 0.0, "Coulomb alpha (nm^-1)",
                          "alpha is the damping's inverse length; give it >= 0 in nm^-1")
        if charge_products is not None:
            if self.fixed_pairs is None:
                raise InputError("charge_products are per pair: give them with an explicit pairs= list")
            charge_products = _per_instance(charge_products, len(self.fixed_pairs), "charge products")
        self.charge_products = charge_products
        self.coulomb_constant = _scalar(coulomb_constant, "Coulomb constant (kJ mol^-1 nm e^-2)")
        self.charges, self.method, self.alpha = charges, method, alpha
        if method == "dsf":
            a, rc = self.alpha, self.cutoff
            self._slope = math.erfc(a * rc) / rc ** 2 + 2 * a / math.sqrt(math.pi) * math.exp(-(a * rc) ** 2) / rc
            self._offset = math.erfc(a * rc) / rc + self._slope * rc

    def pair_params(self, i, j):
        products = self.charges[i] * self.charges[j] if self.charge_products is None else self.charge_products
        qq = self.coulomb_constant * self.scale * products
        if self.method == "plain":
            return (qq,)
        # The constants travel as per-pair arrays: Python floats in a compiled graph are float32.
        if self.method == "ewald":
            return qq, np.full(len(qq), self.alpha)
        return qq, np.full(len(qq), self.alpha), qq * self._slope, qq * self._offset

    def radial_energy(self, r, qq, alpha=None, qq_slope=None, qq_offset=None):
        """plain: qq / r; ewald: qq erfc(alpha r)/r; dsf: qq erfc(alpha r)/r + qq_slope r - qq_offset, the expanded DSF form."""
        if self.method == "plain":
            return qq / r
        if self.method == "ewald":
            return qq * ops.erfc(alpha * r) / r
        return qq * ops.erfc(alpha * r) / r + qq_slope * r - qq_offset


class EwaldExclusion(PairTerm):
    """The exclusion correction of an Ewald sum, E = -f qi qj erf(alpha r)/r over fixed pairs.

    The reciprocal sum (mdjac.ewald.EwaldReciprocal) includes every pair; this removes its share
    for the pairs the direct space leaves out: excluded pairs and scaled 1-4 pairs (with the full
    charges, as OpenMM does). charges: (N,) e; pairs: (P, 2); alpha: nm^-1; coulomb_constant:
    kJ mol^-1 nm e^-2. Minimum image in a box, as for every pair term.
    """

    def __init__(self, charges, pairs, alpha, coulomb_constant=COULOMB_CONSTANT):
        charges = _parameter(charges, "EwaldExclusion charges (e)").reshape(-1)
        if pairs is None:
            raise InputError("the Ewald exclusion correction needs the excluded pairs (pairs=)")
        super().__init__(len(charges), None, None, pairs, 1.0)
        alpha = _at_least(_scalar(alpha, "EwaldExclusion alpha"), 0.0, "EwaldExclusion alpha (nm^-1)",
                          "alpha is the splitting's inverse length; give it >= 0 in nm^-1")
        self.charges, self.alpha = charges, alpha
        self.coulomb_constant = _scalar(coulomb_constant, "EwaldExclusion Coulomb constant (kJ mol^-1 nm e^-2)")

    def pair_params(self, i, j):
        qq = self.coulomb_constant * self.charges[i] * self.charges[j]
        return qq, np.full(len(qq), self.alpha)

    def radial_energy(self, r, qq, alpha):
        return -qq * ops.erf(alpha * r) / r


def switching_function(r, switch, cutoff):
    """S(r) in MindSpore ops: 1 below ``switch``, the quintic 1 - 10t^3 + 15t^4 - 6t^5 above it.

    r, switch, cutoff: (..., M) nm (switch < cutoff). The polynomial branch is evaluated
    everywhere and is finite, so no NaN reaches the gradient of the unused branch.
    """
    t = (r - switch) / (cutoff - switch)
    smooth = 1.0 + t * t * t * (-10.0 + t * (15.0 - 6.0 * t))
    return ops.select(r > switch, smooth, ops.ones_like(r))


def switching_function_numpy(r, switch, cutoff):
    """Reference S(r) in numpy (same conventions as :func:`switching_function`)."""
    t = np.clip((np.asarray(r) - switch) / (cutoff - switch), 0.0, 1.0)
    return 1.0 + t ** 3 * (-10.0 + t * (15.0 - 6.0 * t))


def _switch_integral(sigma, switch, cutoff):
    """int_{r_s}^{r_c} ((sigma/r)^12 - (sigma/r)^6) (1 - S(r)) r^2 dr, nm^3 (adaptive quadrature)."""
    import scipy.integrate

    def integrand(r):
        s6 = (sigma / r) ** 6
        return (s6 * s6 - s6) * (1.0 - switching_function_numpy(r, switch, cutoff)) * r * r
    value, _ = scipy.integrate.quad(integrand, switch, cutoff, epsabs=0.0, epsrel=1e-13, limit=200)
    return value


def dispersion_coefficient(sigma, epsilon, cutoff, switch=None):
    """The long-range dispersion coefficient c (kJ mol^-1 nm^3) of a truncated (or switched)
    Lennard-Jones, E = c / V, as OpenMM computes it (NonbondedForceImpl::calcDispersionCorrection).

    sigma, epsilon: (N,) per atom (nm, kJ/mol), Lorentz-Berthelot; cutoff, switch: nm. Atoms are
    grouped in classes of equal (sigma, epsilon) with counts n_a; over class pairs, with the mixed
    values, <A> = [sum_a n_a (n_a + 1)/2 A_aa + sum_{a<b} n_a n_b A_ab] / (N (N + 1)/2) and
    c = 8 pi N^2 (<eps sigma^12> / (9 r_c^9) - <eps sigma^6> / (3 r_c^3) + <eps I>), I the
    integral of ((sigma/r)^12 - (sigma/r)^6)(1 - S(r)) r^2 from the switch to the cutoff (zero
    without a switch; adaptive quadrature here). This averages the mixed pair C6 over atom pairs;
    MindSPONGE averages each atom's own C6 instead (see mdjac.sponge.adapter).
    """
    sigma, epsilon = np.asarray(sigma, dtype=np.float64), np.asarray(epsilon, dtype=np.float64)
    n = len(sigma)
    classes, counts = np.unique(np.stack([sigma, epsilon], axis=1), axis=0, return_counts=True)
    counts = counts.astype(np.float64)
    s = 0.5 * (classes[:, 0, None] + classes[None, :, 0])
    e = np.sqrt(classes[:, 1, None] * classes[None, :, 1])
    weight = np.outer(counts, counts)
    np.fill_diagonal(weight, counts * (counts + 1) / 2)
    weight = np.triu(weight)
    s6 = s ** 6
    sum1 = (weight * e * s6 * s6).sum()
    sum2 = (weight * e * s6).sum()
    sum3 = 0.0
    if switch is not None:
        for a, b in zip(*np.nonzero(weight * e)):
            sum3 += weight[a, b] * e[a, b] * _switch_integral(s[a, b], switch, cutoff)
    pairs = n * (n + 1) / 2
    return 8.0 * n * n * math.pi * (sum1 / pairs / (9.0 * cutoff ** 9) - sum2 / pairs / (3.0 * cutoff ** 3) + sum3 / pairs)


# ----------------------------------------------------------------------------- box terms
class LongRangeDispersion(Term):
    """Long-range dispersion correction of a truncated Lennard-Jones, E = c / V, V the box volume (nm^3).

    c (kJ mol^-1 nm^3) is the caller's, e.g. MindSPONGE's -2/3 pi N^2 <C6> / rc^3 (mdjac.sponge.adapt) or
    OpenMM's (dispersion_coefficient).
    E depends on the box only, so its forces and Jacobian are zero; the term is there so that
    energies match. One instance (on atom 0) in a periodic box, none without one.
    """
    n_body = 1
    relative = False

    def __init__(self, coefficient, n_atoms):
        self.coefficient = _scalar(coefficient, "LongRangeDispersion coefficient")
        self.n_atoms = int(n_atoms)

    @property
    def max_index(self):
        return self.n_atoms - 1

    def instances(self, config):
        if config.box is None:
            return np.zeros((0, 1), np.int64), (np.zeros(0),)
        return np.zeros((1, 1), np.int64), (np.array([self.coefficient / float(np.prod(config.box))]),)

    def energy(self, q, value):
        return ops.broadcast_to(value, q.shape[:-2])   # (..., M): constant in q

    def __repr__(self):
        return f"LongRangeDispersion(c={self.coefficient:.6g})"


# ----------------------------------------------------------------------------- correction maps
def bicubic_patches(grid):
    """Bicubic patches of a periodic energy map, as OpenMM and CHARMM build CMAP.

    grid: (S, S) kJ/mol, grid[a, b] the energy at angles (a, b) * 2 pi / S. The derivatives at the
    nodes, dE/dA, dE/dB and d2E/dA dB, are those of periodic cubic splines through the nodes (along
    A; along B; along A of dE/dB). Returns (S, S, 4, 4) coefficients c of each patch (a, b):
    E = sum_kl c[a, b, k, l] u^k v^l, u, v in [0, 1) the fractions of the patch along A and B.
    """
    import scipy.interpolate

    grid = np.asarray(grid, dtype=np.float64)
    s = len(grid)
    nodes = np.arange(s + 1) * (2 * np.pi / s)

    def derivative_along_first(values):
        closed = np.concatenate([values, values[:1]], axis=0)
        return scipy.interpolate.CubicSpline(nodes, closed, axis=0, bc_type="periodic").c[2]

    d_a = derivative_along_first(grid)
    d_b = derivative_along_first(grid.T).T
    d_ab = derivative_along_first(d_b)
    delta = 2 * np.pi / s
    # the 16 conditions at the patch corners (0,0) (1,0) (0,1) (1,1): value, d/du, d/dv, d2/dudv
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    powers = [(k, l) for k in range(4) for l in range(4)]
    rows = []
    for du, dv in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        for u, v in corners:
            row = []
            for k, l in powers:
                ck = k if du else 1
                cl = l if dv else 1
                pk, pl = k - du, l - dv
                row.append(0.0 if pk < 0 or pl < 0 else ck * cl * (u ** pk) * (v ** pl))
            rows.append(row)
    inverse = np.linalg.inv(np.array(rows))
    a = np.arange(s)[:, None]
    b = np.arange(s)[None, :]
    na, nb = (a + 1) % s, (b + 1) % s
    rhs = []
    for values, scale in [(grid, 1.0), (d_a, delta), (d_b, delta), (d_ab, delta * delta)]:
        for ia, ib in [(a, b), (na, b), (a, nb), (na, nb)]:
            rhs.append(scale * values[ia + 0 * ib, ib + 0 * ia])
    rhs = np.stack(rhs, axis=-1)                       # (S, S, 16)
    return (rhs @ inverse.T).reshape(s, s, 4, 4)


def _dihedral_numpy(b1, b2, b3):
    """The IUPAC dihedral (rad, (-pi, pi]) of bond vectors (M, 3), as :func:`dihedral` computes it."""
    n2 = np.cross(b2, b3)
    return np.arctan2(np.linalg.norm(b2, axis=-1) * np.einsum("mi,mi->m", b1, n2),
                      np.einsum("mi,mi->m", np.cross(b1, b2), n2))


class CMAPTorsion(Term):
    """Correction map of two torsions, E = f(phi, psi) by bicubic patches (CHARMM CMAP, ff19SB).

    index: (M, 8) int, the atoms of the first torsion (i, j, k, l) then of the second; maps: list
    of (S, S) energy grids (kJ/mol), grid[a, b] at (phi, psi) = (a, b) 2 pi / S with angles taken in
    [0, 2 pi); map_of: (M,) int, the map of each instance. The patch of each instance is chosen at
    the configuration's angles (like a neighbour list: within a patch the energy is one polynomial,
    so its derivatives are exact there); its 16 coefficients and the patch origin are the instance's
    parameters: E = sum_kl c_kl u^k v^l, u = (phi - phi_0)/delta, v = (psi - psi_0)/delta.
    """
    n_body = 8
    relative = True

    def __init__(self, index, maps, map_of):
        self.index = _index_array(index, 8, "CMAP atoms")
        if isinstance(maps, str):
            _parameter(maps, "CMAPTorsion maps (kJ/mol)")          # refused, naming the value
        grids = [_parameter(m, "CMAPTorsion map (kJ/mol)") for m in maps]
        for g in grids:
            if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] < 4:
                raise InputError(f"a CMAPTorsion map has shape {g.shape}: give square (S, S) energy grids, S >= 4")
        self.patches = [bicubic_patches(g) for g in grids]
        self.map_of = np.asarray(map_of, dtype=np.int64).reshape(-1)
        if len(self.map_of) != len(self.index) or (len(self.map_of) and not 0 <= self.map_of.min() <= self.map_of.max() < len(maps)):
            raise InputError("CMAP: give one map number (0..len(maps)-1) per torsion pair")

    @property
    def max_index(self):
        return int(self.index.max()) if len(self.index) else -1

    def instances(self, config):
        from .space import minimum_image
        x = config.positions[self.index]
        d = minimum_image(x[:, 1:] - x[:, :1], config.box)                  # (M, 7, 3), as the potential makes q
        phi = _dihedral_numpy(d[:, 0], d[:, 1] - d[:, 0], d[:, 2] - d[:, 1])
        psi = _dihedral_numpy(d[:, 4] - d[:, 3], d[:, 5] - d[:, 4], d[:, 6] - d[:, 5])
        m = len(self.index)
        coefficients = np.zeros((m, 16))
        origins = np.zeros((m, 2))
        delta = np.zeros(m)
        for k, patches in enumerate(self.patches):
            sel = self.map_of == k
            s = len(patches)
            step = 2 * np.pi / s
            wrapped = [np.where(a < 0, a + 2 * np.pi, a) for a in (phi[sel], psi[sel])]
            cells = [np.minimum((w / step).astype(np.int64), s - 1) for w in wrapped]
            coefficients[sel] = patches[cells[0], cells[1]].reshape(-1, 16)
            for axis, (angle, cell) in enumerate(zip((phi[sel], psi[sel]), cells)):
                origins[sel, axis] = cell * step - np.where(angle < 0, 2 * np.pi, 0.0)
            delta[sel] = step
        return self.index, (coefficients, origins[:, 0], origins[:, 1], delta)

    def energy(self, q, coefficients, phi0, psi0, delta):
        phi = dihedral(q[..., 0:3, :])
        psi = dihedral(q[..., 4:7, :] - q[..., 3:4, :])
        u = (phi - phi0) / delta
        v = (psi - psi0) / delta
        total = 0.0
        for k in (3, 2, 1, 0):
            row = ((coefficients[..., 4 * k + 3] * v + coefficients[..., 4 * k + 2]) * v
                   + coefficients[..., 4 * k + 1]) * v + coefficients[..., 4 * k]
            total = total * u + row
        return total

    def __repr__(self):
        return f"CMAPTorsion({len(self.index)} instances, {len(self.patches)} maps)"
