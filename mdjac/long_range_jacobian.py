"""Long-range Jacobian data: the low-rank part of a force Jacobian, beside :class:`mdjac.jacobian.ForceJacobian`.

Numpy only: reading a stored Jacobian (mdjac.io) builds these without importing MindSpore or a term.
The data is "not responsible for calculating" its factors: a long-range term (mdjac.longrange)
makes it, and the AD factors it needs are computed on first use through a hook that imports the
kernel only then.

The protocol of a long-range part (``ForceJacobian.long_range``), for any kind:

* ``n`` (int): the atoms it holds, the same as the ForceJacobian's kept atoms, in that order;
* ``dtype``: the compute dtype (float32 or float64) of its products;
* ``diagonal()`` -> (n, 3, 3) float64: its diagonal blocks, kJ mol^-1 nm^-2;
* ``matvec(V)`` -> J_lr V for V (n, 3), (3n,) or (3n, m): the same shape, float64;
* ``dense()`` -> (n, 3, n, 3) float64;
* ``select(where)`` -> the part on local atoms ``where`` (m,) int (rows and columns);
* ``kind`` (str) and ``recipe()``: the format tag and the tuple an H5MD file stores under
  ``force_jacobian/long_range`` (docs/h5md.md), from which, with each frame's positions and box,
  the reader rebuilds the part (mdjac.io.h5md_reader, mdjac.io.h5md_layout.long_range_recipe).

A sum of parts (:class:`PartSum`, LJ-PME's two meshes; kind ``"part-sum-1"``) follows the protocol too, and a
file stores the recipe of each of its parts; so does a part seen through virtual sites (mdjac.site_jacobian).

Three kinds (:func:`rebuild` makes each from its recipe): :class:`mdjac.pme_jacobian.PMEJacobian`
(``"pme-mesh-1"``), smooth PME's mesh operator, in its own numpy-only module beside this one, and LJ-PME's
dispersion mesh on the same machinery (``"pme-dispersion-mesh-1"``, mdjac.pme_jacobian.DispersionPMEJacobian); and
:class:`ReciprocalJacobian` (``"ewald-reciprocal-1"``): an Ewald reciprocal sum's part, -sum_k 2 w_k (g_k g_k^T + h_k h_k^T), whose maths is derived in mdjac.longrange.ewald. The k
vectors and weights it is rebuilt from are computed here (numpy), and by the term from the same
functions. Units: nm, e, kJ/mol; k in nm^-1, w_k in kJ mol^-1 e^-2.
"""
import math
import os

import numpy as np

from .errors import InputError
from .longrange.kinds import DISPERSION_KIND, EWALD_KIND, KIND_SIZES, PME_KIND, SUM_KIND
from .space import box_volume, check_box, is_triclinic, reciprocal_vectors

#: largest number of (atom, wave vector) entries one compiled call handles; bounds memory (about 100 MB in float64).
CHUNK_ENTRIES = 1 << 22
#: bytes of factors per block of a matvec: a block is read twice, the second time from cache (L3).
MATVEC_BLOCK_BYTES = 1 << 24


def wave_numbers(kmax):
    """(K, 3) int64 triples n of OpenMM's half space: |n_a| < kmax_a, each +-n once, n = 0 left out.

    Order as OpenMM loops: n_x ascending, then n_y, then n_z.
    """
    kmax = np.asarray(kmax, dtype=np.int64).reshape(-1)
    if kmax.shape != (3,) or np.any(kmax < 1):
        raise InputError(f"kmax {kmax.tolist()} must be 3 integers >= 1 (wave numbers |n| < kmax per axis)")
    nx, ny, nz = np.meshgrid(np.arange(0, kmax[0]), np.arange(1 - kmax[1], kmax[1]), np.arange(1 - kmax[2], kmax[2]),
                             indexing="ij")
    n = np.stack([nx.ravel(), ny.ravel(), nz.ravel()], axis=1)
    half = (n[:, 0] > 0) | ((n[:, 0] == 0) & (n[:, 1] > 0)) | ((n[:, 0] == 0) & (n[:, 1] == 0) & (n[:, 2] > 0))
    return n[half]


def wave_vectors(numbers, box):
    """(K, 3) k vectors (nm^-1) of integer wave numbers (K, 3) in a box, edges (3,) or (3, 3) vectors nm:
    k = 2 pi n / L, or k = 2 pi sum_d n_d b*_d with b*_d the reciprocal vectors (mdjac.space.reciprocal_vectors)."""
    if is_triclinic(box):
        return 2.0 * math.pi * np.asarray(numbers, dtype=np.float64) @ reciprocal_vectors(box).T
    return 2.0 * math.pi * np.asarray(numbers, dtype=np.float64) / np.asarray(box, dtype=np.float64)


def reciprocal_weights(kvectors, alpha, box, coulomb_constant):
    """(K,) w_k = (4 pi f / V) exp(-|k|^2 / 4 alpha^2) / |k|^2, kJ mol^-1 e^-2."""
    k2 = np.einsum("ka,ka->k", kvectors, kvectors)
    volume = box_volume(box)
    return 4.0 * math.pi * coulomb_constant / volume * np.exp(-k2 / (4.0 * alpha * alpha)) / k2


def outer_kk(kvectors):
    """(K, 3, 3) k k^T of k vectors (K, 3)."""
    return kvectors[:, :, None] * kvectors[:, None, :]


def k_chunk(n_atoms, n_k):
    """Wave vectors per compiled call: a power of two with n_atoms x chunk <= CHUNK_ENTRIES (at least 16)."""
    size = max(16, 1 << max(0, (CHUNK_ENTRIES // max(1, n_atoms)).bit_length() - 1))
    return min(size, max(16, 1 << (max(1, n_k) - 1).bit_length()))


def k_chunks(kvectors, weights, n_atoms):
    """Yield (start, stop, kvectors (Kc, 3), weights (Kc,)) padded to one size with k = 0, w = 0."""
    size = k_chunk(n_atoms, len(kvectors))
    for start in range(0, len(kvectors), size):
        stop = min(len(kvectors), start + size)
        k = np.zeros((size, 3), dtype=kvectors.dtype)
        w = np.zeros(size, dtype=weights.dtype)
        k[: stop - start], w[: stop - start] = kvectors[start:stop], weights[start:stop]
        yield start, stop, k, w


class ReciprocalJacobian:
    """The low-rank part of a reciprocal sum's force Jacobian on n atoms: -sum_k 2 w_k (g_k g_k^T + h_k h_k^T).

    Held as what rebuilds it: positions (n, 3) nm and charges (n,) e of the atoms, and the sum's
    recipe: kmax (3,), alpha (nm^-1), the box (3,) nm and the Coulomb constant, from which the
    k vectors (K, 3) nm^-1 and weights (K,) kJ mol^-1 e^-2 follow exactly as
    :class:`mdjac.longrange.ewald.EwaldReciprocal` computes them (what an H5MD file stores: docs/h5md.md). The factors
    g_k[i] = c_ki' k and h_k[i] = s_ki' k are held as their scalars c', s' (K, n) from AD
    (:func:`phase_derivatives`, module docstring); they are kept, in the compute dtype, when they
    take at most ``cache_bytes`` (default None: half the memory available when they are first
    built), otherwise rebuilt chunk by chunk at each use. dtype: the compute dtype (float32 or
    float64), that of the factors and of the products with them; sums over k are in float64.
    factors: None, or those kept scalars already computed: the chunks (w (Kc,), k (Kc, 3), c' (Kc, n),
    s' (Kc, n)) of :func:`k_chunks` over every k vector, as EwaldReciprocal.hessian_diagonal's AD gives
    them when it covers every atom and they fit (:func:`keeps_factors`).
    """

    kind = EWALD_KIND

    def __init__(self, positions, charges, kmax, alpha, box, coulomb_constant, dtype=np.float64, cache_bytes=None,
                 factors=None):
        self.positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        self.charges = np.asarray(charges, dtype=np.float64).reshape(-1)
        if len(self.charges) != len(self.positions):
            raise InputError(f"the long-range part needs one charge per position ({len(self.charges)} vs {len(self.positions)})")
        self.kmax, self.alpha = np.asarray(kmax, dtype=np.int64).reshape(-1), float(alpha)
        self.box, self.coulomb_constant = check_box(box), float(coulomb_constant)
        if self.box is None:
            raise InputError("the long-range part needs the periodic box (3 edges in nm)")
        self.kvectors = wave_vectors(wave_numbers(self.kmax), self.box)
        self.weights = reciprocal_weights(self.kvectors, self.alpha, self.box, self.coulomb_constant)
        self.dtype = np.dtype(dtype)
        self.cache_bytes = cache_bytes
        self._cache = None if factors is None else list(factors)

    @property
    def n(self):
        return len(self.positions)

    @property
    def nbytes(self):
        """Bytes of the data that rebuilds this part besides the positions: charges, kmax, alpha, box, constant."""
        return self.charges.nbytes + self.kmax.nbytes + 8 * 5

    @property
    def factor_bytes(self):
        """Bytes of all scalar factors c', s' (2 K n in the compute dtype), kept or not."""
        return 2 * len(self.kvectors) * self.n * self.dtype.itemsize

    @property
    def cached_bytes(self):
        """Bytes of the scalar factors kept in memory now (0 until first used, or if they do not fit)."""
        return 0 if self._cache is None else sum(a.nbytes + b.nbytes for _, _, a, b in self._cache)

    def __repr__(self):
        return f"ReciprocalJacobian(n={self.n}, K={len(self.kvectors)}, dtype={self.dtype})"

    def _keeps_factors(self):
        return keeps_factors(self.factor_bytes, self.cache_bytes)

    def chunks(self):
        """Yield (weights (Kc,), k vectors (Kc, 3), c' (Kc, n), s' (Kc, n)) over all k vectors, chunk by chunk."""
        if self._cache is not None:
            yield from self._cache
            return
        keep = self._keeps_factors()
        from .longrange.phases import phase_factors as factors   # the AD kernel, imported only now: reading a file needs no MindSpore
        done = []
        for start, stop, k, w in k_chunks(self.kvectors, self.weights, self.n):
            c1, s1 = factors(self.positions, self.charges, k, self.dtype)   # compiled at the padded size
            m = stop - start
            part = (w[:m], k[:m], c1[:m], s1[:m])
            if keep:
                done.append(part)
            yield part
        if keep:
            self._cache = done

    def factors(self):
        """g, h (K, n, 3): the per-atom factor vectors g_k[i] = c_ki' k, h_k[i] = s_ki' k (48 n K bytes)."""
        parts = list(self.chunks())
        g = np.concatenate([a.astype(np.float64)[:, :, None] * k[:, None, :] for _, k, a, _ in parts])
        h = np.concatenate([b.astype(np.float64)[:, :, None] * k[:, None, :] for _, k, _, b in parts])
        return g, h

    def diagonal(self):
        """(n, 3, 3) diagonal blocks of the low-rank part: -sum_k 2 w_k (c_ki'^2 + s_ki'^2) k k^T."""
        out = np.zeros((self.n, 9))
        for w, k, a, b in self.chunks():
            a, b = a.astype(np.float64), b.astype(np.float64)
            out -= (a * a + b * b).T @ (2.0 * w[:, None] * outer_kk(k).reshape(len(w), 9))
        return out.reshape(self.n, 3, 3)

    def pair_blocks(self, pairs):
        """(P, 3, 3) blocks J_ab of atom pairs (a, b) (P, 2) local indices: -sum_k 2 w_k (c_ka' c_kb' + s_ka' s_kb') k k^T."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        out = np.zeros((len(pairs), 9))
        for w, k, a, b in self.chunks():
            a, b = a.astype(np.float64), b.astype(np.float64)
            both = a[:, pairs[:, 0]] * a[:, pairs[:, 1]] + b[:, pairs[:, 0]] * b[:, pairs[:, 1]]
            out -= both.T @ (2.0 * w[:, None] * outer_kk(k).reshape(len(w), 9))
        return out.reshape(-1, 3, 3)

    def matvec(self, v):
        """J_lr v for v (n, 3) or (3n,) (or (3n, m) for m vectors at once); same shape back, float64.

        The products run in the compute dtype (a float32 Jacobian's long-range part to float32
        precision, like its blocks) and are summed over blocks in float64.

        Per factor f (c' or s') and block of k: T = f V (Kb, 3, m), t_k = k.T_k, then
        J_lr V -= f^T (2 w_k t_k k): two matrix products over the n atoms, on blocks of
        wave vectors of MATVEC_BLOCK_BYTES so that the second reads f from cache.
        """
        v = np.asarray(v, dtype=np.float64)
        shape = v.shape
        V = v.reshape(self.n, 3 * (v.size // (3 * self.n)))
        m = V.shape[1] // 3
        out = np.zeros_like(V)
        Vd = V.astype(self.dtype, copy=False)          # the products run in the factors' dtype
        block = max(16, MATVEC_BLOCK_BYTES // (self.dtype.itemsize * self.n))
        for w, k, a, b in self.chunks():
            for start in range(0, len(w), block):
                rows = slice(start, start + block)
                kb, wb = k[rows], w[rows]
                for f in (a[rows], b[rows]):
                    t = np.einsum("ka,kam->km", kb, (f @ Vd).reshape(len(wb), 3, m))   # (Kb, m): g_k . v
                    u = ((2.0 * wb[:, None] * t)[:, None, :] * kb[:, :, None]).reshape(len(wb), 3 * m)
                    out -= (u.T.astype(self.dtype) @ f).T
        return out.reshape(shape)

    def dense(self):
        """(n, 3, n, 3) dense low-rank part."""
        out = np.zeros((3 * self.n, 3 * self.n))
        for w, k, a, b in self.chunks():
            for f in (a, b):
                f = (f.astype(np.float64)[:, :, None] * k[:, None, :]).reshape(len(w), -1)   # rows: g_k (or h_k)
                out -= 2.0 * (f.T * w) @ f
        return out.reshape(self.n, 3, self.n, 3)

    def select(self, where):
        """The part on a subset: rows and columns of local atoms ``where`` (m,) int."""
        where = np.asarray(where, dtype=np.int64)
        return ReciprocalJacobian(self.positions[where], self.charges[where], self.kmax, self.alpha, self.box,
                                  self.coulomb_constant, self.dtype, self.cache_bytes)

    def recipe(self):
        """(kmax (3,) int64, alpha nm^-1, coulomb_constant kJ mol^-1 nm e^-2, charges (n,) e): what a file
        stores, besides each frame's positions and box, to rebuild this part."""
        return self.kmax, self.alpha, self.coulomb_constant, self.charges


class PartSum:
    """The sum of the long-range parts of several long-range terms on the same n atoms (LJ-PME: the Coulomb
    and the dispersion meshes). Follows the protocol; a file stores each part's recipe (mdjac.io.h5md_layout)."""

    kind = SUM_KIND

    def __init__(self, parts):
        self.parts = tuple(parts)
        if len({p.n for p in self.parts}) != 1:
            raise InputError("long-range parts on different numbers of atoms cannot be added")

    @property
    def n(self):
        return self.parts[0].n

    @property
    def dtype(self):
        return self.parts[0].dtype

    def __repr__(self):
        return f"PartSum({', '.join(map(repr, self.parts))})"

    def diagonal(self):
        return sum(p.diagonal() for p in self.parts)

    def pair_blocks(self, pairs):
        return sum(p.pair_blocks(pairs) for p in self.parts)

    def matvec(self, v):
        return sum(p.matvec(v) for p in self.parts)

    def dense(self):
        return sum(p.dense() for p in self.parts)

    def select(self, where):
        return PartSum([p.select(where) for p in self.parts])


def keeps_factors(nbytes, cache_bytes=None):
    """Whether scalar factors of ``nbytes`` bytes are kept in memory: at most ``cache_bytes``, or (None)
    half the memory available now (:class:`ReciprocalJacobian`)."""
    limit = cache_bytes
    if limit is None:
        limit = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    return nbytes <= limit


def rebuild(kind, positions, charges, sizes, alpha, box, coulomb_constant, dtype=np.float64):
    """The long-range part of a ``kind`` rebuilt from its recipe (``recipe()``: sizes (3,) int, Ewald's kmax
    or PME's grid; alpha nm^-1; coulomb_constant (1 for the dispersion mesh); charges (n,) e, or the dispersion
    coefficients) and a frame's positions (n, 3) nm and box (3,) nm."""
    if kind == EWALD_KIND:
        return ReciprocalJacobian(positions, charges, sizes, alpha, box, coulomb_constant, dtype)
    if kind in (PME_KIND, DISPERSION_KIND):
        from .pme_jacobian import DispersionPMEJacobian, PMEJacobian    # numba's compiled loops, imported only for a PME part
        part_class = PMEJacobian if kind == PME_KIND else DispersionPMEJacobian
        return part_class(positions, charges, sizes, alpha, box, coulomb_constant, dtype)
    raise InputError(f"a long-range Jacobian part of kind {kind!r}; this mdjac reads "
                     f"{', '.join(map(repr, KIND_SIZES))}")
