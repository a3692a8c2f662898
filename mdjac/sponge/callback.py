"""``ForceJacobianCallback``: the force Jacobian of every k-th step of a MindSPONGE MD run.

The Jacobian is computed through the adapted potential (:func:`mdjac.sponge.adapt`; compiled once:
the kernel caches its compiled functions and pads instance counts to powers of two) and each frame
is handed to a writer (any object with the writer protocol of :mod:`mdjac.io`).
"""
import time

import numpy as np
from mindspore.train.callback import Callback

from ..errors import InputError
from .adapter import _first_walker


class ForceJacobianCallback(Callback):
    """MindSPONGE callback: the force Jacobian of every ``every``-th step, handed to a writer.

    potential: the mdjac Potential of the simulated system (:func:`adapt`); writer: any object with
    ``append(step, time, positions, box, forces, jacobian)`` (:func:`mdjac.io.open_writer`);
    every: steps between frames (step 0 included); atoms: None or the atoms of a partial Jacobian;
    strategy: see :meth:`mdjac.Potential.force_jacobian`; dtype: precision of the Jacobian
    (float32, MindSPONGE's own, or float64); after_frame: None or a function called after each
    frame is handed to the writer (``mdjac run`` stops there on Ctrl-C: mdjac.jobs.interrupts.DeferredInterrupt).

    In ``Sponge.run`` step s begins with the positions of step s; the step computes their forces
    and then moves the atoms. So the positions and box are taken at ``step_begin`` and the forces
    (MindSPONGE's, of those positions) at ``step_end``, where the Jacobian is computed and the frame
    written. The compiled functions are built on the first frame and reused (``seconds`` holds the
    wall time of every frame, the first one with compilation; ``jacobian_seconds`` its Jacobian
    and ``write_seconds`` its hand-off to the writer, which writes it there if it does not buffer).
    """

    def __init__(self, potential, writer, every=1, atoms=None, strategy="replicate", dtype=np.float32,
                 after_frame=None):
        super().__init__()
        every = int(every)
        if every < 1:
            raise InputError(f"every={every}: give a positive number of steps between Jacobians")
        if potential is None or not hasattr(potential, "force_jacobian"):
            raise InputError("ForceJacobianCallback needs an mdjac Potential: use mdjac.sponge.adapt(molecule, forcefield)")
        if not callable(getattr(writer, "append", None)):
            raise InputError("the writer has no append(step, time, positions, box, forces, jacobian) method")
        self.potential, self.writer, self.every = potential, writer, every
        self.atoms, self.strategy, self.dtype = atoms, strategy, np.dtype(dtype)
        self.steps, self.seconds, self.jacobian_seconds, self.nnz_blocks = [], [], [], []
        self.write_seconds = []
        self.after_frame = after_frame
        self._pending = None

    def step_begin(self, run_context):
        cb = run_context.original_args()
        step = int(cb.cur_step)
        if step % self.every:
            self._pending = None
            return
        positions = _first_walker(cb.coordinate, self.dtype)
        box = None if cb.pbc_box is None else _first_walker(cb.pbc_box, np.float64)
        self._pending = (step, float(cb.cur_time), positions, box)

    def step_end(self, run_context):
        if self._pending is None:
            return
        start = time.perf_counter()
        step, t, positions, box = self._pending
        self._pending = None
        forces = _first_walker(run_context.original_args().force, self.dtype)
        jac = self.potential.force_jacobian(positions, atoms=self.atoms, strategy=self.strategy, box=box)
        handed = time.perf_counter()
        self.jacobian_seconds.append(handed - start)
        self.writer.append(step, t, positions, box, forces, jac)
        done = time.perf_counter()
        self.steps.append(step)
        self.nnz_blocks.append(jac.nnz_blocks)
        self.write_seconds.append(done - handed)
        self.seconds.append(done - start)
        if self.after_frame is not None:
            self.after_frame()


class StepProgress(Callback):
    """MindSPONGE callback: advance a tqdm bar by one at the end of every MD step."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def step_end(self, run_context):
        self.bar.update()
