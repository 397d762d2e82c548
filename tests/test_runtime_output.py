"""Output plumbing of every printing command, in real subprocesses: a reader that goes away, a full
disk, an ASCII-only locale; and `predict` on a folder with an unreadable photo."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, shared_path
from PIL import Image

from edgetl.runtime.golden import write_golden

EDGETL = [sys.executable, "-c", "from edgetl.cli import main; main()"]
MODULE = [sys.executable, "-m", "edgetl.runtime"]
# PYTHONUNBUFFERED (set on some machines) makes Python's text layer drop the rest of a partial
# write to a pipe whose reader left, silently: the command then exits 0 instead of by SIGPIPE.
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "PYTHONPATH": str(REPO),
       "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def coral(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Coral's uint8 model with golden vectors, a folder of its photos and one unreadable file, and
    a labels file of non-ASCII names."""
    root = tmp_path_factory.mktemp("plumbing")
    model = root / "model.tflite"
    shutil.copy(shared_path("coral", "mobilenet_v1_0.25_128_quant.tflite"), model)
    photos = root / "photos"
    photos.mkdir()
    for name in ("bird.bmp", "cat.bmp", "grace_hopper.bmp"):
        shutil.copy(shared_path("coral", name), photos / name)
    write_golden(root / "golden", [model], sorted(photos.iterdir())[:1])
    (photos / "b_broken.jpg").write_text("not a photo")
    labels = root / "labels.txt"
    labels.write_text("".join(f"猫 chat-{i} é\n" for i in range(1001)), encoding="utf-8")
    return {"model": model, "photos": photos, "labels": labels, "golden": root / "golden"}


def _commands(files: dict[str, Path]) -> dict[str, list[str]]:
    model, photo = str(files["model"]), str(files["photos"] / "cat.bmp")
    return {
        "python -m edgetl.runtime": [*MODULE, model, photo],
        "python -m edgetl.runtime --selftest": [*MODULE, model, "--selftest", "--golden", str(files["golden"])],
        "predict": [*EDGETL, "predict", model, photo],
        "predict --json": [*EDGETL, "predict", model, photo, "--json"],
        "inspect": [*EDGETL, "inspect", model],
        "inspect --json": [*EDGETL, "inspect", model, "--json"],
        "bench --json": [*EDGETL, "bench", model, "--runs", "2", "--warmup", "0", "--json"],
        "selftest": [*EDGETL, "selftest", model, "--golden", str(files["golden"])],
        "--version": [*EDGETL, "--version"],  # the guard wraps every command (verify --json, export --json too)
    }


def _run(command: list[str], stdout: int | None = subprocess.PIPE, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env={**ENV, **env}, timeout=120)


def test_a_reader_that_goes_away_ends_each_command_quietly_by_sigpipe(coral: dict[str, Path]) -> None:
    for name, command in _commands(coral).items():
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the first write: every write is EPIPE
        try:
            done = _run(command, stdout=write)
        finally:
            os.close(write)
        assert done.returncode == -signal.SIGPIPE, (name, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, (name, done.stderr)


def test_head_dash_1_on_a_long_listing_exits_141_with_nothing_on_stderr(coral: dict[str, Path], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(800):  # about 600 kB of JSON: more than `head` reads and a pipe holds before it exits
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i:03d}.png")
    for command in ([*EDGETL, "predict", str(coral["model"]), str(tmp_path), "--json", "--top-k", "10"],
                    [*MODULE, str(coral["model"]), str(tmp_path), "--top-k", "10"]):
        line = " ".join(f"'{part}'" for part in command)
        done = subprocess.run(["bash", "-c", f"set -o pipefail; {line} | head -1"], capture_output=True, text=True,
                              env=ENV, timeout=120)
        assert done.returncode == 141, done.stderr
        assert done.stdout.count("\n") == 1 and done.stderr == ""


def test_a_full_disk_is_one_error_line_and_exit_2(coral: dict[str, Path]) -> None:
    for name, command in _commands(coral).items():
        with open("/dev/full", "w") as full:
            done = _run(command, stdout=full.fileno())
        lines = done.stderr.splitlines()
        assert done.returncode == 2, (name, done.returncode, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error:") and "No space left on device" in lines[0], name


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C"},
                                 {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "ascii"}])
def test_non_ascii_labels_in_an_ascii_locale(coral: dict[str, Path], env: dict[str, str]) -> None:
    model, photo, labels = str(coral["model"]), str(coral["photos"] / "cat.bmp"), str(coral["labels"])
    for command in ([*EDGETL, "predict", model, photo, "--labels", labels],
                    [*MODULE, model, photo, "--labels", labels]):
        done = _run(command, **env)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert "chat-286" in done.stdout
    for command in ([*EDGETL, "predict", model, photo, "--labels", labels, "--json"],
                    [*MODULE, model, photo, "--labels", labels, "--json"]):
        done = _run(command, **env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["top_k"][0]["label"] == "猫 chat-286 é"  # valid JSON, exact label


def test_predict_skips_an_unreadable_photo_naming_it_and_prints_the_others(coral: dict[str, Path]) -> None:
    model, folder = str(coral["model"]), str(coral["photos"])
    for command in ([*EDGETL, "predict", model, folder, "--json"], [*MODULE, model, folder, "--json"]):
        done = _run(command)
        assert done.returncode == 0, done.stderr
        records = json.loads(done.stdout)
        assert [Path(r["image"]).name for r in records] == ["bird.bmp", "cat.bmp", "grace_hopper.bmp"]
        warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and "b_broken.jpg" in warnings[0] and "Not a readable image" in warnings[0]
    for command in ([*EDGETL, "predict", model, folder, "--strict"], [*MODULE, model, folder, "--strict"]):
        done = _run(command)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("error:") and "b_broken.jpg" in done.stderr


def test_predict_on_only_unreadable_photos_is_exit_2(coral: dict[str, Path]) -> None:
    done = _run([*EDGETL, "predict", str(coral["model"]), str(coral["photos"] / "b_broken.jpg")])
    assert done.returncode == 2 and done.stdout == ""
    assert "None of the 1 photos could be read" in done.stderr


@pytest.mark.slow
def test_export_json_to_a_full_disk_says_the_export_is_in_place(tiny_run: Path,
                                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    from _export_shared import copy_run

    run = copy_run(tiny_run, tmp_path_factory, "full_disk_json")
    command = [*EDGETL, "export", str(run), "--formats", "tflite-fp32", "--no-golden", "--json"]
    with open("/dev/full", "w") as full:
        done = _run(command, stdout=full.fileno())
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert "No space left on device; the export is in place in " in errors[0]
    assert (run / "export" / "model_tflite-fp32.tflite").is_file()
