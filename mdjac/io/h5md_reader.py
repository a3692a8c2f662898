"""Reading H5MD files: mdjac's own (with their Jacobians), standard H5MD, MindSPONGE's WriteH5MD.

:class:`H5MDTrajectory` is the reader (a lazy :class:`~mdjac.io.frames.FrameSequence`; its
docstring draws the tree it accepts); :func:`describe` summarises a file for ``mdjac info``.
Units in the file (its ``unit`` attributes) are converted to nm, ps and kJ mol^-1 nm^-1.
"""
import contextlib
import json
import os
import time

import h5py
import numpy as np

from . import journal
from ..errors import InputError, os_error_reason
from ..space import check_box
from ..jacobian import ForceJacobian, rows_of
from ..long_range_jacobian import PartSum, rebuild
from ..longrange.kinds import BORN_KIND, SUM_KIND
from .frames import Frame, FrameSequence
from .h5md_index import part_files
from .h5md_layout import (BORN_DATASETS, GROUP, JACOBIAN, LONG_RANGE, LONG_RANGE_SIZES, SITE_FRAME_DATASETS,
                          SITE_MAP, complete_frames, mirror_upper, open_h5, read_recipe)

# H5MD unit strings of input files, as factors to mdjac's units (nm; kJ mol^-1 nm^-1).
LENGTH_FACTORS = {"nm": 1.0, "Angstrom": 0.1, "angstrom": 0.1, "A": 0.1, "pm": 1e-3, "um": 1e3}
FORCE_FACTORS = {"kJ mol-1 nm-1": 1.0, "kJ mol-1 Angstrom-1": 10.0, "kJ mol-1 A-1": 10.0,
                 "kcal mol-1 Angstrom-1": 41.84, "kcal mol-1 A-1": 41.84, "kcal mol-1 nm-1": 4.184}


def particle_group_name(f, group=None):
    """The particles group to read: ``group`` if given, else 'trajectory', else the first."""
    if "particles" not in f or not len(f["particles"]):
        raise InputError(f"{f.filename}: not an H5MD trajectory (no /particles group)")
    names = list(f["particles"])
    if group is not None:
        if group not in names:
            raise InputError(f"{f.filename}: no particles group '{group}' (it has {', '.join(names)})")
        return group
    return GROUP if GROUP in names else names[0]


def _unit(dataset, factors, what, default):
    """Conversion factor to mdjac's units from a dataset's H5MD ``unit`` attribute."""
    unit = dataset.attrs.get("unit", default)
    unit = unit.decode() if isinstance(unit, bytes) else str(unit)
    if unit not in factors:
        raise InputError(f"{dataset.file.filename}: {what} unit '{unit}' is not one mdjac reads "
                         f"({', '.join(factors)})")
    return factors[unit]


class H5MDTrajectory(FrameSequence):
    """Lazy frames of an H5MD file: mdjac's own output, standard H5MD, or MindSPONGE's WriteH5MD.

    Accepted tree (``{name}`` any name, ``[name]`` a dataset, ``+--`` an attribute; every
    ``value`` has shape (n_frames, ...) and its ``unit`` is converted to nm, ps, kJ mol^-1 nm^-1)::

        H5MD root
         \\-- (particles)
            \\-- {trajectory}            group argument; default 'trajectory', else the first
                \\-- (position)          required
                    \\-- [step] (n,) int
                    \\-- [time] (n,) float           +-- unit ps (optional)
                    \\-- [value] (n, N, 3) float     +-- unit nm | Angstrom | A | pm
                \\-- (box)               +-- dimension 3, +-- boundary 'periodic' | 'none' (x3)
                    \\-- (edges)         time-dependent: [step], [time], [value] (n, 3)
                     or [edges] (3,)    fixed box (MindSPONGE at constant volume)
                     or absent          not periodic
                \\-- (force)             optional: [step], [time], [value] (n, N, 3)
                \\-- (force_jacobian)    optional, mdjac's layout (docs/h5md.md)
                    \\-- [atoms] (n_kept,) int64
                    \\-- [indptr] (n, n_kept + 1) int64, [offset] (n,) int64
                    \\-- [indices] (total,) int32, [blocks] (total, 3, 3)  +-- unit kJ mol-1 nm-2
                    \\-- (long_range)  optional: +-- kind, kmax (Ewald) or grid (PME), alpha, coulomb_constant; [charges] (n_kept,)
                                       (or a sum's parts, a site map, generalized Born's arrays: docs/h5md.md)
         \\-- (observables), (parameters)   ignored

    Only complete frames count (:func:`complete_frames`). The file stays open until
    :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(self, path, group=None):
        self.path = str(path)
        self.file = open_h5(self.path)
        try:
            self._setup(group)
        except (KeyError, ValueError, TypeError, OSError) as err:
            self.file.close()
            if isinstance(err, InputError):
                raise
            raise InputError(f"{self.path}: not a readable H5MD trajectory ({err})") from None

    def _setup(self, group):
        name = particle_group_name(self.file, group)
        g = self.file["particles"][name]
        if "position" not in g or not isinstance(g["position"], h5py.Group):
            raise InputError(f"{self.path}: no time-dependent /particles/{g.name}/position element")
        self.group = g
        value = g["position/value"]
        if value.ndim != 3 or value.shape[2] != 3:
            raise InputError(f"{self.path}: positions have shape {value.shape}, expected (frames, atoms, 3)")
        self.n_atoms = value.shape[1]
        self._length = _unit(value, LENGTH_FACTORS, "length", "nm")
        self._force = None
        if "force" in g:
            try:
                self._force = _unit(g["force/value"], FORCE_FACTORS, "force", "kJ mol-1 nm-1")
            except InputError:
                self._force = None      # forces in a unit we do not know: not read
        self._n = complete_frames(g)
        self.has_times = "time" in g["position"]
        self.periodic = "edges" in g["box"] if "box" in g else False
        self.masses = np.asarray(g["mass"][()], dtype=np.float64) if isinstance(g.get("mass"), h5py.Dataset) else None
        self.has_jacobian = JACOBIAN in g
        if self.has_jacobian:
            jac = g[JACOBIAN]
            self.atoms = jac["atoms"][()]
            self._recipe = read_recipe(jac[LONG_RANGE]) if LONG_RANGE in jac else None
        if self.periodic:
            self._edges = g["box/edges"]
            self._box_factor = _unit(self._edges if isinstance(self._edges, h5py.Dataset)
                                     else self._edges["value"], LENGTH_FACTORS, "box", "nm")

    def __len__(self):
        return self._n

    def _box(self, i):
        """(3,) nm, or None; a (3, 3) box (H5MD's triclinic edges, rows the box vectors) as
        mdjac.space.check_box makes it: (3,) if diagonal, else reduced (3, 3) nm."""
        if not self.periodic:
            return None
        edges = self._edges[()] if isinstance(self._edges, h5py.Dataset) else self._edges["value"][i]
        edges = np.asarray(edges, dtype=np.float64) * self._box_factor
        if edges.shape == (3, 3):
            try:
                return check_box(edges)
            except InputError as err:
                raise InputError(f"{self.path}: frame {i}: {err}") from None
        return edges

    def _read(self, i):
        g = self.group
        with self._reading(i):
            positions, box = self.coordinates(i)
            step = int(g["position/step"][i])
            time = float(g["position/time"][i]) if "time" in g["position"] else float("nan")
            forces = None if self._force is None else g["force/value"][i] * self._force
            jacobian = (read_jacobian(g[JACOBIAN], i, self.n_atoms, self.atoms, self._recipe, positions, box)
                        if self.has_jacobian else None)
        return Frame(step, time, positions, box, forces, jacobian)

    def coordinates(self, index):
        i = range(self._n)[index]
        with self._reading(i):
            positions = self.group["position/value"][i]
            return (positions * self._length if self._length != 1.0 else positions), self._box(i)

    @contextlib.contextmanager
    def _reading(self, i):
        """HDF5 read failures (a damaged file) as one-line InputErrors."""
        try:
            yield
        except OSError as err:
            reason = os_error_reason(err)
            raise InputError(f"{self.path}: cannot read frame {i} ({reason}); the file is damaged") from None

    def close(self):
        if self.file.id.valid:
            self.file.close()


def read_jacobian(jac, i, n_atoms, atoms, recipe, positions=None, box=None):
    """Frame ``i`` of a ``force_jacobian`` group as a ForceJacobian (an upper triangle mirrored).

    ``atoms`` (M,) is the group's ``atoms`` dataset and ``recipe`` its ``long_range`` subgroup's
    :func:`read_recipe` (None without one), both read once per file. With a recipe the whole
    Jacobian is given: its long-range part is rebuilt from the frame's ``positions`` (N, 3) nm and
    ``box`` (3,) nm (mdjac.long_range_jacobian.rebuild: Ewald's ReciprocalJacobian or PME's mesh
    operator, mdjac.pme_jacobian.PMEJacobian; a sum of them; seen through the site map,
    mdjac.site_jacobian.SiteMappedPart).
    """
    indptr = jac["indptr"][i]
    start = int(jac["offset"][i])
    stop = start + int(indptr[-1])
    cols = jac["indices"][start:stop].astype(np.int64)
    rows = rows_of(indptr)
    blocks = jac["blocks"][start:stop]
    if jac.attrs.get("triangle", "full") == "upper":
        rows, cols, blocks = mirror_upper(rows, cols, blocks)
    long_range = (_born_part(jac, i, atoms) if recipe is not None and recipe.kind == BORN_KIND
                  else _long_range(jac, i, atoms, recipe, positions, box))
    return ForceJacobian(n_atoms, rows, cols, blocks, atoms=atoms, long_range=long_range)


def _born_part(jac, i, atoms):
    """Frame ``i``'s generalized-Born part from its stored arrays (mdjac.born_jacobian; no MindSpore)."""
    from ..born_jacobian import BornJacobian
    lr = jac[LONG_RANGE]
    first, count = (int(v) for v in lr["extent"][i])
    rows = slice(first, first + count)
    dtype = np.float64 if jac["blocks"].dtype == np.float64 else np.float32
    return BornJacobian.from_stored(dict(pairs=lr["pairs"][rows], u=lr["vectors"][rows], scalars=lr["scalars"][rows],
                                         m_diagonal=lr["m_diagonal"][i], where=atoms), dtype)


def _long_range(jac, i, atoms, recipe, positions, box):
    """Frame ``i``'s long-range part rebuilt from the file's ``recipe``, or None if it has none: on the kept
    ``atoms``, or over every particle (the sites at their stored places) seen through the frame's site map."""
    if recipe is None:
        return None
    if positions is None or box is None:
        raise InputError(f"{jac.file.filename}: the Jacobian's long-range part needs the frame's positions and box")
    dtype = np.float64 if jac["blocks"].dtype == np.float64 else np.float32
    x = np.array(positions, dtype=np.float64)
    if recipe.sites is None:
        return _rebuild(recipe, x[atoms], box, dtype)
    from ..site_jacobian import SiteMappedPart
    site_map = jac[LONG_RANGE][SITE_MAP]
    particle, atom = recipe.sites
    sites = np.unique(particle)
    x[sites] = site_map["positions"][i]
    real = np.setdiff1d(np.arange(len(x)), sites)          # every other particle: dX/dx the identity
    links = (np.concatenate([real, particle]), np.concatenate([real, atom]),
             np.concatenate([np.broadcast_to(np.eye(3), (len(real), 3, 3)), site_map["blocks"][i]]))
    return SiteMappedPart(_rebuild(recipe, x, box, dtype), links, atoms)


def _rebuild(recipe, positions, box, dtype):
    """The part of ``recipe`` (a sum's parts summed) on the atoms at ``positions`` (n, 3) nm."""
    if recipe.kind == SUM_KIND:
        return PartSum([_rebuild(part, positions, box, dtype) for part in recipe.parts])
    return rebuild(recipe.kind, positions, recipe.charges, recipe.sizes, recipe.alpha, box, recipe.constant, dtype)


def read_metadata(path):
    """The writer's ``metadata`` dict of an mdjac file ({} if none)."""
    with open_h5(path) as f:
        raw = f.get("parameters/mdjac")
        return {} if raw is None else json.loads(raw.attrs["metadata"])


JACOBIAN_DATASETS = ("atoms", "indptr", "offset", "indices", "blocks")


def _storage(jac, parts=()):
    """Bytes on disk (compressed) of the datasets of a ``force_jacobian`` group: its own, and those
    of the part files ``parts`` for an index (:mod:`mdjac.io.h5md_index`)."""
    total = sum(jac[name].id.get_storage_size() for name in JACOBIAN_DATASETS if not jac[name].is_virtual)
    virtual = [jac[name].name for name in JACOBIAN_DATASETS if jac[name].is_virtual]
    for part in parts:
        with h5py.File(part, "r") as f:
            total += sum(f[name].id.get_storage_size() for name in virtual)
    born = jac.get(LONG_RANGE)
    if born is not None and "extent" in born:       # a generalized-Born part's arrays
        total += sum(born[name].id.get_storage_size() for name in BORN_DATASETS)
    if born is not None and SITE_MAP in born:       # a site map's blocks and sites (from the parts of an index)
        frames = [born[SITE_MAP][name] for name in SITE_FRAME_DATASETS]
        total += sum(ds.id.get_storage_size() for ds in frames if not ds.is_virtual)
        for part in parts:
            with h5py.File(part, "r") as f:
                total += sum(f[ds.name].id.get_storage_size() for ds in frames if ds.is_virtual)
    return total


def _state(path):
    """What changes when a writer touches ``path``: the file's and its journal's stat."""
    def stat(p):
        try:
            st = os.stat(p)
            return st.st_ino, st.st_size, st.st_mtime_ns
        except FileNotFoundError:
            return None
    return stat(path), stat(journal.journal_path(path))


def consistent_read(function, path, attempts=50):
    """``function(path)``, retried while a writer changed the file during the call (reads race
    with a running writer; a result is kept only if nothing changed while it was read)."""
    for attempt in range(attempts):
        before = _state(path)
        try:
            result = function(path)
        except (OSError, KeyError, ValueError, RuntimeError):   # InputError is a ValueError; h5py's
            # RuntimeError: a storage size read while the writer grows the file (addr overflow)
            if _state(path) == before or attempt == attempts - 1:
                raise
            continue
        if _state(path) == before:
            return result
        time.sleep(0.02)
    raise InputError(f"{path} kept changing while it was read; try again")


def describe(path):
    """What an H5MD file holds, as a dict of plain values (consistent even while mdjac writes
    to the file).

    Keys: path, creator, group, n_atoms, frames (complete ones), steps (first, last), times
    (first, last, ps), periodic, forces, parts (part files of an index, else 0), file_bytes (with
    the parts'); if it has Jacobians: jacobian_atoms (kept
    atoms), blocks_per_frame (min, mean, max), jacobian_dtype, jacobian_bytes_per_frame (on disk,
    compressed), bytes_per_frame (whole file / frames).
    """
    return consistent_read(_describe, os.fspath(path))


def _describe(path):
    with open_h5(path) as f:
        name = particle_group_name(f, None)
        g = f["particles"][name]
        if "position" not in g:
            raise InputError(f"{path}: no /particles/{name}/position element")
        n = complete_frames(g)
        parts = part_files(f)
        creator = f["h5md/creator"].attrs.get("name", "?") if "h5md/creator" in f else "?"
        out = dict(path=str(path), creator=str(creator), group=name,
                   n_atoms=g["position/value"].shape[1], frames=n,
                   steps=(int(g["position/step"][0]), int(g["position/step"][n - 1])) if n else None,
                   times=(float(g["position/time"][0]), float(g["position/time"][n - 1]))
                   if n and "time" in g["position"] else None,
                   periodic="box" in g and "edges" in g["box"], forces="force" in g,
                   parts=len(parts), file_bytes=os.path.getsize(path) + sum(os.path.getsize(p) for p in parts))
        if JACOBIAN in g:
            jac = g[JACOBIAN]
            counts = jac["indptr"][:n, -1] if n else np.zeros(1)
            out.update(jacobian_atoms=len(jac["atoms"]), jacobian_dtype=str(jac["blocks"].dtype),
                       triangle=str(jac.attrs.get("triangle", "full")),
                       blocks_per_frame=(int(counts.min()), float(counts.mean()), int(counts.max())),
                       jacobian_bytes_per_frame=_storage(jac, parts) / max(n, 1),
                       bytes_per_frame=out["file_bytes"] / max(n, 1))
            if LONG_RANGE in jac:
                out.update(long_range=_described(read_recipe(jac[LONG_RANGE])))
        return out


def _described(recipe):
    """A long-range recipe as plain values: kind, kmax or grid and alpha of a part (a sum: ``parts``, each so),
    and ``sites`` (the virtual sites of its site map, if it has one)."""
    if recipe.kind == BORN_KIND:
        return {"kind": recipe.kind}
    out = ({"kind": recipe.kind, "parts": [_described(p) for p in recipe.parts]} if recipe.kind == SUM_KIND else
           {"kind": recipe.kind, LONG_RANGE_SIZES[recipe.kind]: recipe.sizes.tolist(), "alpha": recipe.alpha})
    if recipe.sites is not None:
        out["sites"] = len(np.unique(recipe.sites[0]))
    return out
