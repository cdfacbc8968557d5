"""One optimizer step's parts, as `loop.train_epoch` calls them: the loss of a batch
(`compute_loss`, GoogLeNet's auxiliary classifiers included), the update (`apply_gradients`:
backward, the fp16 scaler, gradient clipping, the optimizer, the EMA) and the running sums
(`add_batch`: loss and correct count kept on the device, no per-step synchronisation).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def compute_loss(
    output: Any, target: torch.Tensor, criterion: nn.Module, aux_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, main logits). A tuple output is (logits, aux1, aux2, ...): GoogLeNet's
    auxiliary classifiers add `aux_weight` times their losses (paper section 5: 0.3)."""
    if isinstance(output, (tuple, list)):
        logits, *aux = output
        loss = criterion(logits, target)
        for a in aux:
            loss = loss + aux_weight * criterion(a, target)
        return loss, logits
    return criterion(output, target), output


def apply_gradients(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer, *, scaler: Any,
                    clip_grad: float | None, ema: Any) -> None:  # fmt: skip
    """Backward from `loss` and one optimizer step (through the fp16 scaler when there is
    one, with the gradients' global norm clipped to `clip_grad` when set), then the EMA."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if clip_grad:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
    if ema is not None:
        ema.update(model)


@torch.no_grad()
def add_batch(sums: Any, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> int:
    """Add a batch's summed loss and correct count to the window's and the epoch's running
    sums (`metrics.RunningSums`, on the device); return the batch's size."""
    n = target.shape[0]
    batch_stats = torch.stack([loss.detach().double() * n, (logits.argmax(1) == target).sum().double()])
    sums.win += batch_stats
    sums.ep += batch_stats
    sums.counts[0] += n
    sums.counts[1] += n
    return n
