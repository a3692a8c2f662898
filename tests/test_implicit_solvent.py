"""Generalized Born implicit solvent (mdjac.longrange.born) against OpenMM's Reference platform in
double precision: energies and forces to 1e-8 relative, Jacobian columns against central
differences of OpenMM's forces to 1e-6 relative; the factored Jacobian against the dense strategy
(AD of the whole energy as one function), and its matvec, diagonal and selection against its dense form."""
import numpy as np
import pytest

from openmm_reference import app, assert_parity, openmm, parity_by_force, peptide

from mdjac import InputError
from mdjac.openmm import adapt

from helpers import rel

ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL = 1e-8, 1e-8, 1e-6


def small_molecule():
    """12 atoms in a 0.7 nm cube, one hydrogen-sized atom 0.07 nm from a large one (inside its scaled
    radius): positions (N, 3) nm, charges (N,) e (net -0.3), radii (N,) nm, scale factors (N,)."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0.0, 0.7, size=(12, 3))
    x[1] = x[0] + np.array([0.07, 0.0, 0.0])
    charges = rng.uniform(-0.8, 0.8, 12)
    charges += (-0.3 - charges.sum()) / 12
    radii = rng.uniform(0.11, 0.2, 12)
    radii[0], radii[1] = 0.2, 0.12
    scales = rng.uniform(0.7, 0.95, 12)
    scales[0] = 0.96
    return x, charges, radii, scales


#: GBn2's per-atom (alpha, beta, gamma): OpenMM's rows for H, C, N and O, given to the atoms in turn
GBN2_COEFFICIENTS = [[0.788440, 0.798699, 0.437334], [0.733756, 0.506378, 0.205844], [0.503364, 0.316828, 0.192915],
                     [0.867814, 0.876635, 0.387882]]


def gb_system(force, stretch=1.0):
    """An OpenMM System of the small molecule, its positions scaled by ``stretch`` about atom 0, with ``force``
    (its particles added here) alone."""
    x, charges, radii, scales = small_molecule()
    x = x[0] + stretch * (x - x[0])
    system = openmm.System()
    for _ in x:
        system.addParticle(12.0)
    for k, (q, r, s) in enumerate(zip(charges, radii, scales)):
        if isinstance(force, openmm.GBSAOBCForce):
            force.addParticle(q, r, s)
        else:
            per_atom = GBN2_COEFFICIENTS[k % 4] if type(force).__name__ == "GBSAGBn2Force" else []
            force.addParticle([q, r, s] + per_atom)
    if not isinstance(force, openmm.GBSAOBCForce):
        force.finalize()
    system.addForce(force)
    return system, x


def builtin_obc(cutoff=None):
    force = openmm.GBSAOBCForce()
    force.setSolventDielectric(78.5)
    if cutoff is not None:
        force.setNonbondedMethod(openmm.GBSAOBCForce.CutoffNonPeriodic)
        force.setCutoffDistance(cutoff)
    return force


def amber_custom(name, cutoff=None, kappa=0.0, sa="ACE"):
    from openmm.app.internal import customgbforces
    force = getattr(customgbforces, name)(solventDielectric=78.5, soluteDielectric=1.0, SA=sa, cutoff=cutoff, kappa=kappa)
    if cutoff is not None:
        force.setNonbondedMethod(openmm.CustomGBForce.CutoffNonPeriodic)
        force.setCutoffDistance(cutoff)
    return force


CASES = {
    "GBSAOBCForce": lambda: builtin_obc(),
    "GBSAOBCForce-cutoff": lambda: builtin_obc(cutoff=0.6),
    "HCT": lambda: amber_custom("GBSAHCTForce"),
    "OBC1-salt": lambda: amber_custom("GBSAOBC1Force", kappa=0.8),
    "OBC2-salt-cutoff-noSA": lambda: amber_custom("GBSAOBC2Force", cutoff=0.6, kappa=0.5, sa=None),
    "GBn": lambda: amber_custom("GBSAGBnForce"),
    "GBn2-salt-cutoff": lambda: amber_custom("GBSAGBn2Force", cutoff=0.6, kappa=0.5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_small_molecule_against_openmm(case):
    system, x = gb_system(CASES[case]())
    results = parity_by_force(system, x, jacobian_atoms=[0, 1, 5], report=print)
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)


def test_gbn2_neck_reach_against_openmm():
    """GBn2 on the small molecule stretched 1.6 times: some pairs beyond the neck's reach (rho_i + rho_j +
    0.68 nm, where OpenMM's step cuts the neck term off), some within, and the neck's tables and radius
    indices as the force holds them."""
    system, x = gb_system(amber_custom("GBSAGBn2Force"), stretch=1.6)
    _, _, radii, _ = small_molecule()
    r = np.linalg.norm(x[:, None] - x[None], axis=-1)[np.triu_indices(len(x), 1)]
    reach = (radii[:, None] + radii[None, :] + 0.68)[np.triu_indices(len(x), 1)]
    assert np.sum(r > reach + 1e-3) >= 5 and np.sum(r < reach - 1e-3) >= 5
    assert_parity(parity_by_force(system, x, jacobian_atoms=[0, 1, 5], report=print), ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)


def test_factored_jacobian_against_the_dense_strategy():
    """The factored Jacobian against AD of the whole energy as one function (the dense strategy), on GBn2
    (OBC radii with per-atom coefficients, the neck, salt, a cutoff); its part's matvec, diagonal and select
    against its dense form."""
    system, x = gb_system(amber_custom("GBSAGBn2Force", cutoff=0.6, kappa=0.8))
    potential = adapt(system)
    factored = potential.force_jacobian(x)
    whole = potential.force_jacobian(x, strategy="dense").to_dense()
    assert np.abs(factored.to_dense() - whole).max() < 1e-9 * np.abs(whole).max()
    part = factored.long_range
    dense = part.dense()
    n = part.n
    v = np.random.default_rng(1).normal(size=(3 * n, 2))
    assert np.allclose(part.matvec(v), dense.reshape(3 * n, 3 * n) @ v, rtol=0, atol=1e-10 * np.abs(dense).max())
    assert np.allclose(part.diagonal(), dense[np.arange(n), :, np.arange(n), :], rtol=0, atol=1e-10 * np.abs(dense).max())
    where = np.array([1, 4, 7, 10])
    assert np.allclose(part.select(where).dense(), dense[where][:, :, where], rtol=0, atol=1e-12 * np.abs(dense).max())


@pytest.mark.slow
def test_peptide_in_amber14_obc2():
    """Alanine dipeptide in amber14 with implicit/obc2.xml (a CustomGBForce), force by force."""
    topology, x = peptide()
    system = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(topology, nonbondedMethod=app.NoCutoff,
                                                                                 constraints=None)
    results = parity_by_force(system, x, jacobian_atoms=[0, 6, 14], report=print)
    assert "CustomGBForce" in {name.split("#")[0] for name in results}
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)


def test_peptide_in_amber14_gbn2():
    """Alanine dipeptide in amber14 with implicit/gbn2.xml (GBSAGBn2Force: mbondi3 radii, per-atom alpha, beta,
    gamma by element, ACE), the GB force alone."""
    topology, x = peptide()
    system = app.ForceField("amber14-all.xml", "implicit/gbn2.xml").createSystem(topology, nonbondedMethod=app.NoCutoff,
                                                                                 constraints=None)
    for k in reversed(range(system.getNumForces())):
        if not isinstance(system.getForce(k), openmm.CustomGBForce):
            system.removeForce(k)
    results = parity_by_force(system, x, jacobian_atoms=[0, 6, 14], report=print)
    assert list(results) == ["CustomGBForce#0"]
    assert_parity(results, ENERGY_TOL, FORCE_TOL, JACOBIAN_TOL)


def test_other_custom_gb_forces_are_refused():
    other = openmm.CustomGBForce()
    other.addPerParticleParameter("q")
    other.addComputedValue("B", "1", openmm.CustomGBForce.SingleParticle)
    other.addEnergyTerm("q*B", openmm.CustomGBForce.SingleParticle)
    system = openmm.System()
    for q in (0.5, -0.5):
        system.addParticle(1.0)
        other.addParticle([q])
    system.addForce(other)
    with pytest.raises(InputError, match="not one of OpenMM's amber implicit solvents"):
        adapt(system)


@pytest.mark.parametrize("kwargs,message", [
    (dict(radii=[0.15, 0.005]), "radius of atom 1 is 0.005 nm: GB radii must exceed"),
    (dict(scales=[0.8]), "one charge, radius and scale factor per atom"),
    (dict(kappa=-1.0), "kappa -1.0 is negative"),
    (dict(model="GBn"), "unknown Born radius model 'GBn'"),
    (dict(obc=[[1.0, 0.8, 4.85]]), r"OBC coefficients have shape \(1, 3\)"),
    (dict(radii=[0.15, 0.019], offset=0.0195141), "radius of atom 1 is 0.019 nm: GB radii must exceed the 0.0195141 nm"),
    (dict(charges=[0.5, np.nan]), "charges"),
])
def test_bad_parameters_are_one_line(kwargs, message):
    from mdjac.longrange.born import GeneralizedBorn
    given = dict(charges=[0.5, -0.5], radii=[0.15, 0.12], scales=[0.8, 0.85])
    given.update(kwargs)
    with pytest.raises(InputError, match=message) as err:
        GeneralizedBorn(**given)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("atoms", [None, [1, 4, 7, 10]])
def test_stored_jacobian_reads_back(tmp_path, atoms):
    """Two frames with a cutoff (their pair lists differ) written to H5MD and read back: the generalized-Born part
    rebuilt from its stored per-pair arrays gives the products and the diagonal of the one computed, whole or
    on a selection of atoms."""
    from mdjac.io import open_trajectory, open_writer
    system, x = gb_system(amber_custom("GBSAOBC1Force", cutoff=0.6, kappa=0.8))
    potential = adapt(system)
    frames = [x, x + np.random.default_rng(2).normal(scale=0.05, size=x.shape)]
    computed = [potential.force_jacobian(p, atoms=atoms) for p in frames]
    assert len(computed[0].long_range.pairs) != len(computed[1].long_range.pairs)
    path = tmp_path / "gb.h5"
    with open_writer(path, len(x), forces=False, dtype=np.float64,
                     jacobian_atoms="all" if atoms is None else np.asarray(atoms)) as writer:
        for step, (p, J) in enumerate(zip(frames, computed)):
            writer.append(step, 0.0, p, jacobian=J)
    v = np.random.default_rng(5).normal(size=(3 * computed[0].n, 3))
    with open_trajectory(path) as read:
        for frame, J in zip(read, computed):
            expected = J.matvec(v)
            assert np.abs(frame.jacobian.matvec(v) - expected).max() <= 1e-13 * np.abs(expected).max()
            assert np.allclose(frame.jacobian.diagonal(), J.diagonal(), rtol=0, atol=1e-13 * np.abs(expected).max())
    if atoms is None:       # a file cut inside the second frame's GB arrays holds one frame; a resume rewrites it
        import h5py
        with h5py.File(path, "r+") as f:
            f["particles/trajectory/force_jacobian/long_range/scalars"].resize(len(computed[0].long_range.pairs) + 3, axis=0)
        with open_trajectory(path) as read:
            assert len(read) == 1
        with open_writer(path, len(x), forces=False, dtype=np.float64, mode="a") as writer:
            assert writer.n_frames == 1
            writer.append(1, 0.0, frames[1], jacobian=computed[1])
        with open_trajectory(path) as read:
            expected = computed[1].matvec(v)
            assert len(read) == 2 and np.abs(read[1].jacobian.matvec(v) - expected).max() <= 1e-13 * np.abs(expected).max()


@pytest.mark.parametrize("planned", [True, False])
def test_part_files_joined_by_an_index_read_back(tmp_path, planned):
    """Four frames with a cutoff (pair lists of different lengths) written as two part files and joined by an
    index (as a distributed run joins its shards; planned first, or added as they come), then consolidated into
    one file: each frame's generalized-Born part reads back as the one computed, through the index and after."""
    from mdjac.io import open_trajectory, open_writer
    from mdjac.io.h5md_index import H5MDIndex, consolidate
    system, x = gb_system(amber_custom("GBSAOBC1Force", cutoff=0.6, kappa=0.8))
    potential = adapt(system)
    rng = np.random.default_rng(4)
    frames = [x + rng.normal(scale=0.05, size=x.shape) for _ in range(4)]
    computed = [potential.force_jacobian(p) for p in frames]
    shards = tmp_path / "out.h5md.shards"
    shards.mkdir()
    paths = [str(shards / f"shard-{k}.h5md") for k in range(2)]
    for k, path in enumerate(paths):
        with open_writer(path, len(x), forces=False, dtype=np.float64, jacobian_atoms="all") as writer:
            for step in (2 * k, 2 * k + 1):
                writer.append(step, 0.0, frames[step], jacobian=computed[step])
    v = np.random.default_rng(5).normal(size=(computed[0].n, 3))

    def assert_reads_back(path):
        with open_trajectory(path) as read:
            assert len(read) == 4
            for frame, J in zip(read, computed):
                assert rel(frame.jacobian.matvec(v), J.matvec(v)) < 1e-13 and rel(frame.jacobian.diagonal(), J.diagonal()) < 1e-13

    out = tmp_path / "out.h5md"
    with H5MDIndex(out) as index:
        if planned:                                       # each part renamed to its planned path as it joins
            index.plan([(str(shards / f"part-{k}.h5md"), 2) for k in range(2)])
        for path in paths:
            assert index.add([path]) == 2
    assert_reads_back(out)
    consolidate(out)
    assert_reads_back(out)


@pytest.mark.parametrize("fraction", [1.0, 0.1])
def test_born_part_against_its_definition(fraction):
    """BornJacobian's matvec, dense (BLAS, M dense for all pairs and sparse for a tenth of them, as with a cutoff),
    diagonal and selection against H = H_radial + Q^T M Q + W^T Q + Q^T W built entry by entry from its per-pair
    scalars (mdjac.born_jacobian's module docstring)."""
    from mdjac.born_jacobian import BornJacobian
    rng = np.random.default_rng(11)
    n = 30
    i, j = np.triu_indices(n, k=1)
    keep = rng.random(len(i)) < fraction
    i, j = i[keep], j[keep]
    u = rng.normal(size=(len(i), 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    scalars, m_diagonal = rng.normal(size=(len(i), 7)), rng.normal(size=n)
    H = np.zeros((n, 3, n, 3))
    Q, W, M = np.zeros((n, n, 3)), np.zeros((n, n, 3)), np.diag(m_diagonal)
    for p, (a, b) in enumerate(zip(i, j)):
        h = scalars[p, 0] * np.outer(u[p], u[p]) + scalars[p, 1] * np.eye(3)
        H[a, :, a] += h
        H[b, :, b] += h
        H[a, :, b] -= h
        H[b, :, a] -= h
        for X, (ci, cj) in ((Q, scalars[p, 2:4]), (W, scalars[p, 4:6])):
            X[a, b] += ci * u[p]
            X[a, a] -= ci * u[p]
            X[b, b] += cj * u[p]
            X[b, a] -= cj * u[p]
        M[a, b] = M[b, a] = scalars[p, 6]
    Qf, Wf = Q.reshape(n, 3 * n), W.reshape(n, 3 * n)
    J = -(H.reshape(3 * n, 3 * n) + Qf.T @ M @ Qf + Wf.T @ Qf + Qf.T @ Wf)
    part = BornJacobian(np.stack([i, j], axis=1), u, scalars, m_diagonal)
    scale = np.abs(J).max()
    v = rng.normal(size=(3 * n, 2))
    assert np.abs(part.matvec(v) - J @ v).max() < 1e-13 * scale * np.abs(v).max() * 3 * n
    assert np.abs(part.dense().reshape(J.shape) - J).max() < 1e-13 * scale
    blocks = J.reshape(n, 3, n, 3)
    assert np.abs(part.diagonal() - blocks[np.arange(n), :, np.arange(n), :]).max() < 1e-13 * scale
    where = np.array([2, 9, 17, 25])
    assert np.abs(part.select(where).dense() - blocks[where][:, :, where]).max() < 1e-13 * scale
    assert np.abs(part.select(where).diagonal() - blocks[where, :, where, :]).max() < 1e-13 * scale
