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

The index is rewritten whole, as ``<index>.tmp`` renamed over it, each time parts are added: a
reader sees the old index or the new one, and a killed writer leaves the old one.
"""
import json
import os
import shutil
from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import InputError
from .h5md_layout import GROUP, JACOBIAN, complete_frames, extents, missing_parts, open_h5, part_files
from .output_lock import OutputLock

#: The frame dataset stored in the index itself (it points into the concatenated flat store).
OFFSET = f"{JACOBIAN}/offset"
BLOCKS = f"{JACOBIAN}/blocks"


@dataclass(frozen=True)
class Part:
    """One part of an index.

    Attributes
    ----------
    path : str, absolute path of the part file.
    frames : int, its frames that the index uses (its first ``frames``).
    lengths : dict {dataset name under /particles/trajectory: (used length, full shape)}.
    offsets : (frames,) int64, its frames' ``force_jacobian/offset`` (empty without a Jacobian).
    """
    path: str
    frames: int
    lengths: dict
    offsets: np.ndarray

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
            n = complete_frames(g)
            wanted = n if frames is None else int(frames)
            if n < wanted:
                raise InputError(f"{path} holds {n} complete frames, not {wanted}")
            lengths = {name: (int(size), tuple(g[name].shape)) for name, size in extents(g, wanted).items()}
            g["position/value"][wanted - 1] if wanted else None     # its last frame's data reads back
            offsets = g[OFFSET][:wanted].astype(np.int64) if JACOBIAN in g else np.zeros(0, np.int64)
        except (KeyError, OSError) as err:
            raise InputError(f"{path}: not a complete mdjac H5MD file ({err})") from None
    return Part(os.path.abspath(path), wanted, lengths, offsets)


def parts_of(path):
    """The part files of the file ``path`` if it is a readable index, else []."""
    try:
        with h5py.File(path, "r") as f:
            return part_files(f)
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


def _virtual_dataset(f, name, shape, dtype, mappings):
    """A virtual dataset ``name`` of ``shape`` in the open file ``f`` whose rows start..start+used-1
    are rows 0..used-1 of the dataset of the same name in each part file, for ``mappings``
    [(start, used, file name relative to ``f``'s folder (bytes), that dataset's shape), ...]; fill
    value NaN (floats) or -1. (HDF5's own calls: h5py's VirtualLayout costs a millisecond a mapping.)"""
    dtype = np.dtype(dtype)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_fill_value(np.array(np.nan if np.issubdtype(dtype, np.floating) else -1, dtype=dtype))
    rest = tuple(shape[1:])
    for start, used, file_name, source_shape in mappings:
        target = h5py.h5s.create_simple(tuple(shape))
        target.select_hyperslab((start,) + (0,) * len(rest), (used,) + rest)
        source = h5py.h5s.create_simple(tuple(source_shape))
        source.select_hyperslab((0,) * len(source_shape), (used,) + tuple(source_shape[1:]))
        dcpl.set_virtual(target, file_name, name.encode(), source)
    dsid = h5py.h5d.create(f.id, name.encode(), h5py.h5t.py_create(dtype), h5py.h5s.create_simple(tuple(shape)),
                           dcpl=dcpl)
    return h5py.Dataset(dsid)


def write_index(path, parts, records=None):
    """Write the index of ``parts`` (a list of :class:`Part`, in frame order) to ``path``
    (as ``path``.tmp renamed over it), with ``records`` ({name: JSON-able}) as attributes of
    /parameters/mdjac beside the parts' metadata."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp"
    starts = {}
    for name in parts[0].lengths:
        starts[name] = np.concatenate([[0], np.cumsum([p.lengths[name][0] for p in parts])])
    shifts = starts.get(BLOCKS)
    names = [os.path.relpath(p.path, folder).encode() for p in parts]

    def frame_dataset(f, name, src):
        if name not in starts:
            return False
        total = int(starts[name][-1])
        full = f"particles/{GROUP}/{name}"
        if name == OFFSET:
            data = np.concatenate([p.offsets + shifts[k] for k, p in enumerate(parts)]).astype(src.dtype)
            ds = _same_creation(src, f, full, data.shape, (None,) + data.shape[1:])
            ds[...] = data
            return True
        mappings = [(int(starts[name][k]), part.lengths[name][0], names[k], part.lengths[name][1])
                    for k, part in enumerate(parts) if part.lengths[name][0]]
        ds = _virtual_dataset(f, full, (total,) + src.shape[1:], src.dtype, mappings)
        for key, value in src.attrs.items():
            ds.attrs[key] = value
        return True

    try:
        with h5py.File(parts[0].path, "r") as template, open_h5(tmp, "w") as f:
            _copy_tree(template, f, frame_dataset, list(starts))
            for key, value in (records or {}).items():
                f["parameters/mdjac"].attrs[key] = json.dumps(value, sort_keys=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_records(path):
    """{name: value} of the JSON attributes of /parameters/mdjac other than ``metadata``."""
    with open_h5(path) as f:
        attrs = f["parameters/mdjac"].attrs if "parameters/mdjac" in f else {}
        return {k: json.loads(v) for k, v in attrs.items() if k != "metadata"}


class H5MDIndex:
    """The writer of an index output (this module's docstring): adds complete part files.

    Parameters
    ----------
    path : the output file.
    mode : 'w' starts an empty index (the file is created by the first :meth:`add`; an existing
        one is refused unless ``overwrite``), 'a' continues an existing output: an index keeps its
        parts; an ordinary mdjac file's complete frames become the first part (hard-linked, or
        copied, to ``base_part``).
    overwrite : with mode 'w', replace an existing ``path`` at the first :meth:`add`.
    base_part : where an ordinary output's frames go when resumed (mode 'a').

    Attributes: ``n_frames``, ``last_step``, ``parts`` (list of :class:`Part`). Holds the output's
    lock (:class:`mdjac.io.output_lock.OutputLock`) until :meth:`close`.
    """

    def __init__(self, path, mode="w", overwrite=False, base_part=None):
        from . import journal

        self.path = os.fspath(path)
        if mode == "w" and os.path.exists(self.path) and not overwrite:
            raise InputError(f"{self.path} exists; resume it or overwrite it")
        self.lock = OutputLock(self.path)
        self.parts, self.records = [], {}
        self.replaced = parts_of(self.path) if mode == "w" and os.path.exists(self.path) else []
        try:
            if mode == "a" and os.path.exists(self.path):
                journal.recover(self.path)
                with open_h5(self.path) as f:
                    files = part_files(f)
                if files:
                    self.parts = [read_part(p) for p in files]
                    self.parts = self._used(self.parts)
                    self.records = read_records(self.path)
                else:
                    part = read_part(self.path)
                    if part.frames:
                        _link_or_copy(self.path, base_part)
                        self.parts = [read_part(base_part, part.frames)]
        except BaseException:
            self.lock.release()
            raise

    def _used(self, parts):
        """The parts with the frames the index uses of each (from its position mapping)."""
        with open_h5(self.path) as f:
            used = {}
            for source in f[f"particles/{GROUP}/position/value"].virtual_sources():
                name = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(self.path)), source.file_name))
                used[name] = used.get(name, 0) + source.src_space.get_select_bounds()[1][0] + 1
        return [read_part(p.path, used[p.path]) for p in parts]

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

    def add(self, parts):
        """Append ``parts`` (paths of complete part files, or :class:`Part`) and rewrite the index.
        Returns the frames added."""
        parts = [p if isinstance(p, Part) else read_part(p) for p in parts]
        if not parts:
            return 0
        self.parts = self.parts + parts
        self.write()
        return sum(p.frames for p in parts)

    def write(self):
        """Rewrite the index; the first write over a replaced index deletes that one's parts."""
        if self.parts:
            write_index(self.path, self.parts, self.records)
            remove_parts([p for p in self.replaced if p not in {q.path for q in self.parts}])
            self.replaced = []

    def record(self, name, value):
        """Store ``value`` (JSON-able) as the attribute ``name`` of /parameters/mdjac."""
        self.records[name] = value
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
    frame datasets are ordinary, resizable, with the parts' chunks and filters: the file a serial
    run writes. The parts are left in place; returns their paths. Call with the output's lock held."""
    tmp = f"{path}.tmp"
    with open_h5(path) as index:
        parts = part_files(index)
        if not parts:
            return []
        problem = missing_parts(index)
        if problem:
            raise InputError(problem)
        first = h5py.File(parts[0], "r")

        def frame_dataset(f, name, src):
            full = f"particles/{GROUP}/{name}"
            if not src.is_virtual:
                return False
            model = first[full]
            ds = _same_creation(model, f, full, src.shape, (None,) + src.shape[1:])
            for key, value in src.attrs.items():
                ds.attrs[key] = value
            _copy_mapped(src, ds, os.path.dirname(os.path.abspath(path)))
            return True

        try:
            with first, open_h5(tmp, "w") as f:
                _copy_tree(index, f, frame_dataset, list(read_part(parts[0], 0).lengths))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return parts


def _copy_mapped(src, dst, folder):
    """Copy every mapping of the virtual dataset ``src`` from its source file into ``dst``, in
    slabs of at most :data:`COPY_BYTES`."""
    row = max(1, int(np.prod(src.shape[1:], dtype=np.int64)) * src.dtype.itemsize)
    step = max(1, COPY_BYTES // row)
    for mapping in src.virtual_sources():
        lo, hi = mapping.vspace.get_select_bounds()
        slo, _ = mapping.src_space.get_select_bounds()
        a, b, s = lo[0], hi[0] + 1, slo[0]
        with h5py.File(os.path.join(folder, mapping.file_name), "r") as part:
            source = part[mapping.dset_name]
            for i in range(a, b, step):
                j = min(b, i + step)
                dst[i:j] = source[s + i - a:s + j - a]


def consolidate(path):
    """Copy the index output ``path`` into one self-contained file in its place
    (:func:`materialise`), then delete its part files (and their folder, once empty). Returns the
    number of part files removed (0: ``path`` was already self-contained)."""
    path = os.fspath(path)
    lock = OutputLock(path)
    try:
        parts = materialise(path)
    finally:
        lock.release()
    remove_parts(parts)
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
