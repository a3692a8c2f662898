r"""Pictures of force Jacobians and normal modes (matplotlib, written as PNG).

Each picture has three layers: pure functions that compute its data from mdjac objects
(:func:`vdos`, :func:`block_norms`, :func:`binned_max`, :func:`atom_stiffness`,
:func:`trajectory_stiffness`, :func:`stiffness_deviation`, :func:`principal_plane`), a
``*_figure`` function that draws data into a new :class:`matplotlib.figure.Figure` (no pyplot
state, so no backend is touched; PNGs come from the Agg canvas), and a ``plot_*`` function that
takes data and a path, writes the PNG and returns the path:

==================  =============================================================================
plot_vdos           vibrational density of states of NormalModes (or wavenumbers)
plot_sparsity       block pattern of a ForceJacobian, coloured by block norm
plot_stiffness      per-atom stiffness along a trajectory (from trajectory_stiffness)
plot_modes          displacement arrows of chosen normal modes on the molecule's principal plane
==================  =============================================================================

The quantities
==============

Vibrational density of states. For wavenumbers nu~_k (cm^-1) and a Gaussian width w (cm^-1),

    g(nu~) = sum_k exp(-(nu~ - nu~_k)^2 / 2 w^2) / (w sqrt(2 pi))      (modes per cm^-1),

so that its integral is the number of modes. Imaginary modes (negative numbers) stay where they
are, left of zero.

Block norms. The sparsity picture colours block (i, j) by its Frobenius norm
||J_ij||_F = sqrt(sum_ab J_ij[a, b]^2) (kJ mol^-1 nm^-2), on a log scale; blocks not stored are
blank. Above ``max_pixels`` atoms the n x n grid is binned, each pixel showing the largest norm in
its bin.

Per-atom stiffness. The curvature of the energy when atom i alone moves, summed over the three
directions: k_i = tr(H_ii) = -tr(J_ii) (kJ mol^-1 nm^-2), the trace of minus the diagonal block of
the force Jacobian. It is positive where the atom sits in a well, and tracks how tightly each
atom is held along a trajectory. Atoms differ by orders of magnitude (a carbon with four bonds, a
hydrogen with one), so the picture shows the mean <k_i>_t per atom beside the relative change
100 (k_i(t) / <k_i>_t - 1) %, which is where the dynamics shows.
"""
import os

import numpy as np
import scipy.sparse as sp
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ..errors import InputError

FIGSIZE = (6.4, 4.8)
DPI = 150
MAX_LABELS = 60


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def _frequencies(modes_or_frequencies):
    """(m,) cm^-1 from a NormalModes or an array of wavenumbers."""
    f = getattr(modes_or_frequencies, "frequencies", modes_or_frequencies)
    f = np.asarray(f, dtype=np.float64).reshape(-1)
    if f.size == 0 or not np.all(np.isfinite(f)):
        raise InputError("the density of states needs at least one finite frequency (cm^-1)")
    return f


def vdos(frequencies, grid, width=10.0):
    """Gaussian-broadened density of states g(grid), (G,) modes per cm^-1.

    frequencies: (m,) cm^-1 (or NormalModes); grid: (G,) cm^-1; width: Gaussian sigma, cm^-1.
    """
    f = _frequencies(frequencies)
    if not width > 0:
        raise InputError(f"the broadening width must be positive (cm^-1); got {width}")
    z = (np.asarray(grid, dtype=np.float64)[:, None] - f[None, :]) / width
    return np.exp(-0.5 * z * z).sum(axis=1) / (width * np.sqrt(2.0 * np.pi))


def block_norms(jacobian):
    """(n, n) CSR of the Frobenius norms ||J_ij||_F of the stored blocks, kJ mol^-1 nm^-2."""
    norms = np.sqrt((np.asarray(jacobian.blocks, dtype=np.float64) ** 2).sum(axis=(1, 2)))
    n = len(jacobian.atoms)
    return sp.csr_matrix((norms, (jacobian.rows, jacobian.cols)), shape=(n, n))


def atom_stiffness(jacobian):
    """(n,) per-atom stiffness k_i = -tr(J_ii), kJ mol^-1 nm^-2."""
    return -np.trace(np.asarray(jacobian.diagonal(), dtype=np.float64), axis1=1, axis2=2)


def trajectory_stiffness(jacobians):
    """(n_frames, n) per-atom stiffness along a sequence of ForceJacobians (or frames with
    ``.jacobian``), kJ mol^-1 nm^-2."""
    rows = []
    for i, item in enumerate(jacobians):
        jac = getattr(item, "jacobian", item)
        if jac is None:
            raise InputError(f"frame {i} carries no force Jacobian; write the trajectory with Jacobians")
        rows.append(atom_stiffness(jac))
    if not rows or len({r.shape for r in rows}) != 1:
        raise InputError("the stiffness needs at least one frame, all with the same atoms")
    return np.stack(rows)


def binned_max(rows, cols, values, n, max_pixels):
    """(p, p) image, p = min(n, max_pixels): the largest value per bin of the n x n grid, NaN where
    no entry falls. rows, cols (nnz,) int in 0..n-1; values (nnz,) float."""
    p = min(n, int(max_pixels))
    image = np.full((p, p), -np.inf)
    np.maximum.at(image, (np.asarray(rows) * p // n, np.asarray(cols) * p // n), values)
    image[np.isneginf(image)] = np.nan
    return image


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def vdos_figure(frequencies, width=10.0, title="Vibrational density of states"):
    """Broadened density of states (line) over the individual modes (ticks along the axis)."""
    f = _frequencies(frequencies)
    pad = 5.0 * width
    grid = np.linspace(min(f.min(), 0.0) - pad, f.max() + pad, 2000)
    fig = Figure(figsize=FIGSIZE)
    ax = fig.add_subplot()
    ax.plot(grid, vdos(f, grid, width), color="C0", lw=1.2, label=f"Gaussian, sigma = {width:g} cm$^{{-1}}$")
    ax.plot(f, np.zeros_like(f), "|", color="C3", ms=12, label=f"{f.size} modes")
    if np.any(f < 0):
        ax.axvline(0.0, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("wavenumber (cm$^{-1}$; imaginary modes negative)")
    ax.set_ylabel("density of states (modes per cm$^{-1}$)")
    ax.set_title(title)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def sparsity_figure(jacobian, max_pixels=800, title=None):
    """Block pattern of a ForceJacobian, each stored block coloured by log10 ||J_ij||_F."""
    norms = block_norms(jacobian).tocoo()
    n = norms.shape[0]
    image = binned_max(norms.row, norms.col, norms.data, n, max_pixels)
    positive = image[np.isfinite(image) & (image > 0)]
    vmin, vmax = (positive.min(), positive.max()) if positive.size else (1.0, 1.0)
    shown = np.where(np.isnan(image), np.nan, np.maximum(image, vmin))   # zero blocks at the floor
    fig = Figure(figsize=(6.4, 5.6))
    ax = fig.add_subplot()
    im = ax.imshow(shown, norm=LogNorm(vmin=vmin, vmax=max(vmax, vmin * 1.001)), cmap="viridis",
                   interpolation="nearest", extent=(-0.5, n - 0.5, n - 0.5, -0.5))
    fig.colorbar(im, ax=ax, label=r"$\|J_{ij}\|_F$ (kJ mol$^{-1}$ nm$^{-2}$)")
    ax.set_xlabel("atom j (column block)")
    ax.set_ylabel("atom i (row block)")
    filled = jacobian.nnz_blocks / float(n * n)
    binned = "" if image.shape[0] == n else f", {n / image.shape[0]:.2g} atoms per pixel"
    ax.set_title(title or f"Force Jacobian blocks of {n:,} atoms\n{jacobian.nnz_blocks:,} stored "
                          f"({100 * filled:.3g}% of {n:,}$^2$){binned}", fontsize=10)
    fig.tight_layout()
    return fig


def stiffness_deviation(stiffness):
    """(n_frames, n) percent deviation of each atom's stiffness from its mean over the frames,
    100 (k_i(t) / <k_i>_t - 1)."""
    k = np.asarray(stiffness, dtype=np.float64)
    return 100.0 * (k / k.mean(axis=0) - 1.0)


def stiffness_figure(stiffness, times=None, labels=None,
                     title="Per-atom stiffness along the trajectory"):
    """Per-atom stiffness (n_frames, n) kJ mol^-1 nm^-2 along a trajectory, in two panels that
    share the atom axis: the mean over the frames (bars, left) and the heat map of each atom's
    deviation from its mean (:func:`stiffness_deviation`, %, frames or times in ps across).

    labels: (n,) atom names for the rows (drawn when n <= MAX_LABELS)."""
    k = np.asarray(stiffness, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise InputError(f"stiffness must be (n_frames, n_atoms); got shape {k.shape}")
    n_frames, n = k.shape
    if times is None:
        x0, x1, xlabel = -0.5, n_frames - 0.5, "frame"
    else:
        t = np.asarray(times, dtype=np.float64)
        if t.shape != (n_frames,):
            raise InputError(f"times must be ({n_frames},) ps, one per frame; got shape {t.shape}")
        step = (t[-1] - t[0]) / max(n_frames - 1, 1) if n_frames > 1 else 1.0
        x0, x1, xlabel = t[0] - step / 2, t[-1] + step / 2, "time (ps)"
    deviation = stiffness_deviation(k)
    limit = max(np.abs(deviation).max(), 1e-12)
    fig = Figure(figsize=(8.0, max(4.8, min(0.16 * n + 1.5, 9.0)) if n <= MAX_LABELS else 4.8))
    grid = fig.add_gridspec(1, 3, width_ratios=[1.2, 5.0, 0.2], wspace=0.08)
    ax_mean = fig.add_subplot(grid[0])
    ax_map = fig.add_subplot(grid[1], sharey=ax_mean)
    mean = k.mean(axis=0)
    power = int(np.floor(np.log10(np.abs(mean).max()))) if np.any(mean != 0) else 0
    ax_mean.barh(np.arange(n), mean / 10.0**power, height=0.8, color="0.45")
    ax_mean.set_xlabel(f"mean $k_i$ ($10^{{{power}}}$ kJ mol$^{{-1}}$ nm$^{{-2}}$)", fontsize=8)
    ax_mean.set_ylabel("atom")
    im = ax_map.imshow(deviation.T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                       interpolation="nearest", extent=(x0, x1, n - 0.5, -0.5))
    fig.colorbar(im, cax=fig.add_subplot(grid[2]),
                 label=r"$k_i(t)\,/\,\langle k_i \rangle_t - 1$ (%),  $k_i = -\mathrm{tr}\,J_{ii}$")
    ax_map.set_xlabel(xlabel)
    ax_map.tick_params(axis="y", labelleft=False)
    if labels is not None and n <= MAX_LABELS:
        ax_mean.set_yticks(np.arange(n), [f"{i} {name}" for i, name in enumerate(labels)], fontsize=7)
    ax_mean.set_ylim(n - 0.5, -0.5)
    fig.suptitle(title)
    fig.subplots_adjust(left=0.14, right=0.9, bottom=0.11, top=0.92)
    return fig


def principal_plane(positions, masses):
    """(3, 2) orthonormal axes of the plane that best fits the positions (mass-weighted)."""
    x = np.asarray(positions, dtype=np.float64)
    w = np.asarray(masses, dtype=np.float64)
    centred = (x - (w @ x) / w.sum()) * np.sqrt(w)[:, None]
    return np.linalg.svd(centred, full_matrices=False)[2][:2].T


def modes_figure(modes, positions, indices=None, names=None, scale=0.15):
    """One panel per mode: the atoms (circle area ~ mass) and their Cartesian displacements
    (arrows, unit-norm mode times ``scale`` nm), projected on the molecule's principal plane.

    modes: NormalModes; positions: (n, 3) nm of its atoms; indices: the modes to draw (default:
    all, at most 6); names: (n,) atom names written next to the atoms.
    """
    idx = list(range(min(modes.n_modes, 6))) if indices is None else list(indices)
    x = np.asarray(positions, dtype=np.float64)
    if x.shape != (len(modes.masses), 3):
        raise InputError(f"positions have shape {x.shape}; expected ({len(modes.masses)}, 3) nm, one row per analysed atom")
    axes2 = principal_plane(x, modes.masses)
    xy = (x - x.mean(axis=0)) @ axes2
    fig = Figure(figsize=(3.2 * len(idx), 3.4))
    for p, k in enumerate(idx):
        ax = fig.add_subplot(1, len(idx), p + 1)
        d = scale * modes.displacements[k] @ axes2
        ax.scatter(xy[:, 0], xy[:, 1], s=40 * np.sqrt(modes.masses), c="0.6", edgecolors="k", zorder=2)
        ax.quiver(xy[:, 0], xy[:, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=1,
                  color="C3", width=0.012, zorder=3)
        for i, name in enumerate([] if names is None else names):
            ax.annotate(str(name), xy[i], xytext=(4, 4), textcoords="offset points", fontsize=7)
        reach = np.abs(np.concatenate([xy, xy + d])).max() * 1.2
        ax.set_xlim(-reach, reach)
        ax.set_ylim(-reach, reach)
        ax.set_aspect("equal")
        ax.set_title(f"mode {k}: {modes.frequencies[k]:.1f} cm$^{{-1}}$", fontsize=10)
        ax.set_xlabel("nm (principal plane)")
    fig.axes[0].set_ylabel("nm")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# to PNG
# --------------------------------------------------------------------------------------------
def save_png(fig, path):
    """Write ``fig`` to ``path`` (PNG, DPI dots per inch), creating its folder; returns the path."""
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise InputError(f"{path}: figures are written as PNG; give a path ending in .png")
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def plot_vdos(frequencies, path, width=10.0, **kw):
    """PNG of the vibrational density of states of ``frequencies`` (cm^-1 or NormalModes)."""
    return save_png(vdos_figure(frequencies, width, **kw), path)


def plot_sparsity(jacobian, path, **kw):
    """PNG of a ForceJacobian's block pattern coloured by block norm."""
    return save_png(sparsity_figure(jacobian, **kw), path)


def plot_stiffness(stiffness, path, times=None, **kw):
    """PNG heat map of per-atom stiffness (n_frames, n) kJ mol^-1 nm^-2 (see trajectory_stiffness)."""
    return save_png(stiffness_figure(stiffness, times, **kw), path)


def plot_modes(modes, positions, path, **kw):
    """PNG of normal-mode displacement arrows (see :func:`modes_figure`)."""
    return save_png(modes_figure(modes, positions, **kw), path)
