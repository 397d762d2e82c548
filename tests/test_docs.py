"""The README and the docs site cannot drift from the code.

The site builds with `mkdocs build --strict` (a broken link, a missing page or a stale API
reference fails), and every `edgetl` command shown in a shell block of the README or of a docs
page parses against the real command line: a renamed option or command fails here. The commands
that are cheap really run (`--help`, `inspect` of a shipped model). The Python blocks import
only public names and call them with keywords their signatures take.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest
import typer
from conftest import REPO, shared_path

import edgetl
from edgetl.cli import app
from edgetl.runtime.__main__ import _parser as runtime_parser

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\n(.*?)^```", re.S | re.M)
EDGETL_PROGRAM = re.compile(r"^(?:\S*/)?edgetl$")  # edgetl, .venv/bin/edgetl, ~/edgetl-venv/bin/edgetl
PYTHON_PROGRAM = re.compile(r"^(?:\S*/)?python3?$")
EDGETL = Path(sys.executable).with_name("edgetl")  # the console script, as a user runs it


def _shell_commands(page: Path) -> list[list[str]]:
    """Each command of the page's shell blocks as words: continuations joined, comments and `&&` split off."""
    lines = []
    for block in SHELL_BLOCK.findall(page.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            code = shlex.split(line, comments=True)
            command: list[str] = []
            for word in [*code, "&&"]:
                if word not in ("&&", "||", ";"):
                    command.append(word)
                    continue
                if command:
                    lines.append(command)
                command = []
    return lines


def is_edgetl(words: list[str]) -> bool:
    return bool(EDGETL_PROGRAM.match(words[0]))


def is_runtime(words: list[str]) -> bool:
    return bool(PYTHON_PROGRAM.match(words[0])) and words[1:3] == ["-m", "edgetl.runtime"]


def shown_commands() -> list[tuple[str, list[str]]]:
    """(page, words) for every `edgetl ...` and `python -m edgetl.runtime ...` shown."""
    found = []
    for page in PAGES:
        for words in _shell_commands(page):
            if is_edgetl(words) or is_runtime(words):
                found.append((page.relative_to(REPO).as_posix(), words))
    return found


def parse(line: str) -> None:
    """Parse one shown command as the CLI would, without running it (raises on a bad option)."""
    words = shlex.split(line)
    if is_runtime(words):
        runtime_parser().parse_args(words[3:])
        return
    args = words[1:]
    group = typer.main.get_command(app)
    with group.make_context("edgetl", list(args), resilient_parsing=True) as ctx:
        if not args or args[0].startswith("-"):
            return
        command = group.get_command(ctx, args[0])
        assert command is not None, f"no command {args[0]!r}"
        if "--help" not in args:
            command.make_context(args[0], list(args[1:]), parent=ctx).close()


def test_the_docs_show_every_command_and_each_parses() -> None:
    shown = shown_commands()
    named = {words[1] for _, words in shown if is_edgetl(words) and len(words) > 1}
    assert {"train", "export", "verify", "predict", "inspect", "bench", "selftest", "demo"} <= named
    assert any(is_runtime(words) for _, words in shown)
    failures = []
    for page, words in shown:
        try:
            parse(shlex.join(words))
        except (Exception, SystemExit) as e:  # Click's usage errors and argparse's exit alike
            failures.append(f"{page}: {shlex.join(words)}\n    {type(e).__name__}: {e}")
    assert not failures, "commands in the docs that the CLI rejects:\n" + "\n".join(failures)


@pytest.mark.parametrize("line", [
    "edgetl train photos --epoch 3",               # a renamed option
    "edgetl train photos --strategy finetune",     # a value the choice does not have
    "edgetl predictt model.tflite photo.jpg",      # a renamed command
    "python -m edgetl.runtime model.tflite --top 3 --selftst",
])
def test_a_renamed_option_or_command_is_caught(line: str) -> None:
    with pytest.raises((Exception, SystemExit)):
        parse(line)


def _run_shown(page: str, words: list[str], model: Path | None = None) -> None:
    """Run one shown command as the docs show it, with `model` in place of any model file."""
    args = [str(model) if model and word.endswith((".tflite", ".onnx")) else word for word in words[1:]]
    done = subprocess.run([str(EDGETL), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{page}: {shlex.join(words)}\n{done.stderr}"
    assert done.stdout.strip(), f"{page}: {shlex.join(words)} printed nothing"


def test_the_shown_help_commands_run() -> None:
    shown = [(page, words) for page, words in shown_commands() if is_edgetl(words) and "--help" in words]
    assert len(shown) >= 2  # `edgetl --help` and a command's --help (docs/cli.md)
    for page, words in shown:
        _run_shown(page, words)


def test_the_shown_inspect_commands_run_on_a_real_model() -> None:
    model = shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite")
    shown = [(page, words) for page, words in shown_commands() if is_edgetl(words) and words[1:2] == ["inspect"]]
    assert len(shown) >= 2  # docs/run.md, docs/coral.md, docs/raspberry-pi.md
    for page, words in shown:
        _run_shown(page, words, model)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_the_docs_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "TrainOptions" in api and "load_runner" in api  # mkdocstrings rendered the docstrings
    assert (tmp_path / "site" / "cli" / "index.html").is_file()


def test_readme_is_a_front_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    blocks = SHELL_BLOCK.findall(readme)
    assert blocks[0].splitlines()[:2] == [
        "bash scripts/setup.sh && .venv/bin/edgetl demo   # install (Python 3.11+, ~2 min), then the whole pipeline offline (~2 min)",
        ".venv/bin/python -m pytest -q                    # the test suite (what CI runs)",
    ]
    assert ".venv/bin/python -m pytest -q" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert ".venv/bin/mkdocs build --strict" in readme
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme):
        assert (REPO / image).is_file() and (REPO / image).stat().st_size < 200_000, image


def _api_object(node: ast.expr, imported: set[str]) -> object | None:
    """The public edgetl object a call's callee names (`edgetl.export`, `TrainOptions`), else None."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "edgetl":
        name = node.attr
    elif isinstance(node, ast.Name) and node.id in imported:
        name = node.id
    else:
        return None
    assert name in edgetl.__all__, f"edgetl.{name} is not public"
    value = getattr(edgetl, name)
    return getattr(value, name) if isinstance(value, types.ModuleType) else value  # stage modules run their namesake


def test_the_python_blocks_call_the_public_api_as_it_is() -> None:
    calls = 0
    for page in PAGES:
        for block in PYTHON_BLOCK.findall(page.read_text(encoding="utf-8")):
            tree = ast.parse(block)
            imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                        and node.module == "edgetl" for alias in node.names}
            assert imported <= set(edgetl.__all__), (page.name, imported - set(edgetl.__all__))
            for node in ast.walk(tree):
                target = _api_object(node.func, imported) if isinstance(node, ast.Call) else None
                if target is not None:
                    inspect.signature(target).bind(*node.args, **{k.arg: None for k in node.keywords if k.arg})
                    calls += 1
    assert calls >= 8
