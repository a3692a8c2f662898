"""What a new frame's fresh memory costs: the same work in fresh processes, in turn with the process
as Python leaves it (glibc returns large freed arrays to the kernel, numpy advises huge pages), with
numpy's huge-page advice off only (NUMPY_MADVISE_HUGEPAGE=0), and as the ``mdjac`` program sets it
(mdjac.process_memory.keep_freed_memory: freed memory kept for the next frame, no advice).

Each process builds a system, computes its first frame (compilation) and then, on ``FRAMES`` new
frames (positions jittered as in bench_real_systems), one force evaluation and one Jacobian each,
timed apart; it reports their times and its minor page faults. Systems: DHFR (OpenMM's JAC
benchmark, amber99sb + TIP3P, PME at 0.9 nm, float32: bench_pme's build) and the LJ liquid of
bench_peers at N = 30,000 (float32). Also printed: the kernel's huge-page settings
(/sys/kernel/mm/transparent_hugepage) and its compaction counters, before and after.

Run: .venv/bin/python benchmarks/probe_process_memory.py [--rounds R] [dhfr] [liquid]
"""
import json
import os
import resource
import sys

import numpy as np

from common import new_frame_times, run_child

FRAMES = 6
#: name -> environment of the child
SETTINGS = {"default": {"MDJAC_KEEP_MEMORY": "0"},
            "no advice": {"MDJAC_KEEP_MEMORY": "0", "NUMPY_MADVISE_HUGEPAGE": "0"},
            "kept": {}}


def kernel_state():
    """The kernel's THP settings and its compaction counters (for the record)."""
    out = {}
    for name in ("enabled", "defrag"):
        try:
            with open(f"/sys/kernel/mm/transparent_hugepage/{name}") as f:
                out[name] = f.read().strip()
        except OSError:
            out[name] = "unknown"
    with open("/proc/vmstat") as f:
        out.update({k: int(v) for k, v in (line.split() for line in f) if k in ("compact_stall", "compact_fail")})
    return out


def potential_and_frames(name):
    """(potential, x0 (N, 3) nm float64) of a probe system."""
    if name == "dhfr":
        import mdjac.openmm
        from bench_pme import build_system
        system, x0, _ = build_system("dhfr", "PME")
        return mdjac.openmm.adapt(system), x0
    import mdjac
    from bench_peers import CUTOFF, EPSILON, SIGMA, liquid_positions
    x, edge = liquid_positions(30000)
    terms = [mdjac.terms.LennardJones([SIGMA], [EPSILON], np.zeros(len(x), int), cutoff=CUTOFF)]
    return mdjac.Potential(terms, box=[edge] * 3), x


def child(name):
    from bench_real_systems import frames
    from mdjac.process_memory import keep_freed_memory

    keep_freed_memory()          # nothing with MDJAC_KEEP_MEMORY=0
    potential, x0 = potential_and_frames(name)
    potential.energy_and_forces(x0.astype(np.float32))
    potential.force_jacobian(x0.astype(np.float32))
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    force, jacobian, J = new_frame_times(potential, frames(x0, FRAMES), np.float32)
    del J
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / FRAMES
    print(json.dumps(dict(force=force, jacobian=jacobian, faults=faults)))


def main(argv):
    if argv[:1] == ["--child"]:
        child(argv[1])
        return
    rounds = 2
    if argv[:1] == ["--rounds"]:
        rounds, argv = int(argv[1]), argv[2:]
    systems = argv or ["dhfr", "liquid"]
    print(f"kernel before: {kernel_state()}; load {os.getloadavg()}")
    seen = {(s, e): dict(force=[], jacobian=[], faults=[]) for s in systems for e in SETTINGS}
    for _ in range(rounds):
        for s in systems:
            for e in SETTINGS:
                row, code, _ = run_child(__file__, ["--child", s], env=dict(SETTINGS[e], GLOG_v="3"))
                if row is None:
                    print(f"{s} {e}: exit {code}")
                    continue
                print(f"row: {s} {e} {json.dumps(row)}", flush=True)
                for k in ("force", "jacobian"):
                    seen[s, e][k] += row[k]
                seen[s, e]["faults"].append(row["faults"])
    print(f"kernel after: {kernel_state()}; load {os.getloadavg()}")
    print(f"{'system':>7} {'memory':>10} {'force min':>10} {'median':>8} {'max':>8} {'Jacobian min':>13} {'median':>8} "
          f"{'max':>8} {'faults/frame':>13}")
    for (s, e), d in seen.items():
        if not d["force"]:
            continue
        f, j = np.array(d["force"]), np.array(d["jacobian"])
        print(f"{s:>7} {e:>10} {f.min():>9.3f}s {np.median(f):>7.3f}s {f.max():>7.3f}s "
              f"{j.min():>12.3f}s {np.median(j):>7.3f}s {j.max():>7.3f}s {np.mean(d['faults']):>13.0f}")
    print(f"{FRAMES} new frames per process, {rounds} processes per row, alternating; float32; "
          "faults: minor page faults per frame (force + Jacobian)")


if __name__ == "__main__":
    main(sys.argv[1:])
