"""The checks the jobs run before they touch an output: the output path, the frames, a resume.

Each refuses bad input with a one-line :class:`mdjac.InputError`; the command line only reports it.
"""
import os

import numpy as np

from ..errors import InputError
from ..io import open_trajectory, read_metadata
from ..space import check_box, is_triclinic


def check_output(path, resume, overwrite, resumable=True):
    """Refuse an output that exists (without resume/overwrite) or cannot be written.

    Parameters
    ----------
    path : the output file.
    resume, overwrite : bool, what the caller was told to do with an existing file.
    resumable : bool, whether the command has --resume (the message offers only what exists).
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise InputError(f"output {path} is a directory; give a file name")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise InputError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise InputError(f"cannot write {path}: permission denied")
    if os.path.exists(path) and not (resume or overwrite):
        raise InputError(f"{path} exists; pass --resume to continue it or --overwrite to replace it" if resumable
                         else f"{path} exists; pass --overwrite to replace it, or give another output with -o")


def same_file(a, b):
    """True if paths ``a`` and ``b`` name the same file (through links too), existing or not."""
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def frame_box(box, system):
    """The box for the potential: the frame's own ``box`` (NPT) or else the system's; None if
    the system is not periodic. (3,) edges or (3, 3) box vectors, nm."""
    if system.box is None:
        return None
    return np.asarray(system.box if box is None else box, dtype=np.float64)


def check_storable(potential):
    """Refuse, before any output is opened, a potential whose Jacobian part a file cannot hold (a long-range
    term's ``not_storable``)."""
    for term in potential.long_range_terms:
        if term.not_storable:
            raise InputError(term.not_storable)


def check_frames(frames, system):
    """Read every selected frame once and refuse the run if any has NaN/inf positions, a bad box
    or a box too small for the potential's cutoffs: nothing is written for a trajectory that
    would fail half-way."""
    for i in range(len(frames)):
        positions, box = frames.coordinates(i)
        if not np.all(np.isfinite(positions)):
            raise InputError(f"{frames.path}: frame {frames.indices[i]} has NaN or infinite positions; "
                             f"select frames before it with --stop {frames.indices[i]}")
        try:
            system.potential.configuration(positions, frame_box(box, system))   # the box, and against every cutoff
        except InputError as err:
            raise InputError(f"{frames.path}: frame {frames.indices[i]}: {err}") from None
        if box is not None and system.box is not None and is_triclinic(check_box(box)) and not is_triclinic(system.box):
            raise InputError(f"{frames.path}: frame {frames.indices[i]} has a triclinic box but the system's box is "
                             "rectangular: give the system its triclinic box (CRYST1 angles, or box vectors in the system file)")


def check_resumable(path, metadata):
    """Refuse to resume an output made from another input, system, selection or precision."""
    stored = read_metadata(path)
    for key, value in metadata.items():
        if stored.get(key) != value:
            raise InputError(f"{path} was made with {key}={stored.get(key)!r}, not {value!r}; "
                             "resume with the same arguments or use --overwrite")


def check_stored_frames(output, frames, done, dtype):
    """Refuse to resume when the ``done`` frames stored in ``output`` are not the input's first
    ``done`` selected frames (the input changed at the same path): positions must be equal."""
    with open_trajectory(output) as stored:
        for i in range(done):
            want = np.asarray(frames.coordinates(i)[0], dtype=dtype)
            if not np.array_equal(stored.coordinates(i)[0], want):
                raise InputError(f"{output}: stored frame {i} differs from frame {frames.indices[i]} of the input "
                                 f"(the input changed since); start again with --overwrite")
