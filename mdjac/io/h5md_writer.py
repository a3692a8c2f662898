"""H5MD files with force Jacobians: the writer, the reader, and the layout they share.

The layout is documented, with a stand-alone h5py snippet, in ``docs/h5md.md``. In short, an
H5MD 1.1 file whose ``/particles/trajectory`` group holds ``position``, ``box/edges`` (periodic
systems) and ``force`` as time-dependent elements, all sharing one ``step`` and one ``time``
dataset through hard links, and next to them ``force_jacobian``: every frame's 3x3 blocks as a
block-sparse row (BSR) matrix, stored as one flat, resizable store of blocks and column indices
plus per-frame row pointers and offsets.

Never lose a frame. Frames are buffered and written in batches; the file is opened only while a
batch is written and closed (hence flushed) afterwards. Within a batch the data go first and the
shared ``step``/``time`` datasets last, so a frame counts as stored only once every dataset holds
it. Readers trust only the frames that every dataset holds (:func:`complete_frames`); resuming
cuts the datasets back to that count and continues. Each batch goes through a rollback journal
(:mod:`mdjac.journal`), so a process killed inside a batch leaves the file as it was before it.
"""
import collections.abc
import contextlib
import fcntl
import json
import operator
import os
import time
from dataclasses import dataclass
from typing import Optional

import h5py
import numpy as np

from . import journal
from .errors import InputError
from .jacobian import ForceJacobian, row_pointers, rows_of

GROUP = "trajectory"
JACOBIAN = "force_jacobian"
LAYOUT = "mdjac-bsr-1"
UNITS = {"length": "nm", "time": "ps", "force": "kJ mol-1 nm-1", "jacobian": "kJ mol-1 nm-2",
         "mass": "u"}
# H5MD unit strings of input files, as factors to mdjac's units (nm; kJ mol^-1 nm^-1).
LENGTH_FACTORS = {"nm": 1.0, "Angstrom": 0.1, "angstrom": 0.1, "A": 0.1, "pm": 1e-3, "um": 1e3}
FORCE_FACTORS = {"kJ mol-1 nm-1": 1.0, "kJ mol-1 Angstrom-1": 10.0, "kJ mol-1 A-1": 10.0,
                 "kcal mol-1 Angstrom-1": 41.84, "kcal mol-1 A-1": 41.84, "kcal mol-1 nm-1": 4.184}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}  # level 1: 4x faster than 4, same ratio on blocks
CHUNK_BYTES = 1 << 18


def _version():
    try:
        from importlib.metadata import version
        return version("mdjac")
    except Exception:  # noqa: BLE001 - not installed: running from a clone
        return "0.1.0"


# --------------------------------------------------------------------------------------------
# Frames and lazy sequences of frames
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """One frame of a trajectory, in mdjac's units.

    step : int, MD step.  time : float, ps.
    positions : (N, 3) nm.  box : (3,) orthorhombic edges in nm, or None (not periodic).
    forces : (N, 3) kJ mol^-1 nm^-1, or None.  jacobian : ForceJacobian, or None.
    """
    step: int
    time: float
    positions: np.ndarray
    box: Optional[np.ndarray] = None
    forces: Optional[np.ndarray] = None
    jacobian: Optional[object] = None


class FrameSequence(collections.abc.Sequence):
    """A lazy sequence of :class:`Frame`: len, indexing (negative too), slicing (a lazy view)
    and iteration; a frame is read only when asked for. Subclasses set ``n_atoms`` and implement
    ``__len__`` and ``_read(i)`` for 0 <= i < len."""

    n_atoms = None
    path = None

    def __getitem__(self, index):
        if isinstance(index, slice):
            return FrameView(self, range(len(self))[index])
        index = operator.index(index)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"frame {index} out of range: {self.path} has {n} frames")
        return self._read(index % n)

    def __iter__(self):
        for i in range(len(self)):
            yield self._read(i)

    def coordinates(self, index):
        """(positions (N, 3) nm, box (3,) nm or None) of frame ``index`` alone (no forces or
        Jacobian read): what a scan of a whole trajectory needs."""
        frame = self[index]
        return frame.positions, frame.box

    def close(self):
        """Release the file, if any."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FrameView(FrameSequence):
    """Frames ``indices`` (a range) of another sequence, lazily."""

    def __init__(self, parent, indices):
        self.parent, self.indices = parent, indices
        self.n_atoms, self.path = parent.n_atoms, parent.path

    def __len__(self):
        return len(self.indices)

    def _read(self, i):
        return self.parent._read(self.indices[i])

    def coordinates(self, index):
        return self.parent.coordinates(self.indices[index])


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def is_hdf5(path):
    """True if the file starts with the HDF5 signature (userblocks are not supported)."""
    with open(path, "rb") as f:
        return f.read(8) == HDF5_SIGNATURE


def open_h5(path, mode="r"):
    """h5py.File for reading (or ``mode`` 'w-' to create), with HDF5's failures (truncated,
    corrupt, not HDF5) as one-line InputErrors. A file with a pending journal (a batch being
    written, or a killed writer's) is read as it was before that batch."""
    if mode == "r" and not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        if mode != "r":   # new files keep their free-space map, so a batch reuses what the last freed
            return h5py.File(path, mode, locking=False, fs_strategy="fsm", fs_persist=True, fs_threshold=1)
        pending = journal.read_journal(path)
        if pending is not None:
            return h5py.File(journal.CommittedView(path, pending), "r")
        return h5py.File(path, "r")
    except OSError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "truncated" in reason:
            reason = "the file is truncated"
        elif "signature" in reason or "not an HDF5" in reason.lower():
            reason = "not an HDF5 file"
        raise InputError(f"{path}: cannot open as HDF5 ({reason}); is it a complete H5MD file?") from None


@contextlib.contextmanager
def modify(path):
    """An h5py.File open for modification through a rollback journal (mdjac.journal): either
    everything done inside the block reaches the file, or (killed, or an exception) nothing."""
    jf = journal.JournaledFile(path)
    try:
        with h5py.File(jf, "r+") as f:
            yield f
    except BaseException:
        jf.abandon()
        journal.recover(path)
        raise
    jf.commit()


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
    return n


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
        self.periodic = "edges" in g["box"] if "box" in g else False
        self.masses = np.asarray(g["mass"][()], dtype=np.float64) if isinstance(g.get("mass"), h5py.Dataset) else None
        self.has_jacobian = JACOBIAN in g
        if self.has_jacobian:
            self.atoms = g[JACOBIAN]["atoms"][()]
        if self.periodic:
            self._edges = g["box/edges"]
            self._box_factor = _unit(self._edges if isinstance(self._edges, h5py.Dataset)
                                     else self._edges["value"], LENGTH_FACTORS, "box", "nm")

    def __len__(self):
        return self._n

    def _box(self, i):
        """(3,) nm or None; a (3, 3) matrix box is accepted only if diagonal."""
        if not self.periodic:
            return None
        edges = self._edges[()] if isinstance(self._edges, h5py.Dataset) else self._edges["value"][i]
        edges = np.asarray(edges, dtype=np.float64) * self._box_factor
        if edges.shape == (3, 3):
            if np.any(edges != np.diag(np.diag(edges))):
                raise InputError(f"{self.path}: frame {i} has a triclinic box; mdjac supports orthorhombic boxes only")
            edges = np.diag(edges).copy()
        return edges

    def _read(self, i):
        g = self.group
        with self._reading(i):
            positions, box = self.coordinates(i)
            step = int(g["position/step"][i])
            time = float(g["position/time"][i]) if "time" in g["position"] else float("nan")
            forces = None if self._force is None else g["force/value"][i] * self._force
            jacobian = read_jacobian(g[JACOBIAN], i, self.n_atoms) if self.has_jacobian else None
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
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InputError(f"{self.path}: cannot read frame {i} ({reason}); the file is damaged") from None

    def close(self):
        if self.file.id.valid:
            self.file.close()


def read_jacobian(jac, i, n_atoms):
    """Frame ``i`` of a ``force_jacobian`` group as a ForceJacobian (an upper triangle mirrored)."""
    indptr = jac["indptr"][i]
    start = int(jac["offset"][i])
    stop = start + int(indptr[-1])
    cols = jac["indices"][start:stop].astype(np.int64)
    rows = rows_of(indptr)
    blocks = jac["blocks"][start:stop]
    if jac.attrs.get("triangle", "full") == "upper":
        rows, cols, blocks = mirror_upper(rows, cols, blocks)
    return ForceJacobian(n_atoms, rows, cols, blocks, atoms=jac["atoms"][()])


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


def open_trajectory(path, group=None, n_atoms=None):
    """Frames of a trajectory file, lazily: a :class:`FrameSequence` of :class:`Frame`.

    HDF5 files are read as H5MD (:class:`H5MDTrajectory`: mdjac's output with its Jacobians,
    standard H5MD, MindSPONGE's WriteH5MD); anything else (PDB, XYZ, DCD, XTC, ...) through
    MDAnalysis (:class:`mdjac.trajectories.MDATrajectory`). ``n_atoms``, if given, is checked.
    Raises InputError for a missing, unreadable or mismatched file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if is_hdf5(path):
        traj = H5MDTrajectory(path, group)
    else:
        from .trajectories import MDATrajectory
        traj = MDATrajectory(path)
    if n_atoms is not None and traj.n_atoms != n_atoms:
        traj.close()
        raise InputError(f"{path} has {traj.n_atoms} atoms but the system has {n_atoms}; "
                         "pick the system this trajectory was run with")
    return traj


def read_metadata(path):
    """The writer's ``metadata`` dict of an mdjac file ({} if none)."""
    with open_h5(path) as f:
        raw = f.get("parameters/mdjac")
        return {} if raw is None else json.loads(raw.attrs["metadata"])


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def _frame_chunks(shape, itemsize, limit=64):
    """Chunk shape for a (frames, *shape) dataset: whole frames, about CHUNK_BYTES per chunk."""
    per_frame = int(np.prod(shape, dtype=np.int64)) * itemsize
    return (int(np.clip(CHUNK_BYTES // max(per_frame, 1), 1, limit)),) + tuple(shape)


def _resizable(group, name, shape, dtype, unit=None, chunks=None, compress=True):
    """An empty dataset of ``shape[1:]`` items, resizable along axis 0, chunked and (unless
    ``compress`` is False) compressed."""
    dtype = np.dtype(dtype)
    chunks = chunks or _frame_chunks(shape, dtype.itemsize, limit=4096)
    ds = group.create_dataset(name, shape=(0,) + tuple(shape), maxshape=(None,) + tuple(shape),
                              dtype=dtype, chunks=chunks, **(COMPRESSION if compress else {}))
    if unit is not None:
        ds.attrs["unit"] = unit
    return ds


def _element(group, name, shape, dtype, unit, clock=None):
    """A time-dependent H5MD element: value (frames, *shape); step and time shared with
    ``clock`` (hard links) or created here."""
    el = group.create_group(name)
    if clock is None:
        _resizable(el, "step", (), np.int64, chunks=(1024,))
        _resizable(el, "time", (), np.float64, UNITS["time"], chunks=(1024,))
    else:
        el["step"], el["time"] = clock["step"], clock["time"]
    _resizable(el, "value", shape, dtype, unit, chunks=_frame_chunks(shape, np.dtype(dtype).itemsize))
    return el


def _append(ds, data):
    """Append ``data`` (k, ...) along axis 0 of resizable dataset ``ds``."""
    n = len(ds)
    ds.resize(n + len(data), axis=0)
    ds[n:] = data


def create_layout(f, n_atoms, dtype, periodic, forces, jacobian_atoms, names, masses, author,
                  metadata, compress_blocks=True, triangle="full"):
    """Write the empty H5MD skeleton of an mdjac file into open h5py.File ``f``."""
    h5md = f.create_group("h5md")
    h5md.attrs["version"] = np.array([1, 1], dtype=np.int32)
    h5md.create_group("author").attrs["name"] = author
    creator = h5md.create_group("creator")
    creator.attrs["name"], creator.attrs["version"] = "mdjac", _version()
    units = h5md.create_group("modules/units")
    units.attrs["version"] = np.array([1, 0], dtype=np.int32)
    units.attrs["system"] = "SI"

    g = f.create_group(f"particles/{GROUP}")
    position = _element(g, "position", (n_atoms, 3), dtype, UNITS["length"])
    box = g.create_group("box")
    box.attrs["dimension"] = np.int32(3)
    box.attrs["boundary"] = np.array(["periodic" if periodic else "none"] * 3, dtype=h5py.string_dtype())
    if periodic:
        _element(box, "edges", (3,), dtype, UNITS["length"], clock=position)
    if forces:
        _element(g, "force", (n_atoms, 3), dtype, UNITS["force"], clock=position)
    if masses is not None:
        g.create_dataset("mass", data=np.asarray(masses, dtype=np.float64)).attrs["unit"] = UNITS["mass"]
    if jacobian_atoms is not None:
        jac = g.create_group(JACOBIAN)
        jac.attrs["layout"] = LAYOUT
        jac.attrs["n_atoms"] = np.int64(n_atoms)
        jac.attrs["triangle"] = triangle
        jac["step"], jac["time"] = position["step"], position["time"]
        jac.create_dataset("atoms", data=np.asarray(jacobian_atoms, dtype=np.int64))
        n = len(jacobian_atoms)
        _resizable(jac, "indptr", (n + 1,), np.int64, chunks=_frame_chunks((n + 1,), 8))
        _resizable(jac, "offset", (), np.int64, chunks=(1024,))
        _resizable(jac, "indices", (), np.int32, chunks=(1 << 16,))
        _resizable(jac, "blocks", (3, 3), dtype, UNITS["jacobian"], chunks=(1 << 13, 3, 3),
                   compress=compress_blocks)
    params = f.create_group("parameters")
    if names is not None:
        vmd = params.create_group("vmd_structure")
        vmd.create_dataset("name", data=np.array([str(s).encode("ascii", "replace") for s in names]))
        vmd.create_dataset("indexOfSpecies", data=np.arange(n_atoms, dtype=np.int32))
    params.create_group("mdjac").attrs["metadata"] = json.dumps(metadata or {}, sort_keys=True)


def extents(g, n):
    """{dataset name: length} of every resizable dataset of particle group ``g`` holding exactly
    its first ``n`` frames (the Jacobian store: the blocks those frames use)."""
    out = {"position/step": n, "position/time": n, "position/value": n}
    if "force" in g:
        out["force/value"] = n
    if "box" in g and "edges" in g["box"]:
        out["box/edges/value"] = n
    if JACOBIAN in g:
        jac = g[JACOBIAN]
        end = int(jac["offset"][n - 1] + jac["indptr"][n - 1, -1]) if n else 0
        out.update({f"{JACOBIAN}/indptr": n, f"{JACOBIAN}/offset": n,
                    f"{JACOBIAN}/indices": end, f"{JACOBIAN}/blocks": end})
    return out


def truncate(g, n):
    """Cut every dataset of particle group ``g`` back to its first ``n`` frames."""
    for name, size in extents(g, n).items():
        g[name].resize(size, axis=0)


class OutputLock:
    """Exclusive advisory lock on ``<path>.lock`` (fcntl.flock), held while a writer lives.

    The kernel releases it when the process dies, so a killed run never blocks its resume.
    """

    def __init__(self, path):
        self.path = f"{path}.lock"
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise InputError(f"cannot write next to {path}: {err.strerror}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            raise InputError(f"{path} is being written by another mdjac (pid {owner}); "
                             "wait for it to finish or write elsewhere") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self):
        if self.fd is not None:
            try:
                os.unlink(self.path)
            finally:
                os.close(self.fd)
                self.fd = None


class TrajectoryWriter:
    """Append frames with their forces and force Jacobians to an H5MD file (docs/h5md.md).

    Parameters
    ----------
    path : output file.
    n_atoms : int, atoms per frame.
    names : N atom names or None; masses : (N,) amu or None (written once).
    periodic : bool, whether frames carry a box (time-dependent edges, nm).
    forces : bool, whether frames carry forces (kJ mol^-1 nm^-1).
    jacobian_atoms : (n,) int, the atoms (global indices) whose Jacobian every frame carries
        (``ForceJacobian.atoms``); "all" for all atoms, None for no Jacobian.
    dtype : float32 or float64, the stored precision of positions, box, forces and blocks.
    mode : 'w' creates (refused if ``path`` exists unless ``overwrite``), 'a' resumes an mdjac
        file (or creates it): frames that were not completely written are dropped and appending
        continues after the last complete one (:attr:`n_frames`, :attr:`last_step`).
    overwrite : with mode 'w', replace an existing ``path`` (only once the lock is held).
    triangle : 'full' stores every block; 'upper' only the blocks J_ij with j >= i (the reader
        mirrors J_ji = J_ij^T): half the bytes, but the lower blocks read back are the
        transposes of the upper ones, not the computed ones (they differ by rounding).
    compress_blocks : gzip the Jacobian blocks (default). Blocks are nearly incompressible
        floats (about 0.8 of their size) and gzip dominates the write time of large frames;
        False writes them several times faster.
    batch : frames buffered before the file is opened, appended and closed again.
    metadata : JSON-able dict stored in /parameters/mdjac (the command line keeps its
        arguments there so that --resume can check them).

    A second writer on the same path is refused (:class:`OutputLock`). Use as a context
    manager, or call :meth:`close`: buffered frames are written on exit, also on an exception.
    """

    def __init__(self, path, n_atoms, names=None, masses=None, periodic=False, forces=True,
                 jacobian_atoms="all", dtype=np.float32, mode="w", batch=16, author="mdjac user",
                 metadata=None, overwrite=False, compress_blocks=True, triangle="full"):
        self.path, self.n_atoms, self.batch = os.fspath(path), int(n_atoms), int(batch)
        self.dtype, self.periodic, self.forces = np.dtype(dtype), bool(periodic), bool(forces)
        if mode not in ("w", "a"):
            raise InputError(f"writer mode must be 'w' or 'a', not {mode!r}")
        if triangle not in ("full", "upper"):
            raise InputError(f"triangle must be 'full' or 'upper', not {triangle!r}")
        self.triangle = triangle
        if mode == "w" and os.path.exists(self.path) and not overwrite:
            raise InputError(f"{self.path} exists; resume it or overwrite it")
        if isinstance(jacobian_atoms, str):
            jacobian_atoms = np.arange(self.n_atoms)
        self.jacobian_atoms = None if jacobian_atoms is None else np.asarray(jacobian_atoms, dtype=np.int64)
        self.lock = OutputLock(self.path)
        self.buffer, self.last_step = [], None
        try:
            if mode == "a" and os.path.exists(self.path):
                journal.recover(self.path)
                self.n_frames = self._resume()
            else:
                self._create(names, masses, author, metadata, compress_blocks, triangle)
                self.n_frames = 0
        except BaseException:
            self.lock.release()
            raise

    def _create(self, names, masses, author, metadata, compress_blocks, triangle):
        """Write the empty layout to a temporary file and rename it over ``path`` (atomic)."""
        tmp = f"{self.path}.tmp"
        try:
            with open_h5(tmp, "w") as f:
                create_layout(f, self.n_atoms, self.dtype, self.periodic, self.forces,
                              self.jacobian_atoms, names, masses, author, metadata, compress_blocks,
                              triangle)
            if os.path.exists(journal.journal_path(self.path)):
                os.remove(journal.journal_path(self.path))   # a stale journal of the old file
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

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
                         triangle=g[JACOBIAN].attrs.get("triangle", "full") if JACOBIAN in g else "full")
            wanted = dict(n_atoms=self.n_atoms, periodic=self.periodic, forces=self.forces,
                          dtype=self.dtype, jacobian=None if self.jacobian_atoms is None
                          else self.jacobian_atoms.tolist(),
                          triangle=self.triangle if self.jacobian_atoms is not None else "full")
            for key in found:
                if found[key] != wanted[key]:
                    raise InputError(f"{self.path} does not match this run ({key} differs: "
                                     f"{found[key]} in the file); cannot resume it")
            n = complete_frames(g)
            ragged = any(len(g[name]) != size for name, size in extents(g, n).items())
            self.last_step = int(g["position/step"][n - 1]) if n else None
        if ragged:
            with modify(self.path) as f:
                truncate(f[f"particles/{GROUP}"], n)
        return n

    def append(self, step, time, positions, box=None, forces=None, jacobian=None):
        """Buffer one frame; the batch is written when full.

        step : int.  time : ps.  positions : (N, 3) nm.  box : (3,) nm (periodic) or None.
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
        if (forces is None) == self.forces:
            raise InputError("this file stores forces: every frame needs them" if self.forces
                             else "this file was created without forces")
        if (jacobian is None) != (self.jacobian_atoms is None):
            raise InputError("every frame needs a ForceJacobian" if jacobian is None
                             else "this file was created without Jacobians")
        if jacobian is not None:
            if jacobian.n_atoms != self.n_atoms or not np.array_equal(jacobian.atoms, self.jacobian_atoms):
                raise InputError("the Jacobian's atoms differ from the file's (jacobian_atoms)")
        return (int(step), float(time), positions, box, forces, jacobian)

    def flush(self):
        """Write the buffered frames: Jacobians, forces, box, positions, then step and time."""
        if not self.buffer:
            return
        steps, times, positions, boxes, forces, jacobians = zip(*self.buffer)
        with modify(self.path) as f:
            g = f[f"particles/{GROUP}"]
            if self.jacobian_atoms is not None:
                self._write_jacobians(g[JACOBIAN], jacobians)
            if self.forces:
                _append(g["force/value"], np.asarray(forces, dtype=self.dtype))
            if self.periodic:
                _append(g["box/edges/value"], np.asarray(boxes, dtype=self.dtype))
            _append(g["position/value"], np.asarray(positions, dtype=self.dtype))
            _append(g["position/time"], np.asarray(times, dtype=np.float64))
            _append(g["position/step"], np.asarray(steps, dtype=np.int64))
        self.n_frames += len(self.buffer)
        self.last_step = steps[-1]
        self.buffer = []

    def _write_jacobians(self, jac, jacobians):
        """Append blocks and column indices to the flat store, then each frame's row pointers
        and offset (where its blocks start in the store)."""
        n = len(self.jacobian_atoms)
        parts = [upper_triangle(j) if self.triangle == "upper" else (j.rows, j.cols, j.blocks)
                 for j in jacobians]
        indptr = np.stack([row_pointers(rows, n) for rows, _, _ in parts])
        start = len(jac["blocks"])
        _append(jac["indices"], np.concatenate([cols for _, cols, _ in parts]).astype(np.int32))
        _append(jac["blocks"], np.concatenate([blocks for _, _, blocks in parts]).astype(self.dtype))
        _append(jac["indptr"], indptr.astype(np.int64))
        _append(jac["offset"], start + np.concatenate([[0], np.cumsum(indptr[:-1, -1])]))

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


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------

JACOBIAN_DATASETS = ("atoms", "indptr", "offset", "indices", "blocks")


def _storage(jac):
    """Bytes on disk (compressed) of the datasets of a ``force_jacobian`` group."""
    return sum(jac[name].id.get_storage_size() for name in JACOBIAN_DATASETS)


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
        except (OSError, KeyError, ValueError):   # InputError is a ValueError
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
    (first, last, ps), periodic, forces, file_bytes; if it has Jacobians: jacobian_atoms (kept
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
        creator = f["h5md/creator"].attrs.get("name", "?") if "h5md/creator" in f else "?"
        out = dict(path=str(path), creator=str(creator), group=name,
                   n_atoms=g["position/value"].shape[1], frames=n,
                   steps=(int(g["position/step"][0]), int(g["position/step"][n - 1])) if n else None,
                   times=(float(g["position/time"][0]), float(g["position/time"][n - 1]))
                   if n and "time" in g["position"] else None,
                   periodic="box" in g and "edges" in g["box"], forces="force" in g,
                   file_bytes=os.path.getsize(path))
        if JACOBIAN in g:
            jac = g[JACOBIAN]
            counts = jac["indptr"][:n, -1] if n else np.zeros(1)
            out.update(jacobian_atoms=len(jac["atoms"]), jacobian_dtype=str(jac["blocks"].dtype),
                       triangle=str(jac.attrs.get("triangle", "full")),
                       blocks_per_frame=(int(counts.min()), float(counts.mean()), int(counts.max())),
                       jacobian_bytes_per_frame=_storage(jac) / max(n, 1),
                       bytes_per_frame=out["file_bytes"] / max(n, 1))
        return out
