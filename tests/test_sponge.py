"""MindSPONGE integration: adapter parity, the two Jacobian paths, the MD callback.

References are independent of the adapter: MindSPONGE's own ForceField cell evaluated with a
complete neighbour list (and, in vacuum, MindSPONGE's own SimulationCell with its own list),
float64 central differences of forces (conftest's ``fd``), and Jacobians recomputed from the
positions stored in the trajectory file.
"""
import json

import numpy as np
import pytest

from mdjac import InputError
from mdjac.catalogue import load_system, systems_dir
from mdjac.io import open_trajectory
from mdjac.jobs import run_md
from mdjac.jobs.interrupts import DeferredInterrupt
from mdjac import sponge

from helpers import rel

pytestmark = pytest.mark.filterwarnings("ignore")

PARITY = 1e-5      # float32 energies and forces, relative
PATHS = 1e-6       # float64 Jacobians, relative to the largest entry


def water_lattice(n, seed=11, density=33.37):
    """n^3 SPC/E-shaped waters (O, H1, H2) on a cubic lattice, random orientations (plain numpy)."""
    rng = np.random.default_rng(seed)
    length = (n ** 3 / density) ** (1 / 3)
    water = np.array([[0.0, 0.0, 0.0], [0.0816490, 0.0577359, 0.0], [-0.0816490, 0.0577359, 0.0]])
    water -= water.mean(axis=0)
    q, _ = np.linalg.qr(rng.normal(size=(n ** 3, 3, 3)))
    centres = (np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * length / n
    return (np.einsum("mij,aj->mai", q, water) + centres[:, None]).reshape(-1, 3), np.full(3, length)


@pytest.fixture(scope="module")
def ala():
    system = load_system("alanine-dipeptide")
    molecule, forcefield = system.sponge()
    return system, molecule, forcefield, system.potential


@pytest.fixture(scope="module")
def small_water(tmp_path_factory):
    """64 SPC/E waters, periodic, 0.6 nm cutoff: a system file written here, loaded by path."""
    folder = tmp_path_factory.mktemp("water64")
    x, box = water_lattice(4)
    np.savez(folder / "water64.npz", positions=x, box=box)
    spec = json.loads((systems_dir() / "water-box.json").read_text())
    spec.update(name="water64", coordinates="water64.npz", residues=[["WAT", 64]], cutoff=0.6)
    (folder / "water64.json").write_text(json.dumps(spec))
    system = load_system(folder / "water64.json")
    molecule, forcefield = system.sponge()
    return system, molecule, forcefield, system.potential


def check_parity(system, molecule, forcefield, potential, jiggle=0.0):
    """Energy and forces in float32 against MindSPONGE's own cell (complete neighbour list).

    ``jiggle`` (nm) displaces the atoms randomly first: at an energy minimum the forces are small
    differences of large bonded terms and float32 round-off alone is ~1e-4 of the largest force
    (alanine dipeptide), whatever the code.
    """
    x = system.positions + np.random.default_rng(5).normal(scale=jiggle, size=system.positions.shape)
    x = x.astype(np.float32)
    e_ref, f_ref = sponge.sponge_energy_and_forces(molecule, forcefield, x)
    e, f = potential.energy_and_forces(x)
    assert abs(e - e_ref) <= PARITY * abs(e_ref)
    assert rel(f, f_ref) <= PARITY
    return e_ref


# ----------------------------------------------------------------------------- adapter parity
@pytest.mark.slow
def test_alanine_parity(ala):
    system, molecule, forcefield, potential = ala
    check_parity(*ala, jiggle=0.005)
    from mindsponge import SimulationCell       # MindSPONGE's own cell and (full, vacuum) neighbour list
    e_own = float(SimulationCell(molecule, forcefield)().asnumpy().reshape(-1)[0])
    e = potential.energy(system.positions.astype(np.float32))
    assert abs(e - e_own) <= PARITY * abs(e_own)


def test_alanine_terms(ala):
    """Impropers are the torsions whose third atom is bonded to the other three; 1-4 pairs scaled."""
    _, _, _, potential = ala
    kinds = {type(t).__name__: t for t in potential.terms}
    bonds = {tuple(sorted(b)) for b in kinds["HarmonicBond"].index.tolist()}
    for i, j, k, l in kinds["ImproperTorsion"].index:
        assert {tuple(sorted((k, a))) for a in (i, j, l)} <= bonds
    for i, j, k, l in kinds["PeriodicTorsion"].index:
        assert {tuple(sorted(p)) for p in ((i, j), (j, k), (k, l))} <= bonds
    from mindsponge.data.forcefield import get_forcefield       # the parameter file, not the built cells
    r_scale, r6_scale, r12_scale = get_forcefield("AMBER.FF14SB")[0]["nb_pair_energy"]["parameters"]["?"]
    scales = {type(t).__name__: t.scale for t in potential.terms if getattr(t, "fixed_pairs", None) is not None}
    assert scales == pytest.approx({"Coulomb": r_scale, "LennardJones": r6_scale}, rel=1e-6)
    assert scales["Coulomb"] == r_scale        # float64 from the source's decimals, not float32's 0.8333333134651184
    assert r6_scale == r12_scale


@pytest.mark.slow
def test_water_parity(small_water):
    """Parity with MindSPONGE's energy, its own dispersion correction included."""
    system, molecule, forcefield, _ = small_water
    potential = sponge.adapt(molecule, forcefield, dispersion="mindsponge")
    check_parity(system, molecule, forcefield, potential)
    assert potential.box is not None and any(type(t).__name__ == "LongRangeDispersion" for t in potential.terms)


def test_water_dispersion_correction_is_openmms_and_a_third_of_mindsponges(small_water):
    """The default correction equals OpenMM's for the same Lennard-Jones (an independent program),
    and MindSPONGE's is 3 times larger (it averages each atom's own C6, not the pair C6)."""
    openmm = pytest.importorskip("openmm")
    system, molecule, forcefield, default = small_water
    own = sponge.adapt(molecule, forcefield, dispersion="mindsponge")
    correction = {p: [t for t in pot.terms if type(t).__name__ == "LongRangeDispersion"][0].coefficient
                  for p, pot in (("pairs", default), ("mindsponge", own))}
    lj = [t for t in default.terms if type(t).__name__ == "LennardJones" and t.fixed_pairs is None][0]
    sigma, epsilon = np.diag(lj.sigma_table)[lj.types], np.diag(lj.epsilon_table)[lj.types]
    omm = openmm.System()
    nb = openmm.NonbondedForce()
    for s_, e_ in zip(sigma, epsilon):
        omm.addParticle(1.0)
        nb.addParticle(0.0, float(s_), float(e_))
    nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    nb.setCutoffDistance(system.spec["cutoff"])
    omm.addForce(nb)
    omm.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in np.diag(system.box)))
    energies = []
    for use in (True, False):
        nb.setUseDispersionCorrection(use)
        context = openmm.Context(omm, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(system.positions)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy()._value)
    volume = float(np.prod(system.box))
    assert correction["pairs"] / volume == pytest.approx(energies[0] - energies[1], rel=1e-9)
    # 3 up to OpenMM's N(N+1)/2 pair counting (64 waters: 2.97) and its small r^-12 part
    assert correction["mindsponge"] / correction["pairs"] == pytest.approx(3.0, rel=2e-2)


@pytest.mark.slow
def test_tip3p_water_parity(small_water):
    """The same waters with MindSPONGE's TIP3P template and parameters."""
    from mdjac.sponge.systems import build_sponge
    system = small_water[0]
    spec = dict(system.spec, template="water.tip3p.yaml", forcefield="TIP3P")
    molecule, forcefield = build_sponge(spec, system.positions, system.box)
    check_parity(system, molecule, forcefield, sponge.adapt(molecule, forcefield, dispersion="mindsponge"))


@pytest.mark.slow
def test_catalogue_water_box_parity(water_box):
    system = water_box
    molecule, forcefield = system.sponge()
    check_parity(system, molecule, forcefield, sponge.adapt(molecule, forcefield, dispersion="mindsponge"))


def test_refuses_pme(ala, monkeypatch):
    _, molecule, forcefield, _ = ala
    coulomb = [c for c in forcefield.energy_cell if type(c).__name__ == "CoulombEnergy"][0]
    monkeypatch.setattr(coulomb, "use_pme", True)
    with pytest.raises(InputError, match="PME") as err:
        sponge.adapt(molecule, forcefield)
    assert "\n" not in str(err.value)


def test_periodic_without_cutoff_is_refused(small_water):
    from mdjac.sponge.systems import build_sponge
    system, _, _, _ = small_water
    molecule, forcefield = build_sponge(dict(system.spec, cutoff=None), system.positions, system.box)
    with pytest.raises(InputError, match="cutoff"):
        sponge.adapt(molecule, forcefield)


# ----------------------------------------------------------------------------- the two Jacobian paths
def check_paths(fd, system, molecule, forcefield, potential, atoms):
    x = system.positions
    adapted = potential.force_jacobian(x).to_dense()
    black_box = sponge.sponge_force_jacobian(molecule, forcefield, x, dtype=np.float64).to_dense()
    assert adapted.dtype == black_box.dtype == np.float64
    assert rel(black_box, adapted) <= PATHS
    reference = fd.jacobian(potential, x, columns=atoms, box=system.box)      # (N, 3, c, 3)
    assert rel(adapted[:, :, atoms, :], reference) <= PATHS
    assert rel(black_box[:, :, atoms, :], reference) <= PATHS


@pytest.mark.slow
def test_jacobian_paths_alanine(ala, fd):
    check_paths(fd, *ala, atoms=[8, 21])


@pytest.mark.slow
def test_jacobian_paths_water(small_water, fd):
    check_paths(fd, *small_water, atoms=[0, 100])


# ----------------------------------------------------------------------------- during MD
@pytest.mark.slow
def test_md_run_writes_the_jacobian_of_each_stored_step_as_it_comes(ala, tmp_path, monkeypatch):
    system, _, _, potential = ala
    path = tmp_path / "ala.h5"
    on_disk = []                      # frames the file holds (read by another reader) after each frame's callback
    check = DeferredInterrupt.check

    def look(self):
        with open_trajectory(path) as traj:
            on_disk.append([f.step for f in traj])
        check(self)

    monkeypatch.setattr(DeferredInterrupt, "check", look)
    summary = run_md(system, steps=12, every=4, output=path)
    assert on_disk == [[0], [0, 4], [0, 4, 8]]                   # written as they come, not held until the end
    assert summary["frames"] == 3 and summary["frame_steps"] == [0, 4, 8]
    assert len(summary["jacobian_seconds"]) == 3 and summary["write_seconds_per_frame"] > 0
    assert summary["fd_max_relative_error"] <= 1e-4          # float32 Jacobian vs float64 differences
    dt = system.spec["md"]["time_step"]
    with open_trajectory(path) as traj:
        assert [f.step for f in traj] == [0, 4, 8]
        for frame in traj:
            assert frame.time == pytest.approx(frame.step * dt)
            again = potential.force_jacobian(frame.positions)       # recomputed from the stored positions
            assert rel(frame.jacobian.to_dense(), again.to_dense()) <= 1e-6
            # the stored forces are MindSPONGE's, of the same positions: same step, not the next one
            # (one step moves atoms by ~1e-3 nm, changing forces by far more than 1e-3 relative;
            # step 0 is the minimised structure, where float32 round-off is ~1e-4 of its forces)
            assert rel(frame.forces, potential.forces(frame.positions)) <= 1e-3
    with pytest.raises(InputError):
        run_md(system, steps=2, every=1, output=path)                      # exists
    with pytest.raises(InputError):
        run_md("argon", steps=2, every=1, output=tmp_path / "x.h5")        # not MindSPONGE


class FakeWriter:
    def __init__(self):
        self.frames = []

    def append(self, step, time, positions, box, forces, jacobian):
        self.frames.append((step, time, np.array(positions), box, np.array(forces), jacobian))


@pytest.mark.slow
def test_callback_on_periodic_water_with_any_writer(small_water):
    system, _, _, potential = small_water
    writer = FakeWriter()
    summary = run_md(system, steps=5, every=2, writer=writer, check=False)
    assert summary["frame_steps"] == [0, 2, 4] == [f[0] for f in writer.frames]
    assert len(summary["callback_seconds"]) == 3 and min(summary["callback_seconds"]) > 0   # one per frame
    for step, time, x, box, forces, jac in writer.frames:
        assert box is not None and np.allclose(box, system.box)
        assert rel(jac.to_dense(), potential.force_jacobian(x, box=box).to_dense()) <= 1e-6
        assert rel(forces, potential.forces(x, box=box)) <= PARITY


def test_callback_checks_its_arguments(ala):
    _, _, _, potential = ala
    with pytest.raises(InputError):
        sponge.ForceJacobianCallback(potential, FakeWriter(), every=0)
    with pytest.raises(InputError):
        sponge.ForceJacobianCallback(potential, object(), every=1)
