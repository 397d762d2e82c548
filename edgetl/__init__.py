"""edgetl: from a folder of labelled photos to a verified classifier on the edge.

The public API mirrors the CLI: `train`, `export`, `verify` and `load_runner`. Nothing is
imported until it is used (PEP 562 `__getattr__`), so `import edgetl.runtime` on a device loads
only the runtime, and every stage imports TensorFlow, Keras, ONNX and their kin inside the
functions that need them.

`edgetl.train`, `edgetl.export` and `edgetl.verify` are the stage modules, and calling one runs
the function of the same name (`edgetl.export(run_dir)` is `edgetl.export.export(run_dir)`);
see `edgetl._callable` for why.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgetl._version import __version__

if TYPE_CHECKING:
    from edgetl import export, train, verify
    from edgetl.backbones import BackboneOptions
    from edgetl.errors import EdgetlError
    from edgetl.export import ExportOptions
    from edgetl.runtime import Classifier, load_runner
    from edgetl.spec import PreprocessingSpec
    from edgetl.train import TrainOptions

# Public name -> the module that defines it (the stage modules are their own entry).
_LAZY = {
    "BackboneOptions": "edgetl.backbones",
    "Classifier": "edgetl.runtime",
    "EdgetlError": "edgetl.errors",
    "ExportOptions": "edgetl.export",
    "PreprocessingSpec": "edgetl.spec",
    "TrainOptions": "edgetl.train",
    "export": "edgetl.export",
    "load_runner": "edgetl.runtime",
    "train": "edgetl.train",
    "verify": "edgetl.verify",
}

__all__ = [
    "BackboneOptions",
    "Classifier",
    "EdgetlError",
    "ExportOptions",
    "PreprocessingSpec",
    "TrainOptions",
    "__version__",
    "export",
    "load_runner",
    "train",
    "verify",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'edgetl' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    # Importing a stage module binds it here itself; the other names are bound once, like a plain import.
    value = module if module_name == f"edgetl.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
