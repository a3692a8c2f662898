"""OpenMM's Lepton energy expressions as MindSpore energies with per-instance parameter tables.

A custom force's energy is a Lepton expression such as

    "k*(r-r0)^2"      or      "acoef(type1, type2)/r^12 - bcoef(type1, type2)/r^6"
    "k*dtheta^2; dtheta = min(diff, 2*pi-diff); diff = abs(theta-theta0)"

Parsing. Lepton's grammar is Python's arithmetic grammar with ``^`` for the power, so the kept
parser is Python's own ``ast`` on the text with ``^`` replaced by ``**``: same precedence
(unary minus binds looser than the power, ``-x^2 = -(x^2)``), the power right-associative, calls
``f(a, b)``, numbers ``1.5e-3``. The ``;``-separated definitions that follow the main expression
are substituted into it, each definition seeing those after it (Lepton reads them last to first).

Evaluation: the article's form ``y[index] * f(x)``. Every maximal subexpression that does not
depend on the coordinate variables (r, theta, x, y, z) is a *slot*: it is evaluated once per
instance in numpy float64 (per-bond parameters, global parameters, per-particle parameters of
both atoms, discrete tabulated functions such as NBFIX's ``acoef(type1, type2)``, and every
constant), and passed to the compiled energy as an (M,) array. What depends on the coordinates
is a tree of MindSpore closures over those slots. So the graph holds no float constant (a Python
float in a MindSpore graph is float32), except small integer powers, done by multiplication.

Functions (Lepton's): sqrt exp log sin cos tan sec csc cot asin acos atan atan2 sinh cosh tanh
erf erfc step (1 if x >= 0) delta (1 if x == 0) square cube recip min max abs floor ceil
select(x, a, b) (a if x != 0 else b), and the force's tabulated functions: Discrete1D/2D/3D
(of parameters only), Continuous1D (natural or periodic cubic spline, of anything).
"""
import ast
import keyword
import math
import re

import numpy as np
import scipy.special
from mindspore import ops

from ..errors import InputError

# ----------------------------------------------------------------------------- nodes
# A node is a tuple: ("num", value) ("var", name) ("neg", a) ("op", sym, a, b) ("call", name, args)


def _parse_one(text, where):
    """One Lepton expression (no ';') -> node."""
    python = text.replace("^", "**")
    python = re.sub(r"\b([A-Za-z_]\w*)\b", lambda m: m.group(1) + "__kw" if keyword.iskeyword(m.group(1)) else m.group(1), python)
    try:
        tree = ast.parse(python.strip(), mode="eval").body
    except SyntaxError as e:
        raise InputError(f"cannot parse the energy expression {where!r}: {e.msg}; use OpenMM's Lepton syntax") from None
    return _node(tree, where)


_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "^"}


def _node(t, where):
    if isinstance(t, ast.Constant) and isinstance(t.value, (int, float)) and not isinstance(t.value, bool):
        return ("num", float(t.value))
    if isinstance(t, ast.Name):
        return ("var", t.id[:-4] if t.id.endswith("__kw") else t.id)
    if isinstance(t, ast.UnaryOp) and isinstance(t.op, (ast.USub, ast.UAdd)):
        a = _node(t.operand, where)
        if isinstance(t.op, ast.UAdd):
            return a
        return ("num", -a[1]) if a[0] == "num" else ("neg", a)
    if isinstance(t, ast.BinOp) and type(t.op) in _BINARY:
        return ("op", _BINARY[type(t.op)], _node(t.left, where), _node(t.right, where))
    if isinstance(t, ast.Call) and isinstance(t.func, ast.Name) and not t.keywords:
        return ("call", t.func.id, tuple(_node(a, where) for a in t.args))
    raise InputError(f"the energy expression {where!r} uses {ast.dump(t)[:40]}..., which is not Lepton syntax")


def _substitute(node, defined):
    kind = node[0]
    if kind == "var":
        return defined.get(node[1], node)
    if kind == "neg":
        return ("neg", _substitute(node[1], defined))
    if kind == "op":
        return ("op", node[1], _substitute(node[2], defined), _substitute(node[3], defined))
    if kind == "call":
        return ("call", node[1], tuple(_substitute(a, defined) for a in node[2]))
    return node


def parse(text):
    """A Lepton expression with ``;`` definitions -> one node with the definitions substituted."""
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if not parts:
        raise InputError("the energy expression is empty: give an OpenMM (Lepton) expression")
    defined = {}
    for part in reversed(parts[1:]):
        name, eq, rhs = part.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_]\w*", name.strip()):
            raise InputError(f"{part!r} in the energy expression {text!r} is not a definition 'name = expression'")
        defined[name.strip()] = _substitute(_parse_one(rhs, text), defined)
    return _substitute(_parse_one(parts[0], text), defined)


def variables_of(node):
    """The set of variable names a node uses."""
    kind = node[0]
    if kind == "var":
        return {node[1]}
    if kind == "neg":
        return variables_of(node[1])
    if kind == "op":
        return variables_of(node[2]) | variables_of(node[3])
    if kind == "call":
        return set().union(*(variables_of(a) for a in node[2])) if node[2] else set()
    return set()


# ----------------------------------------------------------------------------- functions
def _np_select(x, a, b):
    return np.where(x != 0, a, b)


def _ms_sec(x):
    return ops.reciprocal(ops.cos(x))


def _ms_csc(x):
    return ops.reciprocal(ops.sin(x))


def _ms_cot(x):
    return ops.reciprocal(ops.tan(x))


def _ms_step(x):
    return ops.select(x >= 0, ops.ones_like(x), ops.zeros_like(x))


def _ms_delta(x):
    return ops.select(x == 0, ops.ones_like(x), ops.zeros_like(x))


def _ms_square(x):
    return x * x


def _ms_cube(x):
    return x * x * x


#: name -> (number of arguments, numpy function, MindSpore function)
FUNCTIONS = {
    "sqrt": (1, np.sqrt, ops.sqrt),
    "exp": (1, np.exp, ops.exp),
    "log": (1, np.log, ops.log),
    "sin": (1, np.sin, ops.sin),
    "cos": (1, np.cos, ops.cos),
    "tan": (1, np.tan, ops.tan),
    "sec": (1, lambda x: 1 / np.cos(x), _ms_sec),
    "csc": (1, lambda x: 1 / np.sin(x), _ms_csc),
    "cot": (1, lambda x: 1 / np.tan(x), _ms_cot),
    "asin": (1, np.arcsin, ops.asin),
    "acos": (1, np.arccos, ops.acos),
    "atan": (1, np.arctan, ops.atan),
    "atan2": (2, np.arctan2, ops.atan2),
    "sinh": (1, np.sinh, ops.sinh),
    "cosh": (1, np.cosh, ops.cosh),
    "tanh": (1, np.tanh, ops.tanh),
    "erf": (1, scipy.special.erf, ops.erf),
    "erfc": (1, scipy.special.erfc, ops.erfc),
    "step": (1, lambda x: np.where(x >= 0, 1.0, 0.0), _ms_step),
    "delta": (1, lambda x: np.where(x == 0, 1.0, 0.0), _ms_delta),
    "square": (1, np.square, _ms_square),
    "cube": (1, lambda x: x * x * x, _ms_cube),
    "recip": (1, lambda x: 1 / x, ops.reciprocal),
    "min": (2, np.minimum, ops.minimum),
    "max": (2, np.maximum, ops.maximum),
    "abs": (1, np.abs, ops.abs),
    "floor": (1, np.floor, ops.floor),
    "ceil": (1, np.ceil, ops.ceil),
    "select": (3, _np_select, None),
}


def _ms_select(x, a, b):
    return ops.select(x != 0, a, b)


def _ms_int_power(x, n):
    """x^n for an integer n >= 1 by repeated squaring (unrolled at compile time: n is a constant)."""
    if n == 1:
        return x
    half = _ms_int_power(x, n // 2)
    if n % 2 == 0:
        return half * half
    return half * half * x


# ----------------------------------------------------------------------------- tabulated functions
class Tabulated:
    """A tabulated function of an OpenMM force, evaluated in numpy (and, if continuous, in MindSpore).

    kind: 'discrete' (values (n1, ..., nd) indexed by rounded arguments, x fastest in OpenMM's
    flat list) or 'spline' (a 1-D cubic spline on [lo, hi]: natural, or periodic).
    """

    def __init__(self, name, kind, values, lo=None, hi=None, periodic=False):
        self.name, self.kind, self.values = name, kind, np.asarray(values, dtype=np.float64)
        self.lo, self.hi, self.periodic = lo, hi, periodic
        if kind == "spline":
            import scipy.interpolate
            x = np.linspace(lo, hi, len(self.values))
            self.spline = scipy.interpolate.CubicSpline(x, self.values, bc_type="periodic" if periodic else "natural")
            self.n_args = 1
        else:
            self.n_args = self.values.ndim

    def numpy(self, *args):
        if self.kind == "spline":
            x = np.asarray(args[0], dtype=np.float64)
            if self.periodic:
                x = self.lo + np.mod(x - self.lo, self.hi - self.lo)
            return np.where((x < self.lo) | (x > self.hi), 0.0, self.spline(np.clip(x, self.lo, self.hi)))
        index = tuple(np.rint(np.asarray(a)).astype(np.int64) for a in args)
        for a, size in zip(index, self.values.shape):
            if a.size and (a.min() < 0 or a.max() >= size):
                raise InputError(f"the tabulated function {self.name} is called outside its table (0..{size - 1})")
        return self.values[index]


def _spline_in_graph(table, coefficients_slot, x):
    raise InputError(f"the tabulated function {table.name} is called with a coordinate-dependent argument; "
                     "mdjac supports continuous tabulated functions of parameters only")


# ----------------------------------------------------------------------------- compiled expression
class Expression:
    """A Lepton expression split into per-instance slots (numpy) and a MindSpore energy over them.

    text: the Lepton expression. coordinates: names of the variables the energy depends on
    through the geometry, in the order the term passes them (("r",), ("theta",), ("x", "y", "z")).
    tabulated: {name: :class:`Tabulated`}.

    Attributes: ``parameters`` (sorted names the slots need), ``function(variables, slots)`` the
    MindSpore energy for mdjac.custom terms. :meth:`slots` evaluates the slots from parameter arrays.
    """

    def __init__(self, text, coordinates, tabulated=None):
        self.text, self.coordinates = text, tuple(coordinates)
        self.tabulated = dict(tabulated or {})
        self._slot_nodes = []
        node = self._node = parse(text)
        self._check(node)
        self.function = self._closure_root(node)
        self.parameters = sorted(set().union(*(variables_of(s) for s in self._slot_nodes)) if self._slot_nodes else set())

    # -------------------------------------------------------------- checks
    def _check(self, node):
        kind = node[0]
        if kind == "call":
            name, args = node[1], node[2]
            if name in self.tabulated:
                want = self.tabulated[name].n_args
            elif name in FUNCTIONS:
                want = FUNCTIONS[name][0]
            else:
                raise InputError(f"the energy expression {self.text!r} calls {name}(), which mdjac does not know: "
                                 f"supported are {', '.join(sorted(FUNCTIONS))} and the force's tabulated functions")
            if len(args) != want:
                raise InputError(f"{name}() in {self.text!r} takes {want} arguments, got {len(args)}")
            for a in args:
                self._check(a)
        elif kind == "neg":
            self._check(node[1])
        elif kind == "op":
            self._check(node[2])
            self._check(node[3])

    def _depends(self, node):
        return bool(variables_of(node) & set(self.coordinates))

    # -------------------------------------------------------------- numpy side (slots)
    def numpy(self, values):
        """The expression's value in numpy float64; values: {name: scalar or array}, coordinates included."""
        return self._numpy(self._node, values)

    def _numpy(self, node, values):
        kind = node[0]
        if kind == "num":
            return np.float64(node[1])
        if kind == "var":
            if node[1] not in values:
                raise InputError(f"the energy expression {self.text!r} uses {node[1]!r}, which is neither a parameter "
                                 "of the force nor a global parameter")
            return values[node[1]]
        if kind == "neg":
            return -self._numpy(node[1], values)
        if kind == "op":
            a, b = self._numpy(node[2], values), self._numpy(node[3], values)
            with np.errstate(divide="ignore", invalid="ignore"):
                return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}[node[1]](a, b)
        name, args = node[1], [self._numpy(a, values) for a in node[2]]
        if name in self.tabulated:
            return self.tabulated[name].numpy(*args)
        if name == "select":
            return _np_select(*args)
        with np.errstate(divide="ignore", invalid="ignore"):
            return FUNCTIONS[name][1](*args)

    def slots(self, values, m):
        """The (m,) float64 slot arrays for m instances; values: {parameter name: scalar or (m,)}."""
        out = []
        for node in self._slot_nodes:
            v = np.broadcast_to(np.asarray(self._numpy(node, values), dtype=np.float64), (m,))
            out.append(np.ascontiguousarray(v))
        return tuple(out)

    # -------------------------------------------------------------- MindSpore side
    def _slot(self, node):
        self._slot_nodes.append(node)
        index = len(self._slot_nodes) - 1

        def slot(variables, slots):
            return slots[index]
        return slot

    def _closure_root(self, node):
        inner = self._closure(node)
        if self._depends(node):
            return inner

        def constant_energy(variables, slots):  # keeps the shape (..., M) of the coordinates
            return inner(variables, slots) + 0.0 * variables[0]
        return constant_energy

    def _closure(self, node):
        if not self._depends(node):
            return self._slot(node)
        kind = node[0]
        if kind == "var":
            index = self.coordinates.index(node[1])

            def coordinate(variables, slots):
                return variables[index]
            return coordinate
        if kind == "neg":
            a = self._closure(node[1])

            def negative(variables, slots):
                return -a(variables, slots)
            return negative
        if kind == "op":
            return self._operation(node)
        return self._call(node)

    def _operation(self, node):
        sym, left, right = node[1], node[2], node[3]
        if sym == "^" and right[0] == "num" and float(right[1]).is_integer() and 0 < abs(right[1]) <= 64:
            base, n = self._closure(left), int(abs(right[1]))
            if right[1] > 0:
                def integer_power(variables, slots):
                    return _ms_int_power(base(variables, slots), n)
                return integer_power

            def inverse_integer_power(variables, slots):
                return ops.reciprocal(_ms_int_power(base(variables, slots), n))
            return inverse_integer_power
        a, b = self._closure(left), self._closure(right)
        if sym == "+":
            def add(variables, slots):
                return a(variables, slots) + b(variables, slots)
            return add
        if sym == "-":
            def subtract(variables, slots):
                return a(variables, slots) - b(variables, slots)
            return subtract
        if sym == "*":
            def multiply(variables, slots):
                return a(variables, slots) * b(variables, slots)
            return multiply
        if sym == "/":
            def divide(variables, slots):
                return a(variables, slots) / b(variables, slots)
            return divide

        def power(variables, slots):
            return ops.pow(a(variables, slots), b(variables, slots))
        return power

    def _call(self, node):
        name, args = node[1], [self._closure(a) for a in node[2]]
        if name in self.tabulated:
            _spline_in_graph(self.tabulated[name], None, None)
        if name == "select":
            c, a, b = args

            def select(variables, slots):
                return _ms_select(c(variables, slots), a(variables, slots), b(variables, slots))
            return select
        fn = FUNCTIONS[name][2]
        if len(args) == 1:
            (a,) = args

            def unary(variables, slots):
                return fn(a(variables, slots))
            return unary
        a, b = args

        def binary(variables, slots):
            return fn(a(variables, slots), b(variables, slots))
        return binary
