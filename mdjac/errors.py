"""The one error type for bad input.

Every check on user input raises :class:`InputError`, a :class:`ValueError` whose message is one
line that names the problem and says what to do. The command line prints that line and exits
non-zero; anything else that escapes is a bug in mdjac, not in the input.
"""


class InputError(ValueError):
    """Bad input: the message names the problem and the fix, on one line."""


def os_error_reason(err):
    """The first line of an OSError's message (HDF5's run to many lines), or its type's name."""
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__
