"""One run on a device: probe what it has, upload once, stream results back, leave nothing behind.

The probe (`python -` fed a short script that needs no edgetl) returns the device's facts and
stops early with one sentence when edgetl is missing or of another version. The run is one
connection: a POSIX `sh` wrapper makes a `mktemp -d` folder under the device's TMPDIR, starts
`python -m edgetl.runtime.remote FOLDER` with the connection's stdin, and removes the folder on
every exit (a `trap` on EXIT, HUP, INT, TERM; a worker killed with SIGKILL still returns to the
wrapper, which removes it). The worker exits as soon as its stdin closes, so Ctrl-C here or a
dropped connection ends it too; the host then also runs `rm -rf FOLDER` over a second
connection, in case the device has not noticed yet. Nothing is written on the host.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from edgetl._version import __version__
from edgetl.device.transport import Transport, last_line, python_command
from edgetl.errors import EdgetlError

PROBE = r"""
import json, platform
from importlib import metadata

def version(name):
    try:
        return metadata.version(name)
    except Exception:
        return None

cpu = {}
try:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                cpu.setdefault(key.strip(), value.strip())
except OSError:
    pass
runtime_error = None
try:
    import edgetl.runtime.remote
    import edgetl._version as own
    installed = version("edgetl") or own.__version__
except Exception as e:
    runtime_error, installed = f"{type(e).__name__}: {e}", version("edgetl")
print(json.dumps({
    "machine": platform.machine(), "system": f"{platform.system()} {platform.release()}",
    "python": platform.python_version(), "edgetl": installed, "runtime_error": runtime_error,
    "cpu": next((cpu[k] for k in ("model name", "Model", "cpu model", "Hardware") if k in cpu), None),
    "packages": {n: version(n) for n in ("ai-edge-litert", "tflite-runtime", "onnxruntime", "numpy", "pillow")},
}))
"""

WRAPPER = r"""
d=$(mktemp -d "${TMPDIR:-/tmp}/edgetl-device.XXXXXX") || exit 97
p=
cleanup() { if [ -n "$p" ]; then kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; fi; rm -rf "$d"; }
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
echo "edgetl-folder $d"
exec 3<&0
"$1" -m edgetl.runtime.remote "$d" <&3 3<&- &
p=$!
exec 3<&-
wait "$p"
rc=$?
p=
exit "$rc"
"""
"""A background job's stdin is /dev/null in sh, hence the copy on fd 3."""

PROBE_TIMEOUT_S = 90
FINISH_TIMEOUT_S = 30


def install_command(python: str, *, pinned: bool = False) -> str:
    """The device's install line: the README's `pip install 'edgetl[runtime]'`, or this host's exact version."""
    return f"{python} -m pip install 'edgetl[runtime]{f'=={__version__}' if pinned else ''}'"


WHEEL_NOTE = (f"(this host has {__version__}; without a package index, build the wheel and install "
              f"edgetl-{__version__}-py3-none-any.whl[runtime] as the README's Raspberry Pi section shows)")


def probe(transport: Transport, python: str) -> dict[str, Any]:
    """The device's facts (machine, system, python, edgetl, cpu, packages).

    Raises:
        EdgetlError: the device cannot be reached or logged into, has no such python, or has no
            edgetl runtime of this host's version (the message gives the install command).
    """
    try:
        done = subprocess.run(transport.argv(python_command(python, "-")), input=PROBE.encode(), capture_output=True,
                              timeout=PROBE_TIMEOUT_S, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        raise EdgetlError(f"{transport.target} did not answer within {PROBE_TIMEOUT_S} s.") from e
    except KeyboardInterrupt:
        raise EdgetlError(f"Interrupted (Ctrl-C) while asking {transport.target} what it has; "
                          "nothing was written.") from None
    stderr = done.stderr.decode("utf-8", "replace")
    if reason := transport.explain(done.returncode, stderr):
        raise EdgetlError(reason)
    if done.returncode == 127:
        raise EdgetlError(f"There is no {python} on {transport.target}: pass --device-python PATH of its python 3 "
                          f"that has edgetl ({install_command('python3')}).")
    facts = _json_line(done.stdout)
    if done.returncode != 0 or facts is None:
        raise EdgetlError(f"{python} on {transport.target} failed (exit {done.returncode}): {last_line(stderr)}")
    return _checked(facts, transport.target, python)


def _checked(facts: dict[str, Any], target: str, python: str) -> dict[str, Any]:
    device = facts.get("edgetl")
    if device is None:
        raise EdgetlError(f"edgetl is not installed for {python} on {target}. Install it there: "
                          f"{install_command(python)} {WHEEL_NOTE}")
    if device != __version__:
        older = "older" if _version_key(device) < _version_key(__version__) else "newer"
        raise EdgetlError(f"{target} has edgetl {device}, {older} than this host's {__version__}: install "
                          f"{__version__} there: {install_command(python, pinned=True)} {WHEEL_NOTE}")
    if facts.get("runtime_error"):
        raise EdgetlError(f"edgetl's runtime does not load on {target} ({facts['runtime_error']}). Reinstall it "
                          f"there: {install_command(python, pinned=True)}")
    return facts


def _version_key(version: str) -> tuple[int, ...]:
    """"0.10.1" -> (0, 10, 1); parts that are not numbers count as 0 (enough to say older or newer)."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def run_job(transport: Transport, python: str, files: Sequence[tuple[str, Path]], job: dict[str, Any]
            ) -> list[dict[str, Any]]:
    """Upload `files` (device name, local path) with `job`, run it on the device, return its events.

    Raises:
        EdgetlError: one sentence for every way the run can end early (disk full, dropped
            connection, worker killed, Ctrl-C); the device's temporary folder is gone by then.
    """
    header = {**job, "files": [{"name": name, "size": path.stat().st_size} for name, path in files]}
    remote = f"sh -c {shlex.quote(WRAPPER)} sh {shlex.quote(python)}"
    proc = subprocess.Popen(transport.argv(remote), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    stderr: list[bytes] = []
    collector = _in_background(_collect, proc.stderr, stderr)
    _in_background(_upload, proc.stdin, header, files)
    events: list[dict[str, Any]] = []
    folder: list[str] = []  # the device's temporary folder, once it says where
    interrupted = False
    try:
        _read_events(proc.stdout, events, folder)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        finished = bool(events) and events[-1]["event"] in ("done", "error") and not interrupted
        _close(proc, wait=finished)
        if not finished and folder:
            _remove_folder(transport, folder[0])
    collector.join(timeout=5)  # ssh has exited: its last stderr lines are on their way
    if interrupted:
        raise EdgetlError(f"Interrupted (Ctrl-C) while running on {transport.target}; nothing was written and "
                          "the device's temporary folder was removed.")
    return _outcome(transport, events, proc.returncode, b"".join(stderr).decode("utf-8", "replace"), folder)


def _read_events(stdout: IO[bytes], events: list[dict[str, Any]], folder: list[str]) -> None:
    """Append the device's events until `done` or `error` or the end; `folder` gets its temporary folder."""
    for raw in stdout:
        line = raw.decode("utf-8", "replace").strip()
        if not folder and line.startswith("edgetl-folder "):
            folder.append(line.removeprefix("edgetl-folder "))
            continue
        event = _json_line(raw)
        if event is None or "event" not in event:
            continue  # a login banner or other chatter
        events.append(event)
        if event["event"] in ("done", "error"):
            break


def _outcome(transport: Transport, events: list[dict[str, Any]], returncode: int, stderr: str,
             folder: list[str]) -> list[dict[str, Any]]:
    last = events[-1] if events else {}
    if last.get("event") == "done":
        return events
    if last.get("event") == "error":
        if last.get("kind") == "disk":
            raise EdgetlError(f"The disk of {transport.target} is full: {last['message']}. Free some space there "
                              "(or point TMPDIR at a larger disk) and run again.")
        raise EdgetlError(f"The run on {transport.target} failed: {last.get('message')}")
    if last_line(stderr).endswith("Killed") and not 128 < returncode < 160:
        # The device's shell reported its worker SIGKILLed (the OOM killer, kill -9); ssh itself may
        # then exit 255 as if the connection had dropped, which it did not (seen under load here).
        returncode = 128 + 9
    if reason := transport.explain(returncode, stderr):
        raise EdgetlError(reason)
    if not folder:
        hint = "its disk is full" if "no space left" in stderr.lower() else last_line(stderr) or f"exit {returncode}"
        raise EdgetlError(f"Cannot make a temporary folder on {transport.target} ({hint}).")
    signal = f", killed by signal {returncode - 128}" if 128 < returncode < 160 else ""
    raise EdgetlError(f"The edgetl process on {transport.target} ended midway (exit {returncode}{signal}) after "
                      f"{sum(e['event'] == 'photo' for e in events)} photos: {last_line(stderr) or 'no message'}.")


def _upload(stdin: IO[bytes], header: dict[str, Any], files: Sequence[tuple[str, Path]]) -> None:
    """Send the job line and the files; a device that stops reading (full disk, gone) ends it quietly.

    stdin stays open afterwards: the device takes its end as "the host has gone".
    """
    try:
        stdin.write((json.dumps(header) + "\n").encode())
        for _, path in files:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    stdin.write(chunk)
        stdin.flush()
    except (OSError, ValueError):
        pass


def _collect(stream: IO[bytes], into: list[bytes]) -> None:
    for line in stream:
        if len(into) < 200:
            into.append(line)


def _in_background(fn: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True, name="edgetl-device-io")
    thread.start()
    return thread


def _close(proc: subprocess.Popen, *, wait: bool) -> None:
    """End the session: after a finished run let the device clean up first; else hang up at once."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    if wait:
        try:
            proc.wait(timeout=FINISH_TIMEOUT_S)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _remove_folder(transport: Transport, folder: str) -> None:
    """Best effort, over a second connection: the device removes the folder itself when it sees the hang-up."""
    if not folder.startswith("/") or "edgetl-device." not in folder:
        return
    try:
        subprocess.run(transport.argv(f"rm -rf -- {shlex.quote(folder)}"), capture_output=True, timeout=30,
                       start_new_session=True)
    except (subprocess.TimeoutExpired, OSError):
        pass


def _json_line(raw: bytes) -> dict[str, Any] | None:
    for line in reversed(raw.decode("utf-8", "replace").strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None
