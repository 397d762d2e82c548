"""User files are sacred: what `--overwrite`, `--resume` and a re-export may touch, and what not.

Each test runs the real command on real folders and then checks, file by file, that what edgetl
did not make is still there, unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_solid_photos
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.safety import MARKER

runner = CliRunner()
SCRATCH = ("--strategy", "scratch", "--image-size", "32", "--epochs", "1", "--batch-size", "4", "-q")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    colours = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}
    return write_solid_photos(tmp_path / "parent" / "photos", colours, per_class=6, size=32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(DATA_DIR, RUN_DIR) of one real scratch run, trained once for this module."""
    root = tmp_path_factory.mktemp("files")
    colours = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 200)}
    data = write_solid_photos(root / "photos", colours, per_class=6, size=32)
    result = runner.invoke(app, ["train", str(data), "--out", str(root / "run"), *SCRATCH], env={"EDGETL_CACHE_DIR": str(root / "c")})
    assert result.exit_code == 0, result.output
    return data, root / "run"


@pytest.mark.parametrize("where", ["data", "parent", "inside"])
def test_overwrite_never_replaces_or_writes_into_the_data_dir(photos: Path, where: str) -> None:
    out = {"data": photos, "parent": photos.parent, "inside": photos / "red" / "run"}[where]
    before = _snapshot(photos.parent)
    result = runner.invoke(app, ["train", str(photos), "--out", str(out), "--overwrite", *SCRATCH])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "DATA_DIR" in result.stderr or "not made by edgetl" in result.stderr
    assert _snapshot(photos.parent) == before


def test_overwrite_refuses_a_folder_edgetl_did_not_make(photos: Path, tmp_path: Path) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.txt").write_text("years of work")
    (tmp_path / ".thesis.partial").mkdir()  # a user's folder that happens to have the partial name
    (tmp_path / ".thesis.partial" / "notes.txt").write_text("mine too")
    result = runner.invoke(app, ["train", str(photos), "--out", str(mine), "--overwrite", *SCRATCH])
    assert result.exit_code == 2, result.output
    assert f"has no {MARKER} marker" in result.stderr and "never deletes what it did not make" in result.stderr
    assert (mine / "chapter1.txt").read_text() == "years of work"
    assert (tmp_path / ".thesis.partial" / "notes.txt").read_text() == "mine too"


def test_overwrite_replaces_a_run_edgetl_made(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = trained
    assert json.loads((run / MARKER).read_text())["kind"] == "run"
    again = runner.invoke(app, ["train", str(data), "--out", str(run), "--overwrite", *SCRATCH],
                          env={"EDGETL_CACHE_DIR": str(tmp_path / "c")})
    assert again.exit_code == 0, again.output
    assert (run / "model.keras").is_file() and not list(run.parent.glob(".run.*"))


def test_export_out_must_be_an_export_folder(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = trained
    before = _snapshot(run)
    for out in (run, run.parent, data):
        result = runner.invoke(app, ["export", str(run), "--formats", "tflite-fp32", "--no-golden", "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.splitlines()) == 1
    assert _snapshot(run) == before


def test_pretrained_export_never_replaces_a_run(trained: tuple[Path, Path]) -> None:
    _, run = trained
    before = _snapshot(run)
    for extra in ((), ("--overwrite",)):
        result = runner.invoke(app, ["export", "--pretrained", "mobilenet_v2", "--out", str(run), "--formats", "tflite-fp32",
                                     "--no-golden", *extra])
        assert result.exit_code == 2, result.output
        assert ("already exists; pass --overwrite" if not extra else "is an edgetl 'run' folder") in result.stderr
    assert _snapshot(run) == before


def test_demo_overwrite_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "mine.png").write_bytes(b"a user's photo")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--overwrite", "-q"])
    assert result.exit_code == 2, result.output
    assert (tmp_path / "digits" / "mine.png").read_bytes() == b"a user's photo"


def _interrupted(run: Path) -> Path:
    """The finished run, turned back into the partial folder an interrupted run leaves."""
    import shutil

    partial = run.with_name(f".{run.name}.partial")
    shutil.copytree(run, partial)
    return partial


def test_resume_refuses_another_data_dir_or_options_naming_each(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = trained
    out = tmp_path / "resumed"
    _interrupted(run).rename(tmp_path / ".resumed.partial")
    other = write_solid_photos(tmp_path / "other", {"a": (0, 0, 0), "b": (255, 255, 255)}, per_class=4, size=32)
    args = ["train", str(other), "--out", str(out), *SCRATCH, "--image-size", "48", "--seed", "5", "--resume"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    for field in ("data_dir", "image_size", "seed"):
        assert f"{field} (interrupted run:" in result.stderr
    assert "strategy" not in result.stderr.split("differ")[1]
    assert (tmp_path / ".resumed.partial" / "model.keras").is_file()  # untouched

    same = runner.invoke(app, ["train", str(data), "--out", str(out), *SCRATCH, "--resume"],
                         env={"EDGETL_CACHE_DIR": str(tmp_path / "c")})
    assert same.exit_code == 0, same.output
    assert (out / "model.keras").is_file() and not (tmp_path / ".resumed.partial").exists()


def test_resume_refuses_a_partial_folder_without_a_marker(photos: Path, tmp_path: Path) -> None:
    (tmp_path / ".run.partial").mkdir()
    (tmp_path / ".run.partial" / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["train", str(photos), "--out", str(tmp_path / "run"), *SCRATCH, "--resume"])
    assert result.exit_code == 2 and "cannot be resumed" in result.stderr
    assert (tmp_path / ".run.partial" / "keep.txt").read_text() == "mine"


def test_sigkill_mid_export_keeps_the_previous_export_whole(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    run = tmp_path / "run"
    shutil.copytree(trained[1], run)
    first = runner.invoke(app, ["export", str(run), "--formats", "tflite-fp32", "--no-golden"])
    assert first.exit_code == 0, first.output
    before = _snapshot(run / "export")

    command = [sys.executable, "-c", "from edgetl.cli import main; main()", "export", str(run), "--formats", "tflite-fp32,onnx", "--no-golden"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not list(run.glob(".export.edgetl-staging-*/model_tflite-fp32.json")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first artefact never appeared"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert _snapshot(run / "export") == before  # nothing new beside the old export.json
    assert list(run.glob(".export.edgetl-staging-*"))
    leftover_tmp = [p for p in Path(tempfile.gettempdir()).glob("edgetl-export-*") if (p / MARKER).is_file()
                    and json.loads((p / MARKER).read_text())["pid"] == process.pid]
    assert leftover_tmp

    verified = runner.invoke(app, ["verify", str(run), "--max-images", "2"])
    assert verified.exit_code == 0, verified.output  # the old export, whole
    again = runner.invoke(app, ["export", str(run), "--formats", "tflite-fp32", "--no-golden"])
    assert again.exit_code == 0, again.output
    assert not list(run.glob(".export.*")) and not any(p.exists() for p in leftover_tmp)
    assert os.listdir(run / "export") and json.loads((run / "export" / "export.json").read_text())["manifest"]


def test_verify_refuses_artefacts_the_manifest_does_not_vouch_for(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained[1], run)
    assert runner.invoke(app, ["export", str(run), "--formats", "tflite-fp32,tflite-fp16", "--no-golden"]).exit_code == 0
    manifest = json.loads((run / "export" / "export.json").read_text())["manifest"]
    assert set(manifest["files"]) == {"model_tflite-fp32.tflite", "model_tflite-fp32.json", "model_tflite-fp16.tflite",
                                      "model_tflite-fp16.json", "reference.json"}
    fp32 = run / "export" / "model_tflite-fp32.tflite"
    original = fp32.read_bytes()
    shutil.copy(run / "export" / "model_tflite-fp16.tflite", fp32)  # a mixed folder
    result = runner.invoke(app, ["verify", str(run)])
    assert result.exit_code == 2 and "model_tflite-fp32.tflite is not the file this export wrote" in result.stderr

    fp32.write_bytes(original)
    (run / "model.keras").write_bytes((trained[1] / "model.keras").read_bytes() + b"\0")  # another model file
    result = runner.invoke(app, ["verify", str(run)])
    assert result.exit_code == 2 and "is not the model this run saved" in result.stderr  # metadata.json's hash
    from edgetl.safety import file_sha256

    meta = json.loads((run / "metadata.json").read_text())
    (run / "metadata.json").write_text(json.dumps({**meta, "model_keras_sha256": file_sha256(run / "model.keras")}))
    result = runner.invoke(app, ["verify", str(run)])  # a run whose parts agree, but an export of another model
    assert result.exit_code == 2 and "exported from another model.keras" in result.stderr


@pytest.mark.parametrize("bad", ["two\nlines", "carriage\rreturn", "tab\there", "bell\x07", "nel\x85", "sep\u2028", " padded"])
def test_class_folder_names_a_labels_file_cannot_carry_are_refused(tmp_path: Path, bad: str) -> None:
    data = write_solid_photos(tmp_path / "photos", {bad: (200, 30, 30), "fine": (30, 40, 200)}, per_class=3, size=16)
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), *SCRATCH])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: The class name ") and "rename it" in line and ascii(bad)[1:-1].strip() in line
    assert not (tmp_path / "run").exists()


def test_every_labels_writer_refuses_a_label_that_breaks_lines(tmp_path: Path) -> None:
    from edgetl.errors import EdgetlError
    from edgetl.spec import ModelMetadata, PreprocessingSpec, labels_text

    assert labels_text(["a", "b c"]) == "a\nb c\n"
    meta = ModelMetadata(labels=("a", "b\nc"), preprocessing=PreprocessingSpec(image_size=(8, 8)))
    with pytest.raises(EdgetlError, match="control character"):
        meta.to_json()  # what every artefact embeds (TFLite, ONNX, sidecars)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(999)) + "vertical\x0btab\n")
    result = runner.invoke(app, ["export", "--pretrained", "mobilenet_v2", "--weights", str(tmp_path / "w.weights.h5"),
                                 "--labels", str(labels), "--out", str(tmp_path / "o"), "--formats", "tflite-fp32"])
    assert result.exit_code == 2, result.output
    assert "'vertical\\x0btab' contains a control character" in result.stderr


def test_non_utf8_photo_names_train(tmp_path: Path) -> None:
    import os
    import shutil

    data = write_solid_photos(tmp_path / "photos", {"red": (200, 30, 30), "blue": (30, 40, 200)}, per_class=4, size=16)
    for name in ("red", "blue"):
        src = data / name / "0.png"
        shutil.move(src, os.fsdecode(os.fsencode(data / name) + b"/caf\xe9.png"))
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), *SCRATCH],
                           env={"EDGETL_CACHE_DIR": str(tmp_path / "c")})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "splits.json").is_file()

    os.rename(data / "red", os.fsdecode(b"%s/r\xe9d" % os.fsencode(data)))
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run2"), *SCRATCH])
    assert result.exit_code == 2 and "is not valid UTF-8" in result.stderr


def _tmpfs(where: Path, size: str) -> Path:
    import subprocess

    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"needs root to mount a small tmpfs ({done.stderr.strip()})")
    return where


def test_disk_full_during_training_is_one_line_then_resume_finishes(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    data = trained[0]
    disk = _tmpfs(tmp_path / "disk", "600k")  # room for the first files, not for a checkpoint
    try:
        command = [sys.executable, "-c", "from edgetl.cli import main; main()", "train", str(data), "--out", str(disk / "run"),
                   *SCRATCH[:-1], "--epochs", "3"]
        env = {**os.environ, "EDGETL_CACHE_DIR": str(tmp_path / "c")}
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [
            f"error: Cannot write the run {disk / 'run'}: No space left on device. Free some space (or make the folder "
            "writable), then rerun with --resume."
        ]
        assert (disk / ".run.partial" / MARKER).is_file()  # kept for --resume
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
        resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=env, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        assert (disk / "run" / "model.keras").is_file() and not (disk / ".run.partial").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_verify_on_a_read_only_run_is_exit_2_not_a_parity_failure(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil
    import subprocess

    disk = _tmpfs(tmp_path / "ro", "20m")
    try:
        shutil.copytree(trained[1], disk / "run")
        assert runner.invoke(app, ["export", str(disk / "run"), "--formats", "tflite-fp32", "--no-golden"]).exit_code == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = runner.invoke(app, ["verify", str(disk / "run"), "--max-images", "2"])
        assert result.exit_code == 2, result.output
        [line] = result.stderr.splitlines()
        assert line.startswith("error: Cannot write ") and "Read-only file system" in line
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_truncated_model_keras_is_named_as_such(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained[1], run, ignore=shutil.ignore_patterns("export"))
    model = run / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    for command in ("export", "verify"):
        result = runner.invoke(app, [command, str(run)])
        assert result.exit_code == 2, result.output
        assert "is truncated or corrupt" in result.stderr and "not found" not in result.stderr


def test_a_write_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    from edgetl.spec import atomic_path

    target = tmp_path / "curves.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target, keep_suffix=True) as tmp:
        assert tmp.name.endswith(".png") and tmp.parent == tmp_path
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == [target]
