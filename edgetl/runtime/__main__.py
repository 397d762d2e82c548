"""`python -m edgetl.runtime MODEL IMAGE...`: predict on a device that has only the runtime extra.

Uses argparse and plain print (no typer/rich), mirrors `edgetl predict`: exit 0 on success,
2 with one `error:` line on stderr for bad input, a traceback only for bugs.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence

from edgetl.errors import EdgetlError
from edgetl.runtime.backends import DELEGATES
from edgetl.runtime.classifier import Classifier, Prediction, prediction_records


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edgetl.runtime",
        description="Classify photos with a .tflite or .onnx model (labels and preprocessing read from the model).",
    )
    parser.add_argument("model", help="Model file (.tflite or .onnx).")
    parser.add_argument("images", nargs="+", help="Photos to classify.")
    parser.add_argument("--top-k", type=int, default=3, help="Classes to show per photo (default 3).")
    parser.add_argument("--labels", default=None, help="Labels file, one per line, overriding the model's labels.")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    parser.add_argument("--threads", type=int, default=None, help="Interpreter threads.")
    parser.add_argument("--delegate", choices=DELEGATES, default=None, help="Run on an accelerator (edgetpu).")
    return parser


def _format_table(images: Sequence[str], results: list[list[Prediction]]) -> str:
    lines = []
    for image, predictions in zip(images, results, strict=True):
        lines.append(image)
        lines.extend(f"  {p.score:8.4f}  {p.index:>5}  {p.label}" for p in predictions)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    warnings.formatwarning = lambda message, *_args, **_kwargs: f"warning: {message}\n"
    try:
        clf = Classifier.from_file(args.model, threads=args.threads, delegate=args.delegate, labels=args.labels)
        results = clf.classify(args.images, top_k=args.top_k)
    except EdgetlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(prediction_records(args.images, results), indent=2, ensure_ascii=False))
    else:
        print(_format_table(args.images, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
