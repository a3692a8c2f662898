"""The potential as one opaque MindSpore function of all positions, and its Jacobian by colours.

:func:`energy_function` builds the energy of a configuration as one function of every position
(all groups of terms and every long-range term's :meth:`energy_function`); :func:`jacobian_by_colours`
takes its Hessian by masked grads over colours of atoms (mdjac.kernel.coloured_hessian_blocks). The
colour and dense strategies differ only in their colouring. A long-range term couples every pair
of atoms, so there every pair interacts, which makes "dense" the independent check of the
replicate strategy's structured result.
"""
import numpy as np

from .. import kernel
from ..jacobian import ForceJacobian, assemble_blocks
from ..neighbours import pair_keys, pairs_of_keys


def _interaction_pairs(potential, config):
    """(P, 2) int64 atom pairs i < j coupled by some term instance in ``config``."""
    n = potential.n_atoms
    if potential.long_range_terms:  # a long-range term couples every pair
        return np.stack(np.triu_indices(n, k=1), axis=1).astype(np.int64)
    keys = []
    for group, index, _, _ in potential.instance_groups(config, coordinates=False):
        for a in range(group.n_body):
            for b in range(a + 1, group.n_body):
                keys.append(pair_keys(index[:, a], index[:, b], n))
    keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    pairs = pairs_of_keys(keys, n)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def energy_function(potential, config):
    """The configuration's energy as one MindSpore function of all positions.

    Returns
    -------
    energy : callable, ``energy(X, *args)`` maps X (C, N, 3) copies of the positions (nm) to (C,)
        energies (kJ/mol)
    args : list of ndarrays, the instance lists, constant minimum-image shifts and parameters,
        frozen at ``config``: the function is exact for positions near it (within the neighbour
        list's validity)
    """
    from mindspore import ops

    layout, args = [], []
    for group, index, q, params in potential.instance_groups(config):
        args.append(index.reshape(-1).astype(np.int32))
        if group.relative:  # the constant minimum-image shift of each displacement
            raw = config.positions[index[:, 1:]] - config.positions[index[:, :1]]
            args.append((q.astype(np.float64) - raw).astype(config.dtype))
        args.extend(params)
        layout.append((group, index.shape, len(params)))
    sites = potential.sites if potential.long_range_terms else None
    if sites is not None:       # the long-range terms see every particle: the sites placed from the real atoms
        site_args = sites.placement_args(config)
        args.extend(site_args)
        layout.append((sites.place_copies, "sites", len(site_args)))
    for term in potential.long_range_terms:
        lr_energy, lr_args = term.energy_function(config)
        args.extend(lr_args)
        layout.append((lr_energy, None, len(lr_args)))

    def energy(X, *args):
        total = 0.0
        at = 0
        placed = X
        for group, shape, n_params in layout:
            if shape == "sites":
                placed = group(X, *args[at:at + n_params])
                at += n_params
                continue
            if shape is None:  # a long-range term: a function of all positions
                total = total + group(placed, *args[at:at + n_params])
                at += n_params
                continue
            x = ops.gather(X, args[at], 1).reshape(X.shape[:1] + shape + (3,))
            at += 1
            qx = x
            if group.relative:
                qx = x[:, :, 1:] - x[:, :, :1] + args[at]
                at += 1
            total = total + group.energy(qx, *args[at:at + n_params]).sum(-1)
            at += n_params
        return total
    return energy, args


def jacobian_by_colours(potential, config, colouring):
    """The whole force Jacobian of :func:`energy_function` by colours, over all N atoms.

    colouring: ``colouring(n, pairs (P, 2))`` -> (N,) int colours such that no two atoms of one
    colour share a neighbour (mdjac.kernel.distance2_colouring; one colour per atom is the dense case).
    """
    n = potential.n_atoms
    pairs = _interaction_pairs(potential, config)
    colours = colouring(n, pairs)
    energy, args = energy_function(potential, config)
    gradient = kernel.instance_gradient_of(energy)
    rows, cols, blocks = kernel.coloured_hessian_blocks(gradient, config.positions.astype(config.dtype), pairs, colours,
                                                        args, batched=True, cache=False)
    r, c, h = assemble_blocks(n, rows, cols, blocks)
    return ForceJacobian(n, r, c, np.negative(h, out=h))
