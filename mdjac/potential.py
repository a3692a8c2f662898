"""A potential: a sum of terms, evaluated on one frame at a time.

U(x) = sum over terms t, instances m of E_t(q_tm), with q_tm the per-instance coordinates (see
mdjac.terms). Forces and the force Jacobian follow by the chain rule through the linear map from
atom positions to q: for a term of relative positions, q_a = x_{index[a]} - x_{index[0]}, i.e.
q = A x_local with A = [-1 | I] of shape (k-1, k); for a per-atom term A = I. So

    F_local = -A^T dE/dq,        H_local = A^T (d2E/dq2) A,        J = -H,

and the (k x k) grid of 3x3 blocks of H_local is scatter-added at (index[a], index[b]). Only
dE/dq and d2E/dq2 come from automatic differentiation; A is exact integer bookkeeping.

Strategies for :meth:`Potential.force_jacobian`:

* ``"replicate"`` (default): per-term replication, mdjac.kernel.term_hessians. 3c masked grads per
  term and chunk, independent of the number of atoms and of the cutoff.
* ``"colour"``: the whole potential as one opaque energy of all positions; distance-2 colouring of
  its interaction graph, one masked grad per colour and component.
* ``"dense"``: the article's identity mask, 3N copies of the system. Small systems, tests.

Radial pair terms (Lennard-Jones, Coulomb: energies phi(r) of the distance r = |d| alone, d =
x_j - x_i) take a shorter road in "replicate" and in the forces: AD gives phi'(r) and phi''(r)
(mdjac.kernel.elementwise_derivatives), and the chain rule through r gives, with u = d / r,

    dE/dx_j = -dE/dx_i = phi' u,        h = d2E/dd2 = phi'' u u^T + (phi'/r)(I - u u^T),
    H_ii = H_jj = h,   H_ij = H_ji = -h,

bookkeeping like A (every derivative of the energy still comes from AD), done in loops compiled by
numba (mdjac.assembly). The pairs come from the neighbour list sorted row-major (i < j); AD runs
once per pair; each pair's h is written straight into its two places in the row-major pattern,
(i, j) and (j, i) (h is even in d, so J_ji = J_ij = h); the diagonal block is minus the sum of its
row's off-diagonal blocks (translation invariance). Nothing is sorted or permuted after the
neighbour search. Other terms' blocks (bonds, angles, torsions, scaled 1-4 pairs) are added into
that pattern, their diagonal blocks (and per-atom terms') by bincount.

Long-range terms (``term.long_range`` True: the reciprocal sum of an Ewald sum, mdjac.longrange.ewald) are
not instance lists: they give their energy and forces, the block-diagonal part of their Hessian
and a low-rank part of the Jacobian themselves (all by AD), and with "replicate" the result is a
ForceJacobian with a long-range part (mdjac.jacobian). With "colour" and "dense" they enter the
one opaque energy like any other term (every pair of atoms then interacts), which makes "dense"
the independent check of the structured result.

Instances are processed in chunks of fixed, power-of-two sizes (padded) so that each compiled
function sees few shapes and compiles once, not per frame.
"""
import numpy as np

from . import assembly, kernel
from .errors import InputError
from .jacobian import ForceJacobian, add_symmetric_blocks, assemble_blocks, upper_blocks
from .neighbours import VerletList, is_canonical, pair_keys, pairs_of_keys
from .space import check_box, check_cutoff, minimum_image

#: Largest number of instances per compiled call; bounds memory, and the shapes compiled.
CHUNK = 65536
#: The same for the radial route, whose compiled calls work on (M,) distances.
RADIAL_CHUNK = 1 << 20
#: Verlet skin (nm) of the neighbour lists a potential keeps across frames.
SKIN = 0.1


class Configuration:
    """One validated configuration: positions (N, 3) float64 nm, box None or (3,) nm, compute dtype.

    What terms see (``Term.instances(config)``). Neighbour pairs are found once per cutoff and
    shared by every term that asks, from the potential's Verlet lists (``verlet``: cutoff ->
    mdjac.neighbours.VerletList, kept across configurations).
    """

    def __init__(self, positions, box, dtype, verlet=None):
        self.positions, self.box, self.dtype = positions, box, dtype
        self._verlet = {} if verlet is None else verlet
        self._pairs = {}

    def neighbour_pairs(self, cutoff):
        """(P, 2) int64 pairs i < j closer than ``cutoff`` (nm), minimum image; cached per cutoff."""
        if cutoff not in self._pairs:
            if cutoff not in self._verlet:
                self._verlet[cutoff] = VerletList(cutoff, SKIN)
            self._pairs[cutoff] = self._verlet[cutoff].pairs(self.positions, self.box)
        return self._pairs[cutoff]


def _chunk_sizes(m, chunk=CHUNK):
    """Split M instances into chunks: full ``chunk``s, then one power of two >= the rest (>= 64)."""
    sizes = [chunk] * (m // chunk)
    rest = m - chunk * len(sizes)
    if rest:
        sizes.append(min(chunk, max(64, 1 << (rest - 1).bit_length())))
    return sizes


def _chunks(m, chunk=CHUNK):
    """Yield (start, stop, padded size) over M instances."""
    start = 0
    for size in _chunk_sizes(m, chunk):
        stop = min(m, start + size)
        yield start, stop, size
        start = stop


def _pad(a, size):
    """Pad axis 0 of ``a`` to ``size`` by repeating its first row (a valid instance, weight 0)."""
    if len(a) == size:
        return a
    return np.concatenate([a, np.repeat(a[:1], size - len(a), axis=0)])


def _chain_matrix(term):
    """A (c, k): q = A x_local. Relative terms: q_a = x_{a+1} - x_0; per-atom terms: identity."""
    k = term.n_body
    if not term.relative:
        return np.eye(k)
    return np.concatenate([-np.ones((k - 1, 1)), np.eye(k - 1)], axis=1)


def local_coordinates(term, index, positions, box):
    """Per-instance coordinates q (M, c, 3) in nm (float64), minimum image applied in numpy."""
    x = positions[index]
    if not term.relative:
        return x
    return minimum_image(x[:, 1:] - x[:, :1], box)


def radial_derivatives(group, r, params):
    """phi'(r) and phi''(r) (M,) of a radial group's pair energies at distances r (M,) nm, by AD
    (mdjac.kernel.elementwise_derivatives), in chunks of RADIAL_CHUNK; params: tuple of (M,) arrays."""
    dphi, d2phi = np.empty_like(r), np.empty_like(r)
    for start, stop, size in _chunks(len(r), RADIAL_CHUNK):
        d1, d2 = kernel.elementwise_derivatives(group.radial_energy, _pad(r[start:stop], size),
                                                tuple(_pad(p[start:stop], size) for p in params))
        dphi[start:stop], d2phi[start:stop] = d1[: stop - start], d2[: stop - start]
    return dphi, d2phi


def radial_hessian_blocks(group, q, params):
    """Per pair, h (M, 3, 3) = d2E/dd2 = phi'' u u^T + (phi'/r)(I - u u^T), in q's dtype.

    q: (M, 1, 3) displacements d = x_j - x_i (nm); params: tuple of (M,) arrays. phi' and phi''
    come from AD of ``group.radial_energy`` (mdjac.kernel.elementwise_derivatives).
    """
    d = q[:, 0, :]
    r = np.sqrt(np.einsum("mi,mi->m", d, d))
    dphi, d2phi = radial_derivatives(group, r, params)
    b = dphi / r                      # phi'/r
    u = d / r[:, None]
    au = (d2phi - b)[:, None] * u     # (phi'' - phi'/r) u
    h = au[:, :, None] * u[:, None, :]
    for a in range(3):
        h[:, a, a] += b
    return h


def pair_geometry(config, pairs):
    """Minimum-image displacements d (P, 3) = x_j - x_i (nm) and distances r (P,) of pairs (P, 2)
    int64, in the configuration's compute dtype (computed in float64)."""
    box = np.zeros(3) if config.box is None else np.asarray(config.box, dtype=np.float64)
    d, r = np.empty((len(pairs), 3), dtype=config.dtype), np.empty(len(pairs), dtype=config.dtype)
    assembly.pair_displacements(config.positions, pairs, box, d, r)
    return d, r


def canonical_pairs(index):
    """Pairs (P, 2) int64 as i < j, sorted row-major; ``index`` itself when it already is (neighbour lists)."""
    pairs = np.ascontiguousarray(index, dtype=np.int64)
    if is_canonical(pairs):
        return pairs
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)
    order = np.lexsort((hi, lo))
    pairs = np.stack([lo[order], hi[order]], axis=1)
    if not is_canonical(pairs):
        raise InputError("a pair term's pair list names one atom pair twice, or an atom paired with itself: give each pair once")
    return pairs


def _scatter_add(n, index, values):
    """out (n, 3) with out[index[p]] += values[p]; index (P,), values (P, 3)."""
    return np.stack([np.bincount(index, weights=values[:, a], minlength=n) for a in range(3)], axis=1)


class TermGroup:
    """Terms that share one instance list, evaluated as one summed energy.

    terms: tuple of Term (same ``n_body`` and ``relative``); param_counts: how many per-instance
    parameter arrays each term takes. ``energy(q, *params)`` = sum of the terms' energies, each
    given its own slice of ``params``.
    """

    def __init__(self, terms, param_counts):
        self.terms, self.param_counts = terms, param_counts
        self.n_body, self.relative = terms[0].n_body, terms[0].relative
        self.radial = all(t.radial for t in terms)

    def energy(self, q, *params):
        total = 0.0
        at = 0
        for term, n in zip(self.terms, self.param_counts):
            total = total + term.energy(q, *params[at:at + n])
            at += n
        return total

    def radial_energy(self, r, *params):
        """Pair energies (M,) of distances r (M,) nm, for groups of radial terms (as :meth:`energy`,
        term by term; MindSpore's graph compiler takes no ``getattr`` by name)."""
        total = 0.0
        at = 0
        for term, n in zip(self.terms, self.param_counts):
            total = total + term.radial_energy(r, *params[at:at + n])
            at += n
        return total

    def pair_params(self, i, j):
        """Every term's parameters of the atom pairs (i, j) (radial groups), as one tuple of (M,) arrays."""
        return tuple(p for t in self.terms for p in t.pair_params(i, j))

    def __repr__(self):
        return f"TermGroup({self.terms})"


class Potential:
    """A sum of force-field terms, with an optional orthorhombic periodic box.

    terms: list of mdjac.terms.Term. box: None or (3,) edges in nm. n_atoms: inferred from the
    terms' per-atom tables (or their largest index) if not given.

    Every method takes positions (N, 3) in nm and an optional ``box`` that overrides the
    potential's for this call (NPT trajectories). float64 positions are computed in float64 end to
    end; any other dtype in float32.

    ``radial``: take the radial route for pair terms (see the module docstring); False sends
    them through the general per-term replication (tests compare the two).
    """
    radial = True

    def __init__(self, terms, box=None, n_atoms=None):
        self.terms = list(terms)
        if not self.terms:
            raise InputError("a Potential needs at least one term")
        self.long_range_terms = [t for t in self.terms if getattr(t, "long_range", False)]
        self.short_range_terms = [t for t in self.terms if not getattr(t, "long_range", False)]
        if len(self.long_range_terms) > 1:
            raise InputError(f"the potential has {len(self.long_range_terms)} long-range (reciprocal-space) terms: "
                             "give one, with all the charges")
        sizes = {t.n_atoms for t in self.terms if t.n_atoms is not None}
        if n_atoms is not None:
            sizes.add(int(n_atoms))
        if len(sizes) > 1:
            raise InputError(f"the terms' per-atom tables describe different numbers of atoms {sorted(sizes)}: "
                             "give every term tables of the same length N")
        largest = max(t.max_index for t in self.terms) + 1
        self.n_atoms = sizes.pop() if sizes else largest
        if largest > self.n_atoms:
            raise InputError(f"a term names atom {largest - 1} but the system has {self.n_atoms} atoms: indices count from 0 to N-1")
        self.box = check_box(box)
        self._groups = {}
        self._verlet = {}
        for t in self.terms:
            check_cutoff(t.cutoff, self.box)

    def __repr__(self):
        return f"Potential(n_atoms={self.n_atoms}, terms={self.terms}, box={None if self.box is None else self.box.tolist()})"

    # ------------------------------------------------------------------ configurations
    def configuration(self, positions, box=None):
        """Validate positions (N, 3) nm and the box (None: the potential's); return a :class:`Configuration`."""
        x = np.asarray(positions)
        if x.shape != (self.n_atoms, 3):
            raise InputError(f"positions have shape {x.shape} but the system has {self.n_atoms} atoms: pass an ({self.n_atoms}, 3) array in nm")
        if not np.issubdtype(x.dtype, np.number):
            raise InputError(f"positions have dtype {x.dtype}: pass numbers (nm)")
        dtype = np.float64 if x.dtype == np.float64 else np.float32
        x = x.astype(np.float64)
        if not np.all(np.isfinite(x)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(x), axis=1))[0])
            raise InputError(f"positions hold NaN or inf (first at atom {bad}): the frame is corrupt")
        b = self.box if box is None else check_box(box)
        if box is not None:
            for t in self.terms:
                check_cutoff(t.cutoff, b)
        if self.long_range_terms and b is None:
            raise InputError("the potential has an Ewald reciprocal sum but no periodic box: give the box edges in nm")
        return Configuration(x, b, dtype, self._verlet)

    def _instances(self, config, atoms=None, coordinates=True):
        """Yield (group, index (M, k), q (M, c, 3) in the configuration's dtype, params) per group of terms.

        Terms whose instances coincide in this configuration (Lennard-Jones and Coulomb over one neighbour
        list) form one :class:`TermGroup` and are evaluated as one summed energy, in one compiled
        call. With ``atoms`` (a boolean mask over atoms), only instances touching a selected atom.
        With ``coordinates=False``, q is None (the caller computes what it needs).
        """
        found = []  # [terms, index (M, k), params of all the terms, how many params each term has]
        for term in self.short_range_terms:
            index, params = term.instances(config)
            if atoms is not None:
                keep = atoms[index].any(axis=1)
                index, params = index[keep], tuple(p[keep] for p in params)
            if len(index) == 0:
                continue
            same = next((f for f in found if f[0][0].relative == term.relative and f[1].shape == index.shape
                         and (f[1] is index or np.array_equal(f[1], index))), None)
            if same is None:
                found.append([[term], index, list(params), [len(params)]])
            else:
                same[0].append(term)
                same[2].extend(params)
                same[3].append(len(params))
        for terms, index, params, counts in found:
            group = self._group(tuple(terms), tuple(counts))
            q = local_coordinates(group, index, config.positions, config.box).astype(config.dtype) if coordinates else None
            yield group, index, q, tuple(np.asarray(p, dtype=config.dtype) for p in params)

    def _group(self, terms, param_counts):
        """The (cached) :class:`TermGroup` of these terms, so its compiled functions are reused."""
        key = (terms, param_counts)
        if key not in self._groups:
            self._groups[key] = TermGroup(terms, param_counts)
        return self._groups[key]

    # ------------------------------------------------------------------ energy and forces
    def energy_and_forces(self, positions, box=None):
        """(energy kJ/mol, forces (N, 3) kJ mol^-1 nm^-1 in the compute dtype)."""
        config = self.configuration(positions, box)
        energy, forces = 0.0, np.zeros((self.n_atoms, 3))
        for group, index, _, params in self._instances(config, coordinates=False):
            if group.radial and self.radial:
                energy += self._radial_forces(group, index, config, params, forces)
                continue
            q = local_coordinates(group, index, config.positions, config.box).astype(config.dtype)
            A = _chain_matrix(group)
            for start, stop, size in _chunks(len(index)):
                weights = np.zeros(size, dtype=config.dtype)
                weights[: stop - start] = 1
                e, g = kernel.term_energy_and_gradient(
                    group.energy, _pad(q[start:stop], size), weights, tuple(_pad(p[start:stop], size) for p in params))
                energy += e
                f_local = -np.einsum("ap,mai->mpi", A, g[: stop - start])
                for p in range(group.n_body):
                    forces += _scatter_add(self.n_atoms, index[start:stop, p], f_local[:, p])
        for term in self.long_range_terms:
            e, f = term.energy_and_forces(config)
            energy += e
            forces += f
        return energy, forces.astype(config.dtype)

    def _radial_forces(self, group, index, config, params, forces):
        """Add a radial pair group's forces to ``forces`` (N, 3) float64; return its energy (kJ/mol)."""
        pairs = np.ascontiguousarray(index, dtype=np.int64)
        d, r = pair_geometry(config, pairs)
        energy, dphi = 0.0, np.empty_like(r)
        for start, stop, size in _chunks(len(r), RADIAL_CHUNK):
            weights = np.zeros(size, dtype=r.dtype)
            weights[: stop - start] = 1
            e, g = kernel.term_energy_and_gradient(group.radial_energy, _pad(r[start:stop], size), weights,
                                                   tuple(_pad(p[start:stop], size) for p in params))
            energy += e
            dphi[start:stop] = g[: stop - start]
        assembly.radial_pair_forces(pairs, d, r, dphi, forces)
        return energy

    def energy(self, positions, box=None):
        """Potential energy, kJ/mol."""
        return self.energy_and_forces(positions, box)[0]

    def forces(self, positions, box=None):
        """Forces -dU/dx, (N, 3) kJ mol^-1 nm^-1."""
        return self.energy_and_forces(positions, box)[1]

    # ------------------------------------------------------------------ Jacobian
    def force_jacobian(self, positions, atoms=None, strategy="replicate", box=None):
        """The force Jacobian J_ij = dF_i/dr_j of one frame, as a :class:`ForceJacobian`.

        positions: (N, 3) nm. atoms: None (all) or global indices of the atoms whose rows and
        columns are wanted (a partial Jacobian; only the instances touching them are evaluated
        with "replicate"). strategy: "replicate", "colour" or "dense" (see the module docstring).
        With a long-range term and "replicate", the result carries its low-rank part
        (``long_range``; the block diagonal is computed for the selected atoms only); "colour"
        and "dense" hold everything in the blocks.
        """
        if strategy not in STRATEGIES:
            raise InputError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
        config = self.configuration(positions, box)
        selected = self._selection(atoms)
        rows, cols, blocks = STRATEGIES[strategy](self, config, selected)
        long_range = None
        if strategy == "replicate" and self.long_range_terms:
            term = self.long_range_terms[0]
            kept = np.arange(self.n_atoms) if selected is None else np.flatnonzero(selected)
            diagonal = np.flatnonzero(rows == cols)          # one per atom, in atom order
            blocks[diagonal[kept]] -= term.hessian_diagonal(config, kept).astype(blocks.dtype)   # J = -H
            long_range = term.jacobian_part(config, np.arange(self.n_atoms))   # data only: select() slices it
        jacobian = ForceJacobian(self.n_atoms, rows, cols, blocks, long_range=long_range)
        return jacobian if selected is None else jacobian.select(np.flatnonzero(selected))

    def _selection(self, atoms):
        """Boolean mask (N,) of selected atoms, or None for all."""
        if atoms is None:
            return None
        a = np.asarray(atoms)
        if a.size == 0:
            raise InputError("the atom selection is empty: give at least one atom index")
        if a.dtype == bool:
            if a.shape != (self.n_atoms,):
                raise InputError(f"a boolean atom selection must have {self.n_atoms} entries, got {a.shape}")
            return a
        if not np.issubdtype(a.dtype, np.integer) or a.ndim != 1:
            raise InputError("atoms must be a 1-D list of integer atom indices")
        if len(a) == 0:
            raise InputError("the atom selection is empty: give at least one atom index")
        if a.min() < 0 or a.max() >= self.n_atoms:
            raise InputError(f"atom selection holds indices outside 0..{self.n_atoms - 1}")
        mask = np.zeros(self.n_atoms, dtype=bool)
        mask[a] = True
        return mask

    def _replicated_jacobian(self, config, selected):
        """Force Jacobian by per-term replication: (rows, cols, blocks (K, 3, 3)) over all N atoms,
        row-major, unique, every diagonal block, in the configuration's dtype.

        The radial pair group with the most pairs sets the pattern (:meth:`_radial_rows`); every
        other group's off-diagonal blocks are added into it (inserted where missing), its diagonal
        blocks summed by bincount.
        """
        n = self.n_atoms
        found = list(self._instances(config, selected, coordinates=False))
        radial = [f for f in found if f[0].radial and self.radial]
        base = max(radial, key=lambda f: len(f[1]), default=None)
        hdiag = np.zeros((9, n))        # Hessian diagonal of the groups other than the base
        extras = []                     # (rows, cols, Hessian blocks), each atom pair once
        for group, index, _, params in found:
            if base is not None and group is base[0] and index is base[1]:
                continue
            q = local_coordinates(group, index, config.positions, config.box).astype(config.dtype)
            if group.radial and self.radial:
                h = radial_hessian_blocks(group, q, params)
                for p in range(2):
                    for e in range(9):
                        hdiag[e] += np.bincount(index[:, p], weights=h.reshape(-1, 9)[:, e], minlength=n)
                extras.append((index[:, 0], index[:, 1], np.negative(h, out=h)))
                continue
            A = _chain_matrix(group)
            k = group.n_body
            hx = np.empty((len(index), k, k, 3, 3), dtype=config.dtype)
            for start, stop, size in _chunks(len(index)):
                hq = kernel.term_hessians(group.energy, _pad(q[start:stop], size),
                                          tuple(_pad(p[start:stop], size) for p in params))[: stop - start]
                hx[start:stop] = np.einsum("ap,maibj,bs->mpsij", A, hq, A, optimize=True)
            for p in range(k):
                diag = hx[:, p, p].reshape(-1, 9)
                for e in range(9):
                    hdiag[e] += np.bincount(index[:, p], weights=diag[:, e], minlength=n)
                for s_ in range(p + 1, k):
                    extras.append((index[:, p], index[:, s_], hx[:, p, s_]))
        if base is None:
            rows = cols = np.arange(n, dtype=np.int64)
            blocks = np.zeros((n, 3, 3), dtype=config.dtype)
            rowsum = np.zeros((n, 9))
        else:
            rows, cols, blocks, rowsum = self._radial_rows(base[0], base[1], config)
        blocks.reshape(-1, 9)[rows == cols] = -(rowsum + hdiag.T)
        if extras:
            keys, upper = upper_blocks(n, *(np.concatenate([x[a] for x in extras]) for a in range(3)))
            rows, cols, blocks = add_symmetric_blocks(n, rows, cols, blocks, keys, -upper)
        return rows, cols, blocks

    def _radial_rows(self, group, index, config):
        """The Jacobian blocks of a radial pair group, straight in row-major order.

        index: (M, 2) the group's pairs. phi' and phi'' by AD once per pair, then every block
        (i, j), (j, i) and (i, i) of the pattern is written where it is stored
        (mdjac.assembly.radial_jacobian_rows): J_ij = J_ji = h(d_ij). Returns (rows, cols,
        blocks (K, 3, 3) with zero diagonal blocks, rowsum (N, 9) float64: the sum of each row's
        off-diagonal blocks, which is minus the group's diagonal block by translation invariance).
        """
        n, dtype = self.n_atoms, config.dtype
        pairs = canonical_pairs(index)
        d, r = pair_geometry(config, pairs)
        params = tuple(np.asarray(p, dtype=dtype) for p in group.pair_params(pairs[:, 0], pairs[:, 1]))
        dphi, d2phi = radial_derivatives(group, r, params)
        indptr = assembly.symmetric_row_pointers(n, pairs)
        k = int(indptr[-1])
        rows, cols = np.empty(k, dtype=np.int64), np.empty(k, dtype=np.int64)
        blocks, rowsum = np.empty((k, 3, 3), dtype=dtype), np.zeros((n, 9))
        assembly.radial_jacobian_rows(pairs, d, r, dphi, d2phi, indptr, rows, cols, blocks, rowsum)
        return rows, cols, blocks, rowsum

    # ------------------------------------------------------------------ the potential as one opaque function
    def interaction_pairs(self, positions, box=None):
        """(P, 2) int64 atom pairs i < j coupled by some term instance in this frame."""
        return self._interaction_pairs(self.configuration(positions, box))

    def _interaction_pairs(self, config):
        if self.long_range_terms:  # a reciprocal sum couples every pair
            return np.stack(np.triu_indices(self.n_atoms, k=1), axis=1).astype(np.int64)
        keys = []
        for group, index, _, _ in self._instances(config):
            for a in range(group.n_body):
                for b in range(a + 1, group.n_body):
                    keys.append(pair_keys(index[:, a], index[:, b], self.n_atoms))
        keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
        pairs = pairs_of_keys(keys, self.n_atoms)
        return pairs[pairs[:, 0] != pairs[:, 1]]

    def energy_function(self, positions, box=None):
        """The config's energy as one MindSpore function of all positions, for the colouring strategy.

        Returns ``(energy, args)``: ``energy(X, *args)`` maps X (C, N, 3) copies of the positions
        (nm) to (C,) energies (kJ/mol); ``args`` are the config's instance lists, constant
        minimum-image shifts and parameters (ndarrays). They are frozen at this config, so the
        function is exact for positions near it (within the neighbour list's validity).
        """
        return self._energy_function(self.configuration(positions, box))

    def _energy_function(self, config):
        from mindspore import ops

        layout, args = [], []
        for group, index, q, params in self._instances(config):
            args.append(index.reshape(-1).astype(np.int32))
            if group.relative:  # the constant minimum-image shift of each displacement
                raw = config.positions[index[:, 1:]] - config.positions[index[:, :1]]
                args.append((q.astype(np.float64) - raw).astype(config.dtype))
            args.extend(params)
            layout.append((group, index.shape, len(params)))
        for term in self.long_range_terms:
            lr_energy, lr_args = term.energy_function(config)
            args.extend(lr_args)
            layout.append((lr_energy, None, len(lr_args)))

        def energy(X, *args):
            total = 0.0
            at = 0
            for group, shape, n_params in layout:
                if shape is None:  # a long-range term: a function of all positions
                    total = total + group(X, *args[at:at + n_params])
                    at += n_params
                    continue
                x = ops.gather(X, args[at], 1).reshape(X.shape[:1] + shape + (3,))
                at += 1
                qx = x
                if group.relative:
                    qx = x[:, :, 1:] - x[:, :, :1] + args[at]
                    at += 1
                total = total + group.energy(qx, *args[at:at + n_params]).sum(-1)
                at += n_params
            return total
        return energy, args

    def _coloured_jacobian(self, config, selected=None, dense=False):
        """Force Jacobian of the whole potential by colouring (or the identity colouring), as
        (rows, cols, blocks) like :meth:`_replicated_jacobian`. The whole Jacobian is computed;
        ``selected`` is cut out of it by the caller."""
        pairs = self._interaction_pairs(config)
        colours = np.arange(self.n_atoms) if dense else kernel.distance2_colouring(self.n_atoms, pairs)
        energy, args = self._energy_function(config)
        gradient = kernel.instance_gradient_of(energy)
        rows, cols, blocks = kernel.coloured_hessian_blocks(gradient, config.positions.astype(config.dtype), pairs, colours,
                                                            args, batched=True, cache=False)
        r, c, h = assemble_blocks(self.n_atoms, rows, cols, blocks)
        return r, c, np.negative(h, out=h)

    def _dense_jacobian(self, config, selected=None):
        """The article's identity mask: :meth:`_coloured_jacobian` with one colour per atom."""
        return self._coloured_jacobian(config, selected, dense=True)


#: Strategies of :meth:`Potential.force_jacobian`: name -> method(potential, config, selected)
#: returning (rows, cols, blocks (K, 3, 3)) of the force Jacobian over all N atoms, row-major,
#: unique, every diagonal block. Adding a strategy is one method and one line here (the command
#: line's --strategy lists these names).
STRATEGIES = {
    "replicate": Potential._replicated_jacobian,
    "colour": Potential._coloured_jacobian,
    "dense": Potential._dense_jacobian,
}
