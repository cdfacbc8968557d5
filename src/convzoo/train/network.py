"""The model a run trains: a registered zoo name (`resnet20`) or a network written in the
lecture's compact notation (`"6c5w1s0p 2w2s 16c5w1s0p 2w2s 400->120fc->84fc->10fc"`).

The trainer, its checkpoints and everything that reloads them (eval, viz, the explorer's
Inside view) go through `create`, so a notation run is rebuilt from its own text: the
checkpoint's `model_name` is the text and its `model_kwargs` are the input it was built for
(`in_channels`, `input_size`) and the classes it must end in (`num_classes`).

Importing this module does not import torch (the run folder's default name is needed by
`TrainConfig`, which the CLI builds before torch is loaded).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, NotationError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: A run folder's default name holds at most this many characters of the notation.
MAX_NAME = 60


def is_notation(model: str) -> bool:
    """True when `model` reads as notation (or tries to: text with a space or an arrow
    is notation, so its faults are reported with a caret rather than as an unknown model
    name). No registered name parses as notation (a test keeps it so), so this needs
    neither the registry nor torch."""
    if re.search(r"\s|->", model.strip()):
        return True
    from ..notation import parse

    try:
        parse(model)
    except (NotationError, ConfigError):
        return False
    return True


def check_model(model: str) -> None:
    """Raise the one clear error of a model that cannot be built: an unknown name (with
    suggestions) or malformed notation (with a caret under the fault)."""
    if is_notation(model):
        from ..notation import parse

        parse(model)
        return
    from ..registry import model_info

    model_info(model)


def default_run_name(model: str) -> str:
    """A file name for `model`: the name itself, or the notation's words joined by `_`
    (cut to MAX_NAME characters with a hash of the whole text when it is longer)."""
    if not is_notation(model):
        return model
    words = re.sub(r"[^A-Za-z0-9.]+", "_", model).strip("_.") or "net"
    if len(words) <= MAX_NAME:
        return words
    digest = hashlib.sha1(model.encode()).hexdigest()[:8]
    return f"{words[:MAX_NAME].rstrip('_.')}_{digest}"


def notation_kwargs(model: str, *, channels: int, num_classes: int, side: int | None = None,
                    data_side: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The `model_kwargs` of a notation network trained on `channels`-channel data whose
    images are `data_side` square: the input side is `side` (--input-size), else the
    text's `Input(CxHxW)` tag, else the data's own; the channels the tag's, else the data's."""
    from ..notation import parse

    spec = parse(model)
    if spec.input_hw is not None and spec.input_hw[0] != spec.input_hw[1]:
        raise ConfigError(f"the trainer trains square inputs; the network's Input tag says {spec.input_hw[0]}x{spec.input_hw[1]}")
    if side is None:
        side = spec.input_hw[0] if spec.input_hw is not None else None
    if side is None and data_side:
        side = int(data_side)
    if side is None:
        raise ConfigError("the size of the network's input is not known: give --input-size or an Input(CxHxW) tag")
    return {"num_classes": int(num_classes), "in_channels": int(spec.in_channels or channels), "input_size": int(side)}


def check_notation(model: str, **kwargs: Any) -> tuple[Any, int | None, tuple[int, int] | None]:
    """(spec, channels, (H, W)) of the notation network `model` built with `kwargs`
    (`in_channels`, `input_size`, `num_classes`), its shapes checked and its output
    matched to `num_classes`, without torch. Raises `NotationError` or `ConfigError`."""
    from ..notation import check, format_shape, parse

    unknown = set(kwargs) - {"num_classes", "in_channels", "input_size"}
    if unknown:
        raise TypeError(f"a network in the notation takes no option {', '.join(sorted(unknown))}")
    channels, side, classes = kwargs.get("in_channels"), kwargs.get("input_size"), kwargs.get("num_classes")
    size = None if side is None else (int(side), int(side))
    spec = parse(model)
    rows = check(spec, in_channels=channels, input_size=size, text=model)
    out = rows[-1].output_shape if rows else None
    if classes is not None and out != (classes,):
        shown = format_shape(out) if out else "nothing"
        raise ConfigError(
            f"the network's output is {shown} values, but the data has {classes} classes: "
            f"end it with a {classes}fc layer (e.g. '... {classes}fc')"
        )
    return spec, channels, size


def create(model: str, **kwargs: Any) -> "nn.Module":
    """The network `model` names or writes, freshly initialised.

    Zoo names take the registry's keyword arguments; notation takes `in_channels`,
    `input_size` (one side) and `num_classes`, the units its output must have.
    """
    if not is_notation(model):
        from ..registry import create_model

        return create_model(model, **kwargs)
    from ..notation import from_spec

    spec, channels, size = check_notation(model, **kwargs)
    return from_spec(spec, in_channels=channels, input_size=size)


__all__ = ["MAX_NAME", "check_model", "check_notation", "create", "default_run_name", "is_notation", "notation_kwargs"]
