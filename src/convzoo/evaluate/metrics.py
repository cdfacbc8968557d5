"""Metrics: top-k hits, the confusion matrix, and the running tally an evaluation keeps.

Accuracies and errors are percentages (0-100); the loss is the mean negative log of the
(averaged) posterior of the true class, in nats.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """How many rows have the true label among their k highest scores, for each k.

    A k above the number of classes counts every row as correct.
    """
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices
    hit = top.eq(labels.to(top.device).view(-1, 1))
    return {int(k): int(hit[:, : min(int(k), maxk)].any(dim=1).sum()) for k in ks}


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 num_classes x num_classes counts; row = true class, column = predicted class."""
    k = int(num_classes)
    p = preds.reshape(-1).long()
    t = labels.reshape(-1).long().to(p.device)
    if p.numel() and (int(p.max()) >= k or int(t.max()) >= k or int(p.min()) < 0 or int(t.min()) < 0):
        raise ConfigError(f"class index out of range 0..{k - 1} in the confusion matrix")
    return torch.bincount(t * k + p, minlength=k * k).view(k, k)


def combine_views(logit_views: Sequence[torch.Tensor], labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(scores, summed loss) of a batch seen through one or more views.

    One view: its logits and their cross-entropy. Several: the class posteriors (softmax)
    averaged over the views (AlexNet's 10 crops, VGG's scales) and the negative log of the
    averaged posterior of the true class.
    """
    if len(logit_views) == 1:
        scores = logit_views[0]
        return scores, float(F.cross_entropy(scores, labels, reduction="sum"))
    probs = torch.stack([lv.softmax(dim=1) for lv in logit_views]).mean(dim=0)
    return probs, float(-probs.gather(1, labels[:, None]).clamp_min(1e-12).log().sum())


class Tally:
    """Top-1/top-5 hits, summed loss and (optionally) the confusion matrix over batches."""

    def __init__(self, confusion: bool = False) -> None:
        self.confusion = confusion
        self.count = 0
        self.correct1 = 0
        self.correct5 = 0
        self.loss_sum = 0.0
        self.matrix: torch.Tensor | None = None

    def add(self, scores: torch.Tensor, labels: torch.Tensor, loss_sum: float) -> None:
        """Count one batch: its scores (logits or posteriors), labels and summed loss."""
        hits = topk_correct(scores, labels, (1, 5))
        self.correct1 += hits[1]
        self.correct5 += hits[5]
        self.loss_sum += loss_sum
        self.count += int(labels.shape[0])
        if self.confusion:
            part = confusion_matrix(scores.argmax(dim=1), labels, scores.shape[1]).cpu()
            self.matrix = part if self.matrix is None else self.matrix + part

    def result(self) -> dict[str, Any]:
        """top1, top5, their errors (percent), the mean loss and the count; ConfigError when empty."""
        n = self.count
        if n == 0:
            raise ConfigError("no samples to evaluate")
        top1, top5 = 100.0 * self.correct1 / n, 100.0 * self.correct5 / n
        return {"top1": top1, "top5": top5, "top1_error": 100.0 - top1, "top5_error": 100.0 - top5,
                "loss": self.loss_sum / n, "count": n}  # fmt: skip
