"""The article behind mdjac, reproduced through mdjac's kernel.

z = y[index] * x with x = [1, 2, 3], y = [[1], [2], [3]], index = [0, 2, 1], i.e. the function
f(x)_i = y[index_i] * x[index_i]. Its Jacobian is [[1, 0, 0], [0, 0, 3], [0, 2, 0]].

Prints, in the article's order: what plain ``mindspore.grad`` returns (the sum of the rows),
what broadcasting without a mask returns (wrong), what mdjac's masked-grad kernel returns (the
Jacobian), and what ``mindspore.jacrev`` does on the same function. Makes no figure.

Run: .venv/bin/python examples/seed_article.py
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from mdjac.kernel import row_compressed_jacobian

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


def main():
    tx, ty, ti = ms.Tensor(x), ms.Tensor(y), ms.Tensor(index)
    print("1. mindspore.grad sums over the outputs (the article's z = y[index] * x):")
    print("  ", ms.grad(article_z)(tx))

    print("2. broadcasting x to (3, 3) copies without a mask (the parameters broadcast too):")
    X = ops.broadcast_to(tx, (3, 3))
    print(ms.grad(lambda X: (ty[ti] * X).sum())(X))

    print("3. the masked grad through mdjac's kernel (identity colouring: output row i uses copy i):")
    J = row_compressed_jacobian(f, x, colours=np.arange(3), n_copies=3, args=(y, index))
    print(J)
    expected = np.array([[1, 0, 0], [0, 0, 3], [0, 2, 0]], dtype=np.float32)
    print("   equals [[1,0,0],[0,0,3],[0,2,0]]:", bool(np.array_equal(J, expected)))

    print("4. mindspore.jacrev on the same function:")
    try:
        print(ms.jacrev(f_of_x)(tx))
    except Exception as err:  # the failure is the point: show it, in one line
        print("   fails:", str(err).strip().splitlines()[0])


if __name__ == "__main__":
    main()
