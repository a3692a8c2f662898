"""The first Jacobian in a new process, with mdjac's compile cache off, cold and warm.

Every row is a fresh Python process that imports mdjac, builds the potential and times
``Potential.force_jacobian`` twice (float32, the default replicate strategy): the first call pays
MindSpore's graph compilation unless the graphs come from the store (mdjac.compile_cache), the
second is the steady state. Modes, interleaved round by round so that the machine's load falls on
all of them alike:

* off:  MDJAC_COMPILE_CACHE=0 (what every process paid before);
* cold: an empty store (the process compiles and stores its graphs);
* warm: the store the cold process of the same round filled (the graphs are loaded).

Systems: the catalogue's water box (1,000 flexible SPC/E waters, 3,000 atoms: LJ, DSF Coulomb,
bonds, angles, through the MindSPONGE adapter) and the two-type liquid of bench_jacobian.py at N = 3,000 (LJ + DSF Coulomb, 0.7 nm).
The Jacobians of the warm and cold processes are compared with the off process's, block by block
(max |difference|, kJ mol^-1 nm^-2): 0 means the loaded graphs computed the same numbers bit for bit.

Run: .venv/bin/python benchmarks/bench_compile_cache.py [--rounds R]     (default 3)
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
SYSTEMS = ("water-box", "liquid-3000")


def child(system, out):
    """Runs in the fresh process: times and saves the first Jacobian."""
    start = time.perf_counter()
    import mdjac
    from mdjac import compile_cache
    if system == "water-box":
        s = mdjac.load_system("water-box")
        pot, x = s.potential, s.positions.astype(np.float32)
    else:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from bench_jacobian import liquid
        pot, x = liquid(int(system.split("-")[1]))
    ready = time.perf_counter()
    jac = pot.force_jacobian(x)
    first = time.perf_counter()
    pot.force_jacobian(x)
    second = time.perf_counter()
    np.savez(out, rows=jac.rows, cols=jac.cols, blocks=jac.blocks)
    print(json.dumps({"setup": ready - start, "first": first - ready, "second": second - first,
                      "stats": compile_cache.STATS}))


def run(system, mode, store, out):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MS_COMPILER_CACHE", "MDJAC_COMPILE"))}
    env.update(PYTHONPATH=str(ROOT), GLOG_v="3", MDJAC_COMPILE_CACHE_DIR=str(store),
               MDJAC_COMPILE_CACHE="0" if mode == "off" else "1")
    start = time.perf_counter()
    got = subprocess.run([sys.executable, __file__, "--child", system, str(out)], env=env,
                         capture_output=True, text=True, check=True)
    result = json.loads(got.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - start
    return result


def largest_difference(a, b):
    a, b = np.load(a), np.load(b)
    if not (np.array_equal(a["rows"], b["rows"]) and np.array_equal(a["cols"], b["cols"])):
        return float("inf")
    return float(np.max(np.abs(a["blocks"].astype(np.float64) - b["blocks"])))


def main(rounds):
    results = {(s, m): [] for s in SYSTEMS for m in ("off", "cold", "warm")}
    worst = {(s, m): 0.0 for s in SYSTEMS for m in ("cold", "warm")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for r in range(rounds):
            for system in SYSTEMS:
                store = tmp / f"store-{system}-{r}"
                files = {m: tmp / f"{system}-{m}.npz" for m in ("off", "cold", "warm")}
                for mode in ("off", "cold", "warm"):
                    results[system, mode].append(run(system, mode, store, files[mode]))
                for mode in ("cold", "warm"):
                    worst[system, mode] = max(worst[system, mode], largest_difference(files["off"], files[mode]))
    print(f"fresh processes, float32 force_jacobian, median of {rounds} interleaved rounds (seconds)\n")
    print(f"| system | cache | first Jacobian | second Jacobian | whole process | graphs loaded / stored | max abs diff vs off |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for system in SYSTEMS:
        for mode in ("off", "cold", "warm"):
            rows = results[system, mode]
            med = {k: statistics.median(x[k] for x in rows) for k in ("first", "second", "process")}
            stats = rows[-1]["stats"]
            diff = "" if mode == "off" else f"{worst[system, mode]:.1e}"
            print(f"| {system} | {mode} | {med['first']:.2f} | {med['second']:.2f} | {med['process']:.2f} | "
                  f"{stats['loaded']} / {stats['stored']} | {diff} |")
    for system in SYSTEMS:
        off = statistics.median(x["first"] for x in results[system, "off"])
        warm = statistics.median(x["first"] for x in results[system, "warm"])
        print(f"\n{system}: first Jacobian {off / warm:.1f}x faster with a warm store", end="")
    print()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--rounds", type=int, default=3)
        main(parser.parse_args().rounds)
