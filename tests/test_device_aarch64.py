"""Device 2: `verify --device` on an arm64 Debian userland under qemu-user, over the real ssh of test_device.

The rootfs is the one `scripts/check_aarch64.sh --keep` leaves behind (Debian bookworm arm64 with
`edgetl[runtime]` installed from this checkout's wheel in /root/edgetl-venv): building it takes
minutes, so `.ci/run` runs this module right after that script with EDGETL_AARCH64_ROOTFS set,
and it skips elsewhere. `--device-python` is a wrapper that runs the chroot's python under
qemu-aarch64 with a Raspberry Pi 4's cpuinfo and CPU (as the script does); the device's TMPDIR is
bound at the same path inside the chroot, so the folder the ssh session makes is the worker's.
The test prints what it measured: host vs device top-1 and max difference per artefact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _export_shared import exported_run
from _ssh_device import SshServer
from test_device import device_args, edgetl

ROOTFS = os.environ.get("EDGETL_AARCH64_ROOTFS")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ROOTFS, reason="needs EDGETL_AARCH64_ROOTFS (a rootfs kept by check_aarch64.sh --keep; "
                                          ".ci/run sets it)"),
]
PI4_CPUINFO = "".join(
    f"processor\t: {cpu}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"
    "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n" for cpu in range(4)
) + "Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"


@pytest.fixture(scope="module")
def arm64_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SshServer, Path]]:
    """The sshd whose sessions run the chroot's python; (server, the --device-python wrapper)."""
    root = Path(ROOTFS)
    assert (root / "root/edgetl-venv/bin/python").exists(), f"{root} has no /root/edgetl-venv (check_aarch64.sh --keep)"
    work = tmp_path_factory.mktemp("arm64")
    device_tmp = work / "device-tmp"
    device_tmp.mkdir()
    (work / "cpuinfo").write_text(PI4_CPUINFO)
    mounts = []

    def mount(*args: str) -> None:
        subprocess.run(["mount", *args], check=True)
        mounts.append(args[-1])

    try:
        mount("-t", "proc", "proc", str(root / "proc"))
        mount("-t", "sysfs", "sysfs", str(root / "sys"))
        mount("--bind", "/dev", str(root / "dev"))
        mount("--bind", str(work / "cpuinfo"), str(root / "proc/cpuinfo"))
        (root / str(device_tmp).lstrip("/")).mkdir(parents=True, exist_ok=True)
        mount("--bind", str(device_tmp), str(root / str(device_tmp).lstrip("/")))
        wrapper = work / "arm64-python"
        wrapper.write_text(
            "#!/bin/sh\nexec env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 QEMU_CPU=cortex-a72 "
            f'TMPDIR="$TMPDIR" {shutil.which("chroot")} {root} /root/edgetl-venv/bin/python "$@"\n'
        )
        wrapper.chmod(0o755)
        server = SshServer.start(work / "sshd", device_tmp=device_tmp)
        try:
            yield server, wrapper
        finally:
            server.stop()
    finally:
        for point in reversed(mounts):
            subprocess.run(["umount", point], check=False)


def test_verify_on_emulated_arm64(arm64_device: tuple[SshServer, Path], tiny_run: Path,
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    server, python = arm64_device
    run = tmp_path_factory.mktemp("arm64-run") / "run"
    shutil.copytree(exported_run(tiny_run, tmp_path_factory).run, run)
    result = edgetl("verify", str(run), *device_args(server, python), "--json")
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["device"]["machine"] == "aarch64", report["device"]
    assert "Raspberry Pi 4" in report["device"]["cpu"]
    print(f"\nemulated arm64 device: {report['device']}")
    print(f"{'artefact':<28} {'host agree':>10} {'device agree':>12} {'top-1 host!=device':>18} {'max |host-device|':>17}")
    for artefact in report["artefacts"]:
        device = artefact["device"]
        if "skipped" in device:
            print(f"{artefact['name']:<28} {device['skipped']}")
            continue
        print(f"{artefact['name']:<28} {artefact['agreement']:>10.4f} {device['agreement']:>12.4f} "
              f"{device['host_device_top1_differ']:>18} {device['host_device_max_abs_diff']:>17.3e}")
        if artefact["format"] == "tflite-fp32":  # float kernels agree across CPUs far below any decision
            assert device["host_device_top1_differ"] == 0 and device["host_device_max_abs_diff"] < 1e-4, device
    assert {a["format"] for a in report["artefacts"] if "skipped" not in a["device"]} >= {"tflite-fp32", "tflite-int8"}
    assert server.leftovers() == []
