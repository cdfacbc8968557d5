"""The model registry: names, metadata and construction.

Each family module (`FAMILY_MODULES`) declares its table (`SPECS`, and the published
numbers in `PUBLISHED`) and registers every row with `convzoo.models.family.register_specs`,
which calls `register_model` here. Nothing is imported until the registry is first asked
for (importing a family imports torch); a family that fails to import is an error, not a
gap in the zoo.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .errors import UnknownModelError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: Family modules, imported on first use of the registry.
FAMILY_MODULES = (
    "convzoo.models.lenet",
    "convzoo.models.alexnet",
    "convzoo.models.vgg",
    "convzoo.models.googlenet",
    "convzoo.models.resnet",
    "convzoo.models.densenet",
    "convzoo.models.notation_zoo",
)


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered model.

    `params` and `macs` are the *published* numbers the model is tested against (None
    where nothing was published); `source` says where they come from. `default_input`
    is (C, H, W); `min_input` is the smallest square side the network accepts.
    """

    name: str
    family: str
    builder: Callable[..., "nn.Module"]
    paper: str
    default_input: tuple[int, int, int]
    min_input: int
    num_classes: int = 1000
    params: int | None = None
    macs: int | None = None
    source: str = ""
    description: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}
_loaded = False


def register_model(info: ModelInfo) -> ModelInfo:
    """Add `info` to the registry; a name may be registered once."""
    if info.name in _REGISTRY:
        raise ValueError(f"model {info.name!r} is registered twice")
    _REGISTRY[info.name] = info
    return info


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True  # before the imports: a family that asks the registry while loading must not recurse
    try:
        for mod in FAMILY_MODULES:
            importlib.import_module(mod)
    except BaseException:
        _loaded = False  # the next call fails the same way instead of answering with a partial zoo
        raise


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style `pattern`, sorted naturally."""
    _ensure_loaded()
    names = [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]
    return sorted(names, key=_natural_key)


def _natural_key(name: str) -> list[Any]:
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def model_info(name: str) -> ModelInfo:
    """The metadata of `name`; an unknown name raises `UnknownModelError` with suggestions."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `convzoo models` lists them"
        raise UnknownModelError(f"unknown model {name!r}{hint}") from None


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    weights: str | None = None,
    **kwargs: Any,
) -> "nn.Module":
    """Build the registered model `name`.

    `num_classes` and `in_channels` default to the model's own (1000 and 3 for the
    ImageNet networks); other keyword arguments go to the family's builder.
    `weights=None` gives freshly initialised weights; `weights="fashion-mnist"` (a tag
    `convzoo weights` lists) the shipped trained ones, in eval mode, with their metadata in
    `model.weights_meta`. Weights that do not exist, or a `num_classes` / `in_channels`
    they cannot serve, raise `WeightsError`.
    """
    info = model_info(name)
    meta = None
    if weights is not None:
        from .weights import check_request, weights_info

        meta = weights_info(name, weights)
        check_request(meta, num_classes, in_channels)
        num_classes, in_channels = meta["num_classes"], meta["in_channels"]
        kwargs = {**meta.get("model_kwargs", {}), **kwargs}
    args = dict(info.kwargs)
    args.update(kwargs)
    if num_classes is not None:
        args["num_classes"] = num_classes
    if in_channels is not None:
        args["in_channels"] = in_channels
    model = info.builder(**args)
    model.zoo_name = name
    if meta is not None:
        from .weights import load_weights

        model.weights_meta = load_weights(model, name, weights)
        model.eval()
    return model
