"""The article behind mdjac, reproduced through mdjac's kernel.

z = y[index] * x with x = [1, 2, 3], y = [[1], [2], [3]], index = [0, 2, 1], i.e. the function
f(x)_i = y[index_i] * x[index_i]. Its Jacobian is [[1, 0, 0], [0, 0, 3], [0, 2, 0]].

Prints, in the article's order: what plain ``mindspore.grad`` returns (the sum of the rows),
what broadcasting without a mask returns (wrong), what mdjac's masked-grad kernel returns (the
Jacobian), and what ``mindspore.jacrev`` does on the same function.

Makes: out/seed_article.png, the three answers side by side as 3x3 matrices (grad's sum of the
rows, the unmasked broadcast, the masked grad = the Jacobian).

jacrev's failure is MindSpore's compiler failing: it logs the failure as [ERROR] lines and writes
rank_0/om/analyze_fail.ir into the working directory (no context option or environment variable
moves that file in MindSpore 2.7.1: save_graphs_path and MS_DEV_SAVE_GRAPHS_PATH were tried). So
this example keeps MindSpore's log to CRITICAL (GLOG_v=4, set before MindSpore is imported) and
runs jacrev inside a temporary directory that is removed afterwards: nothing is left behind.

Run from the repository root:  .venv/bin/python examples/seed_article.py
"""
import contextlib
import os
import tempfile

os.environ["GLOG_v"] = "4"          # before MindSpore's import: its [ERROR] dump of jacrev's failure is not shown

import numpy as np                  # noqa: E402
import mindspore as ms              # noqa: E402
from mindspore import ops           # noqa: E402

from mdjac.kernel import row_compressed_jacobian   # noqa: E402

OUTPUT = "out/seed_article.png"

x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
y = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
index = np.array([0, 2, 1], dtype=np.int32)


def f(x, y, index):
    """f(x)_i = y[index_i] x[index_i]; x (..., 3) with any leading copy axes -> (..., 3)."""
    return y[index][:, 0] * ops.gather(x, index, x.ndim - 1)


def article_z(x):
    """The article's own form, z = y[index] * x: (3, 1) * (3,) broadcasts to (3, 3)."""
    return ms.Tensor(y)[ms.Tensor(index)] * x


def f_of_x(x):
    """f with its parameters fixed, as jacrev wants it."""
    return f(x, ms.Tensor(y), ms.Tensor(index))


@contextlib.contextmanager
def in_temporary_directory():
    """Run the block with a fresh temporary directory as the working directory, then remove it."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="mdjac-seed-") as scratch:
        os.chdir(scratch)
        try:
            yield scratch
        finally:
            os.chdir(here)


def figure(summed, unmasked, jacobian, path=OUTPUT):
    """PNG of the three 3x3 answers, each entry written in its cell; returns the path."""
    from matplotlib.figure import Figure
    from mdjac.analysis.plots import save_png

    panels = [("1. grad: one row, the sum over z", np.asarray(summed).reshape(1, 3)),
              ("2. broadcast, no mask\n(wrong)", unmasked),
              ("3. masked grad (mdjac kernel)\n= the Jacobian dz_i/dx_j", jacobian)]
    fig = Figure(figsize=(9.0, 3.4))
    for p, (title, m) in enumerate(panels):
        ax = fig.add_subplot(1, 3, p + 1)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=max(6.0, float(np.max(m))))
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=12, color="w" if v > 4 else "k")
        ax.set_xticks(range(3), [f"x{j}" for j in range(3)])
        ax.set_yticks(range(len(m)), [f"z{i}" for i in range(len(m))] if len(m) == 3 else ["sum z"])
        ax.set_title(title, fontsize=9)
    fig.suptitle("z = y[index] * x,  x = [1, 2, 3], y = [[1], [2], [3]], index = [0, 2, 1]", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def main():
    tx, ty, ti = ms.Tensor(x), ms.Tensor(y), ms.Tensor(index)
    print("1. mindspore.grad sums over the outputs (the article's z = y[index] * x):")
    summed = ms.grad(article_z)(tx).asnumpy()
    print("  ", summed)

    print("2. broadcasting x to (3, 3) copies without a mask (the parameters broadcast too):")
    X = ops.broadcast_to(tx, (3, 3))
    unmasked = ms.grad(lambda X: (ty[ti] * X).sum())(X).asnumpy()
    print(unmasked)

    print("3. the masked grad through mdjac's kernel (identity colouring: output row i uses copy i):")
    J = row_compressed_jacobian(f, x, colours=np.arange(3), n_copies=3, args=(y, index))
    print(J)
    expected = np.array([[1, 0, 0], [0, 0, 3], [0, 2, 0]], dtype=np.float32)
    print("   equals [[1,0,0],[0,0,3],[0,2,0]]:", bool(np.array_equal(J, expected)))

    print("4. mindspore.jacrev on the same function:")
    with in_temporary_directory():       # MindSpore writes rank_0/om/analyze_fail.ir where it runs
        try:
            print(ms.jacrev(f_of_x)(tx))
        except Exception as err:  # the failure is the point: show it, in one line
            print("   fails:", str(err).strip().splitlines()[0])
    print("wrote", figure(summed, unmasked, J))


if __name__ == "__main__":
    main()
