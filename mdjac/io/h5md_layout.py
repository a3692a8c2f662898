"""The H5MD layout of an mdjac file: its names, units and the rules its reader and writer share.

The tree (documented with a stand-alone h5py snippet in ``docs/h5md.md``): an H5MD 1.1 file whose
``/particles/trajectory`` group holds ``position``, ``box/edges`` (periodic systems) and ``force``
as time-dependent elements, all sharing one ``step`` and one ``time`` dataset through hard links,
and next to them ``force_jacobian``: every frame's 3x3 blocks as a block-sparse row (BSR) matrix,
stored as one flat, resizable store of blocks and column indices plus per-frame row pointers and
offsets (layout name ``mdjac-bsr-1``). A Jacobian with a long-range (Ewald, PME, LJ-PME) part also stores,
once per file, what rebuilds that part from each frame's positions and box (``force_jacobian/long_range``:
its kind, kmax or the PME grid, alpha, the Coulomb constant and the kept atoms' charges, or a sum's parts
each so; a :class:`LongRangeRecipe`), and, for a part seen through virtual sites, the site map beside it
(:data:`SITE_MAP`: its links once, their 3x3 blocks and the sites' positions frame by frame). A
generalized-Born part cannot be rebuilt from positions without the term's AD, so the same group holds its
per-pair arrays frame by frame (:data:`BORN_DATASETS`, mdjac.born_jacobian).

Never lose a frame. The writer stores a frame's data first and the shared ``step``/``time``
datasets last, so a frame counts as stored only once every dataset holds it
(:func:`complete_frames`); every batch goes through a rollback journal (:mod:`mdjac.io.journal`),
so a process killed inside a batch leaves the file as it was before it, and readers of a file
with a pending journal see it as it was before that batch (:func:`open_h5`).

A distributed run's output is an index of part files (:mod:`mdjac.io.h5md_index`): the same tree
with its frame datasets (:func:`extents`) virtual; :func:`part_files` names its parts,
:func:`store_files` the segment files of its Jacobian store, and :func:`open_h5` refuses one
whose files are missing (:func:`missing_parts`).
"""
import contextlib
import dataclasses
import gc
import io
import os
import sys
import traceback

import h5py
import numpy as np

from . import journal
from ..errors import InputError, os_error_reason
from ..long_range_jacobian import KIND_SIZES
from ..longrange.kinds import BORN_KIND, KIND_WEIGHTS, SITE_MAPPED_KIND, SUM_KIND

GROUP = "trajectory"
JACOBIAN = "force_jacobian"
LAYOUT = "mdjac-bsr-1"
#: subgroup of ``force_jacobian`` holding what rebuilds a long-range part (Ewald's low-rank part, PME's mesh operator)
LONG_RANGE = "long_range"
#: the attribute holding each kind's sizes (the one table of kinds, mdjac.longrange.kinds)
LONG_RANGE_SIZES = KIND_SIZES
#: a generalized-Born part's datasets in ``long_range``: the pairs' flat store (pairs (P, 2) int32, vectors (P, 3),
#: scalars (P, 7)), whose rows are pairs, ...
BORN_PAIR_DATASETS = ("pairs", "vectors", "scalars")
#: ... and those whose rows are frames: each frame's extent in the store (F, 2: first pair, pairs) and M's diagonal (F, N_GB)
BORN_FRAME_DATASETS = ("extent", "m_diagonal")
BORN_DATASETS = BORN_PAIR_DATASETS + BORN_FRAME_DATASETS
#: subgroup of ``long_range`` holding the site map S = dX/dx of a part seen through virtual sites: ``particle``,
#: ``atom`` (L,) int64 once (site particle[l] hangs on real atom atom[l]), and :data:`SITE_FRAME_DATASETS` per frame
SITE_MAP = "site_map"
#: the site map's datasets per frame: blocks (F, L, 3, 3) dX_particle/dx_atom, positions (F, S, 3) nm of the sites
SITE_FRAME_DATASETS = ("blocks", "positions")
UNITS = {"length": "nm", "time": "ps", "force": "kJ mol-1 nm-1", "jacobian": "kJ mol-1 nm-2",
         "mass": "u"}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Batches undone after an error in this process. HDF5 can be left holding objects of a file whose
#: writes failed (a full disk), which crash the process when freed at exit: the command line ends
#: such a process without that clean-up (mdjac.cli.run), once the file is recovered.
ABANDONED_BATCHES = 0


def is_hdf5(path):
    """True if the file starts with the HDF5 signature (userblocks are not supported)."""
    with open(path, "rb") as f:
        return f.read(8) == HDF5_SIGNATURE


def open_h5(path, mode="r"):
    """h5py.File for reading (or ``mode`` 'w-' to create), with HDF5's failures (truncated,
    corrupt, not HDF5) as one-line InputErrors. A file with a pending journal (a batch being
    written, or a killed writer's) is read as it was before that batch; an index whose part files
    are missing is refused (:mod:`mdjac.io.h5md_index`)."""
    if mode == "r" and not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        if mode != "r":   # new files keep their free-space map, so a batch reuses what the last freed
            return h5py.File(path, mode, locking=False, fs_strategy="fsm", fs_persist=True, fs_threshold=1)
        pending = journal.read_journal(path)
        if pending is not None:
            return h5py.File(journal.CommittedView(path, pending), "r")
        f = h5py.File(path, "r")
    except OSError as err:
        reason = os_error_reason(err)
        if "truncated" in reason:
            reason = "the file is truncated"
        elif "signature" in reason or "not an HDF5" in reason.lower():
            reason = "not an HDF5 file"
        raise InputError(f"{path}: cannot open as HDF5 ({reason}); is it a complete H5MD file?") from None
    problem = missing_parts(f)      # an index of part files (a distributed run's output)
    if problem:
        f.close()
        raise InputError(problem)
    return f


@contextlib.contextmanager
def modify(path):
    """An h5py.File open for modification through a rollback journal (mdjac.io.journal): either
    everything done inside the block reaches the file, or (killed, or an exception such as a
    full disk) nothing."""
    jf = journal.JournaledFile(path)
    f = None
    hook, failed, printed = sys.unraisablehook, [], io.StringIO()
    sys.unraisablehook = failed.append   # h5py reports writes that fail while it releases objects here,
    try:                                 # and prints their tracebacks: the writer reports one line
        with contextlib.redirect_stderr(printed):
            f = h5py.File(jf, "r+")
            yield f
            f.close()
        if failed:
            raise failed[0].exc_value
    except BaseException as err:
        global ABANDONED_BATCHES
        ABANDONED_BATCHES += 1
        jf.abandon()
        if f is not None:
            _close_quietly(f)
        traceback.clear_frames(err.__traceback__)    # release the batch's HDF5 objects now, while
        gc.collect()                                 # the abandoned file takes their last writes
        journal.recover(path)
        raise
    finally:
        sys.unraisablehook = hook
    sys.stderr.write(printed.getvalue())             # anything else said during a good batch
    jf.commit()


def _close_quietly(f):
    """Close an h5py.File whose writes failed, keeping HDF5's complaints to itself."""
    try:
        f.close()
    except Exception:  # noqa: BLE001 - the batch is being undone; nothing of it is kept
        pass


def complete_frames(g):
    """Number of frames that every dataset of particle group ``g`` holds completely.

    A frame is complete when its step and time, every element's value and (if present) its
    Jacobian row pointers, offset and the blocks those point to are all stored: the writer stores
    them in the reverse order, step and time last.
    """
    counts = [len(g["position/step"]), len(g["position/time"]) if "time" in g["position"] else np.inf]
    counts += [len(g[name]["value"]) for name in ("position", "force", "velocity") if name in g]
    if "box" in g and isinstance(g["box"].get("edges"), h5py.Group):
        counts.append(len(g["box/edges/value"]))
    n = int(min(counts))
    if JACOBIAN in g:
        jac = g[JACOBIAN]
        n = min(n, len(jac["indptr"]), len(jac["offset"]))
        stored = min(len(jac["indices"]), len(jac["blocks"]))
        while n and int(jac["offset"][n - 1]) + int(jac["indptr"][n - 1, -1]) > stored:
            n -= 1
        born = jac.get(LONG_RANGE)
        if born is not None and "extent" in born:      # a generalized-Born part's arrays, frame by frame
            n = min(n, len(born["extent"]), len(born["m_diagonal"]))
            stored = min(len(born[name]) for name in ("pairs", "vectors", "scalars"))
            while n and int(born["extent"][n - 1].sum()) > stored:
                n -= 1
        if born is not None and SITE_MAP in born:     # a site map's blocks and sites, frame by frame
            n = min([n] + [len(born[SITE_MAP][name]) for name in SITE_FRAME_DATASETS])
    return n


@dataclasses.dataclass(frozen=True, eq=False)
class LongRangeRecipe:
    """What a file keeps once to rebuild each frame's long-range part (``force_jacobian/long_range``, docs/h5md.md).

    kind : str, a kind of mdjac.longrange.kinds: Ewald's, PME's, the dispersion mesh's (:data:`LONG_RANGE_SIZES`),
        generalized Born's (its arrays are stored frame by frame; nothing else here) or a sum's.
    sizes : (3,) int64, Ewald's kmax or the mesh's grid.
    alpha : nm^-1.  constant : the Coulomb constant kJ mol^-1 nm e^-2 (1 for the dispersion mesh).
    charges : (n,) float64, the charges e (the dispersion mesh: its coefficients) of the atoms the part is on: the
        Jacobian's kept atoms, or every particle when ``sites`` is set.
    parts : tuple of LongRangeRecipe, the parts of a sum (kind ``SUM_KIND``; each of a kind of :data:`LONG_RANGE_SIZES`).
    sites : None, or (particle (L,), atom (L,)) int64, the links of the site map S = dX/dx from each virtual site
        to its parents: the part is over every particle and the Jacobian's is S^T J_all S on the kept real atoms
        (mdjac.site_jacobian); the links' blocks and the sites' positions are stored frame by frame (:data:`SITE_MAP`).
    """
    kind: str
    sizes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    alpha: float = 0.0
    constant: float = 0.0
    charges: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    parts: tuple = ()
    sites: tuple = None

    def same(self, other):
        """True if ``other`` is the identical recipe."""
        def equal(a, b):
            return a.shape == b.shape and np.array_equal(a, b)
        if self.sites is None or other.sites is None:
            sites = self.sites is None and other.sites is None
        else:
            sites = all(equal(a, b) for a, b in zip(self.sites, other.sites))
        return (self.kind == other.kind and equal(self.sizes, other.sizes) and self.alpha == other.alpha
                and self.constant == other.constant and equal(self.charges, other.charges) and sites
                and len(self.parts) == len(other.parts) and all(a.same(b) for a, b in zip(self.parts, other.parts)))


#: the recipe of a generalized-Born part: its kind alone (its arrays are stored per frame)
BORN_RECIPE = LongRangeRecipe(BORN_KIND)


def _stored_kinds():
    """The kinds a file stores, for messages."""
    return ", ".join(list(LONG_RANGE_SIZES) + [SUM_KIND, BORN_KIND])


def long_range_recipe(part):
    """The :class:`LongRangeRecipe` of a long-range part: what the file keeps, from its ``kind`` and ``recipe()``
    (a sum: its parts'; a part seen through virtual sites: its inner part's and the links of its site map)."""
    if part.kind == SITE_MAPPED_KIND:
        particle, atom, _ = part.links
        site = particle != atom                 # the links of a site to its parents (the others: real atoms, identity)
        return dataclasses.replace(long_range_recipe(part.inner), sites=(particle[site].astype(np.int64),
                                                                          atom[site].astype(np.int64)))
    if part.kind == SUM_KIND:
        parts = tuple(long_range_recipe(p) for p in part.parts)
        if any(p.kind not in LONG_RANGE_SIZES for p in parts):
            raise InputError(f"a sum of long-range Jacobian parts of kinds {[p.kind for p in parts]} cannot be stored; "
                             f"this mdjac stores sums of {', '.join(LONG_RANGE_SIZES)}")
        return LongRangeRecipe(SUM_KIND, parts=parts)
    if part.kind == BORN_KIND:
        return BORN_RECIPE
    if part.kind not in LONG_RANGE_SIZES:
        raise InputError(f"a long-range Jacobian part of kind {part.kind!r} cannot be stored; this mdjac stores "
                         f"{_stored_kinds()}")
    sizes, alpha, constant, charges = part.recipe()
    return LongRangeRecipe(part.kind, np.asarray(sizes, dtype=np.int64), float(alpha), float(constant),
                           np.asarray(charges, dtype=np.float64))


def _kind(group):
    """A ``long_range`` group's (or part's) ``kind`` attribute as a str."""
    kind = group.attrs.get("kind", "")
    return kind.decode() if isinstance(kind, bytes) else str(kind)


def read_recipe(lr):
    """The :class:`LongRangeRecipe` stored in a ``long_range`` group."""
    kind = _kind(lr)
    if kind == BORN_KIND:
        return BORN_RECIPE
    sites = None
    if SITE_MAP in lr:
        sites = (lr[SITE_MAP]["particle"][()].astype(np.int64), lr[SITE_MAP]["atom"][()].astype(np.int64))
    if kind == SUM_KIND:
        parts = tuple(_read_part(lr[f"part{k}"]) for k in range(int(lr.attrs["parts"])))
        return LongRangeRecipe(SUM_KIND, parts=parts, sites=sites)
    return dataclasses.replace(_read_part(lr), sites=sites)


def _read_part(lr):
    """The recipe of one part of a kind of :data:`LONG_RANGE_SIZES` from its group's attributes and weights."""
    kind = _kind(lr)
    if kind not in LONG_RANGE_SIZES:
        raise InputError(f"{lr.file.filename}: long-range Jacobian part of kind {kind!r}; this mdjac reads "
                         f"{_stored_kinds()}")
    return LongRangeRecipe(kind, np.asarray(lr.attrs[LONG_RANGE_SIZES[kind]], dtype=np.int64), float(lr.attrs["alpha"]),
                           float(lr.attrs.get("coulomb_constant", 1.0)), lr[KIND_WEIGHTS[kind][0]][()])


def write_recipe(lr, recipe):
    """Write ``recipe`` (a :class:`LongRangeRecipe`, not generalized Born's) into the empty ``long_range`` group ``lr``:
    a part's attributes and weights, a sum's parts as subgroups ``part0``, ``part1``, ..., and the site map's links
    (its per-frame datasets are made by the writer)."""
    if recipe.kind == SUM_KIND:
        lr.attrs["kind"] = SUM_KIND
        lr.attrs["parts"] = np.int64(len(recipe.parts))
        for k, part in enumerate(recipe.parts):
            write_recipe(lr.create_group(f"part{k}"), part)
    else:
        lr.attrs["kind"] = recipe.kind
        lr.attrs[LONG_RANGE_SIZES[recipe.kind]] = np.asarray(recipe.sizes, dtype=np.int64)
        lr.attrs["alpha"] = np.float64(recipe.alpha)
        name, unit = KIND_WEIGHTS[recipe.kind]
        if unit == "e":
            lr.attrs["coulomb_constant"] = np.float64(recipe.constant)
        lr.create_dataset(name, data=np.asarray(recipe.charges, dtype=np.float64)).attrs["unit"] = unit
    if recipe.sites is not None:
        site_map = lr.create_group(SITE_MAP)
        site_map.create_dataset("particle", data=recipe.sites[0])
        site_map.create_dataset("atom", data=recipe.sites[1])


def same_recipe(a, b):
    """True if two long-range recipes (:class:`LongRangeRecipe`) are identical."""
    return a.same(b)


def site_frame(part):
    """What a frame stores of the site map of a part seen through virtual sites (mdjac.site_jacobian.SiteMappedPart):
    (blocks (L, 3, 3) float64 of its site links, in the order of :func:`long_range_recipe`'s ``sites``; the sites'
    positions (S, 3) float64 nm at which the part was computed, sites ascending)."""
    particle, atom, blocks = part.links
    site = particle != atom
    inner = part.inner
    while not hasattr(inner, "positions"):      # a sum: its parts are on the same particles
        inner = inner.parts[0]
    return (np.asarray(blocks[site], dtype=np.float64),
            np.asarray(inner.positions, dtype=np.float64)[np.unique(particle[site])])


def upper_triangle(jacobian):
    """(rows, cols, blocks) of the blocks with col >= row (the rest is their transposes)."""
    keep = jacobian.cols >= jacobian.rows
    return jacobian.rows[keep], jacobian.cols[keep], jacobian.blocks[keep]


def mirror_upper(rows, cols, blocks):
    """The full, row-major pattern from an upper triangle: J_ji = J_ij^T."""
    off = rows != cols
    rows, cols = np.concatenate([rows, cols[off]]), np.concatenate([cols, rows[off]])
    blocks = np.concatenate([blocks, blocks[off].transpose(0, 2, 1)])
    order = np.lexsort((cols, rows))
    return rows[order], cols[order], blocks[order]


def extents(g, n):
    """{dataset name: length} of every resizable dataset of particle group ``g`` holding exactly
    its first ``n`` frames (the Jacobian store: the blocks those frames use)."""
    out = {"position/step": n, "position/value": n}
    if "time" in g["position"]:
        out["position/time"] = n
    if "force" in g:
        out["force/value"] = n
    if "box" in g and "edges" in g["box"]:
        out["box/edges/value"] = n
    if JACOBIAN in g:
        jac = g[JACOBIAN]
        end = int(jac["offset"][n - 1] + jac["indptr"][n - 1, -1]) if n else 0
        out.update({f"{JACOBIAN}/indptr": n, f"{JACOBIAN}/offset": n,
                    f"{JACOBIAN}/indices": end, f"{JACOBIAN}/blocks": end})
        born = jac.get(LONG_RANGE)
        if born is not None and "extent" in born:
            end = int(born["extent"][n - 1].sum()) if n else 0
            out.update({f"{JACOBIAN}/{LONG_RANGE}/{name}": n if name in BORN_FRAME_DATASETS else end
                        for name in BORN_DATASETS})
        if born is not None and SITE_MAP in born:
            out.update({f"{JACOBIAN}/{LONG_RANGE}/{SITE_MAP}/{name}": n for name in SITE_FRAME_DATASETS})
    return out


def is_index(f):
    """True if the open h5py.File ``f`` is an index (its positions are a virtual dataset)."""
    ds = f.get(f"particles/{GROUP}/position/value")
    return isinstance(ds, h5py.Dataset) and ds.is_virtual


def mappings(ds):
    """[(absolute path of the source file, first row, rows or None), ...] of the virtual dataset
    ``ds``, one per mapping in the order written; rows is None for a mapping without end (an
    index's planned part, or its open store segment: as many rows as the source holds, none while
    the source file is absent)."""
    folder = os.path.dirname(os.path.abspath(ds.file.filename))
    out = []
    for source in ds.virtual_sources():
        start, _, count, block = source.vspace.get_regular_hyperslab()
        rows = None if h5py.h5s.UNLIMITED in (count[0], block[0]) else int(count[0] * block[0])
        out.append((os.path.normpath(os.path.join(folder, source.file_name)), int(start[0]), rows))
    return out


def part_files(f):
    """Absolute paths of the part files of the open index ``f`` that hold its frames, in frame
    order: every joined part, up to the first planned part not joined yet ([] for a file that is
    not an index)."""
    if not is_index(f):
        return []
    used = []
    for path, _, rows in mappings(f[f"particles/{GROUP}/position/value"]):
        if rows is None and not os.path.isfile(path):
            break
        used.append(path)
    return list(dict.fromkeys(used))


def store_files(f):
    """Absolute paths of the segment files through which the index ``f`` maps its Jacobian store
    (:mod:`mdjac.io.h5md_index`), [] if it maps the parts' stores directly or has no Jacobian."""
    store = f.get(f"particles/{GROUP}/{JACOBIAN}/blocks")
    if not is_index(f) or not isinstance(store, h5py.Dataset) or not store.is_virtual:
        return []
    parts = set(part_files(f))
    return [p for p in dict.fromkeys(path for path, _, _ in mappings(store)) if p not in parts]


def missing_parts(f):
    """One line naming the first missing part file of the open index ``f``, or None.

    Missing: a joined part (a mapping with an end), a planned part before one that is there or
    before the frames the index's stored ``offset`` counts as joined, a store segment file."""
    if not is_index(f):
        return None
    g = f[f"particles/{GROUP}"]
    joined = len(g[f"{JACOBIAN}/offset"]) if JACOBIAN in g and not g[f"{JACOBIAN}/offset"].is_virtual else 0
    needed, later = [], False
    for path, start, rows in reversed(mappings(g["position/value"])):
        there = os.path.isfile(path)
        if there or rows is not None or later or start < joined:
            needed.append((path, there))
        later = later or there
    needed = needed[::-1] + [(p, os.path.isfile(p)) for p in store_files(f)]
    missing = [p for p, there in needed if not there]
    if not missing:
        return None
    return (f"{f.filename} indexes its frames in {len(needed)} files and {missing[0]} is missing "
            f"({len(missing)} missing); keep the folder {os.path.dirname(missing[0])} beside the file "
            "(or `mdjac consolidate` it into one file while the parts are there)")
