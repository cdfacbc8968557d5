"""Loading torchvision checkpoints into convzoo models through a key-mapping converter."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .errors import CheckpointError


def load_torchvision_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a torchvision `state_dict` into the matching convzoo `model` (in place).

    The model's family renames torchvision's keys to its own
    (`ZooModel.convert_torchvision_state_dict`); every key and shape is then checked, so a
    state_dict of another architecture gets a `CheckpointError` saying what differs.
    Returns `model`.
    """
    convert = getattr(model, "convert_torchvision_state_dict", None)
    if convert is None:
        raise CheckpointError(f"{type(model).__name__} is not a convzoo model with a torchvision counterpart")
    converted = convert(dict(state_dict))
    check_state_dict(model, converted, origin="torchvision state_dict")
    model.load_state_dict(converted, strict=True)
    return model


def rename_modules(state_dict: Mapping[str, torch.Tensor], mapping: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Rename each key's module path (everything before the last dot) through `mapping`;
    modules not in `mapping` keep their names. `{"features.0": "stem.conv"}` turns
    `features.0.weight` into `stem.conv.weight`."""
    renamed = {}
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        renamed[f"{mapping.get(module, module)}.{leaf}"] = value
    return renamed


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str = "state_dict") -> None:
    """Raise `CheckpointError` listing missing keys, unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)} expected"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    name = getattr(model, "zoo_name", type(model).__name__)
    parts = [f"the {origin} does not fit {name}:"]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            shown = ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
            parts.append(f"  {label}: {shown}")
    raise CheckpointError("\n".join(parts))
