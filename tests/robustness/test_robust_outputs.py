"""Where artefacts go: a full disk, a read-only folder, odd class names, mismatched runs, and
files that try to run code or to steer writes. Nothing partial is ever left under a final name."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _export_shared import copy_run
from conftest import write_solid_photos
from typer.testing import CliRunner

from edgetl.cli import app
from edgetl.errors import EdgetlError
from edgetl.export import ExportOptions, export, load_run
from edgetl.runtime import Classifier
from edgetl.runtime.metadata import read_tflite_info

runner = CliRunner()
ODD_NAMES = ("grün, hell", "rouge vif", "日本 猫")


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"needs root to mount a small tmpfs ({done.stderr.strip()})")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB file system: room for one 1.8 MB artefact, not for two."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "3m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only file system (root ignores chmod 0555; a read-only mount it cannot)."""
    disk = tmp_path / "ro"
    _mount_tmpfs(disk, "1m")
    (disk / "export").mkdir()
    (disk / "export" / "model_onnx.onnx").write_bytes(b"an older export")
    (disk / "export" / ".edgetl-run").write_text('{"kind": "export"}')  # an export edgetl made
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.fixture(scope="module")
def run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_run(tiny_run, tmp_path_factory, "outputs")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name)


def test_disk_full_during_export_keeps_whole_artefacts_only(run: Path, small_disk: Path) -> None:
    out = small_disk / "export"
    result = runner.invoke(app, ["export", str(run), "--formats", "tflite-fp32,onnx", "--no-golden", "--out", str(out)])
    assert result.exit_code == 1, result.output  # one format failed, the other was written
    # The two convert side by side (a worker process and this one): which one the disk fills on varies.
    [failed] = [r for r in json.loads((out / "export.json").read_text())["results"] if r["error"]]
    written = ({"tflite-fp32", "onnx"} - {failed["format"]}).pop()
    failed_path = out / f"model_{failed['format']}{'.onnx' if failed['format'] == 'onnx' else '.tflite'}"
    assert f"error: {failed['format']} failed: EdgetlError: Cannot write {failed_path}: No space left on device" in result.stderr
    assert not _leftovers(small_disk)
    suffix = ".onnx" if written == "onnx" else ".tflite"
    assert sorted(p.name for p in out.glob("model_*")) == [f"model_{written}.json", f"model_{written}{suffix}"]
    assert Classifier.from_file(out / f"model_{written}{suffix}").labels == ("blue", "green", "red")  # whole


def test_read_only_output_folder_during_export(run: Path, read_only_disk: Path) -> None:
    result = runner.invoke(app, ["export", str(run), "--formats", "onnx", "--no-golden", "--out", str(read_only_disk / "export")])
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: Cannot write the lock file {read_only_disk / '.export.edgetl-lock'}: Read-only "
                             f"file system. Received: {read_only_disk / 'export'}\n")
    assert (read_only_disk / "export" / "model_onnx.onnx").read_bytes() == b"an older export"


def test_read_only_output_folder_during_train(colour_photos: Path, read_only_disk: Path) -> None:
    out = read_only_disk / "runs" / "new"
    result = runner.invoke(app, ["train", str(colour_photos), "--out", str(out), "--strategy", "scratch",
                                 "--image-size", "32", "--epochs", "1", "-q"])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: Cannot create the output folder's parent: Read-only file system. Received: {out}\n"
    assert sorted(p.name for p in read_only_disk.iterdir()) == ["export"]


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class names with spaces, commas and non-Latin letters, trained and exported to TFLite fp32."""
    from edgetl.backbones import BackboneOptions
    from edgetl.train import TrainOptions, train

    root = tmp_path_factory.mktemp("odd")
    colours = dict(zip(ODD_NAMES, ((30, 180, 40), (200, 30, 30), (30, 40, 200))))
    write_solid_photos(root / "photos", colours, per_class=6, size=32)
    train(root / "photos", root / "run", backbone=BackboneOptions(image_size=32),
          options=TrainOptions(strategy="scratch", epochs=3, learning_rate=1e-2, cache_dir=root / "cache"), verbose=0)
    export(root / "run", ExportOptions(formats=("tflite-fp32",), golden=False))
    return root / "run"


def test_odd_class_names_survive_into_labels_metadata_and_predictions(odd_run: Path) -> None:
    assert (odd_run / "labels.txt").read_text(encoding="utf-8") == "".join(f"{n}\n" for n in sorted(ODD_NAMES))
    model = odd_run / "export" / "model_tflite-fp32.tflite"
    info = read_tflite_info(model, model.read_bytes())
    assert info.labels == tuple(sorted(ODD_NAMES))  # the standard TFLite metadata labels file
    assert info.metadata.labels == tuple(sorted(ODD_NAMES))  # the embedded edgetl.json
    photo = odd_run.parent / "photos" / "grün, hell" / "0.png"
    result = runner.invoke(app, ["predict", str(model), str(photo), "--json", "--top-k", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["top_k"][0]["label"] == "grün, hell"


def test_two_hundred_classes(tmp_path: Path) -> None:
    from edgetl.backbones import BackboneOptions
    from edgetl.train import TrainOptions, train

    rng = np.random.default_rng(0)
    colours = {f"class {i:03d}": tuple(int(v) for v in rng.integers(0, 256, 3)) for i in range(200)}
    write_solid_photos(tmp_path / "photos", colours, per_class=2, size=8)
    result = train(tmp_path / "photos", tmp_path / "run", backbone=BackboneOptions(image_size=32),
                   options=TrainOptions(strategy="scratch", epochs=1, batch_size=64, cache_dir=tmp_path / "cache"), verbose=0)
    assert (tmp_path / "run" / "labels.txt").read_text().splitlines() == sorted(colours)
    assert len(result.metrics["class_counts"]["train"]) == 200 and result.metrics["class_counts"]["val"]["class 199"] == 1
    model, meta = load_run(tmp_path / "run")
    assert model.outputs[0].shape[-1] == 200 and len(meta.labels) == 200


def test_verify_with_an_artefact_of_another_run_fails_naming_why(odd_run: Path, run: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(run, mixed)
    (mixed / "export").mkdir()
    shutil.copy(odd_run / "export" / "model_tflite-fp32.tflite", mixed / "export" / "model_tflite-fp32.tflite")
    refused = runner.invoke(app, ["verify", str(mixed), "--max-images", "3"])
    assert refused.exit_code == 2 and "nothing proves its artefacts come from this model.keras" in refused.stderr
    with pytest.warns(UserWarning, match="checked anyway"):
        result = runner.invoke(app, ["verify", str(mixed), "--max-images", "3", "--allow-unproven"])
    assert result.exit_code == 1, result.output
    assert [line for line in result.stderr.splitlines() if not line.startswith("warning:")] == [
        "FAIL model_tflite-fp32.tflite: labels ['grün, hell', 'rouge vif', '日本 猫'] differ from the run's ['blue', 'green', 'red']",
        "FAIL model_tflite-fp32.tflite: input size (32, 32) differs from the run's (64, 64)",
    ]
    assert json.loads((mixed / "export" / "verify.json").read_text())["passed"] is False


def test_run_whose_labels_do_not_match_the_model_is_refused(run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    meta = json.loads((broken / "metadata.json").read_text())
    meta["labels"].append("purple")
    (broken / "metadata.json").write_text(json.dumps(meta))
    (broken / "labels.txt").write_text("".join(f"{label}\n" for label in meta["labels"]))  # the copy agrees
    for command in ("export", "verify"):
        result = runner.invoke(app, [command, str(broken)])
        assert result.exit_code == 2, result.output
        assert f"model.keras has 3 outputs but labels.txt has 4 labels. Received: {broken}" in result.stderr
    assert not (broken / "export").exists()


# --- security: no code runs from a file, no path from a file is written to ------------------------


def test_saved_model_has_no_lambda_layers(run: Path) -> None:
    import zipfile

    with zipfile.ZipFile(run / "model.keras") as archive:
        config = json.loads(archive.read("config.json"))

    def classes(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            if "class_name" in node:
                yield node["class_name"]
            for value in node.values():
                yield from classes(value)
        elif isinstance(node, list):
            for value in node:
                yield from classes(value)

    found = set(classes(config))
    assert "Functional" in found and "Rescaling" in found
    assert not found & {"Lambda", "TFOpLambda", "function"}


def test_keras_file_with_a_lambda_layer_is_refused_not_run(run: Path, tmp_path: Path) -> None:
    import keras

    evil = tmp_path / "evil"
    shutil.copytree(run, evil)
    sentinel = tmp_path / "pwned"
    inputs = keras.Input((64, 64, 3))
    touch = eval(f"lambda x: x + 0.0 * float(open({str(sentinel)!r}, 'w').close() is None)")  # noqa: S307
    touched = keras.layers.Lambda(touch)(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(touched))
    keras.Model(inputs, outputs).save(evil / "model.keras")
    sentinel.unlink()
    # An attacker who swaps model.keras can rewrite its hash in metadata.json too: safe_mode is what stops the code.
    metadata = json.loads((evil / "metadata.json").read_text())
    metadata["model_keras_sha256"] = hashlib.sha256((evil / "model.keras").read_bytes()).hexdigest()
    (evil / "metadata.json").write_text(json.dumps(metadata))
    for command in ("export", "verify"):
        result = runner.invoke(app, [command, str(evil)])
        assert result.exit_code == 2, result.output
        assert "error: Cannot load" in result.stderr and "safe_mode" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not sentinel.exists()
    with pytest.raises(EdgetlError, match="Lambda"):
        load_run(evil)


def test_every_load_model_call_uses_safe_mode() -> None:
    import ast

    from conftest import REPO

    calls = []
    for source in (REPO / "edgetl").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "load_model":
                safe = {k.arg: k.value for k in node.keywords}.get("safe_mode")
                calls.append((source.name, isinstance(safe, ast.Constant) and safe.value is True))
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "load" and any(
                k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False) for k in node.keywords
            ):
                calls.append((source.name, False))
    assert calls and all(safe for _, safe in calls), calls


def test_path_like_labels_and_metadata_never_steer_writes(run: Path, tmp_path: Path) -> None:
    evil = tmp_path / "a" / "b" / "run"
    shutil.copytree(run, evil)
    labels = ["../../evil", "/tmp/edgetl-evil", "red\\..\\x"]
    meta = json.loads((evil / "metadata.json").read_text())
    meta |= {"labels": labels, "source_run": "../../../evil_run", "backbone": "../evil_backbone", "format": "../../x"}
    (evil / "metadata.json").write_text(json.dumps(meta))
    (evil / "labels.txt").write_text("\n".join(labels) + "\n")
    before = set(tmp_path.rglob("*"))
    result = runner.invoke(app, ["export", str(evil), "--formats", "tflite-fp32", "--no-golden"])
    assert result.exit_code == 0, result.output
    written = set(tmp_path.rglob("*")) - before
    assert written and all(p.is_relative_to(evil / "export") for p in written), sorted(written)
    assert not Path("/tmp/edgetl-evil").exists()
    clf = Classifier.from_file(evil / "export" / "model_tflite-fp32.tflite")
    assert clf.labels == tuple(labels)
