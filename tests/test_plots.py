"""Figures (mdjac.plots): the data drawn are checked against independent computations, and the
files written are real PNGs of the expected size."""
import numpy as np
import pytest
from matplotlib.image import imread

import mdjac
from mdjac import terms
from mdjac.analysis import plots
from mdjac.errors import InputError
from mdjac.jacobian import ForceJacobian

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chain_system():
    """The 8-atom chain of :func:`chain_potential`, built (and compiled) once."""
    return chain_potential(8)


def chain_potential(n=8):
    """A bent chain of n atoms: bonds, angles and Lennard-Jones between non-bonded atoms."""
    bonds = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    angles = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], axis=1)
    pot = mdjac.Potential([terms.HarmonicBond(bonds, 2.0e5, 0.15),
                           terms.HarmonicAngle(angles, 400.0, 1.9),
                           terms.LennardJones([0.3], [0.5], np.zeros(n, int), exclusions=bonds)])
    t = np.arange(n)
    x = np.stack([0.12 * t, 0.08 * (t % 2), 0.01 * t**1.5], axis=1).astype(np.float64)
    return pot, x


def assert_png(path, size_inches, dpi=plots.DPI):
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_SIGNATURE
    image = imread(path)
    assert image.shape[:2] == (round(size_inches[1] * dpi), round(size_inches[0] * dpi))
    assert image.std() > 0.01                      # not blank


# --------------------------------------------------------------------------------------------
# density of states
# --------------------------------------------------------------------------------------------
def test_vdos_counts_modes_and_peaks_at_each_mode():
    f = np.array([-50.0, 400.0, 1500.0, 1500.0, 3200.0])
    grid = np.linspace(-500, 4000, 90001)
    g = plots.vdos(f, grid, width=8.0)
    assert np.trapz(g, grid) == pytest.approx(len(f), rel=1e-6)
    single = plots.vdos([1000.0], [1000.0], width=8.0)[0]
    assert single == pytest.approx(1.0 / (8.0 * np.sqrt(2 * np.pi)))


def test_vdos_figure_draws_the_broadened_modes(tmp_path):
    nm_freqs = np.array([10.0, 250.0, 900.0, 905.0, 1700.0])
    fig = plots.vdos_figure(nm_freqs, width=5.0)
    line, ticks = fig.axes[0].lines[:2]
    assert np.allclose(line.get_ydata(), plots.vdos(nm_freqs, line.get_xdata(), 5.0))
    assert np.array_equal(np.sort(ticks.get_xdata()), nm_freqs)
    assert "cm$^{-1}$" in fig.axes[0].get_xlabel()
    path = plots.plot_vdos(nm_freqs, tmp_path / "vdos.png", width=5.0)
    assert path == str(tmp_path / "vdos.png")
    assert_png(path, plots.FIGSIZE)


# --------------------------------------------------------------------------------------------
# sparsity pattern
# --------------------------------------------------------------------------------------------
def test_sparsity_figure_shows_every_block_norm(tmp_path, chain_system):
    pot, x = chain_system
    jac = pot.force_jacobian(x)
    dense = jac.to_dense()                                   # (n, 3, n, 3)
    norms = np.sqrt((dense**2).sum(axis=(1, 3)))             # independent of block_norms
    fig = plots.sparsity_figure(jac)
    image = np.ma.filled(fig.axes[0].images[0].get_array().astype(float), np.nan)
    stored = jac.pattern().toarray()
    assert np.allclose(image[stored], np.maximum(norms[stored], np.nanmin(image)))
    assert np.all(np.isnan(image[~stored]))
    assert_png(plots.plot_sparsity(jac, tmp_path / "spy.png"), (6.4, 5.6))


def test_binned_image_keeps_the_largest_norm_per_bin():
    rng = np.random.default_rng(0)
    n, p = 50, 7
    rows, cols = rng.integers(0, n, 300), rng.integers(0, n, 300)
    values = rng.uniform(0.1, 10.0, 300)
    image = plots.binned_max(rows, cols, values, n, p)
    for a in range(p):
        for b in range(p):
            inside = (rows * p // n == a) & (cols * p // n == b)
            expected = values[inside].max() if inside.any() else np.nan
            assert np.array_equal(image[a, b], expected, equal_nan=True)


# --------------------------------------------------------------------------------------------
# per-atom stiffness along a trajectory
# --------------------------------------------------------------------------------------------
def test_stiffness_heat_map_holds_minus_the_diagonal_traces(tmp_path, chain_system):
    pot, x = chain_system
    rng = np.random.default_rng(1)
    jacobians = [pot.force_jacobian(x + rng.normal(0, 0.005, x.shape)) for _ in range(5)]
    traces = np.array([[np.trace(j.to_dense()[i, :, i, :]) for i in range(8)] for j in jacobians])
    stiffness = plots.trajectory_stiffness(jacobians)
    assert np.allclose(stiffness, -traces)
    fig = plots.stiffness_figure(stiffness, times=0.5 * np.arange(5), labels=[f"A{i}" for i in range(8)])
    ax_mean, ax_map = fig.axes[:2]
    mean = -traces.mean(axis=0)
    bars = np.array([bar.get_width() for bar in ax_mean.patches])
    assert np.allclose(bars / bars.max(), mean / mean.max())        # drawn in units of 10^p
    drawn = np.asarray(ax_map.images[0].get_array())
    assert np.allclose(drawn, 100 * (traces / traces.mean(axis=0) - 1).T)   # atoms down, frames across
    assert ax_map.get_xlabel() == "time (ps)"
    assert "kJ mol" in ax_mean.get_xlabel() and "%" in fig.axes[2].get_ylabel()
    assert [t.get_text() for t in ax_mean.get_yticklabels()][:2] == ["0 A0", "1 A1"]
    assert_png(plots.plot_stiffness(stiffness, tmp_path / "k.png"), (8.0, 4.8))


def test_plots_refuse_bad_input(tmp_path):
    jac = ForceJacobian(2, [0, 1], [0, 1], np.zeros((2, 3, 3)))
    with pytest.raises(InputError, match="no force Jacobian"):
        plots.trajectory_stiffness([jac, None])
    with pytest.raises(InputError, match="PNG"):
        plots.plot_stiffness(np.ones((2, 2)), tmp_path / "k.pdf")
    with pytest.raises(InputError, match="times"):
        plots.stiffness_figure(np.ones((3, 2)), times=[0.0, 1.0])
    with pytest.raises(InputError, match="width"):
        plots.vdos([1.0], [1.0], width=0.0)


# --------------------------------------------------------------------------------------------
# normal-mode arrows
# --------------------------------------------------------------------------------------------
def test_mode_arrows_are_the_cartesian_displacements(tmp_path, chain_system):
    pot, x = chain_system
    masses = np.array([12.0, 1.0, 14.0, 16.0, 1.0, 12.0, 1.0, 14.0])
    nm = mdjac.normal_modes(pot.force_jacobian(x), masses, positions=x, project="molecule")
    fig = plots.modes_figure(nm, x, indices=[0, 4], scale=0.1)
    plane = plots.principal_plane(x, masses)
    assert np.allclose(plane.T @ plane, np.eye(2))
    for ax, k in zip(fig.axes, [0, 4]):
        # Cartesian direction of mode k: M^-1/2 v, unit norm (independent of NormalModes.displacements)
        cart = nm.vectors[k] / np.sqrt(masses)[:, None]
        cart /= np.linalg.norm(cart)
        arrows = ax.collections[1]
        assert np.allclose(np.c_[arrows.U, arrows.V], 0.1 * cart @ plane)
        assert f"{nm.frequencies[k]:.1f}" in ax.get_title()
    assert_png(plots.plot_modes(nm, x, tmp_path / "m.png", indices=[0, 4]), (6.4, 3.4))


# --------------------------------------------------------------------------------------------
# whole atom ticks, the arrow scale stated
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 8, 22, 37])
def test_sparsity_ticks_are_whole_atoms(n):
    """Alanine dipeptide's 22 atoms drew ticks at 2.5, 7.5, ...: every tick must name an atom."""
    rows, cols = np.arange(n), np.arange(n)
    jac = ForceJacobian(n, rows, cols, np.ones((n, 3, 3)))
    fig = plots.sparsity_figure(jac)
    ax = fig.axes[0]
    fig.canvas.draw()                       # ticks as drawn
    for ticks, limits in ((ax.get_xticks(), ax.get_xlim()), (ax.get_yticks(), ax.get_ylim())):
        lo, hi = sorted(limits)
        shown = [t for t in ticks if lo <= t <= hi]
        assert len(shown) >= 2
        assert all(float(t).is_integer() for t in shown), shown


def test_mode_figure_states_its_arrow_scale(chain_system):
    pot, x = chain_system
    masses = np.array([12.0, 1.0, 14.0, 16.0, 1.0, 12.0, 1.0, 14.0])
    nm = mdjac.normal_modes(pot.force_jacobian(x), masses, positions=x, project="molecule")
    for scale in (0.05, 0.3):
        fig = plots.modes_figure(nm, x, indices=[0], scale=scale)
        arrows = fig.axes[0].collections[1]
        cart = nm.vectors[0] / np.sqrt(masses)[:, None]
        cart /= np.linalg.norm(cart)
        assert np.allclose(np.hypot(arrows.U, arrows.V), scale * np.linalg.norm(cart @ plots.principal_plane(x, masses), axis=1))
        assert f"x {scale:g} nm" in fig._suptitle.get_text()
