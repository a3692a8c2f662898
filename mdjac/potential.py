"""A potential: a sum of terms, evaluated on one frame at a time.

U(x) = sum over terms t, instances m of E_t(q_tm), with q_tm the per-instance coordinates (the
term protocol: mdjac.terms.base). :class:`Potential` holds the terms and the box, validates each
frame into a :class:`Configuration`, computes energy and forces (the chain rule from q back to
atoms: mdjac.strategies.coordinates; radial pair terms by phi'(r): mdjac.strategies.replicate) and
dispatches :meth:`Potential.force_jacobian` to a strategy (mdjac.strategies.STRATEGIES).
Long-range terms (mdjac.terms.base.LongRangeTerm) enter through their protocol only.
"""
import numpy as np

from . import assembly, kernel
from .errors import InputError
from .neighbours import VerletList
from .space import check_box, check_cutoff
from .strategies import STRATEGIES
from .chunks import RADIAL_CHUNK, padded_chunks
from .strategies.coordinates import chain_matrix, local_coordinates, pair_geometry, scatter_add
from .strategies.one_function import energy_function
from .terms.base import LongRangeTerm

#: Verlet skin (nm) of the neighbour lists a potential keeps across frames.
SKIN = 0.1


class Configuration:
    """One validated configuration: positions (N, 3) float64 nm, box None, (3,) edges or (3, 3) reduced
    box vectors nm (mdjac.space), compute dtype.

    What terms see (``Term.instances(config)``). Neighbour pairs are found once per cutoff and
    shared by every term that asks, from the potential's Verlet lists (``verlet``: cutoff ->
    mdjac.neighbours.VerletList, kept across configurations).
    """

    def __init__(self, positions, box, dtype, verlet=None):
        self.positions, self.box, self.dtype = positions, box, dtype
        self._verlet = {} if verlet is None else verlet
        self._pairs = {}

    def neighbour_pairs(self, cutoff):
        """(P, 2) int64 pairs i < j closer than ``cutoff`` (nm), minimum image; cached per cutoff."""
        if cutoff not in self._pairs:
            if cutoff not in self._verlet:
                self._verlet[cutoff] = VerletList(cutoff, SKIN)
            self._pairs[cutoff] = self._verlet[cutoff].pairs(self.positions, self.box)
        return self._pairs[cutoff]


class TermGroup:
    """Terms that share one instance list, evaluated as one summed energy.

    terms: tuple of Term (same ``n_body`` and ``relative``); param_counts: how many per-instance
    parameter arrays each term takes. ``energy(q, *params)`` = sum of the terms' energies, each
    given its own slice of ``params``.
    """

    def __init__(self, terms, param_counts):
        self.terms, self.param_counts = terms, param_counts
        self.n_body, self.relative = terms[0].n_body, terms[0].relative
        self.radial = all(t.radial for t in terms)

    def energy(self, q, *params):
        total = 0.0
        at = 0
        for term, n in zip(self.terms, self.param_counts):
            total = total + term.energy(q, *params[at:at + n])
            at += n
        return total

    def radial_energy(self, r, *params):
        """Pair energies (M,) of distances r (M,) nm, for groups of radial terms (as :meth:`energy`,
        term by term; MindSpore's graph compiler takes no ``getattr`` by name)."""
        total = 0.0
        at = 0
        for term, n in zip(self.terms, self.param_counts):
            total = total + term.radial_energy(r, *params[at:at + n])
            at += n
        return total

    def pair_params(self, i, j):
        """Every term's parameters of the atom pairs (i, j) (radial groups), as one tuple of (M,) arrays."""
        return tuple(p for t in self.terms for p in t.pair_params(i, j))

    def __repr__(self):
        return f"TermGroup({self.terms})"


class Potential:
    """A sum of force-field terms, with an optional periodic box, rectangular or triclinic.

    terms: list of mdjac.terms.Term. box: None, (3,) edges in nm, or (3, 3) box vectors (rows a, b,
    c in nm; a along x, b in the xy plane: reduced to OpenMM's form by mdjac.space.check_box). n_atoms: inferred from the
    terms' per-atom tables (or their largest index) if not given. sites: None or
    mdjac.sites.VirtualSites: particles placed from their parents in every configuration; the
    potential is then a function of the real atoms, and force_jacobian is over them (its ``atoms``).

    Every method takes positions (N, 3) in nm and an optional ``box`` that overrides the
    potential's for this call (NPT trajectories). float64 positions are computed in float64 end to
    end; any other dtype in float32.

    ``radial``: take the radial route for pair terms (mdjac.strategies.replicate); False sends
    them through the general per-term replication (tests compare the two).
    """
    radial = True

    def __init__(self, terms, box=None, n_atoms=None, sites=None):
        self.terms = list(terms)
        if not self.terms:
            raise InputError("a Potential needs at least one term")
        self.long_range_terms = [t for t in self.terms if isinstance(t, LongRangeTerm)]
        self.short_range_terms = [t for t in self.terms if not isinstance(t, LongRangeTerm)]
        sizes = {t.n_atoms for t in self.terms if t.n_atoms is not None}
        if n_atoms is not None:
            sizes.add(int(n_atoms))
        if len(sizes) > 1:
            raise InputError(f"the terms' per-atom tables describe different numbers of atoms {sorted(sizes)}: "
                             "give every term tables of the same length N")
        largest = max(t.max_index for t in self.terms) + 1
        self.n_atoms = sizes.pop() if sizes else largest
        if largest > self.n_atoms:
            raise InputError(f"a term names atom {largest - 1} but the system has {self.n_atoms} atoms: indices count from 0 to N-1")
        self.box = check_box(box)
        self.sites = sites if sites is not None and len(sites) else None
        if self.sites is not None:
            if self.sites.n_atoms != self.n_atoms:
                raise InputError(f"the virtual sites describe {self.sites.n_atoms} particles but the terms {self.n_atoms}: "
                                 "give both the same N")
            unmapped = [t for t in self.long_range_terms if not t.maps_through_sites]
            if unmapped:
                raise InputError(f"virtual sites with the long-range term {type(unmapped[0]).__name__} are not supported: "
                                 "use a reciprocal-space sum (Ewald, PME) or a cutoff method for a system with virtual sites")
        self._groups = {}
        self._verlet = {}
        for t in self.terms:
            check_cutoff(t.cutoff, self.box)

    @property
    def jacobian_atoms(self):
        """(n,) int64 the atoms a full Jacobian is over: every atom, or the real ones with virtual sites."""
        return np.arange(self.n_atoms) if self.sites is None else self.sites.real

    def __repr__(self):
        return f"Potential(n_atoms={self.n_atoms}, terms={self.terms}, box={None if self.box is None else self.box.tolist()})"

    # ----------------------------------------------------------------------------- configurations
    def configuration(self, positions, box=None):
        """Validate positions (N, 3) nm and the box (None: the potential's); return a :class:`Configuration`."""
        x = np.asarray(positions)
        if x.shape != (self.n_atoms, 3):
            raise InputError(f"positions have shape {x.shape} but the system has {self.n_atoms} atoms: pass an ({self.n_atoms}, 3) array in nm")
        if not np.issubdtype(x.dtype, np.number):
            raise InputError(f"positions have dtype {x.dtype}: pass numbers (nm)")
        dtype = np.float64 if x.dtype == np.float64 else np.float32
        x = x.astype(np.float64)
        if not np.all(np.isfinite(x)):
            bad = int(np.flatnonzero(~np.all(np.isfinite(x), axis=1))[0])
            raise InputError(f"positions hold NaN or inf (first at atom {bad}): the frame is corrupt")
        b = self.box if box is None else check_box(box)
        if box is not None:
            for t in self.terms:
                check_cutoff(t.cutoff, b)
        if any(t.needs_box for t in self.long_range_terms) and b is None:
            raise InputError("the potential has a long-range term (a reciprocal sum) but no periodic box: give the box in nm")
        if self.sites is not None:
            x = self.sites.place(x, b)
        return Configuration(x, b, dtype, self._verlet)

    def instance_groups(self, config, atoms=None, coordinates=True):
        """Yield (group, index (M, k), q (M, c, 3) in the configuration's dtype, params) per group of terms.

        Terms whose instances coincide in this configuration (Lennard-Jones and Coulomb over one neighbour
        list) form one :class:`TermGroup` and are evaluated as one summed energy, in one compiled
        call. With ``atoms`` (a boolean mask over atoms), only instances touching a selected atom.
        With ``coordinates=False``, q is None (the caller computes what it needs). With virtual
        sites, instances touching a site come as instances over real atoms of
        mdjac.sites.SiteMappedGroup (mdjac.sites.VirtualSites.expand).
        """
        found = []  # [terms, index (M, k), params of all the terms, how many params each term has]
        for term in self.short_range_terms:
            index, params = term.instances(config)
            if atoms is not None and self.sites is None:
                keep = atoms[index].any(axis=1)
                index, params = index[keep], tuple(p if np.ndim(p) == 0 else p[keep] for p in params)
            if len(index) == 0:
                continue
            same = next((f for f in found if f[0][0].relative == term.relative and f[1].shape == index.shape
                         and (f[1] is index or np.array_equal(f[1], index))), None)
            if same is None:
                found.append([[term], index, list(params), [len(params)]])
            else:
                same[0].append(term)
                same[2].extend(params)
                same[3].append(len(params))
        for terms, index, params, counts in found:
            group = self._group(tuple(terms), tuple(counts))
            parts = [(group, index, params)] if self.sites is None else self.sites.expand(group, index, tuple(params), config)
            for group, index, params in parts:
                if atoms is not None and self.sites is not None:
                    keep = atoms[index].any(axis=1)
                    if not keep.any():
                        continue
                    index, params = index[keep], tuple(p if np.ndim(p) == 0 else p[keep] for p in params)
                q = local_coordinates(group, index, config.positions, config.box).astype(config.dtype) if coordinates else None
                yield group, index, q, tuple(np.asarray(p, dtype=config.dtype) for p in params)

    def _group(self, terms, param_counts):
        """The (cached) :class:`TermGroup` of these terms, so its compiled functions are reused."""
        key = (terms, param_counts)
        if key not in self._groups:
            self._groups[key] = TermGroup(terms, param_counts)
        return self._groups[key]

    # ----------------------------------------------------------------------------- energy and forces
    def energy_and_forces(self, positions, box=None):
        """(energy kJ/mol, forces (N, 3) kJ mol^-1 nm^-1 in the compute dtype)."""
        config = self.configuration(positions, box)
        energy, forces = 0.0, np.zeros((self.n_atoms, 3))
        for group, index, _, params in self.instance_groups(config, coordinates=False):
            if group.radial and self.radial:
                energy += self._radial_forces(group, index, config, params, forces)
                continue
            if self.radial and getattr(group, "linear_radial", False):
                energy += self._linear_site_forces(group, index, config, params, forces)
                continue
            q = local_coordinates(group, index, config.positions, config.box).astype(config.dtype)
            A = chain_matrix(group)
            for start, stop, q_chunk, p_chunk, weights in padded_chunks(q, params):
                e, g = kernel.term_energy_and_gradient(group.energy, q_chunk, weights, p_chunk)
                energy += e
                f_local = -np.einsum("ap,mai->mpi", A, g[: stop - start])
                for p in range(group.n_body):
                    forces += scatter_add(self.n_atoms, index[start:stop, p], f_local[:, p])
        for term in self.long_range_terms:
            e, f = term.energy_and_forces(config)
            energy += e
            forces += f if self.sites is None else self.sites.distribute(f, config)   # a site's force on its parents
        return energy, forces.astype(config.dtype)

    def _radial_forces(self, group, index, config, params, forces):
        """Add a radial pair group's forces to ``forces`` (N, 3) float64; return its energy (kJ/mol)."""
        pairs = np.ascontiguousarray(index, dtype=np.int64)
        d, r = pair_geometry(config, pairs)
        energy, dphi = 0.0, np.empty_like(r)
        for start, stop, r_chunk, p_chunk, weights in padded_chunks(r, params, RADIAL_CHUNK):
            e, g = kernel.term_energy_and_gradient(group.radial_energy, r_chunk, weights, p_chunk)
            energy += e
            dphi[start:stop] = g[: stop - start]
        assembly.radial_pair_forces(pairs, d, r, dphi, forces)
        return energy

    def _linear_site_forces(self, group, index, config, params, forces):
        """Add the forces of pairs through linear sites (mdjac.sites.SiteMappedGroup.linear_radial) to ``forces``:
        phi'(r) by AD on the pair distances, then dE/dx_p = c_p phi' d / r; return their energy (kJ/mol)."""
        q = local_coordinates(group, index, config.positions, config.box)
        d, c = group.pair_vectors(q, params)
        r = np.sqrt(np.einsum("mi,mi->m", d, d)).astype(config.dtype)
        inner = params[:group.n_params]
        energy, dphi = 0.0, np.empty(len(r))
        for start, stop, r_chunk, p_chunk, weights in padded_chunks(r, inner, RADIAL_CHUNK):
            e, g = kernel.term_energy_and_gradient(group.group.radial_energy, r_chunk, weights, p_chunk)
            energy += e
            dphi[start:stop] = g[: stop - start]
        g = (dphi / r)[:, None] * d                 # dE/dd
        for p in range(group.n_body):
            forces -= scatter_add(self.n_atoms, index[:, p], c[:, p, None] * g)
        return energy

    def energy(self, positions, box=None):
        """Potential energy, kJ/mol."""
        return self.energy_and_forces(positions, box)[0]

    def forces(self, positions, box=None):
        """Forces -dU/dx, (N, 3) kJ mol^-1 nm^-1."""
        return self.energy_and_forces(positions, box)[1]

    # ----------------------------------------------------------------------------- Jacobian
    def force_jacobian(self, positions, atoms=None, strategy="replicate", box=None):
        """The force Jacobian J_ij = dF_i/dr_j of one frame, as a :class:`ForceJacobian`.

        positions: (N, 3) nm. atoms: None (all) or global indices of the atoms whose rows and
        columns are wanted (a partial Jacobian; only the instances touching them are evaluated
        with "replicate"). strategy: a name in mdjac.strategies.STRATEGIES ("replicate", "colour", "dense").
        With a long-range term and "replicate", the result carries its low-rank part
        (``long_range``; the block diagonal is computed for the selected atoms only); "colour"
        and "dense" hold everything in the blocks. With virtual sites the Jacobian is over the
        real atoms (its ``atoms`` leave the sites out).
        """
        if strategy not in STRATEGIES:
            raise InputError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
        config = self.configuration(positions, box)
        selected = self._selection(atoms)
        jacobian = STRATEGIES[strategy](self, config, selected)
        if self.sites is not None:
            kept = ~self.sites.is_site if selected is None else selected
            return jacobian.select(np.flatnonzero(kept))
        return jacobian if selected is None else jacobian.select(np.flatnonzero(selected))

    def _selection(self, atoms):
        """Boolean mask (N,) of selected atoms, or None for all."""
        if atoms is None:
            return None
        a = np.asarray(atoms)
        if a.size == 0:
            raise InputError("the atom selection is empty: give at least one atom index")
        if a.dtype == bool:
            if a.shape != (self.n_atoms,):
                raise InputError(f"a boolean atom selection must have {self.n_atoms} entries, got {a.shape}")
            return self._no_sites(a)
        if not np.issubdtype(a.dtype, np.integer) or a.ndim != 1:
            raise InputError("atoms must be a 1-D list of integer atom indices")
        if len(a) == 0:
            raise InputError("the atom selection is empty: give at least one atom index")
        if a.min() < 0 or a.max() >= self.n_atoms:
            raise InputError(f"atom selection holds indices outside 0..{self.n_atoms - 1}")
        mask = np.zeros(self.n_atoms, dtype=bool)
        mask[a] = True
        return self._no_sites(mask)

    def _no_sites(self, mask):
        """``mask`` (N,) bool, refused if it selects a virtual site."""
        if self.sites is not None and self.sites.is_site[mask].any():
            site = int(np.flatnonzero(mask & self.sites.is_site)[0])
            raise InputError(f"atom {site} of the selection is a virtual site: the Jacobian is over real atoms, select those")
        return mask

    def energy_function(self, positions, box=None):
        """The frame's energy as one MindSpore function of all positions (mdjac.strategies.one_function).

        Returns ``(energy, args)``: ``energy(X, *args)`` maps X (C, N, 3) copies of the positions
        (nm) to (C,) energies (kJ/mol), exact near this frame.
        """
        return energy_function(self, self.configuration(positions, box))
