"""Input checks of term parameters: atom index arrays, finite numbers of the right shape, physical ranges.

Every check raises :class:`mdjac.InputError` with one line naming the term, the parameter and the fix.
Parameters are float64 numpy arrays once checked (:func:`mdjac.errors.finite_numbers`).
"""
import math

import numpy as np

from ..errors import InputError, finite_numbers

#: The largest equilibrium angle accepted, rad: pi, with room for pi rounded to float32 (MindSPONGE's tables).
ANGLE_MAX = math.pi + 1e-6

#: The fix named when a force constant is negative.
FORCE_CONSTANT_FIX = ("a force constant must not be negative (a negative one pushes atoms apart without bound); "
                      "give its magnitude")


def index_array(index, k, what):
    """Atom indices as an (M, k) int64 array.

    Parameters
    ----------
    index : array_like of int, (M, k) (or (M,) when k == 1)
    k : int, atoms per instance
    what : str, the name used in error messages

    Returns
    -------
    (M, k) int64 ndarray; (0, k) for an empty input.
    """
    a = np.asarray(index)
    if a.size == 0:
        return np.zeros((0, k), dtype=np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"{what} must be integer atom indices, got dtype {a.dtype}")
    a = a.astype(np.int64).reshape(-1, k) if a.ndim == 1 and k == 1 else a.astype(np.int64)
    if a.ndim != 2 or a.shape[1] != k:
        raise InputError(f"{what} has shape {np.shape(index)}: expected (M, {k}) atom indices")
    if a.min() < 0:
        raise InputError(f"{what} holds a negative atom index ({a.min()}): indices count from 0")
    return a


def scalar(value, what):
    """One finite number as a float, refusing arrays of several."""
    v = finite_numbers(value, what)
    if v.size != 1:
        raise InputError(f"{what} has shape {v.shape}: give one number")
    return float(v.reshape(()))


def at_least(v, lowest, what, fix, highest=np.inf):
    """``v`` unchanged, refusing values below ``lowest`` or above ``highest`` (physically impossible).

    Parameters
    ----------
    v : float or ndarray
    lowest, highest : float, the allowed range (inclusive)
    what : str, the term's name, the parameter and its unit
    fix : str, what to give instead
    """
    values = np.asarray(v)
    bad = (values < lowest) | (values > highest)
    if np.any(bad):
        allowed = f">= {lowest:g}" if highest == np.inf else f"in [{lowest:g}, {highest:g}]"
        raise InputError(f"{what} holds {values[bad].flat[0]:g}, not {allowed}: {fix}")
    return v


def per_instance(value, m, what, shape=()):
    """A scalar or (M, *shape) parameter broadcast to a contiguous (M, *shape) float64 array, checked finite."""
    v = finite_numbers(value, what)
    if v.ndim == len(shape):
        v = np.broadcast_to(v, (m,) + shape)
    if v.shape != (m,) + shape:
        raise InputError(f"{what} has shape {v.shape} but there are {m} instances: give one value per instance or a scalar")
    return np.ascontiguousarray(v)


def table_lookup(table, types, what):
    """``table[types]``, refusing a type outside the table and a table entry that is not finite.

    Parameters
    ----------
    table : array_like, (T, ...) values per atom type
    types : array_like of int, (N,)
    what : str, the table's name in error messages
    """
    table = finite_numbers(table, f"the {what} table")
    types = np.asarray(types)
    if not np.issubdtype(types.dtype, np.integer):
        raise InputError(f"atom types for {what} must be integers, got dtype {types.dtype}")
    if types.size and (types.min() < 0 or types.max() >= len(table)):
        raise InputError(f"atom types for {what} run from {types.min()} to {types.max()} but the table has {len(table)} "
                         "entries: the parameter table and the types do not match")
    return table[types]
