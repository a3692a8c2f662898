"""How an mdjac process takes memory for each new frame: freed memory kept for the next frame.

A frame's work allocates large numpy arrays (pairs, their geometry, the Jacobian's blocks: hundreds
of MB for 25,000 atoms) and frees them before the next frame. By default glibc hands each such
array back to the kernel (mmap and munmap), so the next frame touches fresh pages again, a page
fault each; and numpy advises the kernel to back them with transparent huge pages, which on a
kernel that defragments on that advice (/sys/kernel/mm/transparent_hugepage/defrag "madvise", a
common default) can stall each fault in memory compaction. On the 2-core machine this made the
same new frame's force take several times as long from one frame to the next (measured by
benchmarks/probe_process_memory.py; README, "Memory of a new frame").

:func:`keep_freed_memory` turns both off for this process: glibc serves large arrays from its heap
and keeps what is freed for the next ones (mallopt M_MMAP_MAX 0, M_TRIM_THRESHOLD very large), and
numpy gives no huge-page advice. The process's resident size then stays at its peak instead of
falling between frames. The ``mdjac`` program and the Dask workers of ``mdjac compute --workers``
call it; a script that computes frame after frame may too. MDJAC_KEEP_MEMORY=0 in the environment
leaves the process as it is.
"""
import ctypes
import ctypes.util
import os
import sys

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: M_TRIM_THRESHOLD's value for "never return the heap's free top": -1, which glibc reads as the largest size_t
_NEVER = -1

_done = {}


def keep_freed_memory():
    """Keep this process's freed memory for its next frames (module docstring), once per process.

    Returns
    -------
    dict : what was set, ``{"glibc": bool, "numpy_huge_page_advice": bool}`` (glibc: its mallopt calls
    succeeded; numpy_huge_page_advice: numpy's advice after the call), or ``{}`` when
    MDJAC_KEEP_MEMORY=0 leaves the process as it is.
    """
    if os.environ.get("MDJAC_KEEP_MEMORY", "1") == "0":
        return {}
    if not _done:
        _done["glibc"] = _glibc_keeps_freed_memory()
        _done["numpy_huge_page_advice"] = _no_numpy_huge_page_advice()
    return dict(_done)


def _glibc_keeps_freed_memory():
    """mallopt: no mmap for large blocks, no trimming of the heap; False on a C library without mallopt."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER))


def _no_numpy_huge_page_advice():
    """Turn numpy's transparent-huge-page advice off unless the user chose (NUMPY_MADVISE_HUGEPAGE); returns
    the advice in force. Before numpy is imported this only sets that variable, which numpy reads when it is
    imported: the ``mdjac`` program calls this before it blocks Ctrl-C for the threads libraries start
    (mdjac.jobs.interrupts), and importing numpy starts BLAS threads."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return os.environ["NUMPY_MADVISE_HUGEPAGE"] != "0"
    if "numpy" not in sys.modules:
        os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"
        return False
    try:
        from numpy.core.multiarray import _set_madvise_hugepage
    except ImportError:
        try:
            from numpy._core.multiarray import _set_madvise_hugepage     # numpy 2
        except ImportError:      # a numpy without the switch gives no advice to turn off
            return False
    _set_madvise_hugepage(False)
    return False
