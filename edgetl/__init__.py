"""edgetl: from a folder of labelled photos to a verified classifier on the edge.

The public API mirrors the CLI: `train`, `export`, `verify` and `load_runner`. Every stage
imports TensorFlow, Keras, ONNX and their kin inside the functions that need them, so
`import edgetl` stays light and works on a device that has only the runtime extra.
"""

__version__ = "0.1.0"

# Imported after __version__, which the stages read. The functions are bound after their
# submodules load, so `edgetl.train` is the function even though edgetl/train.py exists.
from edgetl.backbones import BackboneOptions  # noqa: E402
from edgetl.errors import EdgetlError  # noqa: E402
from edgetl.export import ExportOptions, export  # noqa: E402
from edgetl.runtime import Classifier, load_runner  # noqa: E402
from edgetl.spec import PreprocessingSpec  # noqa: E402
from edgetl.train import TrainOptions, train  # noqa: E402
from edgetl.verify import verify  # noqa: E402

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
