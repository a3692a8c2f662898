"""Writing H5MD files with forces and force Jacobians (the layout: :mod:`mdjac.io.h5md_layout`).

Frames are buffered and written in batches; the file is opened only while a batch is written and
closed (hence flushed) afterwards. Within a batch the data go first and the shared ``step``/``time``
datasets last, and the whole batch goes through the rollback journal. Resuming cuts the datasets
back to the complete frames and continues. One writer per file (:class:`OutputLock`).
"""
import json
import os
import shutil

import h5py
import numpy as np

from . import journal
from ..errors import InputError, os_error_reason
from ..jacobian import row_pointers
from ..longrange.kinds import BORN_KIND
from ..space import box_vectors, check_box, is_triclinic
from ..version import __version__
from .h5md_index import materialise, parts_of, remove_parts
from .h5md_layout import (GROUP, JACOBIAN, LAYOUT, LONG_RANGE, SITE_MAP, UNITS, complete_frames, extents,
                          long_range_recipe, modify, open_h5, read_recipe, same_recipe, site_frame, upper_triangle,
                          write_recipe)
from .output_lock import OutputLock

#: The filters the Jacobian's blocks can have (``mdjac compute --compression``), as h5py's
#: create_dataset arguments. Each is read by plain h5py (and so by MDAnalysis) with no plugin:
#: deflate (gzip) is HDF5's own, lzf ships inside h5py (HDF5 tools outside h5py, h5dump or the C
#: library, need h5py's lzf plugin for it). Shuffle is left out: on blocks it made the files
#: larger and was no faster. The blocks are most of a frame's bytes and compress poorly, and the
#: filters cost more time than they save in bytes, hence the default: the measured sizes and
#: times are benchmarks/bench_h5md_write.py's table in the README.
COMPRESSIONS = {"none": {}, "lzf": {"compression": "lzf"}, "gzip": {"compression": "gzip", "compression_opts": 1}}
DEFAULT_COMPRESSION = "none"
#: The filter of every other dataset (positions, forces, box, clocks, the block columns and row
#: pointers): small or well compressible, so deflate level 1 with shuffle whatever the blocks have.
OTHERS_COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
CHUNK_BYTES = 1 << 18
#: blocks per chunk of the Jacobian's block store (a chunk of float32 blocks: 8192 x 36 bytes)
BLOCK_CHUNK = 1 << 13


def compression_filter(compression):
    """h5py create_dataset arguments of ``compression``: a name of :data:`COMPRESSIONS`, a
    dict of such arguments (benchmarks try others), or None for :data:`DEFAULT_COMPRESSION`."""
    if compression is None:
        compression = DEFAULT_COMPRESSION
    if isinstance(compression, dict):
        return dict(compression)
    if compression not in COMPRESSIONS:
        raise InputError(f"compression {compression!r} is not one of {', '.join(COMPRESSIONS)}")
    return dict(COMPRESSIONS[compression])


def _frame_chunks(shape, itemsize, limit=64):
    """Chunk shape for a (frames, *shape) dataset: whole frames, about CHUNK_BYTES per chunk."""
    per_frame = int(np.prod(shape, dtype=np.int64)) * itemsize
    return (int(np.clip(CHUNK_BYTES // max(per_frame, 1), 1, limit)),) + tuple(shape)


def _resizable(group, name, shape, dtype, unit=None, chunks=None, compression=None):
    """An empty dataset of ``shape[1:]`` items, resizable along axis 0, chunked, with the
    filters of ``compression`` (:func:`compression_filter`; None: :data:`OTHERS_COMPRESSION`)."""
    dtype = np.dtype(dtype)
    chunks = chunks or _frame_chunks(shape, dtype.itemsize, limit=4096)
    ds = group.create_dataset(name, shape=(0,) + tuple(shape), maxshape=(None,) + tuple(shape), dtype=dtype,
                              chunks=chunks, **compression_filter(OTHERS_COMPRESSION if compression is None else compression))
    if unit is not None:
        ds.attrs["unit"] = unit
    return ds


def _element(group, name, shape, dtype, unit, clock=None, times=True):
    """A time-dependent H5MD element: value (frames, *shape); step and time (unless not
    ``times``: H5MD 1.1 lets a trajectory without physical times leave it out) shared with
    ``clock`` (hard links) or created here."""
    el = group.create_group(name)
    if clock is None:
        _resizable(el, "step", (), np.int64, chunks=(1024,))
        if times:
            _resizable(el, "time", (), np.float64, UNITS["time"], chunks=(1024,))
    else:
        for clock_name in ("step", "time"):
            if clock_name in clock:
                el[clock_name] = clock[clock_name]
    _resizable(el, "value", shape, dtype, unit, chunks=_frame_chunks(shape, np.dtype(dtype).itemsize))
    return el


def _joined(arrays, dtype):
    """The arrays concatenated along axis 0 in ``dtype``, copied only where needed (a single array
    already in ``dtype`` is handed over as it is: a frame's blocks are most of its bytes)."""
    if len(arrays) == 1:
        return np.asarray(arrays[0], dtype=dtype)
    return np.concatenate(arrays).astype(dtype, copy=False)


def _append(ds, data):
    """Append ``data`` (k, ...) along axis 0 of resizable dataset ``ds``."""
    n = len(ds)
    ds.resize(n + len(data), axis=0)
    ds[n:] = data


def _write_born(jac, parts):
    """Append generalized-Born parts' arrays (mdjac.born_jacobian.BornJacobian.stored) to ``long_range``, made at the
    first frame: the pairs' flat store, each frame's extent in it and M's diagonal (h5md_layout.BORN_DATASETS)."""
    arrays = [part.stored() for part in parts]
    if LONG_RANGE not in jac:
        lr = jac.create_group(LONG_RANGE)
        lr.attrs["kind"] = BORN_KIND
        _resizable(lr, "pairs", (2,), np.int32, chunks=(1 << 15, 2))
        _resizable(lr, "vectors", (3,), np.float64, chunks=(1 << 14, 3), compression="none")
        _resizable(lr, "scalars", (7,), np.float64, chunks=(1 << 13, 7), compression="none")
        _resizable(lr, "extent", (2,), np.int64, chunks=(1024, 2))
        _resizable(lr, "m_diagonal", arrays[0]["m_diagonal"].shape, np.float64)
    lr = jac[LONG_RANGE]
    counts = np.array([len(a["pairs"]) for a in arrays], dtype=np.int64)
    first = len(lr["pairs"]) + np.concatenate([[0], np.cumsum(counts[:-1])])
    _append(lr["pairs"], _joined([a["pairs"] for a in arrays], np.int32))
    _append(lr["vectors"], _joined([a["u"] for a in arrays], np.float64))
    _append(lr["scalars"], _joined([a["scalars"] for a in arrays], np.float64))
    _append(lr["m_diagonal"], np.stack([a["m_diagonal"] for a in arrays]))
    _append(lr["extent"], np.stack([first, counts], axis=1))


def _write_site_frames(lr, parts):
    """Append the site maps of parts seen through virtual sites (h5md_layout.site_frame) to ``long_range/site_map``,
    whose per-frame datasets are made at the first frame: blocks (F, L, 3, 3) and the sites' positions (F, S, 3)."""
    arrays = [site_frame(part) for part in parts]
    site_map = lr[SITE_MAP]
    if "blocks" not in site_map:
        _resizable(site_map, "blocks", arrays[0][0].shape, np.float64)
        _resizable(site_map, "positions", arrays[0][1].shape, np.float64, UNITS["length"])
    _append(site_map["blocks"], np.stack([blocks for blocks, _ in arrays]))
    _append(site_map["positions"], np.stack([positions for _, positions in arrays]))


def create_layout(f, n_atoms, dtype, periodic, forces, jacobian_atoms, names, masses, author,
                  metadata, triangle="full", times=True, compression=DEFAULT_COMPRESSION, triclinic=False):
    """Write the empty H5MD skeleton of an mdjac file into open h5py.File ``f``: the blocks with
    the filter of ``compression``, the rest with :data:`OTHERS_COMPRESSION`. A periodic box is
    stored as its 3 edges, or (``triclinic``) as H5MD's (3, 3) edges matrix, rows the box vectors."""
    h5md = f.create_group("h5md")
    h5md.attrs["version"] = np.array([1, 1], dtype=np.int32)
    h5md.create_group("author").attrs["name"] = author
    creator = h5md.create_group("creator")
    creator.attrs["name"], creator.attrs["version"] = "mdjac", __version__
    units = h5md.create_group("modules/units")
    units.attrs["version"] = np.array([1, 0], dtype=np.int32)
    units.attrs["system"] = "SI"

    g = f.create_group(f"particles/{GROUP}")
    position = _element(g, "position", (n_atoms, 3), dtype, UNITS["length"], times=times)
    box = g.create_group("box")
    box.attrs["dimension"] = np.int32(3)
    box.attrs["boundary"] = np.array(["periodic" if periodic else "none"] * 3, dtype=h5py.string_dtype())
    if periodic:
        _element(box, "edges", (3, 3) if triclinic else (3,), dtype, UNITS["length"], clock=position)
    if forces:
        _element(g, "force", (n_atoms, 3), dtype, UNITS["force"], clock=position)
    if masses is not None:
        g.create_dataset("mass", data=np.asarray(masses, dtype=np.float64)).attrs["unit"] = UNITS["mass"]
    if jacobian_atoms is not None:
        jac = g.create_group(JACOBIAN)
        jac.attrs["layout"] = LAYOUT
        jac.attrs["n_atoms"] = np.int64(n_atoms)
        jac.attrs["triangle"] = triangle
        for clock_name in ("step", "time"):
            if clock_name in position:
                jac[clock_name] = position[clock_name]
        jac.create_dataset("atoms", data=np.asarray(jacobian_atoms, dtype=np.int64))
        n = len(jacobian_atoms)
        _resizable(jac, "indptr", (n + 1,), np.int64, chunks=_frame_chunks((n + 1,), 8))
        _resizable(jac, "offset", (), np.int64, chunks=(1024,))
        _resizable(jac, "indices", (), np.int32, chunks=(1 << 16,))
        _resizable(jac, "blocks", (3, 3), dtype, UNITS["jacobian"], chunks=(BLOCK_CHUNK, 3, 3),
                   compression=compression)
    params = f.create_group("parameters")
    if names is not None:
        vmd = params.create_group("vmd_structure")
        vmd.create_dataset("name", data=np.array([str(s).encode("ascii", "replace") for s in names]))
        vmd.create_dataset("indexOfSpecies", data=np.arange(n_atoms, dtype=np.int32))
    params.create_group("mdjac").attrs["metadata"] = json.dumps(metadata or {}, sort_keys=True)


def truncate(g, n):
    """Cut every dataset of particle group ``g`` back to its first ``n`` frames."""
    for name, size in extents(g, n).items():
        g[name].resize(size, axis=0)


class H5MDWriter:
    """Append frames with their forces and force Jacobians to an H5MD file (docs/h5md.md).

    Parameters
    ----------
    path : output file.
    n_atoms : int, atoms per frame.
    names : N atom names or None; masses : (N,) amu or None (written once).
    periodic : bool, whether frames carry a box (time-dependent edges, nm).
    triclinic : bool, store each frame's box as H5MD's (3, 3) edges matrix (rows the box vectors a,
        b, c, nm; OpenMM's reduced form), which any box fits; False: 3 edges, rectangular boxes only.
    forces : bool, whether frames carry forces (kJ mol^-1 nm^-1).
    jacobian_atoms : (n,) int, the atoms (global indices) whose Jacobian every frame carries
        (``ForceJacobian.atoms``); "all" for all atoms, None for no Jacobian.
    dtype : float32 or float64, the stored precision of positions, box, forces and blocks.
    times : False for frames without physical times (PDB, XYZ inputs): the file then has no
        ``time`` datasets, as H5MD 1.1 allows, rather than invented ones.
    mode : 'w' creates (refused if ``path`` exists unless ``overwrite``), 'a' resumes an mdjac
        file (or creates it): frames that were not completely written are dropped and appending
        continues after the last complete one (:attr:`n_frames`, :attr:`last_step`).
    overwrite : with mode 'w', replace an existing ``path`` (only once the lock is held).
    triangle : 'full' stores every block; 'upper' only the blocks J_ij with j >= i (the reader
        mirrors J_ji = J_ij^T): half the bytes, but the lower blocks read back are the
        transposes of the upper ones, not the computed ones (they differ by rounding).
    compression : the filter of the Jacobian blocks: 'none' (the default), 'lzf' or 'gzip'
        (deflate level 1) (:data:`COMPRESSIONS`), or a dict of h5py's create_dataset filter
        arguments; None: the default. Every other dataset has :data:`OTHERS_COMPRESSION`. All
        read in plain h5py and MDAnalysis. What each costs and saves: the README's table of
        ``benchmarks/bench_h5md_write.py``.
    batch : frames buffered before the file is opened, appended and closed again.
    metadata : JSON-able dict stored in /parameters/mdjac (the command line keeps its
        arguments there so that --resume can check them).

    A second writer on the same path is refused (:class:`OutputLock`). Use as a context
    manager, or call :meth:`close`: buffered frames are written on exit, also on an exception.
    """

    def __init__(self, path, n_atoms, names=None, masses=None, periodic=False, forces=True,
                 jacobian_atoms="all", dtype=np.float32, mode="w", batch=16, author="mdjac user",
                 metadata=None, overwrite=False, triangle="full", times=True,
                 compression=DEFAULT_COMPRESSION, triclinic=False):
        self.path, self.n_atoms, self.batch = os.fspath(path), int(n_atoms), int(batch)
        self.triclinic = bool(periodic) and bool(triclinic)
        self.times = bool(times)
        self.dtype, self.periodic, self.forces = np.dtype(dtype), bool(periodic), bool(forces)
        if mode not in ("w", "a"):
            raise InputError(f"writer mode must be 'w' or 'a', not {mode!r}")
        if triangle not in ("full", "upper"):
            raise InputError(f"triangle must be 'full' or 'upper', not {triangle!r}")
        self.triangle = triangle
        self.compression = compression_filter(compression)
        if mode == "w" and os.path.exists(self.path) and not overwrite:
            raise InputError(f"{self.path} exists; resume it or overwrite it")
        if isinstance(jacobian_atoms, str):
            jacobian_atoms = np.arange(self.n_atoms)
        self.jacobian_atoms = None if jacobian_atoms is None else np.asarray(jacobian_atoms, dtype=np.int64)
        self.lock = OutputLock(self.path)
        self.buffer, self.last_step = [], None
        self.long_range = None      # the file's long-range recipe (h5md_layout.LongRangeRecipe), once known
        try:
            if mode == "a" and os.path.exists(self.path):
                journal.recover(self.path)
                remove_parts(sum(materialise(self.path), []))     # an index of part files: one file first
                self.n_frames = self._resume()
            else:
                self._create(names, masses, author, metadata, triangle)
                self.n_frames = 0
        except BaseException:
            self.lock.release()
            raise

    def _create(self, names, masses, author, metadata, triangle):
        """Write the empty layout to a temporary file and rename it over ``path`` (atomic)."""
        tmp = f"{self.path}.tmp"
        replaced = parts_of(self.path) if os.path.exists(self.path) else []
        try:
            with open_h5(tmp, "w") as f:
                create_layout(f, self.n_atoms, self.dtype, self.periodic, self.forces,
                              self.jacobian_atoms, names, masses, author, metadata, triangle, self.times,
                              self.compression, self.triclinic)
            if os.path.exists(journal.journal_path(self.path)):
                os.remove(journal.journal_path(self.path))   # a stale journal of the old file
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        remove_parts(replaced)

    def _resume(self):
        """Check the existing file against this writer; cut it to its complete frames (the
        file is not touched if it holds nothing more)."""
        with open_h5(self.path) as f:
            g = f.get(f"particles/{GROUP}")
            if g is None or not isinstance(g.get("position"), h5py.Group) or "box" not in g:
                raise InputError(f"{self.path} is not an mdjac output; cannot resume it")
            found = dict(n_atoms=g["position/value"].shape[1], periodic="edges" in g["box"],
                         forces="force" in g, dtype=g["position/value"].dtype,
                         jacobian=None if JACOBIAN not in g else g[JACOBIAN]["atoms"][()].tolist(),
                         triangle=g[JACOBIAN].attrs.get("triangle", "full") if JACOBIAN in g else "full",
                         times="time" in g["position"],
                         triclinic="edges" in g["box"] and g["box/edges/value"].ndim == 3)
            wanted = dict(n_atoms=self.n_atoms, periodic=self.periodic, forces=self.forces,
                          dtype=self.dtype, jacobian=None if self.jacobian_atoms is None
                          else self.jacobian_atoms.tolist(),
                          triangle=self.triangle if self.jacobian_atoms is not None else "full",
                          times=self.times, triclinic=self.triclinic)
            for key in found:
                if found[key] != wanted[key]:
                    raise InputError(f"{self.path} does not match this run ({key} differs: "
                                     f"{found[key]} in the file); cannot resume it")
            n = complete_frames(g)
            if JACOBIAN in g and LONG_RANGE in g[JACOBIAN]:
                self.long_range = read_recipe(g[JACOBIAN][LONG_RANGE])
            ragged = any(len(g[name]) != size for name, size in extents(g, n).items())
            self.last_step = int(g["position/step"][n - 1]) if n else None
        if ragged:
            with modify(self.path) as f:
                truncate(f[f"particles/{GROUP}"], n)
        return n

    def append(self, step, time, positions, box=None, forces=None, jacobian=None):
        """Buffer one frame; the batch is written when full.

        step : int.  time : ps.  positions : (N, 3) nm.  box : (3,) edges or (3, 3) box vectors nm
        (periodic; a triclinic one only in a ``triclinic`` file), or None.
        forces : (N, 3) kJ mol^-1 nm^-1.  jacobian : ForceJacobian over ``jacobian_atoms``.
        """
        self.buffer.append(self._check(step, time, positions, box, forces, jacobian))
        if len(self.buffer) >= self.batch:
            self.flush()

    def _check(self, step, time, positions, box, forces, jacobian):
        """Validate one frame and return it as a tuple of numpy arrays."""
        positions = np.asarray(positions)
        if positions.shape != (self.n_atoms, 3):
            raise InputError(f"positions have shape {positions.shape}, expected ({self.n_atoms}, 3)")
        if (box is None) == self.periodic:
            raise InputError("this file is periodic: every frame needs a box" if self.periodic
                             else "this file is not periodic: frames take box=None")
        if box is not None:
            box = check_box(box)
            if self.triclinic:
                box = box_vectors(box)
            elif is_triclinic(box):
                raise InputError("this file stores rectangular boxes (3 edges) and the frame's box is triclinic: "
                                 "write it to a file opened with triclinic=True")
        if (forces is None) == self.forces:
            raise InputError("this file stores forces: every frame needs them" if self.forces
                             else "this file was created without forces")
        if (jacobian is None) != (self.jacobian_atoms is None):
            raise InputError("every frame needs a ForceJacobian" if jacobian is None
                             else "this file was created without Jacobians")
        if jacobian is not None:
            if jacobian.n_atoms != self.n_atoms or not np.array_equal(jacobian.atoms, self.jacobian_atoms):
                raise InputError("the Jacobian's atoms differ from the file's (jacobian_atoms)")
            self._check_long_range(jacobian.long_range)
        return (int(step), float(time), positions, box, forces, jacobian)

    def _born(self):
        """Whether the file's Jacobians have a generalized-Born part (its arrays stored frame by frame)."""
        return self.long_range is not None and self.long_range.kind == BORN_KIND

    def _check_long_range(self, part):
        """A file's frames all have the same long-range recipe, or none has one."""
        first = self.n_frames == 0 and not self.buffer
        if part is None:
            if self.long_range is not None:
                raise InputError("this file's Jacobians have a long-range (Ewald or PME) part: every frame's Jacobian needs one")
            return
        recipe = long_range_recipe(part)
        if self.long_range is None:
            if not first:
                raise InputError("this file's earlier Jacobians have no long-range (Ewald or PME) part: write this one to another file")
            self.long_range = recipe
        elif not same_recipe(recipe, self.long_range):
            raise InputError("the Jacobian's long-range (Ewald or PME) part differs from the file's (kind, kmax or grid, "
                             "alpha, constant, charges or site map): write it to another file")

    def flush(self):
        """Write the buffered frames: Jacobians, forces, box, positions, then step and time."""
        if not self.buffer:
            return
        steps, times, positions, boxes, forces, jacobians = zip(*self.buffer)
        self._check_room(positions, forces, jacobians)
        try:
            self._write_batch(steps, times, positions, boxes, forces, jacobians)
        except OSError as err:      # a full disk, a quota: the batch was undone by the journal
            self.buffer = []
            raise InputError(f"cannot write {self.path} ({os_error_reason(err)}); the {self.n_frames} frames "
                             "stored before are complete: make room and continue with --resume") from None
        self.n_frames += len(self.buffer)
        self.last_step = steps[-1]
        self.buffer = []

    def _check_room(self, positions, forces, jacobians):
        """Refuse a batch that may not fit on the disk (its uncompressed size, plus room for the
        journal's pre-images): HDF5 is not asked to write into a full disk when that can be seen."""
        need = sum(np.asarray(a).nbytes for a in positions) * (2 if self.forces else 1) + (1 << 20)
        need += sum(j.nnz_blocks * (9 * self.dtype.itemsize + 4) for j in jacobians if j is not None)
        need += sum(getattr(j.long_range, "nbytes", 0) for j in jacobians if j is not None and self._born())
        if self.long_range is not None and self.long_range.sites is not None:    # the site map's blocks and sites
            need += len(jacobians) * (72 + 24) * len(self.long_range.sites[0])
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(self.path))).free
        if free < need:
            self.buffer = []
            raise InputError(f"cannot write {self.path}: {free / 1e6:.1f} MB free on its disk, a batch needs up "
                             f"to {need / 1e6:.1f} MB; the {self.n_frames} frames stored before are complete: "
                             "make room and continue with --resume")

    def _write_batch(self, steps, times, positions, boxes, forces, jacobians):
        """One journaled batch: Jacobians, forces, box, positions, then step and time."""
        with modify(self.path) as f:
            g = f[f"particles/{GROUP}"]
            if self.jacobian_atoms is not None:
                self._write_jacobians(g[JACOBIAN], jacobians)
            if self.forces:
                _append(g["force/value"], np.asarray(forces, dtype=self.dtype))
            if self.periodic:
                _append(g["box/edges/value"], np.asarray(boxes, dtype=self.dtype))
            _append(g["position/value"], np.asarray(positions, dtype=self.dtype))
            if self.times:
                _append(g["position/time"], np.asarray(times, dtype=np.float64))
            _append(g["position/step"], np.asarray(steps, dtype=np.int64))

    def _write_jacobians(self, jac, jacobians):
        """Append blocks and column indices to the flat store, then each frame's row pointers
        and offset (where its blocks start in the store)."""
        n = len(self.jacobian_atoms)
        parts = [upper_triangle(j) if self.triangle == "upper" else (j.rows, j.cols, j.blocks)
                 for j in jacobians]
        indptr = np.stack([row_pointers(rows, n) for rows, _, _ in parts])
        if self.long_range is not None and LONG_RANGE not in jac and not self._born():
            write_recipe(jac.create_group(LONG_RANGE), self.long_range)
        if self._born():      # its arrays before the frames' offsets (complete_frames)
            _write_born(jac, [j.long_range for j in jacobians])
        if self.long_range is not None and self.long_range.sites is not None:      # so the site map's
            _write_site_frames(jac[LONG_RANGE], [j.long_range for j in jacobians])
        start = len(jac["blocks"])
        _append(jac["indices"], _joined([cols for _, cols, _ in parts], np.int32))
        _append(jac["blocks"], _joined([blocks for _, _, blocks in parts], self.dtype))
        _append(jac["indptr"], indptr.astype(np.int64, copy=False))
        _append(jac["offset"], start + np.concatenate([[0], np.cumsum(indptr[:-1, -1])]))

    def record(self, name, value):
        """Store ``value`` (JSON-able) as the attribute ``name`` of /parameters/mdjac, beside the
        metadata (a distributed run records itself there), through the journal."""
        with modify(self.path) as f:
            f["parameters/mdjac"].attrs[name] = json.dumps(value, sort_keys=True)

    def close(self):
        """Write what is buffered and release the lock."""
        try:
            self.flush()
        finally:
            self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
