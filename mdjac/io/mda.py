"""Input trajectories in the common formats, read through MDAnalysis (PDB, XYZ, DCD, XTC, ...).

H5MD files (mdjac's own, standard H5MD and MindSPONGE's WriteH5MD) are read by
:class:`mdjac.io.h5md_reader.H5MDTrajectory`; :func:`mdjac.io.open_trajectory` picks the reader.
"""
import gc
import os
import sys
import traceback
import warnings

import numpy as np

from ..errors import InputError, os_error_reason
from ..space import box_from_cell
from .frames import Frame, FrameSequence

ANGSTROM = 0.1  # nm


def mda_reader(path):
    """An MDAnalysis coordinate reader for ``path``, chosen by its extension.

    The formats read here carry their atom count (PDB, XYZ, GRO) or a header with it (DCD, XTC,
    TRR), so no topology is needed: the system the command line is given supplies it.
    """
    import MDAnalysis  # noqa: F401 - registers the readers
    from MDAnalysis.coordinates.core import get_reader_for
    try:
        reader = get_reader_for(path)
    except (ValueError, TypeError):
        ext = os.path.splitext(path)[1] or "(none)"
        raise InputError(f"{path}: not HDF5 and extension {ext} is no trajectory format MDAnalysis "
                         "reads; use .h5md, .pdb, .xyz, .dcd, .xtc, ...") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return reader(path)
    except Exception as err:  # noqa: BLE001 - MDAnalysis raises many types for bad files
        reason = os_error_reason(err)
        _release_quietly(err)
        fmt = reader.format if isinstance(reader.format, str) else reader.format[0]
        raise InputError(f"{path}: cannot read as {fmt} ({reason})") from None


def _release_quietly(err):
    """Free the half-built reader that ``err``'s traceback holds, without the AttributeError its
    ``__del__`` raises (MDAnalysis closes files that ``__init__`` never opened)."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        traceback.clear_frames(err.__traceback__)
        err.__traceback__ = None
        gc.collect()
    finally:
        sys.unraisablehook = hook


def box_from_dimensions(dimensions, path, frame):
    """MDAnalysis unit cell [a, b, c, alpha, beta, gamma] (Angstrom, degrees) -> (3,) nm edges, (3, 3)
    nm box vectors in OpenMM's reduced form (a triclinic cell: mdjac.space.box_from_cell), or None."""
    if dimensions is None or np.all(np.asarray(dimensions[:3]) <= 1.0):
        return None  # no cell, or PDB's placeholder CRYST1 of 1 Angstrom
    dimensions = np.asarray(dimensions, dtype=np.float64)
    try:
        return box_from_cell(dimensions[:3] * ANGSTROM, dimensions[3:])
    except InputError as err:
        raise InputError(f"{path}: frame {frame}: {err}") from None


#: MDAnalysis formats whose files record the time of each frame; the others (PDB, XYZ, GRO, ...)
#: carry none, and MDAnalysis would invent one (1 ps per frame, with a warning on every read).
FORMATS_WITH_TIMES = {"XTC", "TRR", "DCD", "NCDF", "NC", "TNG", "LAMMPSDUMP", "TRJ", "MDCRD", "CRDBOX", "INPCRD"}


class MDATrajectory(FrameSequence):
    """Lazy frames of any trajectory MDAnalysis reads; positions and box converted to nm.

    step is the step the file records (XTC, TRR) or else the frame index; time is MDAnalysis's
    time in ps for formats that record one (``has_times``), else NaN (unknown); forces are read
    where the format has them (TRR), else None.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.reader = mda_reader(self.path)
        self.n_atoms = self.reader.n_atoms
        formats = self.reader.format if isinstance(self.reader.format, (list, tuple)) else [self.reader.format]
        self.has_times = any(str(f).upper() in FORMATS_WITH_TIMES for f in formats)

    def __len__(self):
        return self.reader.n_frames

    def _read(self, i):
        try:
            ts = self.reader[i]
        except Exception as err:  # noqa: BLE001
            raise InputError(f"{self.path}: cannot read frame {i} ({err})") from None
        # MDAnalysis forces are kJ mol^-1 Angstrom^-1 = 10 kJ mol^-1 nm^-1
        forces = np.array(ts.forces, dtype=np.float64) / ANGSTROM if ts.has_forces else None
        return Frame(int(ts.data.get("step", ts.frame)), float(ts.time) if self.has_times else float("nan"),
                     np.array(ts.positions, dtype=np.float64) * ANGSTROM,
                     box_from_dimensions(ts.dimensions, self.path, i), forces)

    def close(self):
        self.reader.close()
