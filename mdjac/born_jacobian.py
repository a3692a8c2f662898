"""Generalized Born's force Jacobian: a pairwise-radial part plus a factored rank-2N part (numpy only).

The GB Hessian of mdjac.longrange.born (its module docstring derives it) is

    H = H_radial + Q^T M Q + W^T Q + Q^T W,

H_radial the pairs' radial blocks h = a u u^T + b I (a = phi'' - phi'/r, b = phi'/r, u the unit
vector from i to j) at (i, i), (j, j) and, negated, at (i, j), (j, i), held as an (n, 3, n, 3)
array (every pair interacts without a cutoff, so its pattern is dense: 9 n^2 numbers, built in
O(n^2)); Q and W (N, n, 3) hold a 3n-vector per atom's Born radius (rows over all N atoms, columns
over the n kept atoms); M (N, N) symmetric. The rank-2N part is kept factored: its matvec costs
O(N n), about a force evaluation, where multiplying it out costs a matrix product (N x N x 3n),
done only by ``dense()`` and ``diagonal()``. Every scalar came from AD; here is only algebra. The
part follows the protocol of mdjac.long_range_jacobian (n, dtype, diagonal, matvec, dense,
select); J = -H.
"""
import numpy as np

from .errors import InputError

#: the kind tag of this part (mdjac.long_range_jacobian's protocol)
BORN_KIND = "generalized-born-1"


#: why a file cannot hold this part (yet); :attr:`mdjac.longrange.born.GeneralizedBorn.not_storable`
NOT_STORABLE = ("a generalized-Born (implicit solvent) Jacobian cannot be stored in an H5MD file yet: "
                "use it in memory (the API, mdjac modes)")


class BornJacobian:
    """The GB force Jacobian on n atoms (module docstring).

    Parameters
    ----------
    radial : (n, 3, n, 3) float64, H_radial (its diagonal blocks included)
    Q, W : (N, n, 3) float64, M : (N, N) float64 (module docstring)
    dtype : the compute dtype the factors came from
    """

    kind = BORN_KIND

    def __init__(self, radial, Q, W, M, dtype=np.float64):
        self.radial, self.Q, self.W, self.M = radial, Q, W, M
        self.dtype = np.dtype(dtype)

    @classmethod
    def from_pairs(cls, n, pairs, u, r, dphi, d2phi, Q, W, M, dtype=np.float64):
        """The part from the radial scalars of pairs (P, 2) int i < j over n atoms: unit vectors u (P, 3)
        from i to j, r (P,) nm, phi' (P,) kJ mol^-1 nm^-1 and phi'' (P,) kJ mol^-1 nm^-2; Q, W, M as the class."""
        b = dphi / r
        h = (d2phi - b)[:, None, None] * u[:, :, None] * u[:, None, :]
        h[:, [0, 1, 2], [0, 1, 2]] += b[:, None]
        i, j = pairs[:, 0], pairs[:, 1]
        diagonal = np.zeros((n, 9))
        for p in (i, j):
            for e in range(9):
                diagonal[:, e] += np.bincount(p, weights=h.reshape(-1, 9)[:, e], minlength=n)
        np.negative(h, out=h)
        radial = np.zeros((n, 3, n, 3))
        radial[i, :, j, :] = h
        radial[j, :, i, :] = h
        radial[np.arange(n), :, np.arange(n), :] = diagonal.reshape(n, 3, 3)
        return cls(radial, Q, W, M, dtype)

    @property
    def n(self):
        return self.Q.shape[1]

    def __repr__(self):
        return f"BornJacobian(n={self.n}, N={self.Q.shape[0]})"

    def recipe(self):
        raise InputError(NOT_STORABLE)

    def _flat(self):
        return self.Q.reshape(len(self.Q), -1), self.W.reshape(len(self.W), -1)

    def matvec(self, V):
        """J V for V (n, 3), (3n,) or (3n, m): the same shape, float64."""
        V = np.asarray(V, dtype=np.float64)
        X = V.reshape(3 * self.n, -1)
        Qf, Wf = self._flat()
        z, w = Qf @ X, Wf @ X
        out = self.radial.reshape(3 * self.n, 3 * self.n) @ X + Qf.T @ (self.M @ z + w) + Wf.T @ z
        return np.negative(out, out=out).reshape(V.shape)

    def dense(self):
        """(n, 3, n, 3) float64."""
        Qf, Wf = self._flat()
        low = Qf.T @ (0.5 * (self.M @ Qf) + Wf)     # + its transpose: Q^T M Q + Q^T W + W^T Q (M symmetric)
        low += low.T
        low += self.radial.reshape(low.shape)
        return np.negative(low, out=low).reshape(self.radial.shape)

    def diagonal(self):
        """(n, 3, 3) float64 diagonal blocks of J."""
        n = self.n
        MQ = (self.M @ self._flat()[0]).reshape(self.Q.shape)
        cross = np.einsum("Nka,Nkb->kab", self.W, self.Q)
        out = (self.radial[np.arange(n), :, np.arange(n), :] + np.einsum("Nka,Nkb->kab", self.Q, MQ)
               + cross + cross.transpose(0, 2, 1))
        return -out

    def select(self, where):
        """The part on local atoms ``where`` (m,) int: their rows and columns."""
        where = np.asarray(where, dtype=np.int64).reshape(-1)
        return BornJacobian(self.radial[where][:, :, where], self.Q[:, where], self.W[:, where], self.M, self.dtype)
