"""An H5MD output that indexes the files holding its frames: HDF5 virtual datasets over parts.

A distributed run (:mod:`mdjac.cluster`) writes its frames into part files, each an ordinary
mdjac H5MD file (:class:`mdjac.io.h5md_writer.H5MDWriter`) of consecutive frames. Its output is an
index: the same tree as a serial run's file, in which every dataset indexed by frame (the ones
:func:`mdjac.io.h5md_layout.extents` names) is a virtual dataset concatenating the parts' first
frames, in order; the Jacobian's flat ``indices``/``blocks`` stores concatenate the parts' stores
(the blocks of each part's frames), and ``offset``, which points into the flat store, is the one
frame dataset stored in the index itself (each part's offsets shifted by the blocks of the parts
before). Everything else (the ``h5md`` group, masses, names, atoms, the long-range recipe,
``/parameters``) is copied from the first part, which was written with the same layout and
metadata. So h5py, MDAnalysis and :func:`mdjac.open_trajectory` read it as one trajectory whose
datasets equal a serial run's, and adding a part costs metadata only, whatever its bytes.

Part files are named relative to the index's folder (the folder can move as a whole). A part
must stay where it is: HDF5 reads a missing part as fill values (NaN for floats, -1 for integers),
so mdjac's readers refuse an index with a missing part (:func:`missing_parts`, in
:func:`mdjac.io.h5md_layout.open_h5`). :func:`consolidate` copies an index into one self-contained
file (chunks and filters as the parts', i.e. a serial run's) and deletes its parts.

A join that costs the same whatever the parts before it. The index is written whole (as
``<index>.tmp`` renamed over it) once a run knows its parts: the parts joined, each mapped with an
end, and the parts still to come (:meth:`H5MDIndex.plan`), each mapped *without* an end (HDF5's
unlimited mappings: a source contributes the rows it holds, none while its file is absent). A
planned part joins by being renamed, complete, to its planned path, in frame order; the frame
datasets then grow by its frames with no write to the index (HDF5 sizes them when they are
opened, so a reader sees the frames of the parts present: the joined ones). Two things do
depend on the parts before: ``offset`` (stored: the join appends the part's offsets, shifted)
and the place of the part's blocks in the flat store. The store is therefore mapped through
segment files of at most :data:`SEGMENT_PARTS` parts (each a small file of two virtual datasets
over its parts' stores): the index maps the sealed segments with an end and the open one
without; a join rewrites the open segment (at most :data:`SEGMENT_PARTS` mappings) and, once in
:data:`SEGMENT_PARTS` joins, the index's two store datasets (one mapping per segment). The index
itself is updated by copying its bytes (metadata: the tree, the mappings, the offsets),
changing the copy in place and renaming it over the index (:func:`update_index`), so a reader
sees the old index or the new one, and a killed join leaves the old one. Readers count a frame
only once ``offset`` holds it (:func:`mdjac.io.h5md_layout.complete_frames`), which the join
writes last. A part added without a plan (or holding more rows than its frames) rewrites the
index whole.

A generalized-Born part (mdjac.born_jacobian; :data:`mdjac.io.h5md_layout.BORN_DATASETS`) has a
flat store of its own, its pairs' ``pairs``, ``vectors`` and ``scalars``, and a per-frame
``extent`` (first pair, pairs) pointing into it: ``extent`` is stored in the index like
``offset`` (each part's first pairs shifted by the pairs of the parts before), and the pair arrays
concatenate the joined parts' (mapped with an end; a planned part's pairs are not known before it
joins). A join of such parts rewrites the index whole: GB systems are proteins of a few thousand
atoms, whose runs have few parts.
"""
import contextlib
import dataclasses
import json
import os
import shutil
import uuid
from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import InputError
from .h5md_layout import (BORN_PAIR_DATASETS, GROUP, JACOBIAN, LONG_RANGE, complete_frames, extents, is_index,
                          mappings, missing_parts, open_h5, part_files, store_files)
from .output_lock import OutputLock

#: The frame dataset stored in the index itself (it points into the concatenated flat store).
OFFSET = f"{JACOBIAN}/offset"
BLOCKS = f"{JACOBIAN}/blocks"
#: The Jacobian's flat store: datasets whose rows are blocks, not frames.
STORE = (f"{JACOBIAN}/indices", BLOCKS)
#: A generalized-Born part's per-frame (first pair, pairs) in its pair arrays, stored in the index (shifted).
BORN_EXTENT = f"{JACOBIAN}/{LONG_RANGE}/extent"
#: A generalized-Born part's pair arrays: rows are pairs, not frames.
BORN_PAIRS = tuple(f"{JACOBIAN}/{LONG_RANGE}/{name}" for name in BORN_PAIR_DATASETS)
#: Parts per segment file of an index's Jacobian store (a join rewrites the open segment).
SEGMENT_PARTS = 16
UNLIMITED = h5py.h5s.UNLIMITED


@dataclass(frozen=True)
class Part:
    """One part of an index.

    Attributes
    ----------
    path : str, absolute path of the part file.
    frames : int, its frames that the index uses (its first ``frames``).
    lengths : dict {dataset name under /particles/trajectory: (used length, full shape)}.
    offsets : (frames,) int64, its frames' ``force_jacobian/offset`` (empty without a Jacobian).
    pair_extents : (frames, 2) int64, its frames' generalized-Born ``extent`` (first pair, pairs;
        empty without a generalized-Born part).
    """
    path: str
    frames: int
    lengths: dict
    offsets: np.ndarray
    pair_extents: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2), np.int64))

    @property
    def blocks(self):
        """Blocks of the part's flat Jacobian store that its frames use (0 without a Jacobian)."""
        return self.lengths[BLOCKS][0] if BLOCKS in self.lengths else 0


def read_part(path, frames=None):
    """The :class:`Part` of the mdjac file ``path`` (its first ``frames`` frames, default all
    complete ones); InputError if it cannot be read or holds fewer frames (a damaged file)."""
    with open_h5(path) as f:
        try:
            g = f[f"particles/{GROUP}"]
            # held open, so that HDF5 decompresses their last chunk once for complete_frames and extents
            held = [g[name] for name in (OFFSET, f"{JACOBIAN}/indptr") if name in g]  # noqa: F841
            n = complete_frames(g)
            wanted = n if frames is None else int(frames)
            if n < wanted:
                raise InputError(f"{path} holds {n} complete frames, not {wanted}")
            lengths = {name: (int(size), tuple(g[name].shape)) for name, size in extents(g, wanted).items()}
            g["position/value"][wanted - 1] if wanted else None     # its last frame's data reads back
            offsets = g[OFFSET][:wanted].astype(np.int64) if JACOBIAN in g else np.zeros(0, np.int64)
            pair_extents = g[BORN_EXTENT][:wanted].astype(np.int64) if BORN_EXTENT in g else np.zeros((0, 2), np.int64)
        except (KeyError, OSError) as err:
            raise InputError(f"{path}: not a complete mdjac H5MD file ({err})") from None
    return Part(os.path.abspath(path), wanted, lengths, offsets, pair_extents)


def parts_of(path):
    """Every file the file ``path`` reads if it is a readable index (its part files, and the
    segment files of its Jacobian store), else []."""
    try:
        with h5py.File(path, "r") as f:
            return part_files(f) + store_files(f)
    except (OSError, KeyError, ValueError):
        return []


def _walk_links(group, prefix=""):
    """(name, object) for every hard link below ``group``, parents before children, so that an
    object reached by two links (the shared step and time) is seen under both names."""
    for name in group:
        obj = group.get(name)
        full = f"{prefix}{name}"
        yield full, obj
        if isinstance(obj, h5py.Group):
            yield from _walk_links(obj, full + "/")


def _same_creation(src, dst_group, name, shape, maxshape, dtype=None):
    """An empty dataset like ``src`` (dtype, chunks, filters, attributes) of ``shape``."""
    ds = dst_group.create_dataset(name, shape=shape, maxshape=maxshape, dtype=dtype or src.dtype, chunks=src.chunks,
                                  compression=src.compression, compression_opts=src.compression_opts,
                                  shuffle=src.shuffle, fletcher32=src.fletcher32)
    for key, value in src.attrs.items():
        ds.attrs[key] = value
    return ds


def _address(obj):
    return h5py.h5o.get_info(obj.id).addr


def _copy_tree(template, f, frame_dataset, frame_names):
    """Copy every group, attribute and dataset of the open file ``template`` into ``f``, hard links
    kept; the frame datasets ``frame_names`` (relative to /particles/trajectory) are made by
    ``frame_dataset(f, name, src)`` when it returns True (else copied)."""
    for key, value in template.attrs.items():
        f.attrs[key] = value
    base, seen = f"particles/{GROUP}/", {}
    for name in frame_names:
        obj = template[base + name]
        seen[_address(obj)] = base + name
        parent, _, leaf = (base + name).rpartition("/")
        f.require_group(parent)
        if not frame_dataset(f, name, obj):
            template.copy(obj, f[parent], leaf)
    for name, obj in _walk_links(template):
        address = _address(obj)
        if address in seen:
            if name != seen[address]:
                f[name] = f[seen[address]]
            continue
        seen[address] = name
        if isinstance(obj, h5py.Group):
            g = f.require_group(name)
            for key, value in obj.attrs.items():
                g.attrs[key] = value
        else:
            parent, _, leaf = name.rpartition("/")
            template.copy(obj, f.require_group(parent or "/"), leaf)


def _space(shape, start=0, rows=None):
    """A dataspace of ``shape`` (unlimited along axis 0) with rows start..start+rows-1 selected
    (every element along the other axes), or every row from ``start`` on if ``rows`` is None."""
    space = h5py.h5s.create_simple(tuple(int(n) for n in shape), (UNLIMITED,) + tuple(int(n) for n in shape[1:]))
    _select(space, start, rows)
    return space


def _select(space, start, rows):
    """Select rows start..start+rows-1 of ``space`` (all of them from ``start`` if rows is None)."""
    rest = space.shape[1:]
    corner = (int(start),) + (0,) * len(rest)
    if rows is None:
        ones = (1,) * (1 + len(rest))
        space.select_hyperslab(corner, ones, ones, (UNLIMITED,) + rest)
    else:
        space.select_hyperslab(corner, (int(rows),) + rest)


def _virtual_dataset(f, name, shape, dtype, mappings):
    """A virtual dataset ``name`` of ``shape`` (resizable along axis 0) in the open file ``f``
    whose rows start..start+rows-1 are rows 0..rows-1 of the dataset of the same name in a
    source file, for ``mappings`` [(start, rows, file name relative to ``f``'s folder (bytes),
    that dataset's length or shape), ...]; rows None: as many rows as the source holds (none while it is
    absent; its shape is then ignored). Fill value NaN (floats) or -1. (HDF5's own calls: h5py's
    VirtualLayout costs a millisecond a mapping.)"""
    dtype = np.dtype(dtype)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_fill_value(np.array(np.nan if np.issubdtype(dtype, np.floating) else -1, dtype=dtype))
    rest, dataset, sources = tuple(shape[1:]), name.encode(), {}
    target = _space(shape)      # HDF5 copies the selections: one dataspace serves every mapping
    for start, rows, file_name, source_shape in mappings:
        _select(target, start, rows)
        key = (rows, None if rows is None else source_shape[0])
        if key not in sources:
            sources[key] = _space(((0 if rows is None else source_shape[0]),) + rest, 0, rows)
        dcpl.set_virtual(target, file_name, dataset, sources[key])
    dsid = h5py.h5d.create(f.id, dataset, h5py.h5t.py_create(dtype), _space(shape), dcpl=dcpl)
    return h5py.Dataset(dsid)


@contextlib.contextmanager
def _replacing(path):
    """``path``.tmp to write, renamed over ``path`` when the block ends (removed if it fails): a
    reader sees the old file or the new one."""
    tmp = f"{path}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _set_records(f, records):
    """``records`` ({name: JSON-able}) as attributes of /parameters/mdjac of the open file ``f``."""
    for key, value in (records or {}).items():
        f["parameters/mdjac"].attrs[key] = json.dumps(value, sort_keys=True)


def _relative(path, folder):
    return os.path.relpath(path, folder).encode()


@dataclass
class Store:
    """The Jacobian's flat store (``indices`` and ``blocks``) of an index, mapped through segment
    files of at most :data:`SEGMENT_PARTS` parts each: the index maps the ``sealed`` segments
    [(path, first block, blocks), ...] and, without an end, the open one (``path``, from block
    ``start``), which maps its ``parts`` (list of :class:`Part`) and is rewritten as parts join.
    ``name``: the stem of its segment files; ``count``: segments made so far."""
    name: str
    sealed: list
    path: str
    start: int
    parts: list
    count: int
    names: dict = dataclasses.field(default_factory=dict)

    def relative(self, path):
        """``path`` relative to the segment files' folder (bytes), as a mapping names its file."""
        if path not in self.names:
            self.names[path] = _relative(path, os.path.dirname(self.name))
        return self.names[path]

    @property
    def end(self):
        """Blocks of the store, the open segment's included."""
        return self.start + sum(p.blocks for p in self.parts)

    def mappings(self, folder):
        """The index's mappings of the store (:func:`_virtual_dataset`), relative to ``folder``."""
        return [(start, blocks, _relative(path, folder), (blocks,)) for path, start, blocks in self.sealed] + \
            [(self.start, None, _relative(self.path, folder), None)]

    def append(self, part, template, segment_parts):
        """Add ``part`` to the open segment (sealing it first if it is full, then opening the
        next); the segment's file is written once it is full (else by the caller, after its last
        part). Returns True if a segment was sealed (the index must map the store anew)."""
        sealed = len(self.parts) == segment_parts
        if sealed:
            self.sealed.append((self.path, self.start, self.end - self.start))
            self.start, self.parts, self.count = self.end, [], self.count + 1
            self.path = f"{self.name}-{self.count:06d}.h5"
        self.parts.append(part)
        if len(self.parts) == segment_parts:
            _write_segment(self, template)
        return sealed

    def files(self):
        return [path for path, _, _ in self.sealed] + [self.path]


def _write_segment(store, template):
    """Write the open segment's file (``path``.tmp renamed over it): for each store dataset, a
    virtual dataset concatenating its parts' (its rows' shape and dtype as ``template``'s, an
    open h5py group holding the store datasets)."""
    with _replacing(store.path) as tmp, h5py.File(tmp, "w") as f:
        for name in STORE:
            src = template[name]
            start, mappings = 0, []
            for part in store.parts:
                used, shape = part.lengths[name]
                if used:
                    mappings.append((start, used, store.relative(part.path), shape))
                start += used
            full = f"particles/{GROUP}/{name}"
            f.require_group(os.path.dirname(full))
            _virtual_dataset(f, full, (start,) + src.shape[1:], src.dtype, mappings)


def write_index(path, parts, planned=(), records=None, segment_parts=None):
    """Write the index of ``parts`` (a list of :class:`Part`, in frame order; the parts joined)
    followed by the ``planned`` parts [(path, frames), ...] still to come, to ``path`` (as
    ``path``.tmp renamed over it), with ``records`` ({name: JSON-able}) as attributes of
    /parameters/mdjac beside the parts' metadata. Returns the :class:`Store` of its Jacobian
    (None without one), whose segment files it wrote beside the parts.

    Each joined part is mapped with an end (the frames it holds for the index); each planned one
    without (it joins when its complete file appears at its path, in order: :meth:`H5MDIndex.add`).
    """
    folder = os.path.dirname(os.path.abspath(path))
    segment_parts = SEGMENT_PARTS if segment_parts is None else int(segment_parts)
    starts = {}
    for name in parts[0].lengths:
        starts[name] = np.concatenate([[0], np.cumsum([p.lengths[name][0] for p in parts])])
    store = None
    if BLOCKS in starts:
        stem = os.path.join(os.path.dirname(parts[0].path), f"store-{uuid.uuid4().hex[:8]}")
        store = Store(stem, [], f"{stem}-000000.h5", 0, [], 0)
        with h5py.File(parts[0].path, "r") as template:
            group = template[f"particles/{GROUP}"]
            for part in parts:
                store.append(part, group, segment_parts)
            if len(store.parts) < segment_parts:
                _write_segment(store, group)
    shifts = starts.get(BLOCKS)
    names = [_relative(p.path, folder) for p in parts]
    planned_starts = np.cumsum([starts["position/value"][-1]] + [frames for _, frames in planned])

    def stored_rows(name):
        """The rows the index holds itself, pointers into a concatenated store shifted by the parts before
        (the Jacobian's ``offset``, a generalized-Born part's ``extent``), or None for a mapped dataset."""
        if name == OFFSET:
            return np.concatenate([p.offsets + shifts[k] for k, p in enumerate(parts)])
        if name == BORN_EXTENT:
            return np.concatenate([p.pair_extents + [starts[BORN_PAIRS[0]][k], 0] for k, p in enumerate(parts)])
        return None

    def frame_dataset(f, name, src):
        if name not in starts:
            return False
        total = int(starts[name][-1])
        full = f"particles/{GROUP}/{name}"
        data = stored_rows(name)
        if data is not None:
            ds = _same_creation(src, f, full, data.shape, (None,) + data.shape[1:])
            ds[...] = data.astype(src.dtype)
            return True
        if name in STORE:
            mappings = store.mappings(folder)
        else:
            mappings = [(int(starts[name][k]), part.lengths[name][0], names[k], part.lengths[name][1])
                        for k, part in enumerate(parts) if part.lengths[name][0]]
            if name not in BORN_PAIRS:          # rows of a planned part's pair arrays are not known yet
                mappings += [(int(planned_starts[k]), None, _relative(p, folder), None)
                             for k, (p, _) in enumerate(planned)]
        ds = _virtual_dataset(f, full, (total,) + src.shape[1:], src.dtype, mappings)
        for key, value in src.attrs.items():
            ds.attrs[key] = value
        return True

    with _replacing(path) as tmp, h5py.File(parts[0].path, "r") as template, open_h5(tmp, "w") as f:
        _copy_tree(template, f, frame_dataset, list(starts))
        _set_records(f, records)
    return store


def update_index(path, offsets=None, store=None, records=None):
    """Append ``offsets`` (int64, already shifted) to the index's stored ``offset``, map the
    Jacobian's store anew through ``store`` (a :class:`Store`; None: unchanged) and set
    ``records``, in a copy of the index renamed over it (its bytes are metadata: the cost does not
    grow with the frames' bytes, nor with the parts joined but for the offsets' 8 bytes a frame)."""
    folder = os.path.dirname(os.path.abspath(path))
    with _replacing(path) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "r+", locking=False) as f:
            g = f[f"particles/{GROUP}"]
            if offsets is not None and len(offsets):
                ds = g[OFFSET]
                n = len(ds)
                ds.resize(n + len(offsets), axis=0)
                ds[n:] = offsets
            if store is not None:
                for name in STORE:
                    old = g[name]
                    shape, dtype, attrs = (store.end,) + old.shape[1:], old.dtype, dict(old.attrs)
                    del g[name]
                    ds = _virtual_dataset(f, f"particles/{GROUP}/{name}", shape, dtype, store.mappings(folder))
                    for key, value in attrs.items():
                        ds.attrs[key] = value
            _set_records(f, records)


def read_records(path):
    """{name: value} of the JSON attributes of /parameters/mdjac other than ``metadata``."""
    with open_h5(path) as f:
        attrs = f["parameters/mdjac"].attrs if "parameters/mdjac" in f else {}
        return {k: json.loads(v) for k, v in attrs.items() if k != "metadata"}


def joined_parts(path):
    """The :class:`Part` of each part file the index ``path`` holds frames of, in frame order
    (with the frames of it that are complete in the index)."""
    with open_h5(path) as f:
        g = f[f"particles/{GROUP}"]
        n = complete_frames(g)
        sources = mappings(g["position/value"])
    parts, held = [], 0
    for k, (source, start, rows) in enumerate(sources):
        if start >= n:
            break
        end = n if k + 1 == len(sources) else min(n, sources[k + 1][1])
        end = end if rows is None else min(end, start + rows)
        parts.append(read_part(source, end - start))
        held = end
    if held != n:
        raise InputError(f"{path}: its part files hold {held} of its {n} frames; use --overwrite")
    return parts


class H5MDIndex:
    """The writer of an index output (this module's docstring): adds complete part files.

    Parameters
    ----------
    path : the output file.
    mode : 'w' starts an empty index (the file is created by the first :meth:`add`; an existing
        one is refused unless ``overwrite``), 'a' continues an existing output: an index keeps its
        joined parts; an ordinary mdjac file's complete frames become the first part (hard-linked,
        or copied, to ``base_part``).
    overwrite : with mode 'w', replace an existing ``path`` at the first :meth:`add`.
    base_part : where an ordinary output's frames go when resumed (mode 'a').
    segment_parts : parts per segment file of the Jacobian's store (default :data:`SEGMENT_PARTS`).

    Attributes: ``n_frames``, ``last_step``, ``parts`` (the joined parts, list of :class:`Part`),
    ``planned`` ([(path, frames), ...] still to come, :meth:`plan`). Holds the output's lock
    (:class:`mdjac.io.output_lock.OutputLock`) until :meth:`close`.
    """

    def __init__(self, path, mode="w", overwrite=False, base_part=None, segment_parts=None):
        from . import journal

        self.path = os.fspath(path)
        if mode == "w" and os.path.exists(self.path) and not overwrite:
            raise InputError(f"{self.path} exists; resume it or overwrite it")
        self.lock = OutputLock(self.path)
        self.parts, self.planned, self.records, self.store = [], [], {}, None
        self.segment_parts = segment_parts
        self.mapped = False         # the file on disk maps the planned parts: a join adds no mapping
        self.replaced = parts_of(self.path) if os.path.exists(self.path) else []
        try:
            if mode == "a" and os.path.exists(self.path):
                journal.recover(self.path)
                with open_h5(self.path) as f:
                    indexed = is_index(f)
                if indexed:
                    self.parts = joined_parts(self.path)
                    self.records = read_records(self.path)
                else:
                    self.replaced = []
                    part = read_part(self.path)
                    if part.frames:
                        _link_or_copy(self.path, base_part)
                        self.parts = [read_part(base_part, part.frames)]
        except BaseException:
            self.lock.release()
            raise

    @property
    def n_frames(self):
        return sum(p.frames for p in self.parts)

    @property
    def last_step(self):
        if not self.parts:
            return None
        last = self.parts[-1]
        with open_h5(last.path) as f:
            return int(f[f"particles/{GROUP}/position/step"][last.frames - 1])

    def plan(self, parts):
        """Declare the parts still to come, [(path, frames), ...] in frame order: the next write
        maps them all (each read as absent until it joins), so that joining one then costs the
        same whatever the number of parts (:meth:`add`)."""
        self.planned = [(os.path.abspath(p), int(n)) for p, n in parts]
        self.mapped = False

    def add(self, parts):
        """Append ``parts`` (paths of complete part files, or :class:`Part`), in frame order.
        Returns the frames added.

        A part that was planned (:meth:`plan`) is moved (renamed) to its planned path, which is
        what makes its frames appear in the index; once the index maps the planned parts, a join
        writes only their offsets and the open segment of the Jacobian's store. Any other part
        (or one whose datasets hold more than its frames) rewrites the index whole."""
        parts = [p if isinstance(p, Part) else read_part(p) for p in parts]
        if not parts:
            return 0
        placed = [self._place(p) for p in parts]
        parts = [part for part, _ in placed]
        if self.mapped and all(exact for _, exact in placed):
            self._join(parts)
        else:
            self.parts = self.parts + parts
            self.write()
        return sum(p.frames for p in parts)

    def _place(self, part):
        """``part`` moved to the path of the next planned part, if any; and True if it was planned
        and may join without a mapping of its own (its datasets hold exactly its frames, and it has
        no generalized-Born pair arrays)."""
        if not self.planned:
            return part, False
        target, frames = self.planned[0]
        if part.frames != frames:
            raise InputError(f"{part.path} holds {part.frames} frames but the index planned {frames} "
                             f"for {target}; use --overwrite")
        self.planned.pop(0)
        if part.path != target:
            os.replace(part.path, target)
            part = dataclasses.replace(part, path=target)
        exact = all(used == shape[0] for used, shape in part.lengths.values()) and BORN_EXTENT not in part.lengths
        return part, exact

    def _join(self, parts):
        """Join planned parts already mapped: their offsets, and the store's open segment."""
        store, offsets, sealed, size = self.store, [], False, self.segment_parts or SEGMENT_PARTS
        if store is not None:
            with h5py.File(parts[0].path, "r") as template:
                group = template[f"particles/{GROUP}"]
                for part in parts:
                    shift = store.end
                    sealed |= store.append(part, group, size)
                    offsets.append(part.offsets + shift)
                if len(store.parts) < size:
                    _write_segment(store, group)
        self.parts = self.parts + parts
        if offsets:
            update_index(self.path, np.concatenate(offsets), store if sealed else None)

    def write(self):
        """Rewrite the index whole (the joined and the planned parts); the first write over a
        replaced index deletes the files of that one it no longer uses."""
        if self.parts:
            stale = self.replaced + (self.store.files() if self.store is not None else [])
            self.store = write_index(self.path, self.parts, self.planned, self.records, self.segment_parts)
            self.mapped = True
            used = {p.path for p in self.parts} | {p for p, _ in self.planned}
            used |= set(self.store.files()) if self.store is not None else set()
            remove_parts([p for p in stale if p not in used])
            self.replaced = []

    def record(self, name, value):
        """Store ``value`` (JSON-able) as the attribute ``name`` of /parameters/mdjac."""
        self.records[name] = value
        if self.mapped:
            update_index(self.path, records={name: value})
        else:
            self.write()

    def close(self):
        self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _link_or_copy(path, target):
    """``target`` as a hard link to ``path`` (a copy where the file system has none)."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.exists(target):
        os.remove(target)
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)


#: Frames' worth of a dataset copied at once by :func:`materialise` (bounded memory).
COPY_BYTES = 64 << 20


def materialise(path):
    """Replace the index ``path`` by one self-contained file (``path``.tmp renamed over it) whose
    frame datasets are ordinary, resizable, with the parts' chunks and filters, and hold its
    complete frames: the file a serial run writes. The files it read are left in place; returns
    (its part files, its store's segment files). Call with the output's lock held."""
    tmp = f"{path}.tmp"
    with open_h5(path) as index:
        parts, segments = part_files(index), store_files(index)
        if not parts:
            return [], []
        problem = missing_parts(index)
        if problem:
            raise InputError(problem)
        first = h5py.File(parts[0], "r")
        g = index[f"particles/{GROUP}"]
        lengths = extents(g, complete_frames(g))

        def frame_dataset(f, name, src):
            full = f"particles/{GROUP}/{name}"
            shape = (lengths[name],) + src.shape[1:]
            ds = _same_creation(first[full], f, full, shape, (None,) + src.shape[1:])
            for key, value in src.attrs.items():
                ds.attrs[key] = value
            row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * src.dtype.itemsize)
            step = max(1, COPY_BYTES // row)
            for i in range(0, shape[0], step):
                ds[i:i + step] = src[i:min(shape[0], i + step)]
            return True

        try:
            with first, open_h5(tmp, "w") as f:
                _copy_tree(index, f, frame_dataset, list(lengths))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return parts, segments


def consolidate(path):
    """Copy the index output ``path`` into one self-contained file in its place
    (:func:`materialise`), then delete its part files and segment files (and their folder, once
    empty). Returns the number of part files removed (0: ``path`` was already self-contained)."""
    path = os.fspath(path)
    lock = OutputLock(path)
    try:
        parts, segments = materialise(path)
    finally:
        lock.release()
    remove_parts(parts + segments)
    return len(parts)


def remove_parts(parts):
    """Delete part files (and their journals and locks), and each folder they leave empty."""
    for part in parts:
        for p in (part, f"{part}.journal", f"{part}.lock"):
            if os.path.exists(p):
                os.remove(p)
    for folder in {os.path.dirname(p) for p in parts}:
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
