"""The jobs: whole trajectories of Jacobians, as library functions the command line calls.

* :func:`compute_trajectory` (``mdjac compute``): the force Jacobian of every selected frame of a
  trajectory file into an H5MD output, resumable. Every check on the input runs before the
  output is touched.
* :func:`run_md` (``mdjac run``): a MindSPONGE MD run of a catalogue system with the Jacobian every
  k steps (:class:`mdjac.sponge.ForceJacobianCallback`), then a finite-difference spot check.
"""
import os
import signal
import sys
import threading
import time

import numpy as np

from . import numerical
from .catalogue import resolve_system
from .errors import InputError
from .io import open_trajectory, open_writer


# --------------------------------------------------------------------------------------------
# checks shared by the jobs
# --------------------------------------------------------------------------------------------

def check_output(path, resume, overwrite, resumable=True):
    """Refuse an output that exists (without resume/overwrite) or cannot be written.
    ``resumable``: whether the command has --resume (the message offers only what exists)."""
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


def frame_box(box, system):
    """The box for the potential: the frame's own ``box`` (NPT) or else the system's; None if
    the system is not periodic. (3,) nm."""
    if system.box is None:
        return None
    return np.asarray(system.box if box is None else box, dtype=np.float64)


def check_frames(frames, system):
    """Read every selected frame once and refuse the run if any has NaN/inf positions, a bad box
    or a box too small for the potential's cutoffs: nothing is written for a trajectory that
    would fail half-way."""
    for i in range(len(frames)):
        positions, box = frames.coordinates(i)
        if not np.all(np.isfinite(positions)):
            raise InputError(f"{frames.path}: frame {frames.indices[i]} has NaN or infinite positions; "
                             f"select frames before it with --stop {frames.indices[i]}")
        box = frame_box(box, system)
        if box is not None and not (box.shape == (3,) and np.all(np.isfinite(box)) and np.all(box > 0)):
            raise InputError(f"{frames.path}: frame {frames.indices[i]} has an invalid box {box}")
        try:
            system.potential.configuration(positions, box)     # the box against every cutoff
        except InputError as err:
            raise InputError(f"{frames.path}: frame {frames.indices[i]}: {err}") from None


def check_resumable(path, metadata):
    """Refuse to resume an output made from another input, system, selection or precision."""
    from .io.h5md_reader import read_metadata
    stored = read_metadata(path)
    for key, value in metadata.items():
        if stored.get(key) != value:
            raise InputError(f"{path} was made with {key}={stored.get(key)!r}, not {value!r}; "
                             "resume with the same arguments or use --overwrite")


class DeferredInterrupt:
    """Ctrl-C (SIGINT) held back until a safe point between frames.

    A SIGINT that lands inside MindSpore ends the process through MindSpore's own C handler; one
    that lands inside h5py raises KeyboardInterrupt in the middle of a write, which HDF5 can
    swallow, leaving frames of zeros that the file calls complete. So while the guard is active,
    SIGINT is blocked in this thread and in every thread started after (MindSpore's and tqdm's
    inherit the mask), and :meth:`check`, called where stopping is safe, installs Python's handler,
    lets a pending SIGINT through and raises KeyboardInterrupt there. A Ctrl-C is then answered
    within one frame. Outside the main thread (where signals cannot be handled) it does nothing.
    """

    def __init__(self):
        self.active = threading.current_thread() is threading.main_thread()
        self.requested = False

    def _flag(self, signum, frame):
        self.requested = True

    def __enter__(self):
        if self.active:
            self._handler = signal.getsignal(signal.SIGINT)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def check(self):
        """Raise KeyboardInterrupt if Ctrl-C was pressed since the last check."""
        if self.active:
            signal.signal(signal.SIGINT, self._flag)       # MindSpore may have put its own in place
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})   # a pending SIGINT lands here
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.active:
            signal.signal(signal.SIGINT, self._handler if self._handler is not None else signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def same_file(a, b):
    """True if paths ``a`` and ``b`` name the same file (through links too), existing or not."""
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_stored_frames(output, frames, done, dtype):
    """Refuse to resume when the ``done`` frames stored in ``output`` are not the input's first
    ``done`` selected frames (the input changed at the same path): positions must be equal."""
    with open_trajectory(output) as stored:
        for i in range(done):
            want = np.asarray(frames.coordinates(i)[0], dtype=dtype)
            if not np.array_equal(stored.coordinates(i)[0], want):
                raise InputError(f"{output}: stored frame {i} differs from frame {frames.indices[i]} of the input "
                                 f"(the input changed since); start again with --overwrite")


# --------------------------------------------------------------------------------------------
# mdjac compute
# --------------------------------------------------------------------------------------------

def compute_trajectory(trajectory, system, output, start=None, stop=None, step=None, resume=False,
                       overwrite=False, dtype=np.float32, batch=8, compression=None, triangle="full",
                       strategy="replicate", progress=True, client=None, shard_frames=None):
    """The force Jacobian (and forces) of every selected frame of ``trajectory`` into ``output``.

    trajectory : path of any file :func:`mdjac.io.open_trajectory` reads.
    system : catalogue name, system file, or a loaded System (its potential, masses and box).
    output : H5MD path. start, stop, step : the frames, with Python slice semantics (step > 0).
    resume : continue an interrupted output (checked to be of the same input and arguments);
    overwrite : replace an existing output. dtype : float32 or float64, compute and storage.
    batch : frames per journaled write. compression : the Jacobian blocks' filter, 'none', 'lzf' or
    'gzip' (None: the writer's default, :data:`mdjac.io.h5md_writer.DEFAULT_COMPRESSION`). triangle : 'full' or 'upper'.
    strategy : see :meth:`mdjac.Potential.force_jacobian`. progress : a progress bar on stderr.
    client : None computes here; a ``distributed.Client``, or a callable returning a context
    manager that yields one (:func:`mdjac.cluster.local_client`, :func:`mdjac.cluster.scheduler_client`;
    called only after every check passed), spreads the frames over its workers
    (:func:`mdjac.cluster.compute_on_cluster`): same checks, same :func:`frame_forces_and_jacobian`,
    same output file (opened by :func:`_open_output` once the first shard is done).
    shard_frames : frames per task on a cluster (default: about four tasks per worker).

    Nothing is created, truncated or replaced before every check has passed and the first frame
    has been computed; an existing output is replaced atomically. Ctrl-C stops at the next frame
    with every computed frame written (:class:`DeferredInterrupt`), raising KeyboardInterrupt.

    Returns a dict: ``output``, ``computed`` (frames computed now), ``kept`` (frames found
    complete from before), ``seconds`` (wall time of the computed frames), ``first_seconds``
    (of the first of them, with compilation; None if none was computed).
    """
    with DeferredInterrupt() as interrupt:
        plan = _plan_compute(trajectory, system, output, start, stop, step, resume, overwrite, dtype, batch, triangle)
        interrupt.check()
        if client is not None:
            from .cluster import compute_on_cluster
            with plan["traj"]:
                return compute_on_cluster(
                    client, plan, output, lambda: _open_output(plan, output, resume, overwrite, batch, compression, triangle),
                    frame_forces_and_jacobian, strategy=strategy, batch=batch, compression=compression, triangle=triangle,
                    resume=resume, shard_frames=shard_frames, progress=progress, interrupt=interrupt)
        return _run_compute(plan, output, resume, overwrite, batch, compression, triangle, strategy, progress, interrupt)


def _plan_compute(trajectory, system, output, start, stop, step, resume, overwrite, dtype, batch, triangle):
    """Every check of :func:`compute_trajectory` that needs no computation; the frames to do."""
    if int(batch) < 1:
        raise InputError("--batch must be at least 1")
    if step is not None and int(step) < 1:
        raise InputError(f"--step {step}: give a positive step (frames are computed in the order of the input)")
    check_output(output, resume, overwrite)
    if same_file(output, trajectory):
        raise InputError("the output would replace the input trajectory; give another -o")
    label = os.fspath(system) if isinstance(system, (str, os.PathLike)) else system.name
    system = resolve_system(system)
    if system.potential is None:
        raise InputError(f"system {system.name!r} has no potential (it is not a molecule); pick another")
    potential, dtype = system.potential, np.dtype(dtype)
    traj = open_trajectory(trajectory, n_atoms=len(system.positions))
    try:
        frames = traj[start:stop:step]
        if not len(frames):
            raise InputError(f"{trajectory}: the selection start={start} stop={stop} "
                             f"step={step} holds no frame of its {len(traj)}")
        check_frames(frames, system)
        metadata = dict(source=os.path.abspath(trajectory), system=label,
                        frames=[frames.indices.start, frames.indices.stop, frames.indices.step],
                        float64=dtype == np.float64, upper=triangle == "upper")
        done = 0
        if resume and os.path.exists(output):
            check_resumable(output, metadata)
            done = _stored_frames(output)
            if done > len(frames):
                raise InputError(f"{output} holds {done} frames, more than the {len(frames)} selected")
            check_stored_frames(output, frames, done, dtype)
    except BaseException:
        traj.close()
        raise
    return dict(traj=traj, frames=frames, system=system, potential=potential, dtype=dtype, metadata=metadata,
                done=done)


def _stored_frames(output):
    """Complete frames of an existing output (0 for a file that is not one mdjac can resume)."""
    from .io.h5md_reader import describe
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
    """(positions (N, 3) in ``dtype``, box (3,) nm or None, forces (N, 3), ForceJacobian) of one frame."""
    x = np.asarray(frame.positions, dtype=dtype)
    box = frame_box(frame.box, system)
    return x, box, potential.forces(x, box=box), potential.force_jacobian(x, box=box, strategy=strategy)


def _open_output(plan, output, resume, overwrite, batch, compression, triangle):
    """The output's writer (created, replaced or resumed), checked to hold the ``done`` frames the
    plan found and to end at the selection's frame before them."""
    frames, system, dtype, done = (plan[k] for k in ("frames", "system", "dtype", "done"))
    writer = open_writer(output, len(system.positions), names=system.names, masses=system.masses,
                         periodic=system.box is not None, dtype=dtype, mode="a" if resume else "w",
                         overwrite=overwrite, batch=batch, metadata=plan["metadata"],
                         compression=compression, triangle=triangle, times=frames.has_times)
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


def _run_compute(plan, output, resume, overwrite, batch, compression, triangle, strategy, progress, interrupt):
    from tqdm import tqdm

    frames, system, potential, dtype, done = (plan[k] for k in ("frames", "system", "potential", "dtype", "done"))
    with plan["traj"]:
        first, first_seconds, started = None, None, time.perf_counter()
        if done < len(frames):      # computed before the output is touched: a failing potential destroys nothing
            first = frame_forces_and_jacobian(potential, frames[done], system, dtype, strategy)
            first_seconds = time.perf_counter() - started
            if progress:
                print(expected_size(len(frames) - done, len(system.positions), first[3].nnz_blocks, dtype,
                                    "mdjac compute"), file=sys.stderr)
            interrupt.check()
        if not frames.has_times and progress:
            print(f"mdjac compute: {frames.path} records no times; the output stores steps only "
                  "(no time dataset, as H5MD 1.1 allows)", file=sys.stderr)
        with _open_output(plan, output, resume, overwrite, batch, compression, triangle) as writer:
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
    return dict(output=os.fspath(output), computed=len(frames) - done, kept=done,
                seconds=time.perf_counter() - started, first_seconds=first_seconds)


# --------------------------------------------------------------------------------------------
# mdjac run
# --------------------------------------------------------------------------------------------

def run_md(system="alanine-dipeptide", steps=100, every=10, output="mdjac-md.h5md", temperature=None, time_step=None,
           dtype=np.float32, strategy="replicate", overwrite=False, writer=None, check=True, progress=False):
    """The main job: a short MindSPONGE MD run of a catalogue system, Jacobians every ``every`` steps into H5MD.

    system: catalogue name, path or :class:`mdjac.catalogue.System` (engine "mindsponge").
    steps: MD steps; every: steps between Jacobians; output: H5MD path (refused if it exists
    unless ``overwrite``); temperature (K) and time_step (ps) default to the system's 'md' settings.
    writer: a writer object instead of the H5MD file (then ``output`` is ignored). check: the
    finite-difference spot check of the first frame (float64 central differences of the forces).
    progress: a progress bar over the MD steps on stderr, and the expected output size.

    Returns a summary dict: frames, steps of the frames, atoms, blocks per frame, seconds per
    Jacobian (mean after the first frame; the first with compilation), seconds per force
    evaluation of the adapted potential, MindSPONGE's wall seconds per MD step (its compilation
    included, the callback's time excluded), the callback's seconds per frame (Jacobian and
    buffering; mean after the first frame, and every frame's in ``callback_seconds``), the seconds
    per frame of writing what was still buffered at the end, and the spot check's columns and max
    relative error.
    """
    from .sponge.engine import graph_mode

    sys_ = resolve_system(system)
    if not sys_.is_mindsponge:
        raise InputError(f"system {sys_.name!r} is not a MindSPONGE system: run_md needs one of engine 'mindsponge'")
    if int(steps) < 1 or int(every) < 1:
        raise InputError(f"steps={steps}, every={every}: both must be positive")
    if writer is None:
        check_output(output, False, overwrite, resumable=False)
    md = sys_.md_settings
    temperature = float(md.get("temperature", 300.0) if temperature is None else temperature)
    time_step = float(md.get("time_step", 1e-3) if time_step is None else time_step)
    with DeferredInterrupt() as interrupt, graph_mode():
        return _run_md(sys_, int(steps), int(every), output, temperature, time_step, dtype, strategy, overwrite,
                       writer, check, interrupt, progress)


def _run_md(sys_, steps, every, output, temperature, time_step, dtype, strategy, overwrite, writer, check,
            interrupt, progress):
    from .sponge.callback import ForceJacobianCallback, StepProgress
    from .sponge.engine import sponge_md

    molecule, forcefield = sys_.sponge(fresh=True)
    potential = sys_.potential        # = adapt(molecule, forcefield); shared, so compiled once per System
    engine = sponge_md(molecule, forcefield, sys_.cutoff, temperature, time_step)
    own_writer = writer is None
    if own_writer:
        writer = open_writer(output, potential.n_atoms, names=sys_.names, masses=sys_.masses,
                             periodic=sys_.box is not None, dtype=dtype, overwrite=overwrite,
                             metadata={"system": sys_.name, "steps": steps, "every": every})
    from tqdm import tqdm
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
            writer.close()          # writes the frames still buffered
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
        "write_seconds_per_frame": (done - closing) / max(1, len(callback.steps)),
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
    with open_trajectory(path) as traj:
        frame = traj[0]
    x = np.asarray(frame.positions, dtype=np.float64)
    columns = numerical.spot_columns(potential, x, frame.box, count)
    reference = numerical.central_difference_columns(lambda y: potential.forces(y, box=frame.box), x, columns)
    return {"fd_columns": columns, "fd_max_relative_error": numerical.column_relative_error(frame.jacobian, reference, columns)}
