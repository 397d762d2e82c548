"""--quantization: recipes, and auto ranking them on the validation split, recorded where users look."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _export_shared import copy_run

from edgetl.errors import EdgetlError
from edgetl.export import ExportOptions, export
from edgetl.export.recipes import RECIPES, candidates, pick


def test_auto_tries_every_recipe_on_validation_and_records_the_pick(tiny_run: Path,
                                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    run = copy_run(tiny_run, tmp_path_factory, "auto")
    assert json.loads((run / "splits.json").read_text())["val"], "the tiny run needs a validation split"
    report = export(run, ExportOptions(formats=("onnx-int8", "tflite-int8"), quantization="auto", golden=False))
    assert report.ok, report.failures
    onnx = report.quantization["onnx-int8"]
    assert set(onnx["trials"]) == set(candidates("auto")) and onnx["recipe"] == min(onnx["trials"], key=onnx["trials"].get)
    tflite = report.quantization["tflite-int8"]  # its converter calibrates activations one way only
    assert set(tflite["trials"]) == {"gptq", "minmax"} and tflite["recipe"] == min(tflite["trials"], key=tflite["trials"].get)
    recorded = json.loads((run / "export" / "export.json").read_text())["quantization"]
    assert recorded == report.quantization
    sidecar = json.loads((run / "export" / "model_onnx-int8.json").read_text())
    assert sidecar["extra"]["quantization_recipe"] == onnx["recipe"]


def test_pick_keeps_the_fewest_disagreements_and_honours_the_budget() -> None:
    counts = {"gptq": 4, "minmax": 5, "percentile": 2, "entropy": 3}
    built: list[str] = []

    def build(name: str) -> str:
        built.append(name)
        return f"model-{name}"

    assert pick("auto", build, lambda m: counts[m.removeprefix("model-")]) == ("percentile", "model-percentile", counts)
    built.clear()
    assert pick("auto", build, lambda m: counts[m.removeprefix("model-")], budget_s=-1.0)[0] == "gptq"
    assert built == ["gptq"]  # over budget: no second candidate starts
    assert pick("auto", build, lambda m: None) == ("gptq", "model-gptq", {})  # no validation split
    assert candidates("default") == ("gptq",) and candidates("entropy") == ("entropy",)
    assert candidates("auto") == ("gptq", "minmax", "percentile", "entropy")  # one rounded copy: the default's
    assert candidates("gptq-bc") == ("gptq-bc",) and set(RECIPES) > set(candidates("auto"))
    tflite = ("gptq", "minmax")
    assert candidates("entropy", tflite) == ("minmax",) and candidates("auto", tflite) == tflite


def test_unknown_recipe_is_refused() -> None:
    with pytest.raises(EdgetlError, match="quantization must be one of"):
        ExportOptions(quantization="kl")
