"""Generalized Born's force Jacobian held as per-pair scalars (numpy and numba only, no MindSpore).

The GB Hessian of mdjac.longrange.born (its module docstring derives it) is

    H = H_radial + Q^T M Q + W^T Q + Q^T W.

Every piece lives on the term's pairs p = (i, j), i < j, with u_p the unit vector from i to j:

* H_radial: each pair's radial block h_p = a_p u u^T + b_p I (a = phi'' - phi'/r, b = phi'/r) at
  (i, i) and (j, j), and -h_p at (i, j) and (j, i);
* Q = dS/dx (N x 3n, row a the gradient of atom a's descreening sum): pair p adds q_i u to
  Q[i, j], -q_i u to Q[i, i], q_j u to Q[j, j] and -q_j u to Q[j, i] (q_i = I'_ij, q_j = I'_ji), so
  (Q X)_i += q_i s_p and (Q X)_j += q_j s_p with s_p = u . (x_j - x_i);
* W (N x 3n) the same with the scalars w_i, w_j (b_i' G_{r B_i}, b_j' G_{r B_j});
* M (N x N) symmetric: m_p at (i, j) and (j, i), and a diagonal (N,).

So the part is ``pairs`` (P, 2), ``u`` (P, 3) and ``scalars`` (P, 7) = (a, b, q_i, q_j, w_i, w_j, m)
and M's diagonal (N,): 80 bytes a pair, where a 3 x 3 block per pair and dense (N, 3n) factors
would be 9 n^2 + 6 N n numbers. Its matvec is three compiled passes over the pairs (z = Q X and
W X; y = M z + W X; then H_radial X + Q^T y + W^T z), O(P m) for m vectors, about a force
evaluation; nothing N x N x 3 x 3 is made except by ``dense()``. ``diagonal()`` builds Q and W
on blocks of columns and multiplies by M as a matrix (O(N^2 n), BLAS). Every scalar came from AD
(mdjac.longrange.born); here is only algebra. The part follows the protocol of
mdjac.long_range_jacobian (n, dtype, diagonal, matvec, dense, select, kind, recipe); J = -H.

A file stores these arrays per frame (docs/h5md.md: ``force_jacobian/born``), and
:meth:`BornJacobian.from_stored` rebuilds the part from them: the scalars cannot be recomputed
from positions without the term's AD, unlike the Ewald and PME parts' factors.
"""
import numba
import numpy as np

from .errors import InputError
from .longrange.kinds import BORN_KIND

#: the columns of ``scalars``: the radial block's a and b, Q's q_i and q_j, W's w_i and w_j, M's m_ij
SCALARS = ("a", "b", "q_i", "q_j", "w_i", "w_j", "m")
#: atoms per block of columns in diagonal() and dense()
COLUMN_BLOCK = 128
#: M is multiplied as a dense (N, N) array up to this many atoms when its pairs are a quarter of all or more, else
#: as a sparse matrix (a cutoff's)
DENSE_M_ATOMS = 8192


@numba.njit(cache=True, nogil=True)
def _gather(pairs, u, scalars, x, z, wx):
    """z += Q X and wx += W X, x (N, 3, m), z and wx (N, m): pair p adds (q_i, q_j) s and (w_i, w_j) s
    to atoms i and j, s = u . (x_j - x_i)."""
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        u0, u1, u2 = u[p, 0], u[p, 1], u[p, 2]
        qi, qj, wi, wj = scalars[p, 2], scalars[p, 3], scalars[p, 4], scalars[p, 5]
        for c in range(x.shape[2]):
            s = u0 * (x[j, 0, c] - x[i, 0, c]) + u1 * (x[j, 1, c] - x[i, 1, c]) + u2 * (x[j, 2, c] - x[i, 2, c])
            z[i, c] += qi * s
            z[j, c] += qj * s
            wx[i, c] += wi * s
            wx[j, c] += wj * s


@numba.njit(cache=True, nogil=True)
def _couple(pairs, scalars, z, y):
    """y += (M - diag M) z for z, y (N, m)."""
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        m = scalars[p, 6]
        for c in range(z.shape[1]):
            y[i, c] += m * z[j, c]
            y[j, c] += m * z[i, c]


@numba.njit(cache=True, nogil=True)
def _scatter(pairs, u, scalars, x, y, z, out):
    """out += H_radial X + Q^T y + W^T z, x and out (N, 3, m), y and z (N, m): pair p adds g to atom i and
    -g to atom j, g = h_p (x_i - x_j) - (q_i y_i + q_j y_j + w_i z_i + w_j z_j) u."""
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        u0, u1, u2 = u[p, 0], u[p, 1], u[p, 2]
        a, b, qi, qj, wi, wj = scalars[p, 0], scalars[p, 1], scalars[p, 2], scalars[p, 3], scalars[p, 4], scalars[p, 5]
        for c in range(x.shape[2]):
            d0, d1, d2 = x[i, 0, c] - x[j, 0, c], x[i, 1, c] - x[j, 1, c], x[i, 2, c] - x[j, 2, c]
            t = a * (u0 * d0 + u1 * d1 + u2 * d2) - (qi * y[i, c] + qj * y[j, c] + wi * z[i, c] + wj * z[j, c])
            g0, g1, g2 = t * u0 + b * d0, t * u1 + b * d1, t * u2 + b * d2
            out[i, 0, c] += g0
            out[i, 1, c] += g1
            out[i, 2, c] += g2
            out[j, 0, c] -= g0
            out[j, 1, c] -= g1
            out[j, 2, c] -= g2


@numba.njit(cache=True, nogil=True)
def _columns(pairs, u, scalars, column, q, w, radial):
    """Q and W on a block of columns: q, w (N, B, 3) += Q[:, k] and W[:, k] for the atoms k with
    column[k] >= 0 (their place in the block, -1 elsewhere); radial (B, 3, 3) += H_radial's diagonal blocks."""
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        ci, cj = column[i], column[j]
        if ci < 0 and cj < 0:
            continue
        a, b, qi, qj, wi, wj = scalars[p, 0], scalars[p, 1], scalars[p, 2], scalars[p, 3], scalars[p, 4], scalars[p, 5]
        for e in range(3):
            ue = u[p, e]
            if cj >= 0:
                q[i, cj, e] += qi * ue
                q[j, cj, e] += qj * ue
                w[i, cj, e] += wi * ue
                w[j, cj, e] += wj * ue
            if ci >= 0:
                q[i, ci, e] -= qi * ue
                q[j, ci, e] -= qj * ue
                w[i, ci, e] -= wi * ue
                w[j, ci, e] -= wj * ue
            for f in range(3):
                h = a * ue * u[p, f] + (b if e == f else 0.0)
                if ci >= 0:
                    radial[ci, e, f] += h
                if cj >= 0:
                    radial[cj, e, f] += h


@numba.njit(cache=True, nogil=True)
def _add_radial(pairs, u, scalars, local, weights, sign, a):
    """a (n, 3, n, 3) += sign * w w^T * (-H_radial) on the kept atoms (local[k] their place, -1 elsewhere),
    weights (3n,)."""
    for p in range(pairs.shape[0]):
        li, lj = local[pairs[p, 0]], local[pairs[p, 1]]
        if li < 0 and lj < 0:
            continue
        ra, rb = scalars[p, 0], scalars[p, 1]
        for e in range(3):
            for f in range(3):
                h = sign * (ra * u[p, e] * u[p, f] + (rb if e == f else 0.0))
                if li >= 0:
                    a[li, e, li, f] -= weights[3 * li + e] * h * weights[3 * li + f]
                if lj >= 0:
                    a[lj, e, lj, f] -= weights[3 * lj + e] * h * weights[3 * lj + f]
                if li >= 0 and lj >= 0:
                    a[li, e, lj, f] += weights[3 * li + e] * h * weights[3 * lj + f]
                    a[lj, e, li, f] += weights[3 * lj + e] * h * weights[3 * li + f]


class BornJacobian:
    """The GB force Jacobian on n atoms (module docstring), of a term over N atoms.

    Parameters
    ----------
    pairs : (P, 2) int, i < j, over the N atoms
    u : (P, 3) float64, unit vectors from i to j
    scalars : (P, 7) float64, columns :data:`SCALARS` (a, b in kJ mol^-1 nm^-2; q in nm^-2; w in
        kJ mol^-1 nm^-2 per nm^-1 of S; m in kJ mol^-1 nm^2 per nm^-2 of S^2: the units of S, nm^-1, cancel)
    m_diagonal : (N,) float64, M's diagonal
    where : None (all N atoms, in order) or (n,) int, the atoms kept (rows and columns)
    dtype : the compute dtype the scalars came from
    """

    kind = BORN_KIND

    def __init__(self, pairs, u, scalars, m_diagonal, where=None, dtype=np.float64):
        self.pairs = np.ascontiguousarray(pairs, dtype=np.int64 if len(m_diagonal) >= 2 ** 31 else np.int32).reshape(-1, 2)
        self.u = np.ascontiguousarray(u, dtype=np.float64).reshape(-1, 3)
        self.scalars = np.ascontiguousarray(scalars, dtype=np.float64).reshape(-1, len(SCALARS))
        self.m_diagonal = np.ascontiguousarray(m_diagonal, dtype=np.float64).reshape(-1)
        if not len(self.pairs) == len(self.u) == len(self.scalars):
            raise InputError(f"a generalized-Born part needs one unit vector and {len(SCALARS)} scalars per pair "
                             f"({len(self.pairs)} pairs, {len(self.u)} vectors, {len(self.scalars)} rows)")
        self.where = None if where is None else np.asarray(where, dtype=np.int64).reshape(-1)
        self.dtype = np.dtype(dtype)

    @classmethod
    def from_pairs(cls, pairs, u, r, dphi, d2phi, q, w, m, m_diagonal, dtype=np.float64):
        """The part from the pairs' derivatives: pairs (P, 2), u (P, 3), r (P,) nm, phi' (P,) kJ mol^-1 nm^-1,
        phi'' (P,) kJ mol^-1 nm^-2, q (P, 2) = (I'_ij, I'_ji), w (P, 2) = (w_i, w_j), m (P,), m_diagonal (N,)."""
        scalars = np.empty((len(pairs), len(SCALARS)))
        np.divide(dphi, r, out=scalars[:, 1])
        np.subtract(d2phi, scalars[:, 1], out=scalars[:, 0])
        scalars[:, 2:4], scalars[:, 4:6], scalars[:, 6] = q, w, m
        return cls(pairs, u, scalars, m_diagonal, dtype=dtype)

    @property
    def n_atoms(self):
        """N, the atoms of the term."""
        return len(self.m_diagonal)

    @property
    def n(self):
        return self.n_atoms if self.where is None else len(self.where)

    @property
    def nbytes(self):
        """Bytes of the arrays held."""
        return self.pairs.nbytes + self.u.nbytes + self.scalars.nbytes + self.m_diagonal.nbytes

    def __repr__(self):
        return f"BornJacobian(n={self.n}, N={self.n_atoms}, pairs={len(self.pairs)})"

    def _full(self, X):
        """(N, 3, m) float64 of X (n, 3, m) on the kept atoms (zeros elsewhere)."""
        if self.where is None:
            return np.ascontiguousarray(X)
        full = np.zeros((self.n_atoms,) + X.shape[1:])
        full[self.where] = X
        return full

    def matvec(self, V):
        """J V for V (n, 3), (3n,) or (3n, m): the same shape, float64 (three passes over the pairs)."""
        V = np.asarray(V, dtype=np.float64)
        x = self._full(V.reshape(self.n, 3, -1))
        m = x.shape[2]
        z, wx = np.zeros((self.n_atoms, m)), np.zeros((self.n_atoms, m))
        _gather(self.pairs, self.u, self.scalars, x, z, wx)
        y = self.m_diagonal[:, None] * z + wx
        del wx
        _couple(self.pairs, self.scalars, z, y)
        out = np.zeros_like(x)
        _scatter(self.pairs, self.u, self.scalars, x, y, z, out)
        if self.where is not None:
            out = out[self.where]
        return np.negative(out, out=out).reshape(V.shape)

    def _m_matrix(self):
        """M as a dense (N, N) array, or a scipy.sparse CSR matrix (above :data:`DENSE_M_ATOMS` atoms, or few pairs)."""
        n, i, j, m = self.n_atoms, self.pairs[:, 0], self.pairs[:, 1], self.scalars[:, 6]
        if n <= DENSE_M_ATOMS and 8 * len(self.pairs) >= n * n:       # most pairs (no cutoff): dense
            out = np.zeros((n, n))
            out[i, j] = m
            out[j, i] = m
            out[np.arange(n), np.arange(n)] = self.m_diagonal
            return out
        import scipy.sparse as sp
        rows = np.concatenate([i, j, np.arange(n)])
        cols = np.concatenate([j, i, np.arange(n)])
        return sp.csr_matrix((np.concatenate([m, m, self.m_diagonal]), (rows, cols)), shape=(n, n))

    def diagonal(self):
        """(n, 3, 3) float64 diagonal blocks of J: H_radial's, plus sum_ab M_ab Q_ak Q_bk^T + W_ak Q_ak^T +
        Q_ak W_ak^T over blocks of :data:`COLUMN_BLOCK` columns (O(N^2 n))."""
        kept = self._kept()
        M = self._m_matrix()
        out = np.empty((len(kept), 3, 3))
        column = np.full(self.n_atoms, -1, dtype=np.int64)
        for start in range(0, len(kept), COLUMN_BLOCK):
            block = kept[start:start + COLUMN_BLOCK]
            size = len(block)
            column[block] = np.arange(size)
            q, w = np.zeros((self.n_atoms, size, 3)), np.zeros((self.n_atoms, size, 3))
            radial = np.zeros((size, 3, 3))
            _columns(self.pairs, self.u, self.scalars, column, q, w, radial)
            column[block] = -1
            mq = (M @ q.reshape(self.n_atoms, -1)).reshape(q.shape)
            cross = np.einsum("Nka,Nkb->kab", w, q)
            out[start:start + size] = radial + np.einsum("Nka,Nkb->kab", q, mq) + cross + cross.transpose(0, 2, 1)
        return np.negative(out, out=out)

    def _kept(self):
        return np.arange(self.n_atoms) if self.where is None else self.where

    def add_dense(self, a, weights=None, sign=1.0):
        """a (3n, 3n) float64, C-contiguous, += sign * diag(weights) J diag(weights) (weights (3n,), default
        ones), in place: H_radial pair by pair, then the rank-2N part T + T^T, T = Q^T (M Q / 2 + W), by BLAS
        (M Q, then one triangle of T + T^T by syr2k; Q and W built dense on the kept atoms, (N, 3n) each,
        and one (3n, 3n) array for the triangle)."""
        from scipy.linalg import blas
        kept, n = self._kept(), self.n
        weights = np.ones(3 * n) if weights is None else np.asarray(weights, dtype=np.float64).reshape(3 * n)
        if a.shape != (3 * n, 3 * n) or a.dtype != np.float64 or not a.flags.c_contiguous:
            raise InputError(f"add_dense needs a C-contiguous float64 ({3 * n}, {3 * n}) array")
        local = np.full(self.n_atoms, -1, dtype=np.int64)
        local[kept] = np.arange(n)
        _add_radial(self.pairs, self.u, self.scalars, local, weights, float(sign), a.reshape(n, 3, n, 3))
        q, w = np.zeros((self.n_atoms, n, 3)), np.zeros((self.n_atoms, n, 3))
        _columns(self.pairs, self.u, self.scalars, local, q, w, np.zeros((n, 3, 3)))
        q, w = q.reshape(self.n_atoms, 3 * n), w.reshape(self.n_atoms, 3 * n)
        q *= weights
        w *= weights
        x = self._m_matrix() @ q
        x *= 0.5
        x += w
        del w
        lower = blas.dsyr2k(1.0, q, x, trans=1, lower=0).T     # C-ordered: its lower triangle that of T + T^T (3n, 3n)
        del q, x
        dim = 3 * n
        for r0 in range(0, dim, 3 * COLUMN_BLOCK):             # a += -sign (T + T^T), rows of a block at a time
            r1 = min(dim, r0 + 3 * COLUMN_BLOCK)
            rows = np.tril(lower[r0:r1], k=r0 - 1) + np.triu(lower[:, r0:r1].T, k=r0)
            a[r0:r1] -= sign * rows
        return a

    def dense(self):
        """(n, 3, n, 3) float64 (:meth:`add_dense` into zeros)."""
        out = np.zeros((3 * self.n, 3 * self.n))
        return self.add_dense(out).reshape(self.n, 3, self.n, 3)

    def select(self, where):
        """The part on local atoms ``where`` (m,) int: their rows and columns (the arrays shared)."""
        where = np.asarray(where, dtype=np.int64).reshape(-1)
        kept = where if self.where is None else self.where[where]
        return BornJacobian(self.pairs, self.u, self.scalars, self.m_diagonal, kept, self.dtype)

    def recipe(self):
        """(kind, the N atoms' count): what a file stores once; the arrays are stored per frame (:meth:`stored`)."""
        return self.kind, self.n_atoms

    def stored(self):
        """The arrays a file stores per frame: dict of pairs (P, 2) int32, u (P, 3), scalars (P, 7), m_diagonal (N,)
        and where (n,) int64 (the kept atoms among the N)."""
        kept = np.arange(self.n_atoms) if self.where is None else self.where
        return dict(pairs=self.pairs, u=self.u, scalars=self.scalars, m_diagonal=self.m_diagonal, where=kept)

    @classmethod
    def from_stored(cls, arrays, dtype=np.float64):
        """The part from :meth:`stored`'s arrays (a dict), as a reader has them."""
        where = np.asarray(arrays["where"], dtype=np.int64)
        full = len(where) == len(arrays["m_diagonal"]) and np.array_equal(where, np.arange(len(where)))
        return cls(arrays["pairs"], arrays["u"], arrays["scalars"], arrays["m_diagonal"], None if full else where, dtype)
