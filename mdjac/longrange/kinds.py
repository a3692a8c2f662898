"""The kinds of long-range Jacobian parts: the ``kind`` tag each part carries and an H5MD file stores
(docs/h5md.md), with the recipe attribute that holds its sizes. Plain strings, no MindSpore and no
numba, so that the numpy data (mdjac.long_range_jacobian, mdjac.pme_jacobian) and the file layout
(mdjac.io.h5md_layout, through mdjac.long_range_jacobian) share one table.
"""

#: an Ewald reciprocal sum's part (mdjac.long_range_jacobian.ReciprocalJacobian)
EWALD_KIND = "ewald-reciprocal-1"
#: smooth PME's mesh operator (mdjac.pme_jacobian.PMEJacobian)
PME_KIND = "pme-mesh-1"
#: LJ-PME's dispersion mesh operator: PME's, with the dispersion influence function (mdjac.pme_jacobian.DispersionPMEJacobian)
DISPERSION_KIND = "pme-dispersion-mesh-1"
#: generalized Born's part, per-pair scalars stored per frame (mdjac.born_jacobian.BornJacobian)
BORN_KIND = "generalized-born-1"
#: a sum of parts on the same atoms (mdjac.long_range_jacobian.PartSum: LJ-PME's Coulomb and dispersion meshes)
SUM_KIND = "part-sum-1"
#: a part over every particle seen through virtual sites, S^T J_all S (mdjac.site_jacobian.SiteMappedPart); a file
#: stores its inner part's recipe and the site map S beside it (docs/h5md.md), not a kind of its own
SITE_MAPPED_KIND = "site-mapped"
#: the attribute holding each kind's sizes: Ewald's kmax (wave numbers |n_a| < kmax_a), PME's grid
KIND_SIZES = {EWALD_KIND: "kmax", PME_KIND: "grid", DISPERSION_KIND: "grid"}
#: each kind's per-atom weights: (dataset name, unit); the Coulomb kinds' also have a ``coulomb_constant``
KIND_WEIGHTS = {EWALD_KIND: ("charges", "e"), PME_KIND: ("charges", "e"),
                DISPERSION_KIND: ("coefficients", "kJ1/2 mol-1/2 nm3")}
