"""torch.hub entry points: one per registered convzoo model.

    torch.hub.load("<owner>/convzoo", "resnet20", weights="fashion-mnist")
    torch.hub.load("path/to/convzoo", "lenet5", source="local")

Every keyword argument (`weights=`, `num_classes=`, `in_channels=`, family options) goes
straight to `convzoo.create_model`. `torch.hub.list(...)` lists the models. The package is
imported from this checkout's `src/` folder, so the hub copy needs no installation.
"""

dependencies = ["torch", "torchvision", "safetensors"]

import os as _os
import sys as _sys

_SRC = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "src")
if _os.path.isdir(_SRC) and _SRC not in _sys.path:
    _sys.path.insert(0, _SRC)

from convzoo.registry import create_model as _create_model  # noqa: E402
from convzoo.registry import list_models as _list_models  # noqa: E402
from convzoo.registry import model_info as _model_info  # noqa: E402


def _entry(name):
    def entry(**kwargs):
        return _create_model(name, **kwargs)

    info = _model_info(name)
    entry.__name__ = name
    entry.__doc__ = (
        f"{name}: {info.description} ({info.paper}). Default input {'x'.join(map(str, info.default_input))}, "
        f"{info.num_classes} classes. Keyword arguments go to convzoo.create_model "
        "(weights='fashion-mnist' where `convzoo weights` lists them, num_classes, in_channels, ...)."
    )
    return entry


for _name in _list_models():
    globals()[_name] = _entry(_name)
del _name
