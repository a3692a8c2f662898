"""Probe: the ForceJacobianCallback's time per frame inside MindSPONGE's MD against the same
Jacobian in a fresh process, interleaved so that both see the same load.

Several worker processes live at once, each holding the catalogue system's potential (compiled
by a first Jacobian) in one state:

* ``fresh``: nothing else has run in the process; the Jacobian of the system's positions;
* ``fresh-rebuild``: as ``fresh``, but one atom is moved by 0.06 nm and back on alternate calls,
  so that every Jacobian rebuilds the neighbour list (the potential keeps a Verlet list with a
  0.1 nm skin across frames: the same frame again never searches for neighbours, an MD frame
  10 steps on often does);
* ``after-md``: a MindSPONGE engine (:func:`mdjac.sponge.engine.sponge_md`) has run ``steps`` MD
  steps in the process (inside :func:`graph_mode`, as ``run_md``); the same Jacobian, same frame;
* ``callback``: a MindSPONGE run with a :class:`mdjac.sponge.ForceJacobianCallback` every
  ``every`` steps; its wall time per frame (the Jacobian of that step's frame and the hand-off to
  a writer that keeps nothing). Its MD steps between frames run before it answers, never
  while another worker computes;
* ``in-run``: as ``callback``, but at each frame the Jacobian of the system's positions (the
  fresh worker's frame) is timed instead, inside the run.

The coordinator asks the workers in turn for one Jacobian each (round r starts with worker
r mod W), so that only one of them computes at a time and all of them see the same machine.
Per state: min and median over the rounds, and the median of the per-round ratio to ``fresh``.
The CPU seconds of all the worker's threads per Jacobian are shown too (wall time depends on
the load, CPU time much less); per thread with ``--threads``.

Run: .venv/bin/python benchmarks/probe_callback.py [--rounds R] [--steps K] [--every E]
         [--system NAME] [--states fresh after-md callback]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

STATES = ("fresh", "fresh-rebuild", "after-md", "callback", "in-run")


# ------------------------------------------------------------------ the worker side
def thread_times():
    """{thread name/id: (CPU seconds, voluntary context switches)} of this process's threads."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/self/task/{tid}/status") as f:
                status = f.read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        switches = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("voluntary_ctxt_switches"))
        out[f"{name}/{tid}"] = ((int(fields[11]) + int(fields[12])) / tick, switches)
    return out


def page_faults():
    """Minor page faults of this process so far (a count: load-independent)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def thread_use(before, after):
    """{thread: [CPU seconds, voluntary switches]} used between two :func:`thread_times`, busy ones."""
    use = {k: [round(v[0] - before.get(k, (0, 0))[0], 3), v[1] - before.get(k, (0, 0))[1]] for k, v in after.items()}
    return {k: v for k, v in use.items() if v[0] > 0 or v[1] > 0}


def _reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _command():
    line = sys.stdin.readline().strip()
    if line in ("", "quit"):
        os._exit(0)
    return line


class NullWriter:
    """A writer that keeps nothing: the callback's hand-off without the file."""

    def append(self, step, time, positions, box, forces, jacobian):
        pass


def worker(state, system_name, steps, every):
    """Serve ``jac`` commands in one of STATES: reply {"seconds": s, "threads": use}."""
    from mindspore.train.callback import Callback

    import mdjac
    from mdjac.sponge import ForceJacobianCallback
    from mdjac.sponge.engine import graph_mode, sponge_md

    system = mdjac.load_system(system_name)
    x = system.positions.astype(np.float32)
    pot = system.potential
    pot.force_jacobian(x)                       # compiles

    def neighbour_builds():
        return sum(v.builds for v in pot._verlet.values())

    moved = x.copy()
    moved[0, 0] += 0.06
    frames = [x, moved] if state == "fresh-rebuild" else [x]

    def timed_jacobian():
        frames.reverse()
        builds = neighbour_builds()
        before, faults, start = thread_times(), page_faults(), time.perf_counter()
        jac = pot.force_jacobian(frames[0])
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "threads": thread_use(before, thread_times()), "faults": page_faults() - faults,
                "blocks": jac.nnz_blocks, "rebuilt": neighbour_builds() - builds}

    if state in ("fresh", "fresh-rebuild"):
        _reply({"ready": state})
        while _command():
            _reply(timed_jacobian())
    molecule, forcefield = system.sponge(fresh=True)
    with graph_mode():
        engine = sponge_md(molecule, forcefield, system.cutoff)
        if state == "after-md":
            engine.run(steps)
            _reply({"ready": state})
            while _command():
                _reply(timed_jacobian())

        class Gate(Callback):
            """At a frame's step_end, before the ForceJacobianCallback's: reply with the previous
            frame's result (or "ready"), once the MD steps between them have run, so that the MD
            steps never overlap another worker's Jacobian; then wait for the next command."""

            def __init__(self):
                super().__init__()
                self.result, self.before = {"ready": state}, None

            def step_end(self, run_context):
                if int(run_context.original_args().cur_step) % every == 0:
                    _reply(self.result)
                    _command()
                    self.before, self.faults, self.builds = thread_times(), page_faults(), neighbour_builds()

        gate = Gate()

        def after_frame():
            gate.result = {"seconds": callback.seconds[-1], "threads": thread_use(gate.before, thread_times()),
                           "faults": page_faults() - gate.faults, "blocks": callback.nnz_blocks[-1],
                           "rebuilt": neighbour_builds() - gate.builds}

        callback = ForceJacobianCallback(pot, NullWriter(), every=every, after_frame=after_frame)

        class SameFrame(Callback):
            """At a frame's step_end: the Jacobian of the fresh worker's frame, timed."""

            def step_end(self, run_context):
                if int(run_context.original_args().cur_step) % every == 0:
                    gate.result = timed_jacobian()

        if state == "in-run":
            callback = SameFrame()
        engine.run(every)                        # compiles the MD step
        engine.run(10 ** 6, callbacks=[gate, callback])


# ------------------------------------------------------------------ the coordinator side
def start_worker(state, args):
    proc = subprocess.Popen([sys.executable, __file__, "--worker", state, "--system", args.system,
                             "--steps", str(args.steps), "--every", str(args.every)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    while True:                                  # MindSpore may print to stdout: skip to our JSON
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {state} died before it was ready")
        if line.startswith('{"ready"'):
            return proc


def ask(proc):
    proc.stdin.write("jac\n")
    proc.stdin.flush()
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("a worker died")
        if line.startswith('{"seconds"'):
            return json.loads(line)


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=20, help="MD steps run before the after-md worker's Jacobians")
    p.add_argument("--every", type=int, default=5, help="MD steps between the callback's frames")
    p.add_argument("--system", default="water-box")
    p.add_argument("--states", nargs="+", default=list(STATES), choices=STATES)
    p.add_argument("--threads", action="store_true", help="print each state's per-thread CPU use of its last Jacobian")
    p.add_argument("--worker", choices=STATES)
    a = p.parse_args(argv)
    if a.worker:
        worker(a.worker, a.system, a.steps, a.every)
        return
    procs = {s: start_worker(s, a) for s in a.states}
    seconds = {s: [] for s in a.states}
    cpu = {s: [] for s in a.states}
    faults = {s: [] for s in a.states}
    blocks = {s: [] for s in a.states}
    rebuilt = {s: [] for s in a.states}
    last = {}
    try:
        for r in range(a.rounds):
            order = a.states[r % len(a.states):] + a.states[:r % len(a.states)]
            for s in order:
                reply = ask(procs[s])
                seconds[s].append(reply["seconds"])
                cpu[s].append(sum(v[0] for v in reply["threads"].values()))
                faults[s].append(reply["faults"])
                blocks[s].append(reply["blocks"])
                rebuilt[s].append(reply["rebuilt"] > 0)
                last[s] = reply["threads"]
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait()
    print(f"{a.system}, float32: one Jacobian per state per round, {a.rounds} rounds, states in turn "
          f"(after-md: {a.steps} MD steps before; callback: a frame every {a.every} MD steps)")
    fresh = np.array(seconds["fresh"]) if "fresh" in seconds else None
    head = f"{'state':>10} {'min (s)':>8} {'median (s)':>11} {'mean (s)':>9} {'CPU s, median':>14} {'page faults':>12} {'blocks':>8} {'rebuilt':>8} " \
           f"{'min / fresh min':>16} {'median of ratios to fresh':>26} {'mean / fresh min':>17}"
    print(head)
    print("-" * len(head))
    for s in a.states:
        v = np.array(seconds[s])
        line = f"{s:>10} {v.min():>8.3f} {np.median(v):>11.3f} {v.mean():>9.3f} {np.median(cpu[s]):>14.2f} {int(np.median(faults[s])):>12} {int(np.median(blocks[s])):>8} {np.mean(rebuilt[s]):>8.0%} "
        if fresh is not None:
            line += f"{v.min() / fresh.min():>16.2f} {np.median(v / fresh):>26.2f} {v.mean() / fresh.min():>17.2f}"
        print(line)
    print("CPU s: all threads of the worker during one Jacobian (load-independent, unlike wall time); page faults "
          "(minor) and blocks: medians per Jacobian; rebuilt: Jacobians that rebuilt the neighbour list; "
          "mean / fresh min: how bench_jacobian.py --systems compared them before (a mean over the run's "
          "frames against the best standalone time)")
    if a.threads:
        for s in a.states:
            print(f"{s}: CPU s, voluntary switches per thread in its last Jacobian: {last[s]}")


if __name__ == "__main__":
    main(sys.argv[1:])
