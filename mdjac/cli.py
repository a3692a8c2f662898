"""The ``mdjac`` command line.

    mdjac compute TRAJ --system S -o OUT [--start --stop --step] [--resume | --overwrite]
                                          [--batch N] [--float64]
    mdjac info FILE
    mdjac run [--system alanine-dipeptide] [--steps N] [--every K] [-o OUT]
    mdjac modes FILE|SYSTEM [--frame N] [-k K]

S is a name from systems/ or a system file. Bad input ends with one line on stderr
("mdjac: error: ...") and exit code 2, with nothing written and nothing destroyed.
"""
import argparse
import os
import signal
import sys
import threading
import time

import numpy as np

from .errors import InputError

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

def load_system(name):
    """The catalogue's System for a name or a file, unknown names as InputError."""
    from .catalogue import load_system as load
    try:
        return load(name)
    except InputError:
        raise
    except (FileNotFoundError, KeyError) as err:
        raise InputError(f"unknown system {name!r} ({err}); give a name from systems/ or a system file") from None


def check_output(path, resume, overwrite):
    """Refuse an output that exists (without --resume/--overwrite) or cannot be written."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise InputError(f"output {path} is a directory; give a file name")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise InputError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise InputError(f"cannot write {path}: permission denied")
    if os.path.exists(path) and not (resume or overwrite):
        raise InputError(f"{path} exists; pass --resume to continue it or --overwrite to replace it")


def frame_box(box, system):
    """The box for the potential: the frame's own ``box`` (NPT) or else the system's; None if
    the system is not periodic. (3,) nm."""
    if system.box is None:
        return None
    return np.asarray(system.box if box is None else box, dtype=np.float64)


def check_frames(frames, system):
    """Read every selected frame once and refuse the run if any has NaN/inf positions or a bad
    box: nothing is written for a trajectory that would fail half-way."""
    for i in range(len(frames)):
        positions, box = frames.coordinates(i)
        if not np.all(np.isfinite(positions)):
            raise InputError(f"{frames.path}: frame {frames.indices[i]} has NaN or infinite positions; "
                             f"select frames before it with --stop {frames.indices[i]}")
        box = frame_box(box, system)
        if box is not None and not (box.shape == (3,) and np.all(np.isfinite(box)) and np.all(box > 0)):
            raise InputError(f"{frames.path}: frame {frames.indices[i]} has an invalid box {box}")


def run_metadata(args, frames):
    """What --resume checks: the same input, system, selection and precision."""
    return dict(source=os.path.abspath(args.trajectory), system=args.system,
                frames=[frames.indices.start, frames.indices.stop, frames.indices.step],
                float64=bool(args.float64), upper=bool(args.upper))


def check_resumable(path, metadata):
    """Refuse to resume an output made from another input, system, selection or precision."""
    from .h5md import read_metadata
    stored = read_metadata(path)
    for key, value in metadata.items():
        if stored.get(key) != value:
            raise InputError(f"{path} was made with {key}={stored.get(key)!r}, not {value!r}; "
                             "resume with the same arguments or use --overwrite")


def cmd_compute(args):
    from tqdm import tqdm
    from .h5md import TrajectoryWriter, describe, open_trajectory

    if args.batch < 1:
        raise InputError("--batch must be at least 1")
    check_output(args.output, args.resume, args.overwrite)
    if os.path.abspath(args.output) == os.path.abspath(args.trajectory):
        raise InputError("the output would replace the input trajectory; give another -o")
    system = load_system(args.system)
    if system.potential is None:
        raise InputError(f"system {args.system!r} has no potential (it is not a molecule); pick another")
    n_atoms = len(system.positions)
    traj = open_trajectory(args.trajectory, n_atoms=n_atoms)
    frames = traj[args.start:args.stop:args.step]
    if not len(frames):
        raise InputError(f"{args.trajectory}: the selection start={args.start} stop={args.stop} "
                         f"step={args.step} holds no frame of its {len(traj)}")
    check_frames(frames, system)
    metadata = run_metadata(args, frames)
    if args.resume and os.path.exists(args.output):
        check_resumable(args.output, metadata)
    dtype = np.float64 if args.float64 else np.float32
    potential = system.potential
    writer = TrajectoryWriter(args.output, n_atoms, names=system.names, masses=system.masses,
                              periodic=system.box is not None, dtype=dtype,
                              mode="a" if args.resume else "w", overwrite=args.overwrite,
                              batch=args.batch, metadata=metadata, compress_blocks=not args.uncompressed,
                              triangle="upper" if args.upper else "full")
    with writer:
        done = writer.n_frames
        if done > len(frames):
            raise InputError(f"{args.output} holds {done} frames, more than the {len(frames)} selected")
        if done and frames[done - 1].step != writer.last_step:
            raise InputError(f"{args.output} ends at step {writer.last_step} but frame {done - 1} of the "
                             f"selection is step {frames[done - 1].step}; use --overwrite")
        start = time.perf_counter()
        bar = tqdm(total=len(frames), initial=done, unit="frame", desc="jacobians", file=sys.stderr,
                   disable=args.quiet, dynamic_ncols=True, smoothing=0.1)
        with bar:
            for i in range(done, len(frames)):
                frame = frames[i]
                x = np.asarray(frame.positions, dtype=dtype)
                box = frame_box(frame.box, system)
                forces = potential.forces(x, box=box)
                jacobian = potential.force_jacobian(x, box=box)
                restore_interrupt()
                writer.append(frame.step, frame.time, x, box, forces, jacobian)
                bar.update()
    elapsed = time.perf_counter() - start
    traj.close()
    print(summary(describe(args.output), len(frames) - done, done, elapsed))


def restore_interrupt():
    """Make Ctrl-C raise KeyboardInterrupt again: MindSpore's runtime installs a C-level SIGINT
    handler that ends the process with SIGTERM, skipping the writer's final flush (the journal
    keeps the file safe either way, but a clean stop keeps the buffered frames too)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
    """Lines of ``mdjac info`` from :func:`mdjac.h5md.describe`."""
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
    else:
        lines.append("  Jacobian         none")
    lines.append(f"  file bytes       {info['file_bytes']}"
                 + (f" ({info['file_bytes'] / info['frames']:.0f} per frame)" if info["frames"] else ""))
    return "\n".join(lines)


def cmd_info(args):
    from .h5md import describe, is_hdf5, open_trajectory
    if not os.path.isfile(args.file):
        raise InputError(f"{args.file}: no such file")
    if is_hdf5(args.file):
        print(format_info(describe(args.file)))
        return
    with open_trajectory(args.file) as traj:
        print(f"{args.file}  ({type(traj).__name__})\n  atoms            {traj.n_atoms}\n"
              f"  frames           {len(traj)}")


def cmd_run(args):
    from .sponge import run_md
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
    from .modes import modes_command
    print(modes_command(args.source, frame=args.frame, k=args.k, system=args.system))


COMMANDS = {"compute": cmd_compute, "info": cmd_info, "run": cmd_run, "modes": cmd_modes}
