"""Frames of a trajectory and lazy sequences of them: what every reader returns.

A :class:`Frame` is one saved configuration with what was stored beside it (forces, Jacobian),
in mdjac's units. A :class:`FrameSequence` is a file's frames, read only when asked for; a reader
for a new format subclasses it and implements ``__len__`` and ``_read(i)``.
"""
import collections.abc
import operator
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One frame of a trajectory, in mdjac's units.

    step : int, MD step.  time : float, ps.
    positions : (N, 3) nm.  box : (3,) orthorhombic edges in nm, (3, 3) triclinic box vectors (rows, nm), or None (not periodic).
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
    #: False when the file records no physical times (each Frame.time is then NaN).
    has_times = True

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
        self.n_atoms, self.path, self.has_times = parent.n_atoms, parent.path, parent.has_times

    def __len__(self):
        return len(self.indices)

    def _read(self, i):
        return self.parent._read(self.indices[i])

    def coordinates(self, index):
        return self.parent.coordinates(self.indices[index])

