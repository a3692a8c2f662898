"""The checks every system file goes through, and its coordinates file.

A system file's fields are checked when it is loaded: a missing field, an unknown one (with the
near miss it probably meant), a value of the wrong kind is a one-line InputError naming the file
and the fix. These helpers word those messages the same way for every engine.
"""
import difflib
from pathlib import Path

import numpy as np

from ..errors import InputError, finite_numbers
from ..space import box_from_cell, check_box


# --------------------------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------------------------

def field_hint(key, known):
    """' (did you mean 'x'?)' for a near miss of ``key`` among ``known``, else ''."""
    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def shown(value):
    """A value as a message shows it: its repr, cut at 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def positive_number(value, what, path):
    """``float(value)``, refusing anything but a finite number > 0.

    Parameters
    ----------
    value : the value from the file.
    what : str, its name in the message.
    path : the system file, for the message.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        raise InputError(f"{path}: {what} is {shown(value)}; give a positive number")
    return v


def check_strings(spec, keys, path):
    """Refuse a value of ``spec`` under one of ``keys`` (where given) that is not a string.

    Parameters
    ----------
    spec : dict, a system file's contents.  keys : sequence of str.  path : the file, for the message.
    """
    for key in keys:
        if key in spec and not isinstance(spec[key], str):
            raise InputError(f"{path}: {key!r} is {shown(spec[key])}; give a string")


def check_keys(given, known, required, owner):
    """Refuse a key of ``given`` not in ``known`` (with a near-miss hint) and a missing ``required`` one.

    Parameters
    ----------
    given : the keys found (a dict or a list).
    known, required : sequences of str, the keys allowed and the keys needed.
    owner : str, who has the keys, for the message ('FILE: LennardJones').
    """
    for key in given:
        if key not in known:
            raise InputError(f"{owner} has no key {key!r}{field_hint(key, known)}; it takes {', '.join(known)}")
    for key in required:
        if key not in given:
            raise InputError(f"{owner} lacks the key {key!r}; it needs {', '.join(required)}")


# --------------------------------------------------------------------------------------------
# coordinates
# --------------------------------------------------------------------------------------------

def read_pdb(path):
    """The atoms of a PDB file.

    Returns
    -------
    positions : (N, 3) nm.  names : (N,) atom names.  resnames : (N,) residue names.
    box : None, (3,) nm or (3, 3) box vectors nm (from CRYST1: lengths and angles, mdjac.space.box_from_cell).
    """
    xyz, names, resnames, box = [], [], [], None
    with open(path) as f:
        for line in f:
            if line.startswith(("ATOM", "HETATM")):
                xyz.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
                names.append(line[12:16].strip())
                resnames.append(line[17:20].strip())
            elif line.startswith("CRYST1"):
                lengths = 0.1 * np.array([float(line[6:15]), float(line[15:24]), float(line[24:33])])
                angles = [float(line[33:40] or 90), float(line[40:47] or 90), float(line[47:54] or 90)]
                box = box_from_cell(lengths, angles)
    if not xyz:
        raise InputError(f"{path} holds no ATOM records: give a PDB file with coordinates")
    return 0.1 * np.array(xyz), np.array(names), np.array(resnames), box


def read_coordinates(path):
    """A coordinates file (PDB or npz) as a dict.

    Returns
    -------
    dict with 'positions' (N, 3) nm, 'box' None, (3,) or (3, 3) nm, 'names' (N,) or None, and any other
    arrays of an npz file (e.g. 'types').
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: coordinates file missing; the system file names it under 'coordinates'")
    if path.suffix == ".pdb":
        x, names, resnames, box = read_pdb(path)
        return {"positions": x, "box": box, "names": names, "resnames": resnames}
    if path.suffix == ".npz":
        with np.load(path) as data:
            out = {k: data[k] for k in data.files}
        if "positions" not in out:
            raise InputError(f"{path} has no 'positions' array: store positions (N, 3) in nm under that key")
        out["box"] = out.get("box")
        out["names"] = out.get("names")
        return out
    raise InputError(f"{path}: unknown coordinates format {path.suffix!r}; use .pdb or .npz")


def file_positions(spec, path):
    """The checked coordinates of a system file: (coordinates dict of :func:`read_coordinates`,
    positions (N, 3) nm float64, box None, (3,) edges or (3, 3) reduced box vectors nm float64).
    The file's own ``box`` (3 edges or 3 box vectors, nm), if it has one, replaces the coordinates'."""
    coords = read_coordinates(path.parent / spec["coordinates"])
    x = finite_numbers(coords["positions"], f"{path}: the coordinates' positions")
    if x.ndim != 2 or x.shape[1] != 3:
        raise InputError(f"{path}: the coordinates' positions have shape {x.shape}; give (N, 3) in nm")
    box = spec["box"] if spec.get("box") is not None else coords["box"]
    if box is not None:
        try:
            box = check_box(np.asarray(box, dtype=np.float64).reshape((3, 3) if np.size(box) == 9 else (-1,)))
        except (InputError, TypeError, ValueError) as err:
            raise InputError(f"{path}: its box: {err}; give 3 edges or 3 box vectors [[ax, 0, 0], [bx, by, 0], [cx, cy, cz]] in nm") from None
    return coords, x, box


def check_atom_count(names, positions, path):
    """Refuse a coordinates file whose atoms do not match the atoms the file describes."""
    if len(names) != len(positions):
        raise InputError(f"{path}: the coordinates hold {len(positions)} atoms but the residues/types describe {len(names)}")
