"""The CLI reference page is generated from the Typer app and must stay in sync; help reads in pipeline order."""

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

from edgetl.cli_group import PIPELINE_ORDER

EDGETL = Path(sys.executable).with_name("edgetl")  # the console script, as a user runs it


def _help(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run([str(EDGETL), *args, "--help"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cli_reference_page_is_up_to_date() -> None:
    done = subprocess.run([sys.executable, "scripts/gen_cli_reference.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, "docs/cli.md is stale: run python scripts/gen_cli_reference.py"


def test_help_lists_the_commands_in_pipeline_order_and_the_reference_follows_it() -> None:
    listed = re.findall(r"^│ (\w+) +\S", _help().split("Commands")[1], flags=re.M)
    assert listed == list(PIPELINE_ORDER)
    assert PIPELINE_ORDER == ("train", "export", "verify", "predict", "inspect", "bench", "selftest", "demo")
    page = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert re.findall(r"^## `edgetl (\w+)", page, flags=re.M) == list(PIPELINE_ORDER)


def test_boolean_flags_show_no_type_placeholder_in_help_or_reference() -> None:
    page = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert "<bool>" not in page and "`--json` |" in page
    for command in ((), *((name,) for name in PIPELINE_ORDER)):
        text = _help(*command)
        assert "<bool>" not in text, command
        assert "--help" in text
    assert "<path>" in _help("train")  # options that take a value still show its type


def test_help_does_not_import_tensorflow() -> None:
    code = "import sys; from edgetl.cli import app; from typer.testing import CliRunner; CliRunner().invoke(app, ['--help']); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
