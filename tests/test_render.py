"""Output written to a log or a pipe: tables at full width, no escape codes, `==>` progress lines."""

from __future__ import annotations

import logging

from rich.table import Table

from edgetl.render import LOG_WIDTH, keras_verbosity, make_console, show_progress


def test_a_table_in_a_log_is_never_cut(capsys) -> None:
    console = make_console()  # pytest's captured stdout is not a terminal
    assert console.width == LOG_WIDTH
    table = Table(title="Parity")
    for column in ("format", "accuracy", "agreement", "file"):
        table.add_column(column)
    table.add_row("tflite-int8", "97.0%", "99.0%", "a/very/long/path/" * 12 + "model_tflite-int8.tflite")
    console.print(table)
    out = capsys.readouterr().out
    assert "…" not in out and "accuracy" in out and "model_tflite-int8.tflite" in out and "\x1b" not in out
    assert keras_verbosity(quiet=False) == 2 and keras_verbosity(quiet=True) == 0


def test_library_progress_becomes_one_line_each(capsys) -> None:
    show_progress(make_console())
    logging.getLogger("edgetl.export").info("%s: %s [bold]", "tflite-fp32", "model_tflite-fp32.tflite")
    logging.getLogger("edgetl.train").debug("not shown")
    assert capsys.readouterr().out == "==> tflite-fp32: model_tflite-fp32.tflite [bold]\n"


def test_train_help_groups_its_options_and_offers_the_apis_choices() -> None:
    from typer.testing import CliRunner

    from edgetl.choices import STRATEGIES
    from edgetl.cli import Strategy, app

    assert tuple(member.value for member in Strategy) == STRATEGIES
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for panel in ("Model", "Training", "Data", "Hardware", "Output"):
        assert f"─ {panel} " in result.output, panel


def test_the_edgetpu_preflight_names_the_first_op_left_to_the_cpu() -> None:
    from edgetl.render import _where_mapping_stops

    assert _where_mapping_stops({"fully_mappable": True}) == "all ops map"
    stopped = {"fully_mappable": False, "first_unmappable": [3, "MEAN"]}
    assert _where_mapping_stops(stopped, "; the rest runs on the CPU") == "mapping stops at op 3 (MEAN); the rest runs on the CPU"
