"""Virtual sites: massless particles placed by a function of their parents' positions.

A virtual site s (a TIP4P M site, a TIP5P lone pair, ...) has no degrees of freedom: its position
is y_s = f_s(x_p1, ..., x_pk) of its parents, real atoms. The potential is U(x) = U'(x, y(x)),
a function of the real atoms only, and its force Jacobian is over them. Each site kind states f_s in
MindSpore ops (so AD differentiates through it, curvature of the nonlinear kinds included), as
OpenMM defines them (weights w, positions nm):

==================  ===========================================================================
kind                position
==================  ===========================================================================
AverageSite(2)      w1 x1 + w2 x2                      (OpenMM's TwoParticleAverageSite)
AverageSite(3)      w1 x1 + w2 x2 + w3 x3              (ThreeParticleAverageSite)
OutOfPlaneSite      x1 + w12 r12 + w13 r13 + wc (r12 x r13), r1j = xj - x1
LocalCoordinatesSite  o + p_x ex + p_y ey + p_z ez: o = sum wo_i x_i, dx = sum wx_i x_i,
                    dy = sum wy_i x_i, ez = dx x dy / |dx x dy|, ex = dx / |dx|, ey = ez x ex
==================  ===========================================================================

Every kind is translation covariant (averaging and origin weights sum to 1, direction weights to
0; checked), so a term may see an instance in coordinates relative to its first atom.

How the terms see it (:meth:`VirtualSites.expand`): an instance of a term that touches sites is
rewritten as an instance over the real atoms R it depends on (its real atoms and the parents of
its sites, each once), of a :class:`SiteMappedGroup` whose energy places the sites from R's
coordinates and then calls the original energy. The instance lists stay instance lists, so the
replicate strategy's per-instance copies simply include the parents (a Lennard-Jones pair of two
TIP4P M sites becomes an instance of 6 atoms, 15 masked copies instead of 3), and colour and
dense see the instances' real atoms; pair instances touching a site leave the radial route (their
two atoms put in the order of their site kinds, so that a water model compiles two structures). The
minimum image is decided in numpy, as everywhere: each site's parents are taken at the images
nearest the site, and the resulting constant offsets travel as a parameter (``shift``).
"""
import numpy as np
from mindspore import ops

from . import kernel
from .chunks import padded_chunks
from .errors import InputError
from .space import minimum_image
from .strategies.coordinates import local_coordinates
from .terms.geometry import cross, norm

#: How far weights that should sum to 1 (or 0) may be off (OpenMM's files give 9 to 16 digits).
WEIGHT_TOLERANCE = 1e-6


class AverageSite:
    """y = sum_i w_i x_i over n parents (OpenMM's Two/ThreeParticleAverageSite); weights (n,) sum to 1."""
    #: y is linear in its parents: dy/dx is constant and d2y/dx2 = 0 (the placement's curvature is skipped)
    linear = True

    def __init__(self, n_parents):
        self.n_parents = int(n_parents)
        self.name = f"average{self.n_parents}"

    def check(self, weights):
        return abs(weights.sum() - 1.0) <= WEIGHT_TOLERANCE, "its weights must sum to 1"

    def position(self, y, w):
        """Site positions (..., M, 3) of parents y (..., M, n, 3) nm and weights w (M, n)."""
        out = y[..., 0, :] * w[:, 0:1]
        for a in range(1, self.n_parents):
            out = out + y[..., a, :] * w[:, a:a + 1]
        return out


class OutOfPlaneSite:
    """y = x1 + w12 r12 + w13 r13 + wc r12 x r13 (OpenMM's OutOfPlaneSite); weights (w12, w13, wc)."""
    n_parents = 3
    name = "out_of_plane"
    linear = False

    def check(self, weights):
        return True, ""

    def position(self, y, w):
        r12 = y[..., 1, :] - y[..., 0, :]
        r13 = y[..., 2, :] - y[..., 0, :]
        return y[..., 0, :] + r12 * w[:, 0:1] + r13 * w[:, 1:2] + cross(r12, r13) * w[:, 2:3]


class LocalCoordinatesSite:
    """OpenMM's LocalCoordinatesSite over n parents; weights (3n + 3,): origin (n), x (n), y (n), local position (3) nm."""
    linear = False

    def __init__(self, n_parents):
        self.n_parents = int(n_parents)
        self.name = f"local{self.n_parents}"

    def check(self, weights):
        n = self.n_parents
        ok = (abs(weights[:n].sum() - 1.0) <= WEIGHT_TOLERANCE and abs(weights[n:2 * n].sum()) <= WEIGHT_TOLERANCE
              and abs(weights[2 * n:3 * n].sum()) <= WEIGHT_TOLERANCE)
        return ok, "its origin weights must sum to 1 and its x and y weights to 0"

    def _sum(self, y, w, first):
        """sum_a w[:, first + a] y[..., a, :] over the parents (a weighted sum as AverageSite's, at an offset)."""
        out = y[..., 0, :] * w[:, first:first + 1]
        for a in range(1, self.n_parents):
            out = out + y[..., a, :] * w[:, first + a:first + a + 1]
        return out

    def position(self, y, w):
        n = self.n_parents
        origin = self._sum(y, w, 0)
        dx = self._sum(y, w, n)
        dy = self._sum(y, w, 2 * n)
        dz = cross(dx, dy)
        ex = dx / ops.expand_dims(norm(dx), -1)
        ez = dz / ops.expand_dims(norm(dz), -1)
        ey = cross(ez, ex)
        p = 3 * n
        return origin + ex * w[:, p:p + 1] + ey * w[:, p + 1:p + 2] + ez * w[:, p + 2:p + 3]


class AtomSlot:
    """A real atom of an instance: column ``atom`` of the expanded instance."""
    site = False

    def __init__(self, atom):
        self.atom = int(atom)

    def __repr__(self):
        return f"atom{self.atom}"


class SiteSlot:
    """A site of an instance: its kind and its parents' columns in the expanded instance."""
    site = True

    def __init__(self, kind, parents):
        self.kind, self.parents = kind, tuple(int(p) for p in parents)

    def position(self, Y, w):
        """Site positions (..., M, 3) from the expanded instance's positions Y (..., M, n_R, 3)."""
        y = ops.stack([Y[..., p, :] for p in self.parents], axis=-2)
        return self.kind.position(y, w)

    def __repr__(self):
        return f"{self.kind.name}{self.parents}"


class SiteMappedGroup:
    """A group of terms on instances that touch sites, restated over the real atoms they depend on.

    group: the original group (mdjac.potential.TermGroup); slots: tuple of AtomSlot/SiteSlot, one
    per atom of the original instance; n_body: real atoms per expanded instance. Its parameters are
    the group's, then each site slot's weights (M, w), then ``shift`` (M, c, 3) nm, the constant
    minimum-image offsets that make q + shift the real atoms' coordinates in one image.
    """
    radial = False

    def __init__(self, group, slots, n_body, n_params):
        self.group, self.slots, self.n_body, self.n_params = group, tuple(slots), int(n_body), int(n_params)
        self.relative = group.relative

    def energy(self, q, *params):
        """Per-instance energies (..., M) of the real atoms' coordinates q (..., M, c, 3) nm."""
        qt = q + params[-1]
        Y = ops.concat((qt[..., :1, :] * 0.0, qt), axis=-2) if self.relative else qt
        points = []
        at = self.n_params
        for slot in self.slots:
            if slot.site:
                points.append(slot.position(Y, params[at]))
                at += 1
            else:
                points.append(Y[..., slot.atom, :])
        if self.relative:
            local = ops.stack([p - points[0] for p in points[1:]], axis=-2)
        else:
            local = ops.stack(points, axis=-2)
        return self.group.energy(local, *params[:self.n_params])

    @property
    def linear_radial(self):
        """True for a radial pair group whose sites are all linear (averages): the pair's energy is phi(|d|) with
        d = sum_p c_p Y_p linear in the real atoms (:meth:`pair_vectors`), so the radial route applies (the
        chain rule through r as for plain pairs, then through the constant c: mdjac.strategies.replicate)."""
        return self.group.radial and len(self.slots) == 2 and all(not s.site or s.kind.linear for s in self.slots)

    def pair_vectors(self, q, params):
        """(d (M, 3) nm, c (M, n_body)) of a :attr:`linear_radial` group's instances: the pair vector d = y_2 - y_1
        and its constant coefficients over the expanded real atoms (d = sum_p c_p Y_p), from their coordinates
        q (M, c, 3) nm (as the energy sees them) and the parameters (numpy)."""
        shift = np.asarray(params[-1], dtype=np.float64)
        qt = np.asarray(q, dtype=np.float64) + shift
        Y = np.concatenate([np.zeros_like(qt[:, :1]), qt], axis=1) if self.relative else qt
        c = np.zeros((len(qt), self.n_body))
        at = self.n_params
        for sign, slot in zip((-1.0, 1.0), self.slots):
            if slot.site:
                w = np.asarray(params[at], dtype=np.float64)
                at += 1
                for k, column in enumerate(slot.parents):
                    c[:, column] += sign * w[:, k]
            else:
                c[:, slot.atom] += sign
        return np.einsum("mp,mpi->mi", c, Y), c

    def __repr__(self):
        return f"SiteMapped({self.group}, {self.slots})"


class SitePlacement:
    """A site kind's placement as an instance energy for the kernel: E_s = F_s . y_s(parents).

    Its gradient in the parents (M, n, 3) is (dy_s/dx)^T F_s, its Hessian sum_a F_sa d2y_sa/dx dx:
    with F_s the force a long-range term puts on site s, the force on its parents and the placement's
    curvature of the force Jacobian (:meth:`VirtualSites.long_range_hessian`); with F_s a unit vector, a row
    of the chain dy_s/dx (:meth:`VirtualSites.chain`).
    """
    relative = False

    def __init__(self, kind):
        self.kind, self.n_body = kind, kind.n_parents

    def energy(self, q, w, force):
        """(..., M) F . y of parents q (..., M, n, 3) nm, weights w (M, nw) and vectors F (M, 3)."""
        return (self.kind.position(q, w) * force).sum(-1)


class VirtualSites:
    """The virtual sites of a system of N particles.

    Parameters
    ----------
    n_atoms : int, N particles (real atoms and sites)
    sites : list of (index, kind, parents, weights): the site's particle index, an AverageSite,
        OutOfPlaneSite or LocalCoordinatesSite, its parents (n,) int (real atoms) and its weights
        (the kind's layout, float64)
    """

    def __init__(self, n_atoms, sites):
        self.n_atoms = int(n_atoms)
        self.is_site = np.zeros(self.n_atoms, dtype=bool)
        self.kinds, self.code = [], np.zeros(self.n_atoms, dtype=np.int64)   # code 0: real atom; k: kinds[k - 1]
        width = max([len(p) for _, _, p, _ in sites], default=1)
        nw = max([len(w) for _, _, _, w in sites], default=1)
        self.parents = np.full((self.n_atoms, width), -1, dtype=np.int64)
        self.weights = np.zeros((self.n_atoms, nw))
        for index, kind, parents, weights in sites:
            index, parents, weights = int(index), np.asarray(parents, np.int64), np.asarray(weights, np.float64)
            if not 0 <= index < self.n_atoms or parents.min() < 0 or parents.max() >= self.n_atoms:
                raise InputError(f"virtual site {index} or its parents {parents.tolist()} lie outside particles 0..{self.n_atoms - 1}")
            ok, rule = kind.check(weights)
            if not ok or not np.all(np.isfinite(weights)):
                raise InputError(f"virtual site {index} ({kind.name}) has weights {weights.tolist()}: {rule}")
            key = next((k for k, known in enumerate(self.kinds) if known.name == kind.name), None)
            if key is None:
                self.kinds.append(kind)
                key = len(self.kinds) - 1
            self.is_site[index] = True
            self.code[index] = key + 1
            self.parents[index, :len(parents)] = parents
            self.weights[index, :len(weights)] = weights
        listed = self.parents[self.is_site]
        nested = (self.is_site[listed] & (listed >= 0)).any(axis=1)
        if nested.any():
            site = int(np.flatnonzero(self.is_site)[np.flatnonzero(nested)[0]])
            raise InputError(f"virtual site {site} has a virtual site among its parents: mdjac supports sites "
                             "placed from real atoms only")
        self.real = np.flatnonzero(~self.is_site)
        self._mapped = {}
        self._placements, self._chain = {}, (None, None)

    def __len__(self):
        return int(self.is_site.sum())

    def __repr__(self):
        return f"VirtualSites({len(self)} of {self.n_atoms} particles: {', '.join(k.name for k in self.kinds)})"

    def _parent_positions(self, sites, positions, box, at):
        """(S, n, 3) the parents of ``sites`` (S,) at the images nearest the points ``at`` (S, 3) nm."""
        kind = self.kinds[self.code[sites[0]] - 1]
        parents = self.parents[sites, :kind.n_parents]
        return at[:, None, :] + minimum_image(positions[parents] - at[:, None, :], box)

    def place(self, positions, box):
        """Positions (N, 3) float64 nm with every site placed from its parents (its first parent's image)."""
        out = np.array(positions, dtype=np.float64)
        for k, kind in enumerate(self.kinds):
            sites = np.flatnonzero(self.code == k + 1)
            first = out[self.parents[sites, 0]]
            y = self._parent_positions(sites, out, box, first)
            w = self.weights[sites]
            out[sites] = kind.position(_float64(y), _float64(w)).asnumpy()
        return out

    def _placement(self, k):
        """The (kept) :class:`SitePlacement` of kind k, so its compiled functions are reused."""
        if k not in self._placements:
            self._placements[k] = SitePlacement(self.kinds[k])
        return self._placements[k]

    def _kind_parents(self, k, config):
        """Sites (S,) of kind k, their parents (S, n) and the parents' positions (S, n, 3) nm at the images nearest
        each site, in the configuration's dtype (the placed sites' own positions are the configuration's)."""
        sites = np.flatnonzero(self.code == k + 1)
        parents = self.parents[sites, :self.kinds[k].n_parents]
        y = self._parent_positions(sites, config.positions, config.box, config.positions[sites])
        return sites, parents, y.astype(config.dtype)

    def chain(self, config):
        """The placement's derivative dX/dx as links: (particle (L,), atom (L,), blocks (L, 3, 3)) with
        blocks[l][a, b] = dX_{particle[l], a} / dx_{atom[l], b}: the identity for each real atom, and each site's
        derivative in each of its parents by AD (mdjac.kernel, the gradients of e_a . y_s). Kept for the last
        configuration."""
        if self._chain[0] is config:
            return self._chain[1]
        real = self.real
        particle, atom, blocks = [real], [real], [np.broadcast_to(np.eye(3), (len(real), 3, 3))]
        for k, kind in enumerate(self.kinds):
            sites, parents, y = self._kind_parents(k, config)
            S, n = parents.shape
            rows = np.empty((S, 3, n, 3))
            for a in range(3):          # row a of every block: the gradient of e_a . y_s
                unit = np.zeros((S, 3), dtype=y.dtype)
                unit[:, a] = 1.0
                params = (self.weights[sites].astype(y.dtype), unit)
                for start, stop, q, p, weights in padded_chunks(y, params):
                    rows[start:stop, a] = kernel.term_energy_and_gradient(self._placement(k).energy, q, weights, p)[1][:stop - start]
            particle.append(np.repeat(sites, n))
            atom.append(parents.reshape(-1))
            blocks.append(rows.transpose(0, 2, 1, 3).reshape(-1, 3, 3))
        links = (np.concatenate(particle), np.concatenate(atom), np.concatenate(blocks).astype(np.float64))
        self._chain = (config, links)
        return links

    def distribute(self, forces, config):
        """Forces (N, 3) on every particle -> the same forces on the real atoms: each site's force F_s moved to its
        parents as (dy_s/dx_p)^T F_s (:meth:`chain`), the sites' rows zero."""
        particle, atom, blocks = self.chain(config)
        moved = np.einsum("lab,la->lb", blocks, forces[particle])
        out = np.zeros_like(forces, dtype=np.float64)
        for b in range(3):
            out[:, b] = np.bincount(atom, weights=moved[:, b], minlength=self.n_atoms)
        return out

    def placement_args(self, config):
        """What :meth:`place_copies` needs, frozen at a configuration: per kind, its sites' parents (S n,) int32, the
        constant minimum-image offsets (S, n, 3) and the weights (S, w) in the compute dtype; then the (N,) int32
        row of each particle in [X, the placed sites]."""
        args, row, at = [], np.arange(self.n_atoms), self.n_atoms
        for k in range(len(self.kinds)):
            sites, parents, y = self._kind_parents(k, config)
            shift = y.astype(np.float64) - config.positions[parents]
            args += [parents.reshape(-1).astype(np.int32), shift.astype(config.dtype), self.weights[sites].astype(config.dtype)]
            row[sites] = at + np.arange(len(sites))
            at += len(sites)
        return args + [row.astype(np.int32)]

    def place_copies(self, X, *args):
        """Copies X (C, N, 3) nm with every site placed from its parents (MindSpore ops, so AD goes through the
        placement; args: :meth:`placement_args`): a long-range term's energy of the real atoms (mdjac.strategies.one_function)."""
        parts = [X]
        for k, kind in enumerate(self.kinds):
            parents, shift, w = args[3 * k: 3 * k + 3]
            y = ops.gather(X, parents, 1).reshape(X.shape[:1] + shift.shape) + shift
            parts.append(kind.position(y, w))
        return ops.gather(ops.concat(parts, axis=1), args[-1], 1)

    def long_range_hessian(self, term, config):
        """The short-range blocks a long-range term adds over the real atoms through the sites.

        U = U_lr(X(x)): its Hessian over real atoms is S^T H_all S (S = dX/dx, :meth:`chain`) minus the placement's
        curvature sum_s F_s . d2y_s/dx dx (F_s = -dU_lr/dy_s). H_all is the term's block diagonal
        (``hessian_diagonal``) plus its Jacobian part (kept as an operator, mdjac.site_jacobian). Returned here:
        every site's S_sp^T D_s S_sq (D_s the term's diagonal block of site s) and the curvature (nonlinear
        kinds; by AD, kernel.term_hessians of F_s . y_s), as Hessian blocks (rows (K,), cols (K,), (K, 3, 3)),
        each parent pair of a site once (rows == cols on the diagonal; mdjac.jacobian.upper_blocks' convention).
        """
        particle, atom, links = self.chain(config)
        site_links = self.is_site[particle]
        sites_all = np.flatnonzero(self.is_site)
        diagonal = np.zeros((self.n_atoms, 3, 3))
        diagonal[sites_all] = term.hessian_diagonal(config, sites_all)
        forces = term.energy_and_forces(config)[1]
        rows, cols, out = [], [], []
        for k, kind in enumerate(self.kinds):
            sites, parents, y = self._kind_parents(k, config)
            S, n = parents.shape
            mine = site_links & (self.code[particle] == k + 1)
            blocks = links[mine].reshape(S, n, 3, 3)         # the chain lists each kind's sites in order, n parents each
            h = np.einsum("spai,sab,sqbj->spqij", blocks, diagonal[sites], blocks)
            if not kind.linear:
                params = (self.weights[sites].astype(y.dtype), forces[sites].astype(y.dtype))
                for start, stop, q, p, _ in padded_chunks(y, params):
                    h[start:stop] -= kernel.term_hessians(self._placement(k).energy, q, p)[:stop - start].transpose(0, 1, 3, 2, 4)
            for a in range(n):
                for b in range(a, n):
                    rows.append(parents[:, a])
                    cols.append(parents[:, b])
                    out.append(h[:, a, b] if a < b else 0.5 * h[:, a, a])    # a diagonal entry counts twice (upper_blocks)
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(out)

    def expand(self, group, index, params, config):
        """The instances of ``group`` as [(group, index, params)]: those touching no site as given,
        the others as instances of SiteMappedGroups over real atoms (module docstring).

        index: (M, k) int64; params: tuple of (M, ...) arrays; config: mdjac.potential.Configuration.
        """
        touches = self.is_site[index].any(axis=1)
        if not touches.any():
            return [(group, index, params)]
        out = []
        if not touches.all():
            keep = ~touches
            out.append((group, index[keep], tuple(p if np.ndim(p) == 0 else p[keep] for p in params)))
        rows = np.flatnonzero(touches)
        if group.radial:     # a radial pair's energy is even in q: order (real, site) and (site, site) alike, fewer graphs
            swap = self.code[index[:, 0]] > self.code[index[:, 1]]
            if swap.any():
                index = index.copy()
                index[swap] = index[swap][:, ::-1]
        signatures, which = _unique_rows(self.code[index[rows]], len(self.kinds) + 1)
        for s, signature in enumerate(signatures):
            out.extend(self._expand_signature(group, index, params, rows[which.reshape(-1) == s], signature, config))
        return out

    def _expand_signature(self, group, index, params, rows, signature, config):
        """Expansions of the instances ``rows`` whose slots have site codes ``signature`` (k,)."""
        x, box = config.positions, config.box
        inst = index[rows]
        # every slot's particle position, at the images the term itself uses
        slot_x = x[inst]
        if group.relative:
            slot_x = slot_x[:, :1] + np.concatenate([np.zeros_like(slot_x[:, :1]),
                                                     minimum_image(slot_x[:, 1:] - slot_x[:, :1], box)], axis=1)
        columns, column_x, owner = [], [], []      # expanded columns: atom indices, positions, the slot they come from
        for a, code in enumerate(signature):
            if code == 0:
                columns.append(inst[:, a:a + 1])
                column_x.append(slot_x[:, a:a + 1])
                owner.append(a)
            else:
                n = self.kinds[code - 1].n_parents
                columns.append(self.parents[inst[:, a], :n])
                column_x.append(self._parent_positions(inst[:, a], x, box, slot_x[:, a]))
                owner.extend([a] * n)
        E, U = np.concatenate(columns, axis=1), np.concatenate(column_x, axis=1)
        first = np.argmax(E[:, :, None] == E[:, None, :], axis=2)      # (M, L): first column of the same atom
        patterns, which = _unique_rows(first, first.shape[1])
        out = []
        for p, pattern in enumerate(patterns):
            sel = which.reshape(-1) == p
            kept = np.flatnonzero(pattern == np.arange(len(pattern)))   # columns that are first occurrences
            column_of = {int(c): r for r, c in enumerate(kept)}
            slots, at = [], 0
            for a, code in enumerate(signature):
                n = 1 if code == 0 else self.kinds[code - 1].n_parents
                cols = [column_of[int(pattern[at + b])] for b in range(n)]
                slots.append(AtomSlot(cols[0]) if code == 0 else SiteSlot(self.kinds[code - 1], cols))
                at += n
            key = (group, tuple(repr(s) for s in slots), len(kept))
            if key not in self._mapped:
                self._mapped[key] = SiteMappedGroup(group, slots, len(kept), len(params))
            mapped = self._mapped[key]
            real = np.ascontiguousarray(E[sel][:, kept])
            u = U[sel][:, kept]
            true = u[:, 1:] - u[:, :1] if mapped.relative else u
            shift = true - local_coordinates(mapped, real, x, box)
            these = rows[sel]
            weights = tuple(self.weights[inst[sel, a]] for a, code in enumerate(signature) if code != 0)
            out.append((mapped, real, tuple(_per_instance(p, len(index))[these] for p in params) + weights + (shift,)))
        return out


def _unique_rows(a, base):
    """np.unique(a, axis=0, return_inverse=True) of small non-negative integers a (M, L) < base, by
    one integer key per row (a 1-D sort instead of a sort of rows) while the keys fit in int64."""
    if a.shape[1] * np.log2(max(base, 2)) > 62:
        return np.unique(a, axis=0, return_inverse=True)
    keys = np.zeros(len(a), dtype=np.int64)
    for column in a.T:
        keys = keys * base + column
    unique, first, which = np.unique(keys, return_index=True, return_inverse=True)
    return a[first], which


def _float64(a):
    import mindspore as ms
    return ms.Tensor(np.ascontiguousarray(a, dtype=np.float64))


def _per_instance(p, m):
    """A parameter as (m, ...) rows: a 0-d one (one value shared by every instance, mdjac.chunks) repeated."""
    p = np.asarray(p)
    return np.broadcast_to(p, (m,)) if p.ndim == 0 else p
