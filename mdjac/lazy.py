"""Public names of a package imported on first use (PEP 562 module ``__getattr__``).

A package whose modules load heavy libraries (MindSpore, MindSPONGE, numpy) names what it offers
in a table and imports the defining module only when a name is first asked for. This module
imports only the standard library: the command line imports :mod:`mdjac.jobs.interrupts`
through it before it blocks Ctrl-C, and nothing heavier may load before that.
"""
import importlib


def lazy_getattr(package, public, modules=()):
    """The module ``__getattr__`` of ``package`` that imports its public names on first use.

    Parameters
    ----------
    package : str, the package's ``__name__``.
    public : dict, public name -> the module of the package that defines it (relative, e.g.
        'analysis.modes').
    modules : sequence of str, submodules that are public names themselves (e.g. 'terms').

    Returns
    -------
    function name -> the attribute, raising AttributeError for any other name.
    """
    def __getattr__(name):
        if name in public:
            return getattr(importlib.import_module(f".{public[name]}", package), name)
        if name in modules:
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
