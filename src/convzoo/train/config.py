"""`TrainConfig`: every knob of a training run, with its default, in one place.

The CLI's flags are generated from these fields, with the help each field carries
(`knob(default, help)`; `convzoo train --help` shows it and the same defaults), and a
TOML recipe's keys are these field names. This module does not import
torch, so the CLI can build its parser without it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "plateau", "cosine", "onecycle", "constant")
AUGMENTS = ("none", "flip", "standard", "jitter")
AMP_MODES = ("none", "bf16", "fp16", "auto")
#: Largest square input side a run accepts (16x ImageNet's 256-pixel scale).
MAX_INPUT_SIZE = 4096
#: --threads may exceed the core count up to this many (small machines, containers).
MIN_THREAD_CAP = 8


def knob(default: Any, help: str) -> Any:
    """A `TrainConfig` field with its help, the one text `convzoo train --help` shows for
    its flag (`field.metadata["help"]`); a callable default is a factory (list, dict)."""
    if callable(default):
        return field(default_factory=default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """A training run. Units are stated where they matter; learning rates are per step.

    The defaults are a reasonable CIFAR-style SGD protocol (momentum 0.9, weight decay
    5e-4, cosine decay); the papers' own protocols are recipes in `convzoo/experiments/recipes/`. Each
    field's help is in its `metadata["help"]` (`field_help()`).
    """

    model: str = knob("", "registered model name (`convzoo models`) or a network in the compact notation, quoted "
                       "('6c5w1s0p 2w2s 16c5w1s0p 2w2s 400->120fc->84fc->10fc' with --input-size 32)")
    data: str = knob("", "data set: fashion-mnist, mnist, cifar10, cifar100 or folder:PATH")
    data_dir: str | None = knob(None, "folder holding the data set's files (searched before $CONVZOO_DATA and "
                                "/usr/share/datasets)")  # fmt: skip
    download: bool = knob(False, "download the data set with torchvision when it is found nowhere (needs the network)")
    model_kwargs: dict[str, Any] = knob(dict, "extra keyword arguments for the model's builder (config files only)")
    recipe: str | None = knob(None, "the shipped recipe this run started from (`convzoo train MODEL --data DATA` "
                              "starts from convzoo/weights/recipes/MODEL.toml when its data set is DATA); recorded, "
                              "not a flag")  # fmt: skip

    epochs: int = knob(10, "number of epochs")
    batch_size: int = knob(128, "global batch size (with torchrun each of the W processes takes batch_size / W)")
    optimizer: str = knob("sgd", "optimizer")
    lr: float = knob(0.05, "peak learning rate")
    momentum: float = knob(0.9, "SGD momentum")
    nesterov: bool = knob(False, "Nesterov momentum (DenseNet's protocol)")
    weight_decay: float = knob(5e-4, "weight decay (L2 for SGD, decoupled for AdamW)")
    no_decay_norm_bias: bool = knob(False, "no weight decay on normalisation weights and on all biases")
    betas: tuple[float, float] = knob((0.9, 0.999), "AdamW betas")

    schedule: str = knob("cosine", "learning-rate schedule: step (divide by 10 at milestones), plateau (divide by 10 "
                         "when test accuracy stops improving), cosine, onecycle, constant")  # fmt: skip
    milestones: list[int] = knob(list, "epochs at which the step schedule divides the lr (default: 50% and 75% of "
                                 "the epochs); space or comma separated")  # fmt: skip
    gamma: float = knob(0.1, "factor of the step and plateau schedules (the papers divide by 10)")
    patience: int = knob(2, "plateau: epochs without a better test top-1 before dividing the lr")
    warmup_epochs: float = knob(0.0, "linear warm-up from 0 over this many epochs (fractions allowed)")

    label_smoothing: float = knob(0.0, "label smoothing of the cross-entropy")
    clip_grad: float | None = knob(None, "clip the gradients' global L2 norm to this value")
    ema: float | None = knob(None, "keep and evaluate an exponential moving average of the weights with this decay "
                             "(the flag alone: 0.999)")  # fmt: skip
    aux_weight: float = knob(0.3, "weight of auxiliary classifier losses (GoogLeNet, section 5: 0.3)")

    amp: str = knob("none", "mixed precision: none, bf16 (CPU and GPU; the flag alone), fp16 (GPU only, with a "
                    "gradient scaler) or auto (bf16 where the hardware computes it natively: a GPU with bf16, a "
                    "CPU with AMX or AVX-512 BF16; none elsewhere, where bf16 is emulated and slower)")  # fmt: skip
    channels_last: bool = knob(False, "channels-last memory format for the model and the batches")
    compile: bool = knob(False, "torch.compile the model")
    input_size: int | None = knob(None, "square input side (default: the model's default input)")
    augment: str = knob("standard", "training augmentation: none, flip (horizontal flip only), standard (pad-crop "
                        "and flip), jitter (VGG scale jittering)")  # fmt: skip
    subset: int | None = knob(None, "use only the first N train and N test images (smoke runs)")
    max_steps: int | None = knob(None, "stop after this many optimizer steps (the schedule still spans the epochs)")

    out: str | None = knob(None, "run folder (with --name: its parent); default runs/NAME")
    name: str | None = knob(None, "run name (default MODEL-DATA)")
    overwrite: bool = knob(False, "replace a run folder that already holds a run")
    checkpoint_every: int = knob(0, "also checkpoint every this many steps (0: epoch ends only)")
    keep: int = knob(3, "number of step checkpoints kept (besides last.pt and best.pt)")
    resume: str | None = knob(None, "continue the run folder's newest checkpoint ('auto', the flag alone) or the "
                              "checkpoint PATH")  # fmt: skip
    log_every: int = knob(50, "steps per metrics window (a `step` line in metrics.jsonl)")
    eval_batch_size: int = knob(512, "batch size of the test evaluation")
    eval_flip: bool = knob(False, "test-time flip: evaluate each test image and its horizontal mirror, averaging "
                           "the two softmax outputs")  # fmt: skip

    seed: int = knob(0, "random seed (weights, data order, augmentation)")
    deterministic: bool = knob(False, "deterministic kernels (bit-identical reruns and resumes)")
    device: str = knob("auto", "auto (cuda when available), cpu, cuda or cuda:N")
    workers: int = knob(2, "DataLoader workers for folder:PATH data")
    verify_data: bool = knob(False, "decode every image of a folder:PATH data set once before training, in the "
                             "workers, and name the unreadable files (the array data sets are always checked whole "
                             "when loaded)")  # fmt: skip
    threads: int | None = knob(None, "CPU threads for torch (default: the cores idle at the start, over 0.1 s)")

    # -- derived ----------------------------------------------------------------------
    def run_dir(self) -> Path:
        """The run folder: OUT/NAME, OUT, or runs/NAME (NAME defaults to MODEL-DATA)."""
        name = self.name
        if self.out is not None:
            return Path(self.out) / name if name else Path(self.out)
        from .network import default_run_name

        default = f"{default_run_name(self.model)}-{self.data}".replace(":", "_").replace(os.sep, "_")
        return Path("runs") / (name or default)

    def validate(self) -> "TrainConfig":
        """Check values a user can get wrong; raise `ConfigError` naming the field."""
        if not self.model:
            raise ConfigError("no model given: name one (`convzoo models` lists them) or set `model` in the config file")
        if not self.data:
            raise ConfigError("no data set given: --data fashion-mnist, mnist, cifar10, cifar100 or folder:PATH")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("augment", self.augment, AUGMENTS)
        _choice("amp", self.amp, AMP_MODES)
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        _positive("eval_batch_size", self.eval_batch_size)
        _positive("log_every", self.log_every)
        _positive("keep", self.keep)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs a momentum > 0")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ConfigError(f"clip_grad must be > 0, got {self.clip_grad}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ConfigError(f"ema is a decay in (0, 1) such as 0.999, got {self.ema}")
        if self.aux_weight < 0:
            raise ConfigError(f"aux_weight must be >= 0, got {self.aux_weight}")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs}")
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0, got {self.patience}")
        if not 0 < self.gamma < 1:
            raise ConfigError(f"gamma must be in (0, 1), got {self.gamma}")
        for m in self.milestones:
            if not (isinstance(m, int) and 0 < m < self.epochs):
                raise ConfigError(f"milestones are epochs strictly between 0 and epochs={self.epochs}, got {m!r}")
        if list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"milestones must increase, got {self.milestones}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas are two numbers in [0, 1), got {self.betas}")
        for name in ("input_size", "subset", "max_steps", "threads"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value)
        if self.input_size is not None and self.input_size > MAX_INPUT_SIZE:
            raise ConfigError(
                f"input_size {self.input_size:,} is above {MAX_INPUT_SIZE:,} pixels a side (one such image would "
                f"need {3 * self.input_size**2 * 4 / 2**30:,.0f} GiB as float32); the papers use 224"
            )
        cores = os.cpu_count() or 1
        if self.threads is not None and self.threads > max(cores, MIN_THREAD_CAP):
            raise ConfigError(f"threads {self.threads} is more than this machine's {cores} CPU cores")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0 steps, got {self.checkpoint_every}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if not isinstance(self.model_kwargs, dict):
            raise ConfigError(f"model_kwargs must be a table of keyword arguments, got {self.model_kwargs!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of all fields (config.json, checkpoints)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> "TrainConfig":
        """Build from a dict of field values; an unknown key raises `ConfigError` naming it."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ConfigError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in {source}; "
                f"valid keys: {', '.join(names)}"
            )
        kwargs = dict(values)
        if "betas" in kwargs:
            kwargs["betas"] = tuple(kwargs["betas"])
        if "milestones" in kwargs:
            kwargs["milestones"] = list(kwargs["milestones"])
        cfg = cls(**kwargs)
        _check_types(cfg, source)
        return cfg

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> "TrainConfig":
        """Read a TOML recipe whose keys are field names (a `[train]` table also works)."""
        import tomllib

        p = Path(path)
        try:
            with p.open("rb") as fh:
                values = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {str(p)!r} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {str(p)!r} is not valid TOML: {err}") from None
        if set(values) == {"train"} and isinstance(values["train"], dict):
            values = values["train"]
        return cls.from_dict(values, source=str(p))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def field_help() -> dict[str, str]:
    """Each field's help text, in declaration order."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}


def field_names() -> list[str]:
    """The names of `TrainConfig`'s fields, in declaration order."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
}


def _check_types(cfg: TrainConfig, source: str) -> None:
    """TOML values of the wrong type (a string for an int...) get a clear message."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None:
            continue
        kind = str(f.type).replace(" ", "").split("|")[0]
        if kind in _TYPES:
            ok = isinstance(value, _TYPES[kind]) and not (kind in ("int", "float") and isinstance(value, bool))
            if not ok:
                raise ConfigError(f"{f.name} in {source} must be {kind}, got {value!r}")
            if kind == "float":
                setattr(cfg, f.name, float(value))
