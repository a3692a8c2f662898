"""The test suite's own rules: shared helpers come from helpers.py or conftest's fixtures, never from
another test module, and tests name what they check, not the issue that asked for it."""
import ast
import pathlib
import re

TESTS = pathlib.Path(__file__).resolve().parent
#: every module of the suite but conftest.py (test modules, helpers, references, child scripts)
MODULES = sorted(p for p in TESTS.glob("*.py") if p.name != "conftest.py")


def imported_modules(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
    return names


def test_no_module_imports_a_test_module_or_conftest():
    assert {"helpers.py", "openmm_reference.py", "test_suite_layout.py"} <= {p.name for p in MODULES}
    for path in MODULES:
        wrong = {name for name in imported_modules(path) if name.startswith("test_") or name == "conftest"}
        assert not wrong, f"{path.name} imports {sorted(wrong)}: move what it shares to helpers.py or a fixture"


def test_no_issue_numbers_in_tests():
    for path in sorted(TESTS.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not re.search(r"\bissues?\s*#?\d", line, re.IGNORECASE), f"{path.name}:{number}: {line.strip()}"
