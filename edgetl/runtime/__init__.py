"""The on-device runner: numpy, Pillow and one interpreter (imported lazily), never TensorFlow.

    from edgetl.runtime import Classifier
    clf = Classifier.from_file("model_tflite-int8.tflite")
    clf.classify(["photo.jpg"], top_k=3)   # [[Prediction(index, label, score), ...]]

`python -m edgetl.runtime MODEL IMAGE...` does the same from a shell on a device that has only
`pip install 'edgetl[runtime]'`.
"""

from edgetl.runtime.backends import TensorInfo
from edgetl.runtime.classifier import Classifier, Prediction, load_runner

__all__ = ["Classifier", "Prediction", "TensorInfo", "load_runner"]
