"""A private OpenSSH server on 127.0.0.1 for `verify --device` tests: real sshd, real ssh, real keys.

`SshServer.start` runs `/usr/sbin/sshd -D -f CONFIG` at a free port with a fresh host key, one
authorized client key, `UsePAM no`, `StrictModes no`, and `SetEnv TMPDIR=...` so that every
session's temporary files land in a folder the test can inspect. `client_config` writes the
`ssh -F` file that knows the host key and uses the client key; variants of it make an unknown
host key or a refused key.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=60)


@dataclass
class SshServer:
    """One running sshd; `device_tmp` is its sessions' TMPDIR."""

    root: Path
    port: int
    device_tmp: Path
    process: subprocess.Popen

    @classmethod
    def start(cls, root: Path, device_tmp: Path | None = None) -> SshServer:
        if not SSHD.is_file():
            pytest.skip("needs openssh-server (.ci/run installs it: apt-get install openssh-server openssh-client)")
        root.mkdir(parents=True, exist_ok=True)
        device_tmp = device_tmp or root / "device-tmp"
        device_tmp.mkdir(exist_ok=True)
        _keygen(root / "host_key")
        _keygen(root / "client_key")
        _keygen(root / "stranger_key")
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        port = free_port()
        (root / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
            "UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nLogLevel ERROR\n"
            f"SetEnv TMPDIR={device_tmp}\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")],
                                   stdout=subprocess.DEVNULL, stderr=open(root / "sshd.log", "wb"))
        server = cls(root=root, port=port, device_tmp=device_tmp, process=process)
        server._wait_until_listening()
        host_key = (root / "host_key.pub").read_text().split()
        (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        (root / "empty_known_hosts").write_text("")
        return server

    def _wait_until_listening(self) -> None:
        for _ in range(200):
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    @property
    def url(self) -> str:
        return f"ssh://{getpass.getuser()}@127.0.0.1:{self.port}"

    def client_config(self, name: str = "ssh_config", *, key: str = "client_key",
                      known_hosts: str = "known_hosts") -> Path:
        """An `ssh -F` file for this server: the given identity and known_hosts, nothing from ~/.ssh."""
        path = self.root / name
        path.write_text(
            "Host 127.0.0.1\n"
            f"  IdentityFile {self.root / key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.root / known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
        )
        return path

    def session_pids(self) -> list[int]:
        """Every sshd process serving a connection (descendants of the listening one): killing them drops it."""
        parents = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                name, fields = (entry / "stat").read_text().rsplit(")", 1)
            except (OSError, ValueError):
                continue
            parents[int(entry.name)] = (int(fields.split()[1]), name.split("(", 1)[1])
        found, frontier = [], [self.process.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, (ppid, _) in parents.items() if ppid == parent]
            frontier += children
            found += [pid for pid in children if parents[pid][1].startswith("sshd")]
        return found

    def leftovers(self, timeout_s: float = 15.0) -> list[str]:
        """What is still in the device's TMPDIR after waiting up to `timeout_s` for it to empty."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = sorted(p.name for p in self.device_tmp.iterdir())
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def worker_pid(device_tmp: Path, timeout_s: float = 120.0) -> int:
    """The pid of the device worker once its upload is on disk (its `worker.pid` file appears)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid_file in device_tmp.glob("edgetl-device.*/worker.pid"):
            try:
                text = pid_file.read_text()
            except OSError:
                continue
            if text.strip():
                return int(text)
        time.sleep(0.01)
    raise AssertionError(f"no device worker started in {device_tmp}")
