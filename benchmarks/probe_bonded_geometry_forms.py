"""Bonded terms' Hessians and gradients with the angle and dihedral stated two ways: one table.

mdjac.terms.geometry states the bond angle and the dihedral on components (each displacement split
once into x, y, z with ops.unstack; cross and dot products of (M,) arrays); before, they sliced the
last axis of (..., 3) arrays (``slices``, kept below), which costs a full-size pad in every backward
pass. Same numbers to rounding (printed). Timed through the kernel's calls on random instances of
DHFR's sizes (11,584 angles padded to 12,288, 8,192 torsions), interleaved, least and median of
``--repeat``:

* ``Hessians``: mdjac.kernel.term_hessians (what a Jacobian calls per bonded term);
* ``gradient``: mdjac.kernel.term_energy_and_gradient (what a force evaluation calls).

Run: .venv/bin/python benchmarks/probe_bonded_geometry_forms.py [--repeat R]
"""
import argparse
import os

import numpy as np
from mindspore import ops

from common import interleaved_times
from mdjac import kernel
from mdjac.terms import geometry


def slices_cross(u, v):
    ux, uy, uz = u[..., 0], u[..., 1], u[..., 2]
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    return ops.stack([uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx], axis=-1)


def slices_angle(q):
    u = -q[..., 0, :]
    v = q[..., 1, :] - q[..., 0, :]
    return ops.atan2(geometry.norm(slices_cross(u, v)), geometry.dot(u, v))


def slices_dihedral(q):
    b1 = q[..., 0, :]
    b2 = q[..., 1, :] - q[..., 0, :]
    b3 = q[..., 2, :] - q[..., 1, :]
    n2 = slices_cross(b2, b3)
    return ops.atan2(geometry.norm(b2) * geometry.dot(b1, n2), geometry.dot(slices_cross(b1, b2), n2))


def angle_slices(q, k, theta0):
    return 0.5 * k * (slices_angle(q) - theta0) ** 2


def angle_components(q, k, theta0):
    return 0.5 * k * (geometry.bond_angle(q) - theta0) ** 2


def torsion_slices(q, k, n, phase):
    return k * (1.0 + ops.cos(n * slices_dihedral(q) - phase))


def torsion_components(q, k, n, phase):
    return k * (1.0 + ops.cos(n * geometry.dihedral(q) - phase))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    print(f"# probe_bonded_geometry_forms.py --repeat {args.repeat}; load average {os.getloadavg()}")
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        angles = (rng.normal(scale=0.15, size=(12288, 2, 3)).astype(dtype),
                  (rng.uniform(100, 500, 12288).astype(dtype), rng.uniform(1.5, 2.2, 12288).astype(dtype)))
        torsions = (rng.normal(scale=0.15, size=(8192, 3, 3)).astype(dtype),
                    (rng.uniform(1, 10, 8192).astype(dtype), rng.integers(1, 4, 8192).astype(dtype),
                     rng.uniform(0, 3, 8192).astype(dtype)))
        cases, pairs = {}, []
        for name, (q, params), forms in (("angle", angles, (angle_slices, angle_components)),
                                         ("torsion", torsions, (torsion_slices, torsion_components))):
            weights = np.ones(len(q), dtype=dtype)
            for label, form in zip(("slices", "components"), forms):
                cases[f"{name} Hessians, {label}"] = lambda f=form, q=q, p=params: kernel.term_hessians(f, q, p)
                cases[f"{name} gradient, {label}"] = (lambda f=form, q=q, p=params, w=weights:
                                                      kernel.term_energy_and_gradient(f, q, w, p))
            before, now = (kernel.term_hessians(f, q, params) for f in forms)
            pairs.append((name, float(np.max(np.abs(before - now)) / np.max(np.abs(before)))))
        for call in cases.values():
            call()
        times = interleaved_times(cases, args.repeat)
        print(f"{np.dtype(dtype).name}: max |difference| / max |Hessian|: "
              + ", ".join(f"{name} {d:.1e}" for name, d in pairs))
        for key, t in times.items():
            print(f"  {key:30s} least {min(t) * 1e3:7.1f} ms   median {np.median(t) * 1e3:7.1f} ms")
        for key in ("angle Hessians", "angle gradient", "torsion Hessians", "torsion gradient"):
            a, b = times[f"{key}, slices"], times[f"{key}, components"]
            print(f"  {key}: slices / components, medians {np.median(a) / np.median(b):.2f}, least {min(a) / min(b):.2f}")
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
