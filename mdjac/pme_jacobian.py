r"""The long-range part of a PME force Jacobian: an exact operator held as numpy data.

With the notation of mdjac.pme_grid (theta_i the tensor-product B-spline stencil of atom i, Phi
the real-space kernel of the influence function, psi = Phi * Q the grid potential, ``scale`` the
(3, 3) matrix G with du/dr = G^T), the Hessian of the reciprocal energy is

    H_ij = q_i q_j G [sum_{g, g'} D_i(g) Phi(g - g') D_j(g')^T] G^T  +  delta_ij q_i G [sum_g D2_i(g) psi(g)] G^T,

D_i(g) = d theta_i(g) / du (3,) and D2_i(g) = d2 theta_i(g) / du du^T (3, 3). The second term is
block diagonal and goes with the short-range blocks (mdjac.pme.PMEReciprocal.hessian_diagonal).
The first is dense (every pair of atoms) but a product of sparse stencils and one convolution:
:class:`PMEJacobian` holds it, J_lr = -(first term), as what rebuilds it without MindSpore:

* per atom: its grid origin (n, 3) int, its stencil weights w (n, 3, 5) and their derivatives
  dw/du (n, 3, 5) (from MindSpore's AD, mdjac.pme.spline_derivatives), its charge (n,) e;
* the mesh's recipe: grid (3,), box edges (3,) nm, alpha nm^-1, Coulomb constant, from which the
  influence function is rebuilt exactly (mdjac.pme_grid.influence_function).

Its matvec is one spread (rho(g) = sum_j q_j D_j(g) . G^T v_j), one real FFT pair (phi = Phi * rho)
and one gather ((H v)_i = q_i G sum_g D_i(g) phi(g)); its diagonal blocks are each atom's
interaction with itself through the grid, contracted over the stencil's 9 x 9 x 9 offsets axis by
axis (mdjac.pme_grid.self_blocks).
"""
import numpy as np

from . import pme_grid
from .errors import InputError
from .space import check_box


class PMEJacobian:
    """The mesh part of a PME force Jacobian on n atoms, -q_i q_j G D_i^T Phi D_j G^T (module docstring).

    origins: (n, 3) int grid origins; weights, derivatives: (n, 3, 5) stencil weights and their
    derivatives in the scaled coordinate u; charges: (n,) e; grid: (3,) int; box: (3,) nm;
    alpha: nm^-1; coulomb_constant: kJ mol^-1 nm e^-2; dtype: the compute dtype it was made in
    (the stencils are kept in it; grids and sums run in float64).
    """

    def __init__(self, origins, weights, derivatives, charges, grid, box, alpha, coulomb_constant, dtype=np.float64):
        self.origins = np.ascontiguousarray(origins, dtype=np.int64).reshape(-1, 3)
        n = len(self.origins)
        self.weights = np.ascontiguousarray(weights).reshape(n, 3, pme_grid.ORDER)
        self.derivatives = np.ascontiguousarray(derivatives).reshape(n, 3, pme_grid.ORDER)
        self.charges = np.asarray(charges, dtype=np.float64).reshape(-1)
        if len(self.charges) != n:
            raise InputError(f"the PME part needs one charge per atom ({len(self.charges)} vs {n})")
        self.grid = np.asarray(grid, dtype=np.int64).reshape(3)
        self.box = check_box(box)
        if self.box is None:
            raise InputError("the PME part needs the periodic box (3 edges in nm)")
        self.alpha, self.coulomb_constant = float(alpha), float(coulomb_constant)
        self.dtype = np.dtype(dtype)
        vectors = pme_grid.box_vectors(self.box)
        self.scale = pme_grid.coordinate_scale(pme_grid.reciprocal_box_vectors(vectors), self.grid)
        self.eterm = pme_grid.influence_function(self.grid, vectors, self.alpha, self.coulomb_constant)
        self.spectrum = pme_grid.half_spectrum(self.eterm)
        self.factors = pme_grid.stencil_factors((self.weights, self.derivatives), pme_grid.GRADIENT_ORDERS)

    @property
    def n(self):
        return len(self.origins)

    @property
    def nbytes(self):
        """Bytes of the stored data: origins, stencils, charges and the recipe."""
        return self.origins.nbytes + self.weights.nbytes + self.derivatives.nbytes + self.charges.nbytes + 8 * 9

    def __repr__(self):
        return f"PMEJacobian(n={self.n}, grid={self.grid.tolist()}, dtype={self.dtype})"

    def diagonal(self):
        """(n, 3, 3) diagonal blocks: -q_i^2 G [sum_{g, g'} D_i(g) Phi(g - g') D_i(g')^T] G^T."""
        kernel = pme_grid.stencil_kernel(pme_grid.real_space_kernel(self.eterm))
        blocks = np.empty((self.n, 3, 3))
        pme_grid.self_blocks(self.factors, kernel, blocks)
        G = self.scale
        return -(self.charges ** 2)[:, None, None] * (G @ blocks @ G.T)

    def matvec(self, v):
        """J_lr v for v (n, 3) or (3n,) (or (3n, m) for m vectors at once); same shape back, float64."""
        v = np.asarray(v, dtype=np.float64)
        shape = v.shape
        V = v.reshape(self.n, 3, -1)
        m = V.shape[2]
        coefficients = np.einsum("iam,ad->imd", V, self.scale) * self.charges[:, None, None]   # q_j G^T v_j, (n, m, 3)
        rho = np.zeros((m,) + tuple(self.grid))
        for c in range(m):
            pme_grid.spread(self.origins, self.factors, np.ascontiguousarray(coefficients[:, c]), rho[c])
        phi = pme_grid.convolve(rho, self.spectrum)
        out = np.empty((self.n, 3, m))
        gathered = np.empty((self.n, 3))
        for c in range(m):
            pme_grid.gather(self.origins, self.factors, np.ascontiguousarray(phi[c]), gathered)
            out[:, :, c] = -self.charges[:, None] * (gathered @ self.scale.T)
        return out.reshape(shape)

    def dense(self):
        """(n, 3, n, 3) dense part (3n matvecs; small n)."""
        return self.matvec(np.eye(3 * self.n)).reshape(self.n, 3, self.n, 3)

    def select(self, where):
        """The part on a subset: rows and columns of local atoms ``where`` (m,) int."""
        where = np.asarray(where, dtype=np.int64)
        return PMEJacobian(self.origins[where], self.weights[where], self.derivatives[where], self.charges[where],
                           self.grid, self.box, self.alpha, self.coulomb_constant, self.dtype)
