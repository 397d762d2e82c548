"""How the host reaches a device: a `Transport` turns a remote shell command into a local argv.

`SshTransport` runs the system's OpenSSH client, so that a user's `~/.ssh/config`, agent, jump
hosts and known_hosts apply as they do for `ssh` itself. It always passes `BatchMode=yes` (no
password or passphrase prompt: a run never hangs on a question) and never touches host-key
checking: an unknown or changed host key stops the run with ssh's own reason. Another transport
(adb for Android) only has to provide `argv` and `explain`; the session and the report do not
change.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from edgetl.errors import EdgetlError

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=5",
               "-o", "ServerAliveCountMax=3")
"""A dead link shows within about 15 s (3 unanswered keep-alives 5 s apart), not the TCP default of minutes."""


class Transport(Protocol):
    """A way to run a shell command on a device with pipes to it. Implementations are immutable and thread-safe."""

    target: str
    """The device as the report names it (no secret)."""

    def argv(self, remote_command: str) -> list[str]:
        """The local command line that runs `remote_command` (a POSIX shell line) on the device."""
        ...

    def explain(self, returncode: int, stderr: str) -> str | None:
        """The transport's own failure as one sentence (unreachable, refused key, dropped...), or None."""
        ...


@dataclass(frozen=True)
class SshTransport:
    """The system `ssh` client to `[USER@]HOST[:PORT]`, optionally with `ssh -F CONFIG`. Thread-safe (immutable)."""

    host: str
    user: str | None = None
    port: int | None = None
    config: Path | None = None

    @property
    def target(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}"

    def argv(self, remote_command: str) -> list[str]:
        command = ["ssh", *SSH_OPTIONS]
        if self.config is not None:
            command += ["-F", str(self.config)]
        if self.port:
            command += ["-p", str(self.port)]
        if self.user:
            command += ["-l", self.user]
        return [*command, "--", self.host, remote_command]

    def explain(self, returncode: int, stderr: str) -> str | None:
        if returncode != 255:
            return None
        text = stderr.lower()
        reason = last_line(stderr) or "ssh exited with code 255"
        if "host key verification failed" in text or "no matching host key" in text:
            return (f"The host key of {self.target} is not known here or has changed ({reason}). Check it and add "
                    "it to known_hosts (for example by connecting once with ssh); edgetl never turns host-key checks "
                    "off.")
        if "permission denied" in text:
            return (f"{self.target} refused the login ({reason}). Add your public key to the device's "
                    "~/.ssh/authorized_keys or load it into ssh-agent; edgetl never asks for a password.")
        for marker in ("connection refused", "could not resolve", "no route to host", "timed out",
                       "network is unreachable", "name or service not known"):
            if marker in text and "timeout, server" not in text:
                return f"Cannot reach {self.target} ({reason}). Check the address, port and that sshd runs there."
        return f"The connection to {self.target} dropped midway ({reason})."


def parse_target(url: str, ssh_config: str | Path | None = None) -> SshTransport:
    """`ssh://[USER@]HOST[:PORT]` as a transport.

    Raises:
        EdgetlError: for another scheme, a password in the URL, no host, or a bad port or config file.
    """
    parts = urlsplit(url)
    if parts.scheme != "ssh":
        raise EdgetlError(f"--device must be ssh://[USER@]HOST[:PORT]. Received: {url!r}")
    if parts.password is not None:
        raise EdgetlError("--device must not hold a password (ssh://USER@HOST): edgetl logs in with keys only, "
                          "through ssh-agent or ~/.ssh. Received: a URL with a password")
    try:
        port = parts.port
    except ValueError as e:
        raise EdgetlError(f"--device has a bad port. Received: {url!r}") from e
    host = parts.hostname or ""
    if not host or host.startswith("-") or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise EdgetlError(f"--device must be ssh://[USER@]HOST[:PORT] with nothing after it. Received: {url!r}")
    user = parts.username
    if user is not None and (not user or user.startswith("-")):
        raise EdgetlError(f"--device has a bad user name. Received: {url!r}")
    config = Path(ssh_config) if ssh_config is not None else None
    if config is not None and not config.is_file():
        raise EdgetlError(f"--ssh-config must be an ssh config file. Received: {config}")
    return SshTransport(host=host, user=user, port=port, config=config)


def python_command(python: str, *args: str) -> str:
    """A shell-quoted `PYTHON ARGS...` line."""
    return " ".join(shlex.quote(part) for part in (python, *args))


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
