"""One writer per output: an exclusive advisory lock on ``<output>.lock``."""
import fcntl
import os

from ..errors import InputError, OutputLocked


class OutputLock:
    """Exclusive advisory lock on ``<path>.lock`` (fcntl.flock), held while a writer lives; a second
    writer is refused with :class:`mdjac.errors.OutputLocked`.

    The kernel releases it when the process dies, so a killed run never blocks its resume.
    """

    def __init__(self, path):
        self.path = f"{path}.lock"
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise InputError(f"cannot write next to {path}: {err.strerror}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            raise OutputLocked(f"{path} is being written by another mdjac (pid {owner}); "
                             "wait for it to finish or write elsewhere") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self):
        if self.fd is not None:
            try:
                os.unlink(self.path)
            finally:
                os.close(self.fd)
                self.fd = None
