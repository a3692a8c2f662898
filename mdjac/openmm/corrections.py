"""CustomNonbondedForce's long-range correction, as OpenMM computes it (CustomNonbondedForceImpl).

With CutoffPeriodic and ``useLongRangeCorrection``, OpenMM adds E = c / V (V the box volume, nm^3):
the particles are grouped in classes of equal per-particle parameters, n_ab counts the pairs of
classes a <= b (without interaction groups n_aa = n_a (n_a + 1)/2 and n_ab = n_a n_b; with them,
the pairs the groups name, each unordered pair of a group once), and

    c = 2 pi N^2 / (N (N + 1)/2) sum_{a<=b} n_ab I_ab,
    I_ab = int_{r_c}^inf E_ab(r) r^2 dr + int_{r_s}^{r_c} E_ab(r) (1 - S(r)) r^2 dr,

N the number of particles, E_ab the energy expression with the two classes' parameters, S the
switch (the second integral only with one). OpenMM integrates by its own iterated midpoint rule
(the first integral in x = r_c / r), stopping at a relative change below 1e-5; :func:`openmm_integral`
is that rule, so energies agree with OpenMM's to its rounding. E depends on the box alone: no
force, no Jacobian at a fixed box (the term is mdjac.terms.LongRangeDispersion, E = c / V).
"""
import math

import numpy as np

from ..errors import InputError


def _midpoint(weighted, what):
    """OpenMM's iterated midpoint rule for int_0^1 weighted(x) dx (points tripled, old ones reused)."""
    total, points = 0.0, 1
    for iteration in range(11):
        old = total
        i = np.arange(points)
        x = (i[i % 3 != 1] + 0.5) / points
        total = float(np.sum(weighted(x))) / points + old / 3.0
        change = abs((total - old) / total) if total != 0 else 0.0
        if iteration > 2 and (change < 1e-5 or total == 0):
            return total
        if iteration > 7 and change > 1e-3:
            break
        points *= 3
    raise InputError(f"the long-range correction of the CustomNonbondedForce does not converge ({what}): "
                     "the energy must go to 0 faster than 1/r^3; switch the correction off")


def openmm_integral(energy, cutoff, switch=None):
    """I = int_{r_c}^inf E r^2 dr (+ int_{r_s}^{r_c} E (1 - S) r^2 dr with a switch), nm^3 kJ/mol, by OpenMM's rule.

    energy: a function of r (P,) nm -> (P,) kJ/mol in numpy float64.
    """
    def tail(x):
        r = cutoff / x
        return energy(r) * r ** 4
    value = _midpoint(tail, "beyond the cutoff") / cutoff
    if switch is not None:
        def switched(x):
            r = switch + x * (cutoff - switch)
            return x * x * x * (10.0 + x * (-15.0 + x * 6.0)) * energy(r) * r * r
        value += _midpoint(switched, "over the switch") * (cutoff - switch)
    return value


def pair_class_counts(classes, groups=None):
    """(C, C) upper-triangular counts n_ab of particle pairs by class, as OpenMM counts them.

    classes: (N,) int class of each particle, 0..C-1; groups: None or [(set1, set2)] of atom indices.
    """
    c = int(classes.max()) + 1
    if groups is None:
        n = np.bincount(classes, minlength=c).astype(np.float64)
        counts = np.triu(np.outer(n, n))
        counts[np.diag_indices(c)] = n * (n + 1) / 2
        return counts
    counts = np.zeros((c, c))
    for set1, set2 in groups:
        set1, set2 = np.unique(np.asarray(list(set1), np.int64)), np.unique(np.asarray(list(set2), np.int64))
        n1, n2 = (np.bincount(classes[s], minlength=c).astype(np.float64) for s in (set1, set2))
        both = np.bincount(classes[np.intersect1d(set1, set2)], minlength=c).astype(np.float64)
        ordered = np.outer(n1, n2)                     # pairs (a1 in set1, a2 in set2) by (class a1, class a2)
        unordered = np.triu(ordered + ordered.T)
        unordered[np.diag_indices(c)] = np.diag(ordered)
        skipped = np.triu(np.outer(both, both))        # pairs of the intersection OpenMM skips (a1 >= a2)
        skipped[np.diag_indices(c)] = both * (both + 1) / 2
        counts += unordered - skipped
    return counts


def correction_coefficient(expression, table, names, globals_, cutoff, switch=None, groups=None):
    """c (kJ mol^-1 nm^3) of E = c / V for a CustomNonbondedForce (module docstring).

    expression: mdjac.openmm.expressions.Expression of the energy (in r); table: (N, P) per-particle
    parameters; names: their P names; globals_: {name: value}; cutoff, switch: nm; groups: as
    :func:`pair_class_counts`.
    """
    n = len(table)
    rows, classes = np.unique(table, axis=0, return_inverse=True)
    counts = pair_class_counts(classes.reshape(-1), groups)
    total = 0.0
    for a, b in zip(*np.nonzero(counts)):
        values = dict(globals_)
        for k, name in enumerate(names):
            values[name + "1"], values[name + "2"] = rows[a, k], rows[b, k]

        def energy(r):
            return np.asarray(expression.numpy({**values, "r": r}), dtype=np.float64) * np.ones_like(r)
        total += counts[a, b] * openmm_integral(energy, cutoff, switch)
    return 2.0 * math.pi * n * n * total / (n * (n + 1) / 2.0)
