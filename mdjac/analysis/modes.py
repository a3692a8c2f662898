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

Solvers. All work on A = P D P + s B B^T: the projected matrix with the rigid-body directions
moved to an eigenvalue s outside the part of the spectrum asked for, so that the spectrum of A is
the 3n - r vibrational eigenvalues plus r copies of s.

* dense: ``scipy.linalg.eigh`` (LAPACK's MRRR driver, only the eigenvectors asked for) of A
  built as a float64 array from the Jacobian's blocks (and, with a long-range part, its matvec on
  chunks of unit vectors), with s above the whole spectrum (:func:`rigid_shift`). Memory
  8 (3n)^2 bytes for A plus 8 (3n) per eigenvector; time grows as (3n)^3.
* Lanczos (ARPACK's ``eigsh`` without inversion) on the operator x -> A x, from the sparse
  mass-weighted blocks plus the long-range part's matvec (Ewald's low rank, PME's mesh): the
  smallest algebraic eigenvalues for the lowest modes (s then at the top of the spectrum, from a
  few Lanczos steps for the largest eigenvalue of D), the largest algebraic ones for the highest
  (s = 0), each to a residual |A v - lambda v| below :data:`LANCZOS_TOL` |lambda| (which bounds
  the eigenvalue's error; a float32 Jacobian's own rounding is of that order). Memory: the blocks
  (built in float64, kept in the Jacobian's dtype) plus ncv Lanczos vectors of 3n. ARPACK's own
  vector work runs with one BLAS thread (:func:`one_blas_thread`). Convergence takes a few
  hundred to a few thousand matvecs for the lowest modes of a liquid or a protein off its
  minimum, whose spectrum is dense at its low end. Lanczos may return an exactly degenerate
  eigenvalue (the unprojected rigid-body zeros, the floppy modes of an under-constrained network)
  with too low a multiplicity; project the rigid-body modes out when asking for the lowest ones.
* LOBPCG (scipy's ``lobpcg``, ``method='lobpcg'``, the lowest modes only): a block of k + :data:`LOBPCG_EXTRA` vectors kept
  orthogonal to span(B) (so no shift s, and no Lanczos steps to find the top of the spectrum),
  preconditioned with T = (D_diag - sigma I)^{-1}, D_diag the 3x3 diagonal blocks of D
  (:func:`atom_block_preconditioner`): the lowest modes of a liquid or a protein off its minimum move a few
  atoms each (most often one hydrogen across its bond), which T was meant to catch; measured, it takes more
  matvecs than Lanczos (``benchmarks/bench_modes_solvers.py``: a hydrogen's mode couples to its oxygen and
  its neighbours as strongly as to itself), so it is not the default. It stops on the
  same criterion as Lanczos, each of the k residuals below :data:`LANCZOS_TOL` |lambda|, checked every
  :data:`LOBPCG_CHECK_EVERY` iterations (the extra vectors need not converge; |lambda| counted as at least 1e-6
  of D's largest diagonal entry, so that a zero can converge); should it not get there in
  :data:`LOBPCG_MAX_ITERATIONS` iterations, Lanczos takes over. Memory: the blocks plus about 12 (k + 6) vectors of 3n.
* nearest a shift sigma (``sigma=``, cm^-1): dense eigh, picking the k eigenvalues nearest sigma's;
  when that does not fit in memory, for a Jacobian without a long-range part, ``eigsh`` in
  shift-invert mode with (A - sigma I)^{-1} from one sparse LU of D - sigma I and the Woodbury identity
  (A = D + U C U^T, U = [B, D B], C = [[B^T D B + s I, -I], [-I, 0]]). The LU stays sparse for
  chains and short cutoffs but fills in for 3D systems with long ones; running out of memory
  there is reported as an InputError.

``method='auto'`` takes dense eigh up to :data:`DENSE_MAX_DOF` degrees of freedom (or when k is
more than a quarter of the modes, or with sigma) and Lanczos above: where Lanczos becomes the
faster is measured by ``benchmarks/bench_modes_solvers.py``. Before solving, the memory the chosen solver needs is
estimated (:func:`solver_bytes`) and compared with the memory available (or ``max_memory``): an
automatic choice falls back to Lanczos when dense eigh does not fit, and a request that does not
fit at all is refused with both numbers (InputError), before anything large is allocated.

Everything from the Jacobian onward is accumulated in float64, whatever the Jacobian's dtype.
"""
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import InputError
from ..jacobian import block_rows_product, row_pointers, rows_of

#: speed of light in cm ps^-1
C_CM_PER_PS = 2.99792458e-2
#: rigid-body directions whose singular value is below this fraction of the largest are dropped
RIGID_RANK_TOLERANCE = 1e-6
#: method='auto' solves by dense eigh up to this many degrees of freedom, by Lanczos above
#: (where Lanczos becomes the faster: benchmarks/bench_modes_solvers.py)
DENSE_MAX_DOF = 450
#: Lanczos basis size (ARPACK's ncv) for k modes: max(2 k + 1, LANCZOS_MIN_NCV)
LANCZOS_MIN_NCV = 40
#: Lanczos stops when every residual |A v - lambda v| is below this times |lambda|; an eigenvalue then
#: lies within that distance of the one reported (so wavenumbers to half of it, relative)
LANCZOS_TOL = 1e-6
#: LOBPCG's block for k modes: k plus this many vectors, which speed up the k-th's convergence and need not converge
LOBPCG_EXTRA = 6
#: LOBPCG iterations between checks of the k wanted residuals (scipy's lobpcg stops only when its whole block has
#: converged; each check costs two products of the block)
LOBPCG_CHECK_EVERY = 25
#: LOBPCG gives up (and the modes are found by Lanczos) after this many iterations
LOBPCG_MAX_ITERATIONS = 1000
#: columns of the long-range part made dense per matvec when dense eigh needs it
DENSE_CHUNK = 256
PROJECTIONS = (None, "molecule", "periodic")
METHODS = ("auto", "dense", "sparse", "lobpcg")


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
    solver : str, how they were found (dense eigh, or Lanczos with its matvecs, and a sigma).
    """

    eigenvalues: np.ndarray
    vectors: np.ndarray
    masses: np.ndarray
    atoms: np.ndarray
    projection: Optional[str] = None
    n_rigid: int = 0
    solver: str = ""

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
        how = f"; {self.solver}" if self.solver else ""
        lines.append(f"{self.n_modes} modes of {self.atoms.shape[0]} atoms; {note}{how}")
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


def _only_massless_left_out(masses, atoms, n_atoms):
    """True if ``masses`` has all n_atoms rows and every atom the Jacobian leaves out is massless (virtual
    sites, mdjac.sites: they move with their parents, so rigid-body motions of the kept atoms are the system's)."""
    arr = np.asarray(masses, dtype=np.float64)
    left_out = np.ones(n_atoms, dtype=bool)
    left_out[atoms] = False
    return arr.shape == (n_atoms,) and bool(np.all(arr[left_out] == 0))


def _checked_masses(masses, atoms, n_atoms):
    """(n,) float64 amu; raises InputError unless finite and positive."""
    m = _per_atom(masses, atoms, n_atoms, "masses")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise InputError("masses must be finite and positive (amu); got a value <= 0 or not finite")
    return m


# --------------------------------------------------------------------------------------------
# the mass-weighted Hessian and the rigid-body basis
# --------------------------------------------------------------------------------------------
def mass_weighted_blocks(jacobian, masses):
    """The stored blocks of D = M^{-1/2} (-J) M^{-1/2}, symmetrised, in float64: (rows, cols, blocks (nnz, 3, 3)).

    ``masses`` are the (n,) masses (amu) of the Jacobian's atoms, already checked. A block and its
    transpose partner are averaged, D_ij = (D_ij + D_ji^T) / 2 (a pattern that is not symmetric
    gets its missing partners). The long-range part, if any, is not included.
    """
    rows, cols = jacobian.rows, jacobian.cols
    blocks = np.asarray(jacobian.blocks, dtype=np.float64) * -1.0
    if not np.all(np.isfinite(blocks)):
        raise InputError("the force Jacobian holds NaN or inf; recompute it from finite positions")
    w = 1.0 / np.sqrt(masses)
    blocks *= (w[rows] * w[cols])[:, None, None]
    n = int(jacobian.n)
    keys, partners = rows * n + cols, cols * n + rows
    where = np.minimum(np.searchsorted(keys, partners), len(keys) - 1)
    if len(keys) and np.array_equal(keys[where], partners):
        blocks += blocks[where].transpose(0, 2, 1)
        blocks *= 0.5
        return rows, cols, blocks
    d = sp.bsr_matrix((blocks, cols, jacobian.indptr()), shape=(3 * n, 3 * n)).tocsr()
    d = sp.bsr_matrix((d + d.T) * 0.5, blocksize=(3, 3))
    d.sort_indices()
    return rows_of(d.indptr), d.indices.astype(np.int64), np.asarray(d.data)


def mass_weighted_hessian(jacobian, masses):
    """D = M^{-1/2} (-J) M^{-1/2}, symmetrised, as (3n, 3n) float64 BSR (kJ mol^-1 nm^-2 amu^-1).

    ``masses`` are the (n,) masses (amu) of the Jacobian's atoms, already checked; the long-range
    part, if any, is left out (:func:`mass_weighted_operator` includes it).
    """
    rows, cols, blocks = mass_weighted_blocks(jacobian, masses)
    n = int(jacobian.n)
    return sp.bsr_matrix((blocks, cols, row_pointers(rows, n)), shape=(3 * n, 3 * n))


def mass_weighted_operator(jacobian, masses):
    """x -> D x for x (3n,) or (3n, m): the sparse mass-weighted blocks plus, with a long-range part
    (Ewald, PME), -M^{-1/2} J_lr M^{-1/2} x from its matvec. A LinearOperator in float64.

    The blocks are kept in the Jacobian's dtype (a float32 Jacobian's blocks, mass-weighted in
    float64 and rounded once more, half the memory to read per product) and summed in float64,
    block rows in parallel (numba)."""
    rows, cols, blocks = mass_weighted_blocks(jacobian, masses)
    n = int(jacobian.n)
    indptr = row_pointers(rows, n)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    blocks = np.ascontiguousarray(blocks.astype(np.result_type(jacobian.blocks.dtype, np.float32)))
    long_range = getattr(jacobian, "long_range", None)
    w = np.repeat(1.0 / np.sqrt(masses), 3)

    def apply(x):
        x = np.asarray(x, dtype=np.float64)
        flat = np.ascontiguousarray(x.reshape(3 * n, -1))
        out = np.empty((n, 3, flat.shape[1]))
        block_rows_product(indptr, cols, blocks, flat.reshape(n, 3, -1), out)
        out = out.reshape(flat.shape)
        if long_range is not None:
            out -= w[:, None] * long_range.matvec(w[:, None] * flat)
        return out.reshape(x.shape)

    return spla.LinearOperator((3 * n, 3 * n), matvec=apply, matmat=apply, dtype=np.float64)


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
    times the Gershgorin bound max_i sum_j |D_ij| >= |lambda|, plus one. d: sparse or ndarray
    (the dense one row chunk by row chunk, so no second copy is made)."""
    if sp.issparse(d):
        bound = float(abs(d).sum(axis=1).max())
    else:
        bound = max(float(np.abs(d[i:i + DENSE_CHUNK]).sum(axis=1).max()) for i in range(0, d.shape[0], DENSE_CHUNK))
    return abs(sigma) + 4.0 * bound + 1.0


# --------------------------------------------------------------------------------------------
# memory: estimated before anything large is allocated
# --------------------------------------------------------------------------------------------
def available_memory():
    """Bytes of memory available to a new allocation now (Linux's MemAvailable, else the free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def solver_bytes(solver, dim, n_vectors, nnz_blocks, long_range=False):
    """Bytes a solver allocates (an estimate of its peak beyond the Jacobian itself).

    solver: 'dense' (the float64 matrix, its eigenvectors and the chunks that build it), 'lanczos'
    (the float64 mass-weighted blocks, built with one temporary copy, and the Lanczos basis), 'lobpcg'
    (the blocks and a dozen copies of its block of vectors) or
    'shift-invert' (the same plus the sparse LU, at least as large as the blocks; its fill-in is not
    known in advance). dim: 3n; n_vectors: eigenvectors returned (dense), Lanczos basis size or LOBPCG block size;
    nnz_blocks: stored 3x3 blocks; long_range: the Jacobian has a long-range part.
    """
    blocks = 2 * 80 * nnz_blocks
    if solver == "dense":
        chunk = 3 * 8 * dim * DENSE_CHUNK * (2 if long_range else 0)
        return 8 * dim * (dim + n_vectors) + blocks + chunk
    basis = 8 * dim * (n_vectors + 4)
    if solver == "lanczos":
        return blocks + basis
    if solver == "lobpcg":      # X, AX, the residuals, the directions and their products, and Rayleigh-Ritz's copies
        return blocks + 8 * dim * (12 * n_vectors + 4)
    return 2 * blocks + basis


def _size(nbytes):
    """Bytes as text: GB from 0.1 GB up, MB below."""
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.1f} MB"


def _check_memory(solver, need, budget):
    if need > budget:
        raise InputError(f"{solver} needs about {_size(need)} of memory and {_size(budget)} is "
                         "available: ask for fewer modes (k, mdjac modes -k), another method, or a larger "
                         "max_memory (--max-memory GB) if more can be freed")


# --------------------------------------------------------------------------------------------
# solvers: each returns (eigenvalues (m,), vectors (3n, m)) ascending, and a description
# --------------------------------------------------------------------------------------------
def dense_mass_weighted(jacobian, masses):
    """D as a (3n, 3n) float64 array, symmetrised, the long-range part included (its matvec on
    :data:`DENSE_CHUNK` unit vectors at a time, or its ``add_dense`` when it has one)."""
    n = int(jacobian.n)
    dim = 3 * n
    rows, cols, blocks = mass_weighted_blocks(jacobian, masses)
    try:
        a = np.zeros((dim, dim))
    except MemoryError:     # the estimate passed but the memory went meanwhile
        raise InputError(f"dense eigh of {dim} degrees of freedom: no memory for its {_size(8 * dim * dim)} "
                         "matrix; ask for fewer modes (k) so that Lanczos is used") from None
    a.reshape(n, 3, n, 3)[rows, :, cols, :] = blocks
    del blocks
    long_range = getattr(jacobian, "long_range", None)
    if long_range is not None:
        w = np.repeat(1.0 / np.sqrt(masses), 3)
        if hasattr(long_range, "add_dense"):        # a part that builds its dense form in place (generalized Born)
            long_range.add_dense(a, w, sign=-1.0)
        else:
            for c0 in range(0, dim, DENSE_CHUNK):
                c1 = min(c0 + DENSE_CHUNK, dim)
                unit = np.zeros((dim, c1 - c0))
                unit[np.arange(c0, c1), np.arange(c1 - c0)] = w[c0:c1]
                a[:, c0:c1] -= w[:, None] * long_range.matvec(unit)
        for r0 in range(0, dim, DENSE_CHUNK):     # symmetrise, a row chunk against its column chunk
            r1 = min(r0 + DENSE_CHUNK, dim)
            mean = 0.5 * (a[r0:r1, :r1] + a[:r1, r0:r1].T)
            a[r0:r1, :r1] = mean
            a[:r1, r0:r1] = mean.T
    return a


def _dense_modes(a, b, select):
    """Eigenpairs of A = P D P + s B B^T (s above the spectrum) by LAPACK's MRRR driver, only those of
    ``select`` ((first, last) indices among the 3n - r vibrational ones, ascending). ``a`` is D as a
    float64 array, overwritten with A (rank-2r update, row chunk by row chunk) and then by LAPACK."""
    r = b.shape[1]
    if r:
        db = a @ b
        u = np.hstack([b, db])
        core = np.block([[b.T @ db + rigid_shift(a) * np.eye(r), -np.eye(r)], [-np.eye(r), np.zeros((r, r))]])
        right = core @ u.T
        for r0 in range(0, a.shape[0], DENSE_CHUNK):
            a[r0:r0 + DENSE_CHUNK] += u[r0:r0 + DENSE_CHUNK] @ right
    return scipy.linalg.eigh(a, subset_by_index=list(select), driver="evr", overwrite_a=True, check_finite=False)


def one_blas_thread():
    """A context in which BLAS runs on one thread: ARPACK's own vector work is many small BLAS calls
    that lose more to thread synchronisation than they gain (most on a loaded machine); the matvecs
    inside keep their own threads (numba, scipy.fft)."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1, user_api="blas")


def _lanczos_modes(d, b, k, which, counter, tol=LANCZOS_TOL):
    """k eigenpairs of A = P D P + s B B^T by Lanczos (no inversion), for an operator D: the smallest
    algebraic (which='lowest'; s at the top of the spectrum) or largest (which='highest'; s = 0)."""
    def proj(x):
        return x - b @ (b.T @ x)

    def counted(x):
        counter[0] += 1 if x.ndim == 1 else x.shape[1]
        return d @ x

    shift = 0.0
    if which == "lowest" and b.shape[1]:
        with one_blas_thread():
            top = float(spla.eigsh(spla.LinearOperator(d.shape, matvec=counted, dtype=np.float64), k=1,
                                   which="LA", tol=1e-3, return_eigenvectors=False)[0])
        shift = top + 0.01 * abs(top) + 1.0      # above every eigenvalue of D: Lanczos's tolerance is 1e-3

    def apply(x):
        x = np.asarray(x, dtype=np.float64)
        return proj(counted(proj(x))) + shift * (b @ (b.T @ x))

    op = spla.LinearOperator(d.shape, matvec=apply, matmat=apply, dtype=np.float64)
    v0 = proj(np.random.default_rng(0).standard_normal(d.shape[0]))
    with one_blas_thread():
        vals, vecs = spla.eigsh(op, k=k, which="SA" if which == "lowest" else "LA",
                                ncv=min(max(2 * k + 1, LANCZOS_MIN_NCV), d.shape[0]), v0=v0, tol=tol)
    order = np.argsort(vals)
    return vals[order], vecs[:, order]


def atom_block_preconditioner(diagonal):
    """x -> T x, T = blockdiag(V_i |Lambda_i - sigma|^{-1} V_i^T) from the (n, 3, 3) diagonal blocks D_ii = V_i Lambda_i V_i^T
    of D (kJ mol^-1 nm^-2 amu^-1, float64), for x (3n,) or (3n, m): symmetric positive definite, close to
    (D - sigma I)^{-1} for a mode that moves one atom. sigma lies below every block's eigenvalues (by Cauchy's
    interlacing the lowest eigenvalue of D lies below the lowest of any D_ii): the lowest, less its magnitude,
    less 1e-3 of the largest."""
    values, vectors = np.linalg.eigh(0.5 * (diagonal + diagonal.transpose(0, 2, 1)))
    sigma = values.min() - abs(values.min()) - 1e-3 * np.abs(values).max()
    inverse = np.einsum("nab,nb,ncb->nac", vectors, 1.0 / np.abs(values - sigma), vectors)
    n = diagonal.shape[0]

    def apply(x):
        x = np.asarray(x, dtype=np.float64)
        return np.einsum("nab,nbm->nam", inverse, x.reshape(n, 3, -1)).reshape(x.shape)

    return apply


def _lobpcg_modes(d, b, k, counter, diagonal, tol=LANCZOS_TOL):
    """The k smallest eigenpairs of D on the complement of span(B), by LOBPCG (scipy's, the constraint Y = B)
    preconditioned with :func:`atom_block_preconditioner` of ``diagonal`` (n, 3, 3), D's diagonal blocks. The block
    has k + :data:`LOBPCG_EXTRA` vectors; every :data:`LOBPCG_CHECK_EVERY` iterations the k lowest are checked, and
    it stops when each residual |D v - lambda v| is below ``tol`` |lambda| (as Lanczos's; |lambda| taken as at least
    1e-6 of D's largest diagonal entry, so that a zero eigenvalue can converge). Returns None when that
    has not happened after :data:`LOBPCG_MAX_ITERATIONS` iterations."""
    import warnings

    def counted(x):
        counter[0] += 1 if x.ndim == 1 else x.shape[1]
        return d @ x

    dim = d.shape[0]
    size = min(k + LOBPCG_EXTRA, (dim - b.shape[1]) // 5) if dim - b.shape[1] >= 5 * k else k
    op = spla.LinearOperator(d.shape, matvec=counted, matmat=counted, dtype=np.float64)
    precondition = atom_block_preconditioner(diagonal)
    pre = spla.LinearOperator(d.shape, matvec=precondition, matmat=precondition, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((dim, size))
    x -= b @ (b.T @ x)
    floor = 1e-6 * np.abs(diagonal).max()       # |lambda| below it counts as it: a zero's residual is |D| times rounding
    for _ in range(0, LOBPCG_MAX_ITERATIONS, LOBPCG_CHECK_EVERY):
        with one_blas_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)     # "not reaching the requested tolerance": checked here
            vals, x, history = spla.lobpcg(op, x, M=pre, Y=b if b.shape[1] else None, tol=1e-300,
                                           maxiter=LOBPCG_CHECK_EVERY, largest=False, retResidualNormsHistory=True)
        order = np.argsort(vals)
        vals, x = vals[order], x[:, order]
        residuals = np.asarray(history[-1])[order]     # of the vectors returned (scipy's closing Rayleigh-Ritz)
        if np.all(residuals[:k] <= tol * np.maximum(np.abs(vals[:k]), floor)):
            return vals[:k], x[:, :k]
    return None


def _shift_invert_operator(d, b, sigma, shift):
    """LinearOperator x -> (P D P + shift B B^T - sigma I)^{-1} x, by LU of D - sigma I + Woodbury."""
    dim = d.shape[0]
    try:
        lu = spla.splu((d - sigma * sp.identity(dim)).tocsc())
    except RuntimeError:                       # "Factor is exactly singular"
        raise InputError("the shift sigma is an eigenvalue of the mass-weighted Hessian; "
                         "pass another sigma (cm^-1)") from None
    except MemoryError:
        raise InputError(f"the sparse LU of the {dim} x {dim} mass-weighted Hessian for sigma ran out of memory "
                         "(it fills in for 3D systems): ask for the lowest modes (no sigma), or for a selection "
                         "of atoms") from None
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


def _shift_invert_modes(d, b, k, sigma):
    """The k eigenpairs of A nearest sigma (ps^-2), by eigsh in shift-invert mode on a sparse D."""
    op = _shift_invert_operator(d, b, sigma, rigid_shift(d, sigma))
    with one_blas_thread():
        vals, vecs = spla.eigsh(d, k=k, sigma=sigma, which="LM", OPinv=op)
    order = np.argsort(vals)
    return vals[order], vecs[:, order]


# --------------------------------------------------------------------------------------------
# the public entry point
# --------------------------------------------------------------------------------------------
def normal_modes(jacobian, masses, positions=None, project=None, k=None, which="lowest",
                 sigma=None, method="auto", max_memory=None):
    """Normal modes of a force Jacobian.

    Parameters
    ----------
    jacobian : ForceJacobian (``rows``, ``cols``, ``blocks``, ``atoms``, ``n_atoms``, and a
        ``long_range`` part or None), blocks in kJ mol^-1 nm^-2, for n atoms (all of them or a
        selection); a long-range part (Ewald, PME) enters through its matvec.
    masses : (n_atoms,) or (n,) amu.
    positions : (n_atoms, 3) or (n, 3) nm; needed for project='molecule'.
    project : None, 'molecule' (remove 3 translations + 3 rotations, 2 if linear) or 'periodic'
        (remove 3 translations). Removed modes are not reported. Needs the full Jacobian.
    k : number of modes to return (None: all 3n - r).
    which : 'lowest' (the k smallest eigenvalues, imaginary modes first) or 'highest'.
    sigma : None, or a wavenumber (cm^-1, negative = imaginary): the k modes whose eigenvalues are
        nearest its eigenvalue instead (needs k; ``which`` is then unused).
    method : 'auto' (dense eigh up to DENSE_MAX_DOF degrees of freedom, or when k is more than a
        quarter of the modes, or with sigma, unless it does not fit in memory; Lanczos, or
        shift-invert with sigma, otherwise), 'dense', 'sparse' (Lanczos; with sigma, shift-invert
        on a sparse LU) or 'lobpcg' (the lowest modes by preconditioned LOBPCG, no sigma).
    max_memory : None (the memory available now) or bytes: a solver whose estimated memory
        (:func:`solver_bytes`) exceeds it is refused with an InputError before it starts.

    Returns
    -------
    NormalModes, modes in ascending order of eigenvalue; ``solver`` says how they were found.
    """
    if project not in PROJECTIONS:
        raise InputError(f"project must be one of {PROJECTIONS}; got {project!r}")
    if which not in ("lowest", "highest"):
        raise InputError(f"which must be 'lowest' or 'highest'; got {which!r}")
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(repr(m) for m in METHODS)}; got {method!r}")
    atoms, n_atoms = _jacobian_atoms(jacobian)
    m = _checked_masses(masses, atoms, n_atoms)
    if project is not None and atoms.shape[0] != n_atoms and not _only_massless_left_out(masses, atoms, n_atoms):
        raise InputError(f"rigid-body projection needs the Jacobian of all {n_atoms} atoms; this "
                         f"one covers {atoms.shape[0]} (pass project=None)")
    if project == "molecule" and positions is None:
        raise InputError("project='molecule' needs positions (n_atoms, 3) in nm")
    x = None if positions is None else _per_atom(positions, atoms, n_atoms, "positions", (3,))
    b = rigid_body_basis(x, m, project)
    dim = 3 * atoms.shape[0]
    n_vib = dim - b.shape[1]
    if k is not None and not (isinstance(k, (int, np.integer)) and 1 <= k <= n_vib):
        raise InputError(f"k must be an integer from 1 to {n_vib}; got {k!r}")
    if sigma is not None:
        if k is None:
            raise InputError("sigma picks the k modes nearest it: give k as well")
        try:
            sigma = float(sigma)
        except (TypeError, ValueError):
            raise InputError(f"sigma must be a wavenumber in cm^-1; got {sigma!r}") from None
    if max_memory is not None and not (isinstance(max_memory, (int, float, np.number)) and max_memory > 0):
        raise InputError(f"max_memory must be a positive number of bytes; got {max_memory!r}")
    budget = available_memory() if max_memory is None else float(max_memory)
    solver = _choose_solver(method, dim, n_vib, k, sigma, getattr(jacobian, "long_range", None) is not None,
                                  len(jacobian.rows), budget, which)
    n_out = n_vib if k is None else int(k)
    counter = [0]
    if solver == "dense":
        a = dense_mass_weighted(jacobian, m)
        if sigma is None:
            select = (0, n_out - 1) if which == "lowest" else (n_vib - n_out, n_vib - 1)
            vals, vecs = _dense_modes(a, b, select)
        else:
            vals, vecs = _dense_modes(a, b, (0, n_vib - 1))
            target = float(wavenumbers_to_eigenvalues(sigma))
            first = _nearest_window(vals, target, n_out)
            vals, vecs = vals[first:first + n_out], vecs[:, first:first + n_out]
        how = "dense eigh"
    elif solver == "lobpcg":
        d = mass_weighted_operator(jacobian, m)
        diagonal = -np.asarray(jacobian.diagonal(), dtype=np.float64) / m[:, None, None]
        found = _lobpcg_modes(d, b, n_out, counter, diagonal)
        if found is None:
            vals, vecs = _lanczos_modes(d, b, n_out, which, counter)
            how = (f"Lanczos after LOBPCG did not converge in {LOBPCG_MAX_ITERATIONS} iterations ({counter[0]} matvecs "
                   f"in all, residuals below {LANCZOS_TOL:g} |lambda|)")
        else:
            vals, vecs = found
            how = f"LOBPCG ({counter[0]} matvecs, residuals below {LANCZOS_TOL:g} |lambda|)"
    elif solver == "lanczos":
        vals, vecs = _lanczos_modes(mass_weighted_operator(jacobian, m), b, n_out, which, counter)
        how = f"Lanczos ({counter[0]} matvecs, residuals below {LANCZOS_TOL:g} |lambda|)"
    else:
        vals, vecs = _shift_invert_modes(mass_weighted_hessian(jacobian, m).tocsr(), b, n_out,
                                         float(wavenumbers_to_eigenvalues(sigma)))
        how = "shift-invert Lanczos"
    if sigma is not None:
        how += f", nearest {sigma:g} cm^-1"
    return NormalModes(eigenvalues=vals, vectors=vecs.T.reshape(-1, atoms.shape[0], 3),
                       masses=m, atoms=atoms, projection=project, n_rigid=int(b.shape[1]), solver=how)


def _choose_solver(method, dim, n_vib, k, sigma, long_range, nnz, budget, which="lowest"):
    """'dense', 'lobpcg', 'lanczos' or 'shift-invert', its estimated bytes checked against ``budget`` bytes
    (normal_modes's ``method`` rule); InputError when it cannot be done or does not fit."""
    iterative = "shift-invert" if sigma is not None else "lobpcg" if method == "lobpcg" else "lanczos"
    n_out = n_vib if k is None else int(k)
    ncv = min(max(2 * n_out + 1, LANCZOS_MIN_NCV), dim)
    needs = {"dense": solver_bytes("dense", dim, n_vib if sigma is not None else n_out, nnz, long_range),
             iterative: solver_bytes(iterative, dim, n_out + LOBPCG_EXTRA if iterative == "lobpcg" else ncv, nnz,
                                     long_range)}
    why_not = None          # why the iterative solver cannot be used, if it cannot
    if k is None:
        why_not = "all modes need dense eigh"
    elif ncv >= dim or k >= dim - 1:
        why_not = f"the {iterative} solver needs k below {min(dim - 1, n_vib)}"
    elif sigma is not None and long_range:
        why_not = "sigma with a long-range (Ewald, PME) part needs dense eigh (no sparse LU of it)"
    if method == "lobpcg" and (sigma is not None or which != "lowest"):
        why_not = "LOBPCG finds the lowest modes only (no sigma, which='lowest'); use method='sparse'"
    if method in ("sparse", "lobpcg") and why_not:
        raise InputError(f"{why_not}; use method='dense'")
    if method == "auto":
        # sigma: dense eigh whenever it fits (a sparse LU fills in for 3D systems, unpredictably)
        prefer_dense = why_not is not None or sigma is not None or dim <= DENSE_MAX_DOF or 4 * n_out > n_vib
        solver = "dense" if prefer_dense else iterative
        if why_not is None and needs[solver] > budget:     # the other one, if it fits or needs less
            other = iterative if solver == "dense" else "dense"
            solver = other if needs[other] < needs[solver] else solver
    else:
        solver = "dense" if method == "dense" else iterative
    name = {"dense": "dense eigh", "lobpcg": "LOBPCG", "lanczos": "Lanczos", "shift-invert": "shift-invert Lanczos"}[solver]
    _check_memory(f"{name} of {dim} degrees of freedom", needs[solver], budget)
    return solver


def _nearest_window(values, target, k):
    """First index of the k consecutive ascending ``values`` nearest ``target`` (the k nearest
    values of a sorted array are consecutive)."""
    first = int(np.clip(np.searchsorted(values, target) - k, 0, len(values) - k))
    while first + k < len(values) and abs(values[first + k] - target) < abs(values[first] - target):
        first += 1
    return first


def default_projection(jacobian, box, masses=None):
    """'periodic' in a box, 'molecule' without one, None for a partial Jacobian (one that leaves out atoms
    other than massless virtual sites, given all n_atoms ``masses``)."""
    atoms, n_atoms = _jacobian_atoms(jacobian)
    if len(atoms) != n_atoms and (masses is None or not _only_massless_left_out(masses, atoms, n_atoms)):
        return None
    return "molecule" if box is None else "periodic"
