r"""The long-range part of a PME force Jacobian: an exact operator held as numpy data.

With the notation of mdjac.longrange.pme_grid (theta_i the tensor-product B-spline stencil of atom i, Phi
the real-space kernel of the influence function, psi = Phi * Q the grid potential, ``scale`` the
(3, 3) matrix G with du/dr = G^T), the Hessian of the reciprocal energy is

    H_ij = q_i q_j G [sum_{g, g'} D_i(g) Phi(g - g') D_j(g')^T] G^T  +  delta_ij q_i G [sum_g D2_i(g) psi(g)] G^T,

D_i(g) = d theta_i(g) / du (3,) and D2_i(g) = d2 theta_i(g) / du du^T (3, 3). The second term is
block diagonal and goes with the short-range blocks (mdjac.longrange.pme.PMEReciprocal.hessian_diagonal).
The first is dense (every pair of atoms) but a product of sparse stencils and one convolution:
:class:`PMEJacobian` holds it, J_lr = -(first term), as what rebuilds it without MindSpore:

* per atom: its position (n, 3) nm and charge (n,) e, from which its grid origin and stencil
  weights w (n, 3, 5) follow (mdjac.longrange.pme_grid, numpy); the weights' derivatives dw/du
  (n, 3, 5) come from MindSpore's AD (mdjac.longrange.splines.spline_derivatives): given by the term
  that made the part, or computed on first use through a hook that imports the kernel only then
  (as ReciprocalJacobian's factors, mdjac.long_range_jacobian), so reading a file needs no MindSpore;
* the mesh's recipe: grid (3,), alpha nm^-1, the box ((3,) edges or (3, 3) vectors nm), Coulomb constant, from which the
  influence function is rebuilt exactly (mdjac.longrange.pme_grid.influence_function).

It follows the protocol of a long-range part documented in mdjac.long_range_jacobian
(kind ``"pme-mesh-1"``, :meth:`PMEJacobian.recipe`). :class:`DispersionPMEJacobian` is the same operator on LJ-PME's
dispersion mesh (mdjac.longrange.ljpme: the dispersion coefficients as charges, the dispersion influence function;
kind ``"pme-dispersion-mesh-1"``).

Its matvec is one spread (rho(g) = sum_j q_j D_j(g) . G^T v_j), one real FFT pair (phi = Phi * rho)
and one gather ((H v)_i = q_i G sum_g D_i(g) phi(g)); for a block of m vectors (matmat), one spread of
all m columns onto m grids held column-last, one FFT pair batched over them and one gather
(mdjac.longrange.pme_grid.spread_columns, gather_columns), so each stencil is formed once per block.
Its diagonal blocks are each atom's interaction with itself through the grid, contracted over the
stencil's 9 x 9 x 9 offsets axis by axis (mdjac.longrange.pme_grid.self_blocks).
"""
import numpy as np

from .errors import InputError
from .longrange import pme_grid
from .longrange.kinds import DISPERSION_KIND, PME_KIND
from .space import check_box


class PMEJacobian:
    """The mesh part of a PME force Jacobian on n atoms, -q_i q_j G D_i^T Phi D_j G^T (module docstring).

    positions: (n, 3) nm; charges: (n,) e; grid: (3,) int; alpha: nm^-1; box: (3,) edges or (3, 3) vectors nm;
    coulomb_constant: kJ mol^-1 nm e^-2; dtype: the compute dtype (the stencils are kept in it;
    grids and sums run in float64). derivatives: None, or the stencil weights' derivatives dw/du
    (n, 3, 5) in dtype (by AD) if known; derivatives_of: None (mdjac.longrange.splines.spline_derivatives,
    imported on first use) or a function (fractions (n, 3), dtype) -> (dw/du, d2w/du2). eterm: None, or the
    influence function (grid,) kJ mol^-1 e^-2 of this box if known (mdjac.longrange.pme_grid.influence_function).
    """

    kind = PME_KIND

    def __init__(self, positions, charges, grid, alpha, box, coulomb_constant, dtype=np.float64, derivatives=None,
                 derivatives_of=None, eterm=None):
        self.positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        n = len(self.positions)
        self.charges = np.asarray(charges, dtype=np.float64).reshape(-1)
        if len(self.charges) != n:
            raise InputError(f"the PME part needs one charge per atom ({len(self.charges)} vs {n})")
        self.grid = np.asarray(grid, dtype=np.int64).reshape(3)
        self.box = check_box(box)
        if self.box is None:
            raise InputError("the PME part needs the periodic box (3 edges in nm)")
        self.alpha, self.coulomb_constant = float(alpha), float(coulomb_constant)
        self.dtype = np.dtype(dtype)
        vectors, self.scale, origins, self.fractions, weights = pme_grid.frame_geometry(self.positions, self.box, self.grid)
        self.origins = np.ascontiguousarray(origins, dtype=np.int64)
        self.weights = np.ascontiguousarray(weights.astype(self.dtype))
        self.eterm = self.influence(vectors) if eterm is None else eterm
        self.spectrum = pme_grid.half_spectrum(self.eterm)
        self.derivatives_of = derivatives_of
        self._derivatives = None if derivatives is None else np.ascontiguousarray(derivatives).reshape(n, 3, pme_grid.ORDER)
        self._factors = None

    def influence(self, vectors):
        """eterm (grid) kJ mol^-1 e^-2 of box vectors (3, 3) nm: OpenMM's Coulomb influence function."""
        return pme_grid.influence_function(self.grid, vectors, self.alpha, self.coulomb_constant)

    @property
    def n(self):
        return len(self.positions)

    @property
    def nbytes(self):
        """Bytes of the data that rebuilds this part besides the positions: charges and the recipe."""
        return self.charges.nbytes + 8 * 9

    def __repr__(self):
        return f"PMEJacobian(n={self.n}, grid={self.grid.tolist()}, dtype={self.dtype})"

    @property
    def derivatives(self):
        """(n, 3, 5) dw/du of the stencil weights in the compute dtype, by AD (computed on first use)."""
        if self._derivatives is None:
            derivatives_of = self.derivatives_of
            if derivatives_of is None:   # the AD kernel, imported only now: reading a file needs no MindSpore
                from .longrange.splines import spline_derivatives as derivatives_of
            self._derivatives = np.ascontiguousarray(derivatives_of(self.fractions, self.dtype)[0])
        return self._derivatives

    @property
    def factors(self):
        """The stencils' gradient factors (mdjac.longrange.pme_grid.stencil_factors), built on first use."""
        if self._factors is None:
            self._factors = pme_grid.stencil_factors((self.weights, self.derivatives), pme_grid.GRADIENT_ORDERS)
        return self._factors

    def diagonal(self):
        """(n, 3, 3) diagonal blocks: -q_i^2 G [sum_{g, g'} D_i(g) Phi(g - g') D_i(g')^T] G^T."""
        kernel = pme_grid.stencil_kernel(pme_grid.real_space_kernel(self.eterm))
        blocks = np.empty((self.n, 3, 3))
        pme_grid.self_blocks(self.factors, kernel, blocks)
        G = self.scale
        return -(self.charges ** 2)[:, None, None] * (G @ blocks @ G.T)

    def pair_blocks(self, pairs):
        """(P, 3, 3) blocks J_ab of atom pairs (a, b) (P, 2) local indices: -q_a q_b G [sum_{g, g'} D_a(g) Phi(g - g') D_b(g')^T] G^T
        (the diagonal's blocks for a = b; mdjac.site_jacobian needs those of a site and its parents)."""
        pairs = np.ascontiguousarray(pairs, dtype=np.int64).reshape(-1, 2)
        blocks = np.empty((len(pairs), 3, 3))
        pme_grid.pair_blocks(self.origins, self.factors, np.ascontiguousarray(pme_grid.real_space_kernel(self.eterm)),
                             pairs, blocks)
        G = self.scale
        return -(self.charges[pairs[:, 0]] * self.charges[pairs[:, 1]])[:, None, None] * (G @ blocks @ G.T)

    def matvec(self, v):
        """J_lr v for v (n, 3) or (3n,) (or (3n, m) for m vectors at once); same shape back, float64."""
        v = np.asarray(v, dtype=np.float64)
        shape = v.shape
        V = v.reshape(self.n, 3, -1)
        m = V.shape[2]
        coefficients = np.einsum("iam,ad->imd", V, self.scale) * self.charges[:, None, None]   # q_j G^T v_j, (n, m, 3)
        if m == 1:      # one vector: the single-grid loops (the column loop costs more than it saves for one)
            rho = np.zeros(tuple(self.grid))
            pme_grid.spread(self.origins, self.factors, np.ascontiguousarray(coefficients[:, 0]), rho)
            gathered = np.empty((self.n, 3))
            pme_grid.gather(self.origins, self.factors, pme_grid.convolve(rho, self.spectrum), gathered)
            gathered = gathered[:, None, :]
        else:           # a block: one spread of all columns, one batched FFT pair, one gather
            rho = np.zeros(tuple(self.grid) + (m,))
            pme_grid.spread_columns(self.origins, self.factors, np.ascontiguousarray(coefficients), rho)
            phi = pme_grid.convolve(rho, self.spectrum, axes=(0, 1, 2))
            gathered = np.empty((self.n, m, 3))
            pme_grid.gather_columns(self.origins, self.factors, np.ascontiguousarray(phi), gathered)
        out = -self.charges[:, None, None] * np.einsum("imd,ad->iam", gathered, self.scale)
        return out.reshape(shape)

    def dense(self):
        """(n, 3, n, 3) dense part (3n matvecs; small n)."""
        return self.matvec(np.eye(3 * self.n)).reshape(self.n, 3, self.n, 3)

    def select(self, where):
        """The part on a subset: rows and columns of local atoms ``where`` (m,) int."""
        where = np.asarray(where, dtype=np.int64)
        derivatives = None if self._derivatives is None else self._derivatives[where]
        return type(self)(self.positions[where], self.charges[where], self.grid, self.alpha, self.box,
                          self.coulomb_constant, self.dtype, derivatives, self.derivatives_of, self.eterm)

    def recipe(self):
        """(grid (3,) int64, alpha nm^-1, coulomb_constant kJ mol^-1 nm e^-2, charges (n,) e): what a file
        stores, besides each frame's positions and box, to rebuild this part."""
        return self.grid, self.alpha, self.coulomb_constant, self.charges


class DispersionPMEJacobian(PMEJacobian):
    """LJ-PME's dispersion mesh part on n atoms (mdjac.longrange.ljpme): :class:`PMEJacobian` with the dispersion
    coefficients c_i ((kJ/mol)^1/2 nm^3) as ``charges``, ``coulomb_constant`` 1 and OpenMM's dispersion influence
    function (m = 0 included; kJ mol^-1 nm^6 per c_i c_j)."""

    kind = DISPERSION_KIND

    def influence(self, vectors):
        """eterm (grid) of box vectors (3, 3) nm: OpenMM's dispersion influence function."""
        return pme_grid.dispersion_influence_function(self.grid, vectors, self.alpha)
