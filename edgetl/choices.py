"""The values the API's options accept, in one module light enough for the CLI on a device.

The CLI builds its choices (`--strategy`, `--device`, `--precision`, `--io-dtype`) from these
tuples and the API checks against them, so the two cannot drift apart; importing this module
loads none of the training or export stack.
"""

STRATEGIES = ("feature-extract", "fine-tune", "scratch", "linear", "full")
"""`TrainOptions.strategy`: the rows of `edgetl.train.options.STRATEGY_TABLE`, in this order."""
DEVICES = ("auto", "gpu", "cpu")
"""`TrainOptions.device`."""
PRECISIONS = ("float32", "mixed")
"""`TrainOptions.precision`."""
IO_DTYPES = ("uint8", "int8")
"""`ExportOptions.io_dtype`: the input/output type of the int8 TFLite model."""
