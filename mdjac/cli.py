"""The ``mdjac`` command line.

    mdjac compute TRAJ --system S -o OUT [--start --stop --step] [--resume | --overwrite]
                                          [--batch N] [--float64] [--strategy S]
    mdjac info FILE
    mdjac run [--system alanine-dipeptide] [--steps N] [--every K] [-o OUT]
    mdjac modes FILE|SYSTEM [--frame N] [-k K]

S is a name from systems/ or a system file. Bad input ends with one line on stderr
("mdjac: error: ...") and exit code 2, with nothing written and nothing destroyed.
"""
import argparse
import os
import sys
import time

import numpy as np

from .catalogue import resolve_system
from .errors import InputError

#: The strategies of Potential.force_jacobian (mdjac.potential.STRATEGIES), named here so that
#: --help does not import MindSpore; a test checks that the two lists agree.
STRATEGIES = ("colour", "dense", "replicate")

EXIT_INPUT, EXIT_INTERRUPTED = 2, 130


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are InputErrors (one line, no usage dump)."""

    def error(self, message):
        raise InputError(f"{message} (see mdjac {self.prog.split()[-1]} --help)"
                         if " " in self.prog else f"{message} (see mdjac --help)")


def build_parser():
    parser = Parser(prog="mdjac", description="Exact block-sparse force Jacobians of MD potentials, in H5MD files.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("compute", help="compute the force Jacobian of every selected frame of a trajectory")
    p.add_argument("trajectory", help="input trajectory: H5MD (MindSPONGE's too), PDB, XYZ, DCD, XTC, ...")
    p.add_argument("--system", "-s", required=True, help="a name from systems/ or a system file")
    p.add_argument("--output", "-o", required=True, help="output H5MD file")
    p.add_argument("--start", type=int, default=None, help="first frame (Python slice semantics)")
    p.add_argument("--stop", type=int, default=None, help="frame to stop before")
    p.add_argument("--step", type=int, default=None, help="take every STEP-th frame")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted output")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--batch", type=int, default=8, help="frames written (and flushed) together [8]")
    p.add_argument("--float64", action="store_true", help="compute and store in float64 (default float32)")
    p.add_argument("--upper", action="store_true",
                   help="store only the blocks J_ij with j >= i (J_ji = J_ij^T): half the bytes")
    p.add_argument("--uncompressed", action="store_true",
                   help="store the Jacobian blocks without gzip: faster writes, files about 1.3x larger")
    p.add_argument("--strategy", default="replicate", choices=sorted(STRATEGIES),
                   help="how the Jacobian is computed (see mdjac.Potential.force_jacobian) [replicate]")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser("info", help="print what an H5MD (or other trajectory) file holds")
    p.add_argument("file")

    p = sub.add_parser("run", help="MindSPONGE MD with the force Jacobian every K steps, then a summary")
    p.add_argument("--system", "-s", default="alanine-dipeptide", help="a name from systems/ or a system file")
    p.add_argument("--steps", type=int, default=None, help="MD steps")
    p.add_argument("--every", type=int, default=None, help="Jacobian (and frame) every K steps")
    p.add_argument("--output", "-o", default=None, help="output H5MD file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")

    p = sub.add_parser("modes", help="normal modes of a frame of an mdjac file, or of a system")
    p.add_argument("source", help="an mdjac H5MD file, or a system name or file")
    p.add_argument("--frame", type=int, default=0, help="frame of the file [0]")
    p.add_argument("-k", type=int, default=None, help="the k lowest modes only")
    p.add_argument("--system", "-s", default=None, help="system for a file's masses/potential (default: the one it records)")
    return parser


def main(argv=None):
    """Run the command line; returns the exit code (0, 2 for bad input, 130 when interrupted)."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args) or 0
    except InputError as err:
        print(f"mdjac: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("mdjac: interrupted; the frames written so far are complete (continue with --resume)",
              file=sys.stderr)
        return EXIT_INTERRUPTED


# --------------------------------------------------------------------------------------------
# compute
# --------------------------------------------------------------------------------------------

def cmd_compute(args):
    from .io.h5md_reader import describe
    from .jobs import compute_trajectory

    result = compute_trajectory(args.trajectory, args.system, args.output, start=args.start, stop=args.stop,
                                step=args.step, resume=args.resume, overwrite=args.overwrite,
                                dtype=np.float64 if args.float64 else np.float32, batch=args.batch,
                                compress=not args.uncompressed, triangle="upper" if args.upper else "full",
                                strategy=args.strategy, progress=not args.quiet)
    print(summary(describe(args.output), result["computed"], result["kept"], result["seconds"]))


def summary(info, new, resumed, seconds):
    """The lines printed after compute."""
    lines = [f"mdjac compute: {info['path']}: {info['frames']} frames of {info['n_atoms']} atoms "
             f"({new} computed now" + (f", {resumed} kept from before)" if resumed else ")")]
    if new:
        lines.append(f"  {seconds:.2f} s, {new / seconds:.2f} frames/s, {1e3 * seconds / new:.1f} ms per frame")
    if "blocks_per_frame" in info:
        lo, mean, hi = info["blocks_per_frame"]
        lines.append(f"  Jacobian: {mean:.0f} stored blocks of 3x3 per frame (min {lo}, max {hi}), "
                     f"{info['jacobian_dtype']}, {info['jacobian_bytes_per_frame'] / 1e3:.1f} kB per frame on disk")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# info, run, modes
# --------------------------------------------------------------------------------------------

def format_info(info):
    """Lines of ``mdjac info`` from :func:`mdjac.io.h5md_reader.describe`."""
    lines = [f"{info['path']}  (H5MD, written by {info['creator']}, particles group '{info['group']}')",
             f"  atoms            {info['n_atoms']}",
             f"  frames           {info['frames']} complete"]
    if info["steps"]:
        lines.append(f"  steps            {info['steps'][0]} .. {info['steps'][1]}")
    if info["times"]:
        lines.append(f"  time             {info['times'][0]:g} .. {info['times'][1]:g} ps")
    lines.append(f"  box              {'periodic' if info['periodic'] else 'none'}")
    lines.append(f"  forces           {'yes' if info['forces'] else 'no'}")
    if "blocks_per_frame" in info:
        lo, mean, hi = info["blocks_per_frame"]
        lines += [f"  Jacobian         {info['jacobian_atoms']} atoms, {info['jacobian_dtype']}, "
                  f"{'upper triangle stored' if info['triangle'] == 'upper' else 'all blocks stored'}",
                  f"  blocks per frame {mean:.1f} (min {lo}, max {hi})",
                  f"  Jacobian bytes   {info['jacobian_bytes_per_frame']:.0f} per frame on disk"]
        if "long_range" in info:
            lr = info["long_range"]
            lines.append(f"  long range       Ewald reciprocal sum (kmax {lr['kmax']}, alpha {lr['alpha']:.6g} nm^-1), "
                         "rebuilt from each frame's positions and box")
    else:
        lines.append("  Jacobian         none")
    lines.append(f"  file bytes       {info['file_bytes']}"
                 + (f" ({info['file_bytes'] / info['frames']:.0f} per frame)" if info["frames"] else ""))
    return "\n".join(lines)


def cmd_info(args):
    from .io import open_trajectory
    from .io.h5md_layout import is_hdf5
    from .io.h5md_reader import describe
    if not os.path.isfile(args.file):
        raise InputError(f"{args.file}: no such file")
    if is_hdf5(args.file):
        print(format_info(describe(args.file)))
        return
    with open_trajectory(args.file) as traj:
        print(f"{args.file}  ({type(traj).__name__})\n  atoms            {traj.n_atoms}\n"
              f"  frames           {len(traj)}")


def cmd_run(args):
    from .jobs import check_output, run_md
    if args.output is not None:
        check_output(args.output, False, args.overwrite)
    options = {k: v for k, v in dict(steps=args.steps, every=args.every, output=args.output).items()
               if v is not None}
    print(format_summary(run_md(args.system, overwrite=args.overwrite, **options)))


def format_summary(result):
    """A summary dict (or anything else) as aligned lines."""
    if not isinstance(result, dict):
        return str(result)
    width = max((len(str(k)) for k in result), default=0)
    return "\n".join(f"{str(k).ljust(width)}  {v}" for k, v in result.items())


def cmd_modes(args):
    print(modes_text(args.source, frame=args.frame, k=args.k, system=args.system))


def _file_frame(path, frame):
    """(Frame, masses (N,) amu or None, system name recorded by the writer or None) of frame ``frame``."""
    from .io import open_trajectory
    from .io.h5md_reader import read_metadata

    with open_trajectory(path) as traj:
        n = len(traj)
        if not isinstance(frame, (int, np.integer)) or not -n <= frame < n:
            raise InputError(f"{path}: frame {frame} is out of range; the file has {n} frames (0..{n - 1})")
        fr, masses = traj[int(frame)], traj.masses
    return fr, masses, read_metadata(path).get("system")


def _file_case(path, frame, system):
    """(jacobian, masses, positions, box, description) of a frame of an mdjac H5MD file, as stored.

    Masses come from the file, else from ``system`` (a name, or the one the file records); the
    Jacobian from the file, else from that system's potential at the frame's positions.
    """
    from .io.h5md_layout import is_hdf5

    if not is_hdf5(path):
        raise InputError(f"{path} is not an H5MD file; give an mdjac H5MD file or a system name "
                         f"(run mdjac compute on other trajectories first)")
    fr, masses, recorded = _file_frame(path, frame)
    x = np.asarray(fr.positions, dtype=np.float64)
    jacobian = fr.jacobian
    if masses is None or jacobian is None:
        name = system or recorded
        if name is None:
            raise InputError(f"{path} stores no masses or no Jacobian and names no system; pass a system")
        sysobj = resolve_system(name)
        masses = sysobj.masses if masses is None else masses
        jacobian = sysobj.potential.force_jacobian(x, box=fr.box) if jacobian is None else jacobian
    return jacobian, masses, x, fr.box, f"{path}, frame {frame} (step {fr.step}, {fr.time:g} ps), as stored"


def _system_case(sysobj, minimise, gtol):
    """(jacobian, masses, positions, box, description) of a catalogue System, minimised first."""
    if getattr(sysobj, "potential", None) is None:
        raise InputError(f"system {sysobj.name} has no potential energy (not a molecule); pick a molecular system")
    x = np.asarray(sysobj.positions, dtype=np.float64)
    where = f"system {sysobj.name}"
    if minimise:
        from .analysis.minimise import minimise_energy
        x, fmax = minimise_energy(sysobj.potential, x, box=sysobj.box, gtol=gtol)
        where += f", minimised (largest force {fmax:.2g} kJ mol^-1 nm^-1)"
    return sysobj.potential.force_jacobian(x, box=sysobj.box), sysobj.masses, x, sysobj.box, where


def modes_text(source, frame=0, k=None, system=None, minimise=True, project="auto", gtol=1e-6):
    """The text ``mdjac modes`` prints: a table of normal-mode frequencies.

    source : an H5MD file written by mdjac (frame ``frame`` is analysed as it is, with its stored
        Jacobian, or one computed from ``system`` if it has none), a catalogue system name or
        file, or a loaded System (minimised first with mdjac.analysis.minimise unless ``minimise``
        is False).
    k : the k lowest modes only. system : catalogue name for a file's masses or potential (default:
        the system the file records). project : 'auto' (:func:`default_projection`), None,
        'molecule' or 'periodic'. gtol : minimiser tolerance, kJ mol^-1 nm^-1.
    """
    from .analysis.modes import default_projection, normal_modes

    t0 = time.perf_counter()
    if not isinstance(source, (str, os.PathLike)):
        case = _system_case(source, minimise, gtol)
    elif os.path.isfile(source) and not os.fspath(source).endswith(".json"):
        case = _file_case(os.fspath(source), frame, system)
    else:
        case = _system_case(resolve_system(source), minimise, gtol)
    jacobian, masses, x, box, where = case
    proj = default_projection(jacobian, box) if project == "auto" else project
    nm = normal_modes(jacobian, masses, positions=x, project=proj, k=k)
    return nm.table(title=f"normal modes of {where} [{time.perf_counter() - t0:.1f} s]")


COMMANDS = {"compute": cmd_compute, "info": cmd_info, "run": cmd_run, "modes": cmd_modes}
