r"""The mesh of OpenMM's smooth PME: parameters, grid coordinates, influence function, spread, FFT, gather.

Bookkeeping only (numpy, scipy.fft and loops compiled by numba; no MindSpore here, so that a
reader rebuilds a PME Jacobian from a file without it). The spline derivatives that enter come
from MindSpore's AD (mdjac.longrange.pme); this module takes them as arrays.

Conventions, exactly those of OpenMM's ReferencePME.cpp. The box is given by its three box
vectors (rows of a (3, 3) array, nm; OpenMM's reduced form, orthorhombic a diagonal) and the
reciprocal box vectors ``recip`` (rows, nm^-1) from :func:`reciprocal_box_vectors`, so that the
fractional coordinate of r along axis d is t_d = sum_k r_k recip[k, d]. With the grid of n_d
points along axis d, an atom's scaled coordinate is u_d = n_d (t_d - floor(t_d)), its grid
origin o_d = int(u_d) mod n_d and its fraction f_d = u_d - int(u_d) in [0, 1). It spreads onto
the 5 x 5 x 5 points (o + k) mod n, k = 0..4 per axis, with the tensor-product weights

    theta(o + k) = w_x(k_x) w_y(k_y) w_z(k_z),      w_d(k) = M_5(f_d + 4 - k),

M_5 the cardinal B-spline of order 5 (support [0, 5]). Column k of the weights is piece 4 - k of
M_5 (``x = piece + f``); :data:`SPLINE_PIECES` holds the pieces' polynomial coefficients in f.
Derivatives with respect to u_d are those with respect to f_d, and u depends on r through the
(3, 3) matrix ``scale`` = du/dr^T: du_d/dr_k = n_d recip[k, d] (:func:`coordinate_scale`).

With Q(g) = sum_i q_i theta_i(g) the charge grid and the influence function (m != 0)

    eterm(m) = f exp(-pi^2 |m*|^2 / alpha^2) / (pi V |m*|^2 b_x(m_x) b_y(m_y) b_z(m_z)),  eterm(0) = 0,

(m* = sum_d m_d recip[d] the wave vector, in OpenMM's index order m_d = k_d for k_d < (n_d + 1) // 2,
k_d - n_d above; b the B-spline moduli with OpenMM's fix for near-zero moduli), the reciprocal
energy is E = 1/2 sum_m eterm(m) |FFT(Q)(m)|^2 = 1/2 sum_g Q(g) psi(g), with the grid potential
psi = Phi * Q (cyclic convolution) and the real-space kernel Phi(h) = sum_m eterm(m) exp(2 pi i m.h / n),
psi computed as an FFT pair (:func:`convolve`).

Units: nm, e, kJ/mol; eterm and Phi in kJ mol^-1 e^-2.
"""
import math
from fractions import Fraction

import numba
import numpy as np
import scipy.fft
import scipy.special

from ..errors import InputError
from ..space import box_vectors

#: B-spline order (fixed on every OpenMM platform).
ORDER = 5
#: OpenMM's floor for B-spline moduli: smaller ones are replaced by the mean of their neighbours.
MODULUS_FLOOR = 1.0e-7


# ----------------------------------------------------------------------------- the spline's pieces
def _spline_pieces(order):
    """(order, order) exact coefficients c[p, j] of M_order(p + f) = sum_j c[p, j] f^j, f in [0, 1).

    From M_n(x) = 1/(n-1)! sum_{j=0}^{n} (-1)^j C(n, j) (x - j)_+^(n-1), expanded exactly in fractions.
    """
    out = np.zeros((order, order))
    for p in range(order):
        coeffs = [Fraction(0)] * order
        for j in range(p + 1):                      # (x - j)_+ = (p - j + f) on piece p, for j <= p
            sign = (-1) ** j * math.comb(order, j)
            a = p - j
            for power in range(order):              # (a + f)^(order-1) = sum C(order-1, power) a^(order-1-power) f^power
                coeffs[power] += sign * math.comb(order - 1, power) * Fraction(a) ** (order - 1 - power)
        out[p] = [float(c / math.factorial(order - 1)) for c in coeffs]
    return out


#: (5, 5): row p holds the coefficients (ascending powers of f) of M_5(p + f), f in [0, 1).
SPLINE_PIECES = _spline_pieces(ORDER)
#: (5, 5): column k of the weights is piece 4 - k; COLUMN_COEFFICIENTS[j, k] is the f^j coefficient of w(k).
COLUMN_COEFFICIENTS = np.ascontiguousarray(SPLINE_PIECES[::-1].T)


def bspline_piece(fractions, coefficients):
    """M_5(piece + f) of fractions f (..., 5), column k on the piece of coefficients[:, k] (Horner), entry-wise in f.

    coefficients: (5, 5), row j the f^j coefficients of each column (:data:`COLUMN_COEFFICIENTS`). Only
    ``*`` and ``+``: the same polynomial on numpy arrays and on MindSpore tensors (mdjac.longrange.splines
    and mdjac.longrange.pme differentiate it by AD).
    """
    out = coefficients[ORDER - 1]
    for j in range(ORDER - 2, -1, -1):
        out = out * fractions + coefficients[j]
    return out


def spline_weights(fractions):
    """w (..., 5): the weights M_5(f + 4 - k), k = 0..4, of fractions f (...) in [0, 1) (values, no derivative)."""
    f = np.asarray(fractions)[..., None]
    return bspline_piece(f, COLUMN_COEFFICIENTS.astype(f.dtype))


# ----------------------------------------------------------------------------- parameters
def _smooth_size(minimum, largest_factor, allow_eleven):
    """The smallest n >= minimum whose prime factors are all <= largest_factor (optionally times one 11)."""
    n = max(1, int(minimum))
    while True:
        rest = n
        for factor in range(2, largest_factor + 1):
            while rest > 1 and rest % factor == 0:
                rest //= factor
        if rest == 1 or (allow_eleven and rest == 11):
            return n
        n += 1


#: How each OpenMM platform rounds the grid it was given: name -> size -> size used.
GRID_ROUNDING = {
    "Reference": lambda n: n,                                          # ReferencePME: any size
    "CPU": lambda n: _smooth_size(n, 8, True),                          # CpuCalcPmeReciprocalForceKernel::findFFTDimension
    "CUDA": lambda n: _smooth_size(n, 7, False),                        # ComputeContext::findLegalFFTDimension
    "OpenCL": lambda n: _smooth_size(n, 7, False),
    "HIP": lambda n: _smooth_size(n, 7, False),
}


def pme_parameters(tolerance, cutoff, box, alpha=None, grid=None, platform="Reference", dispersion=False):
    """alpha (nm^-1) and the grid (3,) int as OpenMM chooses them for PME (NonbondedForceImpl::calcPMEParameters).

    tolerance: ewaldErrorTolerance; cutoff: nm; box: (3,) edges or (3, 3) reduced box vectors nm (the
    System's default box; OpenMM takes a_x, b_y, c_z as the edges L_d).
    alpha and grid: a force's own PME parameters (``setPMEParameters``), used as given when alpha
    is set (OpenMM's rule: alpha 0 means "choose"). Otherwise alpha = sqrt(-ln(2 tol)) / rc and
    n_d = max(6, ceil(2 alpha L_d / (3 tol^(1/5)))). platform: the OpenMM platform whose rounding
    of the sizes to FFT-friendly ones applies (:data:`GRID_ROUNDING`; the Reference platform
    takes them as they are). dispersion: LJ-PME's dispersion mesh (calcPMEParameters with lj = true): the same
    alpha, n_d = max(6, ceil(alpha L_d / (3 tol^(1/5)))), half the electrostatic grid's rate.
    """
    if platform not in GRID_ROUNDING:
        raise InputError(f"unknown OpenMM platform {platform!r} for the PME grid: use one of {', '.join(GRID_ROUNDING)}")
    if alpha:
        alpha = float(alpha)
        grid = np.asarray(grid, dtype=np.int64).reshape(-1) if grid is not None else None
        if not (math.isfinite(alpha) and alpha > 0):
            raise InputError(f"the PME alpha {alpha} is not a positive number (nm^-1)")
        if grid is None or grid.shape != (3,) or np.any(grid < 1):
            raise InputError("a PME alpha needs its grid: give 3 positive grid sizes (OpenMM's setPMEParameters)")
    else:
        tolerance, cutoff = float(tolerance), float(cutoff)
        if not (0 < tolerance < 0.5):
            raise InputError(f"the PME error tolerance {tolerance} is not in (0, 0.5): give e.g. 5e-4")
        if not (math.isfinite(cutoff) and cutoff > 0):
            raise InputError(f"the PME cutoff {cutoff} is not a positive length: give it in nm")
        edges = np.asarray(box, dtype=np.float64)
        edges = np.diag(edges).copy() if edges.shape == (3, 3) else edges.reshape(-1)
        if edges.shape != (3,) or not np.all(edges > 0):
            raise InputError("PME needs a periodic box: give the 3 box edges in nm")
        alpha = (1.0 / cutoff) * math.sqrt(-math.log(2.0 * tolerance))
        rate = 1 if dispersion else 2
        grid = np.array([max(6, math.ceil(rate * alpha * L / (3 * tolerance ** 0.2))) for L in edges], dtype=np.int64)
    rounding = GRID_ROUNDING[platform]
    return alpha, np.array([rounding(int(n)) for n in grid], dtype=np.int64)


# ----------------------------------------------------------------------------- box and grid coordinates
def reciprocal_box_vectors(vectors):
    """(3, 3) reciprocal box vectors (rows, nm^-1) of OpenMM's reduced box vectors (ReferenceForce::invertBoxVectors)."""
    a, b, c = vectors
    scale = 1.0 / (a[0] * b[1] * c[2])
    return np.array([[b[1] * c[2], 0.0, 0.0],
                     [-b[0] * c[2], a[0] * c[2], 0.0],
                     [b[0] * c[1] - b[1] * c[0], -a[0] * c[1], a[0] * b[1]]]) * scale


def coordinate_scale(recip, grid):
    """(3, 3) du/dr^T: entry [k, d] = n_d recip[k, d], the scaled coordinate u_d's derivative along r_k."""
    return recip * np.asarray(grid, dtype=np.float64)[None, :]


def grid_coordinates(positions, recip, grid):
    """OpenMM's grid origins (N, 3) int64 and fractions (N, 3) float64 in [0, 1) of positions (N, 3) nm."""
    t = np.asarray(positions, dtype=np.float64) @ recip
    u = (t - np.floor(t)) * np.asarray(grid, dtype=np.float64)
    whole = u.astype(np.int64)
    return whole % np.asarray(grid, dtype=np.int64), u - whole


def frame_geometry(positions, box, grid):
    """A frame's geometry on the mesh, what the term (mdjac.longrange.pme) and its Jacobian part share.

    positions: (N, 3) nm; box: (3,) edges or (3, 3) vectors, nm; grid: (3,) int. Returns box vectors
    (3, 3) nm, scale G (3, 3) nm^-1 (:func:`coordinate_scale`), grid origins (N, 3) int64, fractions
    (N, 3) in [0, 1) and the stencil weights w (N, 3, 5) float64.
    """
    vectors = box_vectors(box)
    recip = reciprocal_box_vectors(vectors)
    origins, fractions = grid_coordinates(positions, recip, grid)
    return vectors, coordinate_scale(recip, grid), origins, fractions, spline_weights(fractions)


# ----------------------------------------------------------------------------- the influence function
def bspline_moduli(n, order=ORDER):
    """(n,) OpenMM's B-spline moduli |b(m)|^-2 of one axis, near-zero ones fixed (ReferencePME::calculate_bsplines_moduli)."""
    values = np.zeros(max(n, order + 1))
    values[1:order + 1] = spline_weights(np.zeros(1))[0]     # OpenMM's bsplines_data: M_5(4), M_5(3), .., M_5(0) at 1..5
    j = np.arange(n)
    arg = 2.0 * np.pi * np.outer(j, j) / n
    sc, ss = np.cos(arg) @ values[:n], np.sin(arg) @ values[:n]
    moduli = sc * sc + ss * ss
    for i in range(n):                      # in place, in order, as OpenMM does
        if moduli[i] < MODULUS_FLOOR:
            moduli[i] = 0.5 * (moduli[(i - 1 + n) % n] + moduli[(i + 1) % n])
    return moduli


def _frequencies(n):
    """OpenMM's signed frequency of each grid index: k below (n + 1) // 2, k - n above."""
    k = np.arange(n)
    return np.where(k < (n + 1) // 2, k, k - n).astype(np.float64)


def _reciprocal_m2(nx, ny, nz, vectors):
    """|m*|^2 (nx, ny, nz) nm^-2 of every grid index's reciprocal vector m* (OpenMM's signed frequencies)."""
    recip = reciprocal_box_vectors(vectors)
    mx, my, mz = np.meshgrid(_frequencies(nx), _frequencies(ny), _frequencies(nz), indexing="ij")
    mhx = mx * recip[0, 0]
    mhy = mx * recip[1, 0] + my * recip[1, 1]
    mhz = mx * recip[2, 0] + my * recip[2, 1] + mz * recip[2, 2]
    return mhx * mhx + mhy * mhy + mhz * mhz


def influence_function(grid, vectors, alpha, coulomb_constant):
    """eterm (nx, ny, nz) kJ mol^-1 e^-2 on the whole grid, OpenMM's (pme_reciprocal_convolution); eterm(0) = 0."""
    nx, ny, nz = (int(n) for n in grid)
    m2 = _reciprocal_m2(nx, ny, nz, vectors)
    bx, by, bz = bspline_moduli(nx), bspline_moduli(ny), bspline_moduli(nz)
    boxfactor = math.pi * vectors[0, 0] * vectors[1, 1] * vectors[2, 2]
    denom = m2 * (boxfactor * bx)[:, None, None] * by[None, :, None] * bz[None, None, :]
    denom[0, 0, 0] = 1.0
    eterm = coulomb_constant * np.exp(-(math.pi * math.pi / (alpha * alpha)) * m2) / denom
    eterm[0, 0, 0] = 0.0
    return eterm


def dispersion_influence_function(grid, vectors, alpha):
    """eterm (nx, ny, nz) kJ mol^-1 nm^6 of LJ-PME's dispersion mesh, OpenMM's (dpme_reciprocal_convolution), m = 0 included.

    With |m*| = m, b = pi m / alpha and V the volume: eterm(m) = -(2 pi^1.5 / 3V) (2 pi^3.5 erfc(b) m^3
    + exp(-b^2) (alpha^3 - 2 alpha pi^2 m^2)) / (b_x b_y b_z), the same B-spline moduli as :func:`influence_function`;
    E = 1/2 sum_m eterm(m) |FFT(C)(m)|^2 with C the grid of the atoms' C6 coefficients (mdjac.longrange.ljpme).
    """
    nx, ny, nz = (int(n) for n in grid)
    m2 = _reciprocal_m2(nx, ny, nz, vectors)
    m = np.sqrt(m2)
    b = math.pi / alpha * m
    boxfactor = -2.0 * math.pi * math.sqrt(math.pi) / (6.0 * vectors[0, 0] * vectors[1, 1] * vectors[2, 2])
    moduli = bspline_moduli(nx)[:, None, None] * bspline_moduli(ny)[None, :, None] * bspline_moduli(nz)[None, None, :]
    fac1 = 2.0 * math.pi ** 3 * math.sqrt(math.pi)
    value = fac1 * scipy.special.erfc(b) * m * m2 + np.exp(-b * b) * (alpha ** 3 - 2.0 * alpha * math.pi ** 2 * m2)
    return value * boxfactor / moduli


def half_spectrum(eterm):
    """The part of eterm that acts on a real grid, on rfftn's half spectrum (nx, ny, nz // 2 + 1).

    A real grid's spectrum has Q(-m) = conj Q(m), so only (eterm(m) + eterm(-m)) / 2 enters the
    energy and, after the inverse FFT's real part, the forces (the two differ for a triclinic box
    on the Nyquist planes only).
    """
    mirrored = np.roll(eterm[::-1, ::-1, ::-1], 1, axis=(0, 1, 2))      # eterm(-m mod n)
    return np.ascontiguousarray((0.5 * (eterm + mirrored))[:, :, : eterm.shape[2] // 2 + 1])


def convolve(values, spectrum, workers=None, axes=(-3, -2, -1)):
    """psi = Phi * values (cyclic convolution, (nx, ny, nz)): sum_m eterm(m) FFT(values)(m) e^{2 pi i m.g / n}.

    values: real grid (nx, ny, nz) or grids (b, nx, ny, nz), or with ``axes=(0, 1, 2)`` grids
    (nx, ny, nz, b) (columns last, as :func:`spread_columns` makes them); spectrum: :func:`half_spectrum`.
    One real FFT pair (scipy.fft) over the three grid axes, batched over the others, in the values' dtype.
    """
    shape = tuple(values.shape[a] for a in axes)
    if axes != (-3, -2, -1):
        spectrum = spectrum.reshape(spectrum.shape + (1,) * (values.ndim - 3))
    transformed = scipy.fft.rfftn(values, axes=axes, workers=workers)
    transformed *= spectrum.astype(transformed.real.dtype, copy=False)
    return scipy.fft.irfftn(transformed, s=shape, axes=axes, workers=workers) * float(np.prod(shape))


def real_space_kernel(eterm):
    """Phi (nx, ny, nz): the real-space kernel, Phi(h) = sum_m eterm(m) e^{2 pi i m.h / n} (symmetric part)."""
    return convolve(_unit_grid(eterm.shape), half_spectrum(eterm))


def _unit_grid(shape):
    delta = np.zeros(shape)
    delta[0, 0, 0] = 1.0
    return delta


def stencil_kernel(phi):
    """(9, 9, 9) Phi at the offsets h = -4..4 per axis (wrapped around the grid): all a stencil sees."""
    offsets = [np.arange(-(ORDER - 1), ORDER) % n for n in phi.shape]
    return np.ascontiguousarray(phi[np.ix_(*offsets)])


# ----------------------------------------------------------------------------- stencils of derivatives
#: Derivative orders per axis of the stencils d theta / du_d, d = x, y, z (theta = w_x w_y w_z).
GRADIENT_ORDERS = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
#: Derivative orders per axis of d2 theta / du_d du_e for (d, e) = xx, yy, zz, xy, xz, yz.
CURVATURE_ORDERS = ((2, 0, 0), (0, 2, 0), (0, 0, 2), (1, 1, 0), (1, 0, 1), (0, 1, 1))
#: The (d, e) entries of a symmetric 3x3 block in CURVATURE_ORDERS' order.
CURVATURE_ENTRIES = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def stencil_factors(derivatives, orders, atoms=None):
    """(n, P, 3, 5): the per-axis factors of P stencils, stencil p on axis a = derivatives[orders[p][a]][:, a].

    derivatives: sequence of (N, 3, 5) arrays, the weights w and their derivatives in u (w, dw, d2w);
    orders: P triples of derivative orders (:data:`GRADIENT_ORDERS`, :data:`CURVATURE_ORDERS`);
    atoms: (n,) the atoms to take, in this order (all N as they are by default).
    Stencil p of atom i at grid point o_i + k is prod_a factors[i, p, a, k_a].
    """
    orders = np.asarray(orders, dtype=np.int64).reshape(-1, 3)
    derivatives = tuple(np.ascontiguousarray(d, dtype=np.float64) for d in derivatives)
    atoms = np.arange(len(derivatives[0])) if atoms is None else np.asarray(atoms, dtype=np.int64)
    out = np.empty((len(atoms), len(orders), 3, ORDER))
    _fill_stencil_factors(derivatives, orders, atoms, out)
    return out


@numba.njit(cache=True, nogil=True)
def _fill_stencil_factors(derivatives, orders, atoms, out):
    """out[r, p, a] = derivatives[orders[p, a]][atoms[r], a] (the loop of :func:`stencil_factors`)."""
    for r in range(atoms.shape[0]):
        i = atoms[r]
        for p in range(orders.shape[0]):
            for a in range(3):
                source = derivatives[orders[p, a]]
                for k in range(ORDER):
                    out[r, p, a, k] = source[i, a, k]


def curvature_blocks(entries):
    """(N, 3, 3) symmetric blocks from their (N, 6) entries in :data:`CURVATURE_ENTRIES` order."""
    out = np.empty((len(entries), 3, 3))
    for p, (d, e) in enumerate(CURVATURE_ENTRIES):
        out[:, d, e] = out[:, e, d] = entries[:, p]
    return out


# ----------------------------------------------------------------------------- spread and gather (numba)
@numba.njit(cache=True, nogil=True, inline="always")
def _stencil_points(origins, i, shape, points):
    """points (3, 5): the grid indices (o_d + k) mod n_d of atom i's stencil along each axis d."""
    for d in range(3):
        for k in range(ORDER):
            points[d, k] = (origins[i, d] + k) % shape[d]


@numba.njit(cache=True, nogil=True)
def spread(origins, factors, coefficients, grid):
    """Add sum_i sum_p c_ip (stencil p of atom i) to ``grid`` (nx, ny, nz).

    origins (N, 3) int; factors (N, P, 3, 5) (:func:`stencil_factors`); coefficients (N, P).
    """
    n_stencils = factors.shape[1]
    column = np.empty(ORDER)
    points = np.empty((3, ORDER), dtype=np.int64)
    for i in range(origins.shape[0]):
        _stencil_points(origins, i, grid.shape, points)
        for a in range(ORDER):
            gx = points[0, a]
            for b in range(ORDER):
                gy = points[1, b]
                for c in range(ORDER):
                    column[c] = 0.0
                for p in range(n_stencils):
                    s = coefficients[i, p] * factors[i, p, 0, a] * factors[i, p, 1, b]
                    for c in range(ORDER):
                        column[c] += s * factors[i, p, 2, c]
                for c in range(ORDER):
                    grid[gx, gy, points[2, c]] += column[c]


@numba.njit(cache=True, nogil=True)
def gather(origins, factors, potential, out):
    """out (N, P) = sum_g (stencil p of atom i)(g) psi(g) for a grid potential psi (nx, ny, nz)."""
    n_stencils = factors.shape[1]
    column = np.empty(ORDER)
    points = np.empty((3, ORDER), dtype=np.int64)
    for i in range(origins.shape[0]):
        _stencil_points(origins, i, potential.shape, points)
        for p in range(n_stencils):
            out[i, p] = 0.0
        for a in range(ORDER):
            gx = points[0, a]
            for b in range(ORDER):
                gy = points[1, b]
                for c in range(ORDER):
                    column[c] = potential[gx, gy, points[2, c]]
                for p in range(n_stencils):
                    s = 0.0
                    for c in range(ORDER):
                        s += factors[i, p, 2, c] * column[c]
                    out[i, p] += factors[i, p, 0, a] * factors[i, p, 1, b] * s


@numba.njit(cache=True, nogil=True, inline="always")
def _stencil_row(factors, i, a, b, weights):
    """weights (P, 5): stencil p of atom i along z at the stencil's x offset a and y offset b."""
    for p in range(factors.shape[1]):
        s = factors[i, p, 0, a] * factors[i, p, 1, b]
        for c in range(ORDER):
            weights[p, c] = s * factors[i, p, 2, c]


@numba.njit(cache=True, nogil=True)
def spread_columns(origins, factors, coefficients, grids):
    """Add sum_i sum_p c_ikp (stencil p of atom i) to grid k of ``grids`` (nx, ny, nz, m), every column k at once.

    origins (N, 3) int; factors (N, P, 3, 5) (:func:`stencil_factors`); coefficients (N, m, P).
    The columns are the last, contiguous axis, so each stencil's weights are formed once for all m.
    """
    m = grids.shape[3]
    n_stencils = factors.shape[1]
    weights = np.empty((n_stencils, ORDER))
    points = np.empty((3, ORDER), dtype=np.int64)
    for i in range(origins.shape[0]):
        _stencil_points(origins, i, grids.shape, points)
        for a in range(ORDER):
            gx = points[0, a]
            for b in range(ORDER):
                gy = points[1, b]
                _stencil_row(factors, i, a, b, weights)
                for c in range(ORDER):
                    gz = points[2, c]
                    for k in range(m):
                        total = 0.0
                        for p in range(n_stencils):
                            total += coefficients[i, k, p] * weights[p, c]
                        grids[gx, gy, gz, k] += total


@numba.njit(cache=True, nogil=True)
def gather_columns(origins, factors, potentials, out):
    """out (N, m, P) = sum_g (stencil p of atom i)(g) psi_k(g) for grid potentials psi (nx, ny, nz, m), all k at once."""
    m = potentials.shape[3]
    n_stencils = factors.shape[1]
    weights = np.empty((n_stencils, ORDER))
    total = np.empty((m, n_stencils))
    points = np.empty((3, ORDER), dtype=np.int64)
    for i in range(origins.shape[0]):
        _stencil_points(origins, i, potentials.shape, points)
        total[:] = 0.0
        for a in range(ORDER):
            gx = points[0, a]
            for b in range(ORDER):
                gy = points[1, b]
                _stencil_row(factors, i, a, b, weights)
                for c in range(ORDER):
                    gz = points[2, c]
                    for k in range(m):
                        value = potentials[gx, gy, gz, k]
                        for p in range(n_stencils):
                            total[k, p] += weights[p, c] * value
        out[i] = total


@numba.njit(cache=True, nogil=True)
def _correlate(f, g, out):
    """out[h + 4] = sum_k f(k) g(k - h), h = -4..4, for stencil factors f, g (5,)."""
    for h in range(2 * ORDER - 1):
        out[h] = 0.0
    for k in range(ORDER):
        for kk in range(ORDER):
            out[k - kk + ORDER - 1] += f[k] * g[kk]


@numba.njit(cache=True, nogil=True)
def self_blocks(factors, kernel, out):
    """out (N, P, P) = sum_{g, g'} s_ip(g) Phi(g - g') s_iq(g'): each atom's stencils with themselves through the grid.

    factors: (N, P, 3, 5) (:func:`stencil_factors`); kernel: (9, 9, 9) Phi at the stencil's offsets
    (:func:`stencil_kernel`). The 729 offsets are contracted axis by axis with the 1-D
    correlations of the stencils' factors.
    """
    m = 2 * ORDER - 1
    n_stencils = factors.shape[1]
    corr = np.empty((3, m))
    for i in range(factors.shape[0]):
        for p in range(n_stencils):
            for q in range(p, n_stencils):
                for a in range(3):
                    _correlate(factors[i, p, a], factors[i, q, a], corr[a])
                total = 0.0
                for hx in range(m):
                    row = 0.0
                    for hy in range(m):
                        s = 0.0
                        for hz in range(m):
                            s += kernel[hx, hy, hz] * corr[2, hz]
                        row += s * corr[1, hy]
                    total += row * corr[0, hx]
                out[i, p, q] = out[i, q, p] = total


@numba.njit(cache=True, nogil=True)
def pair_blocks(origins, factors, phi, pairs, out):
    """out (P, S, S) = sum_{g, g'} s_ap(g) Phi(g - g') s_bq(g') for the atom pairs (a, b) of ``pairs`` (P, 2):
    two atoms' stencils through the grid (:func:`self_blocks` for a = b, here for atoms whose stencils differ).

    origins (N, 3) int; factors (N, S, 3, 5) (:func:`stencil_factors`); phi (nx, ny, nz) the real-space kernel
    (:func:`real_space_kernel`). With h = k - k' the offset within the stencils, g - g' = o_a - o_b + h: the
    1-D correlations of the factors, contracted with Phi at those offsets (wrapped around the grid).
    """
    m = 2 * ORDER - 1
    nx, ny, nz = phi.shape
    n_stencils = factors.shape[1]
    corr = np.empty((3, m))
    for t in range(pairs.shape[0]):
        i, j = pairs[t, 0], pairs[t, 1]
        dx, dy, dz = origins[i, 0] - origins[j, 0], origins[i, 1] - origins[j, 1], origins[i, 2] - origins[j, 2]
        for p in range(n_stencils):
            for q in range(n_stencils):
                for a in range(3):
                    _correlate(factors[i, p, a], factors[j, q, a], corr[a])
                total = 0.0
                for hx in range(m):
                    gx = (dx + hx - (ORDER - 1)) % nx
                    row = 0.0
                    for hy in range(m):
                        gy = (dy + hy - (ORDER - 1)) % ny
                        s = 0.0
                        for hz in range(m):
                            s += phi[gx, gy, (dz + hz - (ORDER - 1)) % nz] * corr[2, hz]
                        row += s * corr[1, hy]
                    total += row * corr[0, hx]
                out[t, p, q] = total
