"""Correction maps (CMAP): an energy surface of two torsions by bicubic patches (CHARMM, ff19SB).

:func:`bicubic_patches` builds each map's patch coefficients once (numpy, scipy splines);
:class:`CMAPTorsion` chooses the patch of each instance at the configuration's angles and states
the patch polynomial's energy in MindSpore ops. Angles in rad, energies in kJ/mol.
"""
import numpy as np

from ..errors import InputError, finite_numbers
from ..space import minimum_image
from .base import Term
from .checks import index_array
from .geometry import dihedral, dihedral_numpy


def bicubic_patches(grid):
    """Bicubic patches of a periodic energy map, as OpenMM and CHARMM build CMAP.

    grid: (S, S) kJ/mol, grid[a, b] the energy at angles (a, b) * 2 pi / S. The derivatives at the
    nodes, dE/dA, dE/dB and d2E/dA dB, are those of periodic cubic splines through the nodes (along
    A; along B; along A of dE/dB). Returns (S, S, 4, 4) coefficients c of each patch (a, b):
    E = sum_kl c[a, b, k, l] u^k v^l, u, v in [0, 1) the fractions of the patch along A and B.
    """
    import scipy.interpolate

    grid = np.asarray(grid, dtype=np.float64)
    s = len(grid)
    nodes = np.arange(s + 1) * (2 * np.pi / s)

    def derivative_along_first(values):
        closed = np.concatenate([values, values[:1]], axis=0)
        return scipy.interpolate.CubicSpline(nodes, closed, axis=0, bc_type="periodic").c[2]

    d_a = derivative_along_first(grid)
    d_b = derivative_along_first(grid.T).T
    d_ab = derivative_along_first(d_b)
    delta = 2 * np.pi / s
    # the 16 conditions at the patch corners (0,0) (1,0) (0,1) (1,1): value, d/du, d/dv, d2/dudv
    corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
    powers = [(k, l) for k in range(4) for l in range(4)]
    rows = []
    for du, dv in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        for u, v in corners:
            row = []
            for k, l in powers:
                ck = k if du else 1
                cl = l if dv else 1
                pk, pl = k - du, l - dv
                row.append(0.0 if pk < 0 or pl < 0 else ck * cl * (u ** pk) * (v ** pl))
            rows.append(row)
    inverse = np.linalg.inv(np.array(rows))
    a = np.arange(s)[:, None]
    b = np.arange(s)[None, :]
    na, nb = (a + 1) % s, (b + 1) % s
    rhs = []
    for values, scale in [(grid, 1.0), (d_a, delta), (d_b, delta), (d_ab, delta * delta)]:
        for ia, ib in [(a, b), (na, b), (a, nb), (na, nb)]:
            rhs.append(scale * values[ia + 0 * ib, ib + 0 * ia])
    rhs = np.stack(rhs, axis=-1)                       # (S, S, 16)
    return (rhs @ inverse.T).reshape(s, s, 4, 4)


class CMAPTorsion(Term):
    """Correction map of two torsions, E = f(phi, psi) by bicubic patches (CHARMM CMAP, ff19SB).

    index: (M, 8) int, the atoms of the first torsion (i, j, k, l) then of the second; maps: list
    of (S, S) energy grids (kJ/mol), grid[a, b] at (phi, psi) = (a, b) 2 pi / S with angles taken in
    [0, 2 pi); map_of: (M,) int, the map of each instance. The patch of each instance is chosen at
    the configuration's angles (like a neighbour list: within a patch the energy is one polynomial,
    so its derivatives are exact there); its 16 coefficients and the patch origin are the instance's
    parameters: E = sum_kl c_kl u^k v^l, u = (phi - phi_0)/delta, v = (psi - psi_0)/delta.
    """
    n_body = 8
    relative = True

    def __init__(self, index, maps, map_of):
        self.index = index_array(index, 8, "CMAP atoms")
        if isinstance(maps, str):
            finite_numbers(maps, "CMAPTorsion maps (kJ/mol)")          # refused, naming the value
        grids = [finite_numbers(m, "CMAPTorsion map (kJ/mol)") for m in maps]
        for g in grids:
            if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] < 4:
                raise InputError(f"a CMAPTorsion map has shape {g.shape}: give square (S, S) energy grids, S >= 4")
        self.patches = [bicubic_patches(g) for g in grids]
        self.map_of = np.asarray(map_of, dtype=np.int64).reshape(-1)
        if len(self.map_of) != len(self.index) or (len(self.map_of) and not 0 <= self.map_of.min() <= self.map_of.max() < len(maps)):
            raise InputError("CMAP: give one map number (0..len(maps)-1) per torsion pair")

    @property
    def max_index(self):
        return int(self.index.max()) if len(self.index) else -1

    def instances(self, config):
        x = config.positions[self.index]
        d = minimum_image(x[:, 1:] - x[:, :1], config.box)                  # (M, 7, 3), as the potential makes q
        phi = dihedral_numpy(d[:, 0], d[:, 1] - d[:, 0], d[:, 2] - d[:, 1])
        psi = dihedral_numpy(d[:, 4] - d[:, 3], d[:, 5] - d[:, 4], d[:, 6] - d[:, 5])
        m = len(self.index)
        coefficients = np.zeros((m, 16))
        origins = np.zeros((m, 2))
        delta = np.zeros(m)
        for k, patches in enumerate(self.patches):
            sel = self.map_of == k
            s = len(patches)
            step = 2 * np.pi / s
            wrapped = [np.where(a < 0, a + 2 * np.pi, a) for a in (phi[sel], psi[sel])]
            cells = [np.minimum((w / step).astype(np.int64), s - 1) for w in wrapped]
            coefficients[sel] = patches[cells[0], cells[1]].reshape(-1, 16)
            for axis, (angle, cell) in enumerate(zip((phi[sel], psi[sel]), cells)):
                origins[sel, axis] = cell * step - np.where(angle < 0, 2 * np.pi, 0.0)
            delta[sel] = step
        return self.index, (coefficients, origins[:, 0], origins[:, 1], delta)

    def energy(self, q, coefficients, phi0, psi0, delta):
        phi = dihedral(q[..., 0:3, :])
        psi = dihedral(q[..., 4:7, :] - q[..., 3:4, :])
        u = (phi - phi0) / delta
        v = (psi - psi0) / delta
        total = 0.0
        for k in (3, 2, 1, 0):
            row = ((coefficients[..., 4 * k + 3] * v + coefficients[..., 4 * k + 2]) * v
                   + coefficients[..., 4 * k + 1]) * v + coefficients[..., 4 * k]
            total = total * u + row
        return total

    def __repr__(self):
        return f"CMAPTorsion({len(self.index)} instances, {len(self.patches)} maps)"
