"""Bad input raises mdjac.errors.InputError (a ValueError), one line, naming the problem.

Every check here happens before anything is compiled, so these tests are cheap.
"""
import numpy as np
import pytest

import mdjac
from mdjac import terms
from mdjac.errors import InputError

N = 4


def raises(fn, *words):
    """Call fn, require InputError/ValueError with a one-line message containing every word (case-insensitive)."""
    with pytest.raises(InputError) as info:
        fn()
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert "\n" not in msg, f"message is not one line: {msg!r}"
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    return msg


@pytest.fixture(scope="module")
def pot():
    """A potential whose methods are only called with bad input (nothing is ever compiled)."""
    return mdjac.Potential([terms.HarmonicBond([[0, 1], [2, 3]], 1000.0, 0.15),
                            terms.LennardJones([0.3], [0.5], np.zeros(N, int), cutoff=0.9)],
                           box=[2.0, 2.0, 2.0])


GOOD = np.array([[0.1, 0.1, 0.1], [0.25, 0.1, 0.1], [1.0, 1.0, 1.0], [1.15, 1.0, 1.0]])


def all_methods(pot):
    return [pot.energy, pot.forces, pot.energy_and_forces, pot.force_jacobian]


# ----------------------------------------------------------------------------- positions
@pytest.mark.parametrize("shape", [(N + 1, 3), (N, 2), (3 * N,), (1, N, 3)])
def test_wrong_position_shape(pot, shape):
    for method in all_methods(pot):
        raises(lambda: method(np.zeros(shape)), "shape", str(N))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_positions(pot, bad):
    x = GOOD.copy()
    x[2, 1] = bad
    for method in all_methods(pot):
        msg = raises(lambda: method(x), "NaN or inf")
        assert "atom 2" in msg
    raises(lambda: pot.forces(x.astype(np.float32)), "NaN or inf")


def test_non_numeric_positions(pot):
    raises(lambda: pot.energy(np.full((N, 3), "a")), "dtype")


# ----------------------------------------------------------------------------- indices
def test_index_out_of_range():
    raises(lambda: mdjac.Potential([terms.HarmonicBond([[0, 1], [2, 7]], 1.0, 0.1)], n_atoms=5), "atom 7", "5 atoms")
    lj = terms.LennardJones([0.3], [0.5], np.zeros(5, int))
    raises(lambda: mdjac.Potential([lj, terms.HarmonicAngle([[0, 1, 5]], 1.0, 2.0)]), "atom 5", "5 atoms")
    raises(lambda: mdjac.Potential([lj, terms.FlatBottomWall([9], 1.0, [0, 0, 0], 1.0)]), "atom 9")


@pytest.mark.parametrize("make", [
    lambda: terms.HarmonicBond([[0, -1]], 1.0, 0.1),
    lambda: terms.HarmonicAngle([[0, 1, -2]], 1.0, 2.0),
    lambda: terms.PeriodicTorsion([[-1, 0, 1, 2]], 1.0, 1, 0.0),
    lambda: terms.FlatBottomWall([-3], 1.0, [0, 0, 0], 1.0),
    lambda: terms.LennardJones([0.3], [0.5], [0, 0, 0], pairs=[[0, -1]]),
    lambda: terms.Coulomb([1.0, -1.0], exclusions=[[-1, 0]]),
])
def test_negative_indices(make):
    raises(make, "negative")


@pytest.mark.parametrize("make,words", [
    (lambda: terms.HarmonicBond([0, 1], 1.0, 0.1), ("shape", "(M, 2)")),
    (lambda: terms.HarmonicAngle([[0, 1]], 1.0, 2.0), ("shape", "(M, 3)")),
    (lambda: terms.PeriodicTorsion([[0, 1, 2]], 1.0, 1, 0.0), ("shape", "(M, 4)")),
    (lambda: terms.HarmonicBond([[0.0, 1.5]], 1.0, 0.1), ("integer",)),
])
def test_malformed_index_arrays(make, words):
    raises(make, *words)


def test_atom_selection(pot):
    raises(lambda: pot.force_jacobian(GOOD, atoms=np.array([], dtype=np.int64)), "empty")
    raises(lambda: pot.force_jacobian(GOOD, atoms=[0, N]), "outside")
    raises(lambda: pot.force_jacobian(GOOD, atoms=[-1, 2]), "outside")
    raises(lambda: pot.force_jacobian(GOOD, atoms=[0.5]), "integer")
    raises(lambda: pot.force_jacobian(GOOD, atoms=np.ones(N + 2, bool)), "boolean", str(N))


def test_empty_list_selection_named(pot):
    raises(lambda: pot.force_jacobian(GOOD, atoms=[]), "empty")


def test_unknown_strategy(pot):
    raises(lambda: pot.force_jacobian(GOOD, strategy="jacrev"), "strategy", "jacrev", "replicate")


# ----------------------------------------------------------------------------- boxes and cutoffs
@pytest.mark.parametrize("box", [[2.0, 0.0, 2.0], [2.0, -1.0, 2.0], [np.nan, 2.0, 2.0], [np.inf, 2, 2]])
def test_nonpositive_box(box):
    bond = terms.HarmonicBond([[0, 1]], 1.0, 0.1)
    raises(lambda: mdjac.Potential([bond], box=box), "box", "positive")


def test_bad_box_shapes():
    bond = terms.HarmonicBond([[0, 1]], 1.0, 0.1)
    raises(lambda: mdjac.Potential([bond], box=[2.0, 2.0]), "box", "shape")
    raises(lambda: mdjac.Potential([bond], box=[[2, 0.1, 0], [0, 2, 0], [0, 0, 2]]), "OpenMM's form", "rotate")
    raises(lambda: mdjac.Potential([bond], box=[[2, 0, 0], [0.5, -2, 0], [0, 0, 2]]), "b_y", "positive")
    raises(lambda: mdjac.Potential([bond], box=[[2, 0, 0], [0.5, 2, 0], [0, np.nan, 2]]), "finite")


def test_cutoff_over_half_the_smallest_face_distance_of_a_triclinic_box():
    """A truncated octahedron of 3 nm vectors: faces 2.449 nm apart (sqrt(2/3) of 3), so 1.2247 nm is the
    longest cutoff; the message gives the three face distances."""
    from mdjac.space import check_cutoff
    d = 3.0
    box = [[d, 0, 0], [d / 3, 2 * np.sqrt(2) * d / 3, 0], [-d / 3, np.sqrt(2) * d / 3, np.sqrt(6) * d / 3]]
    half = 0.5 * np.sqrt(2.0 / 3.0) * d
    check_cutoff(half * (1 - 1e-12), np.array(box))
    raises(lambda: mdjac.Potential([terms.LennardJones([0.3], [0.5], [0, 0, 0], cutoff=1.23)], box=box),
           "1.23 nm", "opposite faces", "2.44949", "<= 1.22474")


def test_box_override_checked(pot):
    raises(lambda: pot.energy(GOOD, box=[2.0, 2.0, -2.0]), "positive")
    raises(lambda: pot.force_jacobian(GOOD, box=[1.5, 2.0, 2.0]), "cutoff", "half")


def test_cutoff_over_half_box():
    lj = terms.LennardJones([0.3], [0.5], np.zeros(3, int), cutoff=1.1)
    msg = raises(lambda: mdjac.Potential([lj], box=[3.0, 2.0, 3.0]), "cutoff", "half", "1.1")
    assert "2.0" in msg
    dsf = terms.Coulomb([1.0, -1.0, 0.5], cutoff=1.1, method="dsf")
    raises(lambda: mdjac.Potential([dsf], box=[2.1, 5, 5]), "cutoff", "half")


def test_bad_cutoffs():
    raises(lambda: terms.LennardJones([0.3], [0.5], [0, 0], cutoff=-1.0), "cutoff")
    raises(lambda: terms.LennardJones([0.3], [0.5], [0, 0], cutoff=0.0), "cutoff")
    raises(lambda: terms.LennardJones([0.3], [0.5], [0, 0], cutoff=0.5, pairs=[[0, 1]]), "cutoff", "pair list")
    raises(lambda: terms.Coulomb([1.0, -1.0], method="dsf"), "cutoff")
    # 'ewald' is a method (the Ewald sum's direct space); an unknown name is still refused by name
    raises(lambda: terms.Coulomb([1.0, -1.0], cutoff=0.5, method="pme"), "method", "pme")
    raises(lambda: terms.Coulomb([1.0, -1.0], method="ewald"), "cutoff")


def test_all_pairs_in_periodic_box():
    lj = terms.LennardJones([0.3], [0.5], np.zeros(N, int))  # no cutoff
    pot = mdjac.Potential([lj], box=[3.0, 3.0, 3.0])
    raises(lambda: pot.energy(GOOD), "cutoff", "periodic")


# ----------------------------------------------------------------------------- parameter tables
def test_types_outside_the_table():
    raises(lambda: terms.LennardJones([0.3, 0.25], [0.5, 0.2], [0, 1, 2]), "types", "table", "2 entries")
    raises(lambda: terms.LennardJones([0.3, 0.25], [0.5, 0.2], [0, -1, 1]), "types", "table")
    raises(lambda: terms.LennardJones(np.full((2, 2), 0.3), np.full((2, 2), 0.5), [0, 1, 3]), "types", "table")
    raises(lambda: terms.HarmonicRestraint([10.0, 20.0], [0, 1, 2], np.zeros((3, 3))), "types", "table")
    raises(lambda: terms.LennardJones([0.3], [0.5], [0.0, 0.0]), "integer")


def test_sigma_epsilon_shape_mismatch():
    raises(lambda: terms.LennardJones([0.3, 0.25], [0.5], [0, 1]), "sigma", "epsilon")
    raises(lambda: terms.LennardJones(np.full((2, 2), 0.3), [0.5, 0.2], [0, 1]), "sigma", "epsilon")
    raises(lambda: terms.LennardJones(np.full((2, 3), 0.3), np.full((2, 3), 0.5), [0, 1]), "sigma", "epsilon")
    raises(lambda: terms.LennardJones([0.3, -0.1], [0.5, 0.2], [0, 1]), "negative")


@pytest.mark.parametrize("make,words", [
    (lambda: terms.HarmonicBond([[0, 1], [1, 2], [2, 3]], [1.0, 2.0], 0.1), ("bond k", "3 instances")),
    (lambda: terms.HarmonicBond([[0, 1], [1, 2]], 1.0, [0.1, 0.1, 0.1]), ("bond r0", "2 instances")),
    (lambda: terms.HarmonicAngle([[0, 1, 2]], [1.0, 2.0], 2.0), ("angle k", "1 instances")),
    (lambda: terms.PeriodicTorsion([[0, 1, 2, 3]], 1.0, [1, 2], 0.0), ("periodicity",)),
    (lambda: terms.FlatBottomWall([0, 1], 1.0, [[0, 0, 0]] * 3, 1.0), ("wall centre",)),
    (lambda: terms.HarmonicBond([[0, 1]], np.nan, 0.1), ("NaN",)),
])
def test_per_instance_parameters_of_wrong_length(make, words):
    raises(make, *words)


def test_per_atom_tables_of_different_lengths():
    lj = terms.LennardJones([0.3], [0.5], np.zeros(5, int), cutoff=0.5)
    coul = terms.Coulomb(np.ones(6), cutoff=0.5)
    raises(lambda: mdjac.Potential([lj, coul]), "different numbers of atoms", "[5, 6]")
    raises(lambda: mdjac.Potential([lj], n_atoms=7), "different numbers of atoms")


def test_restraint_reference_shape():
    raises(lambda: terms.HarmonicRestraint([10.0], [0, 0, 0], np.zeros((2, 3))), "reference", "(N, 3)")


def test_field_shape_and_charges():
    raises(lambda: terms.ElectricField([1.0, -1.0], [1.0, 2.0]), "field", "3 components")
    raises(lambda: terms.Coulomb([1.0, np.nan]), "charges", "NaN")


def test_empty_potential():
    raises(lambda: mdjac.Potential([]), "at least one term")


def test_exclusions_out_of_range():
    raises(lambda: terms.LennardJones([0.3], [0.5], np.zeros(10, int), exclusions=[[0, 15]]), "exclusions")


def test_explicit_pairs_out_of_range():
    def build_and_use():
        lj = terms.LennardJones([0.3], [0.5], np.zeros(4, int), pairs=[[0, 10]])
        mdjac.Potential([lj]).energy(GOOD)
    raises(build_and_use, "10")


# ----------------------------------------------------------------------------- parameter values
#: One maker per term with every parameter given: ``make(**{name: bad})`` builds the term with one parameter spoiled.
TERM_MAKERS = {
    "HarmonicBond": (lambda k=1000.0, r0=0.15: terms.HarmonicBond([[0, 1]], k, r0)),
    "HarmonicAngle": (lambda k=400.0, theta0=1.9: terms.HarmonicAngle([[0, 1, 2]], k, theta0)),
    "PeriodicTorsion": (lambda k=1.0, n=2, phase=0.0: terms.PeriodicTorsion([[0, 1, 2, 3]], k, n, phase)),
    "ImproperTorsion": (lambda k=1.0, n=2, phase=np.pi: terms.ImproperTorsion([[0, 1, 2, 3]], k, n, phase)),
    "LennardJones": (lambda sigma=[0.3], epsilon=[0.5], scale=1.0, cutoff=0.9:
                     terms.LennardJones(sigma, epsilon, [0, 0, 0], cutoff=cutoff, scale=scale)),
    "Coulomb": (lambda charges=[1.0, -1.0], alpha=0.25, scale=1.0:
                terms.Coulomb(charges, cutoff=0.9, method="dsf", alpha=alpha, scale=scale)),
    "DampedShiftedForceCoulomb": (lambda charges=[1.0, -1.0], alpha=0.25, scale=1.0, coulomb_constant=138.935458:
                                  terms.DampedShiftedForceCoulomb(charges, cutoff=0.9, alpha=alpha, scale=scale,
                                                                  coulomb_constant=coulomb_constant)),
    "EwaldDirectCoulomb": (lambda charges=[1.0, -1.0], alpha=3.0, scale=1.0:
                           terms.EwaldDirectCoulomb(charges, cutoff=0.9, alpha=alpha, scale=scale)),
    "HarmonicRestraint": (lambda k=[100.0], reference=np.zeros((2, 3)): terms.HarmonicRestraint(k, [0, 0], reference)),
    "ElectricField": (lambda charges=[1.0, -1.0], field=[0.0, 0.0, 1.0]: terms.ElectricField(charges, field)),
    "FlatBottomWall": (lambda k=100.0, centre=[0.0, 0.0, 0.0], radius=1.0: terms.FlatBottomWall([0, 1], k, centre, radius)),
    "LongRangeDispersion": (lambda coefficient=-1.0: terms.LongRangeDispersion(coefficient, 4)),
    "CMAPTorsion": (lambda maps=[np.ones((24, 24))]: terms.CMAPTorsion([[0, 1, 2, 3, 1, 2, 3, 4]], maps, [0])),
    "EwaldExclusion": (lambda charges=[1.0, -1.0], alpha=3.0, coulomb_constant=138.935458:
                       terms.EwaldExclusion(charges, [[0, 1]], alpha, coulomb_constant)),
}


def _every_parameter():
    import inspect
    for term, make in TERM_MAKERS.items():
        for name, default in inspect.signature(make).parameters.items():
            yield term, make, name, default.default


def test_every_term_class_has_a_maker():
    """A term added to mdjac.terms gets its parameters checked here too."""
    import inspect
    classes = {name for name, obj in vars(terms).items()
               if isinstance(obj, type) and issubclass(obj, terms.Term) and obj.__module__.startswith(terms.__name__ + ".")
               and not inspect.isabstract(obj) and name not in ("Term", "FixedTerm", "PairTerm")}
    assert classes == set(TERM_MAKERS)
    assert set(terms.BY_NAME) == classes          # every term class can be named in a system file


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("term,make,name,good", list(_every_parameter()), ids=lambda v: v if isinstance(v, str) else "")
def test_nonfinite_parameters_refused_in_every_term(term, make, name, good, bad):
    make()                                        # the good values build
    spoiled = np.array(good, dtype=np.float64)
    spoiled.flat[0] = bad
    msg = raises(lambda: make(**{name: spoiled if spoiled.ndim else float(spoiled)}), "NaN or inf")
    assert term in msg


@pytest.mark.parametrize("term,make,name,good", list(_every_parameter()), ids=lambda v: v if isinstance(v, str) else "")
def test_non_numbers_refused_in_every_term(term, make, name, good):
    msg = raises(lambda: make(**{name: "big"}), "big")
    assert term in msg


@pytest.mark.parametrize("make,words", [
    (lambda: TERM_MAKERS["HarmonicBond"](k=-1000.0), ("HarmonicBond k", "-1000", "magnitude")),
    (lambda: TERM_MAKERS["HarmonicBond"](r0=-0.1), ("HarmonicBond r0", "-0.1", "nm")),
    (lambda: TERM_MAKERS["HarmonicAngle"](k=-5.0), ("HarmonicAngle k", "-5", "magnitude")),
    (lambda: TERM_MAKERS["HarmonicAngle"](theta0=109.5), ("HarmonicAngle theta0", "109.5", "radians")),
    (lambda: TERM_MAKERS["HarmonicAngle"](theta0=-0.5), ("HarmonicAngle theta0", "radians")),
    (lambda: TERM_MAKERS["PeriodicTorsion"](n=1.5), ("PeriodicTorsion periodicity", "1.5", "whole number")),
    (lambda: TERM_MAKERS["ImproperTorsion"](n=-2), ("ImproperTorsion periodicity", "whole number")),
    (lambda: TERM_MAKERS["LennardJones"](epsilon=[-0.5]), ("LennardJones epsilon", "-0.5", "kJ/mol")),
    (lambda: TERM_MAKERS["LennardJones"](sigma=[-0.3]), ("LennardJones sigma", "-0.3", "nm")),
    (lambda: TERM_MAKERS["LennardJones"](scale=-0.5), ("LennardJones scale", ">= 0")),
    (lambda: TERM_MAKERS["Coulomb"](alpha=-1.0), ("Coulomb alpha", "nm^-1")),
    (lambda: TERM_MAKERS["HarmonicRestraint"](k=[-100.0]), ("HarmonicRestraint k", "-100", "magnitude")),
    (lambda: TERM_MAKERS["FlatBottomWall"](k=-1.0), ("FlatBottomWall k", "magnitude")),
    (lambda: TERM_MAKERS["FlatBottomWall"](radius=-1.0), ("FlatBottomWall radius", "nm")),
])
def test_impossible_parameters_named_with_the_fix(make, words):
    raises(make, *words)


def test_what_real_force_fields_use_is_allowed():
    """Negative charges, zero epsilon, torsion k of either sign, pi as float32, zero k: all accepted."""
    terms.Coulomb([-0.834, 0.417, 0.417])
    terms.LennardJones([0.3, 0.0], [0.5, 0.0], [0, 1, 1])
    terms.PeriodicTorsion([[0, 1, 2, 3], [0, 1, 2, 3]], [-2.5, 2.5], [3.0, 1.0], [0.0, np.pi])
    terms.HarmonicAngle([[0, 1, 2]], 300.0, float(np.float32(np.pi)))
    terms.HarmonicBond([[0, 1]], 0.0, 0.0)
    terms.HarmonicRestraint([0.0, 10.0], [0, 1], np.zeros((2, 3)))


@pytest.mark.parametrize("make,words", [
    (lambda: TERM_MAKERS["LennardJones"](scale=[1.0, 0.5]), ("LennardJones scale", "one number")),
    (lambda: TERM_MAKERS["LennardJones"](cutoff=[0.9, 1.0]), ("LennardJones cutoff", "one number")),
    (lambda: TERM_MAKERS["Coulomb"](alpha=[0.2, 0.3]), ("Coulomb alpha", "one number")),
    (lambda: TERM_MAKERS["LongRangeDispersion"](coefficient=[1.0, 2.0]), ("coefficient", "one number")),
])
def test_scalar_parameters_refuse_arrays(make, words):
    raises(make, *words)


def test_the_command_line_loads_no_numpy_before_it_blocks_ctrl_c():
    """mdjac.errors is imported by mdjac.cli at start; numpy there would start BLAS threads before
    Ctrl-C is blocked, and a SIGINT landing in one of them ends the process through MindSpore's handler."""
    import subprocess
    import sys
    code = "import sys, mdjac.cli, mdjac.errors; assert 'numpy' not in sys.modules, 'numpy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("edge,half", [(2.0, 1.0), (3.1, 1.55)])
def test_cutoff_at_exactly_half_the_box_edge(edge, half):
    """A cutoff of exactly half the smallest box edge is allowed (minimum image holds); the next
    float above it is refused, on construction and for a frame's own box."""
    from mdjac.space import check_cutoff

    assert 0.5 * edge == half
    above = np.nextafter(half, np.inf)
    box = [edge + 1.0, edge, edge + 0.5]
    check_cutoff(half, box)
    raises(lambda: check_cutoff(above, box), "half the smallest box edge")
    x = np.array([[0.1, 0.1, 0.1], [0.1 + 0.99 * half, 0.1, 0.1], [0.3, 0.6, 0.2]])
    pot = mdjac.Potential([terms.LennardJones([0.3], [0.5], [0, 0, 0], cutoff=half)], box=box)
    assert pot.energy(x) != 0.0                                   # the pair at 0.99 half is counted
    raises(lambda: mdjac.Potential([terms.LennardJones([0.3], [0.5], [0, 0, 0], cutoff=above)], box=box),
           "half the smallest box edge")
    pot.energy(x, box=[edge] * 3)                                 # a frame's box at exactly twice the cutoff
    raises(lambda: pot.energy(x, box=[edge, edge, np.nextafter(edge, 0.0)]), "half the smallest box edge")
