"""The jobs: whole trajectories of Jacobians, as library functions the command line calls.

* :func:`compute_trajectory` (``mdjac compute``, :mod:`.compute`): the force Jacobian of every
  selected frame of a trajectory file into an output, resumable, here or on a Dask cluster
  (:mod:`mdjac.cluster`). Every check on the input (:mod:`.checks`) runs before the output is
  touched; its options and plan are named records (:mod:`.records`).
* :func:`run_md` (``mdjac run``, :mod:`.md`): a MindSPONGE MD run of a catalogue system with the
  Jacobian every k steps, then a finite-difference spot check; OpenMM's MD for a force-field file
  (:mod:`.openmm_md`).
* :func:`modes_text` (``mdjac modes``, :mod:`.modes`): the normal modes of a stored frame or of a
  minimised system.
* :mod:`.interrupts`: Ctrl-C, taken only where stopping is safe.

The names are imported on first use: the command line imports :mod:`.interrupts` before it
blocks Ctrl-C, and nothing heavier may load before that.
"""
from ..lazy import lazy_getattr

#: Public names -> the module of this package that defines them.
_PUBLIC = {
    "compute_trajectory": "compute", "frame_forces_and_jacobian": "compute", "expected_size": "compute",
    "run_md": "md",
    "modes_text": "modes",
    "check_output": "checks", "check_frames": "checks", "frame_box": "checks",
    "ComputeOptions": "records", "ComputePlan": "records",
    "DeferredInterrupt": "interrupts",
}
__all__ = sorted(_PUBLIC)

__getattr__ = lazy_getattr(__name__, _PUBLIC)
