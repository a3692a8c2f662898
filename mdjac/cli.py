"""The ``mdjac`` command line.

    mdjac compute TRAJ --system S -o OUT [--start --stop --step] [--resume | --overwrite]
                                          [--batch N] [--float64] [--compression C] [--strategy S]
                                          [--workers N | --scheduler ADDRESS] [--shard-frames K]
    mdjac consolidate OUT
    mdjac info FILE
    mdjac run [--system alanine-dipeptide] [--steps N] [--every K] [-o OUT]
    mdjac modes FILE|SYSTEM [--frame N] [-k K] [--sigma CM] [--method M] [--max-memory GB]

S is a name from systems/ or a system file; for a force-field file (prmtop, top, psf, System XML)
every command that takes a system also takes --nonbonded, --cutoff, --ewald-tolerance,
--coordinates, --parameters and --box (mdjac.load_system's options). Bad input ends with one line on stderr
("mdjac: error: ...") and exit code 2, with nothing written and nothing destroyed.
"""
import argparse
import os
import sys

from .errors import InputError
from .longrange.kinds import BORN_KIND, DISPERSION_KIND, PME_KIND
from .jobs.interrupts import hold_interrupts, is_interrupt, release_interrupts, restore_interrupts
from .process_memory import keep_freed_memory
from .version import __version__

#: The strategies of Potential.force_jacobian (mdjac.strategies.STRATEGIES), named here so that
#: --help does not import MindSpore; a test checks that the two lists agree.
STRATEGIES = ("colour", "dense", "replicate")
#: The Jacobian blocks' filters of ``mdjac compute --compression`` and the default
#: (mdjac.io.h5md_writer.COMPRESSIONS, DEFAULT_COMPRESSION), named here so that --help does not import h5py.
COMPRESSIONS = ("none", "lzf", "gzip")
DEFAULT_COMPRESSION = "none"

EXIT_INPUT, EXIT_INTERRUPTED = 2, 130
#: Where ``mdjac run`` writes unless told (mdjac.jobs.run_md's default).
RUN_OUTPUT = "mdjac-md.h5md"


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are InputErrors (one line, no usage dump)."""

    def error(self, message):
        raise InputError(f"{message} (see mdjac {self.prog.split()[-1]} --help)"
                         if " " in self.prog else f"{message} (see mdjac --help)")


#: ``--nonbonded``'s choices (mdjac.openmm.files.NONBONDED, named here so that --help does not import OpenMM).
NONBONDED = ("pme", "ewald", "reaction-field", "cutoff", "none")
#: ``--implicit-solvent``'s choices (mdjac.openmm.files.IMPLICIT_SOLVENTS).
IMPLICIT_SOLVENTS = ("HCT", "OBC1", "OBC2", "GBn", "GBn2")


def add_system_options(p):
    """The loader options of a force-field file given as the system (mdjac.load_system's keywords)."""
    g = p.add_argument_group("force-field files (prmtop, top, psf, System XML) given as the system")
    g.add_argument("--nonbonded", choices=NONBONDED, default=None,
                   help="electrostatics [pme with a box, else none; a System XML's own]")
    g.add_argument("--cutoff", type=float, default=None, help="nonbonded cutoff, nm [0.9, or half the box if less]")
    g.add_argument("--ewald-tolerance", type=float, default=None, help="PME/Ewald error tolerance [5e-4]")
    g.add_argument("--coordinates", default=None, help="the coordinates file (inpcrd, gro, crd, PDB) if not beside it")
    g.add_argument("--parameters", action="append", default=None,
                   help="a CHARMM parameter file (repeat for each) or a GROMACS .mdp, if not beside it")
    g.add_argument("--box", type=float, nargs="+", default=None, metavar="NM",
                   help="a periodic box (nm) for coordinates without one (a psf's crd): 3 edges LX LY LZ, or the "
                        "9 numbers of a triclinic box's vectors AX 0 0 BX BY 0 CX CY CZ (OpenMM's form)")
    g.add_argument("--implicit-solvent", choices=IMPLICIT_SOLVENTS, default=None,
                   help="a prmtop's generalized Born model (open boundaries) [none]")
    g.add_argument("--salt", type=float, default=None, metavar="MOL_PER_L",
                   help="the implicit solvent's salt concentration, mol/L (OpenMM's implicitSolventSaltConc) [0]")


def system_options(args):
    """The loader options given on the command line, as load_system's keywords."""
    return dict(nonbonded=args.nonbonded, cutoff=args.cutoff, ewald_tolerance=args.ewald_tolerance,
                coordinates=args.coordinates, parameters=args.parameters, box=args.box,
                implicit_solvent=args.implicit_solvent, salt=args.salt)


def build_parser():
    parser = Parser(prog="mdjac", description="Exact block-sparse force Jacobians of MD potentials, in H5MD files.")
    parser.add_argument("--version", action="version", version=f"mdjac {__version__}")
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
    p.add_argument("--compression", choices=COMPRESSIONS, default=DEFAULT_COMPRESSION,
                   help="filter of the Jacobian blocks: none (the fastest write), lzf (h5py's own filter) or gzip "
                        "(deflate level 1), smaller files for slower writes (README, Benchmark); the other datasets are "
                        f"always gzip-compressed; all read in plain h5py and MDAnalysis [{DEFAULT_COMPRESSION}]")
    p.add_argument("--strategy", default="replicate", choices=sorted(STRATEGIES),
                   help="how the Jacobian is computed (see mdjac.Potential.force_jacobian) [replicate]")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="spread the frames over N worker processes on this machine (a Dask LocalCluster)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="spread the frames over a running Dask cluster, e.g. tcp://host:8786")
    p.add_argument("--shard-frames", type=int, default=None,
                   help="frames per task with --workers/--scheduler [about four tasks per worker]")
    add_system_options(p)

    p = sub.add_parser("consolidate", help="copy a distributed run's output (an index of its shard files) into "
                       "one self-contained file in its place, then delete the shards")
    p.add_argument("file")

    p = sub.add_parser("info", help="print what an H5MD (or other trajectory) file holds")
    p.add_argument("file")

    p = sub.add_parser("run", help="MD with the force Jacobian every K steps, then a summary")
    p.add_argument("--system", "-s", default="alanine-dipeptide",
                   help="a MindSPONGE system from systems/ (MindSPONGE's MD) or a force-field file, "
                        "OpenMM's MD [alanine-dipeptide]")
    p.add_argument("--steps", type=int, default=None, help="MD steps [100]")
    p.add_argument("--every", type=int, default=None, help="Jacobian (and frame) every K steps [10]")
    p.add_argument("--output", "-o", default=RUN_OUTPUT, help=f"output H5MD file [{RUN_OUTPUT}]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_system_options(p)

    p = sub.add_parser("modes", help="normal modes of a frame of an mdjac file, or of a system",
                       description="Normal modes of a frame as stored, or of a system at its energy minimum: all "
                       "of them, the K lowest (-k; dense eigh or Lanczos, chosen by size) or the K nearest a "
                       "wavenumber (--sigma). The memory the solver needs is estimated first and a request "
                       "that does not fit is refused.")
    p.add_argument("source", help="an mdjac H5MD file, or a system name or file")
    p.add_argument("--frame", type=int, default=0, help="frame of the file [0]")
    p.add_argument("-k", type=int, default=None,
                   help="the K lowest modes only (smallest eigenvalues, imaginary ones first) [all]")
    p.add_argument("--sigma", type=float, default=None, metavar="CM",
                   help="with -k: the K modes nearest this wavenumber in cm^-1 instead (negative: imaginary)")
    p.add_argument("--max-memory", type=float, default=None, metavar="GB",
                   help="refuse a solver whose estimated memory exceeds this [the memory available]")
    p.add_argument("--method", choices=("auto", "dense", "sparse", "lobpcg"), default="auto",
                   help="eigensolver: dense eigh, Lanczos (sparse), LOBPCG, or auto (dense up to a size, "
                   "else Lanczos) [auto]")
    p.add_argument("--system", "-s", default=None, help="system for a file's masses/potential (default: the one it records)")
    p.add_argument("--no-minimise", action="store_true", help="a system's modes at its given positions, not minimised first")
    add_system_options(p)
    return parser


def main(argv=None):
    """Run the command line; returns the exit code (0, 2 for bad input, 130 when interrupted)."""
    args = None
    previous = hold_interrupts()       # before any library starts threads (mdjac.jobs.interrupts)
    try:
        args = build_parser().parse_args(argv)
        if args.command not in DEFERS_INTERRUPTS:
            release_interrupts()
        return COMMANDS[args.command](args) or 0
    except InputError as err:
        print(f"mdjac: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_INPUT
    except (KeyboardInterrupt, ImportError) as err:   # Ctrl-C while a library loads: its ImportError
        if is_interrupt(err):
            return interrupted(args)
        raise
    finally:
        restore_interrupts(previous)


def run():
    """The ``mdjac`` program: :func:`main`, then exit with its code.

    After a write that failed half-way (a full disk), HDF5 may hold objects that crash the
    interpreter when it frees them at exit; the file has been put back by then, so the process
    ends without that clean-up (output flushed first) and the exit code stays what main said.
    The program keeps its freed memory for its next frames (:func:`mdjac.process_memory.keep_freed_memory`).
    """
    keep_freed_memory()
    code = main()
    layout = sys.modules.get("mdjac.io.h5md_layout")
    if layout is not None and layout.ABANDONED_BATCHES:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def interrupted(args):
    """The line printed after Ctrl-C, and the exit code 130."""
    hint = " (continue with --resume)" if getattr(args, "command", None) == "compute" else ""
    print(f"mdjac: interrupted; the frames written so far are complete{hint}", file=sys.stderr)
    return EXIT_INTERRUPTED


# --------------------------------------------------------------------------------------------
# compute
# --------------------------------------------------------------------------------------------

def cmd_compute(args):
    from .cluster import client_factory
    from .io import describe
    from .jobs import compute_trajectory

    client = client_factory(args.workers, args.scheduler)
    result = compute_trajectory(args.trajectory, args.system, args.output, start=args.start, stop=args.stop,
                                step=args.step, resume=args.resume, overwrite=args.overwrite,
                                dtype="float64" if args.float64 else "float32", batch=args.batch,
                                compression=args.compression, triangle="upper" if args.upper else "full",
                                strategy=args.strategy, progress=not args.quiet, client=client,
                                shard_frames=args.shard_frames, system_options=system_options(args))
    print(summary(describe(args.output), result))


def summary(info, result):
    """The lines printed after compute: what the file holds, and the time per frame with the first
    frame (which pays for compilation) apart from the rest."""
    new, resumed, seconds, first = result["computed"], result["kept"], result["seconds"], result["first_seconds"]
    lines = [f"mdjac compute: {info['path']}: {info['frames']} frames of {info['n_atoms']} atoms "
             f"({new} computed now" + (f", {resumed} kept from before)" if resumed else ")")]
    if new and "workers" in result:
        lines += [f"  {seconds:.2f} s, {new / seconds:.2f} frames/s on {result['workers']} workers "
                  f"({result['shards']} shards; join {result['join_seconds']:.2f} s)",
                  "  first frame (with compilation) per worker process: "
                  + ", ".join(f"{s:.1f} s" for s in result["compile_seconds"].values())]
    elif new:
        line = f"  {seconds:.2f} s; first frame {first:.2f} s (with compilation)"
        if new > 1:
            rest = (seconds - first) / (new - 1)
            line += f", then {1e3 * rest:.1f} ms per frame ({1 / rest:.2f} frames/s)"
        lines.append(line)
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
            if lr["kind"] == BORN_KIND:
                lines.append("  long range       generalized Born, its per-pair arrays stored with each frame")
            else:
                what = " + ".join(_long_range_part(p) for p in lr.get("parts", [lr]))
                sites = f", through the site map of {lr['sites']} virtual sites" if "sites" in lr else ""
                lines.append(f"  long range       {what}{sites}, rebuilt from each frame's positions and box")
    else:
        lines.append("  Jacobian         none")
    lines.append(f"  file bytes       {info['file_bytes']}"
                 + (f" ({info['file_bytes'] / info['frames']:.0f} per frame)" if info["frames"] else ""))
    if info.get("parts"):
        lines.append(f"  stored in        {info['parts']} part files beside it (an index; "
                     "`mdjac consolidate` makes it one file)")
    return "\n".join(lines)


def _long_range_part(part):
    """One long-range part of ``describe``'s ``long_range``, in words."""
    what = {PME_KIND: "PME mesh", DISPERSION_KIND: "LJ-PME dispersion mesh"}.get(part["kind"], "Ewald reciprocal sum")
    sizes = f"grid {part['grid']}" if "grid" in part else f"kmax {part['kmax']}"
    return f"{what} ({sizes}, alpha {part['alpha']:.6g} nm^-1)"


def cmd_info(args):
    from .io import OUTPUTS, describe, format_of, open_trajectory, read_metadata
    if os.path.isfile(args.file) and format_of(args.file) in OUTPUTS:
        print(format_info(describe(args.file)))
        electrostatics = read_metadata(args.file).get("electrostatics")     # a force-field file's system
        if electrostatics:
            print(f"  electrostatics   {electrostatics}")
        return
    with open_trajectory(args.file) as traj:     # refuses a missing file or a folder in one line
        print(f"{args.file}  ({type(traj).__name__})\n  atoms            {traj.n_atoms}\n"
              f"  frames           {len(traj)}")


def cmd_consolidate(args):
    from .io import consolidate
    removed = consolidate(args.file)
    print(f"mdjac consolidate: {args.file}: " + (f"one file now; {removed} part files removed" if removed
                                                 else "already one file; nothing to do"))


def cmd_run(args):
    from .jobs import run_md
    options = {k: v for k, v in dict(steps=args.steps, every=args.every, output=args.output).items()
               if v is not None}
    print(format_summary(run_md(args.system, overwrite=args.overwrite, progress=True,
                                system_options=system_options(args), **options)))


#: What the less obvious entries of run_md's summary mean, printed beside them.
SUMMARY_NOTES = {
    "fd_columns": "coordinates 3j+b of the first frame checked against finite differences",
    "fd_max_relative_error": "their largest error, relative to the column's largest entry",
    "first_jacobian_seconds": "with compilation",
    "seconds_per_md_step": "the MD engine's own step, callbacks excluded",
    "write_seconds_per_frame": "the close at the end and, in a MindSPONGE run, each frame written as it comes",
}


def format_summary(result):
    """A summary dict (or anything else) as aligned lines: numbers to 4 significant digits, long
    lists shortened, a note beside the entries that need one."""
    if not isinstance(result, dict):
        return str(result)

    def text(value):
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, (list, tuple)) and len(value) > 8:
            return f"[{', '.join(map(str, value[:4]))}, ..., {', '.join(map(str, value[-2:]))}] ({len(value)})"
        return str(value)
    width = max((len(str(k)) for k in result), default=0)
    lines = []
    for k, v in result.items():
        note = f"   ({SUMMARY_NOTES[k]})" if k in SUMMARY_NOTES else ""
        lines.append(f"{str(k).ljust(width)}  {text(v)}{note}")
    return "\n".join(lines)


def cmd_modes(args):
    from .jobs import modes_text
    if sys.stderr.isatty():    # building a MindSPONGE system takes seconds before any bar can move
        print(f"mdjac modes: loading {args.source} ...", file=sys.stderr, flush=True)
    max_memory = None if args.max_memory is None else args.max_memory * 1e9
    print(modes_text(args.source, frame=args.frame, k=args.k, system=args.system, sigma=args.sigma,
                     max_memory=max_memory, system_options=system_options(args), minimise=not args.no_minimise,
                     method=args.method))


COMMANDS = {"compute": cmd_compute, "consolidate": cmd_consolidate, "info": cmd_info, "run": cmd_run,
            "modes": cmd_modes}
#: Commands that write files: they take Ctrl-C only between frames (mdjac.jobs.interrupts.DeferredInterrupt).
DEFERS_INTERRUPTS = ("compute", "run")
