"""scripts/check_aarch64.sh refuses bad input and a broken host with one clear line (exit 2).

The full emulated run takes minutes and needs root; CI runs it directly (see .ci/run). These
checks stop before anything is installed, mounted or built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, shared_path

SCRIPT = REPO / "scripts" / "check_aarch64.sh"
IS_ROOT = os.geteuid() == 0


def _run(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, "bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "usage:"),
        (("model.tflite",), "usage:"),
        (("--", "cat.bmp"), "usage:"),
        (("--frob", "m.tflite", "--", "c.bmp"), "unknown option: --frob"),
        pytest.param(("/no/such/model.tflite", "--", "/no/such/cat.bmp"), "no such file: /no/such/model.tflite",
                     marks=pytest.mark.skipif(not IS_ROOT, reason="without root the script stops at the root check")),
    ],
)
def test_bad_arguments_exit_2_with_one_error_line(args: tuple[str, ...], message: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_without_root_says_so() -> None:
    prefix: tuple[str, ...] = ()
    if IS_ROOT:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop root")
        prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    result = _run("model.tflite", "--", "cat.bmp", prefix=prefix)
    assert result.returncode == 2
    assert "must run as root" in result.stderr


@pytest.mark.skipif(not IS_ROOT or shutil.which("unshare") is None, reason="needs root and unshare to fake a broken apt")
def test_qemu_missing_and_apt_failing_names_the_package(tmp_path: Path) -> None:
    """In a private mount namespace, qemu-aarch64-static is hidden and apt-get always fails."""
    model = shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite")
    image = shared_path("coral", "cat.bmp")
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv (run scripts/setup.sh): the script checks the host python first")
    fake_apt = tmp_path / "apt-get"
    fake_apt.write_text("#!/bin/sh\necho 'E: fake apt-get for a test' >&2\nexit 100\n")
    fake_apt.chmod(0o755)
    not_executable = tmp_path / "not-executable"
    not_executable.write_text("")
    apt = shutil.which("apt-get") or "/usr/bin/apt-get"
    qemu = shutil.which("qemu-aarch64-static") or "/usr/bin/qemu-aarch64-static"
    if not Path(apt).exists():
        pytest.skip("no apt-get on this host")
    binds = f"mount --bind {fake_apt} {apt}"
    if Path(qemu).exists():
        binds += f" && mount --bind {not_executable} {qemu}"
    inner = f"{binds} && exec bash {SCRIPT} {model} -- {image}"
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
        capture_output=True, text=True, timeout=120,
    )
    if "unshare failed" in result.stderr or "mount:" in result.stderr:
        pytest.skip(f"cannot make a private mount namespace here: {result.stderr.strip()[:200]}")
    assert result.returncode == 2, result.stderr
    assert "apt-get could not install qemu-user-static" in result.stderr


def test_script_follows_the_raspberry_pi_page_install() -> None:
    """The Pi page's wheel build and three install lines, for this version, are what the script runs."""
    from edgetl._version import __version__ as version

    readme = (REPO / "docs" / "raspberry-pi.md").read_text()
    script = SCRIPT.read_text()
    wheel = f"edgetl-{version}-py3-none-any.whl"
    assert ".venv/bin/python -m pip wheel --no-deps -w dist ." in readme and "-m pip wheel --no-deps -q -w dist ." in script
    assert f'~/edgetl-venv/bin/pip install ~/"{wheel}[runtime]"' in readme
    assert "~/edgetl-venv/bin/pip install ~/\"$1[runtime]\"" in script and "edgetl-*-py3-none-any.whl" in script
    for line in ("python3 -m venv ~/edgetl-venv", "sudo apt install python3-venv"):
        assert line in readme
    assert "python3 -m venv ~/edgetl-venv" in script
