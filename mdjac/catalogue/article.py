"""Engine ``"article"``: the seed article's demo, z = y[index] * x, a function and not a molecule.

Fields: ``x`` (n,), ``y`` (m, 1) and ``index`` (n,) integers in 0..m-1. The demo has no atoms and
no potential energy: :attr:`ArticleDemo.function` maps x (n,) to z (n,) in MindSpore ops, which
``examples/seed_article.py`` differentiates as the article does.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, finite_numbers

ENGINE = "article"
REQUIRED_FIELDS = ("x", "y", "index")
OPTIONAL_FIELDS = ("name", "description")


@dataclass
class ArticleDemo:
    """The seed article's example.

    Attributes
    ----------
    name, description : str.
    positions : (n,) float64, the point x the example is evaluated at.
    path : Path, its file.  spec : dict, the file's contents (``x``, ``y``, ``index``).

    It has no atoms: ``potential``, ``masses``, ``box``, ``names``, ``topology`` and ``n_atoms``
    are None.
    """
    name: str
    description: str
    positions: np.ndarray
    path: Path = field(repr=False)
    spec: dict = field(repr=False)

    engine = ENGINE
    potential = masses = box = names = topology = n_atoms = cutoff = None
    is_mindsponge = False

    @property
    def function(self):
        """The example as a MindSpore function x (n,) -> y[index] * x (n,) (float32 or float64 Tensor)."""
        return article_function(self.spec)


def check(spec, path):
    """Nothing beyond the fields' presence: their values are checked by :func:`load`."""


def load(spec, path):
    """The :class:`ArticleDemo` of a checked system file ``spec`` read from ``path``."""
    x = finite_numbers(spec["x"], f"{path}: 'x'")
    y, index = finite_numbers(spec["y"], f"{path}: 'y'"), np.asarray(spec["index"])
    if (x.ndim != 1 or y.ndim != 2 or index.shape != x.shape or not np.issubdtype(index.dtype, np.integer)
            or index.min() < 0 or index.max() >= len(y)):
        raise InputError(f"{path}: give x (n,), y (m, 1) and index (n,) integers in 0..m-1")
    return ArticleDemo(spec.get("name", path.stem), spec.get("description", ""), x, path, spec)


def article_function(spec):
    """The article's z = y[index] * x as a MindSpore function of x (n,) (float32 or float64 Tensor)."""
    import mindspore as ms
    from mindspore import ops

    y = ms.Tensor(np.asarray(spec["y"], dtype=np.float64))
    index = ms.Tensor(np.asarray(spec["index"], dtype=np.int32))

    def z(x):
        return ops.cast(ops.gather(y, index, 0).reshape(-1), x.dtype) * x
    return z
