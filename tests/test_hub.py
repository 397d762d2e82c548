"""A run trained on a TF-Hub backbone, end to end: export, verify and the device runtime, safe mode on.

The hub model is made here, offline: MobileNetV2-1.0 with its ImageNet weights from ../shared,
wrapped to take [0, 1] pixels as Hub image models do, saved as a SavedModel at 96 px (small, to
keep the test fast). It trains on real cats/dogs photos; the held-out photos are the set's own
test split, which training never reads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, shared_path
from typer.testing import CliRunner

from edgetl.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()
SIZE = 96


@pytest.fixture(scope="module")
def hub_saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hub-style feature-vector SavedModel: [0, 1] RGB in, 1280 pooled ImageNet features out."""
    pytest.importorskip("tensorflow_hub", reason="hub backbones need tensorflow-hub")
    import keras

    weights = shared_path("weights", "mobilenet_v2_1.0_224_imagenet_no_top.weights.h5")
    base = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False, weights=None, pooling="avg")
    base.load_weights(weights)
    inputs = keras.Input((SIZE, SIZE, 3))
    folder = tmp_path_factory.mktemp("hub") / "mobilenet_v2_feature_vector"
    keras.Model(inputs, base(keras.layers.Rescaling(2.0, offset=-1.0)(inputs))).export(str(folder), verbose=False)
    return folder


@pytest.fixture(scope="module")
def hub_run(hub_saved_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgetl.backbones import BackboneOptions
    from edgetl.train import TrainOptions, train

    photos = shared_path("data", "cats_vs_dogs", "train")
    out = tmp_path_factory.mktemp("hub_run") / "run"
    train(photos, out, backbone=BackboneOptions(name=f"hub:{hub_saved_model}", image_size=SIZE),
          options=TrainOptions(epochs=8, subset=0.4, cache_dir=out.parent / "cache"), verbose=0)
    return out


def test_hub_run_keeps_its_saved_model_with_a_hash(hub_run: Path, hub_saved_model: Path) -> None:
    from edgetl.hub_run import FOLDER, RECORD, folder_sha256

    record = json.loads((hub_run / RECORD).read_text())
    assert record["sha256"] == folder_sha256(hub_saved_model) == folder_sha256(hub_run / FOLDER)
    assert record["head_dropout"] == 0.2


def test_hub_run_exports_every_format_verifies_and_runs(hub_run: Path, hub_saved_model: Path, tmp_path: Path) -> None:
    """All six formats with one embedded metadata, gptq honest about rounding nothing, the Edge TPU
    pre-flight, verify on held-out photos (float artefacts 100% top-1), and the runtime alone."""
    from edgetl.backbones import PREPROCESS_NOTES
    from edgetl.export import ExportOptions, export
    from edgetl.verify import verify

    report = export(hub_run)
    assert report.ok, report.to_dict()
    document = json.loads((hub_run / "export" / "export.json").read_text())
    for fmt in ("tflite-int8", "onnx-int8"):  # the convolutions are inside the SavedModel: gptq rounds none
        assert document["quantization"][fmt] == {"recipe": "gptq", "trials": {}, "weights_rounded": False}
    assert report.edgetpu_preflight["fully_mappable"] and report.edgetpu_preflight["total_ops"] > 50
    sidecars = [json.loads(r.path.with_suffix(".json").read_text()) for r in report.results]
    assert {s["backbone"] for s in sidecars} == {f"hub:{hub_saved_model}"}
    assert {s["preprocessing"]["normalization"] for s in sidecars} == {PREPROCESS_NOTES["unit"]}

    held_out = shared_path("data", "cats_vs_dogs", "test")
    verdict = verify(hub_run, data=held_out, max_images=40)
    assert verdict.passed, verdict.to_dict()
    agreement = {r.format: r.top1_agreement for r in verdict.results}
    assert len(agreement) == 6
    assert agreement["tflite-fp32"] == agreement["tflite-fp16"] == agreement["onnx"] == 1.0

    minmax = export(hub_run, ExportOptions(formats=("tflite-int8",), quantization="minmax",
                                           output_dir=tmp_path / "minmax", golden=False))
    assert minmax.ok, minmax.to_dict()
    _runtime_only(hub_run / "export", tmp_path / "minmax" / "model_tflite-int8.tflite",
                  sorted((held_out / "cat").glob("*"))[:4] + sorted((held_out / "dog").glob("*"))[:4])


def _runtime_only(export_dir: Path, minmax_int8: Path, photos: list[Path]) -> None:
    """In a fresh interpreter that imports neither TensorFlow nor Keras: every artefact reads its
    [0, 1] preprocessing note from its own metadata and passes its golden vectors, and gptq's int8
    model (nothing rounded) scores exactly as minmax's does."""
    code = f"""
import json, sys
import numpy as np
from edgetl.runtime import load_runner
from edgetl.runtime.golden import check_golden
export = {str(export_dir)!r}
notes, golden = set(), []
for name in ("tflite-fp32", "tflite-dynamic", "tflite-fp16", "tflite-int8", "onnx", "onnx-int8"):
    path = f"{{export}}/model_{{name}}." + ("onnx" if name.startswith("onnx") else "tflite")
    notes.add(load_runner(path).spec.normalization)
    golden.append(check_golden(path, export + "/golden").passed)
photos = {[str(p) for p in photos]!r}
gptq = load_runner(export + "/model_tflite-int8.tflite").classify(photos, top_k=2)
minmax = load_runner({str(minmax_int8)!r}).classify(photos, top_k=2)
same = [[(p.label, p.score) for p in a] == [(p.label, p.score) for p in b] for a, b in zip(gptq, minmax)]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print(json.dumps({{"notes": sorted(notes), "golden": golden, "same": same, "heavy": heavy}}))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"notes": ["inside the model: x / 255"], "golden": [True] * 6, "same": [True] * 8, "heavy": []}


def test_tampered_or_missing_hub_saved_model_is_refused(hub_run: Path, tmp_path: Path) -> None:
    """One clear line, non-zero exit, nothing written: a changed file, a swapped-in foreign model,
    a missing copy, and a hub run without its record (Keras' safe mode then refuses model.keras)."""
    from edgetl.hub_run import FOLDER, RECORD

    def copy(name: str) -> Path:
        run = tmp_path / name
        shutil.copytree(hub_run, run, ignore=shutil.ignore_patterns("export", "checkpoints", "logs"))
        return run

    tampered = copy("tampered")
    with open(tampered / FOLDER / "saved_model.pb", "ab") as handle:
        handle.write(b"\0")
    foreign = copy("foreign")
    (foreign / FOLDER / "assets" / "extra.txt").write_text("not from training")
    missing = copy("missing")
    shutil.rmtree(missing / FOLDER)
    unrecorded = copy("unrecorded")
    (unrecorded / RECORD).unlink()
    cases = {tampered: "SHA-256 differs", foreign: "SHA-256 differs", missing: "no copy of its SavedModel",
             unrecorded: "never turns safe mode off"}
    for run, reason in cases.items():
        result = runner.invoke(app, ["export", str(run), "--formats", "tflite-fp32"])
        assert result.exit_code == 2, (run.name, result.output)
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1, (run.name, result.stderr)
        assert not (run / "export").exists()
    verified = runner.invoke(app, ["verify", str(tampered)])
    assert verified.exit_code != 0 and "SHA-256 differs" in verified.stderr


@pytest.mark.parametrize("strategy", ["fine-tune", "full"])
def test_hub_fine_tune_is_refused_with_the_reason(hub_saved_model: Path, tmp_path: Path, strategy: str) -> None:
    """No silent fallback: the SavedModel's layers cannot be unfrozen, so training them is refused."""
    photos = shared_path("data", "cats_vs_dogs", "train")
    result = runner.invoke(app, ["train", str(photos), "--out", str(tmp_path / "run"), "--backbone",
                                 f"hub:{hub_saved_model}", "--image-size", str(SIZE), "--strategy", strategy])
    assert result.exit_code == 2 and "frozen SavedModel and cannot be fine-tuned" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_rebuilt_hub_classifier_is_the_trained_one(hub_run: Path) -> None:
    """The rebuilt classifier is the trained one: its scores on the run's test photos give the
    test accuracy training reported."""
    from edgetl.export import load_run
    from edgetl.rundir import read_split
    from edgetl.runtime.image import load_pixels

    model, meta = load_run(hub_run)
    photos = read_split(hub_run, "test")
    pixels = np.stack([load_pixels(path, meta.preprocessing) for path, _ in photos]).astype(np.float32)
    truth = np.array([meta.labels.index(name) for _, name in photos])
    accuracy = float(np.mean(model.predict(pixels, verbose=0).argmax(1) == truth))
    assert accuracy == pytest.approx(json.loads((hub_run / "metrics.json").read_text())["test_accuracy"], abs=1e-4)
