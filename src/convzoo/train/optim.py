"""Optimizers: SGD (momentum, Nesterov, weight decay) and AdamW.

`no_decay_norm_bias` puts normalisation weights and every bias in a group without weight
decay (the usual practice since Goyal et al. 2017, "Accurate, Large Minibatch SGD",
section 5.1: decaying BN's scale and shift only fights the normalisation). The papers of
the classic networks decay every weight, which stays the default.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm, nn.modules.instancenorm._InstanceNorm)


def parameter_groups(model: nn.Module, weight_decay: float, no_decay_norm_bias: bool) -> list[dict[str, Any]]:
    """One group (all parameters, `weight_decay`), or two: decayed and exempt (norms, biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not no_decay_norm_bias or weight_decay == 0:
        return [{"params": params, "weight_decay": weight_decay}]
    exempt: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if isinstance(module, _NORMS) or name.endswith("bias") or p.ndim <= 1:
                exempt.add(id(p))
    decay = [p for p in params if id(p) not in exempt]
    no_decay = [p for p in params if id(p) in exempt]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(
    model: nn.Module,
    name: str = "sgd",
    *,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    no_decay_norm_bias: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """The optimizer `name` ("sgd" or "adamw") over `model`'s trainable parameters.

    Weight decay is L2 added to the gradient for SGD (as in the papers) and decoupled for
    AdamW (Loshchilov and Hutter 2019).
    """
    groups = parameter_groups(model, weight_decay, no_decay_norm_bias)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    raise ConfigError(f"optimizer must be sgd or adamw, got {name!r}")
