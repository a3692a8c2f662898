"""Test helper: two HDF5 files hold the same groups, datasets and attributes."""
import h5py
import numpy as np


def all_datasets(path):
    """{name: (attributes, data)} of every group and dataset of an HDF5 file."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: np.asarray(v).tolist() for k, v in obj.attrs.items()}
            out[name] = (attrs, obj[()] if isinstance(obj, h5py.Dataset) else None)
        f.visititems(visit)
    return out


def assert_same_datasets(a, b, ignore=()):
    """Every dataset and attribute of the files ``a`` and ``b`` equal (hard links compared once by
    name), except the attributes ``ignore``: (object name, attribute name) pairs."""
    da, db = all_datasets(a), all_datasets(b)
    assert sorted(da) == sorted(db)
    for name in da:
        skip = {attr for obj, attr in ignore if obj == name}
        assert ({k: v for k, v in da[name][0].items() if k not in skip}
                == {k: v for k, v in db[name][0].items() if k not in skip}), name
        if da[name][1] is not None:
            np.testing.assert_array_equal(da[name][1], db[name][1], err_msg=name)
