"""A fresh process for tests/test_compile_cache.py: compiles graphs through mdjac's kernel in the
order given and checks every result against float64 formulas.

Run: python compile_cache_child.py OP ...  with OP one of
  ewald:N       Coulomb(method="ewald") phi'(r), phi''(r) on N distances (E = qq erfc(a r)/r)
  exclusion:N   EwaldExclusion (E = -qq erf(a r)/r): the same inputs as ewald:N, another graph
  coulomb+lj:N  a TermGroup (plain Coulomb, Lennard-Jones): inputs (r, qq, sigma, eps)
  lj+coulomb:N  a TermGroup (Lennard-Jones, plain Coulomb): inputs (r, sigma, eps, qq), the same shapes
  userjit       a mindspore.jit function that is not mdjac's (compiled outside the cache)
  bump, unbump  move mdjac's count of cached compiles off MindSpore's by +1 / -1
Prints a JSON line: {"errors": {OP: max relative error of phi' and phi''}, "keys": {OP: the graph's
key}, "stats": STATS, "stored": [files in the store]}.
"""
import json
import math
import os
import sys

import numpy as np
from scipy.special import erf

from mdjac import compile_cache, kernel, terms
from mdjac.potential import TermGroup

ALPHA = 3.0


def erf_over_r(r):
    """f = erf(a r)/r and its first two derivatives (float64)."""
    e = erf(ALPHA * r)
    g = 2 * ALPHA / math.sqrt(math.pi) * np.exp(-(ALPHA * r) ** 2)
    return e / r, g / r - e / r ** 2, -2 * ALPHA ** 2 * g - 2 * g / r ** 2 + 2 * e / r ** 3


def lennard_jones(r, sigma, eps):
    """phi', phi'' of 4 eps ((s/r)^12 - (s/r)^6)."""
    s6 = (sigma / r) ** 6
    return 4 * eps * (-12 * s6 * s6 + 6 * s6) / r, 4 * eps * (156 * s6 * s6 - 42 * s6) / r ** 2


def case(op, n):
    """(energy function, inputs r, params, exact phi', exact phi'')."""
    r = np.linspace(0.3, 0.9, n)
    rng = np.random.default_rng(n)
    qq = rng.uniform(-100, 100, n)
    sigma, eps = rng.uniform(0.25, 0.35, n), rng.uniform(0.2, 1.0, n)
    charges = np.array([0.5, -0.5, 0.3, -0.3])
    if op == "ewald":
        _, f1, f2 = erf_over_r(r)
        term = terms.Coulomb(charges, cutoff=1.0, method="ewald", alpha=ALPHA)
        return term.radial_energy, r, (qq, np.full(n, ALPHA)), qq * (-1 / r ** 2 - f1), qq * (2 / r ** 3 - f2)
    if op == "exclusion":
        _, f1, f2 = erf_over_r(r)
        term = terms.EwaldExclusion(charges, [[0, 1]], alpha=ALPHA)
        return term.radial_energy, r, (qq, np.full(n, ALPHA)), -qq * f1, -qq * f2
    coulomb = terms.Coulomb(charges, cutoff=1.0)
    lj = terms.LennardJones([0.3], [0.5], np.zeros(4, int), cutoff=1.0)
    l1, l2 = lennard_jones(r, sigma, eps)
    d1, d2 = l1 - qq / r ** 2, l2 + 2 * qq / r ** 3
    if op == "coulomb+lj":
        return TermGroup((coulomb, lj), (1, 2)).radial_energy, r, (qq, sigma, eps), d1, d2
    if op == "lj+coulomb":
        return TermGroup((lj, coulomb), (2, 1)).radial_energy, r, (sigma, eps, qq), d1, d2
    raise SystemExit(f"unknown op {op}")


def main(ops):
    errors, keys = {}, {}
    for op in ops:
        if op == "userjit":
            import mindspore as ms

            def triple(x):
                return x * 3.0
            assert float(ms.jit(triple)(ms.Tensor(np.ones(4, np.float32))).asnumpy()[0]) == 3.0
            continue
        if op in ("bump", "unbump"):
            compile_cache._STATE["count"] += 1 if op == "bump" else -1
            continue
        name, n = op.split(":")
        fn, r, params, e1, e2 = case(name, int(n))
        d1, d2 = kernel.elementwise_derivatives(fn, r, params)
        signature = tuple(((len(r),), "Float64") for _ in (r,) + params)
        keys[op] = compile_cache.graph_key("elementwise_derivatives", fn, signature)
        errors[op] = max(float(np.max(np.abs(d1 - e1) / np.abs(e1))), float(np.max(np.abs(d2 - e2) / np.abs(e2))))
    store = compile_cache.cache_dir()
    print(json.dumps({"errors": errors, "keys": keys, "stats": compile_cache.STATS,
                      "stored": sorted(os.listdir(store)) if store.is_dir() else []}))


if __name__ == "__main__":
    main(sys.argv[1:])
