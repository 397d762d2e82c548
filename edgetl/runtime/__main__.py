"""`python -m edgetl.runtime MODEL IMAGE...`: predict on a device that has only the runtime extra.

An IMAGE may be a folder: every photo below it is classified, in sorted order. A photo that
cannot be read is skipped with a `warning:` line naming it (exit 0, as training skips it);
`--strict` makes it an error (exit 2, nothing printed).

`python -m edgetl.runtime MODEL --selftest` checks this device against the golden vectors that
`edgetl export` wrote (a `golden/` folder beside the model): exit 0 pass, 1 fail.

Uses argparse and plain print (no typer/rich), mirrors `edgetl predict`: exit 0 on success,
2 with one `error:` line on stderr for bad input, a traceback only for bugs.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.runtime.backends import DELEGATES
from edgetl.runtime.classifier import Classifier, Prediction
from edgetl.runtime.golden import check_golden
from edgetl.runtime.image import expand_image_paths
from edgetl.runtime.predict import classify_files, predictions_json
from edgetl.spec import escaped
from edgetl.streams import guarded_stdout


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edgetl.runtime",
        description="Classify photos with a .tflite or .onnx model (labels and preprocessing read from the model).",
    )
    parser.add_argument("model", help="Model file (.tflite or .onnx).")
    parser.add_argument("images", nargs="*", help="Photos to classify, or folders: every photo below them, sorted.")
    parser.add_argument("--top-k", type=int, default=3, help="Classes to show per photo (default 3).")
    parser.add_argument("--labels", default=None, help="Labels file, one per line, overriding the model's labels.")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    parser.add_argument("--threads", type=int, default=None, help="Interpreter threads.")
    parser.add_argument("--delegate", choices=DELEGATES, default=None, help="Run on an accelerator (edgetpu).")
    parser.add_argument("--strict", action="store_true",
                        help="An unreadable photo is an error (exit 2) instead of being skipped with a warning.")
    parser.add_argument("--selftest", action="store_true", help="Check this device against the model's golden vectors.")
    parser.add_argument("--golden", type=Path, default=None,
                        help="Golden folder for --selftest (default: golden/ beside the model).")
    return parser


def _format_table(images: Sequence[str], results: list[list[Prediction]]) -> str:
    lines = []
    for image, predictions in zip(images, results, strict=True):
        lines.append(image)
        lines.extend(f"  {p.score:8.4f}  {p.index:>5}  {escaped(p.label)}" for p in predictions)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.images and not args.selftest:
        parser.error("give IMAGE... to classify, or --selftest")
    warnings.formatwarning = lambda message, *_args, **_kwargs: f"warning: {message}\n"
    if args.selftest:
        return _selftest(Path(args.model), args.golden or Path(args.model).parent / "golden")
    try:
        clf = Classifier.from_file(args.model, threads=args.threads, delegate=args.delegate, labels=args.labels)
        done = classify_files(clf, expand_image_paths(args.images), args.top_k, strict=args.strict)
    except EdgetlError as e:
        print(f"error: {escaped(str(e))}", file=sys.stderr)
        return 2
    for file, reason in done.skipped:
        print(f"warning: skipped {escaped(str(file))}: {escaped(reason)}", file=sys.stderr)
    if args.json:
        print(predictions_json(done.images, done.results))
    else:
        print(_format_table([str(image) for image in done.images], done.results))
    return 0


def _selftest(model: Path, golden: Path) -> int:
    try:
        report = check_golden(model, golden)
    except EdgetlError as e:
        print(f"error: {escaped(str(e))}", file=sys.stderr)
        return 2
    for check in report.checks:
        print(f"{'ok  ' if check.passed else 'FAIL'} {check.image}"
              + (f": {'; '.join(check.reasons)}" if check.reasons else ""))
    print(f"{'PASS' if report.passed else 'FAIL'} {model.name} against {report.golden} (rule: {report.rule})")
    if report.hint:
        print(f"note: {report.hint}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    with guarded_stdout("python -m edgetl.runtime"):
        code = main()
    sys.exit(code)
