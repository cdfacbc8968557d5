"""convzoo: the classic deep convolutional networks, exact, measured, trained fast and understood.

The public face is lazy: importing `convzoo` does not import torch (the CLI stays instant);
the first use of a name below imports what it needs.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "list_models": ("convzoo.registry", "list_models"),
    "create_model": ("convzoo.registry", "create_model"),
    "model_info": ("convzoo.registry", "model_info"),
    "list_weights": ("convzoo.weights", "list_weights"),
    "register_model": ("convzoo.registry", "register_model"),
    "from_spec": ("convzoo.notation", "from_spec"),
    "to_spec": ("convzoo.notation", "to_spec"),
    "analyze": ("convzoo.analysis", "analyze"),
    "load_torchvision_weights": ("convzoo.interop", "load_torchvision_weights"),
    "ConvzooError": ("convzoo.errors", "ConvzooError"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'convzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
