"""``mdjac compute`` on a Dask cluster: the shard plan, the worker task and the join (an index).

:func:`mdjac.jobs.compute_trajectory` runs every check (nothing is touched before) and, given a
client, hands the frames still missing to :func:`compute_on_cluster` with its own per-frame function
(:func:`mdjac.jobs.frame_forces_and_jacobian`), so both paths compute a frame the same way, and
with the function that opens the output's writer (created, replaced or resumed exactly as in a
serial run), called once the first shard is ready to be joined.

The plan. The F selected frames, of which the output already holds the first D, are split into
S contiguous blocks (shards) [a_k, b_k), D = a_0 < b_0 = a_1 < ... < b_{S-1} = F, about four per
worker unless ``shard_frames`` is given. The plan is stored as ``<output>.shards/plan.json``
(with the run's metadata, which a resume must match, and the run's id, which names its shard files)
before any task starts.

The task (:func:`compute_shard`, one per shard, on any worker, told what to do by a
:class:`ShardJob`). It opens the input trajectory itself (a shared file system: no frame travels
through the scheduler), computes frames a_k..b_k-1 and writes them with the output's writer
(:func:`mdjac.io.open_writer`) into ``<output>.shards/shard-<run>-<k>.h5md``: journaled and
resumable, so a task rerun after its worker died (Dask reruns it) continues after the frames its
shard already holds, once the lock of the attempt before is free (:class:`mdjac.errors.OutputLocked`);
a shard file it cannot read (damaged on disk) it starts again. It reports its frames to a
``distributed.Queue`` for the one progress bar (at most two messages a second, a few bytes each),
and returns its timings. Workers never wait for the client.

The join (:func:`join_shards`, on the client, in frame order while the other shards still run).
The output is an index of the shard files (:mod:`mdjac.io.h5md_index`: HDF5 virtual datasets), so
joining is metadata only: as soon as shards 0..k are complete (each one's task has reported its
end, or its file holds its frames with no writer on it, :func:`written_shard`: a worker starved of
CPU reports seconds late), each is checked (:func:`check_shard`:
it opens and holds its b_k - a_k frames; a damaged one is deleted and computed again, not joined)
and renamed to ``<output>.shards/part-<run>-<k>.h5md``, where the index, written once with every
shard of the plan (:meth:`mdjac.io.h5md_index.H5MDIndex.plan`), expects it; the join then appends
its offsets and its blocks' place to the index, at a cost that does not grow with the shards
joined before. The part files stay: they hold the output's frames (``mdjac consolidate`` copies
them into one file). A task lost with its scheduler
(restarted) is submitted again and continues its file, unless its shard was joined already (a
rerun task finds the part file and does nothing). A resume first joins what is finished,
then submits the rest; a shard file already holding b_k - a_k frames is not recomputed, a partial
one is continued; an ordinary output's frames become the index's first part. The output's datasets
equal a serial run's; the one attribute that differs is ``/parameters/mdjac`` ``distributed``
(JSON: workers, shards, scheduler), written only by this path (docs/h5md.md).

Threads: a worker computes one task at a time; MindSpore's CPU kernels use ``MDJAC_THREADS``
threads in it (its share of the cores, set by :func:`local_client`; unset: MindSpore's default).
"""
import contextlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from .catalogue import resolve_system
from .errors import InputError, OutputLocked
from .io import open_trajectory, open_writer
from .jobs.records import writer_layout
from .process_memory import keep_freed_memory

PLAN = "plan.json"
THREADS_VARIABLE = "MDJAC_THREADS"
#: Seconds to wait for a scheduler given by address.
CONNECT_TIMEOUT = 30.0
#: Seconds a rerun task waits for the lock of its shard (held by a worker that is still ending).
LOCK_WAIT = 120.0
#: Seconds between a task's progress messages.
PROGRESS_SECONDS = 0.5


# --------------------------------------------------------------------------------------------
# clusters
# --------------------------------------------------------------------------------------------

def thread_share(workers, cores=None):
    """Threads per worker process: its share of ``cores`` (default: the cores this process may
    use), at least 1."""
    cores = len(os.sched_getaffinity(0)) if cores is None else int(cores)
    return max(1, cores // max(1, int(workers)))


@contextlib.contextmanager
def local_client(workers, threads=None):
    """A ``distributed.Client`` on a LocalCluster of ``workers`` processes on this machine, each
    running one task at a time with ``threads`` threads (default :func:`thread_share`) for
    MindSpore's kernels and OpenMP/BLAS. The cluster is shut down on exit."""
    from distributed import Client, LocalCluster

    workers = check_workers(workers)
    threads = thread_share(workers) if threads is None else int(threads)
    env = {THREADS_VARIABLE: str(threads), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "GLOG_v": os.environ.get("GLOG_v", "3")}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, env=env,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        with Client(cluster) as client:
            yield client


@contextlib.contextmanager
def scheduler_client(address, timeout=None):
    """A ``distributed.Client`` connected to the running scheduler at ``address``
    (e.g. tcp://host:8786, started with ``dask scheduler``); refused in one line if unreachable."""
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT if timeout is None else timeout)
    except (OSError, TimeoutError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise InputError(f"cannot reach the Dask scheduler at {address} ({reason[:200]}); "
                         "start one with `dask scheduler` or check --scheduler") from None
    with client:
        yield client


def check_workers(workers):
    """``workers`` as an int, refusing fewer than one worker process."""
    if int(workers) < 1:
        raise InputError(f"--workers {workers}: give at least 1 worker")
    return int(workers)


def client_factory(workers=None, scheduler=None):
    """The ``client`` argument of :func:`mdjac.jobs.compute_trajectory` for ``--workers`` or
    ``--scheduler``: a callable opening :func:`local_client` or :func:`scheduler_client` (started
    only once every check of the run has passed), or None (serial) when neither is given."""
    import functools
    if workers is not None:
        return functools.partial(local_client, check_workers(workers))
    if scheduler is not None:
        return functools.partial(scheduler_client, scheduler)
    return None


def limit_threads(threads):
    """Set MindSpore's CPU kernel threads of this process to ``threads`` (once per process: MindSpore
    refuses a second setting). Returns the number set, or None if left at MindSpore's default."""
    if not threads:
        return None
    from mindspore._c_expression import RuntimeConf
    from mindspore.device_context.cpu.op_tuning import threads_num

    if not RuntimeConf.get_instance().is_op_threads_num_configured():
        threads_num(int(threads))
    return int(threads)


# --------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------

def shard_folder(output):
    """The folder of ``output``'s shard files: ``<output>.shards`` beside it."""
    return f"{os.path.abspath(output)}.shards"


def shard_path(folder, run, index):
    """Shard ``index``'s file of the run ``run`` (the plan's id) in ``folder``."""
    return os.path.join(folder, f"shard-{run}-{index:06d}.h5md")


def part_path(folder, run, index):
    """Where shard ``index``'s file goes when the output joins it (the index's planned part)."""
    return os.path.join(folder, f"part-{run}-{index:06d}.h5md")


def finished_path(folder, run, index):
    """Shard ``index``'s file: where its task writes it, or where a join that was killed before
    it counted the shard's frames had moved it already."""
    shard = shard_path(folder, run, index)
    part = part_path(folder, run, index)
    return part if os.path.exists(part) and not os.path.exists(shard) else shard


def base_path(folder, run):
    """Where a resumed run puts the frames an ordinary output held (the index's first part)."""
    return os.path.join(folder, f"base-{run}.h5md")


def plan_shards(first, total, workers, shard_frames=None):
    """Contiguous blocks [a, b) covering selection positions first..total-1: blocks of
    ``shard_frames`` frames, or else about four blocks per worker (for balance and small reruns),
    sizes differing by at most one. Returns a list of (a, b)."""
    remaining = total - first
    if remaining <= 0:
        return []
    if shard_frames is not None:
        if int(shard_frames) < 1:
            raise InputError("--shard-frames must be at least 1")
        count = -(-remaining // int(shard_frames))
    else:
        count = min(remaining, 4 * max(1, workers))
    edges = first + (np.arange(count + 1) * remaining) // count
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def load_or_make_plan(folder, metadata, first, total, workers, shard_frames, resume, keep=()):
    """The run id and shards of this run: those of ``folder``'s plan when resuming one made with
    the same metadata, else a new plan (the folder's other files are removed first, but for
    ``keep``: the parts of the output being replaced, which stay until it is). Returns
    (run, [(a, b), ...])."""
    path = os.path.join(folder, PLAN)
    wanted = json.loads(json.dumps(metadata))
    if resume and os.path.isfile(path):
        with open(path) as f:
            stored = json.load(f)
        if stored.get("metadata") != wanted:
            raise InputError(f"{folder} holds shards of another run; resume with the same arguments "
                             "or use --overwrite")
        return stored["run"], [tuple(s) for s in stored["shards"]]
    os.makedirs(folder, exist_ok=True)
    keep = {os.path.abspath(p) for p in keep}
    for name in os.listdir(folder):
        if os.path.join(folder, name) not in keep:
            target = os.path.join(folder, name)
            shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    run, shards = uuid.uuid4().hex[:8], plan_shards(first, total, workers, shard_frames)
    with open(path + ".tmp", "w") as f:
        json.dump({"metadata": wanted, "run": run, "shards": shards}, f)
    os.replace(path + ".tmp", path)
    return run, shards


def written_shard(path, frames, seen=None):
    """True if the shard file ``path`` holds its ``frames`` complete frames and no writer has it
    open (no lock file, no journal): it is final, whatever its task has still to report (a
    worker whose event loop is starved reports late). ``seen``: a dict remembering each file's
    (size, mtime) at its last look, so an unchanged file is not opened again."""
    if os.path.exists(f"{path}.lock") or os.path.exists(f"{path}.journal"):
        return False
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    key = (st.st_size, st.st_mtime_ns)
    if seen is not None:
        if seen.get(path) == key:
            return False
        seen[path] = key
    return stored_frames(path) == frames


def stored_frames(path):
    """Complete frames in a shard file (0 if there is none, or it cannot be read)."""
    if not os.path.exists(path):
        return 0
    try:
        with open_trajectory(path) as shard:
            return len(shard)
    except InputError:
        return 0


# --------------------------------------------------------------------------------------------
# the worker task
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardJob:
    """What every task of a run needs to know, sent to the workers once per task.

    Attributes
    ----------
    trajectory : str, absolute path of the input.
    selection : (start, stop, step) of the selected frames in it.
    system : str, the system's file (each worker loads it once).
    compute_frame : the per-frame function (:func:`mdjac.jobs.frame_forces_and_jacobian`).
    options : :class:`mdjac.jobs.records.ComputeOptions` of the run.
    metadata : dict, what every file of the run records.
    times : bool, whether the input records times.
    queue : str, the name of the progress ``distributed.Queue``.
    system_options : dict, the loader options of the system (:func:`mdjac.load_system`).
    """
    trajectory: str
    selection: tuple
    system: str
    compute_frame: object
    options: object
    metadata: dict
    times: bool
    queue: str
    system_options: dict = field(default_factory=dict)


@dataclass
class WorkerState:
    """What one worker process keeps between its tasks: the systems it has built (each compiled
    once per process) and the frames it has computed (whose first paid for compilation)."""
    systems: dict = field(default_factory=dict)
    frames: int = 0

    def system(self, path, options=None):
        key = (path, repr(sorted((options or {}).items())))
        if key not in self.systems:
            self.systems[key] = resolve_system(path, **(options or {}))
        return self.systems[key]


#: This process's state, when it is a worker.
_WORKER = WorkerState()


def _remove(path):
    """Remove the shard file ``path`` and its journal, those that exist."""
    for p in (path, f"{path}.journal"):
        if os.path.exists(p):
            os.remove(p)


def _shard_writer(path, system, job):
    """The shard's writer (mode 'a': continues what a killed attempt left), waiting for the lock of
    an attempt whose worker is still ending. A shard file that cannot be read (damaged on disk:
    cut short, overwritten) is removed and started again."""
    deadline, damaged = time.monotonic() + LOCK_WAIT, False
    while True:
        try:
            return open_writer(path, len(system.positions), mode="a", **writer_layout(system, job.metadata, job.times),
                               **job.options.writer_options)
        except OutputLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        except InputError as err:
            if damaged or "cannot open as HDF5" not in str(err):
                raise
            damaged = True
            _remove(path)


class Progress:
    """A task's frames reported to the client's ``distributed.Queue``: at most one message per
    :data:`PROGRESS_SECONDS` (and the last), a few bytes each; lost messages (a scheduler being
    restarted) only delay the progress bar."""

    def __init__(self, name, index):
        from distributed import Queue
        self.queue, self.index, self.last = (Queue(name) if name else None), index, 0.0

    def put(self, frames, final=False):
        now = time.monotonic()
        if self.queue is None or (not final and now - self.last < PROGRESS_SECONDS):
            return
        self.last = now
        try:
            self.queue.put((self.index, frames), timeout=5)
        except Exception:  # noqa: BLE001 - progress only; the task's result carries its frames
            pass


def compute_shard(job, index, a, b, path, joined=None):
    """Worker task: frames a..b-1 of the selection into the shard file ``path``.

    Parameters
    ----------
    job : :class:`ShardJob`.
    index : int, the shard's number.  a, b : int, its frames (selection positions a..b-1).
    path : str, its file.
    joined : str or None, where the join moves it: if a file is there, the shard was joined
        already (its task is being rerun after its worker died) and nothing is done.

    Returns
    -------
    dict : index, worker (pid), threads, resumed (frames found in the shard), computed, seconds
    (per computed frame), cpu (the worker process's CPU seconds per computed frame), compile
    (True if the first of them was this process's first), started and ended (the task's clock
    times, s since the epoch).
    """
    if joined is not None and os.path.exists(joined):
        now = time.time()
        return dict(index=index, worker=os.getpid(), threads=None, resumed=b - a, computed=0, seconds=[], cpu=[],
                    compile=False, started=now, ended=now)
    threads = limit_threads(os.environ.get(THREADS_VARIABLE))
    keep_freed_memory()                     # as the mdjac program does (mdjac.process_memory)
    system = _WORKER.system(job.system, job.system_options)
    potential = system.potential
    progress = Progress(job.queue, index)
    first_of_process = _WORKER.frames == 0
    seconds, cpu, started = [], [], time.time()
    dtype, strategy = job.options.dtype, job.options.strategy
    with open_trajectory(job.trajectory, n_atoms=len(system.positions)) as traj:
        start, stop, step = job.selection
        frames = traj[start:stop:step]
        with _shard_writer(path, system, job) as writer:
            # joined while this task waited for the lock: the file is one it has just begun
            late = joined is not None and os.path.exists(joined)
            resumed = b - a if late else writer.n_frames
            progress.put(resumed, final=True)
            for i in range(a + resumed, b):
                frame = frames[i]
                t0, c0 = time.perf_counter(), time.process_time()
                x, box, forces, jacobian = job.compute_frame(potential, frame, system, dtype, strategy)
                writer.append(frame.step, frame.time, x, box, forces, jacobian)
                seconds.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                _WORKER.frames += 1
                progress.put(i + 1 - a, final=i + 1 == b)
    if late:
        _remove(path)
    return dict(index=index, worker=os.getpid(), threads=threads, resumed=resumed, computed=len(seconds),
                seconds=seconds, cpu=cpu, compile=bool(first_of_process and seconds), started=started,
                ended=time.time())


# --------------------------------------------------------------------------------------------
# the join
# --------------------------------------------------------------------------------------------

def shard_lock(path):
    """The lock of the shard file ``path`` (:class:`mdjac.io.output_lock.OutputLock`), taken while
    its shard is checked and joined, or None if a writer holds it. The lock file of a worker killed
    after its last frame (e.g. while it reported progress to a scheduler that was gone) is taken
    over, and removed when released."""
    from .io.output_lock import OutputLock

    try:
        return OutputLock(path)
    except OutputLocked:
        return None


def check_shard(path, a, b):
    """The :class:`mdjac.io.h5md_index.Part` of the finished shard file ``path`` (selection
    positions a..b-1), or None if it cannot be joined (missing, damaged on disk, short): the
    file is then removed, to be computed again."""
    from .io.h5md_index import read_part

    try:
        return read_part(path, b - a)
    except InputError:
        _remove(path)
        return None


def sweep_folder(folder, keep):
    """Remove from the shard folder ``folder`` of a finished run what the output does not read
    (``keep``: :func:`mdjac.io.h5md_index.parts_of`): a shard file begun by a task rerun after its
    shard was joined, the lock files of killed workers and of a join killed before it released
    them, the store segments (``store-*.h5``, finished or ``.tmp``) of a killed client that the
    resumed run's index replaced. A file a writer still has locked is left alone."""
    keep = {os.path.abspath(p) for p in keep}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if path in keep or not name.endswith((".h5md", ".h5", ".journal", ".tmp", ".lock")) or not os.path.exists(path):
            continue
        owner = path.rsplit(".", 1)[0] if name.endswith((".journal", ".lock")) else path
        lock = shard_lock(owner)      # released below, which removes its lock file
        if lock is None:
            continue
        try:
            if owner not in keep:
                _remove(owner)
        finally:
            lock.release()


def join_shards(index, ready):
    """Add the checked shards ``ready`` [(a, b, part), ...] (consecutive, in frame order) that the
    output does not hold yet to the index ``index`` (metadata only: no frame is copied). Returns
    the frames added."""
    held, parts = index.n_frames, []
    for a, b, part in ready:
        if held >= b:
            continue
        if held != a:
            raise InputError(f"{index.path} holds {held} frames but the next shard starts at frame {a}; "
                             "use --overwrite")
        parts.append(part)
        held = b
    return index.add(parts)


# --------------------------------------------------------------------------------------------
# the client's loop
# --------------------------------------------------------------------------------------------

def _lost(future):
    """True if ``future`` ended without a result of its own: cancelled or lost with its scheduler
    (restarted), so its task must be submitted again."""
    return future.status in ("cancelled", "lost")


def compute_on_cluster(client, plan, options, open_output, compute_frame, shard_frames=None, interrupt=None):
    """The selected frames that the output lacks, computed by the workers of ``client`` into shard
    files that the output indexes as they finish (:mod:`mdjac.io.h5md_index`).

    Parameters
    ----------
    client : a ``distributed.Client``, or a callable returning a context manager that yields one.
    plan : :class:`mdjac.jobs.records.ComputePlan`, checked (``done``: frames the output holds).
    options : :class:`mdjac.jobs.records.ComputeOptions` (``resume`` keeps a previous plan's shards).
    open_output : callable(base_part=path) returning the output's checked index writer
        (:func:`mdjac.io.open_index`); called when the first shard is ready, so a run that fails
        before touches nothing.
    compute_frame : the per-frame function (:func:`mdjac.jobs.frame_forces_and_jacobian`).
    shard_frames : int or None, frames per task.
    interrupt : the caller's DeferredInterrupt, checked between polls, or None.

    Returns
    -------
    dict : that of :func:`mdjac.jobs.compute_trajectory`, plus ``workers`` (worker processes
    seen), ``shards``, ``tasks`` (each task's dict from :func:`compute_shard`),
    ``compile_seconds`` ({worker pid: seconds of its first frame}), ``join_cpu_seconds`` (the CPU
    time of the client's thread joining), ``join_seconds`` (the client's
    time joining), ``joins`` ([(clock time, frames in the output)] after each join),
    ``recomputed`` (shards submitted again: damaged files, tasks lost with the scheduler).
    """
    from distributed import Client

    if not isinstance(client, Client):
        with client() as own:
            return compute_on_cluster(own, plan, options, open_output, compute_frame, shard_frames, interrupt)
    from tqdm import tqdm

    from .io.h5md_index import parts_of

    frames, system, metadata, done, output = plan.frames, plan.system, plan.metadata, plan.done, plan.output
    client.wait_for_workers(1)
    workers = len(client.nthreads())
    folder = shard_folder(output)
    run, shards = load_or_make_plan(folder, metadata, done, len(frames), workers, shard_frames, options.resume,
                                    keep=parts_of(output) if os.path.exists(output) else ())
    first = next((k for k, (a, b) in enumerate(shards) if b > done), len(shards))
    count = {k: stored_frames(finished_path(folder, run, k)) for k in range(first, len(shards))}

    def finished():
        """Frames of the selection done: in the output, or in a shard beyond the output's end."""
        return done + sum(max(0, shards[k][0] + n - max(done, shards[k][0])) for k, n in count.items())

    kept = finished()
    queue_name = f"mdjac-progress-{uuid.uuid4().hex}"
    queue = _queue(queue_name, client)
    job = ShardJob(trajectory=os.path.abspath(frames.path), system=str(system.path),
                   selection=(frames.indices.start, frames.indices.stop, frames.indices.step),
                   compute_frame=compute_frame, options=options, metadata=metadata, times=frames.has_times,
                   queue=queue_name, system_options=getattr(system, "load_options", {}))

    def submit(k, attempt=0):
        a, b = shards[k]
        return client.submit(compute_shard, job, k, a, b, shard_path(folder, run, k), part_path(folder, run, k),
                             pure=False, key=f"mdjac-shard-{k}-{attempt}-{queue_name[-12:]}")

    started = time.perf_counter()
    futures = {k: submit(k) for k, (a, b) in enumerate(shards) if k >= first and count[k] < b - a}
    attempts = {k: 0 for k in futures}
    tasks, join_seconds, join_cpu, next_join, writer, joins, recomputed = [], 0.0, 0.0, first, None, [], 0
    retired, seen = [], {}        # futures of tasks whose shard went on without them; files looked at
    bar = tqdm(total=len(frames), initial=kept, unit="frame", desc="jacobians", file=sys.stderr,
               disable=not options.progress, dynamic_ncols=True, smoothing=0.1)

    def again(k):
        nonlocal recomputed
        if k in futures:
            retired.append(futures.pop(k))
        attempts[k] = attempts.get(k, 0) + 1
        recomputed += 1
        count[k] = 0
        futures[k] = submit(k, attempts[k])

    def joinable(k):
        """Shard k's task reported its end, or its file is final already."""
        a, b = shards[k]
        return k not in futures or written_shard(shard_path(folder, run, k), b - a, seen)

    try:
        with bar:
            while next_join < len(shards):
                for k, n in _drain(queue):
                    if k in count:
                        count[k] = max(count[k], n)
                for k, future in list(futures.items()):
                    if _lost(future):
                        del futures[k]
                        if k >= next_join:
                            again(k)
                    elif future.done():
                        tasks.append(future.result())      # a task's error is raised here
                        count[k] = shards[k][1] - shards[k][0]
                        del futures[k]
                if finished() > bar.n:
                    bar.update(finished() - bar.n)
                ready, locks = [], []
                try:
                    while next_join + len(ready) < len(shards) and joinable(next_join + len(ready)):
                        k = next_join + len(ready)
                        path = finished_path(folder, run, k)
                        lock = shard_lock(path)
                        if lock is None:          # a writer still has it open
                            break
                        locks.append(lock)
                        part = check_shard(path, *shards[k])
                        if part is None:          # damaged on disk: computed again, not joined
                            again(k)
                            break
                        ready.append((*shards[k], part))
                        count[k] = shards[k][1] - shards[k][0]
                    if ready:
                        t0, c0 = time.perf_counter(), time.thread_time()
                        if writer is None:
                            writer = open_output(base_part=base_path(folder, run))
                            writer.plan([(part_path(folder, run, k), b - a) for k, (a, b) in enumerate(shards)
                                         if k >= next_join])
                        join_shards(writer, ready)
                        join_seconds += time.perf_counter() - t0
                        join_cpu += time.thread_time() - c0
                        next_join += len(ready)
                        joins.append((time.time(), writer.n_frames))
                finally:
                    for lock in locks:
                        lock.release()
                if interrupt is not None:
                    interrupt.check()
                if next_join < len(shards):
                    time.sleep(0.05)
        seconds = time.perf_counter() - started
        tasks += _results(list(futures.values()) + retired)
        futures = {}
        if os.path.exists(os.path.join(folder, PLAN)):
            os.remove(os.path.join(folder, PLAN))
        if writer is not None:
            writer.record("distributed", dict(workers=workers, shards=len(shards),
                                              scheduler=str(client.scheduler.address)))
    finally:
        client.cancel(list(futures.values()))
        if writer is not None:
            writer.close()
    if writer is not None and os.path.isdir(folder):
        sweep_folder(folder, parts_of(output))
    compile_seconds = {t["worker"]: t["seconds"][0] for t in tasks if t["compile"]}
    return dict(output=os.fspath(output), computed=len(frames) - kept, kept=kept, seconds=seconds, workers=workers,
                shards=len(shards), tasks=tasks, compile_seconds=compile_seconds, join_seconds=join_seconds,
                join_cpu_seconds=join_cpu,
                joins=joins, recomputed=recomputed, first_seconds=max(compile_seconds.values(), default=None))


def _results(futures, timeout=60.0):
    """The results of tasks whose shards were joined before they reported their end: each one's
    dict once it reports (within ``timeout`` seconds in all), none for a task lost or failed
    after its shard was final (a task's error before that stops the run in the client's loop)."""
    from distributed import wait

    futures = [f for f in futures if not _lost(f)]
    if not futures:
        return []
    try:
        wait(futures, timeout=timeout)
    except Exception:  # noqa: BLE001 - distributed's TimeoutError: the results are for the record only
        pass
    return [f.result() for f in futures if f.status == "finished"]


def _queue(name, client):
    """The progress queue ``name`` on the client's scheduler (None if the scheduler is away)."""
    from distributed import Queue
    try:
        return Queue(name, client=client)
    except Exception:  # noqa: BLE001 - progress only
        return None


def _drain(queue):
    """The progress messages waiting in ``queue`` ([] if none, or if the scheduler is away)."""
    if queue is None:
        return []
    try:
        return queue.get(batch=True, timeout=1)
    except Exception:  # noqa: BLE001 - progress only: a restarted scheduler lost the queue
        return []
