r"""Normal modes from a force Jacobian.

The maths
=========

A force Jacobian holds the 3x3 blocks J_ij = dF_i/dr_j = -d2U/dr_i dr_j (kJ mol^-1 nm^-2).
The Hessian is H = -J. With the masses m_i (amu) repeated three times on the diagonal of M, the
mass-weighted Hessian is

    D = M^{-1/2} H M^{-1/2}        (3n x 3n, symmetric, kJ mol^-1 nm^-2 amu^-1),

and the harmonic equations of motion M x'' = -H x become q'' = -D q in the mass-weighted
coordinates q = M^{1/2} x. The eigenpairs D v_k = lambda_k v_k are the normal modes: v_k is the
mass-weighted eigenvector (orthonormal), lambda_k = omega_k^2 its squared angular frequency.

Units. 1 kJ mol^-1 = 1e3 J mol^-1 and 1 amu = 1e-3 kg mol^-1, so
1 kJ mol^-1 amu^-1 = 1e6 J kg^-1 = 1e6 m^2 s^-2; dividing by 1 nm^2 = 1e-18 m^2 gives
1 kJ mol^-1 nm^-2 amu^-1 = 1e24 s^-2 = 1 ps^-2 (since the 2019 SI the molar mass constant is
0.99999999965e-3 kg mol^-1, so this is exact to 4e-10, as in every MD code). Hence, with lambda in those units,

    omega = sqrt(lambda)                       (rad ps^-1),
    nu    = omega / (2 pi)                     (ps^-1 = THz),
    nu~   = nu / c = omega / (2 pi c)          (cm^-1), c = 0.0299792458 cm ps^-1.

A negative eigenvalue (a saddle direction) is reported, by the usual convention, as the negative
number -sqrt(|lambda|) (an "imaginary frequency").

Rigid-body projection. A potential that depends only on relative positions leaves the three
translations exactly free; an isolated molecule at a stationary point also leaves the three
rotations (two if it is linear) free. In mass-weighted coordinates these directions are

    translation a:  (t_a)_i = sqrt(m_i) e_a,
    rotation a:     (R_a)_i = sqrt(m_i) e_a x (r_i - r_com),

for atoms i = 1..n, with r_com the centre of mass. They are orthonormalised (SVD; a direction whose
singular value is below 1e-6 of the largest is dropped, which is how a linear molecule ends up
with five and a single atom with three) into the columns of B (3n x r), and with P = I - B B^T the
analysis is done on P D P restricted to the complement of span(B): the r rigid-body modes are
**removed**, not reported as zeros, so a projected analysis has 3n - r modes. project='molecule'
removes translations and rotations, project='periodic' only the translations (a periodic box has
no rotational freedom), project=None nothing (the rigid-body modes then show up as near-zero
frequencies, which is itself a check of a Jacobian's invariances).

Solvers. Both work on A = P D P + s B B^T: the projected matrix with the rigid-body directions
moved to an eigenvalue s above the whole spectrum of D (:func:`rigid_shift`), so that the spectrum
of A is the 3n - r vibrational eigenvalues plus r copies of s. A differs from D by rank 2r,

    A = D + U C U^T,   U = [B, D B],   C = [[B^T D B + s I, -I], [-I, 0]].

* all modes (small systems): dense ``numpy.linalg.eigh`` of A, built from D by those rank-r
  updates, dropping the r eigenpairs at s.
* lowest k (large systems): ``scipy.sparse.linalg.eigsh`` in shift-invert mode about sigma, with
  (A - sigma I)^{-1} from one sparse LU of D - sigma I and the Woodbury identity; the eigenvalues s
  are the farthest from sigma and never found. The k eigenvalues returned are those nearest
  sigma, which are the k lowest when no eigenvalue lies further below sigma than the k-th one
  above it (true near a minimum with the default sigma; pass sigma for saddle points). Lanczos
  may return an exactly degenerate eigenvalue (the unprojected rigid-body zeros, the floppy modes
  of an under-constrained network) with too low a multiplicity; project the rigid-body modes out
  when asking for the lowest ones. Cost: the LU stays sparse for chains and short cutoffs but
  fills in for 3D systems with long ones (1,000 SPC/E waters, 1 nm cutoff: 75 M of the 81 M
  entries, about a minute on two cores), where it saves little over dense eigh.
* highest k: Lanczos on x -> P D P x for the largest algebraic eigenvalues (no inversion).
* a Jacobian with a long-range (Ewald) part couples every pair of atoms through a low-rank term,
  so D is never formed as a sparse matrix: all modes (small systems) by dense eigh of its
  ``to_dense()``; the lowest (or highest) k by Lanczos on the operator x -> A x built from the
  Jacobian's matvec (no inversion: the smallest algebraic eigenvalues, ``sigma`` unused; s from
  a few Lanczos steps for the largest eigenvalue of D). Convergence takes a few hundred to a few
  thousand matvecs for the lowest modes of a liquid, whose spectrum is dense at its low end.

Everything from the Jacobian onward is accumulated in float64, whatever the Jacobian's dtype.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import InputError

#: speed of light in cm ps^-1
C_CM_PER_PS = 2.99792458e-2
#: rigid-body directions whose singular value is below this fraction of the largest are dropped
RIGID_RANK_TOLERANCE = 1e-6
#: the dense solver is used up to this many degrees of freedom when ``method='auto'``
DENSE_MAX_DOF = 3000
PROJECTIONS = (None, "molecule", "periodic")


# --------------------------------------------------------------------------------------------
# unit conversions
# --------------------------------------------------------------------------------------------
def eigenvalues_to_wavenumbers(eigenvalues):
    """Signed wavenumbers (cm^-1) from eigenvalues of D (kJ mol^-1 nm^-2 amu^-1 = ps^-2).

    Negative eigenvalues give negative wavenumbers -sqrt(|lambda|) / (2 pi c).
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    return np.sign(lam) * np.sqrt(np.abs(lam)) / (2.0 * np.pi * C_CM_PER_PS)


def wavenumbers_to_eigenvalues(wavenumbers):
    """Inverse of :func:`eigenvalues_to_wavenumbers`: cm^-1 (signed) -> ps^-2 (signed)."""
    omega = 2.0 * np.pi * C_CM_PER_PS * np.asarray(wavenumbers, dtype=np.float64)
    return np.sign(omega) * omega**2


# --------------------------------------------------------------------------------------------
# the result as data
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NormalModes:
    """Normal modes of one structure, as data (compare ASE's ``VibrationsData``).

    Attributes
    ----------
    eigenvalues : (n_modes,) float64, kJ mol^-1 nm^-2 amu^-1 (= ps^-2), ascending.
    vectors : (n_modes, n, 3) float64, mass-weighted eigenvectors, orthonormal as 3n-vectors.
    masses : (n,) float64, amu, of the atoms analysed.
    atoms : (n,) int64, their global indices.
    projection : None, 'molecule' or 'periodic'; the rigid-body modes it names were removed.
    n_rigid : int, how many rigid-body directions were removed.
    """

    eigenvalues: np.ndarray
    vectors: np.ndarray
    masses: np.ndarray
    atoms: np.ndarray
    projection: Optional[str] = None
    n_rigid: int = 0

    @property
    def n_modes(self):
        return int(self.eigenvalues.shape[0])

    @property
    def frequencies(self):
        """(n_modes,) wavenumbers in cm^-1; imaginary ones as negative numbers."""
        return eigenvalues_to_wavenumbers(self.eigenvalues)

    @property
    def angular_frequencies(self):
        """(n_modes,) omega in rad ps^-1, signed like :attr:`frequencies`."""
        lam = self.eigenvalues
        return np.sign(lam) * np.sqrt(np.abs(lam))

    @property
    def frequencies_thz(self):
        """(n_modes,) nu = omega / 2 pi in THz (ps^-1), signed."""
        return self.angular_frequencies / (2.0 * np.pi)

    @property
    def displacements(self):
        """(n_modes, n, 3) Cartesian displacement directions M^{-1/2} v, each of unit norm."""
        x = self.vectors / np.sqrt(self.masses)[None, :, None]
        norms = np.sqrt(np.einsum("kia,kia->k", x, x))
        return x / norms[:, None, None]

    @property
    def reduced_masses(self):
        """(n_modes,) amu: 1 / sum_i |v_ki|^2 / m_i, the mass of the unit Cartesian displacement
        (Gaussian's "reduced mass"; for a diatomic stretch m1 m2 M / (m1^2 + m2^2), M = m1 + m2)."""
        return 1.0 / np.einsum("kia,i->k", self.vectors**2, 1.0 / self.masses)

    def table(self, title=None):
        """The modes as a printable table: index, cm^-1, THz, reduced mass (amu)."""
        lines = [title] if title else []
        note = f"{self.n_rigid} rigid-body modes removed ({self.projection})" if self.projection \
            else "no rigid-body projection"
        lines.append(f"{self.n_modes} modes of {self.atoms.shape[0]} atoms; {note}")
        lines.append(f"{'mode':>5} {'cm^-1':>12} {'THz':>10} {'mu/amu':>9}")
        for i, (f, t, mu) in enumerate(zip(self.frequencies, self.frequencies_thz,
                                          self.reduced_masses)):
            lines.append(f"{i:>5d} {f:>12.3f} {t:>10.4f} {mu:>9.4f}")
        n_imaginary = int(np.sum(self.eigenvalues < 0))
        if n_imaginary:
            lines.append(f"{n_imaginary} imaginary modes, shown as negative numbers")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------------
def _jacobian_atoms(jacobian):
    """(atoms (n,) int64, n_atoms) of a ForceJacobian."""
    return np.asarray(jacobian.atoms, dtype=np.int64), int(jacobian.n_atoms)


def _per_atom(values, atoms, n_atoms, what, shape=()):
    """Pick the rows of a per-atom array that belong to ``atoms``.

    ``values`` has n_atoms rows (the whole system) or len(atoms) rows (already selected).
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be numbers, one row per atom") from None
    if arr.ndim != 1 + len(shape) or arr.shape[1:] != shape or arr.shape[0] not in (n_atoms, atoms.shape[0]):
        want = f"({n_atoms}{', ' + ', '.join(map(str, shape)) if shape else ''})"
        raise InputError(f"{what} has shape {arr.shape}; expected {want}, one row per atom")
    return arr[atoms] if arr.shape[0] == n_atoms and atoms.shape[0] != n_atoms else arr


def _checked_masses(masses, atoms, n_atoms):
    """(n,) float64 amu; raises InputError unless finite and positive."""
    m = _per_atom(masses, atoms, n_atoms, "masses")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise InputError("masses must be finite and positive (amu); got a value <= 0 or not finite")
    return m


# --------------------------------------------------------------------------------------------
# the mass-weighted Hessian and the rigid-body basis
# --------------------------------------------------------------------------------------------
def mass_weighted_hessian(jacobian, masses):
    """D = M^{-1/2} (-J) M^{-1/2}, symmetrised, as (3n, 3n) float64 CSR (kJ mol^-1 nm^-2 amu^-1).

    ``masses`` are the (n,) masses (amu) of the Jacobian's atoms, already checked.
    """
    h = -sp.csr_matrix(jacobian.to_bsr(), dtype=np.float64)
    if not np.all(np.isfinite(h.data)):
        raise InputError("the force Jacobian holds NaN or inf; recompute it from finite positions")
    w = sp.diags(np.repeat(1.0 / np.sqrt(masses), 3))
    d = (w @ h @ w).tocsr()
    return ((d + d.T) * 0.5).tocsr()


def rigid_body_basis(positions, masses, project):
    """Orthonormal mass-weighted rigid-body directions B, (3n, r) float64.

    positions (n, 3) nm, masses (n,) amu. project: 'molecule' (translations and rotations about
    the centre of mass), 'periodic' (translations only) or None (r = 0).
    """
    n = masses.shape[0]
    if project is None:
        return np.zeros((3 * n, 0))
    sqm = np.sqrt(masses)
    eye = np.eye(3)
    trans = [(sqm[:, None] * eye[a][None, :]).ravel() for a in range(3)]
    rots = []
    if project == "molecule":
        rel = positions - (masses @ positions) / masses.sum()
        rots = [(sqm[:, None] * np.cross(eye[a][None, :], rel)).ravel() for a in range(3)]
    u, s, _ = np.linalg.svd(np.stack(trans + rots, axis=1), full_matrices=False)
    return u[:, s > RIGID_RANK_TOLERANCE * s[0]]


def rigid_shift(d, sigma=0.0):
    """An eigenvalue s (ps^-2) above the whole spectrum of D, and far from sigma: |sigma| plus four
    times the Gershgorin bound max_i sum_j |D_ij| >= |lambda|, plus one."""
    return abs(sigma) + 4.0 * float(abs(d).sum(axis=1).max()) + 1.0


# --------------------------------------------------------------------------------------------
# solvers: each returns (eigenvalues (m,), vectors (3n, m)) ascending
# --------------------------------------------------------------------------------------------
def _dense_modes(d, b):
    """All 3n - r eigenpairs: eigh of the dense A = P D P + s B B^T, dropping the r at s.
    A = D - B (D B)^T - (D B) B^T + B (B^T D B + s I) B^T, by rank-r updates. d: sparse or ndarray."""
    a = d.toarray() if sp.issparse(d) else np.array(d, dtype=np.float64)
    r = b.shape[1]
    if r:
        db = np.asarray(d @ b)
        a += b @ (b.T @ db + rigid_shift(d) * np.eye(r)) @ b.T - b @ db.T - db @ b.T
    vals, vecs = np.linalg.eigh(a)
    return vals[: a.shape[0] - r], vecs[:, : a.shape[0] - r]


def _shift_invert_operator(d, b, sigma, shift):
    """LinearOperator x -> (P D P + shift B B^T - sigma I)^{-1} x, by LU of D - sigma I + Woodbury."""
    dim = d.shape[0]
    try:
        lu = spla.splu((d - sigma * sp.identity(dim)).tocsc())
    except RuntimeError:                       # "Factor is exactly singular"
        raise InputError("the shift sigma is an eigenvalue of the mass-weighted Hessian; "
                         "pass another sigma (cm^-1)") from None
    r = b.shape[1]
    if r == 0:
        return spla.LinearOperator((dim, dim), matvec=lu.solve, dtype=np.float64)
    db = np.asarray(d @ b)
    u = np.hstack([b, db])
    core = np.block([[b.T @ db + shift * np.eye(r), -np.eye(r)], [-np.eye(r), np.zeros((r, r))]])
    y = lu.solve(u)
    cap = np.linalg.inv(core) + u.T @ y
    cap_lu = scipy.linalg.lu_factor(cap)

    def solve(x):
        y0 = lu.solve(np.asarray(x, dtype=np.float64))
        return y0 - y @ scipy.linalg.lu_solve(cap_lu, u.T @ y0)

    return spla.LinearOperator((dim, dim), matvec=lambda x: solve(x.ravel()), matmat=solve,
                               dtype=np.float64)


def _projected_operator(d, b):
    """LinearOperator x -> P D P x with P = I - B B^T."""
    def proj(x):
        return x - b @ (b.T @ x)

    return spla.LinearOperator(d.shape, matvec=lambda x: proj(d @ proj(x)), dtype=np.float64)


def _sparse_modes(d, b, k, which, sigma_cm):
    if which == "highest":
        vals, vecs = spla.eigsh(_projected_operator(d, b), k=k, which="LA")
    else:
        sigma = float(wavenumbers_to_eigenvalues(sigma_cm))
        op = _shift_invert_operator(d, b, sigma, rigid_shift(d, sigma))
        vals, vecs = spla.eigsh(d, k=k, sigma=sigma, which="LM", OPinv=op)
    order = np.argsort(vals)
    return vals[order], vecs[:, order]


def mass_weighted_operator(jacobian, masses):
    """x -> D x = M^{-1/2} (-J) M^{-1/2} x from the Jacobian's matvec (long-range part included)."""
    w = np.repeat(1.0 / np.sqrt(masses), 3)

    def apply(x):
        x = np.asarray(x, dtype=np.float64)
        wx = w[:, None] * x.reshape(w.shape[0], -1)
        return (-w[:, None] * jacobian.matvec(wx)).reshape(x.shape)

    return spla.LinearOperator((w.shape[0], w.shape[0]), matvec=apply, matmat=apply, dtype=np.float64)


def _lanczos_modes(d, b, k, which):
    """k eigenpairs of A = P D P + s B B^T by Lanczos (no inversion), for an operator D."""
    def proj(x):
        return x - b @ (b.T @ x)

    shift = 0.0
    if which == "lowest" and b.shape[1]:
        top = spla.eigsh(d, k=1, which="LA", tol=1e-3, return_eigenvectors=False)[0]
        shift = 2.0 * abs(float(top)) + 1.0

    def apply(x):
        x = np.asarray(x, dtype=np.float64)
        return proj(d @ proj(x)) + shift * (b @ (b.T @ x))

    op = spla.LinearOperator(d.shape, matvec=apply, matmat=apply, dtype=np.float64)
    vals, vecs = spla.eigsh(op, k=k, which="SA" if which == "lowest" else "LA", ncv=max(2 * k + 1, 40))
    order = np.argsort(vals)
    return vals[order], vecs[:, order]


# --------------------------------------------------------------------------------------------
# the public entry point
# --------------------------------------------------------------------------------------------
def normal_modes(jacobian, masses, positions=None, project=None, k=None, which="lowest",
                 sigma=-10.0, method="auto"):
    """Normal modes of a force Jacobian.

    Parameters
    ----------
    jacobian : ForceJacobian (anything with ``to_bsr()``, ``atoms``, ``n_atoms``), blocks in
        kJ mol^-1 nm^-2, for n atoms (all of them or a selection); one with a long-range part
        (Ewald) is solved dense or by Lanczos on its matvec (module docstring).
    masses : (n_atoms,) or (n,) amu.
    positions : (n_atoms, 3) or (n, 3) nm; needed for project='molecule'.
    project : None, 'molecule' (remove 3 translations + 3 rotations, 2 if linear) or 'periodic'
        (remove 3 translations). Removed modes are not reported. Needs the full Jacobian.
    k : number of modes to return (None: all 3n - r).
    which : 'lowest' or 'highest' (with k).
    sigma : shift (cm^-1, negative = imaginary) for the sparse lowest-k solver; the modes whose
        eigenvalues are nearest its eigenvalue are found.
    method : 'auto' (dense up to DENSE_MAX_DOF degrees of freedom or when k covers nearly all
        modes, sparse otherwise), 'dense' or 'sparse'.

    Returns
    -------
    NormalModes, modes in ascending order of eigenvalue.
    """
    if project not in PROJECTIONS:
        raise InputError(f"project must be one of {PROJECTIONS}; got {project!r}")
    if which not in ("lowest", "highest"):
        raise InputError(f"which must be 'lowest' or 'highest'; got {which!r}")
    if method not in ("auto", "dense", "sparse"):
        raise InputError(f"method must be 'auto', 'dense' or 'sparse'; got {method!r}")
    atoms, n_atoms = _jacobian_atoms(jacobian)
    m = _checked_masses(masses, atoms, n_atoms)
    if project is not None and atoms.shape[0] != n_atoms:
        raise InputError(f"rigid-body projection needs the Jacobian of all {n_atoms} atoms; this "
                         f"one covers {atoms.shape[0]} (pass project=None)")
    if project == "molecule" and positions is None:
        raise InputError("project='molecule' needs positions (n_atoms, 3) in nm")
    x = None if positions is None else _per_atom(positions, atoms, n_atoms, "positions", (3,))
    b = rigid_body_basis(x, m, project)
    n_vib = 3 * atoms.shape[0] - b.shape[1]
    if k is not None and not (isinstance(k, (int, np.integer)) and 1 <= k <= n_vib):
        raise InputError(f"k must be an integer from 1 to {n_vib}; got {k!r}")
    dim = 3 * atoms.shape[0]
    sparse = method == "sparse" or (method == "auto" and k is not None and dim > DENSE_MAX_DOF and k < n_vib - 1)
    if getattr(jacobian, "long_range", None) is not None:    # low rank couples everything: dense or Lanczos
        if sparse:
            if k is None or k >= dim - 1:
                raise InputError(f"the Lanczos solver needs k below {dim - 1}; use method='dense'")
            vals, vecs = _lanczos_modes(mass_weighted_operator(jacobian, m), b, k, which)
        else:
            w = np.repeat(1.0 / np.sqrt(m), 3)
            d = -np.asarray(jacobian.to_dense(), dtype=np.float64).reshape(dim, dim) * w[:, None] * w[None, :]
            vals, vecs = _dense_modes(0.5 * (d + d.T), b)
            if k is not None:
                sel = slice(0, k) if which == "lowest" else slice(n_vib - k, n_vib)
                vals, vecs = vals[sel], vecs[:, sel]
        return NormalModes(eigenvalues=vals, vectors=vecs.T.reshape(-1, atoms.shape[0], 3),
                           masses=m, atoms=atoms, projection=project, n_rigid=int(b.shape[1]))
    d = mass_weighted_hessian(jacobian, m)
    if sparse:
        if k is None or k >= d.shape[0] - 1:
            raise InputError(f"the sparse solver needs k below {d.shape[0] - 1}; use method='dense'")
        vals, vecs = _sparse_modes(d, b, k, which, sigma)
    else:
        vals, vecs = _dense_modes(d, b)
        if k is not None:
            sel = slice(0, k) if which == "lowest" else slice(n_vib - k, n_vib)
            vals, vecs = vals[sel], vecs[:, sel]
    return NormalModes(eigenvalues=vals, vectors=vecs.T.reshape(-1, atoms.shape[0], 3),
                       masses=m, atoms=atoms, projection=project, n_rigid=int(b.shape[1]))


def default_projection(jacobian, box):
    """'periodic' in a box, 'molecule' without one, None for a partial Jacobian."""
    if len(jacobian.atoms) != jacobian.n_atoms:
        return None
    return "molecule" if box is None else "periodic"
