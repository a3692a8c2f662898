r"""Smooth particle-mesh Ewald exactly as OpenMM computes it (NonbondedForce.PME), and its exact Jacobian.

The energy of point charges q_i (e) in a periodic box splits as for the Ewald sum (mdjac.longrange.ewald):

    E = E_dir + E_excl + E_rec + E_self + E_net,

with the same direct space, exclusion and exception corrections, self term and net-charge
(neutralising plasma) term, at OpenMM's alpha; only the reciprocal part differs: the charges are
spread on a grid with B-splines of order 5 and E_rec = 1/2 sum_{m != 0} eterm(m) |FFT(Q)(m)|^2 with
OpenMM's influence function and B-spline moduli (mdjac.longrange.pme_grid has the conventions, exactly
those of ReferencePME.cpp). Alpha and the grid come from the tolerance as OpenMM chooses them, or
from the force's own PME parameters (:func:`mdjac.longrange.pme_grid.pme_parameters`).

Derivatives. Atom i enters E_rec only through its stencil weights w_id(k) = M_5(f_id + 4 - k), one
scalar function of each fraction f_id (mdjac.longrange.pme_grid). M_5' and M_5'' come from MindSpore's AD of
the spline's piecewise polynomial (:func:`mdjac.longrange.pme_grid.bspline_piece`), entry-wise through the kernel
(:func:`mdjac.kernel.elementwise_derivatives`, as for distances and Ewald phases); spreading,
the FFT pair and gathering are linear bookkeeping (mdjac.longrange.pme_grid, numba and scipy.fft):

    dE_rec/dr_i = q_i G sum_g D_i(g) psi(g),        D_i = d theta_i / du,  psi = Phi * Q,  G = du/dr^T,

and the Hessian is the block-diagonal curvature q_i G [sum_g D2_i psi] G^T
(:meth:`PMEReciprocal.hessian_diagonal`) plus the mesh operator of mdjac.pme_jacobian
(:meth:`PMEReciprocal.jacobian_part`). For the dense and colour strategies the reciprocal energy
is also stated whole in MindSpore (:meth:`PMEReciprocal.energy_function`, small grids).

Units: nm, e, kJ/mol.
"""
import numpy as np
from mindspore import ops

from ..errors import InputError
from ..pme_jacobian import PMEJacobian
from ..terms.base import ChargedLongRangeTerm
from . import pme_grid
from .pme_grid import bspline_piece
from .splines import spline_derivatives
from .ewald import OPENMM_COULOMB_CONSTANT, direct_space_terms

#: largest size (entries of the charge-assignment and kernel matrices) of the whole-energy function.
DENSE_ENTRIES = 1 << 26


# ----------------------------------------------------------------------------- the whole reciprocal energy in MindSpore
def mesh_energy(X, scale, offsets, coefficients, charges, assignment, kernel_matrix):
    """E_rec (C,) of copies X (C, N, 3) nm: 1/2 Q^T Phi Q with Q = charges spread by the B-spline stencils.

    scale: (3, 3) G; offsets: (N, 3) u - f at the frame (fixed grid cells, so f = X G - offsets);
    coefficients: (5, 5); charges: (N,); assignment: (N 125, grid points) 0/1 matrix of each stencil
    point's grid point; kernel_matrix: (grid points, grid points) Phi(g - g').
    """
    f = ops.matmul(X, scale) - offsets
    w = bspline_piece(f.expand_dims(-1), coefficients)                           # (C, N, 3, 5)
    theta = (w[:, :, 0, :, None, None] * w[:, :, 1, None, :, None] * w[:, :, 2, None, None, :]
             * charges[None, :, None, None, None])
    Q = ops.matmul(theta.reshape(X.shape[0], -1), assignment)                    # (C, grid points)
    return 0.5 * (Q * ops.matmul(Q, kernel_matrix)).sum(-1)


# ----------------------------------------------------------------------------- the term
class Mesh:
    """One frame on the mesh, all that the term's methods share.

    vectors (3, 3) box vectors nm; scale (3, 3) G; origins (N, 3) int and fractions (N, 3); the
    stencil weights w (N, 3, 5) float64 and their derivatives dw/du, d2w/du2 (N, 3, 5) by AD in the
    compute dtype; the charge grid Q and its potential psi = Phi * Q (nx, ny, nz) float64.
    """

    def __init__(self, positions, box, grid, charges, eterm, dtype):
        self.vectors, self.scale, self.origins, self.fractions, self.weights = pme_grid.frame_geometry(positions, box, grid)
        self.first, self.second = spline_derivatives(self.fractions, dtype)
        self.charge_grid = np.zeros(tuple(grid))
        pme_grid.spread(self.origins, pme_grid.stencil_factors((self.weights,), ((0, 0, 0),)), charges[:, None],
                        self.charge_grid)
        self.potential = pme_grid.convolve(self.charge_grid, pme_grid.half_spectrum(eterm))


class PMEReciprocal(ChargedLongRangeTerm):
    """The reciprocal part, self term and net-charge term of OpenMM's smooth PME: a long-range term of a Potential.

    charges: (N,) e. alpha (nm^-1) and grid (3,) ints; or ``tolerance`` with ``cutoff`` (nm) and
    ``box`` (3,) nm to choose them as OpenMM does (:func:`mdjac.longrange.pme_grid.pme_parameters`, with the
    grid rounding of ``platform``). coulomb_constant: kJ mol^-1 nm e^-2 (OpenMM's by default).
    The grid is fixed; the box is each frame's (NPT).

    Like mdjac.longrange.ewald.EwaldReciprocal, the Potential asks it for ``energy_and_forces(config)``,
    ``hessian_diagonal(config, atoms)`` (the curvature term), ``jacobian_part(config, atoms)``
    (an mdjac.pme_jacobian.PMEJacobian) and ``energy_function(config)`` (dense checks).
    """
    #: the class of its Jacobian part (LJ-PME's dispersion mesh has its own kind: mdjac.longrange.ljpme)
    part_class = PMEJacobian

    def __init__(self, charges, alpha=None, grid=None, tolerance=None, cutoff=None, box=None,
                 coulomb_constant=OPENMM_COULOMB_CONSTANT, platform="Reference"):
        charges = self.finite_charges(charges)
        if tolerance is not None:
            if alpha is not None or grid is not None:
                raise InputError("give either a PME error tolerance (with cutoff and box) or alpha and grid, not both")
            alpha, grid = pme_grid.pme_parameters(tolerance, cutoff, box, platform=platform)
        if not alpha or grid is None:
            raise InputError("PME needs alpha (nm^-1) and a grid (3 sizes), or tolerance, cutoff and box")
        alpha, self.grid = pme_grid.pme_parameters(None, None, None, alpha=alpha, grid=grid)
        super().__init__(charges, alpha, coulomb_constant)
        self._eterm = (None, None)
        self._mesh = (None, None)

    def __repr__(self):
        return f"PMEReciprocal(alpha={self.alpha:.6g}, grid={self.grid.tolist()})"

    def influence(self, box):
        """eterm (nx, ny, nz) of a box (3,) nm (the last box's kept): :meth:`influence_of` its vectors."""
        key = np.asarray(box, dtype=np.float64).tobytes()
        if self._eterm[0] != key:
            self._eterm = (key, self.influence_of(pme_grid.box_vectors(box)))
        return self._eterm[1]

    def influence_of(self, vectors):
        """eterm (nx, ny, nz) kJ mol^-1 e^-2 of box vectors (3, 3) nm: OpenMM's Coulomb influence function."""
        return pme_grid.influence_function(self.grid, vectors, self.alpha, self.coulomb_constant)

    def mesh(self, config):
        """The :class:`Mesh` of a configuration (the last one's kept: the Potential asks for the
        curvature and the operator part of one frame in turn)."""
        if config.box is None:
            raise InputError("PME needs a periodic box: give the box edges in nm")
        if self._mesh[0] is not config:
            self._mesh = (config, Mesh(config.positions, config.box, self.grid, self.charges, self.influence(config.box),
                                       config.dtype))
        return self._mesh[1]

    def energy_and_forces(self, config):
        """(E_rec + E_self + E_net kJ/mol, forces (N, 3) kJ mol^-1 nm^-1); dw/du by AD."""
        mesh = self.mesh(config)
        gathered = np.empty((self.n_atoms, 3))
        factors = pme_grid.stencil_factors((mesh.weights, mesh.first), pme_grid.GRADIENT_ORDERS)
        pme_grid.gather(mesh.origins, factors, mesh.potential, gathered)
        energy = 0.5 * float(np.vdot(mesh.charge_grid, mesh.potential)) + self.constant_energy(config.box)
        return energy, -self.charges[:, None] * (gathered @ mesh.scale.T)

    def hessian_diagonal(self, config, atoms):
        """The curvature term (n, 3, 3) kJ mol^-1 nm^-2 for atoms (n,): q_i G [sum_g D2_i(g) psi(g)] G^T."""
        mesh = self.mesh(config)
        atoms = np.asarray(atoms, dtype=np.int64)
        entries = np.empty((len(atoms), len(pme_grid.CURVATURE_ORDERS)))
        factors = pme_grid.stencil_factors((mesh.weights, mesh.first, mesh.second), pme_grid.CURVATURE_ORDERS, atoms)
        pme_grid.gather(mesh.origins[atoms], factors, mesh.potential, entries)
        G = mesh.scale
        return self.charges[atoms][:, None, None] * (G @ pme_grid.curvature_blocks(entries) @ G.T)

    def jacobian_part(self, config, atoms):
        """The mesh operator part of the force Jacobian on atoms (n,) (global indices), as a :attr:`part_class`."""
        mesh = self.mesh(config)
        atoms = np.asarray(atoms, dtype=np.int64)
        return self.part_class(config.positions[atoms], self.charges[atoms], self.grid, self.alpha, config.box,
                               self.coulomb_constant, config.dtype, derivatives=mesh.first[atoms],
                               eterm=self.influence(config.box))

    def energy_function(self, config):
        """(energy, args): ``energy(X, *args)`` maps copies X (C, N, 3) to (C,) reciprocal energies (dense checks).

        The grid cells are those of this frame (exact for positions near it). Stated with a dense
        charge-assignment matrix and a dense kernel matrix: small systems and grids only.
        """
        mesh = self.mesh(config)
        points = int(np.prod(self.grid))
        stencil = pme_grid.ORDER ** 3
        if self.n_atoms * stencil * points + points * points > DENSE_ENTRIES:
            raise InputError(f"the whole PME energy as one function is for small systems (here {self.n_atoms} atoms on "
                             f"{points} grid points): use the default strategy 'replicate'")
        k = np.arange(pme_grid.ORDER)
        cx = (mesh.origins[:, 0, None] + k) % self.grid[0]
        cy = (mesh.origins[:, 1, None] + k) % self.grid[1]
        cz = (mesh.origins[:, 2, None] + k) % self.grid[2]
        cells = ((cx[:, :, None, None] * self.grid[1] + cy[:, None, :, None]) * self.grid[2] + cz[:, None, None, :]).reshape(-1)
        assignment = np.zeros((self.n_atoms * stencil, points))
        assignment[np.arange(len(cells)), cells] = 1.0
        phi = pme_grid.real_space_kernel(self.influence(config.box))
        g = np.stack(np.unravel_index(np.arange(points), tuple(self.grid)), axis=1)
        diff = (g[:, None, :] - g[None, :, :]) % self.grid
        kernel_matrix = phi[diff[..., 0], diff[..., 1], diff[..., 2]]
        offsets = config.positions @ mesh.scale - mesh.fractions
        dtype = config.dtype
        return mesh_energy, tuple(a.astype(dtype) for a in (mesh.scale, offsets, pme_grid.COLUMN_COEFFICIENTS,
                                                           self.charges, assignment, kernel_matrix))


# ----------------------------------------------------------------------------- the whole sum as terms
def pme_terms(charges, cutoff, box, exclusions=None, exceptions=None, tolerance=5e-4, alpha=None, grid=None,
              coulomb_constant=OPENMM_COULOMB_CONSTANT, platform="Reference"):
    """The terms of OpenMM's PME (NonbondedForce.PME) for point charges.

    charges: (N,) e; cutoff: nm; box: (3,) nm (for the parameter choice). exclusions, exceptions:
    as for mdjac.longrange.ewald.ewald_terms. tolerance, or alpha (nm^-1) and grid (3,): see
    :func:`mdjac.longrange.pme_grid.pme_parameters`. Returns the direct-space terms of
    :func:`mdjac.longrange.ewald.direct_space_terms` and a :class:`PMEReciprocal`.
    """
    charges = np.asarray(charges, dtype=np.float64).reshape(-1)
    if (alpha is None) != (grid is None):
        raise InputError("give both alpha (nm^-1) and the grid, or neither (then the tolerance chooses them)")
    alpha, grid = pme_grid.pme_parameters(tolerance, cutoff, box, alpha=alpha, grid=grid, platform=platform)
    return (direct_space_terms(charges, cutoff, alpha, exclusions, exceptions, coulomb_constant)
            + [PMEReciprocal(charges, alpha=alpha, grid=grid, coulomb_constant=coulomb_constant)])
