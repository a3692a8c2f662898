"""A rollback journal that makes appending to an HDF5 file safe against a kill at any moment.

HDF5 updates its metadata (dataset shapes, chunk indices) in place and may rewrite compressed
chunks in place, so a process killed while a batch is being written can leave a file that does
not open, or that opens with wrong data in frames written long before. mdjac therefore writes each
batch through :class:`JournaledFile`, a file object for h5py's ``fileobj`` driver that, before
overwriting any byte that existed when the batch began, appends the old bytes to
``<file>.journal`` (the pre-image). Writes past the old end of file need no journal.

    begin batch:  <file>.journal = header(old size L)       (before the file is touched)
    each write:   pre-image of the bytes below L -> journal, then the write
    commit:       close the HDF5 file, then delete the journal (the commit point)
    recover:      journal present -> put every pre-image back (last to first), cut the file
                  to L, delete the journal: the file is byte for byte what it was before the batch

A journal whose last record is incomplete was cut while being written, so the write it protects
never started; that record is ignored. Guarantees hold against a killed process (the operating
system keeps what was written); surviving a power cut would need fsync, which is not done.
:class:`CommittedView` reads the state before the batch without touching the file (for readers
that meet a journal, e.g. while a writer runs or after a kill).
"""
import io
import os
import struct

MAGIC = b"MDJACJ01"
HEADER = struct.Struct("<8sQ")     # magic, committed size L
RECORD = struct.Struct("<QQ")      # offset, length; then `length` bytes of pre-image


def journal_path(path):
    return f"{path}.journal"


def read_journal(path):
    """(committed size L, [(offset, bytes), ...] complete records in write order), or None if
    there is no journal or only a partial header (the file was not touched yet)."""
    try:
        with open(journal_path(path), "rb") as j:
            raw = j.read()
    except FileNotFoundError:
        return None
    if len(raw) < HEADER.size or raw[:8] != MAGIC:
        return None
    size = HEADER.unpack_from(raw)[1]
    records, pos = [], HEADER.size
    while pos + RECORD.size <= len(raw):
        offset, length = RECORD.unpack_from(raw, pos)
        pos += RECORD.size
        if pos + length > len(raw):
            break
        records.append((offset, raw[pos:pos + length]))
        pos += length
    return size, records


def recover(path):
    """Undo an interrupted batch: restore every pre-image, cut to the committed size, delete the
    journal. Returns True if there was something to undo. Call only while holding the writer's
    lock (no writer alive)."""
    journal = read_journal(path)
    if journal is not None:
        size, records = journal
        with open(path, "r+b") as f:
            for offset, data in reversed(records):
                f.seek(offset)
                f.write(data)
            f.truncate(size)
    if os.path.exists(journal_path(path)):
        os.remove(journal_path(path))
        return journal is not None
    return False


class JournaledFile(io.RawIOBase):
    """Read-write binary file whose overwrites below the size it had when opened are journaled
    first. Pass it to ``h5py.File(obj, 'r+')``; :meth:`commit` after the HDF5 file is closed."""

    def __init__(self, path):
        self.path = path
        self.abandoned = False
        self.f = open(path, "r+b")
        self.committed = os.fstat(self.f.fileno()).st_size
        self.journal = open(journal_path(path), "xb", buffering=0)
        self.journal.write(HEADER.pack(MAGIC, self.committed))

    def _save(self, start, stop):
        """Append the pre-image of bytes [start, stop) to the journal (unbuffered: it reaches the
        operating system before the write it protects)."""
        here = self.f.tell()
        self.f.seek(start)
        pre = self.f.read(stop - start)
        self.f.seek(here)
        self.journal.write(RECORD.pack(start, len(pre)) + pre)

    def write(self, data):
        if self.abandoned:      # HDF5 cleaning up after a failed batch: the file is recovered, not touched
            return len(data)
        pos = self.f.tell()
        if pos < self.committed:
            self._save(pos, min(pos + len(data), self.committed))
        return self.f.write(data)

    def truncate(self, size=None):
        if self.abandoned:
            return size
        size = self.f.tell() if size is None else size
        if size < self.committed:
            self._save(size, self.committed)
        return self.f.truncate(size)

    def readinto(self, buffer):
        if self.abandoned:
            buffer[:] = bytes(len(buffer))
            return len(buffer)
        return self.f.readinto(buffer)

    def read(self, n=-1):
        return bytes(max(n, 0)) if self.abandoned else self.f.read(n)

    def seek(self, pos, whence=0):
        return pos if self.abandoned else self.f.seek(pos, whence)

    def tell(self):
        return 0 if self.abandoned else self.f.tell()

    def flush(self):
        if not self.abandoned:
            self.f.flush()

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def commit(self):
        """The batch is complete: close the file, then delete the journal."""
        self.f.close()
        self.journal.close()
        os.remove(journal_path(self.path))

    def abandon(self):
        """Close without committing (after an error, e.g. a full disk): the journal stays for
        :func:`recover`. Never raises; from now on the object is a null device (writes dropped,
        reads zeros), so that HDF5 objects released later cannot touch the file that
        :func:`recover` puts back, nor fail on a closed one."""
        self.abandoned = True
        for f in (self.f, self.journal):
            try:
                f.close()            # a buffered write that fails here is undone by recover
            except OSError:
                pass


class CommittedView(io.RawIOBase):
    """Read-only view of a file as it was before its pending journal's batch (bytes past the
    committed size hidden, pre-images laid over the rest). Pass to ``h5py.File(obj, 'r')``."""

    def __init__(self, path, journal):
        self.f = open(path, "rb")
        self.size, self.records = journal
        self.pos = 0

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self.pos))
        self.f.seek(self.pos)
        data = bytearray(self.f.read(n))
        for offset, pre in reversed(self.records):    # earliest pre-image wins
            lo, hi = max(offset, self.pos), min(offset + len(pre), self.pos + len(data))
            if lo < hi:
                data[lo - self.pos:hi - self.pos] = pre[lo - offset:hi - offset]
        view[:len(data)] = data
        self.pos += len(data)
        return len(data)

    def read(self, n=-1):
        buffer = bytearray(self.size - self.pos if n is None or n < 0 else n)
        return bytes(buffer[:self.readinto(buffer)])

    def seek(self, pos, whence=0):
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        return self.pos

    def tell(self):
        return self.pos

    def readable(self):
        return True

    def seekable(self):
        return True

    def close(self):
        self.f.close()
        super().close()
