"""Per-atom terms: external potentials on single atoms (restraints, a uniform field, a wall).

Fixed lists of one-atom instances that see the positions themselves (``relative = False``,
q (..., M, 1, 3)), as given (no periodic wrap). Units: nm, e, kJ/mol.
"""
import numpy as np
from mindspore import ops

from ..errors import InputError, finite_numbers
from .base import FixedTerm
from .checks import FORCE_CONSTANT_FIX, at_least, index_array, per_instance, table_lookup
from .geometry import dot, norm


class HarmonicRestraint(FixedTerm):
    """Harmonic position restraint, E_i = k_{type(i)} / 2 |x_i - ref_i|^2 (J_ii = -k I).

    Parameters
    ----------
    k : (T,), kJ mol^-1 nm^-2, indexed by atom type
    types : (N,) int
    reference : (N, 3), nm

    Atoms whose k is 0 are left out.
    """
    n_body = 1

    def __init__(self, k, types, reference):
        ref = finite_numbers(reference, "HarmonicRestraint reference (nm)")
        types = np.asarray(types)
        if ref.shape != (len(types), 3):
            raise InputError(f"reference positions have shape {ref.shape} but there are {len(types)} atom types: "
                             "give (N, 3) positions in nm, one per atom")
        k_atom = at_least(table_lookup(k, types, "HarmonicRestraint k"), 0.0, "HarmonicRestraint k (kJ mol^-1 nm^-2)",
                          FORCE_CONSTANT_FIX)
        atoms = np.flatnonzero(k_atom != 0)
        self.n_atoms = len(types)
        super().__init__(atoms[:, None], (k_atom[atoms], per_instance(ref[atoms], len(atoms), "reference", (3,))))

    def energy(self, q, k, reference):
        d = q[..., 0, :] - reference
        return 0.5 * k * dot(d, d)


class ElectricField(FixedTerm):
    """Uniform external electric field, E_i = -q_i field . x_i (linear in x: its Jacobian is zero).

    Parameters
    ----------
    charges : (N,), e
    field : (3,), kJ mol^-1 nm^-1 e^-1 (1 V/nm = 96.4853 kJ mol^-1 nm^-1 e^-1)
    """
    n_body = 1

    def __init__(self, charges, field):
        charges = finite_numbers(charges, "ElectricField charges").reshape(-1)
        field = finite_numbers(field, "ElectricField field")
        if field.shape != (3,):
            raise InputError(f"the field has shape {field.shape}: give its 3 components in kJ mol^-1 nm^-1 e^-1")
        atoms = np.flatnonzero(charges != 0)
        self.n_atoms = len(charges)
        super().__init__(atoms[:, None], (per_instance(charges[atoms, None] * field, len(atoms), "charges x field", (3,)),))

    def energy(self, q, charge_field):
        return -dot(q[..., 0, :], charge_field)


class FlatBottomWall(FixedTerm):
    """Spherical flat-bottom wall, E_i = k/2 max(0, |x_i - centre| - radius)^2 (zero inside the sphere).

    Parameters
    ----------
    atoms : (M,) int
    k : float or (M,), kJ mol^-1 nm^-2
    centre : (3,) or (M, 3), nm
    radius : float or (M,), nm
    """
    n_body = 1

    def __init__(self, atoms, k, centre, radius):
        index = index_array(np.asarray(atoms).reshape(-1, 1), 1, "wall atoms")
        m = len(index)
        k = at_least(per_instance(k, m, "FlatBottomWall k"), 0.0, "FlatBottomWall k (kJ mol^-1 nm^-2)", FORCE_CONSTANT_FIX)
        radius = at_least(per_instance(radius, m, "FlatBottomWall radius"), 0.0, "FlatBottomWall radius (nm)",
                          "a radius is a length; give it >= 0 in nm")
        super().__init__(index, (k, per_instance(centre, m, "FlatBottomWall centre", (3,)), radius))

    def energy(self, q, k, centre, radius):
        excess = ops.relu(norm(q[..., 0, :] - centre) - radius)
        return 0.5 * k * excess * excess
