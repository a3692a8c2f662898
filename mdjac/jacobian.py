"""The force Jacobian as data.

For N atoms with positions r_i (nm) and forces F_i = -dU/dr_i (kJ mol^-1 nm^-1), the force
Jacobian is the N x N grid of 3x3 blocks

    J_ij = dF_i / dr_j = -d2U / dr_i dr_j        (kJ mol^-1 nm^-2),

element ``J_ij[a, b] = dF_{i,a} / dr_{j,b}`` with a, b the Cartesian components x, y, z. It is minus
the Hessian, so ``J_ij = J_ji^T``. For short-ranged force fields most blocks are zero; a
:class:`ForceJacobian` stores only the blocks of atom pairs that interact, plus every diagonal
block, as matscipy does for its Hessians.

Index convention. ``atoms`` lists, in ascending order, the atoms whose rows and columns are kept
(all atoms, or a selection for a partial Jacobian). Block row ``r`` and block column ``c`` count in
that list: block ``k`` is ``J[atoms[rows[k]], atoms[cols[k]]]``. Flattened, atom ``atoms[r]``,
component ``a`` is row ``3 r + a`` of :meth:`ForceJacobian.to_bsr`.

A long-range part. A potential with an Ewald reciprocal sum couples every pair of atoms, but
only through a low-rank matrix (mdjac.longrange.ewald): J = J_sr + J_lr with J_sr block-sparse (the
stored blocks, which then hold every short-range term and the reciprocal sum's block-diagonal
part) and J_lr = -sum_k 2 w_k (g_k g_k^T + h_k h_k^T) held as the data that rebuilds it
(``long_range``: long-range Jacobian data on the same atoms, mdjac.long_range_jacobian, which
documents its protocol). :meth:`ForceJacobian.diagonal`,
:meth:`~ForceJacobian.matvec`, :meth:`~ForceJacobian.as_linear_operator`,
:meth:`~ForceJacobian.to_dense` and :meth:`~ForceJacobian.select` include it;
:meth:`~ForceJacobian.to_bsr` includes it as dense blocks up to :data:`LONG_RANGE_BSR_MAX_ATOMS`
atoms and refuses above, unless asked for the short-range part (``short_range_only=True``). The
stored ``rows``, ``cols``, ``blocks`` and :meth:`~ForceJacobian.pattern` are the short-range part.
Without a long-range part (``long_range`` None) a ForceJacobian is exactly the block-sparse matrix.
"""
import numba
import numpy as np
import scipy.sparse

from .errors import InputError

#: to_bsr() includes a long-range part as dense blocks up to this many atoms (a 290 MB matrix in float64).
LONG_RANGE_BSR_MAX_ATOMS = 2000


def row_pointers(rows, n):
    """(n + 1,) int64 block-row pointers (CSR over blocks) of row-major sorted block rows (nnz,)."""
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int64)


@numba.njit(parallel=True, cache=True, nogil=True)
def block_rows_product(indptr, cols, blocks, x, out):
    """out[i] = sum_p blocks[p] x[cols[p]] over the blocks p of block row i, for x and out (n, 3, m)
    float64; blocks (nnz, 3, 3) float32 or float64, summed in float64; block rows in parallel, each
    block read once for all m columns."""
    for i in numba.prange(indptr.shape[0] - 1):
        for a in range(3):
            for c in range(x.shape[2]):
                out[i, a, c] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            j = cols[p]
            b00, b01, b02 = np.float64(blocks[p, 0, 0]), np.float64(blocks[p, 0, 1]), np.float64(blocks[p, 0, 2])
            b10, b11, b12 = np.float64(blocks[p, 1, 0]), np.float64(blocks[p, 1, 1]), np.float64(blocks[p, 1, 2])
            b20, b21, b22 = np.float64(blocks[p, 2, 0]), np.float64(blocks[p, 2, 1]), np.float64(blocks[p, 2, 2])
            for c in range(x.shape[2]):
                x0, x1, x2 = x[j, 0, c], x[j, 1, c], x[j, 2, c]
                out[i, 0, c] += b00 * x0 + b01 * x1 + b02 * x2
                out[i, 1, c] += b10 * x0 + b11 * x1 + b12 * x2
                out[i, 2, c] += b20 * x0 + b21 * x1 + b22 * x2


def rows_of(indptr):
    """(nnz,) int64 block row of every block, from (n + 1,) block-row pointers."""
    return np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))


class ForceJacobian:
    """Block-sparse force Jacobian of one frame.

    Attributes
    ----------
    n_atoms : int, atoms in the system.
    atoms : (n,) int64, ascending global indices of the kept rows and columns.
    rows, cols : (nnz,) int64, block coordinates in ``atoms``; row-major order, unique.
    blocks : (nnz, 3, 3) float32 or float64, kJ mol^-1 nm^-2 (the short-range part if there is a long-range one).
    long_range : None, or the low-rank long-range part on the same atoms (mdjac.long_range_jacobian:
        ``n``, ``diagonal()``, ``matvec(v)``, ``dense()``, ``select(where)``).
    """

    def __init__(self, n_atoms, rows, cols, blocks, atoms=None, long_range=None):
        self.n_atoms = int(n_atoms)
        self.atoms = np.arange(self.n_atoms, dtype=np.int64) if atoms is None else np.asarray(atoms, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.cols = np.asarray(cols, dtype=np.int64)
        self.blocks = np.asarray(blocks)
        n = len(self.atoms)
        if self.blocks.shape != (len(self.rows), 3, 3) or self.cols.shape != self.rows.shape:
            raise InputError(f"blocks {self.blocks.shape}, rows {self.rows.shape} and cols {self.cols.shape} do not match: "
                             "blocks must be (nnz, 3, 3) with rows and cols (nnz,)")
        if len(self.rows) and (self.rows.min() < 0 or self.cols.min() < 0 or self.rows.max() >= n or self.cols.max() >= n):
            raise InputError(f"block indices must lie in 0..{n - 1} (the selected atoms)")
        if long_range is not None and long_range.n != n:
            raise InputError(f"the long-range part describes {long_range.n} atoms but the Jacobian keeps {n}")
        self.long_range = long_range
        self._indptr = None         # block-row pointers, built on the first matvec

    @property
    def n(self):
        """Number of kept atoms (block rows)."""
        return len(self.atoms)

    @property
    def nnz_blocks(self):
        return len(self.rows)

    @property
    def dtype(self):
        return self.blocks.dtype

    def indptr(self):
        """(n + 1,) int64: block-row pointers (CSR over blocks)."""
        return row_pointers(self.rows, self.n)

    def short_range(self):
        """The block-sparse part alone (this Jacobian without its long-range part), as a ForceJacobian."""
        return ForceJacobian(self.n_atoms, self.rows, self.cols, self.blocks, self.atoms)

    def to_bsr(self, short_range_only=False):
        """``scipy.sparse.bsr_matrix`` of shape (3n, 3n), blocksize (3, 3).

        With a long-range part: the whole Jacobian with every block present (dense within the BSR)
        up to :data:`LONG_RANGE_BSR_MAX_ATOMS` atoms, an InputError above; ``short_range_only=True``
        gives the block-sparse short-range part alone.
        """
        if self.long_range is None or short_range_only:
            return scipy.sparse.bsr_matrix((self.blocks, self.cols, self.indptr()), shape=(3 * self.n, 3 * self.n))
        if self.n > LONG_RANGE_BSR_MAX_ATOMS:
            raise InputError(f"this Jacobian has a long-range (Ewald) part that couples all {self.n} atoms: as BSR it would be "
                             f"dense ({9 * self.n ** 2 * 8 / 1e9:.1f} GB); use to_bsr(short_range_only=True) for the short-range "
                             "part, or matvec() / as_linear_operator() / diagonal() for the whole")
        dense = self.to_dense().reshape(3 * self.n, 3 * self.n)
        return scipy.sparse.bsr_matrix(dense, blocksize=(3, 3))

    def to_dense(self):
        """Dense (n, 3, n, 3) array; ``to_dense()[i, a, j, b] = dF_{i,a} / dr_{j,b}`` (long-range part included)."""
        out = np.zeros((self.n, 3, self.n, 3), dtype=self.blocks.dtype)
        out[self.rows, :, self.cols, :] = self.blocks
        if self.long_range is not None:
            out += self.long_range.dense().astype(out.dtype)
        return out

    def diagonal(self):
        """The diagonal blocks J_ii, shape (n, 3, 3) (long-range part included)."""
        out = np.zeros((self.n, 3, 3), dtype=self.blocks.dtype)
        on = self.rows == self.cols
        out[self.rows[on]] = self.blocks[on]
        if self.long_range is not None:
            out += self.long_range.diagonal().astype(out.dtype)
        return out

    def matvec(self, v):
        """J v in float64 for v (n, 3), (3n,) or (3n, m); same shape back (long-range part included)."""
        v = np.asarray(v, dtype=np.float64)
        if v.shape not in ((self.n, 3), (3 * self.n,)) and not (v.ndim == 2 and v.shape[0] == 3 * self.n):
            raise InputError(f"the vector has shape {v.shape}: give ({self.n}, 3), ({3 * self.n},) or ({3 * self.n}, m)")
        flat = np.ascontiguousarray(v.reshape(3 * self.n, -1))
        if self._indptr is None:     # kept: Krylov solvers call matvec hundreds of times
            self._indptr = self.indptr()
        out = np.empty((self.n, 3, flat.shape[1]))
        block_rows_product(self._indptr, self.cols, self.blocks, flat.reshape(self.n, 3, -1), out)
        out = out.reshape(flat.shape)
        if self.long_range is not None:
            out += self.long_range.matvec(flat)
        return out.reshape(v.shape)

    def as_linear_operator(self):
        """``scipy.sparse.linalg.LinearOperator`` (3n, 3n), float64: x -> J x (for eigsh and other Krylov solvers)."""
        import scipy.sparse.linalg

        return scipy.sparse.linalg.LinearOperator((3 * self.n, 3 * self.n), matvec=self.matvec, matmat=self.matvec,
                                                  rmatvec=self.matvec, dtype=np.float64)

    def pattern(self):
        """(n, n) ``scipy.sparse.csr_matrix`` of booleans: which blocks are stored."""
        data = np.ones(len(self.rows), dtype=bool)
        return scipy.sparse.csr_matrix((data, self.cols, self.indptr()), shape=(self.n, self.n))

    def select(self, atoms):
        """The partial Jacobian on a subset of ``self.atoms`` (global indices), as a new ForceJacobian."""
        atoms = np.unique(np.asarray(atoms, dtype=np.int64))
        where = np.searchsorted(self.atoms, atoms)
        if np.any(where >= self.n) or np.any(self.atoms[np.minimum(where, self.n - 1)] != atoms):
            raise InputError("the selection names atoms that this Jacobian does not hold")
        local = np.full(self.n, -1, dtype=np.int64)
        local[where] = np.arange(len(atoms))
        keep = (local[self.rows] >= 0) & (local[self.cols] >= 0)
        long_range = None if self.long_range is None else self.long_range.select(where)
        return ForceJacobian(self.n_atoms, local[self.rows[keep]], local[self.cols[keep]], self.blocks[keep], atoms, long_range)

    @classmethod
    def from_bsr(cls, bsr, n_atoms=None, atoms=None):
        """Build from a (3n, 3n) matrix with blocksize (3, 3) (any scipy sparse matrix is converted)."""
        bsr = scipy.sparse.bsr_matrix(bsr, blocksize=(3, 3))
        bsr.sort_indices()
        n = bsr.shape[0] // 3
        return cls(n if n_atoms is None else n_atoms, rows_of(bsr.indptr), bsr.indices, np.asarray(bsr.data), atoms)

    def __repr__(self):
        extra = "" if self.long_range is None else f", long_range={self.long_range!r}"
        return (f"ForceJacobian(n_atoms={self.n_atoms}, kept={self.n}, blocks={self.nnz_blocks}, "
                f"dtype={self.blocks.dtype}{extra})")


def assemble_blocks(n, rows, cols, blocks, diagonal=None, dtype=None):
    """Sum 3x3 blocks that share a position and sort them row-major, with every diagonal block.

    n: number of block rows. rows, cols: (K,) int block coordinates, repeats allowed;
    blocks: (K, 3, 3). diagonal: optional (n, 3, 3) diagonal blocks already summed (the caller
    can sum those cheaply with bincount). Returns (rows, cols, blocks) unique, sorted row-major,
    in ``dtype`` (default: that of ``blocks``). Repeats are added in float64; one sort over the
    off-diagonal keys.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    blocks = np.asarray(blocks)
    dtype = blocks.dtype if dtype is None else np.dtype(dtype)
    on = rows == cols
    if on.any():  # diagonal blocks among the rest: fold them into ``diagonal``
        diagonal = np.zeros((n, 3, 3)) if diagonal is None else np.array(diagonal, dtype=np.float64)
        np.add.at(diagonal, rows[on], blocks[on])
        rows, cols, blocks = rows[~on], cols[~on], blocks[~on]
    blocks = blocks.astype(dtype, copy=False)
    keys = rows * n + cols
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    values = np.asarray(blocks).reshape(-1, 9)[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
    if len(starts) < len(keys):  # repeated positions (e.g. a 1-4 pair that is also in a torsion)
        values = np.add.reduceat(values.astype(np.float64), starts, axis=0).astype(values.dtype)
        keys = keys[starts]
    diag_keys = np.arange(n, dtype=np.int64) * (n + 1)
    at = np.searchsorted(keys, diag_keys)
    diag = np.zeros((n, 9), dtype=values.dtype) if diagonal is None else np.asarray(diagonal).reshape(n, 9).astype(values.dtype)
    keys = np.insert(keys, at, diag_keys)
    values = np.insert(values, at, diag, axis=0)
    return keys // n, keys % n, values.reshape(-1, 3, 3)


def upper_blocks(n, rows, cols, blocks):
    """Off-diagonal blocks of a symmetric block matrix moved to the upper triangle and summed.

    rows, cols: (K,) int; blocks: (K, 3, 3), each unordered pair's contribution once in either
    orientation (a (j, i) block stands for the transpose of its (i, j) block), repeats allowed;
    rows == cols (one atom twice in an instance) stands for the block plus its transpose. Returns (keys (U,) int64 = i n + j with i < j, sorted unique; blocks (U, 3, 3)
    float64, summed).
    """
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    blocks = np.asarray(blocks, dtype=np.float64)
    flip = rows > cols
    blocks = np.where(flip[:, None, None], blocks.transpose(0, 2, 1), blocks)
    keys = np.where(flip, cols * n + rows, rows * n + cols)
    order = np.argsort(keys, kind="stable")
    keys, blocks = keys[order], blocks.reshape(-1, 9)[order]
    if not len(keys):
        return keys, blocks.reshape(-1, 3, 3)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(blocks, starts, axis=0).reshape(-1, 3, 3)


def add_symmetric_blocks(n, rows, cols, blocks, keys, extra):
    """Add blocks of a symmetric matrix into a row-major pattern, inserting the missing ones.

    rows, cols, blocks: (K,), (K,), (K, 3, 3) unique, sorted row-major (a pattern of both
    triangles). keys, extra: from :func:`upper_blocks`; each adds ``extra`` at (i, j) and its
    transpose at (j, i). Returns (rows, cols, blocks) in the same order and dtype.
    """
    if not len(keys):
        return rows, cols, blocks
    i, j = keys // n, keys % n
    on = i == j          # an instance naming one atom twice (CMAP's two torsions share three atoms):
    off = ~on            # its block and its transpose both land on the diagonal, added here as one
    own = np.array(extra, dtype=np.float64)
    own[on] += own[on].transpose(0, 2, 1)
    both_keys = np.concatenate([keys, (j * n + i)[off]])
    both = np.concatenate([own, extra[off].transpose(0, 2, 1)]).astype(blocks.dtype)
    order = np.argsort(both_keys)
    both_keys, both = both_keys[order], both[order]
    ours = rows * n + cols
    at = np.searchsorted(ours, both_keys)
    hit = at < len(ours)
    hit[hit] = ours[at[hit]] == both_keys[hit]
    blocks = blocks.copy() if not blocks.flags.writeable else blocks
    blocks[at[hit]] += both[hit]
    new = ~hit
    return (np.insert(rows, at[new], both_keys[new] // n), np.insert(cols, at[new], both_keys[new] % n),
            np.insert(blocks, at[new], both[new], axis=0))
