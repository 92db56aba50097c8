"""The documentation: README short, the MkDocs site builds strictly, and every option the docs give a
ferbench command is one the command really has."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import typer.main

from conftest import ROOT
from ferbench.cli import app, register_plugin_commands

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Inline code that runs another program, whose options are not ferbench's.
OTHER_PROGRAMS = re.compile(r"`(python|pip|pytest|mkdocs|sbatch|torchrun|git|taskset)\b[^`]*`")
# Options every click command takes without declaring them.
IMPLICIT = {"--help"}


def command_options() -> dict[str, set[str]]:
    """Each ferbench command's option spellings (flags and their --no- forms), plugins' commands included."""
    register_plugin_commands()
    group = typer.main.get_command(app)
    options = {}
    for name, command in group.commands.items():
        spelled = set(IMPLICIT)
        for parameter in command.params:
            if parameter.param_type_name == "option":  # typer vendors click: no isinstance
                spelled.update(parameter.opts + parameter.secondary_opts)
        options[name] = spelled
    return options


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) < 200


def units(text: str):
    """The pieces of a document that document one thing each: a table row, a line of a code block (a shell
    command), or a paragraph of prose; with the line number each starts on."""
    in_code, paragraph, start = False, [], 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code or line.startswith("|"):
            yield number, line
            continue
        if paragraph and re.match(r"\s*([-*]|\d+\.) ", line):  # a list item starts a unit of its own
            yield start, " ".join(paragraph)
            paragraph, start = [], 0
        if line.strip():
            start = start or number
            paragraph.append(line)
            continue
        if paragraph:
            yield start, " ".join(paragraph)
            paragraph, start = [], 0
    if paragraph:
        yield start, " ".join(paragraph)


def undocumented_options(text: str, options: dict[str, set[str]]) -> list[str]:
    """Options written after a ``ferbench COMMAND`` in a unit that none of the unit's commands has."""
    problems = []
    for number, unit in units(text):
        unit = OTHER_PROGRAMS.sub("", unit)
        mentions = [m for m in re.finditer(r"\bferbench ([a-z][a-z-]*)", unit) if m.group(1) in options]
        if not mentions:
            continue
        known = set().union(*(options[m.group(1)] for m in mentions))
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", unit[mentions[0].start():]):
            if option not in known:
                problems.append(f"{number}: {option} is not an option of "
                                f"{' / '.join(sorted({'ferbench ' + m.group(1) for m in mentions}))}")
    return problems


def test_every_documented_option_exists():
    options = command_options()
    problems = [f"{document.name}:{problem}" for document in DOCUMENTS
                for problem in undocumented_options(document.read_text(), options)]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_made_up_option():
    options = command_options()
    assert "--epochs" in options["run"] and "--no-save-model" in options["run"]
    text = "Train with `ferbench run --epochs 3 --made-up 1`.\n\n| `ferbench eval` | `--model`, `--epochs` |\n"
    assert undocumented_options(text, options) == ["1: --made-up is not an option of ferbench run",
                                                   "3: --epochs is not an option of ferbench eval"]


@pytest.mark.skipif(shutil.which("mkdocs") is None and not __import__("importlib").util.find_spec("mkdocs"),
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_the_site_builds_strictly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "reproducibility" / "index.html").is_file()
