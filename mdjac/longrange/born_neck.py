"""The neck correction of amber's GBn (igb=7) and GBn2 (igb=8) Born radii, as OpenMM's GBSAGBnForce and
GBSAGBn2Force state it (openmm.app.internal.customgbforces).

Between two atoms whose spheres nearly touch lies a neck too narrow for a water molecule, which the
pairwise descreening integrals count as solvent. The neck models add, for each atom j, to atom i's
integral sum (OpenMM's expression; r nm)

    I^neck_ij(r) = step(rho_i + rho_j + 0.68 - r) m0_ij / (1 + 100 (r - d0_ij)^2 + 0.3e6 (r - d0_ij)^6)

times the model's neck scale (GBn 0.361825, GBn2 0.826836). OpenMM's sum is I_i = sum_j (I^HCT_ij / 2 +
scale I^neck_ij); mdjac.longrange.born's is S_i = 2 I_i, so each pair adds 2 scale I^neck_ij there, a
function of the pair's distance alone, like the descreening integral: the factored Jacobian takes it
as it takes that one (its radial derivatives, in Q = dS/dx and in the radial part).

m0_ij (nm^-1) and d0_ij (nm), the neck's height and place, come from amber's tables over a 0.005 nm
grid of the two radii (0.1 to 0.2 nm). OpenMM interpolates them bilinearly once per pair of distinct
radii, in Python, and gives the force Discrete2DFunctions getm0(a, b), getd0(a, b) of two radius
indices a (atom i's) and b (atom j's), values[a + K b]. So they are constants of each pair, not
functions of the positions: nothing is interpolated in the energy, nothing of it is differentiated.
mdjac takes those tables from the force (mdjac.openmm.implicit) and looks them up as OpenMM's
Reference platform does (each index rounded, then clamped to the table).
"""
import numpy as np
from mindspore import ops

from ..errors import InputError, finite_numbers

#: nm, the neck's reach beyond the two radii (OpenMM's neckCut).
NECK_CUT = 0.68
#: the neck scale of amber's GBn (igb=7) and GBn2 (igb=8), as OpenMM writes them.
GBN_NECK_SCALE = 0.361825
GBN2_NECK_SCALE = 0.826836


def neck_integral(r, height, place, reach):
    """2 scale I^neck_ij (...) nm^-1 at distances r (...) nm (module docstring): height = 2 scale m0_ij nm^-1,
    place = d0_ij nm, reach = rho_i + rho_j + 0.68 nm, broadcasting against r."""
    x = r - place
    x2 = x * x
    value = height / (1.0 + 100.0 * x2 + 300000.0 * x2 * x2 * x2)
    return ops.where(r <= reach, value, ops.zeros_like(value))


class Neck:
    """The neck correction's constants (module docstring).

    Parameters
    ----------
    scale : float, the neck scale (:data:`GBN_NECK_SCALE`, :data:`GBN2_NECK_SCALE`)
    index : (N,) float, each atom's radius index into the tables (rounded and clamped, as OpenMM)
    m0 : (K, K) nm^-1, d0 : (K, K) nm, the tables: [a, b] enters atom i's sum for atom j when i has
        radius index a and j index b (OpenMM's getm0(a, b), getd0(a, b))
    cut : float, nm, the reach beyond the two radii
    """

    def __init__(self, scale, index, m0, d0, cut=NECK_CUT):
        self.scale, self.cut = float(scale), float(cut)
        self.m0 = finite_numbers(m0, "neck table m0 (nm^-1)")
        self.d0 = finite_numbers(d0, "neck table d0 (nm)")
        if self.m0.ndim != 2 or self.m0.shape != self.d0.shape or self.m0.shape[0] != self.m0.shape[1]:
            raise InputError(f"the neck tables must be two square (K, K) tables of one size "
                             f"({self.m0.shape} and {self.d0.shape} given)")
        index = finite_numbers(index, "neck radius indices").reshape(-1)
        self.index = np.clip(np.floor(index + 0.5), 0, len(self.m0) - 1).astype(np.int64)

    def __repr__(self):
        return f"Neck(scale={self.scale}, tables={len(self.m0)}x{len(self.m0)})"

    def pair_constants(self, i, j, radii):
        """(height, place, reach), each (...,) in float64, of atom j's neck term in atom i's sum, for index
        arrays i, j (...,) broadcasting; radii (N,) nm the atoms' GB radii rho."""
        a, b = self.index[i], self.index[j]
        return 2.0 * self.scale * self.m0[a, b], self.d0[a, b], radii[i] + radii[j] + self.cut
