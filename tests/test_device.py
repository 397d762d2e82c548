"""`edgetl verify/bench --device ssh://...` against a real OpenSSH server on 127.0.0.1 (no mocks).

Device 1 is a runtime-only virtualenv (numpy, Pillow, flatbuffers, ai-edge-litert and this
checkout's edgetl; no TensorFlow, no onnxruntime) reached through a private sshd. Each fault of
issue 24 point 6 has its test: one `error:` line, exit 2, the previous verify.json byte for byte,
the export folder untouched, and the device's TMPDIR empty afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _export_shared import exported_run
from _ssh_device import SshServer, free_port, worker_pid
from conftest import write_solid_photos
from test_runtime_isolation import _loaded, _runtime_venv

from edgetl.device import parse_target
from edgetl.errors import EdgetlError

CLI = "import sys; from edgetl.cli import main; sys.argv[0] = 'edgetl'; main()"
TF_LOG_PREFIXES = ("WARNING: All log messages before absl", "I0000 ", "W0000 ")
RUNTIME_ONLY = ("numpy", "pillow", "flatbuffers", "ai-edge-litert>=2.3,<2.4")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> SshServer:
    sshd = SshServer.start(tmp_path_factory.mktemp("sshd"))
    yield sshd
    sshd.stop()


@pytest.fixture(scope="module")
def device_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Device 1: a fresh venv with the runtime's packages and this checkout's edgetl, nothing else."""
    return _runtime_venv(tmp_path_factory.mktemp("device1"), *RUNTIME_ONLY).absolute()


@pytest.fixture(scope="module")
def run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the exported tiny run: these tests write verify.json into it."""
    copy = tmp_path_factory.mktemp("device-run") / "run"
    shutil.copytree(exported_run(tiny_run, tmp_path_factory).run, copy)
    return copy


@pytest.fixture(scope="module")
def probe_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 more photos, so that a fault can strike while the device is midway."""
    colours = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}
    return write_solid_photos(tmp_path_factory.mktemp("probe"), colours, per_class=100, size=48)


@pytest.mark.parametrize("url", ["ssh://pi:secret@raspberrypi.local", "http://raspberrypi.local",
                                 "ssh://-oProxyCommand=x", "ssh://pi@raspberrypi.local/tmp", "ssh://pi@host:99999"])
def test_bad_device_urls_are_refused_before_any_connection(url: str) -> None:
    with pytest.raises(EdgetlError, match="--device"):
        parse_target(url)


def test_the_ssh_command_keeps_batch_mode_and_host_key_checks(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host pi\n")
    transport = parse_target("ssh://pi@raspberrypi.local:2222", config)
    argv = transport.argv("true")
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"] and argv[-3:] == ["--", "raspberrypi.local", "true"]
    assert ["-F", str(config)] == argv[argv.index("-F"):argv.index("-F") + 2] and "2222" in argv
    assert not any("StrictHostKeyChecking" in part or "KnownHosts" in part for part in argv)
    assert transport.target == "ssh://pi@raspberrypi.local:2222"


def test_the_device_worker_loads_no_toolchain() -> None:
    """What runs on the device: numpy, Pillow and an interpreter, never TensorFlow, Keras or edgetl's stages."""
    assert _loaded("import json, sys\nimport edgetl.runtime.remote\nimport edgetl.runtime.benchmark\n") == []


def edgetl(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=900, env=env,
                          **kwargs)


def device_args(server: SshServer, python: Path, config: Path | None = None) -> list[str]:
    return ["--device", server.url, "--ssh-config", str(config or server.client_config()),
            "--device-python", str(python)]


@pytest.fixture(scope="module")
def verified(run: Path, server: SshServer, device_python: Path) -> dict:
    """`edgetl verify RUN --device ssh://...` once; its verify.json is the 'previous' one of the fault tests."""
    result = edgetl("verify", str(run), *device_args(server, device_python))
    assert result.returncode in (0, 1), result.stderr
    report = json.loads((run / "export" / "verify.json").read_text())
    return {"report": report, "stdout": result.stdout, "rc": result.returncode}


@pytest.mark.slow
def test_verify_on_a_runtime_only_device(verified: dict, run: Path, server: SshServer) -> None:
    report = verified["report"]
    facts = report["device"]
    assert facts["target"] == server.url and facts["machine"] == "x86_64" and facts["edgetl"]
    assert {"system", "python", "cpu", "interpreters"} <= set(facts)
    assert {i["name"] for i in facts["interpreters"]} == {"ai-edge-litert"}
    by_format = {a["format"]: a for a in report["artefacts"]}
    for fmt in ("onnx", "onnx-int8"):  # no onnxruntime on this device: skipped, the others still run
        assert by_format[fmt]["device"]["skipped"].startswith("skipped on the device: "), by_format[fmt]["device"]
    for fmt in ("tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8"):
        device = by_format[fmt]["device"]
        assert device["n"] == report["images"] and device["host_device_top1_differ"] == 0, (fmt, device)
        # Same interpreter version and x86 kernels as the host: the same scores.
        assert device["host_device_max_abs_diff"] <= 1e-6, (fmt, device)
        assert device["agreement"] == by_format[fmt]["agreement"] and device["p50_ms"] > 0
        assert set(device) >= {"agreement", "disagreements", "accuracy", "max_abs_dprob", "p95_ms"}
    assert verified["rc"] == (0 if report["passed"] else 1)
    markdown = (run / "export" / "verify.md").read_text()
    assert f"## On the device {server.url}" in markdown and "skipped on the device" in markdown
    page = (run / "export" / "verify.html").read_text()
    assert f"On the device {server.url}" in page and page.count('<table id="device">') == 1
    assert page.split('<table id="device">')[1].count("<tr>") == 1 + len(report["artefacts"])
    terminal = verified["stdout"]
    assert f"Device {server.url}: x86_64" in terminal and "host≠device top-1" in terminal, terminal
    assert server.leftovers() == []


@pytest.mark.slow
def test_the_gate_fails_on_the_device_too(run: Path, server: SshServer, device_python: Path) -> None:
    """A threshold no sample can meet: the FAIL lines name the artefact and say "on the device"."""
    result = edgetl("verify", str(run), "--formats", "tflite-fp32", "--min-agreement", "1.01",
                    *device_args(server, device_python))
    assert result.returncode == 1, result.stdout + result.stderr
    fails = [line for line in result.stderr.splitlines() if line.startswith("FAIL ")]
    assert any(line.startswith("FAIL model_tflite-fp32.tflite: on the device: ") for line in fails), fails
    report = json.loads((run / "export" / "verify.json").read_text())
    assert [a["format"] for a in report["artefacts"]] == ["tflite-fp32"]
    assert report["artefacts"][0]["device"]["passed"] is False
    assert server.leftovers() == []


@pytest.mark.slow
def test_bench_on_the_device(run: Path, server: SshServer, device_python: Path, colour_photos: Path) -> None:
    model = run / "export" / "model_tflite-int8.tflite"
    result = edgetl("bench", str(model), *device_args(server, device_python), "--images", str(colour_photos),
                    "--runs", "5", "--warmup", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"]["target"] == server.url and report["backend"] == "ai-edge-litert"
    assert report["photos"] == 36 and report["photos_per_s"] > 0
    assert 0 < report["invoke"]["p50_ms"] <= report["invoke"]["p90_ms"] <= report["invoke"]["p99_ms"]
    table = edgetl("bench", str(model), *device_args(server, device_python), "--runs", "3", "--warmup", "0")
    assert table.returncode == 0 and "bare invoke()" in table.stdout, table.stdout + table.stderr
    assert f"Device {server.url}: x86_64" in table.stdout
    assert server.leftovers() == []


def snapshot(run: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in (run / "export").iterdir()}


def assert_fault(result: subprocess.CompletedProcess[str] | tuple[int, str], run: Path, before: dict,
                 previous: bytes, server: SshServer, *words: str) -> None:
    rc, stderr = (result.returncode, result.stderr) if not isinstance(result, tuple) else result
    # TensorFlow may log while the float model loads (the probe photos have no recorded scores): not edgetl's lines.
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(TF_LOG_PREFIXES)]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert (run / "export" / "verify.json").read_bytes() == previous
    assert snapshot(run) == before
    assert server.leftovers() == []


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["unreachable", "refused key", "unknown host key", "no edgetl", "older edgetl"])
def test_device_faults_before_the_upload(fault: str, verified: dict, run: Path, server: SshServer,
                                         device_python: Path, tmp_path: Path) -> None:
    previous, before = (run / "export" / "verify.json").read_bytes(), snapshot(run)
    args = device_args(server, device_python)
    if fault == "unreachable":
        args[1], words = f"ssh://127.0.0.1:{free_port()}", ("Cannot reach",)
    elif fault == "refused key":
        args[3], words = str(server.client_config("stranger", key="stranger_key")), ("refused the login",)
    elif fault == "unknown host key":
        args[3], words = str(server.client_config("unknown", known_hosts="empty_known_hosts")), ("host key",)
    elif fault == "no edgetl":
        args[5], words = "/usr/bin/python3", ("edgetl is not installed", "pip install 'edgetl[runtime]'")
    else:
        args[5], words = str(older_edgetl(tmp_path)), ("has edgetl 0.0.1, older than", "pip install 'edgetl[runtime]==")
    assert_fault(edgetl("verify", str(run), *args), run, before, previous, server, *words)


def older_edgetl(folder: Path) -> Path:
    """A device python that sees an edgetl 0.0.1 install (its distribution metadata, no runtime inside)."""
    info = folder / "site" / "edgetl-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgetl\nVersion: 0.0.1\n")
    python = folder / "python-with-old-edgetl"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={folder / "site"} exec /usr/bin/python3 "$@"\n')
    python.chmod(0o755)
    return python


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["device process killed", "connection dropped", "ctrl-c on the host"])
def test_device_faults_midway(fault: str, verified: dict, run: Path, server: SshServer, device_python: Path,
                              probe_photos: Path) -> None:
    previous, before = (run / "export" / "verify.json").read_bytes(), snapshot(run)
    cli = subprocess.Popen([sys.executable, "-c", CLI, "verify", str(run), "--probe", str(probe_photos),
                            *device_args(server, device_python)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    pid = worker_pid(server.device_tmp)
    if fault == "device process killed":
        os.kill(pid, signal.SIGKILL)
        words = ("ended midway", "signal 9")
    elif fault == "connection dropped":
        for session in server.session_pids():
            os.kill(session, signal.SIGKILL)
        words = ("dropped midway",)
    else:
        os.killpg(cli.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        words = ("Interrupted",)
    _, stderr = cli.communicate(timeout=300)
    assert_fault((cli.returncode, stderr), run, before, previous, server, *words)


@pytest.mark.slow
def test_full_disk_on_the_device(verified: dict, run: Path, device_python: Path,
                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """The device's TMPDIR is a 1 MB tmpfs: the upload (several MB of artefacts) fills it."""
    small = tmp_path_factory.mktemp("small-disk")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs as the device's full disk")
    try:
        full = SshServer.start(tmp_path_factory.mktemp("sshd-full"), device_tmp=small)
        try:
            previous, before = (run / "export" / "verify.json").read_bytes(), snapshot(run)
            result = edgetl("verify", str(run), *device_args(full, device_python))
            assert_fault(result, run, before, previous, full, "disk of", "is full")
        finally:
            full.stop()
    finally:
        subprocess.run(["umount", str(small)], check=True)
