"""``mdjac compute``: the force Jacobian of every selected frame of a trajectory, into an output file.

:func:`compute_trajectory` checks everything first (:func:`plan_compute`: nothing is touched
before), then runs the plan here (:func:`run_plan`) or, given a Dask client, on its workers
(:func:`mdjac.cluster.compute_on_cluster`), with the same per-frame function
(:func:`frame_forces_and_jacobian`) and the same output writer (:func:`open_output`).
"""
import os
import sys
import time

import numpy as np

from ..catalogue import resolve_system
from ..errors import InputError
from ..io import describe, open_index, open_trajectory, open_writer
from .checks import (check_frames, check_output, check_storable, check_resumable, check_stored_frames, frame_box,
                     same_file)
from .interrupts import DeferredInterrupt
from .records import ComputeOptions, ComputePlan


def compute_trajectory(trajectory, system, output, start=None, stop=None, step=None, resume=False,
                       overwrite=False, dtype=np.float32, batch=8, compression=None, triangle="full",
                       strategy="replicate", progress=True, client=None, shard_frames=None, system_options=None):
    """The force Jacobian (and forces) of every selected frame of ``trajectory`` into ``output``.

    Parameters
    ----------
    trajectory : path of any file :func:`mdjac.io.open_trajectory` reads.
    system : catalogue name, system file, or a loaded System (its potential, masses and box).
    output : path of the output (its writer is chosen by :func:`mdjac.io.open_writer`).
    start, stop, step : int or None, the frames, with Python slice semantics (step > 0).
    resume : bool, continue an interrupted output (checked to be of the same input and arguments).
    overwrite : bool, replace an existing output.
    dtype : float32 or float64, the precision of the computation and of the file.
    batch : int, frames per journaled write.
    compression : the Jacobian blocks' filter, 'none', 'lzf' or 'gzip' (None: the writer's
        default, :data:`mdjac.io.h5md_writer.DEFAULT_COMPRESSION`).
    triangle : 'full' or 'upper'.
    strategy : see :meth:`mdjac.Potential.force_jacobian`.
    progress : bool, a progress bar on stderr.
    client : None computes here; a ``distributed.Client``, or a callable returning a context
        manager that yields one (:func:`mdjac.cluster.local_client`,
        :func:`mdjac.cluster.scheduler_client`; called only after every check passed), spreads
        the frames over its workers (:func:`mdjac.cluster.compute_on_cluster`).
    shard_frames : int or None, frames per task on a cluster (default: about four tasks per worker).
    system_options : dict or None, :func:`mdjac.load_system`'s loader options for a force-field file
        (``nonbonded``, ``cutoff``, ...); recorded in the output with the electrostatics chosen.

    Returns
    -------
    dict : ``output``, ``computed`` (frames computed now), ``kept`` (frames found complete from
    before), ``seconds`` (wall time of the computed frames), ``first_seconds`` (of the first of
    them, with compilation; None if none was computed); on a cluster also what
    :func:`mdjac.cluster.compute_on_cluster` adds.

    Notes
    -----
    Nothing is created, truncated or replaced before every check has passed and the first frame
    has been computed; an existing output is replaced atomically. Ctrl-C stops at the next frame
    with every computed frame written (:class:`mdjac.jobs.interrupts.DeferredInterrupt`),
    raising KeyboardInterrupt.
    """
    options = ComputeOptions(dtype=np.dtype(dtype), strategy=strategy, batch=int(batch), compression=compression,
                             triangle=triangle, resume=bool(resume), overwrite=bool(overwrite),
                             progress=bool(progress))
    with DeferredInterrupt() as interrupt:
        plan = plan_compute(trajectory, system, output, (start, stop, step), options, system_options)
        interrupt.check()
        with plan.trajectory:
            if client is not None:
                from ..cluster import compute_on_cluster
                return compute_on_cluster(client, plan, options,
                                          lambda **kw: open_output(plan, options, opener=open_index, **kw),
                                          frame_forces_and_jacobian, shard_frames=shard_frames, interrupt=interrupt)
            return run_plan(plan, options, interrupt)


def plan_compute(trajectory, system, output, selection, options, system_options=None):
    """Every check of :func:`compute_trajectory` that needs no computation, as a :class:`ComputePlan`.

    selection : (start, stop, step) of the frames. options : :class:`ComputeOptions`.
    system_options : dict or None, the loader options of :func:`mdjac.load_system`.
    The plan holds the input open; the caller closes it (``with plan.trajectory``).
    """
    start, stop, step = selection
    if options.batch < 1:
        raise InputError("--batch must be at least 1")
    if step is not None and int(step) < 1:
        raise InputError(f"--step {step}: give a positive step (frames are computed in the order of the input)")
    check_output(output, options.resume, options.overwrite)
    if same_file(output, trajectory):
        raise InputError("the output would replace the input trajectory; give another -o")
    label = os.fspath(system) if isinstance(system, (str, os.PathLike)) else system.name
    system = resolve_system(system, **(system_options or {}))
    if system.n_atoms is None:
        raise InputError(f"system {system.name!r} has no potential (it is not a molecule); pick another")
    traj = open_trajectory(trajectory, n_atoms=system.n_atoms)
    try:
        frames = traj[start:stop:step]
        if not len(frames):
            raise InputError(f"{trajectory}: the selection start={start} stop={stop} "
                             f"step={step} holds no frame of its {len(traj)}")
        check_storable(system.potential)
        check_frames(frames, system)
        metadata = dict(source=os.path.abspath(trajectory), system=label,
                        frames=[frames.indices.start, frames.indices.stop, frames.indices.step],
                        float64=options.dtype == np.float64, upper=options.triangle == "upper",
                        **system_record(system))
        done = 0
        if options.resume and os.path.exists(output):
            check_resumable(output, metadata)
            done = _stored_frames(output)
            if done > len(frames):
                raise InputError(f"{output} holds {done} frames, more than the {len(frames)} selected")
            check_stored_frames(output, frames, done, options.dtype)
    except BaseException:
        traj.close()
        raise
    return ComputePlan(trajectory=traj, frames=frames, system=system, output=os.fspath(output), metadata=metadata,
                       done=done)


def system_record(system):
    """What an output records of a force-field system beyond its name: the loader options it was
    loaded with (``system_options``, to load it again alike) and its ``electrostatics``; {} for others."""
    electrostatics = getattr(system, "electrostatics", None)
    if electrostatics is None:
        return {}
    return {"system_options": system.load_options, "electrostatics": electrostatics}


def _stored_frames(output):
    """Complete frames of an existing output (0 for a file that is not one mdjac can resume)."""
    try:
        return describe(output)["frames"]
    except InputError:
        return 0


def expected_size(n_frames, n_atoms, nnz_blocks, dtype, who):
    """One line: the bytes a run will write, from its first frame (uncompressed: an upper bound)."""
    per_frame = nnz_blocks * (9 * np.dtype(dtype).itemsize + 4) + 2 * 3 * n_atoms * np.dtype(dtype).itemsize
    total = n_frames * per_frame
    unit, scale = ("GB", 1e9) if total >= 1e9 else ("MB", 1e6)
    return (f"{who}: {n_frames} frames of {nnz_blocks} Jacobian blocks: up to {total / scale:.1f} {unit} "
            f"({per_frame / 1e6:.2f} MB per frame before compression)")


def frame_forces_and_jacobian(potential, frame, system, dtype, strategy):
    """One frame's forces and force Jacobian.

    Returns
    -------
    (positions (N, 3) nm in ``dtype``, box (3,) nm or None, forces (N, 3) kJ mol^-1 nm^-1,
    ForceJacobian).
    """
    x = np.asarray(frame.positions, dtype=dtype)
    box = frame_box(frame.box, system)
    return x, box, potential.forces(x, box=box), potential.force_jacobian(x, box=box, strategy=strategy)


def open_output(plan, options, opener=open_writer, **extra):
    """The output's writer (created, replaced or resumed), checked to hold the ``done`` frames the
    plan found and to end at the selection's frame before them. ``opener``: :func:`mdjac.io.open_writer`,
    or :func:`mdjac.io.open_index` for a distributed run (``extra``: its own options)."""
    output, frames, done = plan.output, plan.frames, plan.done
    writer = opener(output, len(plan.system.positions), mode="a" if options.resume else "w",
                    overwrite=options.overwrite, **plan.writer_layout, **options.writer_options, **extra)
    try:
        if writer.n_frames != done:
            raise InputError(f"{output} changed while mdjac was starting (it holds {writer.n_frames} "
                             f"frames, not {done}); is another program writing it?")
        if done and frames[done - 1].step != writer.last_step:
            raise InputError(f"{output} ends at step {writer.last_step} but frame {done - 1} of the "
                             f"selection is step {frames[done - 1].step}; use --overwrite")
    except BaseException:
        writer.close()
        raise
    return writer


def run_plan(plan, options, interrupt):
    """The frames of ``plan`` the output lacks, computed here and written; the result dict of
    :func:`compute_trajectory`. interrupt : the caller's DeferredInterrupt."""
    from tqdm import tqdm

    frames, system, potential, done = plan.frames, plan.system, plan.potential, plan.done
    dtype, strategy, progress = options.dtype, options.strategy, options.progress
    first, first_seconds, started = None, None, time.perf_counter()
    if done < len(frames):      # computed before the output is touched: a failing potential destroys nothing
        first = frame_forces_and_jacobian(potential, frames[done], system, dtype, strategy)
        first_seconds = time.perf_counter() - started
        if progress:
            if system.description:
                print(f"mdjac compute: system {system.name}: {system.description}", file=sys.stderr)
            print(expected_size(len(frames) - done, len(system.positions), first[3].nnz_blocks, dtype,
                                "mdjac compute"), file=sys.stderr)
        interrupt.check()
    if not frames.has_times and progress:
        print(f"mdjac compute: {frames.path} records no times; the output stores steps only "
              "(no time dataset, as H5MD 1.1 allows)", file=sys.stderr)
    with open_output(plan, options) as writer:
        bar = tqdm(total=len(frames), initial=done, unit="frame", desc="jacobians", file=sys.stderr,
                   disable=not progress, dynamic_ncols=True, smoothing=0.1)
        with bar:
            for i in range(done, len(frames)):
                frame = frames[i]
                x, box, forces, jacobian = first if i == done else \
                    frame_forces_and_jacobian(potential, frame, system, dtype, strategy)
                writer.append(frame.step, frame.time, x, box, forces, jacobian)
                bar.update()
                interrupt.check()
    return dict(output=plan.output, computed=len(frames) - done, kept=done,
                seconds=time.perf_counter() - started, first_seconds=first_seconds)
