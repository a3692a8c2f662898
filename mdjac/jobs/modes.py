"""``mdjac modes``: the normal modes of a stored frame, or of a system at its energy minimum.

A frame of an mdjac output is analysed as it is, with its stored Jacobian (or one computed from
the system it records); a system is minimised first (:mod:`mdjac.analysis.minimise`) and its
Jacobian computed there. The modes themselves are :func:`mdjac.analysis.modes.normal_modes`.
"""
import os
import time

import numpy as np

from ..catalogue import is_system_file, resolve_system
from ..errors import InputError
from ..io import format_of, open_trajectory, read_metadata


def modes_text(source, frame=0, k=None, system=None, minimise=True, project="auto", gtol=1e-6, sigma=None,
               max_memory=None, system_options=None):
    """The text ``mdjac modes`` prints: a table of normal-mode frequencies.

    Parameters
    ----------
    source : an H5MD file written by mdjac (frame ``frame`` is analysed as it is, with its stored
        Jacobian, or one computed from ``system`` if it has none), a catalogue system name or
        file, or a loaded System (minimised first unless ``minimise`` is False).
    frame : int, the frame of a file.
    k : int or None, the k lowest modes only (smallest eigenvalues, imaginary ones first).
    system : catalogue name for a file's masses or potential (default: the system the file records).
    minimise : bool, minimise a system before its modes.
    project : 'auto' (:func:`mdjac.analysis.modes.default_projection`), None, 'molecule' or 'periodic'.
    gtol : float, the minimiser's tolerance, kJ mol^-1 nm^-1.
    sigma : None, or cm^-1: the k modes nearest it instead of the lowest.
    max_memory : None (the memory available) or bytes: the solver's memory limit.
    system_options : dict or None, :func:`mdjac.load_system`'s loader options for a force-field file
        (default for a file's recorded system: the options it records).

    Returns
    -------
    str : the table, titled with what was analysed and the seconds it took.
    """
    from ..analysis.modes import default_projection, normal_modes

    t0 = time.perf_counter()
    options = {key: value for key, value in (system_options or {}).items() if value is not None}
    if not isinstance(source, (str, os.PathLike)):
        case = _system_case(source, minimise, gtol)
    elif os.path.isfile(source) and not is_system_file(source):
        case = _file_case(os.fspath(source), frame, system, options)
    else:
        case = _system_case(resolve_system(source, **options), minimise, gtol)
    jacobian, masses, x, box, where = case
    proj = default_projection(jacobian, box, masses) if project == "auto" else project
    nm = normal_modes(jacobian, masses, positions=x, project=proj, k=k, sigma=sigma, max_memory=max_memory)
    return nm.table(title=f"normal modes of {where} [{time.perf_counter() - t0:.1f} s]")


def _file_frame(path, frame):
    """(Frame, masses (N,) amu or None, the writer's metadata) of frame ``frame``."""
    with open_trajectory(path) as traj:
        n = len(traj)
        if not isinstance(frame, int) or not -n <= frame < n:
            raise InputError(f"{path}: frame {frame} is out of range; the file has {n} frames (0..{n - 1})")
        fr, masses = traj[int(frame)], traj.masses
    return fr, masses, read_metadata(path)


def _file_case(path, frame, system, options):
    """(jacobian, masses, positions, box, description) of a frame of an mdjac H5MD file, as stored.

    Masses come from the file, else from ``system`` (a name, or the one the file records); the
    Jacobian from the file, else from that system's potential at the frame's positions. ``options``:
    loader options of ``system`` (a recorded system is loaded with the options the file records).
    """
    if format_of(path) != "h5md":
        raise InputError(f"{path} is not an H5MD file; give an mdjac H5MD file or a system name "
                         f"(run mdjac compute on other trajectories first)")
    fr, masses, metadata = _file_frame(path, frame)
    recorded = metadata.get("system")
    x = np.asarray(fr.positions, dtype=np.float64)
    jacobian = fr.jacobian
    sysobj = None
    if system is not None:
        sysobj = resolve_system(system, **options)
        if sysobj.n_atoms != len(x):
            raise InputError(f"{path} holds {len(x)} atoms but system {sysobj.name} has {sysobj.n_atoms}; "
                             "give the system the file was computed with")
    if masses is None or jacobian is None:
        name = system or recorded
        if name is None:
            raise InputError(f"{path} stores no masses or no Jacobian and names no system; pass a system")
        sysobj = sysobj or resolve_system(name, **(options or metadata.get("system_options") or {}))
        masses = sysobj.masses if masses is None else masses
        jacobian = sysobj.potential.force_jacobian(x, box=fr.box) if jacobian is None else jacobian
    return jacobian, masses, x, fr.box, f"{path}, frame {frame} (step {fr.step}, {fr.time:g} ps), as stored"


def _system_case(sysobj, minimise, gtol):
    """(jacobian, masses, positions, box, description) of a catalogue System, minimised first."""
    if getattr(sysobj, "potential", None) is None:
        raise InputError(f"system {sysobj.name} has no potential energy (not a molecule); pick a molecular system")
    x = np.asarray(sysobj.positions, dtype=np.float64)
    where = f"system {sysobj.name}" + (f" ({sysobj.electrostatics})" if getattr(sysobj, "electrostatics", None) else "")
    if minimise:
        from ..analysis.minimise import minimise_energy
        x, fmax = minimise_energy(sysobj.potential, x, box=sysobj.box, gtol=gtol)
        where += f", minimised (largest force {fmax:.2g} kJ mol^-1 nm^-1)"
    return sysobj.potential.force_jacobian(x, box=sysobj.box), sysobj.masses, x, sysobj.box, where
