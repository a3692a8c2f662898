"""A MindSPONGE MD engine to run with the callback: NVT, a complete neighbour list, graph mode.

MindSPONGE 1.0.0rc1's default neighbour list sizes itself from the mean density and drops pairs
where atoms are denser (:func:`complete_neighbour_list` sizes it from the densest atom); its MD
step compiles only in graph mode (:func:`graph_mode`).
"""
import contextlib

import numpy as np

from ..neighbours import neighbour_pairs
from .adapter import molecule_positions


def complete_neighbour_list(molecule, forcefield, cutoff, margin=1.5):
    """A MindSPONGE NeighbourList that keeps every pair within its reach (1.2 cutoff).

    MindSPONGE's default sizes its distance list from the mean density and drops pairs where atoms
    are denser; here the capacity is the largest count found at the start times ``margin``.
    """
    from mindsponge.partition import NeighbourList

    x, box = molecule_positions(molecule)
    reach = 1.2 * cutoff if box is None else min(1.2 * cutoff, 0.5 * float(np.min(box)))
    pairs = neighbour_pairs(x, reach, box)
    counts = np.bincount(pairs.reshape(-1), minlength=len(x))
    capacity = min(len(x) - 1, int(np.ceil(margin * counts.max())) + 8)
    return NeighbourList(molecule, cutoff, exclude_index=forcefield.exclude_index, num_neighbours=capacity,
                         use_grids=False)


@contextlib.contextmanager
def graph_mode():
    """MindSpore's graph mode within the block (MindSPONGE compiles its MD step only there: in
    PyNative mode a step of alanine dipeptide took 4 s); the previous mode is restored on exit."""
    import mindspore as ms
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        yield
    finally:
        ms.set_context(mode=previous)


def sponge_md(molecule, forcefield, cutoff=None, temperature=300.0, time_step=1e-3, seed=1):
    """A MindSPONGE ``Sponge`` for NVT MD (velocity Verlet + Langevin) with a complete neighbour list.

    Build and run it inside :func:`graph_mode`.
    """
    from mindsponge import DynamicUpdater, SimulationCell, Sponge
    from mindsponge.control import Langevin, VelocityVerlet
    from mindsponge.function import VelocityGenerator

    nl = None if cutoff is None else complete_neighbour_list(molecule, forcefield, cutoff)
    sim = SimulationCell(molecule, forcefield, cutoff=cutoff, neighbour_list=nl)
    velocity = VelocityGenerator(temperature, seed=seed)(molecule.coordinate.shape, molecule.atom_mass)
    updater = DynamicUpdater(molecule, integrator=VelocityVerlet(molecule), thermostat=Langevin(molecule, temperature),
                             time_step=time_step, velocity=velocity)
    return Sponge(sim, optimizer=updater)
