"""Training: `TrainConfig`, `train(config) -> run folder`, `load_checkpoint(path)`.

Lazy like the package root: `from convzoo.train import TrainConfig` does not import torch
(the CLI builds its flags from the config without it).
"""

from __future__ import annotations

from typing import Any

from .config import TrainConfig

_LAZY = {
    "train": ("convzoo.train.loop", "train"),
    "NonFiniteLossError": ("convzoo.errors", "NonFiniteLossError"),
    "load_checkpoint": ("convzoo.train.checkpoint", "load_checkpoint"),
    "read_checkpoint": ("convzoo.train.checkpoint", "read_checkpoint"),
}

__all__ = ["TrainConfig", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'convzoo.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
