r"""A long-range Jacobian part seen through virtual sites: S^T J_all S over the real atoms.

With virtual sites (mdjac.sites) the energy is U(x) = U'(X(x)), x the real atoms and X(x) every
particle's position (each site placed from its parents). A long-range term (Ewald, PME) states its
Jacobian part J_all over all N particles; over the real atoms it is

    J = S^T J_all S,        S = dX/dx  (3N x 3n: the identity on each real atom, dy_s/dx_p on a site's parents),

plus the short-range pieces that mdjac.sites.VirtualSites.long_range_hessian hands to the blocks
(the term's block-diagonal curvature through S, and the placement's own curvature for the nonlinear
kinds). S comes from AD (mdjac.sites.VirtualSites.chain) and is held here as its links; J_all is
the term's own part (mdjac.pme_jacobian.PMEJacobian or mdjac.long_range_jacobian.ReciprocalJacobian).

:class:`SiteMappedPart` follows the protocol of a long-range part (mdjac.long_range_jacobian). A
matvec is S v, one product with J_all, S^T. A diagonal block of real atom p sums, over the
particles T(p) that move with p (p and the sites it is a parent of), S_ap^T J_ab S_bp: J_all's
diagonal blocks and its blocks between a site and its parents (``pair_blocks``). An H5MD file
stores it as J_all's recipe over every particle and the site map beside it: S's links once, their
blocks and the sites' positions with each frame (docs/h5md.md, mdjac.io.h5md_layout.LongRangeRecipe);
the reader rebuilds J_all and makes this part of it without MindSpore.

Numpy and scipy only.
"""
import numpy as np
import scipy.sparse

from .longrange.kinds import SITE_MAPPED_KIND


class SiteMappedPart:
    """S^T J_all S on the real atoms ``columns`` (module docstring).

    inner: the long-range part over all N particles (``n`` = N, ``matvec``, ``diagonal``, ``pair_blocks``);
    links: (particle (L,), atom (L,), blocks (L, 3, 3)) the non-zero 3x3 blocks of S = dX/dx, particle
    rows and real-atom columns (mdjac.sites.VirtualSites.chain); columns: (n,) int64 the real atoms
    (global indices) whose rows and columns this part holds, ascending.
    """

    kind = SITE_MAPPED_KIND

    def __init__(self, inner, links, columns):
        self.inner, self.links = inner, links
        self.columns = np.asarray(columns, dtype=np.int64)
        particle, atom, blocks = links
        local = np.full(inner.n, -1, dtype=np.int64)
        local[self.columns] = np.arange(len(self.columns))
        keep = local[atom] >= 0
        p, c, b = particle[keep], local[atom[keep]], blocks[keep]
        self._particle, self._column, self._blocks = p, c, b
        rows = np.broadcast_to(3 * p[:, None, None] + np.arange(3)[None, :, None], b.shape)
        cols = np.broadcast_to(3 * c[:, None, None] + np.arange(3)[None, None, :], b.shape)
        self._S = scipy.sparse.csr_matrix((b.reshape(-1), (rows.reshape(-1), cols.reshape(-1))),
                                          shape=(3 * inner.n, 3 * len(self.columns)))

    @property
    def n(self):
        return len(self.columns)

    @property
    def dtype(self):
        return self.inner.dtype

    def __repr__(self):
        return f"SiteMappedPart(n={self.n}, of {self.inner!r})"

    def matvec(self, v):
        """J v = S^T J_all S v for v (n, 3), (3n,) or (3n, m); same shape back, float64."""
        v = np.asarray(v, dtype=np.float64)
        flat = v.reshape(3 * self.n, -1)
        return (self._S.T @ self.inner.matvec(self._S @ flat)).reshape(v.shape)

    def dense(self):
        """(n, 3, n, 3) dense part (3n matvecs; small n)."""
        return self.matvec(np.eye(3 * self.n)).reshape(self.n, 3, self.n, 3)

    def diagonal(self):
        """(n, 3, 3): sum over a, b in T(p) of S_ap^T J_ab S_bp (module docstring)."""
        order = np.argsort(self._column, kind="stable")
        column, particle, blocks = self._column[order], self._particle[order], self._blocks[order]
        start = np.searchsorted(column, column)
        count = np.bincount(column, minlength=self.n)[column]
        first, second = [], []
        for d in range(int(count.max(initial=0))):       # every pair of links of one column (a few per atom)
            ok = d < count
            first.append(np.flatnonzero(ok))
            second.append(start[ok] + d)
        first, second = np.concatenate(first), np.concatenate(second)
        a, b = particle[first], particle[second]
        J = np.empty((len(a), 3, 3))
        same = a == b
        if same.any():
            J[same] = self.inner.diagonal()[a[same]]
        if (~same).any():
            J[~same] = self.inner.pair_blocks(np.stack([a[~same], b[~same]], axis=1))
        terms = np.einsum("kai,kab,kbj->kij", blocks[first], J, blocks[second])
        out = np.zeros((self.n, 9))
        for e in range(9):
            out[:, e] = np.bincount(column[first], weights=terms.reshape(-1, 9)[:, e], minlength=self.n)
        return out.reshape(self.n, 3, 3)

    def select(self, where):
        """The part on a subset: rows and columns of local atoms ``where`` (m,) int."""
        return SiteMappedPart(self.inner, self.links, self.columns[np.asarray(where, dtype=np.int64)])
