"""One interpreter per model, imported lazily: the only place that touches an inference engine.

.tflite runs on ai-edge-litert (preferred), tflite-runtime (old devices), or `tensorflow.lite`
only when TensorFlow is already imported by the caller; this module never imports TensorFlow
itself. .onnx runs on onnxruntime. Every backend exposes the same four members the classifier
needs: `input`, `output`, `run(tensor)` and `invoke()`.

Every interpreter opens from the model's bytes, read once by the caller, never from the path:
a file swapped on disk by a deploy cannot reach a runner that already holds the model.
Every backend is thread-safe: one TFLite interpreter object is not (concurrent
`set_tensor`/`invoke` raise "There is at least 1 reference to internal data" and can leave
another call's output in the tensor), so `set_tensor`/`invoke`/`get_tensor` run under one lock;
an ONNX Runtime session runs concurrent calls itself, so its feed is never shared state.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgetl.errors import EdgetlError

DELEGATES = ("edgetpu",)
EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_INSTALL = (
    "install the Edge TPU runtime (`sudo apt-get install libedgetpu1-std` from Coral's apt repo, "
    "https://coral.ai/software/#debian-packages) and pass --delegate edgetpu"
)


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor, as an interpreter or `edgetl inspect` sees it.

    Attributes:
        name: Tensor name in the graph.
        dtype: numpy dtype name ("float32", "uint8", "int8", ...).
        shape: An interpreter's concrete shape (dynamic dimensions reported as 1), or, in
            `edgetl inspect`, the file's shape signature (dynamic dimensions -1).
        scale: Quantization scale; 0.0 for float tensors.
        zero_point: Quantization zero point; 0 for float tensors.
        layout: "NHWC" or "NCHW" for image inputs, "NC" for class-score outputs.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: float = 0.0
    zero_point: int = 0
    layout: str = ""

    @property
    def quantized(self) -> bool:
        return self.dtype in ("uint8", "int8", "int16") and self.scale > 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point, "shape": list(self.shape)}


class Backend(Protocol):
    """What the classifier needs from an interpreter. Implementations are thread-safe."""

    name: str
    input: TensorInfo
    output: TensorInfo
    dynamic_batch: bool
    replicable: bool
    """Whether copies on the same file may run side by side to fill the cores (CPU TFLite: one
    invoke keeps to its threads; ONNX Runtime spreads a run itself; a device is one)."""
    metadata_props: dict[str, str]
    """Key/value metadata the interpreter reports (ONNX `metadata_props`; empty for TFLite)."""

    def prepare(self) -> None:
        """Allocate tensors and read `input`, `output` and `dynamic_batch`."""

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Feed one input tensor (resizing the input if its shape changed) and return the output."""

    def invoke(self) -> None:
        """Run the model on the tensor last fed, nothing else (the benchmark's baseline)."""


def max_threads() -> int:
    """The most interpreter threads edgetl asks for: 4 per core (LiteRT crashed at 50000, and
    onnxruntime hung at 100000)."""
    return 4 * (os.cpu_count() or 1)


def open_backend(path: Path, *, threads: int | None, delegate: str | None, model: bytes | None = None) -> Backend:
    """Open a model on the interpreter its path's suffix calls for.

    Args:
        path: The model file (its suffix picks the interpreter; messages name it).
        threads: Interpreter threads, or None for the interpreter's default.
        delegate: "edgetpu" or None.
        model: The file's bytes as the caller read them. Defaults to `None` (read `path` now).
    """
    if delegate is not None and delegate not in DELEGATES:
        raise EdgetlError(f"delegate must be one of {DELEGATES} or None. Received: delegate={delegate!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or not 1 <= threads <= max_threads()):
        raise EdgetlError(
            f"threads must be in [1, {max_threads()}], an integer (4 per CPU core here). Received: threads={threads!r}"
        )
    if path.suffix.lower() == ".onnx" and delegate is not None:
        raise EdgetlError(f"Delegates apply to .tflite models only. Received: delegate={delegate!r} for {path.name}")
    data = model if model is not None else path.read_bytes()
    if path.suffix.lower() == ".onnx":
        return OnnxBackend(path, data, threads)
    return TfliteBackend(path, data, threads, delegate)


def _tflite_module() -> tuple[Any, str]:
    """The first importable TFLite interpreter module: (module with Interpreter/load_delegate, name)."""
    try:
        from ai_edge_litert import interpreter

        return interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter

        return interpreter, "tflite-runtime"
    except ImportError:
        pass
    tf = sys.modules.get("tensorflow")
    if tf is not None:  # only reuse a TensorFlow the caller already paid for
        return _TfLiteShim(tf), "tensorflow.lite"
    raise EdgetlError(
        "Running .tflite models needs a TFLite interpreter and none is installed. "
        "Received: no ai_edge_litert, no tflite_runtime. Install one: pip install 'edgetl[runtime]'"
    )


_DISTRIBUTIONS = {
    "ai-edge-litert": ("ai-edge-litert",),
    "tflite-runtime": ("tflite-runtime",),
    "tensorflow.lite": ("tensorflow", "tensorflow-cpu"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
}


def interpreter_version(name: str) -> str:
    """`name` and its installed version, e.g. "ai-edge-litert 2.3.0" ("unknown" if not found)."""
    for distribution in _DISTRIBUTIONS.get(name, (name,)):
        try:
            return f"{name} {importlib.metadata.version(distribution)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return f"{name} unknown"


class _TfLiteShim:
    """`tensorflow.lite` laid out like the `ai_edge_litert.interpreter` module."""

    def __init__(self, tf: Any) -> None:
        self.Interpreter = tf.lite.Interpreter
        self.load_delegate = tf.lite.experimental.load_delegate


class TfliteBackend:
    """A TFLite interpreter with one image input and one score output. Thread-safe (one lock)."""

    def __init__(self, path: Path, model: bytes, threads: int | None, delegate: str | None) -> None:
        module, self.name = _tflite_module()
        delegates = [_load_edgetpu(module)] if delegate == "edgetpu" else None
        try:
            with _without_tflite_info():
                self._interpreter = module.Interpreter(
                    model_content=model, num_threads=threads, experimental_delegates=delegates
                )
        except ValueError as e:
            if "Didn't find op for builtin opcode" in str(e):
                raise EdgetlError(
                    f"This model uses an op version that {self.name} is too old to run ({_first_line(e)}). "
                    "Install ai-edge-litert (pip install 'edgetl[runtime]'), or export a format older "
                    f"interpreters run: tflite-fp32, tflite-fp16, tflite-int8. Received: {path}"
                ) from e
            raise EdgetlError(
                f"Not a valid TFLite model: corrupt, truncated or another format ({_first_line(e)}). Received: {path}"
            ) from e
        except RuntimeError as e:  # a delegate that rejects the graph
            raise EdgetlError(f"The interpreter cannot prepare this model: {_first_line(e)}. Received: {path}") from e
        self._path = path
        self._lock = threading.Lock()
        self.dynamic_batch = False
        self.replicable = delegate is None
        self.metadata_props: dict[str, str] = {}

    def prepare(self) -> None:
        """Allocate tensors and read the input/output details (after the caller's custom-op checks)."""
        try:
            with _without_tflite_info():
                self._interpreter.allocate_tensors()
        except RuntimeError as e:
            raise EdgetlError(
                f"The interpreter cannot prepare this model: {_first_line(e)}. Received: {self._path}"
            ) from e
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgetlError(
                "An image classifier has exactly one input and one output. "
                f"Received: {len(inputs)} inputs, {len(outputs)} outputs in {self._path}"
            )
        self._in, self._out = inputs[0]["index"], outputs[0]["index"]
        self.input, self.output = _tflite_info(inputs[0]), _tflite_info(outputs[0])
        signature = inputs[0].get("shape_signature")
        self.dynamic_batch = signature is not None and len(signature) > 0 and int(signature[0]) == -1
        self._shape = self.input.shape

    def run(self, tensor: np.ndarray) -> np.ndarray:
        with self._lock:  # an uncontended lock costs well under a microsecond; an invoke, milliseconds
            if tensor.shape != self._shape:
                self._resize(tensor.shape)
            self._interpreter.set_tensor(self._in, tensor)
            self._invoke()
            return self._interpreter.get_tensor(self._out)  # a copy: the next call cannot change it

    def invoke(self) -> None:
        with self._lock:
            self._invoke()

    def _invoke(self) -> None:
        try:
            self._interpreter.invoke()
        except RuntimeError as e:
            raise EdgetlError(f"The model failed at invoke: {_first_line(e)}. Received: {self._path}") from e

    def _resize(self, shape: tuple[int, ...]) -> None:
        try:
            self._interpreter.resize_tensor_input(self._in, list(shape))
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise EdgetlError(
                f"This model cannot take an input of shape {shape}: {_first_line(e)}. Received: {self._path}"
            ) from e
        self._shape = shape


_STDERR_LOCK = threading.Lock()


@contextmanager
def _without_tflite_info() -> Iterator[None]:
    """Drop TFLite's `INFO: ...` lines ("Created TensorFlow Lite XNNPACK delegate for CPU.").

    The C++ runtime writes them to file descriptor 2 with no switch to turn them off, and every
    command printed one. Other lines (warnings, errors) are passed on to stderr unchanged.
    """
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else -1
    except (OSError, ValueError):  # no real stderr (an embedded interpreter)
        fd = -1
    if fd < 0:
        yield
        return
    with _STDERR_LOCK, tempfile.TemporaryFile() as captured:  # threads opening models take turns
        sys.__stderr__.flush()
        saved = os.dup(fd)
        os.dup2(captured.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not line.startswith(b"INFO: ")]
            if kept:
                os.write(fd, b"".join(kept))


def _load_edgetpu(module: Any) -> Any:
    try:
        # Probe with ctypes first: the interpreters' Delegate.__del__ prints a traceback when the
        # library is missing (its constructor fails before setting `_library`).
        ctypes.CDLL(EDGETPU_LIBRARY)
        return module.load_delegate(EDGETPU_LIBRARY)
    except (ValueError, OSError, RuntimeError) as e:
        raise EdgetlError(
            f"The Edge TPU delegate could not be loaded. Received: {_first_line(e)}. Fix: {EDGETPU_INSTALL}"
        ) from e


def _tflite_info(detail: dict[str, Any]) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(
        name=str(detail["name"]),
        dtype=np.dtype(detail["dtype"]).name,
        shape=tuple(int(d) for d in detail["shape"]),
        scale=float(scale),
        zero_point=int(zero_point),
    )


_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
}


class OnnxBackend:
    """An onnxruntime CPU session with one image input and one score output.

    Thread-safe: ONNX Runtime runs concurrent `InferenceSession.run` calls itself, and each call
    passes its own feed.
    """

    name = "onnxruntime"
    replicable = False

    def __init__(self, path: Path, model: bytes, threads: int | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise EdgetlError(
                f"Running .onnx models needs onnxruntime. Received: {path.name}. "
                "Install it: pip install 'edgetl[onnx-runtime]'"
            ) from e
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except _ort_errors(ort) as e:
            raise EdgetlError(
                f"Not a valid ONNX model: corrupt, truncated or another format. Received: {path} ({_first_line(e)})"
            ) from e
        self._path = path
        self.metadata_props: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)

    def prepare(self) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgetlError(
                "An image classifier has exactly one input and one output. "
                f"Received: {len(inputs)} inputs, {len(outputs)} outputs in {self._path}"
            )
        self.input, self.output = _ort_info(inputs[0], self._path), _ort_info(outputs[0], self._path)
        self.dynamic_batch = bool(inputs[0].shape) and not isinstance(inputs[0].shape[0], int)
        self._last_feed: dict[str, np.ndarray] = {}
        self._ort = sys.modules["onnxruntime"]

    def run(self, tensor: np.ndarray) -> np.ndarray:
        feed = {self.input.name: tensor}
        self._last_feed = feed  # for `invoke` only; this call runs on its own `feed`
        return self._run(feed)[0]

    def invoke(self) -> None:
        self._run(self._last_feed)

    def _run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._session.run(None, feed)
        except _ort_errors(self._ort) as e:
            raise EdgetlError(f"The model failed at invoke: {_first_line(e)}. Received: {self._path}") from e


def _ort_info(node: Any, path: Path) -> TensorInfo:
    dtype = _ORT_TYPES.get(node.type)
    if dtype is None or dtype in ("uint8", "int8"):
        # ONNX keeps quantization inside the graph (QDQ); integer io has no scale the runner can read.
        raise EdgetlError(
            f"ONNX models must have float inputs and outputs for this runner. Received: {node.name} of type "
            f"{node.type} in {path.name}. Export with float io (edgetl's onnx and onnx-int8 formats do)"
        )
    shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in node.shape)
    return TensorInfo(name=node.name, dtype=dtype, shape=shape)


def _ort_errors(ort: Any) -> tuple[type[BaseException], ...]:
    """onnxruntime's own exception classes (they derive from Exception, not RuntimeError)."""
    state = ort.capi.onnxruntime_pybind11_state
    own = (v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))
    return (RuntimeError, ValueError, *own)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].rstrip(".") if text else type(error).__name__
