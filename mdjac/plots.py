r"""Pictures of force Jacobians and normal modes (matplotlib, written as PNG).

Each picture has three layers: a pure function that computes its data from mdjac objects
(:func:`vdos`, :func:`block_norms`, :func:`atom_stiffness`, :func:`trajectory_stiffness`), a
``*_figure`` function that draws data into a new :class:`matplotlib.figure.Figure` (no pyplot
state, Agg canvas), and a ``plot_*`` function that takes data and a path, writes the PNG and
returns the path.

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
atom is held along a trajectory.
"""
from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from mdjac.errors import InputError

FIGSIZE = (6.4, 4.8)
DPI = 150


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def _frequencies(modes_or_frequencies) -> np.ndarray:
    """(m,) cm^-1 from a NormalModes or an array of wavenumbers."""
    f = getattr(modes_or_frequencies, "frequencies", modes_or_frequencies)
    f = np.asarray(f, dtype=np.float64).reshape(-1)
    if f.size == 0 or not np.all(np.isfinite(f)):
        raise InputError("the density of states needs at least one finite frequency (cm^-1)")
    return f


def vdos(frequencies, grid, width=10.0) -> np.ndarray:
    """Gaussian-broadened density of states g(grid), (G,) modes per cm^-1.

    frequencies: (m,) cm^-1 (or NormalModes); grid: (G,) cm^-1; width: Gaussian sigma, cm^-1.
    """
    f = _frequencies(frequencies)
    if not width > 0:
        raise InputError(f"the broadening width must be positive (cm^-1); got {width}")
    z = (np.asarray(grid, dtype=np.float64)[:, None] - f[None, :]) / width
    return np.exp(-0.5 * z * z).sum(axis=1) / (width * np.sqrt(2.0 * np.pi))


def block_norms(jacobian) -> sp.csr_matrix:
    """(n, n) CSR of the Frobenius norms ||J_ij||_F of the stored blocks, kJ mol^-1 nm^-2."""
    norms = np.sqrt((np.asarray(jacobian.blocks, dtype=np.float64) ** 2).sum(axis=(1, 2)))
    n = len(jacobian.atoms)
    return sp.csr_matrix((norms, (jacobian.rows, jacobian.cols)), shape=(n, n))


def atom_stiffness(jacobian) -> np.ndarray:
    """(n,) per-atom stiffness k_i = -tr(J_ii), kJ mol^-1 nm^-2."""
    return -np.trace(np.asarray(jacobian.diagonal(), dtype=np.float64), axis1=1, axis2=2)


def trajectory_stiffness(jacobians) -> np.ndarray:
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


def binned_max(rows, cols, values, n, max_pixels) -> np.ndarray:
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
def vdos_figure(frequencies, width=10.0, title="Vibrational density of states") -> Figure:
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


def sparsity_figure(jacobian, max_pixels=800, title=None) -> Figure:
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
    binned = "" if image.shape[0] == n else f", {n // image.shape[0]}+ atoms per pixel"
    ax.set_title(title or f"Force Jacobian blocks: {n} atoms, {jacobian.nnz_blocks} stored "
                          f"({100 * filled:.3g}%){binned}", fontsize=10)
    fig.tight_layout()
    return fig


def stiffness_figure(stiffness, times=None, title="Per-atom stiffness along the trajectory") -> Figure:
    """Heat map of stiffness (n_frames, n) kJ mol^-1 nm^-2: atoms down, frames (or times, ps) across."""
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
    fig = Figure(figsize=FIGSIZE)
    ax = fig.add_subplot()
    im = ax.imshow(k.T, aspect="auto", cmap="magma", interpolation="nearest",
                   extent=(x0, x1, n - 0.5, -0.5))
    fig.colorbar(im, ax=ax, label=r"$k_i = -\mathrm{tr}\,J_{ii}$ (kJ mol$^{-1}$ nm$^{-2}$)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("atom")
    ax.set_title(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# to PNG
# --------------------------------------------------------------------------------------------
def save_png(fig: Figure, path) -> str:
    """Write ``fig`` to ``path`` (PNG, DPI dots per inch), creating its folder; returns the path."""
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise InputError(f"{path}: figures are written as PNG; give a path ending in .png")
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def plot_vdos(frequencies, path, width=10.0, **kw) -> str:
    """PNG of the vibrational density of states of ``frequencies`` (cm^-1 or NormalModes)."""
    return save_png(vdos_figure(frequencies, width, **kw), path)


def plot_sparsity(jacobian, path, **kw) -> str:
    """PNG of a ForceJacobian's block pattern coloured by block norm."""
    return save_png(sparsity_figure(jacobian, **kw), path)


def plot_stiffness(stiffness, path, times=None, **kw) -> str:
    """PNG heat map of per-atom stiffness (n_frames, n) kJ mol^-1 nm^-2 (see trajectory_stiffness)."""
    return save_png(stiffness_figure(stiffness, times, **kw), path)
