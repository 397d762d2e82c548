"""Run folders that two processes cannot break, and whose parts belong together.

The pairs run at once as real `edgetl` subprocesses on a real (scratch) run: the second one
starts once the first holds the run's lock, and must stop with one line naming the first, while
the first finishes whole. Signals are real SIGINTs to the export's process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import write_solid_photos
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.runlock import folder_lock, lock_path
from edgetl.safety import HOST, MARKER, clean_leftovers, file_sha256, write_marker
from edgetl.spec import NAME_MAX, hidden_sibling

runner = CliRunner()
SCRATCH = ("--strategy", "scratch", "--image-size", "32", "--batch-size", "4", "-q")
EXPORT = ("--formats", "tflite-fp32,onnx", "--no-golden")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real scratch runs of the same three classes ("run" and "other", another seed), and their DATA_DIR."""
    root = tmp_path_factory.mktemp("runfolders")
    colours = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}
    data = write_solid_photos(root / "photos", colours, per_class=6, size=32)
    for name, seed in (("run", "0"), ("other", "1")):
        result = runner.invoke(app, ["train", str(data), "--out", str(root / name), *SCRATCH, "--epochs", "1",
                                     "--seed", seed], env={"EDGETL_CACHE_DIR": str(root / "cache")})
        assert result.exit_code == 0, result.output
    return {"data": data, "run": root / "run", "other": root / "other", "cache": root / "cache"}


def _copy(runs: dict[str, Path], tmp_path: Path, name: str = "run") -> Path:
    shutil.copytree(runs["run"], tmp_path / name)
    return tmp_path / name


def _edgetl(*args: str, cache: Path | None = None, **popen: object) -> subprocess.Popen[str]:
    env = {**os.environ, **({"EDGETL_CACHE_DIR": str(cache)} if cache else {})}
    command = [sys.executable, "-c", "from edgetl.cli import main; main()", *args]
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    return subprocess.Popen(command, text=True, env=env, **popen)


def _holding(process: subprocess.Popen[str], folder: Path, timeout: float = 180) -> None:
    """Wait until `process` holds `folder`'s lock (its PID is in the lock file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if json.loads(lock_path(folder).read_text()).get("pid") == process.pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"{process.args} never locked {folder}")


def _refused_by(second: subprocess.Popen[str], first: subprocess.Popen[str], folder: Path) -> str:
    """The second process's one line, checked to name the first while that one still runs."""
    _, stderr = second.communicate(timeout=300)
    assert first.poll() is None, "the first process ended before the second one looked: inconclusive"
    assert second.returncode == 2, stderr
    [line] = stderr.splitlines()
    assert line.startswith(f"error: {folder} is being written by PID {first.pid} on {HOST} since "), line
    return line


def _finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return out + err


def _export_is_whole(run: Path) -> None:
    manifest = json.loads((run / "export" / "export.json").read_text())["manifest"]
    assert manifest["source_model"]["sha256"] == file_sha256(run / "model.keras")
    for name, digest in manifest["files"].items():
        assert file_sha256(run / "export" / name) == digest, name
    assert not [p for p in run.iterdir() if p.name.startswith(".export.edgetl-")]
    assert not lock_path(run).exists()


# --- two processes, one folder ---------------------------------------------------------------


def test_export_during_export_exits_2_naming_it_and_wait_runs_after(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs, tmp_path)
    first = _edgetl("export", str(run), *EXPORT)
    _holding(first, run)
    second = _edgetl("export", str(run), "--formats", "tflite-fp32", "--no-golden")
    waiting = _edgetl("export", str(run), "--formats", "tflite-fp32", "--no-golden", "--wait")
    line = _refused_by(second, first, run)
    assert "(edgetl export)" in line and "--wait" in line
    _finished(first)
    said = _finished(waiting)
    assert f"waiting: {run} is being written by PID {first.pid}" in said
    assert {r["format"] for r in json.loads((run / "export" / "export.json").read_text())["results"]} == {"tflite-fp32"}
    _export_is_whole(run)
    assert not lock_path(run).exists()


def test_train_during_train_to_one_out_exits_2_and_the_first_run_is_whole(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _edgetl("train", str(runs["data"]), "--out", str(out), *SCRATCH, "--epochs", "30", cache=runs["cache"])
    _holding(first, out)
    second = _edgetl("train", str(runs["data"]), "--out", str(out), *SCRATCH, "--epochs", "1", "--overwrite",
                     cache=runs["cache"])
    assert "(edgetl train)" in _refused_by(second, first, out)
    _finished(first)
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] is not None
    assert runner.invoke(app, ["export", str(out), "--formats", "tflite-fp32", "--no-golden"]).exit_code == 0
    assert not lock_path(out).exists() and not list(tmp_path.glob(".run.*"))


def test_train_overwrite_and_verify_during_an_export_exit_2(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs, tmp_path)
    model = file_sha256(run / "model.keras")
    first = _edgetl("export", str(run), *EXPORT)
    _holding(first, run)
    overwrite = _edgetl("train", str(runs["data"]), "--out", str(run), *SCRATCH, "--epochs", "1", "--overwrite",
                        cache=runs["cache"])
    verify = _edgetl("verify", str(run))
    _refused_by(overwrite, first, run)
    _refused_by(verify, first, run)
    _finished(first)
    assert file_sha256(run / "model.keras") == model
    _export_is_whole(run)
    verified = runner.invoke(app, ["verify", str(run), "--max-images", "4"])
    assert verified.exit_code == 0, verified.output


def test_a_stale_lock_of_a_dead_process_is_taken_over_not_one_of_another_host(runs: dict[str, Path],
                                                                               tmp_path: Path) -> None:
    run = _copy(runs, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(dead.stdout), "host": HOST, "started": "2026-01-01 00:00:00 UTC", "command": "edgetl export"}
    lock_path(run).write_text(json.dumps(stale))
    result = runner.invoke(app, ["export", str(run), "--formats", "tflite-fp32", "--no-golden"])
    assert result.exit_code == 0, result.output
    assert not lock_path(run).exists()
    _export_is_whole(run)
    # The "Next:" hint names what exists: this run's verify and the one artefact written.
    assert f"Next: edgetl verify {run}" in result.stdout and "model_tflite-fp32.tflite" in result.stdout
    assert "tflite-int8" not in result.stdout

    elsewhere = {**stale, "host": f"not-{HOST}"}
    lock_path(run).write_text(json.dumps(elsewhere))
    refused = runner.invoke(app, ["verify", str(run)])
    assert refused.exit_code == 2
    [line] = refused.stderr.splitlines()
    assert f"PID {stale['pid']} on not-{HOST}" in line and f"delete {lock_path(run)}" in line
    assert json.loads(lock_path(run).read_text()) == elsewhere  # never taken over


def test_leftover_cleanup_spares_the_staging_folder_of_a_live_process(tmp_path: Path) -> None:
    target = tmp_path / "export"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    try:
        folders = {}
        for name, pid in (("live", live.pid), ("dead", int(dead.stdout)), ("other-host", live.pid)):
            folder = hidden_sibling(target, f".edgetl-staging-{pid}{name}")
            folder.mkdir()
            write_marker(folder, "export", pid=pid, host=HOST if name != "other-host" else f"not-{HOST}")
            (folder / "model_onnx.onnx").write_bytes(b"work in progress")
            folders[name] = folder
        clean_leftovers(target)
        assert folders["live"].is_dir() and folders["other-host"].is_dir()
        assert not folders["dead"].exists()
    finally:
        live.kill()
        live.wait()


# --- a run's parts belong together -----------------------------------------------------------


def test_a_model_keras_from_another_run_is_refused_by_export_and_verify(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs, tmp_path)
    shutil.copy(runs["other"] / "model.keras", run / "model.keras")  # same classes, same input: only the hash tells
    recorded = json.loads((runs["run"] / "metadata.json").read_text())["model_keras_sha256"]
    for command in (["export", str(run)], ["verify", str(run)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        [line] = result.stderr.splitlines()
        assert f"{run / 'model.keras'} is not the model this run saved" in line
        assert f"{recorded[:12]}... in {run / 'metadata.json'}" in line
    assert not (run / "export").exists()


@pytest.mark.parametrize("edit", ["labels", "preprocessing", "missing key"])
def test_run_files_that_disagree_with_metadata_json_are_refused_by_name(runs: dict[str, Path], tmp_path: Path,
                                                                        edit: str) -> None:
    run = _copy(runs, tmp_path)
    if edit == "labels":
        (run / "labels.txt").write_text("blue\ngreen\nyellow\n")
        expected = f"{run / 'labels.txt'} disagrees with {run / 'metadata.json'}, which every stage reads: line 3 is 'yellow'"
    elif edit == "preprocessing":
        spec = json.loads((run / "preprocessing.json").read_text())
        (run / "preprocessing.json").write_text(json.dumps({**spec, "mean": [127.5, 127.5, 127.5]}))
        expected = f"{run / 'preprocessing.json'} disagrees with {run / 'metadata.json'}, which every stage reads, on mean"
    else:
        meta = json.loads((run / "metadata.json").read_text())
        del meta["preprocessing"]
        (run / "metadata.json").write_text(json.dumps(meta))
        expected = f"Model metadata {run / 'metadata.json'} is malformed: it has no 'preprocessing' key."
    for command in ("export", "verify"):
        result = runner.invoke(app, [command, str(run)])
        assert result.exit_code == 2, result.output
        [line] = result.stderr.splitlines()
        assert line.startswith(f"error: {expected}") and "edgetl.json" not in line, line


def test_verify_without_export_json_fails_unless_allow_unproven(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs, tmp_path)
    assert runner.invoke(app, ["export", str(run), "--formats", "tflite-fp32", "--no-golden"]).exit_code == 0
    (run / "export" / "export.json").unlink()
    refused = runner.invoke(app, ["verify", str(run)])
    assert refused.exit_code == 2
    [line] = refused.stderr.splitlines()
    assert "export.json is missing or has no manifest" in line and "--allow-unproven" in line
    with pytest.warns(UserWarning, match=r"nothing proves .* checked anyway \(--allow-unproven\)"):
        allowed = runner.invoke(app, ["verify", str(run), "--allow-unproven"])
    assert allowed.exit_code == 0, allowed.output

    # --wait: a lock held by another thread (its own lock, as another process's) for a second, then verify runs.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with folder_lock(run, "edgetl test"):
            held.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(timeout=60)
    threading.Timer(1.5, release.set).start()
    with pytest.warns(UserWarning):
        waited = runner.invoke(app, ["verify", str(run), "--allow-unproven", "--wait"])
    holder.join()
    assert waited.exit_code == 0, waited.output
    assert f"waiting: {run} is being written by PID {os.getpid()} on {HOST}" in waited.stderr


# --- edges of options and files -------------------------------------------------------------


def test_out_through_a_dangling_symlink_is_refused_and_creates_nothing(runs: dict[str, Path], tmp_path: Path) -> None:
    link, nowhere = tmp_path / "link", tmp_path / "nowhere" / "deeper"
    link.symlink_to(nowhere)
    for command in (["train", str(runs["data"]), "--out", str(link), *SCRATCH],
                    ["train", str(runs["data"]), "--out", str(link / "run"), *SCRATCH],
                    ["export", str(runs["run"]), "--out", str(link), "--formats", "tflite-fp32"],
                    ["export", str(runs["run"]), "--formats", "tflite-fp32", "--android-assets", str(link)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        [line] = result.stderr.splitlines()
        assert f"runs through {link}, a symbolic link to {nowhere}, which does not exist" in line
    assert not (tmp_path / "nowhere").exists()


def test_hidden_sibling_names_stay_within_name_max() -> None:
    for name in ("r" * 255, "é" * 127, "run"):
        for tag in (".edgetl-staging-4194304", ".edgetl-lock", ".partial"):
            sibling = hidden_sibling(Path("/x") / name, tag)
            assert len(os.fsencode(sibling.name)) <= NAME_MAX and sibling.name.endswith(tag)
            assert sibling == hidden_sibling(Path("/x") / name, tag)
    assert hidden_sibling(Path("/x/run"), ".partial").name == ".run.partial"  # short names read as before
    assert hidden_sibling(Path("/x") / ("a" * 250 + "1"), ".p") != hidden_sibling(Path("/x") / ("a" * 250 + "2"), ".p")


def test_out_names_of_255_characters_train_and_export(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / ("r" * 255)
    trained = runner.invoke(app, ["train", str(runs["data"]), "--out", str(out), *SCRATCH, "--epochs", "1"],
                            env={"EDGETL_CACHE_DIR": str(runs["cache"])})
    assert trained.exit_code == 0, trained.output
    assert json.loads((out / "metadata.json").read_text())["source_run"] == out.name
    exported = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / ("e" * 247)), "--formats", "tflite-fp32",
                                   "--no-golden"])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / ("e" * 247) / "model_tflite-fp32.tflite").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e" * 247, "r" * 255]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_android_assets_inside_data_dir_is_refused_before_the_export_is_replaced(runs: dict[str, Path],
                                                                                tmp_path: Path) -> None:
    run = _copy(runs, tmp_path)
    assert runner.invoke(app, ["export", str(run), "--formats", "tflite-fp32", "--no-golden"]).exit_code == 0
    before, photos = _snapshot(run), _snapshot(runs["data"])
    (tmp_path / "a-file").write_text("mine")
    assets = tmp_path / "assets"
    for args, why in ((["--android-assets", str(runs["data"] / "red")], "data folder (DATA_DIR)"),
                      (["--android-assets", str(tmp_path / "a-file")], "must be a folder"),
                      (["--formats", "onnx", "--android-assets", str(assets)], "needs a TFLite format"),
                      (["--labels", str(tmp_path / "a-file"), "--alpha", "0.5"], "--alpha, --labels only apply with")):
        args = args if "--formats" in args else ["--formats", "tflite-fp16", *args]
        result = runner.invoke(app, ["export", str(run), *args])
        assert result.exit_code == 2, result.output
        [line] = result.stderr.splitlines()
        assert why in line
    assert _snapshot(run) == before and _snapshot(runs["data"]) == photos
    assert (tmp_path / "a-file").read_text() == "mine" and not assets.exists()


def test_a_json_report_stdout_cannot_take_says_the_export_is_in_place(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs, tmp_path)
    with open("/dev/full", "w") as full:
        process = _edgetl("export", str(run), "--formats", "tflite-fp32", "--no-golden", "--json", stdout=full)
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert f"the export is in place in {run / 'export'}" in line and "No space left on device" in line
    _export_is_whole(run)


def test_repeated_ctrl_c_during_export_cleans_up_whole_without_traceback(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs, tmp_path)
    assert runner.invoke(app, ["export", str(run), "--formats", "tflite-fp32", "--no-golden"]).exit_code == 0
    before = _snapshot(run / "export")
    process = _edgetl("export", str(run), "--formats", "tflite-fp32,tflite-fp16,tflite-dynamic,onnx", "--no-golden",
                      start_new_session=True)  # its own process group: the terminal's Ctrl-C reaches the worker too
    deadline = time.monotonic() + 300
    while not list(run.glob(".export.edgetl-staging-*/model_*.json")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no artefact was ever staged"
        time.sleep(0.01)
    presses = 0
    while process.poll() is None and presses < 60:  # Ctrl-C, then again and again while it cleans up
        os.killpg(process.pid, signal.SIGINT)
        presses += 1
        time.sleep(0.1)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == ["error: interrupted"]
    assert presses >= 2
    assert _snapshot(run / "export") == before
    assert not list(run.glob(".export.edgetl-*")) and not lock_path(run).exists()
    assert not [p for p in Path(tempfile.gettempdir()).glob("edgetl-export-*")
                if (p / MARKER).is_file() and json.loads((p / MARKER).read_text()).get("pid") == process.pid]
