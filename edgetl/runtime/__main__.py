"""`python -m edgetl.runtime MODEL IMAGE...`: predict on a device that has only the runtime extra.

An IMAGE may be a folder: every photo below it is classified, in sorted order.

`python -m edgetl.runtime MODEL --selftest` checks this device against the golden vectors that
`edgetl export` wrote (a `golden/` folder beside the model): exit 0 pass, 1 fail.

Uses argparse and plain print (no typer/rich), mirrors `edgetl predict`: exit 0 on success,
2 with one `error:` line on stderr for bad input, a traceback only for bugs.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.runtime.backends import DELEGATES
from edgetl.runtime.classifier import Classifier, Prediction, prediction_records
from edgetl.runtime.golden import check_golden
from edgetl.runtime.image import expand_image_paths
from edgetl.spec import escaped


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
        images = expand_image_paths(args.images)
        results = clf.classify(images, top_k=args.top_k)
    except EdgetlError as e:
        print(f"error: {escaped(str(e))}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(prediction_records(images, results), indent=2, ensure_ascii=False))
    else:
        print(_format_table([str(image) for image in images], results))
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
    sys.exit(main())
