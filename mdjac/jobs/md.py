"""``mdjac run``: a MindSPONGE MD run of a catalogue system with the force Jacobian every k steps.

The frames go through :class:`mdjac.sponge.ForceJacobianCallback` into an output writer
(:func:`mdjac.io.open_writer`); a finite-difference spot check of the first stored frame follows.
A force-field file (engine "openmm") runs OpenMM's MD instead (:mod:`.openmm_md`).
"""
import sys
import time

import numpy as np

from ..catalogue import resolve_system
from ..errors import InputError
from ..io import open_trajectory, open_writer
from .checks import check_output, check_storable
from .compute import expected_size
from .interrupts import DeferredInterrupt


def run_md(system="alanine-dipeptide", steps=100, every=10, output="mdjac-md.h5md", temperature=None, time_step=None,
           dtype=np.float32, strategy="replicate", overwrite=False, writer=None, check=True, progress=False,
           system_options=None):
    """The main job: a short MindSPONGE MD run of a catalogue system, Jacobians every ``every`` steps into H5MD.

    Parameters
    ----------
    system : catalogue name, path or :class:`mdjac.catalogue.System` (engine "mindsponge"), or a
        force-field file (engine "openmm": OpenMM's Langevin MD on its CPU platform with
        :class:`mdjac.openmm.ForceJacobianReporter`, :func:`mdjac.jobs.openmm_md.run_openmm_md`; the
        time step defaults to its 0.5 fs, ``writer`` is not taken).
    steps : int, MD steps.  every : int, steps between Jacobians.
    output : path of the output, refused if it exists unless ``overwrite`` (checked before the
        system is built).
    temperature : K, and time_step : ps; default the system's 'md' settings.
    dtype : the stored precision.  strategy : see :meth:`mdjac.Potential.force_jacobian`.
    writer : a writer object instead of the output file (then ``output`` is ignored).
    check : bool, the finite-difference spot check of the first frame (float64 central
        differences of the forces).
    progress : bool, a progress bar over the MD steps on stderr, and the expected output size.
    system_options : dict or None, :func:`mdjac.load_system`'s loader options for a force-field file.

    Returns
    -------
    dict : a summary: frames, steps of the frames, atoms, blocks per frame, seconds per Jacobian
    (mean after the first frame; the first with compilation), seconds per force evaluation of
    the adapted potential, MindSPONGE's wall seconds per MD step (its compilation included, the
    callback's time excluded), the callback's seconds per frame (Jacobian and writing; mean
    after the first frame, and every frame's in ``callback_seconds``, its Jacobian's in
    ``jacobian_seconds``), the seconds per frame of writing (each frame as it comes, and the
    close at the end; a ``writer`` given that buffers writes at its close), and the spot check's
    columns and max relative error.
    """
    if int(steps) < 1 or int(every) < 1:
        raise InputError(f"steps={steps}, every={every}: both must be positive")
    if writer is None:
        check_output(output, False, overwrite, resumable=False)
    sys_ = resolve_system(system, **(system_options or {}))
    if sys_.engine == "openmm":
        check_storable(sys_.potential)
        if writer is not None:
            raise InputError("run_md on a force-field file writes its own output (OpenMM's reporter): give output=")
        return _run_openmm(sys_, int(steps), int(every), output, temperature, time_step, dtype, strategy, overwrite,
                           check, progress)
    if not sys_.is_mindsponge:
        raise InputError(f"system {sys_.name!r} has no MD engine (it is an engine-{sys_.engine!r} system): "
                         "mdjac run takes a MindSPONGE system of the catalogue or a force-field file "
                         "(prmtop, top, psf, System XML)")
    md = sys_.md_settings
    temperature = float(md.get("temperature", 300.0) if temperature is None else temperature)
    time_step = float(md.get("time_step", 1e-3) if time_step is None else time_step)
    from ..sponge.engine import graph_mode
    with DeferredInterrupt() as interrupt, graph_mode():
        return _run_md(sys_, int(steps), int(every), output, temperature, time_step, dtype, strategy, overwrite,
                       writer, check, interrupt, progress)


def _run_openmm(sys_, steps, every, output, temperature, time_step, dtype, strategy, overwrite, check, progress):
    """OpenMM's MD of a force-field system (:mod:`.openmm_md`), then the spot check."""
    from .openmm_md import run_openmm_md
    with DeferredInterrupt() as interrupt:
        summary = run_openmm_md(sys_, steps, every, output, 300.0 if temperature is None else float(temperature),
                                time_step, dtype, strategy, overwrite, interrupt, progress)
    if check:
        summary.update(_spot_check(sys_.potential, output))
    return summary


def _run_md(sys_, steps, every, output, temperature, time_step, dtype, strategy, overwrite, writer, check,
            interrupt, progress):
    from tqdm import tqdm

    from ..sponge.callback import ForceJacobianCallback, StepProgress
    from ..sponge.engine import sponge_md

    molecule, forcefield = sys_.sponge(fresh=True)
    potential = sys_.potential        # = adapt(molecule, forcefield); shared, so compiled once per System
    engine = sponge_md(molecule, forcefield, sys_.cutoff, temperature, time_step)
    own_writer = writer is None
    if own_writer:
        # one frame a batch: each frame reaches the file as it comes (nothing held in memory, no
        # large batch at the end; benchmarks/bench_md_path.py)
        writer = open_writer(output, potential.n_atoms, names=sys_.names, masses=sys_.masses,
                             periodic=sys_.box is not None, dtype=dtype, overwrite=overwrite, batch=1,
                             metadata={"system": sys_.name, "steps": steps, "every": every})
    n_frames = len(range(0, steps, every))
    bar = tqdm(total=steps, unit="step", desc="MD + jacobians", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)

    def after_frame():
        if len(callback.steps) == 1:
            bar.write(expected_size(n_frames, potential.n_atoms, callback.nnz_blocks[0], dtype, "mdjac run"))
        interrupt.check()

    callback = ForceJacobianCallback(potential, writer, every=every, strategy=strategy, dtype=dtype,
                                     after_frame=after_frame)
    start = time.perf_counter()
    try:
        with bar:
            engine.run(steps, callbacks=[callback, StepProgress(bar)])
    finally:
        closing = time.perf_counter()
        if own_writer:
            writer.close()          # writes what is still buffered (nothing, one frame a batch) and unlocks
        done = time.perf_counter()
    wall = closing - start
    summary = {
        "system": sys_.name, "output": None if not own_writer else str(output), "atoms": potential.n_atoms,
        "steps": steps, "every": every, "frames": len(callback.steps), "frame_steps": list(callback.steps),
        "blocks_per_frame": float(np.mean(callback.nnz_blocks)) if callback.nnz_blocks else 0.0,
        "first_jacobian_seconds": callback.jacobian_seconds[0] if callback.jacobian_seconds else float("nan"),
        "seconds_per_jacobian": float(np.mean(callback.jacobian_seconds[1:] or callback.jacobian_seconds or [np.nan])),
        "callback_seconds_per_frame": float(np.mean(callback.seconds[1:] or callback.seconds or [np.nan])),
        "callback_seconds": list(callback.seconds),
        "jacobian_seconds": list(callback.jacobian_seconds),
        "write_seconds_per_frame": (float(np.sum(callback.write_seconds)) + done - closing)
        / max(1, len(callback.steps)),
        "seconds_per_md_step": (wall - float(np.sum(callback.seconds))) / steps,
        "seconds_per_force": _seconds_per_force(potential, sys_.positions.astype(dtype)),
    }
    if check and own_writer:
        summary.update(_spot_check(potential, output))
    return summary


def _seconds_per_force(potential, positions, repeats=3):
    """Wall seconds of one energy-and-forces evaluation of the adapted potential (compiled)."""
    potential.energy_and_forces(positions)
    start = time.perf_counter()
    for _ in range(repeats):
        potential.energy_and_forces(positions)
    return (time.perf_counter() - start) / repeats


def _spot_check(potential, path, count=4):
    """The first stored frame's Jacobian against float64 central differences of the forces."""
    from .. import numerical     # numba: loaded only for the check
    with open_trajectory(path) as traj:
        frame = traj[0]
    x = np.asarray(frame.positions, dtype=np.float64)
    columns = numerical.spot_columns(potential, x, frame.box, count)
    reference = numerical.central_difference_columns(lambda y: potential.forces(y, box=frame.box), x, columns)
    return {"fd_columns": columns, "fd_max_relative_error": numerical.column_relative_error(frame.jacobian, reference, columns)}
