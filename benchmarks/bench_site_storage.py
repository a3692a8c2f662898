"""What storing a Jacobian with virtual sites and PME costs: the site map beside the blocks.

A box of amber14 TIP4P-Ew (or OPC) water, PME (tolerance 5e-4) at 0.9 nm, flexible (bench_sites.water_box; OPC's
waters placed from TIP4P-Ew's box, which Modeller has for OPC's four atoms). Per dtype: ``frames`` frames (the
box's positions plus 0.002 nm of noise, sites left where the noise put them), each Jacobian computed
(``Potential.force_jacobian``, after a first call that compiles) and written by ``H5MDWriter`` one frame a batch;
timed per frame: the Jacobian, the whole write, and within it the site map's (``_write_site_frames``). Sizes per
frame on disk (HDF5 storage sizes): the blocks and indices, the site map's blocks and positions (deflate + shuffle,
as every dataset but the blocks), and the site map raw. Then each frame read back (``open_trajectory``: the mesh
rebuilt, the site map read) and its first matvec, with the largest difference from the computed Jacobian's matvec.

Run: .venv/bin/python benchmarks/bench_site_storage.py [box edge nm, default 2.5] [models, default tip4pew,opc] [frames, default 3]
"""
import os
import sys
import tempfile
import time

import numpy as np


def water_box(model, edge):
    """(System, positions nm) of a PME box of ``model`` water (tip4pew or opc), edge nm."""
    import openmm
    from openmm import app, unit
    ff = app.ForceField(f"amber14/{model}.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, model="tip4pew", boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                             rigidWater=False, ewaldErrorTolerance=5e-4)
    return system, np.array(modeller.positions.value_in_unit(unit.nanometer))


def main():
    edge = float(sys.argv[1]) if len(sys.argv) > 1 else 2.5
    models = sys.argv[2].split(",") if len(sys.argv) > 2 else ["tip4pew", "opc"]
    n_frames = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    import h5py
    from mdjac import open_trajectory
    from mdjac.io import h5md_writer
    from mdjac.openmm import adapt

    site_time = [0.0]
    write_site_frames = h5md_writer._write_site_frames

    def timed(*args):
        start = time.perf_counter()
        write_site_frames(*args)
        site_time[0] += time.perf_counter() - start
    h5md_writer._write_site_frames = timed

    print(f"Storing Jacobians with virtual sites and PME: {edge} nm box, 0.9 nm cutoff, {n_frames} frames a row, "
          f"one frame a batch; load average {os.getloadavg()[0]:.1f} at the start")
    header = (f"{'model':>8} {'dtype':>8} {'particles':>9} {'sites':>6} {'J (s)':>7} {'write (s)':>9} {'map w (s)':>9} "
              f"{'blocks B/fr':>12} {'map B/fr':>9} {'map raw':>8} {'read (s)':>8} {'1st mv (s)':>10} {'max |dmv|/max':>14}")
    print(header)
    print("-" * len(header))
    for model in models:
        system, x0 = water_box(model, edge)
        potential = adapt(system)
        rng = np.random.default_rng(0)
        frames = [x0 + rng.normal(scale=0.002, size=x0.shape) for _ in range(n_frames)]
        n_sites = len(potential.sites)
        for dtype in (np.float32, np.float64):
            potential.force_jacobian(frames[0].astype(dtype))          # compile
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "sites.h5md")
                t_jac = t_write = 0.0
                site_time[0] = 0.0
                v = rng.normal(size=(len(potential.jacobian_atoms), 3))
                products = []
                with h5md_writer.H5MDWriter(path, potential.n_atoms, periodic=True, forces=False,
                                            jacobian_atoms=potential.jacobian_atoms, dtype=dtype, batch=1) as writer:
                    for k, y in enumerate(frames):
                        y = y.astype(dtype)
                        start = time.perf_counter()
                        J = potential.force_jacobian(y)
                        t_jac += time.perf_counter() - start
                        products.append(J.matvec(v))
                        start = time.perf_counter()
                        writer.append(k, 0.1 * k, y, box=potential.box, jacobian=J)
                        t_write += time.perf_counter() - start
                        del J
                with h5py.File(path, "r") as f:
                    jac = f["particles/trajectory/force_jacobian"]
                    blocks = sum(jac[name].id.get_storage_size() for name in ("blocks", "indices", "indptr", "offset"))
                    site_map = jac["long_range/site_map"]
                    stored = sum(site_map[name].id.get_storage_size() for name in ("blocks", "positions"))
                    raw = sum(site_map[name].nbytes for name in ("blocks", "positions"))
                t_read = t_mv = 0.0
                worst = 0.0
                with open_trajectory(path) as stored_frames:
                    for k in range(n_frames):
                        start = time.perf_counter()
                        J = stored_frames[k].jacobian
                        t_read += time.perf_counter() - start
                        start = time.perf_counter()
                        got = J.matvec(v)
                        t_mv += time.perf_counter() - start
                        worst = max(worst, float(np.abs(got - products[k]).max() / np.abs(products[k]).max()))
                        del J
            n = n_frames
            print(f"{model:>8} {np.dtype(dtype).name:>8} {potential.n_atoms:>9} {n_sites:>6} {t_jac / n:>7.3f} "
                  f"{t_write / n:>9.3f} {site_time[0] / n:>9.4f} {blocks / n:>12.0f} {stored / n:>9.0f} {raw / n:>8.0f} "
                  f"{t_read / n:>8.3f} {t_mv / n:>10.3f} {worst:>14.2e}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
