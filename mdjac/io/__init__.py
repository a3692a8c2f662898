"""Trajectory files in and out: readers and writers found by format.

Reader protocol: a reader is a :class:`~mdjac.io.frames.FrameSequence` (``len``, indexing,
slicing, iteration over :class:`~mdjac.io.frames.Frame`, ``n_atoms``, ``path``, ``close``).
:func:`open_trajectory` asks each registered format in turn whether it reads a file
(``READERS``: name -> (matches(path), open(path, group))), first match wins.

Writer protocol: ``append(step, time, positions, box, forces, jacobian)`` buffers a frame
(positions (N, 3) nm, box (3,) nm or None, forces (N, 3) kJ mol^-1 nm^-1, jacobian a
ForceJacobian); ``n_frames`` and ``last_step`` say what the file holds; ``close()`` (or the end of
a ``with`` block) writes what is buffered; ``record(name, value)`` stores a JSON attribute about the
run beside the writer's metadata. :func:`open_writer` picks the writer by the output's extension
(``WRITERS``), H5MD for any other. A writer refuses an output another writer holds with
:class:`mdjac.errors.OutputLocked`.

An output written in parts (a distributed run's) is an index of part files: :func:`open_index`
gives its writer (``add(part paths)``, ``n_frames``, ``last_step``, ``record``, ``close``) and
:func:`consolidate` copies it into one file (H5MD: :mod:`mdjac.io.h5md_index`).

What the jobs read back of an output: :func:`describe` (what a file holds) and
:func:`read_metadata` (the writer's metadata), for the formats mdjac writes.

To add a format: a module here with its reader and/or writer, and one line in each table.
"""
import os

from ..errors import InputError


def _is_hdf5(path):
    from .h5md_layout import is_hdf5
    return is_hdf5(path)


def _open_h5md(path, group):
    from .h5md_reader import H5MDTrajectory
    return H5MDTrajectory(path, group)


def _open_mdanalysis(path, group):
    from .mda import MDATrajectory
    return MDATrajectory(path)


def _describe_h5md(path):
    from .h5md_reader import describe
    return describe(path)


def _h5md_metadata(path):
    from .h5md_reader import read_metadata
    return read_metadata(path)


def _h5md_writer(path, n_atoms, **options):
    from .h5md_writer import H5MDWriter
    return H5MDWriter(path, n_atoms, **options)


#: Input formats, in the order they are tried: name -> (matches(path) -> bool, open(path, group)).
READERS = {
    "h5md": (_is_hdf5, _open_h5md),
    "mdanalysis": (lambda path: True, _open_mdanalysis),   # PDB, XYZ, DCD, XTC, ... by extension
}
#: Output formats by file extension: extension -> writer(path, n_atoms, **options).
WRITERS = {".h5md": _h5md_writer, ".h5": _h5md_writer, ".hdf5": _h5md_writer}
DEFAULT_WRITER = _h5md_writer
#: What the jobs read back of the formats mdjac writes: name (of READERS) -> (describe(path), read_metadata(path)).
OUTPUTS = {"h5md": (_describe_h5md, _h5md_metadata)}
DEFAULT_OUTPUT = "h5md"


def format_of(path):
    """The name of the first format of ``READERS`` that reads the existing file ``path``."""
    return next(name for name, (matches, _) in READERS.items() if matches(path))


def open_trajectory(path, group=None, n_atoms=None):
    """Frames of a trajectory file, lazily: a FrameSequence of Frame (mdjac's units).

    HDF5 files are read as H5MD (mdjac's output with its Jacobians, standard H5MD, MindSPONGE's
    WriteH5MD); anything else (PDB, XYZ, DCD, XTC, ...) through MDAnalysis.

    Parameters
    ----------
    path : the trajectory file.
    group : str or None, the H5MD particles group (default 'trajectory', else the first).
    n_atoms : int or None, checked against the file's if given.

    Raises
    ------
    InputError : for a missing, unreadable or mismatched file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path} is a directory; give a trajectory file")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    traj = READERS[format_of(path)][1](path, group)
    if n_atoms is not None and traj.n_atoms != n_atoms:
        traj.close()
        raise InputError(f"{path} has {traj.n_atoms} atoms but the system has {n_atoms}; "
                         "pick the system this trajectory was run with")
    return traj


def open_writer(path, n_atoms, **options):
    """A writer for ``path`` chosen by its extension (H5MD for any extension not in WRITERS).

    Parameters
    ----------
    path : the output file.
    n_atoms : int, atoms per frame.
    **options : the writer's own (for H5MD: see :class:`mdjac.io.h5md_writer.H5MDWriter`).
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    return WRITERS.get(ext, DEFAULT_WRITER)(path, n_atoms, **options)


def open_index(path, n_atoms=None, **options):
    """The writer of an output indexing part files (only H5MD has one:
    :class:`mdjac.io.h5md_index.H5MDIndex`; mode, overwrite and base_part are its options, the
    layout options of :func:`open_writer` are the parts' and are ignored here)."""
    from .h5md_index import H5MDIndex
    keep = {k: options[k] for k in ("mode", "overwrite", "base_part") if k in options}
    return H5MDIndex(path, **keep)


def consolidate(path):
    """Copy an index output into one self-contained file in its place and delete its parts
    (:func:`mdjac.io.h5md_index.consolidate`); returns the number of parts removed."""
    from .h5md_index import consolidate as consolidate_h5md
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    return consolidate_h5md(path)


def _output_format(path):
    """The OUTPUTS entry of an output file: its own format's, else H5MD's (what :func:`open_writer`
    writes by default, whose reader then says what is wrong with the file)."""
    path = os.fspath(path)
    name = format_of(path) if os.path.isfile(path) else DEFAULT_OUTPUT
    return OUTPUTS.get(name, OUTPUTS[DEFAULT_OUTPUT])


def describe(path):
    """What an output file holds, as a dict of plain values (for H5MD:
    :func:`mdjac.io.h5md_reader.describe`)."""
    return _output_format(path)[0](path)


def read_metadata(path):
    """The writer's ``metadata`` dict of an output file ({} if none)."""
    return _output_format(path)[1](path)
