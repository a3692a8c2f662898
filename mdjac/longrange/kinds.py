"""The kinds of long-range Jacobian parts: the ``kind`` tag each part carries and an H5MD file stores
(docs/h5md.md), with the recipe attribute that holds its sizes. Plain strings, no MindSpore and no
numba, so that the numpy data (mdjac.long_range_jacobian, mdjac.pme_jacobian) and the file layout
(mdjac.io.h5md_layout, through mdjac.long_range_jacobian) share one table.
"""

#: an Ewald reciprocal sum's part (mdjac.long_range_jacobian.ReciprocalJacobian)
EWALD_KIND = "ewald-reciprocal-1"
#: smooth PME's mesh operator (mdjac.pme_jacobian.PMEJacobian)
PME_KIND = "pme-mesh-1"
#: generalized Born's part, per-pair scalars stored per frame (mdjac.born_jacobian.BornJacobian)
BORN_KIND = "generalized-born-1"
#: the attribute holding each kind's sizes: Ewald's kmax (wave numbers |n_a| < kmax_a), PME's grid
KIND_SIZES = {EWALD_KIND: "kmax", PME_KIND: "grid"}
