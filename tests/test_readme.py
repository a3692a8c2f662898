"""The README and the command line's help tell the truth about the code.

Compared: the README against the parser (every option named), ``run --help``'s defaults against
``mdjac.jobs.run_md``'s signature, the README's file names against the Makefile and the examples.
"""
import inspect
import re
from pathlib import Path

import pytest

from mdjac.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title):
    """The README's text under ``## title`` up to the next ``## ``."""
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def subcommands():
    """{name: its argparse parser}."""
    action = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_readme_command_line_names_every_option(command):
    text = section("Command line")
    table = [line for line in text.splitlines() if line.startswith(f"| {command} |")]
    for action in subcommands()[command]._actions:
        if action.dest == "help":
            continue
        names = action.option_strings or [action.dest]
        in_table = any(any(f"`{name}`" in row for name in names) for row in table)
        assert in_table, f"README's command-line table has no row for mdjac {command} {names}"


def test_run_help_states_the_defaults_run_md_uses():
    from mdjac.jobs import run_md
    defaults = {name: p.default for name, p in inspect.signature(run_md).parameters.items()}
    help_text = subcommands()["run"].format_help()
    for option, name in (("--steps", "steps"), ("--every", "every"), ("--output", "output"), ("--system", "system")):
        action = next(a for a in subcommands()["run"]._actions if option in a.option_strings)
        shown = re.search(r"\[([^\]]+)\]$", action.help).group(1)
        assert shown == str(defaults[name]), (option, shown, defaults[name])
        assert f"[{defaults[name]}]" in " ".join(help_text.split())
        row = next(line for line in section("Command line").splitlines() if f"| run | `{option}`" in line)
        assert f"| {defaults[name]} |" in row


def test_make_run_output_is_the_one_the_readme_names():
    makefile = (ROOT / "Makefile").read_text()
    output = re.search(r"mdjac run --output (\S+)", makefile).group(1)
    assert output.endswith(".h5md")
    assert f"into {output}" in README
    assert not re.search(r"\.h5\b(?!md)", README), "the README names an .h5 file; outputs are .h5md"


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_every_example_writes_the_png_the_readme_names(example):
    source = (ROOT / "examples" / example).read_text()
    pngs = set(re.findall(r"out/[\w.-]+\.png", source)) | {f"out/{m}.png" for m in re.findall(r'f"out/([\w{}-]+)\.png"', source)}
    assert pngs, f"{example} names no PNG it writes"
    row = next(line for line in section("Normal modes and pictures").splitlines() if f"`examples/{example}" in line)
    assert any(png.replace("{name}", "SYSTEM") in row for png in pngs), (example, pngs, row)
    assert not re.search(r"\.h5\b(?!md)", source), f"{example} writes .h5, which MDAnalysis refuses; use .h5md"
