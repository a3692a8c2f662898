"""Ctrl-C (SIGINT) in the command line and the jobs, in one place.

A SIGINT that lands inside MindSpore ends the process through MindSpore's own C handler; one that
lands inside h5py raises KeyboardInterrupt in the middle of a write, which HDF5 can swallow,
leaving frames of zeros that the file calls complete. So:

* the command line blocks SIGINT in the main thread before any library starts threads of its own
  (:func:`hold_interrupts`): threads inherit the mask of the thread that starts them, so numpy's,
  MindSpore's and tqdm's never receive Ctrl-C;
* commands that write nothing let it through at once (:func:`release_interrupts`);
* the jobs that write files take it only where stopping is safe, between frames
  (:class:`DeferredInterrupt`), so a Ctrl-C is answered within one frame with every computed
  frame written;
* :func:`is_interrupt` recognises a Ctrl-C that surfaced as another exception.

This module imports nothing but the standard library: the command line imports it before it
blocks Ctrl-C.
"""
import signal
import threading


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


def hold_interrupts():
    """Block SIGINT in the main thread; returns what :func:`restore_interrupts` puts back.

    Returns
    -------
    (previous handler, previous signal mask), or None outside the main thread (signals are
    handled there only).
    """
    if not _in_main_thread():
        return None
    return signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def release_interrupts():
    """Let Ctrl-C reach the main thread again, as KeyboardInterrupt (commands that write nothing)."""
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def restore_interrupts(previous):
    """Put back the handler and mask :func:`hold_interrupts` returned (None: nothing to do).

    The command line is also run in-process (by tests), so it leaves SIGINT as it found it.
    """
    if previous is not None:
        signal.signal(signal.SIGINT, previous[0])
        signal.pthread_sigmask(signal.SIG_SETMASK, previous[1])


def is_interrupt(err):
    """True if the exception ``err`` is a Ctrl-C: a KeyboardInterrupt, or the ImportError of a
    library whose loading a KeyboardInterrupt stopped."""
    if isinstance(err, KeyboardInterrupt):
        return True
    return isinstance(err, ImportError) and isinstance(err.__cause__ or err.__context__, KeyboardInterrupt)


class DeferredInterrupt:
    """Ctrl-C held back until a safe point between frames.

    While the guard is active, SIGINT is blocked in this thread and in every thread started after
    (MindSpore's and tqdm's inherit the mask), and :meth:`check`, called where stopping is safe,
    installs its own handler, lets a pending SIGINT through and raises KeyboardInterrupt there.
    Outside the main thread (where signals cannot be handled) it does nothing.
    """

    def __init__(self):
        self.active = _in_main_thread()
        self.requested = False

    def _flag(self, signum, frame):
        self.requested = True

    def __enter__(self):
        if self.active:
            self._handler = signal.getsignal(signal.SIGINT)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def check(self):
        """Raise KeyboardInterrupt if Ctrl-C was pressed since the last check."""
        if self.active:
            signal.signal(signal.SIGINT, self._flag)       # MindSpore may have put its own in place
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})   # a pending SIGINT lands here
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.active:
            signal.signal(signal.SIGINT, self._handler if self._handler is not None else signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
