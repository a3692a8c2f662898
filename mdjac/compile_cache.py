"""MindSpore's compiled graphs kept across processes, one stored file per exact graph.

The first call of a compiled (``mindspore.jit``) function in a new process spends seconds in
MindSpore's graph compiler. MindSpore 2.7.1 can save and reload compiled graphs
(``MS_COMPILER_CACHE_ENABLE``), but on its own it can return a wrong graph: it names the k-th graph
a process compiles ``compile_cache_k.mindir`` in one directory (fixed at the process's first
cached compile), and loads that file for the k-th compile of a later process, checking only a
hash of the entry script's files, never the function, the constants the graph captured or the
input shapes. (Two processes that compile a plain and a DSF Coulomb term first swap graphs.)

This module keeps MindSpore's mechanism and takes the naming away from it:

* key: every graph mdjac compiles is named by a SHA-256 of (the builder kind, a fingerprint of
  the energy function: its code objects, closure cells, the globals it names, and the attribute
  values of the objects it is bound to and the classes of these objects, arrays by content; the
  input shapes and dtypes; mdjac's source; MindSpore's, numpy's and Python's versions, MindSpore's
  execution mode, syntax level and MS_* environment settings). The store holds one file per key,
  ``<dir>/<key>.mindir``. Functions defined outside mdjac, or that capture anything that cannot
  be fingerprinted (a MindSpore cell, an open file...), are compiled without the cache.
* staging: MindSpore's cache is switched on only around mdjac's first call of a graph
  (``MS_COMPILER_CACHE_ENABLE=1`` in the environment for that call; compiles outside it do not
  touch the cache and do not count), with a private directory per process and one fixed file
  standing for MindSpore's scan of the entry script's imports (:func:`_staging`). Just before the call
  the stored file of its key, if any, is copied into that directory as ``compile_cache_n.mindir``,
  n the number of cached compiles so far in the process (MindSpore's counter). After the call
  every graph file is removed from the directory; a graph MindSpore compiled (a miss) is first
  saved under its key.

Why no wrong graph can load: outside mdjac's calls the staging directory holds no graph; during
one it holds only the graph of that call's key, at index n. MindSpore loads a file only for a
compile whose index is the file's. If n were not MindSpore's counter, the compile would find no
file at its own index, recompile, and (MindSpore's rule) load nothing more in this process. So a
loaded graph is the stored graph of the key of the call that loads it, and the key names the
graph's content.

Threads: MindSpore's switch and counter are process-wide, so every MindSpore compile of the
process (``_JitExecutor.compile``, ``_CellGraphExecutor.compile``) is made to wait while mdjac's
window is open in another thread (:func:`_serialize_compiles`). MindSpore 2.7.1 itself does not
survive jit compiles in two threads at once (tried: with the cache, its static analysis raised
"Illegal AnfNode"; without it, the process spun without end), so mdjac compiles from one thread.

Settings: ``MDJAC_COMPILE_CACHE=0`` turns the cache off; ``MDJAC_COMPILE_CACHE_DIR`` sets the
store (default ``$XDG_CACHE_HOME/mdjac/compile`` or ``~/.cache/mdjac/compile``). If the user
switched MindSpore's own cache on (``MS_COMPILER_CACHE_ENABLE``, ``MS_COMPILER_CACHE_PATH`` or
``set_context(enable_compile_cache=...)``), mdjac leaves it alone and does not cache.
"""
import atexit
import hashlib
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import types

import numpy as np

#: MindSpore versions whose cache this module was checked against (file naming, counter, load rule).
VERIFIED_MINDSPORE = ("2.7.1",)

#: Top-level modules whose functions and classes are named, not described, in a key (their
#: code is fixed by MindSpore's and Python's versions, which are in the key; numpy and scipy are pinned).
LIBRARIES = ("mindspore", "numpy", "scipy", "math", "builtins", "operator", "functools")

_LOCK = threading.RLock()
_STATE = {}
#: Graphs of this process: "loaded" from the store, "stored" after compiling, "uncached" (compiled
#: without the cache: cache off, or a function that cannot be fingerprinted).
STATS = {"loaded": 0, "stored": 0, "uncached": 0}


class _NotFingerprintable(Exception):
    pass


def enabled():
    """True if graphs may be stored and loaded: not switched off (MDJAC_COMPILE_CACHE=0), a
    verified MindSpore, and MindSpore's own cache not switched on by the user."""
    if os.environ.get("MDJAC_COMPILE_CACHE", "1").strip().lower() in ("0", "off", "false", "no", ""):
        return False
    if _STATE.get("broken"):
        return False
    import mindspore as ms
    if ms.__version__ not in VERIFIED_MINDSPORE:
        return False
    user = os.environ.get("MS_COMPILER_CACHE_PATH") or ms.get_context("enable_compile_cache") is not None
    return not (user or ("MS_COMPILER_CACHE_ENABLE" in os.environ and not _STATE.get("inside")))


def cache_dir():
    """The store: MDJAC_COMPILE_CACHE_DIR, else $XDG_CACHE_HOME/mdjac/compile, else ~/.cache/mdjac/compile."""
    given = os.environ.get("MDJAC_COMPILE_CACHE_DIR")
    if given:
        return pathlib.Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "mdjac" / "compile"


# ----------------------------------------------------------------------------- the key
def _source_hash():
    """SHA-256 of every .py file of the mdjac package (path and content)."""
    if "source" not in _STATE:
        root = pathlib.Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
        _STATE["source"] = h.hexdigest()
    return _STATE["source"]


def _ours(module):
    return module == "mdjac" or str(module).startswith("mdjac.")


def _library(module):
    """Modules whose code is fixed by the versions in the key (MindSpore, numpy, the standard library)."""
    return str(module).split(".")[0] in LIBRARIES


def _code_names(code):
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _code_names(c)
    return names


def _code_bytes(code):
    parts = [code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode(),
             repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode()]
    for c in code.co_consts:
        parts.append(_code_bytes(c) if isinstance(c, types.CodeType) else (type(c).__name__ + repr(c)).encode())
    return b"\0".join(parts)


def _feed(h, obj, seen):
    """Add a description of ``obj`` to hash ``h``; raise _NotFingerprintable for what cannot be described."""
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
        return
    if type(obj) is np.ndarray or isinstance(obj, np.generic):      # not subclasses (a mask would be lost)
        a = np.ascontiguousarray(obj)
        if a.dtype == object:
            raise _NotFingerprintable("object array")
        h.update(f"array:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
        return
    if isinstance(obj, (types.ModuleType,)):
        h.update(f"module:{obj.__name__};".encode())
        return
    if isinstance(obj, type) and _ours(obj.__module__):
        if id(obj) in seen:
            h.update(f"seen:{seen[id(obj)][0]};".encode())
            return
        seen[id(obj)] = (len(seen), obj)
        h.update(f"class:{obj.__module__}.{obj.__qualname__}(".encode())
        for klass in obj.__mro__:               # class attributes as they are now (not as the source says)
            if not _ours(klass.__module__):
                _feed(h, klass, seen)           # a library base: named
                continue
            for name in sorted(vars(klass)):
                if name.startswith(("__", "_abc_")):     # dunders and abc's bookkeeping of abstract classes
                    continue
                value = vars(klass)[name]
                if isinstance(value, property):
                    value = (value.fget, value.fset)
                elif isinstance(value, (staticmethod, classmethod)):
                    value = value.__func__
                h.update(name.encode() + b"=")
                _feed(h, value, seen)
        h.update(b")")
        return
    if isinstance(obj, (type, types.BuiltinFunctionType)) or (isinstance(obj, types.FunctionType)
                                                             and _library(obj.__module__)):
        module = getattr(obj, "__module__", None) or ""
        bound = getattr(obj, "__self__", None)
        if not (_ours(module) or _library(module)) or not (bound is None or isinstance(bound, types.ModuleType)):
            raise _NotFingerprintable(f"{module}.{obj.__qualname__}")
        h.update(f"{type(obj).__name__}:{module}.{obj.__qualname__};".encode())    # versioned code
        return
    if id(obj) in seen:                         # a cycle: name it, do not descend again
        h.update(f"seen:{seen[id(obj)][0]};".encode())
        return
    seen[id(obj)] = (len(seen), obj)            # obj kept alive: no temporary's id is reused
    if isinstance(obj, (tuple, list)):
        h.update(f"{type(obj).__name__}:{len(obj)}(".encode())
        for item in obj:
            _feed(h, item, seen)
        h.update(b")")
        return
    if isinstance(obj, dict):
        h.update(f"dict:{len(obj)}(".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k, seen)
            _feed(h, obj[k], seen)
        h.update(b")")
        return
    if isinstance(obj, types.MethodType):
        h.update(b"method(")
        _feed(h, obj.__func__, seen)
        _feed(h, obj.__self__, seen)
        h.update(b")")
        return
    if isinstance(obj, types.FunctionType):
        if not _ours(obj.__module__):
            raise _NotFingerprintable(f"function {obj.__module__}.{obj.__qualname__}")
        h.update(f"function:{obj.__module__}.{obj.__qualname__}(".encode())
        h.update(_code_bytes(obj.__code__))
        _feed(h, obj.__defaults__, seen)
        _feed(h, obj.__kwdefaults__, seen)
        _feed(h, tuple(c.cell_contents for c in (obj.__closure__ or ())), seen)
        names = _code_names(obj.__code__)
        refs = {}
        for n in sorted(names & set(obj.__globals__)):
            value = refs[n] = obj.__globals__[n]
            if isinstance(value, types.ModuleType) and _ours(value.__name__):
                # module.attribute: the attributes this code may read, as they are now
                refs[n] = (value.__name__, {a: vars(value)[a] for a in sorted(names & set(vars(value)))})
        _feed(h, refs, seen)
        h.update(b")")
        return
    if type(obj).__module__.startswith("numba.") and isinstance(getattr(obj, "py_func", None), types.FunctionType):
        h.update(b"numba(")     # a numba-compiled helper of ours: named by its Python function
        _feed(h, obj.py_func, seen)
        h.update(b")")
        return
    if _ours(type(obj).__module__) and hasattr(obj, "__dict__") and not hasattr(type(obj), "__slots__"):
        h.update(b"object(")
        _feed(h, type(obj), seen)
        _feed(h, vars(obj), seen)
        h.update(b")")
        return
    raise _NotFingerprintable(f"{type(obj).__module__}.{type(obj).__qualname__}")


def graph_key(kind, fn, signature):
    """SHA-256 hex naming the graph of builder ``kind`` on ``fn`` for inputs ``signature``
    (a tuple of (shape, dtype string)), or None if ``fn`` cannot be fingerprinted."""
    import mindspore as ms
    h = hashlib.sha256()
    settings = sorted((k, v) for k, v in os.environ.items() if k.startswith("MS_") and not k.startswith("MS_COMPILER_CACHE"))
    h.update(repr((kind, signature, ms.__version__, np.__version__, sys.version, ms.get_context("device_target"),
                   ms.get_context("mode"), ms.get_context("jit_syntax_level"), settings, _source_hash())).encode())
    try:
        _feed(h, fn, {})
    except (_NotFingerprintable, RecursionError):
        return None
    return h.hexdigest()


# ----------------------------------------------------------------------------- staging and store
def _staging():
    """This process's staging directory (MindSpore's compile_cache_path), made on first use.

    MindSpore loads a cached graph only if a hash of "the entry script's dependencies" matches the
    one stored beside it. mdjac's key already names everything a graph depends on, so the
    dependency list it hands MindSpore (:func:`_dependencies`) is one fixed file of the staging
    directory, and the matching hash is written there: the cache works whatever started the
    process (``python -m mdjac``, whose relative import MindSpore's own scan cannot follow,
    ``python -c``, pytest).
    """
    if "graph_dir" not in _STATE:
        import mindspore as ms
        _remove_stale_staging()
        root = pathlib.Path(tempfile.mkdtemp(prefix=f"mdjac-compile-{os.getpid()}-"))
        atexit.register(shutil.rmtree, str(root), True)
        graph_dir = root / "rank_0" / "graph_cache"
        graph_dir.mkdir(parents=True)
        dependency = root / "dependency"
        dependency.write_text("mdjac.compile_cache: the graphs are named by their keys\n")
        # MindSpore's hash: SHA-256 of the concatenated SHA-256 hex digests of the dependency files.
        digest = hashlib.sha256(dependency.read_bytes()).hexdigest()
        (graph_dir / "compile_dependency.hash").write_text(hashlib.sha256(digest.encode()).hexdigest())
        ms.set_context(compile_cache_path=str(root))
        _serialize_compiles()
        _STATE.update(graph_dir=graph_dir, count=0, dependencies=[str(dependency)])
    return _STATE["graph_dir"]


def _serialize_compiles():
    """Make every MindSpore compile of the process (its two Python entry points: jit functions and
    cells) wait while mdjac's cache is switched on in another thread: MindSpore's switch and its
    index counter are process-wide, so a compile of another thread inside mdjac's window could
    take the index of mdjac's staged graph and load it."""
    from mindspore.common import api

    def waiting(compile_method):
        def compile_after_mdjac(*args, **kwargs):
            with _LOCK:
                return compile_method(*args, **kwargs)
        compile_after_mdjac.__wrapped__ = compile_method
        return compile_after_mdjac
    for executor in (api._JitExecutor, api._CellGraphExecutor):
        if not hasattr(executor.compile, "__wrapped__"):
            executor.compile = waiting(executor.compile)


def _remove_stale_staging(age=600):
    """Remove the staging directories of processes that were killed (no exit handler ran): named
    mdjac-compile-PID-*, PID no longer running, untouched for ``age`` seconds."""
    import time
    for path in pathlib.Path(tempfile.gettempdir()).glob("mdjac-compile-*-*"):
        try:
            pid = int(path.name.split("-")[2])
            if time.time() - path.stat().st_mtime < age:
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, OSError):
            continue


def _dependencies():
    """Stands for mindspore.common.api._get_compile_cache_dep_files during mdjac's calls."""
    return list(_STATE["dependencies"])


def _graph_files(graph_dir):
    return {p: p.stat().st_mtime_ns for p in graph_dir.glob("compile_cache_*.mindir")}


def _store(source, key):
    """Copy a freshly compiled graph into the store under ``key`` (atomic: copy, then rename)."""
    store = cache_dir()
    try:
        store.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=store, suffix=".part")
        os.close(fd)
        shutil.copyfile(source, tmp)
        os.replace(tmp, store / f"{key}.mindir")
    except OSError:
        pass                                    # a store we cannot write is a cache miss next time


def call_first(compiled, kind, fn, args):
    """``compiled(*args)`` for the first time with these input shapes in this process, through
    the cache: load the stored graph of its key if there is one, else compile and store it.

    compiled: the ``mindspore.jit`` function built by ``kind`` on ``fn``; args: MindSpore tensors.
    """
    key = None
    if enabled():
        key = graph_key(kind, fn, tuple((tuple(a.shape), str(a.dtype)) for a in args))
    if key is None:
        STATS["uncached"] += 1
        with _LOCK:
            return compiled(*args)
    from mindspore.common import api
    with _LOCK:
        try:
            graph_dir = _staging()
        except OSError:
            _STATE["broken"] = True             # no staging directory: not again in this process
            STATS["uncached"] += 1
            return compiled(*args)
        n = _STATE["count"]
        staged = graph_dir / f"compile_cache_{n}.mindir"
        stored = cache_dir() / f"{key}.mindir"
        placed = None
        if stored.is_file():
            try:
                shutil.copyfile(stored, staged)
                placed = staged.stat().st_mtime_ns
            except OSError:
                placed = None
        before, compiles = _graph_files(graph_dir), len(api.ms_compile_cache)
        _STATE["inside"] = True
        os.environ["MS_COMPILER_CACHE_ENABLE"] = "1"
        scan, api._get_compile_cache_dep_files = api._get_compile_cache_dep_files, _dependencies
        try:
            return compiled(*args)
        finally:
            api._get_compile_cache_dep_files = scan
            del os.environ["MS_COMPILER_CACHE_ENABLE"]
            _STATE["inside"] = False
            after = _graph_files(graph_dir)
            fresh = [p for p, t in after.items() if before.get(p) != t]
            compiled_now = len(api.ms_compile_cache) > compiles
            if compiled_now:
                _STATE["count"] = n + 1
            if len(fresh) == 1:                 # MindSpore compiled this graph and saved it
                _store(fresh[0], key)
                STATS["stored"] += 1
                _STATE["count"] = int(fresh[0].stem.rsplit("_", 1)[1]) + 1
            elif compiled_now and placed is not None and not fresh:
                STATS["loaded"] += 1
            for p in after:
                p.unlink(missing_ok=True)
