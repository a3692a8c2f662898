"""Generalized Born implicit solvent: OpenMM's GBSAOBCForce and its amber CustomGBForces (HCT, OBC1, OBC2, GBn, GBn2).

The energy, exactly as OpenMM computes it (ReferenceObc.cpp; the expressions of
openmm.app.internal.customgbforces), for atoms with charges q_i (e), radii rho_i (nm) and scale
factors s_i:

* offset and scaled radii: or_i = rho_i - delta, sr_i = s_i or_i, the dielectric offset delta 0.009 nm
  (GBn2: 0.0195141 nm);
* the descreening integral of atom j seen from atom i (the HCT form), with U = r + sr_j,
  L = max(or_i, |r - sr_j|), where or_i < U (else 0):

      I_ij(r) = 1/L - 1/U + r/4 (1/U^2 - 1/L^2) + ln(L/U) / (2 r) + sr_j^2 / (4 r) (1/L^2 - 1/U^2)
                [+ 2 (1/or_i - 1/L) when or_i < sr_j - r: atom i inside atom j; GBSAOBCForce only]

* GBn and GBn2 add to I_ij a neck term of r_ij alone (mdjac.longrange.born_neck);
* S_i = sum_{j != i} I_ij(r_ij) over the pairs within the cutoff (all pairs without one),
  psi_i = or_i S_i / 2 and the Born radius
  OBC: B_i = 1 / (1/or_i - tanh(alpha psi - beta psi^2 + gamma psi^3) / rho_i), with OBC2's
  (alpha, beta, gamma) = (1, 0.8, 4.85) and OBC1's (0.8, 0, 2.91) (the CustomGBForce: 2.909125),
  GBn's (1.09511284, 1.907992938, 2.50798245), GBn2's per atom;
  HCT: B_i = 1 / (1/or_i - psi_i / or_i);
* the polar energy, with k the Coulomb constant, eps_in and eps_out the solute's and solvent's
  dielectrics and kappa the salt's Debye screening (nm^-1; 0 without salt), over pairs i < j
  within the cutoff and the i == j self terms (f_GB(0) = B_i):

      G_ij(r, B_i, B_j) = -k (1/eps_in - exp(-kappa f)/eps_out) q_i q_j (1/f - 1/r_c),
      f = sqrt(r^2 + B_i B_j exp(-r^2 / (4 B_i B_j))),  1/r_c = 0 without a cutoff,
      A_i(B_i) = -k (1/eps_in - exp(-kappa B_i)/eps_out) q_i^2 / (2 B_i) + ACE_i;

* the ACE surface term, ACE_i = 4 pi gamma_sa (rho_i + 0.14)^2 (rho_i / B_i)^6 (gamma_sa the
  surface-area energy, kJ mol^-1 nm^-2; 0 for none).

So E = sum_{i<j} G_ij(r_ij, B_i, B_j) + sum_i A_i(B_i), B_i = b_i(S_i), S_i = sum_j I_ij(r_ij).

The Jacobian: factored, a few force evaluations. Every Born radius depends on every distance
(within the cutoff), so the Hessian couples atoms within two cutoffs, all of them without one;
the term's Jacobian part (:class:`mdjac.born_jacobian.BornJacobian`) keeps it as a sum of a
pairwise-radial part and a factored rank-2N part: built in O(N^2) (a few force evaluations), its
matvec O(N^2), about a force evaluation.
With Q = dS/dx (N x 3N: row i is dS_i/dx) and the chain rule through r and B,

    H = sum_{i<j} h_ij(phi'_ij, phi''_ij)  +  Q^T M' Q + W'^T Q + Q^T W'

* the radial part: each pair's h = phi'' u u^T + (phi'/r)(I - u u^T) (as the radial route,
  mdjac.strategies.replicate), with phi' = G_r + beta_i I'_ij + beta_j I'_ji and phi'' the same
  with second derivatives, beta_i = (dE/dB_i) b_i': the curvature of the distances at fixed Born
  radii and of each S_i's integrals;
* M' = diag(b') M diag(b') + diag(dE/dB b''), M the Hessian of E in the Born radii at fixed
  distances (the pairs' G_BB and A''); W'_i = b_i' W_i, W_i = sum_j G_{r B_i} grad r_ij.

Every scalar derivative (I', I'', b', b'', the 3 x 3 Hessians of G in (r, B_i, B_j), A', A'')
comes from AD of the energy pieces stated once here (mdjac.kernel); the chain rule through r and
B is bookkeeping, as the chain matrix is. :meth:`GeneralizedBorn.energy_function` composes the
same pieces into one function of all positions, which the dense strategy differentiates as a
whole: the independent check of the factored Jacobian.
"""
import numpy as np
from mindspore import ops

from .. import assembly, kernel
from ..chunks import padded_chunks
from ..errors import InputError, finite_numbers
from ..space import box_vectors, minimum_image
from ..terms.base import LongRangeTerm
from .born_neck import neck_integral
from .ewald import OPENMM_COULOMB_CONSTANT

#: nm, OpenMM's dielectric offset of the radii (ObcParameters, customgbforces).
DIELECTRIC_OFFSET = 0.009
#: nm, the ACE term's solvent probe radius.
PROBE_RADIUS = 0.14
#: (alpha, beta, gamma) of the OBC radii: OBC2 (GBSAOBCForce, amber's igb=5) and OBC1 (igb=2).
OBC2 = (1.0, 0.8, 4.85)
OBC1 = (0.8, 0.0, 2.91)
#: (alpha, beta, gamma) of GBn's radii (amber's igb=7; GBn2, igb=8, has them per atom).
GBN = (1.09511284, 1.907992938, 2.50798245)
#: kJ mol^-1 nm^-2, GBSAOBCForce's default surface-area energy gamma_sa.
SURFACE_AREA_ENERGY = 2.25936
#: pairs per compiled call of the pieces' derivatives (bounds the compiled calls' memory)
PAIR_CHUNK = 1 << 16


# ------------------------------------------------------------------ the energy's pieces (MindSpore ops)
def descreening(r, offset_i, scaled_j, inside):
    """I_ij (...) nm^-1: atom j's descreening integral seen from atom i at distance r (...) nm
    (module docstring); offset_i = or_i, scaled_j = sr_j nm, broadcasting against r; inside: 1.0 to
    add the term of atom i inside atom j (GBSAOBCForce), 0.0 not (the CustomGBForces)."""
    upper = r + scaled_j
    lower = ops.maximum(offset_i, ops.abs(r - scaled_j))
    inv_u, inv_l = 1.0 / upper, 1.0 / lower
    term = (inv_l - inv_u + 0.25 * r * (inv_u * inv_u - inv_l * inv_l) + 0.5 * ops.log(lower / upper) / r
            + 0.25 * scaled_j * scaled_j / r * (inv_l * inv_l - inv_u * inv_u))
    term = term + ops.where(offset_i < scaled_j - r, inside * 2.0 * (1.0 / offset_i - inv_l), ops.zeros_like(term))
    return ops.where(offset_i < upper, term, ops.zeros_like(term))


def obc_radius(s, offset, radius, alpha, beta, gamma):
    """OBC's B_i (...) nm of the integral sums S_i (...) nm^-1 (module docstring); offset, radius nm."""
    psi = 0.5 * offset * s
    return 1.0 / (1.0 / offset - ops.tanh(psi * (alpha + psi * (gamma * psi - beta))) / radius)


def hct_radius(s, offset, radius, alpha, beta, gamma):
    """HCT's B_i (...) nm of the integral sums S_i (...) nm^-1: 1 / (1/or - S/2) (radius and the OBC
    coefficients do not enter; the signature is :func:`obc_radius`'s)."""
    return 1.0 / (1.0 / offset - 0.5 * s)


#: the Born radius of each model, by name
BORN_RADIUS = {"OBC": obc_radius, "HCT": hct_radius}


def _screened(x, product_in, product_out, kappa):
    """-(product_in - product_out exp(-kappa x)): the dielectric factor times k q q (module docstring)."""
    return -(product_in - product_out * ops.exp(-kappa * x))


def pair_energy(q, product_in, product_out, kappa, inv_cutoff):
    """G_ij (..., P) kJ/mol of q (..., P, 1, 3) = (r, B_i, B_j) nm (module docstring); product_in (P,) =
    k q_i q_j / eps_in and product_out = k q_i q_j / eps_out (kJ mol^-1 nm), kappa nm^-1, inv_cutoff nm^-1."""
    r, bi, bj = q[..., 0, 0], q[..., 0, 1], q[..., 0, 2]
    bb = bi * bj
    f = ops.sqrt(r * r + bb * ops.exp(-r * r / (4.0 * bb)))
    return _screened(f, product_in, product_out, kappa) * (1.0 / f - inv_cutoff)


def atom_energy(b, self_in, self_out, kappa, surface, radius):
    """A_i (...) kJ/mol of Born radii b (...) nm (module docstring): self_in = k q_i^2 / (2 eps_in),
    self_out = k q_i^2 / (2 eps_out) (kJ mol^-1 nm), kappa nm^-1, surface = 4 pi gamma_sa (rho_i + 0.14)^2
    (kJ/mol), radius = rho_i (nm)."""
    ratio = radius / b
    ratio3 = ratio * ratio * ratio
    return _screened(b, self_in, self_out, kappa) / b + surface * ratio3 * ratio3


def _entrywise(fn, s, params, second=True):
    """(value, first, second derivative or None) (M,) of entry-wise energies fn(s, *params), by AD, in
    chunks of :data:`PAIR_CHUNK` (the compiled calls' memory)."""
    out = [np.empty_like(s) for _ in range(3 if second else 2)]
    for start, stop, s_chunk, p_chunk, _ in padded_chunks(s, params, PAIR_CHUNK):
        for a, value in zip(out, kernel.elementwise_values(fn, s_chunk, p_chunk, second)):
            a[start:stop] = value[: stop - start]
    return tuple(out) + (() if second else (None,))


class GeneralizedBorn(LongRangeTerm):
    """Generalized Born implicit solvent (module docstring): OpenMM's GBSAOBCForce and amber CustomGBForces.

    Parameters
    ----------
    charges : (N,) e
    radii : (N,) nm, the atoms' GB radii rho_i (> the dielectric offset)
    scales : (N,) the radii's scale factors s_i
    solute_dielectric, solvent_dielectric : float (GBSAOBCForce's defaults 1 and 78.3)
    surface_area_energy : float, kJ mol^-1 nm^-2, gamma_sa of the ACE term (0 for none)
    model : "OBC" or "HCT", the Born radii
    obc : (alpha, beta, gamma) of "OBC", :data:`OBC2`, :data:`OBC1`, :data:`GBN`, or (N, 3) one row per atom (GBn2)
    inside : bool, add the descreening term of an atom inside another (GBSAOBCForce: True)
    kappa : float, nm^-1, the salt's Debye screening (0 for none)
    cutoff : None or float, nm: the integrals and pair energies within it, shifted by 1/r_c
    coulomb_constant : float, kJ mol^-1 nm e^-2 (GBSAOBCForce: OpenMM's; the CustomGBForces: 138.935485)
    offset : float, nm, the dielectric offset delta (:data:`DIELECTRIC_OFFSET`; GBn2 0.0195141)
    neck : None or :class:`mdjac.longrange.born_neck.Neck`, GBn's and GBn2's neck correction

    Its Jacobian part is a :class:`mdjac.born_jacobian.BornJacobian` holding the whole GB Hessian, factored.
    """
    needs_box = False

    def __init__(self, charges, radii, scales, solute_dielectric=1.0, solvent_dielectric=78.3,
                 surface_area_energy=SURFACE_AREA_ENERGY, model="OBC", obc=OBC2, inside=True, kappa=0.0, cutoff=None,
                 coulomb_constant=OPENMM_COULOMB_CONSTANT, offset=DIELECTRIC_OFFSET, neck=None):
        name = type(self).__name__
        self.charges = finite_numbers(charges, f"{name} charges (e)").reshape(-1)
        self.n_atoms = len(self.charges)
        self.radii = finite_numbers(radii, f"{name} radii (nm)").reshape(-1)
        self.scales = finite_numbers(scales, f"{name} scale factors").reshape(-1)
        if self.radii.shape != self.charges.shape or self.scales.shape != self.charges.shape:
            raise InputError(f"{name} needs one charge, radius and scale factor per atom "
                             f"({len(self.charges)}, {len(self.radii)}, {len(self.scales)} given)")
        offset = float(offset)
        if np.any(self.radii <= offset):
            bad = int(np.flatnonzero(self.radii <= offset)[0])
            raise InputError(f"{name} radius of atom {bad} is {self.radii[bad]} nm: GB radii must exceed the "
                             f"{offset} nm dielectric offset; give them in nm")
        if model not in BORN_RADIUS:
            raise InputError(f"unknown Born radius model {model!r}: use one of {', '.join(BORN_RADIUS)}")
        if not kappa >= 0:
            raise InputError(f"{name} kappa {kappa} is negative: the Debye screening is >= 0 nm^-1")
        if cutoff is not None and not cutoff > 0:
            raise InputError(f"the cutoff {cutoff} is not a positive length: give it in nm, or None for all pairs")
        self.obc = finite_numbers(obc, f"{name} OBC coefficients")
        if self.obc.shape not in ((3,), (self.n_atoms, 3)):
            raise InputError(f"{name} OBC coefficients have shape {self.obc.shape}: give (alpha, beta, gamma), "
                             f"or one such row per atom ({self.n_atoms}, 3)")
        if neck is not None and len(neck.index) != self.n_atoms:
            raise InputError(f"{name} neck has {len(neck.index)} radius indices for {self.n_atoms} atoms: give one per atom")
        self.model, self.inside, self.neck = model, bool(inside), neck
        self.kappa, self.cutoff = float(kappa), None if cutoff is None else float(cutoff)
        eps_in, eps_out = float(solute_dielectric), float(solvent_dielectric)
        k = float(coulomb_constant) if eps_in != 0.0 and eps_out != 0.0 else 0.0   # OpenMM: no polar term then
        self.k_in, self.k_out = k / eps_in if k else 0.0, k / eps_out if k else 0.0
        self.offset = self.radii - offset
        self.scaled = self.offset * self.scales
        self.surface = 4.0 * np.pi * float(surface_area_energy) * (self.radii + PROBE_RADIUS) ** 2
        self._last = None

    def __repr__(self):
        neck = "" if self.neck is None else f", neck={self.neck.scale}"
        return f"GeneralizedBorn(n_atoms={self.n_atoms}, model={self.model}{neck}, cutoff={self.cutoff})"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_last"] = None
        return state

    def pairs(self, config):
        """(P, 2) int64 the pairs i < j the energy sums over in ``config``, row-major."""
        if self.cutoff is not None:
            return config.neighbour_pairs(self.cutoff)
        if config.box is not None:
            raise InputError("generalized Born without a cutoff in a periodic box: give a cutoff <= half the box edge")
        i, j = np.triu_indices(self.n_atoms, k=1)
        return np.stack([i, j], axis=1).astype(np.int64)

    def _constants(self, dtype):
        """The pieces' shared parameters in ``dtype``: inside, alpha, beta, gamma (0-d, or (N,) per atom), kappa, 1/r_c."""
        inv_cutoff = 0.0 if self.cutoff is None else 1.0 / self.cutoff
        return tuple(np.asarray(v, dtype=dtype) for v in (float(self.inside),) + tuple(self.obc.T) + (self.kappa, inv_cutoff))

    def _integrals(self, r, a, b, inside, dtype, second):
        """I_ab (P,) nm^-1 of atoms b seen from atoms a (P,) int at distances r (P,), with its first and (if
        ``second``) second derivatives in r: the descreening integral, plus the neck term of GBn and GBn2."""
        cast = lambda v: np.asarray(v, dtype=dtype)  # noqa: E731
        out = _entrywise(descreening, r, (cast(self.offset[a]), cast(self.scaled[b]), inside), second)
        if self.neck is None:
            return out
        neck = _entrywise(neck_integral, r, tuple(map(cast, self.neck.pair_constants(a, b, self.radii))), second)
        return tuple(None if u is None else u + v for u, v in zip(out, neck))

    # -------------------------------------------------------------- the scalars, by AD
    def derivatives(self, config, second=True):
        """Every scalar the energy, forces and Jacobian need at ``config``, a dict (module docstring).

        Keys: pairs (P, 2), d (P, 3) x_j - x_i nm, r (P,), energy (kJ/mol), dphi (P,) the pairs' radial
        first derivatives; with ``second`` also d2phi (P,), I1 (P, 2) I'_ij and I'_ji, G (P, 3, 3) the
        Hessians of G in (r, B_i, B_j), b1, b2 (N,) dB/dS and d2B/dS2, dEdB (N,), A2 (N,) A''.
        Kept for the next call at the same positions (a frame's forces, then its Jacobian).
        """
        key = (config.positions.tobytes(), None if config.box is None else config.box.tobytes(), np.dtype(config.dtype).str)
        if self._last is not None and self._last[0] == key and (not second or "d2phi" in self._last[1]):
            return self._last[1]
        dtype, n = config.dtype, self.n_atoms
        cast = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
        inside, alpha, beta, gamma, kappa, inv_cutoff = self._constants(dtype)
        pairs = self.pairs(config)
        i, j = pairs[:, 0], pairs[:, 1]
        d, r = np.empty((len(pairs), 3), dtype=dtype), np.empty(len(pairs), dtype=dtype)
        assembly.pair_displacements(config.positions, pairs, np.zeros((3, 3)) if config.box is None else box_vectors(config.box), d, r)
        off = cast(self.offset)
        I_ij, I1_ij, I2_ij = self._integrals(r, i, j, inside, dtype, second)
        I_ji, I1_ji, I2_ji = self._integrals(r, j, i, inside, dtype, second)
        S = (np.bincount(i, weights=I_ij, minlength=n) + np.bincount(j, weights=I_ji, minlength=n)).astype(dtype)
        B, b1, b2 = _entrywise(BORN_RADIUS[self.model], S, (off, cast(self.radii), alpha, beta, gamma))
        q = np.stack([r, B[i], B[j]], axis=1)[:, None, :]
        qq = self.charges[i] * self.charges[j]
        params = (cast(self.k_in * qq), cast(self.k_out * qq), kappa, inv_cutoff)
        energy, g = 0.0, np.empty((len(pairs), 3), dtype=dtype)
        hess = np.empty((len(pairs), 3, 3), dtype=dtype) if second else None
        for start, stop, q_chunk, p_chunk, weights in padded_chunks(q, params, PAIR_CHUNK):
            e, grad = kernel.term_energy_and_gradient(pair_energy, q_chunk, weights, p_chunk)
            energy += e
            g[start:stop] = grad[: stop - start, 0]
            if second:
                hess[start:stop] = kernel.term_hessians(pair_energy, q_chunk, p_chunk)[: stop - start, 0, :, 0, :]
        q2 = 0.5 * self.charges ** 2
        A, A1, A2 = _entrywise(atom_energy, B, (cast(self.k_in * q2), cast(self.k_out * q2), kappa, cast(self.surface),
                                                cast(self.radii)))
        energy += float(A.sum())
        del q, params
        dEdB = np.bincount(i, weights=g[:, 1], minlength=n) + np.bincount(j, weights=g[:, 2], minlength=n) + A1
        beta_s = dEdB * b1
        out = dict(pairs=pairs, d=d, r=r, energy=energy, dphi=g[:, 0] + beta_s[i] * I1_ij + beta_s[j] * I1_ji)
        if second:
            out.update(d2phi=hess[:, 0, 0] + beta_s[i] * I2_ij + beta_s[j] * I2_ji, I1=np.stack([I1_ij, I1_ji], axis=1),
                       G=hess, b1=b1, b2=b2, dEdB=dEdB, A2=A2)
        self._last = (key, out)
        return out

    # -------------------------------------------------------------- the LongRangeTerm protocol
    def energy_and_forces(self, config):
        found = self.derivatives(config, second=False)
        forces = np.zeros((self.n_atoms, 3))
        assembly.radial_pair_forces(found["pairs"], found["d"], found["r"], found["dphi"], forces)
        return found["energy"], forces

    def hessian_diagonal(self, config, atoms):
        """Zeros (n, 3, 3): the Jacobian part (:meth:`jacobian_part`) holds the whole GB Hessian."""
        return np.zeros((len(atoms), 3, 3))

    def jacobian_part(self, config, atoms):
        """The GB force Jacobian on atoms (n,) int, factored (:class:`mdjac.born_jacobian.BornJacobian`)."""
        from ..born_jacobian import BornJacobian
        f = self.derivatives(config, second=True)
        n, pairs = self.n_atoms, f["pairs"]
        i, j = pairs[:, 0], pairs[:, 1]
        as64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
        r = as64(f["r"])
        u = as64(f["d"]) / r[:, None]
        # the second derivatives go into the part: kept no longer (each freed once used, the peak memory)
        G, d2phi, I1 = (as64(f.pop(key)) for key in ("G", "d2phi", "I1"))
        b1 = as64(f["b1"])
        # per pair: W's scalars (b_i' G_{r B_i}, b_j' G_{r B_j}) and M's b_i' G_{B_i B_j} b_j'
        w = np.stack([b1[i] * G[:, 0, 1], b1[j] * G[:, 0, 2]], axis=1)
        m = G[:, 1, 2] * b1[i] * b1[j]
        m_diagonal = ((np.bincount(i, weights=G[:, 1, 1], minlength=n) + np.bincount(j, weights=G[:, 2, 2], minlength=n)
                       + f["A2"]) * b1 * b1 + f["dEdB"] * f["b2"])
        del G
        part = BornJacobian.from_pairs(pairs, u, r, as64(f["dphi"]), d2phi, I1, w, m, m_diagonal, dtype=config.dtype)
        return part if len(atoms) == n and np.array_equal(atoms, np.arange(n)) else part.select(np.asarray(atoms))

    def energy_function(self, config):
        """(energy, args): the GB energy of copies X (C, N, 3) nm as one MindSpore function, (C,) kJ/mol,
        the pieces above composed over every pair (within the cutoff at ``config``, minimum image frozen there)."""
        dtype, n = config.dtype, self.n_atoms
        pairs = self.pairs(config)
        within = np.zeros((n, n))
        within[pairs[:, 0], pairs[:, 1]] = 1.0
        qq = np.outer(self.charges, self.charges) * within        # each pair i < j once
        within = within + within.T
        x = config.positions
        raw = x[None, :, :] - x[:, None, :]                       # [i, j] = x_j - x_i
        shift = minimum_image(raw.copy(), config.box) - raw
        q2 = 0.5 * self.charges ** 2
        model = BORN_RADIUS[self.model]
        rows, cols = np.indices((n, n))
        neck = (np.zeros((n, n)),) * 3 if self.neck is None else self.neck.pair_constants(rows, cols, self.radii)
        args = tuple(np.ascontiguousarray(a, dtype=dtype) for a in (
            self.offset, self.scaled, self.radii, self.k_in * qq, self.k_out * qq, self.k_in * q2, self.k_out * q2,
            self.surface, within, np.eye(n), shift) + neck) + self._constants(dtype)

        def energy(X, offset, scaled, radii, pair_in, pair_out, self_in, self_out, surface, within, eye, shift,
                   height, place, reach, inside, alpha, beta, gamma, kappa, inv_cutoff):
            d = X[:, None, :, :] - X[:, :, None, :] + shift
            r = ops.sqrt((d * d).sum(-1) + eye)          # eye: a harmless 1 nm on the diagonal, masked out
            integrals = (descreening(r, offset[:, None], scaled[None, :], inside)
                         + neck_integral(r, height, place, reach)) * within
            b = model(integrals.sum(-1), offset, radii, alpha, beta, gamma)
            shape = r.shape
            q = ops.stack([r, ops.broadcast_to(b[:, :, None], shape), ops.broadcast_to(b[:, None, :], shape)], -1)
            pair = pair_energy(q.reshape(shape + (1, 3)), pair_in, pair_out, kappa, inv_cutoff)
            return pair.sum((1, 2)) + atom_energy(b, self_in, self_out, kappa, surface, radii).sum(-1)
        return energy, args
