"""The named records of ``mdjac compute``: its options and its plan, frozen once made.

:func:`mdjac.jobs.compute_trajectory` turns its arguments into a :class:`ComputeOptions`, checks
everything that needs no computation and records the outcome as a :class:`ComputePlan`; the
serial loop (:mod:`mdjac.jobs.compute`) and the cluster (:mod:`mdjac.cluster`) both take the two.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..space import is_triclinic


@dataclass(frozen=True)
class ComputeOptions:
    """How the frames are computed and written.

    Attributes
    ----------
    dtype : np.dtype, float32 or float64: the precision of the computation and of the file.
    strategy : str, a strategy of :meth:`mdjac.Potential.force_jacobian`.
    batch : int, frames per journaled write.
    compression : str or None, the Jacobian blocks' filter ('none', 'lzf', 'gzip'; None: the writer's default).
    triangle : str, 'full' or 'upper' (the blocks J_ij with j >= i only).
    resume : bool, continue an interrupted output.  overwrite : bool, replace an existing output.
    progress : bool, a progress bar and the expected size on stderr.
    """
    dtype: np.dtype = np.dtype(np.float32)
    strategy: str = "replicate"
    batch: int = 8
    compression: Optional[str] = None
    triangle: str = "full"
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    @property
    def writer_options(self):
        """The keywords these options give :func:`mdjac.io.open_writer`."""
        return dict(dtype=self.dtype, batch=self.batch, compression=self.compression, triangle=self.triangle)


@dataclass(frozen=True)
class ComputePlan:
    """A checked ``mdjac compute`` run: what it reads, what it writes, where it starts.

    Attributes
    ----------
    trajectory : FrameSequence, the open input (closed by whoever runs the plan).
    frames : FrameSequence, the selected frames of it (``frames.indices``: their range).
    system : :class:`mdjac.catalogue.System`, with its potential.
    output : str, the output path.
    metadata : dict, what the output records of the run (and a resume must match).
    done : int, the selected frames the output already holds (0 unless resuming).
    """
    trajectory: object
    frames: object
    system: object
    output: str
    metadata: dict
    done: int

    @property
    def potential(self):
        return self.system.potential

    @property
    def writer_layout(self):
        """The keywords of :func:`mdjac.io.open_writer` that the system and the input fix."""
        return writer_layout(self.system, self.metadata, self.frames.has_times)


def writer_layout(system, metadata, times):
    """The keywords of :func:`mdjac.io.open_writer` that a run's system and input fix, the same for
    its output and every shard of it.

    Parameters
    ----------
    system : :class:`mdjac.catalogue.System`.  metadata : dict, what the files record of the run.
    times : bool, whether the input records times.
    """
    return dict(names=system.names, masses=system.masses, periodic=system.box is not None, triclinic=is_triclinic(system.box),
                jacobian_atoms=system.jacobian_atoms, metadata=metadata, times=times)
