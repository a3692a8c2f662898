"""The one error type for bad input.

Every check on user input raises :class:`InputError`, a :class:`ValueError` whose message is one
line that names the problem and says what to do. The command line prints that line and exits
non-zero; anything else that escapes is a bug in mdjac, not in the input.

This module imports nothing at load: the command line imports it before it blocks Ctrl-C, and a
library loaded earlier (numpy starts its BLAS threads on import) would start threads that still
take SIGINT (see mdjac.jobs.interrupts).
"""


class InputError(ValueError):
    """Bad input: the message names the problem and the fix, on one line."""


class OutputLocked(InputError):
    """An output that another writer holds (its lock, :class:`mdjac.io.output_lock.OutputLock`):
    bad input to the user, and something a task may wait for to end."""


def finite_numbers(value, what):
    """``value`` as a float64 array, refusing anything that is not numbers, and NaN or inf.

    Parameters
    ----------
    value : anything array-like.
    what : str, the name of the value in the message (with its owner: a term, a file).
    """
    import numpy as np
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be numbers, got {str(value)[:40]!r}: give numbers in the documented units") from None
    if not np.all(np.isfinite(v)):
        raise InputError(f"{what} holds NaN or inf: give finite numbers")
    return v


def os_error_reason(err):
    """The first line of an OSError's message (HDF5's run to many lines), or its type's name."""
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__
