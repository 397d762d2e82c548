"""`TrainOptions`: how to train, checked in full when built; and `TrainResult`, what came out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgetl.choices import DEVICES, PRECISIONS, STRATEGIES
from edgetl.errors import EdgetlError
from edgetl.safety import check_number

if TYPE_CHECKING:
    from edgetl.backbones import BackboneOptions


DEFAULT_EPOCHS = 10
SCRATCH_EPOCHS = 40
"""A CNN from random weights needs many more epochs than a head on pretrained features (the
seeds' custom CNN reached 76% on cats/dogs after 50); 40 with early stopping is a fair budget."""


@dataclass(frozen=True, kw_only=True)
class Strategy:
    """One training strategy's facts; its training code is `edgetl.train.strategies.FITS[name]`.

    Kept here, apart from that code, because `TrainOptions` resolves its defaults from this table
    while the training code takes a `TrainOptions`: one module for both made an import circle.
    Frozen: safe to share between threads.

    Attributes:
        pretrained: True when it starts from the pretrained backbone; False for the small CNN
            from random weights (which takes [0, 1] pixels and 128 px by default).
        default_epochs: Epochs when `TrainOptions.epochs` is None.
        augments: Whether augmentation is on when `TrainOptions.augment` is None.
        fine_tunes: True when a second stage unfreezes backbone layers (a hub backbone cannot).
    """

    pretrained: bool = True
    default_epochs: int = DEFAULT_EPOCHS
    augments: bool
    fine_tunes: bool = False


STRATEGY_TABLE: dict[str, Strategy] = {  # one row per name in edgetl.choices.STRATEGIES, in that order
    "feature-extract": Strategy(augments=False),
    "fine-tune": Strategy(augments=True, fine_tunes=True),
    "scratch": Strategy(pretrained=False, default_epochs=SCRATCH_EPOCHS, augments=True),
    "linear": Strategy(augments=False),
    "full": Strategy(augments=True),
}


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """How to train.

    Attributes:
        strategy: One of `feature-extract`, `fine-tune`, `scratch`, `linear`, `full`. Defaults
            to `feature-extract`.
        epochs: Epochs for the head (or the whole network for `scratch` and `full`). `None`
            means 10, or `SCRATCH_EPOCHS` (40) for `scratch`, which starts from random weights.
        fine_tune_epochs: Epochs of the fine-tuning stage; `None` uses `epochs`.
        fine_tune_layers: How many of the backbone's last layers with weights (batch-norm layers
            excepted, they stay frozen) are trained in the fine-tuning stage. Defaults to `10`.
        batch_size: Images per step. `None` means 32 on a CPU, and 128 on a GPU with both
            learning rates scaled by sqrt(128/32) (see `edgetl.train.inputs.default_batch_size`).
        learning_rate: Learning rate of the head (and of `scratch`). Defaults to `1e-3`.
        fine_tune_learning_rate: The low learning rate of the fine-tuning stage. Defaults to `1e-4`.
        dropout: Dropout before the new softmax layer. Defaults to `0.2`.
        augment: Random flip, rotation, zoom and contrast on the training photos. `None` means on
            for `fine-tune`, `scratch` and `full`, off for `feature-extract` and `linear` (which then
            train on cached features).
        val_split: Share of each class held out for validation. Defaults to `0.15`.
        test_split: Share of each class held out for the final test. Defaults to `0.15`.
        subset: Share of the photos to use at all, for quick tries. Defaults to `1.0`.
        patience: Epochs without validation improvement before early stopping. Defaults to `5`.
        seed: Seed of the splits, the initialization and the augmentation. Defaults to `0`.
        strict: Make unreadable photos an error instead of a skipped-with-warning. Defaults to
            `False`.
        device: `auto` (a GPU when the Keras backend sees one), `gpu` or `cpu`. Defaults to `auto`.
        precision: `float32` or `mixed` (bfloat16 on JAX, float16 on TensorFlow; weights and
            the saved model stay float32). Defaults to `float32`.
        data_parallel: Split each batch across all devices of the chosen kind (Keras'
            distribution API, JAX backend). `None` means on when the JAX backend sees more
            than one GPU.
        cache_dir: Where decoded-and-resized photos are cached; `None` uses
            `$EDGETL_CACHE_DIR` or `~/.cache/edgetl`.
    """

    strategy: str = "feature-extract"
    epochs: int | None = None
    fine_tune_epochs: int | None = None
    fine_tune_layers: int = 10
    batch_size: int | None = None
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-4
    dropout: float = 0.2
    augment: bool | None = None
    val_split: float = 0.15
    test_split: float = 0.15
    subset: float = 1.0
    patience: int = 5
    seed: int = 0
    strict: bool = False
    device: str = "auto"
    precision: str = "float32"
    data_parallel: bool | None = None
    cache_dir: str | Path | None = None

    def __post_init__(self) -> None:
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("device", self.device, DEVICES)
        _check_choice("precision", self.precision, PRECISIONS)
        for name in ("epochs", "fine_tune_epochs", "patience"):
            check_number(name, getattr(self, name), 1, 100_000, integer=True, allow_none=name != "patience")
        check_number("fine_tune_layers", self.fine_tune_layers, 1, 100_000, integer=True)
        check_number("batch_size", self.batch_size, 1, 65_536, integer=True, allow_none=True)
        check_number("seed", self.seed, 0, 2**32 - 1, integer=True)
        for name in ("learning_rate", "fine_tune_learning_rate"):
            check_number(name, getattr(self, name), 1e-12, 10.0)
        check_number("dropout", self.dropout, 0.0, 0.99)
        check_number("val_split", self.val_split, 0.0, 0.9)
        check_number("test_split", self.test_split, 0.0, 0.9)
        check_number("subset", self.subset, 1e-6, 1.0)

    @property
    def strategy_spec(self) -> Strategy:
        """The row of `STRATEGY_TABLE` for `strategy`."""
        return STRATEGY_TABLE[self.strategy]

    def backbone_name(self, backbone: BackboneOptions) -> str:
        """The name a run records for its network: the backbone's, or `scratch_cnn`."""
        return backbone.name if self.strategy_spec.pretrained else "scratch_cnn"

    @property
    def resolved_epochs(self) -> int:
        """`epochs`, or the strategy's default when it is None."""
        return self.epochs if self.epochs is not None else self.strategy_spec.default_epochs

    @property
    def uses_augmentation(self) -> bool:
        return self.strategy_spec.augments if self.augment is None else self.augment


@dataclass(frozen=True)
class TrainResult:
    """What `train` produced.

    Attributes:
        run_dir: The finished RUN_DIR.
        metrics: The content of `metrics.json`.
    """

    run_dir: Path
    metrics: dict[str, Any] = field(repr=False)

    @property
    def model_path(self) -> Path:
        return self.run_dir / "model.keras"


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise EdgetlError(f"{name} must be one of {', '.join(choices)}. Received: {name}={value!r}")
