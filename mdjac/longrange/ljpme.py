r"""LJ-PME's dispersion mesh, exactly as OpenMM computes it (NonbondedForce.LJPME), and its exact Jacobian.

OpenMM's LJ-PME splits the dispersion -C6_ij / r^6 with geometric-mean coefficients C6_ij = c_i c_j,
c_i = 2 sigma_i^3 sqrt(eps_i) (kJ^1/2 mol^-1/2 nm^3; ReferenceLJCoulombIxn's 8 (sigma_i/2)^3 (2 sqrt(eps_i))),
as the Ewald sum splits 1/r, with g(x) = exp(-x)(1 + x + x^2/2), x = (alpha r)^2:

    -c_i c_j / r^6 = -c_i c_j g(x) / r^6  -  c_i c_j (1 - g(x)) / r^6.
                      (short-ranged)          (smooth: the mesh)

The mesh sums the smooth part over every pair and image, and each atom with itself (the m = 0
term included, unlike Coulomb's), as B-spline order-5 smooth PME on its own grid: the c_i spread as
charges and the dispersion influence function (mdjac.longrange.pme_grid.dispersion_influence_function).
The rest of OpenMM's LJ-PME is short-ranged pair terms (mdjac.openmm.nonbonded): within the cutoff
the Lorentz-Berthelot Lennard-Jones plus c_i c_j (1 - g(x)) / r^6 (the mesh's share of the pair
taken back) plus a constant shift that makes the pair energy zero at the cutoff; for every excluded
or exception pair, + c_i c_j (1 - g(x)) / r^6 (the exclusion correction); and the self term here.

:class:`DispersionPMEReciprocal` is mdjac.longrange.pme.PMEReciprocal with the coefficients c_i in
place of the charges, that influence function, and the constant energy E_self = alpha^6 / 12 sum_i c_i^2
(the mesh's self interaction taken back; no plasma term). Its forces, block-diagonal curvature and
mesh operator (mdjac.pme_jacobian.DispersionPMEJacobian: PMEJacobian with this influence function) are PME's: the
derivatives come from MindSpore's AD of the B-spline (mdjac.longrange.splines).

Units: nm, kJ/mol; c_i in (kJ/mol)^1/2 nm^3, alpha nm^-1.
"""
import numpy as np

from ..errors import InputError
from . import pme_grid
from ..pme_jacobian import DispersionPMEJacobian
from .pme import PMEReciprocal


def dispersion_coefficients(sigma, epsilon):
    """(N,) c_i = 2 sigma_i^3 sqrt(eps_i) of per-atom sigma (nm) and epsilon (kJ/mol): C6_ij = c_i c_j (module docstring)."""
    sigma, epsilon = np.asarray(sigma, dtype=np.float64), np.asarray(epsilon, dtype=np.float64)
    if np.any(epsilon < 0):
        raise InputError("LJ-PME needs epsilon >= 0 for every particle (kJ/mol)")
    return 2.0 * sigma ** 3 * np.sqrt(epsilon)


class DispersionPMEReciprocal(PMEReciprocal):
    """The dispersion mesh and self term of OpenMM's LJ-PME: a long-range term of a Potential.

    coefficients: (N,) c_i (:func:`dispersion_coefficients`); alpha: nm^-1; grid: (3,) ints (OpenMM's
    dispersion grid: mdjac.longrange.pme_grid.pme_parameters with ``dispersion=True``).
    """
    part_class = DispersionPMEJacobian

    def __init__(self, coefficients, alpha, grid):
        super().__init__(coefficients, alpha=alpha, grid=grid, coulomb_constant=1.0)
        self.self_energy = self.alpha ** 6 / 12.0 * float(self.charges @ self.charges)

    def __repr__(self):
        return f"DispersionPMEReciprocal(alpha={self.alpha:.6g}, grid={self.grid.tolist()})"

    def influence_of(self, vectors):
        """eterm (nx, ny, nz) of box vectors (3, 3) nm: the dispersion influence function."""
        return pme_grid.dispersion_influence_function(self.grid, vectors, self.alpha)

    def constant_energy(self, box):
        """E_self = alpha^6 / 12 sum_i c_i^2 (kJ/mol), whatever the box."""
        return self.self_energy
