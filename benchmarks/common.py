"""What the benchmark scripts share: best-of timing, the process's peak memory, the lowest normal
modes with their matvecs counted, and a script run again in a process of its own for one row.

Imported by the scripts beside it (``python benchmarks/bench_x.py`` puts this folder on the path).
"""
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def best(call, repeat):
    """Least wall time (s) of ``repeat`` calls of ``call()``, and the last call's result."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t)
    return min(times), result


def interleaved_times(cases, repeat):
    """Wall times (s) of ``repeat`` rounds over ``cases`` (name -> call of no arguments), the cases
    interleaved in each round so that load changes hit them alike: name -> list of times."""
    times = {name: [] for name in cases}
    for _ in range(repeat):
        for name, call in cases.items():
            t = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t)
    return times


def new_frame_times(potential, frames, dtype):
    """Wall times (s) of a force evaluation and then a Jacobian on each of ``frames`` (positions (N, 3) nm,
    new to ``potential``), cast to ``dtype``; the previous Jacobian is freed before each one is timed.
    Returns (force times, Jacobian times, the last Jacobian)."""
    import gc

    force, jacobian, J = [], [], None
    for y in frames:
        y = y.astype(dtype)
        t = time.perf_counter()
        potential.energy_and_forces(y)
        force.append(time.perf_counter() - t)
        J = None
        gc.collect()
        t = time.perf_counter()
        J = potential.force_jacobian(y)
        jacobian.append(time.perf_counter() - t)
    return force, jacobian, J


def peak_gb():
    """The process's peak resident set size so far, GB (Linux reports ru_maxrss in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def timed_modes(J, masses, positions, k=10, progress=None):
    """The ``k`` lowest modes of a force Jacobian by ``mdjac.normal_modes(J, masses, positions=positions,
    project='periodic', k=k, method='sparse')``, timed once, with its matvecs counted (a block of m
    vectors counts m; those of the long-range part, which the modes' operator calls once per product,
    else parsed from the result's ``solver``).

    J: a ForceJacobian of N atoms; masses: (N,) amu; positions: (N, 3) nm; progress: None, or a
    function called with (matvecs so far, seconds so far) whenever the count is a multiple of 100.
    Returns {"modes_s": seconds, "modes_matvecs": count, "lowest_cm": the 3 lowest wavenumbers
    (cm^-1), rounded to 0.01}.
    """
    import mdjac

    counter = {"n": 0}
    counted_part = J if J.long_range is None else J.long_range    # the modes' operator calls the part's matvec
    matvec = counted_part.matvec

    def counted(u):
        counter["n"] += 1 if np.ndim(u) == 1 else np.shape(u)[-1]
        if progress is not None and counter["n"] % 100 == 0:
            progress(counter["n"], time.perf_counter() - start)
        return matvec(u)

    counted_part.matvec = counted
    start = time.perf_counter()
    try:
        modes = mdjac.normal_modes(J, masses, positions=positions, project="periodic", k=k, method="sparse")
    finally:
        del counted_part.matvec
    if J.long_range is None:
        counter["n"] = int(modes.solver.split("(")[1].split()[0])
    return {"modes_s": time.perf_counter() - start, "modes_matvecs": counter["n"],
            "lowest_cm": [round(float(f), 2) for f in modes.frequencies[:3]]}


def with_modes(spec, row, J, masses, positions, modes_max_atoms, progress=None):
    """A child's ``row`` (dict) completed by the modes: its peak RSS recorded, the row printed to standard
    error (what was measured, should the modes fail), then for up to ``modes_max_atoms`` atoms the
    fields of :func:`timed_modes` and the peak RSS after them. spec: the row's name in that line."""
    row["peak_gb"] = peak_gb()
    print(f"{spec} before the modes: {json.dumps(row)}", file=sys.stderr, flush=True)
    if len(positions) > modes_max_atoms:
        return row
    row.update(timed_modes(J, masses, positions, progress=progress))
    row["peak_gb"] = peak_gb()
    return row


def run_child(script, args, env=None, stderr=None):
    """Run the Python file ``script`` with ``args`` (strings) in a process of its own, so that its peak
    memory is its own; its standard output is read, its standard error goes to this process's unless
    ``stderr`` is ``subprocess.PIPE``.

    env: None (this process's environment) or a dict of variables added to it.
    Returns (the last line of its output that starts with "{", parsed as JSON, or None; its exit code;
    its standard error as text if piped, else None).
    """
    out = subprocess.run([sys.executable, script, *args], stdout=subprocess.PIPE, stderr=stderr, text=True,
                         env=None if env is None else dict(os.environ, **env))
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines else None), out.returncode, out.stderr


def child_row(script, args, failed):
    """One benchmark row measured by ``script --child ARGS`` in a process of its own (:func:`run_child`),
    or ``failed`` (a dict naming the row) with its exit code as the error; the load average before it
    is in ``load_before``, and the row is printed as a ``row: {json}`` line (rows are read back from
    such lines)."""
    load = os.getloadavg()[0]
    row, code, _ = run_child(script, ["--child", *args], env={"GLOG_v": "3"})
    row = row or dict(failed, error=f"failed: exit {code} (its stderr is above)")
    row["load_before"] = load
    print(f"row: {json.dumps(row)}", flush=True)
    return row
