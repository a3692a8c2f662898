"""The block-sparsity pattern of a force Jacobian.

Makes: out/jacobian_sparsity_<system>.png (default system: water-box, 1,000 flexible SPC/E waters
with a 1 nm cutoff), each stored 3x3 block J_ij coloured by its Frobenius norm on a log scale.
The bonded blocks of each water sit on the diagonal and are the largest; the non-bonded ones form
the band of neighbours within the cutoff. Prints the fraction of blocks stored and the timing.

Run from the repository root:  .venv/bin/python examples/jacobian_sparsity.py [SYSTEM]
(SYSTEM: any catalogue name, e.g. argon or alanine-dipeptide.)
"""
import sys
import time

import numpy as np

import mdjac
from mdjac.analysis import plots


def main(name="water-box"):
    system = mdjac.load_system(name)
    x = np.asarray(system.positions, dtype=np.float32)
    start = time.perf_counter()
    jacobian = system.potential.force_jacobian(x)          # float32 positions: float32 Jacobian
    seconds = time.perf_counter() - start
    n = len(jacobian.atoms)
    print(f"{name}: {n} atoms, {jacobian.nnz_blocks} blocks of 3x3 stored "
          f"({100 * jacobian.nnz_blocks / n**2:.2f}% of {n}^2), {seconds:.1f} s with compilation")
    print("wrote", plots.plot_sparsity(jacobian, f"out/jacobian_sparsity_{name}.png"))


if __name__ == "__main__":
    main(*sys.argv[1:2])
