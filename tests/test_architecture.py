"""The house rules of docs/architecture.md, read from the source: imports point down the layers
only, there are no circles, and no module uses type annotations outside dataclasses.

The import graph is read with ``ast`` (every ``import``/``from`` inside the package, at module level
or inside functions: a lazy import is still an arrow), so the test fails on a new upward arrow
before anyone has to find it at run time.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "mdjac"

#: Layer of each room (docs/architecture.md): a module may import only from its own layer or lower ones.
LAYERS = {
    "errors": 0, "version": 0, "process_memory": 0, "chunks": 0, "lazy": 0, "space": 0, "neighbours": 0, "assembly": 0, "kernel": 0, "compile_cache": 0, "jacobian": 0, "terms": 0, "numerical": 0, "longrange": 0, "long_range_jacobian": 0, "pme_jacobian": 0, "born_jacobian": 0, "site_jacobian": 0,
    "potential": 1, "strategies": 1, "sites": 1,
    "catalogue": 2, "sponge": 2, "openmm": 2, "io": 2,
    "jobs": 3, "cluster": 3, "analysis": 3,
    "cli": 4, "__main__": 5, "__init__": 5,
}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(name):
    parts = name.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
MODULE_NAMES = set(MODULES)


def imports_of(path):
    """Names of the mdjac modules that ``path`` imports (resolved from relative imports)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mdjac"):
                modules = {f"{target}.{a.name}" for a in node.names    # "from . import kernel"
                           if f"{target}.{a.name}" in MODULE_NAMES}
                found |= modules or {target}
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mdjac"))
    ancestors = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
    return found - {name} - ancestors    # a module's own packages are imported before it anyway


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_every_room_has_a_layer():
    assert {room(n) for n in MODULES} <= set(LAYERS), {room(n) for n in MODULES} - set(LAYERS)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    upward = [t for t in GRAPH[name] if room(t) != room(name) and LAYERS[room(t)] > LAYERS[room(name)]]
    assert not upward, f"{name} imports from a higher layer: {upward}"


def test_no_import_circles():
    """Depth-first search for a cycle among modules (a package counts as its __init__)."""
    state, path = {}, []

    def visit(n):
        state[n] = "open"
        path.append(n)
        for t in GRAPH.get(n, ()):
            if t not in GRAPH:
                continue
            if state.get(t) == "open":
                raise AssertionError("import circle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t)
        path.pop()
        state[n] = "done"

    for n in sorted(GRAPH):
        if n not in state:
            visit(n)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_type_annotations(name):
    """The house style: types, shapes and units in docstrings; annotations only on dataclass fields."""
    tree = ast.parse(MODULES[name].read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
            assert node.returns is None and all(a.annotation is None for a in args), \
                f"{name}.{node.name} has type annotations"
