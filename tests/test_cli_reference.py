"""The README's CLI reference is generated from the Typer app and must stay in sync."""

import subprocess
import sys

from conftest import REPO


def test_readme_cli_reference_is_up_to_date() -> None:
    done = subprocess.run([sys.executable, "scripts/gen_cli_reference.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, "README.md's CLI reference is stale: run python scripts/gen_cli_reference.py"


def test_help_does_not_import_tensorflow() -> None:
    code = "import sys; from edgetl.cli import app; from typer.testing import CliRunner; CliRunner().invoke(app, ['--help']); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
