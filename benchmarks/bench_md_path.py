"""What MindSPONGE's MD adds to a frame's cost: ``mdjac run`` against the same frames outside MD.

Per round, each part in a process of its own, the load average before each:

* run: the real command line, ``mdjac run --system S --steps K --every E -o OUT --overwrite``
  (:func:`mdjac.cli.main`, in-process in a child; the summary dict it prints is kept). From it:
  the callback's Jacobian per frame (``jacobian_seconds``, mean after the first frame, which
  compiles) and the writing per frame (``write_seconds_per_frame``: the frames written while MD
  ran plus what ``close`` wrote at the end, over the frames);
* fresh: a new process loads the system, reads OUT's frames and computes their Jacobians in order
  (the first compiles; mean after it), as the callback does (float32 positions, the stored box),
  then writes the same frames to a new file through :func:`mdjac.io.open_writer` with run_md's
  layout and the writer's default batch (16: the four frames in one batch at close, what run_md
  did before it wrote each frame as it came), append every frame and close, timed per frame: the
  same write outside MD.

Ratios per round: callback Jacobian / fresh Jacobian, and run write / callback Jacobian (what the
run summary shows) beside fresh write / fresh Jacobian. Targets: at most 1.1 and at most 1/3.
With ``--before PYTHON`` every part also runs with another checkout's interpreter (the code before
a change), the two alternating within each round.

Run: .venv/bin/python benchmarks/bench_md_path.py [--rounds 3] [--steps 40] [--every 10] [--system water-box]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def cpu_seconds():
    """CPU seconds (user + system) of every thread of this process so far."""
    t = os.times()
    return t.user + t.system


def child_run(output, system, steps, every):
    """The command line's ``mdjac run``; prints its summary dict as one JSON line."""
    from mdjac import cli

    shown = {}
    format_summary = cli.format_summary

    def keep(result):
        shown.update(result)
        return format_summary(result)

    cli.format_summary = keep
    start = time.perf_counter()
    cpu = cpu_seconds()
    code = cli.main(["run", "--system", system, "--steps", str(steps), "--every", str(every), "-o", output,
                     "--overwrite"])
    shown.update(exit=code, wall=time.perf_counter() - start, cpu=cpu_seconds() - cpu)
    print(json.dumps(shown, default=float), flush=True)


def child_fresh(output, system_name, copy):
    """The frames of ``output`` in a fresh process: Jacobians in order, then written to ``copy``."""
    import mdjac
    from mdjac.io import open_trajectory, open_writer

    system = mdjac.load_system(system_name)
    potential = system.potential
    with open_trajectory(output) as traj:
        frames = [(f.step, f.time, np.asarray(f.positions, np.float32), None if f.box is None else
                   np.asarray(f.box, np.float64), np.asarray(f.forces, np.float32)) for f in traj]
    seconds, cpu, jacobians = [], [], []
    for _, _, x, box, _ in frames:
        start, c = time.perf_counter(), cpu_seconds()
        jacobians.append(potential.force_jacobian(x, box=box))
        seconds.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - c)
    start, c = time.perf_counter(), cpu_seconds()
    writer = open_writer(copy, potential.n_atoms, names=system.names, masses=system.masses,
                         periodic=system.box is not None, dtype=np.float32, overwrite=True,
                         metadata={"system": system.name})
    for (step, t, x, box, forces), jac in zip(frames, jacobians):
        writer.append(step, t, x, box, forces, jac)
    writer.close()
    write = (time.perf_counter() - start) / len(frames)
    write_cpu = (cpu_seconds() - c) / len(frames)
    print(json.dumps({"jacobian_seconds": seconds, "jacobian_cpu": cpu, "write_seconds_per_frame": write,
                      "write_cpu_per_frame": write_cpu, "blocks": jacobians[0].nnz_blocks}), flush=True)


def run_child(args, python=sys.executable):
    """Run this script with ``args`` in a new process of ``python``; its last JSON line, and the load before it."""
    load = os.getloadavg()[0]
    out = subprocess.run([python, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=dict(os.environ, GLOG_v="3"))
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"child {args[0]} failed: exit {out.returncode}")
    return json.loads(lines[-1]), load


def mean_after_first(values):
    values = list(values)
    return float(np.mean(values[1:] or values))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=31)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--system", default="water-box")
    p.add_argument("--before", metavar="PYTHON", help="also run every part with this interpreter (another checkout's "
                   ".venv/bin/python: the code before a change), alternating with this one's within each round")
    p.add_argument("--child-run", nargs=4, metavar=("OUT", "SYSTEM", "STEPS", "EVERY"))
    p.add_argument("--child-fresh", nargs=3, metavar=("OUT", "SYSTEM", "COPY"))
    a = p.parse_args()
    if a.child_run:
        out, system, steps, every = a.child_run
        return child_run(out, system, int(steps), int(every))
    if a.child_fresh:
        return child_fresh(*a.child_fresh)

    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP", "/tmp")) as workdir:
        out, copy = os.path.join(workdir, "run.h5md"), os.path.join(workdir, "copy.h5md")
        pythons = [("now", sys.executable)] + ([("before", a.before)] if a.before else [])
        order = [(r, code, python) for r in range(a.rounds) for code, python in (pythons[::-1] if r % 2 else pythons)]
        for r, code, python in order:
            run, load_run = run_child(["--child-run", out, a.system, str(a.steps), str(a.every)], python)
            fresh, load_fresh = run_child(["--child-fresh", out, a.system, copy], python)
            row = {
                "round": r + 1, "code": code, "load_run": load_run, "load_fresh": load_fresh, "frames": run["frames"],
                "cb_jac": mean_after_first(run["jacobian_seconds"]) if "jacobian_seconds" in run
                else run["seconds_per_jacobian"],
                "fresh_jac": mean_after_first(fresh["jacobian_seconds"]),
                "fresh_jac_cpu": mean_after_first(fresh["jacobian_cpu"]),
                "run_write": run["write_seconds_per_frame"], "fresh_write": fresh["write_seconds_per_frame"],
                "md_step": run["seconds_per_md_step"], "cb_jacs": run.get("jacobian_seconds"),
                "callback_seconds": run["callback_seconds"], "fresh_jacs": fresh["jacobian_seconds"],
            }
            rows.append(row)
            print(f"row: {json.dumps(row)}", flush=True)
            for path in (out, copy):
                if os.path.exists(path):
                    os.remove(path)
    print()
    print(f"mdjac run --system {a.system} --steps {a.steps} --every {a.every} ({rows[0]['frames']} frames), float32, "
          f"against the same frames in a fresh process; {a.rounds} rounds, each part a process of its own; "
          f"{os.cpu_count()} cores")
    head = (f"{'round':>5} {'code':>6} {'load':>9} {'callback J':>10} {'fresh J':>8} {'cb/fresh':>8} "
            f"{'run write':>9} {'write/J':>7} {'fresh write':>11} {'fresh w/J':>9} {'MD step':>8}")
    print(head)
    print("-" * len(head))
    for row in rows:
        print(f"{row['round']:>5} {row['code']:>6} {row['load_run']:>4.1f}/{row['load_fresh']:<4.1f} {row['cb_jac']:>10.3f} "
              f"{row['fresh_jac']:>8.3f} {row['cb_jac'] / row['fresh_jac']:>8.2f} {row['run_write']:>9.3f} "
              f"{row['run_write'] / row['cb_jac']:>7.2f} {row['fresh_write']:>11.3f} "
              f"{row['fresh_write'] / row['fresh_jac']:>9.2f} {row['md_step']:>8.3f}")
    print("J: seconds per Jacobian, mean over the frames after the first (the first compiles); callback J: the run "
          "summary's jacobian_seconds (before: its seconds_per_jacobian, the same mean); run write: the summary's "
          "write_seconds_per_frame; fresh write: the same frames appended and closed outside MD, per frame; "
          "write/J: run write over callback J; load: 1-minute load average before the run / the fresh process. "
          "Targets: cb/fresh <= 1.1, write/J <= 0.33")


if __name__ == "__main__":
    main()
