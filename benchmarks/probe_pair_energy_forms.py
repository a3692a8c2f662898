"""The nonbonded pair energy (Lennard-Jones + Ewald direct), stated two ways, through the kernel's calls.

mdjac.openmm.nonbonded's forms take 1/r once per pair and share it between Lennard-Jones and Coulomb
(``shared 1/r``, as now); before, Lennard-Jones formed sigma^2 / r^2 and Coulomb divided by r
(``two divisions``, kept below). Same energy; MindSpore's CPU kernels run each element-wise op as a
pass over the arrays, so fewer and cheaper ops make the pair AD faster. Timed on ``--pairs``
synthetic pairs (distances 0.1 to 0.9 nm, DHFR-like parameters), interleaved, least and median of
``--repeat``:

* ``force``: mdjac.kernel.term_energy_and_gradient (the energy and phi'(r), what a force evaluation calls);
* ``Jacobian``: mdjac.kernel.elementwise_derivatives (phi'(r) and phi''(r), what a Jacobian calls).

Run: .venv/bin/python benchmarks/probe_pair_energy_forms.py [--pairs P] [--repeat R]
"""
import argparse
import os

import numpy as np
from mindspore import ops

from common import interleaved_times
from mdjac.openmm import nonbonded


def two_divisions(r, sigma, epsilon, qq, alpha):
    """The form before: 4 eps ((sigma/r)^12 - (sigma/r)^6) with sigma^2 / r^2, + qq erfc(alpha r) / r."""
    s2 = sigma * sigma / (r * r)
    s6 = s2 * s2 * s2
    return 4.0 * epsilon * (s6 * s6 - s6) + qq * ops.erfc(alpha * r) / r


def shared_inverse(r, sigma, epsilon, qq, alpha):
    """The form now (mdjac.openmm.nonbonded.lennard_jones_ewald)."""
    return nonbonded.lennard_jones_ewald((r,), (sigma, epsilon, qq, alpha))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1 << 20)
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    from mdjac import kernel

    print(f"# probe_pair_energy_forms.py --pairs {args.pairs} --repeat {args.repeat}; load average {os.getloadavg()}")
    rng = np.random.default_rng(0)
    n = args.pairs
    r = rng.uniform(0.1, 0.9, n)
    params = (rng.uniform(0.2, 0.35, n), rng.uniform(0.0, 0.9, n), 138.9 * rng.normal(scale=0.4, size=n), np.float64(2.92))
    for dtype in (np.float32, np.float64):
        s = r.astype(dtype)
        p = tuple(a.astype(dtype) for a in params)
        weights = np.ones(n, dtype=dtype)
        reference = kernel.elementwise_derivatives(two_divisions, s, p)
        now = kernel.elementwise_derivatives(shared_inverse, s, p)
        diff = [float(np.max(np.abs(a - b)) / np.max(np.abs(a))) for a, b in zip(reference, now)]
        cases = {}
        for label, form in (("two divisions", two_divisions), ("shared 1/r", shared_inverse)):
            cases[f"force, {label}"] = lambda form=form: kernel.term_energy_and_gradient(form, s, weights, p)
            cases[f"Jacobian, {label}"] = lambda form=form: kernel.elementwise_derivatives(form, s, p)
        for call in cases.values():
            call()
        times = interleaved_times(cases, args.repeat)
        print(f"{np.dtype(dtype).name}, {n} pairs; max |difference| / max |value| of phi', phi'': {diff[0]:.1e}, {diff[1]:.1e}")
        for key, t in times.items():
            print(f"  {key:26s} least {min(t) * 1e3:7.2f} ms   median {np.median(t) * 1e3:7.2f} ms")
        for what in ("force", "Jacobian"):
            a, b = times[f"{what}, two divisions"], times[f"{what}, shared 1/r"]
            print(f"  {what}: before / now, medians {np.median(a) / np.median(b):.2f}, least {min(a) / min(b):.2f}")
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
