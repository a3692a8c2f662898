"""Per-atom stiffness of alanine dipeptide along a short MindSPONGE MD run.

Makes: out/stiffness_alanine_dipeptide.png, a heat map of k_i = -tr(J_ii) (kJ mol^-1 nm^-2, the
curvature of the energy when atom i alone moves, summed over x, y, z) for every atom (rows,
labelled by atom name) and every stored frame (columns, in ps).

The run (300 K, Langevin, 1 fs steps, the force Jacobian every 10 steps) is written by
mdjac.jobs.run_md to out/alanine-dipeptide-md.h5 and read back with mdjac.open_trajectory:
the figure is drawn from the Jacobians stored in the H5MD file.

Run from the repository root:  .venv/bin/python examples/stiffness_along_trajectory.py
"""
import numpy as np

import mdjac
from mdjac.analysis import plots
from mdjac.jobs import run_md

TRAJECTORY = "out/alanine-dipeptide-md.h5"
OUTPUT = "out/stiffness_alanine_dipeptide.png"


def main(steps=1000, every=10):
    system = mdjac.load_system("alanine-dipeptide")
    summary = run_md(system, steps=steps, every=every, output=TRAJECTORY, overwrite=True, check=False)
    print(f"MD: {summary['frames']} frames, {summary['seconds_per_jacobian'] * 1e3:.1f} ms per Jacobian")
    with mdjac.open_trajectory(TRAJECTORY) as frames:
        stiffness = plots.trajectory_stiffness(frames)          # (n_frames, n_atoms)
        times = np.array([frame.time for frame in frames])
    for name, mean, sd in zip(system.names, stiffness.mean(axis=0), stiffness.std(axis=0)):
        print(f"{name:>4}  k = {mean:9.0f} +- {sd:7.0f} kJ mol^-1 nm^-2")
    print("wrote", plots.plot_stiffness(stiffness, OUTPUT, times=times, labels=system.names,
                                        title="Alanine dipeptide at 300 K: per-atom stiffness"))


if __name__ == "__main__":
    main()
