"""Evaluation with the papers' protocols: top-k, 10-crop, multi-scale, VGG's dense evaluation.

One job per module:

- `metrics`: `topk_correct`, `confusion_matrix`, how the views of a batch are combined
  (class posteriors averaged) and the running `Tally`;
- `dense`: `densify`, the fully connected head as convolutions (VGG Sec. 3.2);
- `protocols`: `plan_protocol` works out, before any batch is read, the input size, the
  test scales and the views of every batch (single crop, 10 crops, multi-scale, the small
  images' training canvas, dense, flips) and returns a `Protocol`;
- `evaluator`: `evaluate`, the loop that scores those views and counts.

Accuracies and errors are percentages (0-100); the loss is the mean negative log of the
(averaged) posterior of the true class, in nats.
"""

from __future__ import annotations

from .dense import DenseModel, densify
from .evaluator import evaluate
from .metrics import Tally, combine_views, confusion_matrix, topk_correct
from .protocols import Protocol, plan_protocol, ten_crops

__all__ = [
    "DenseModel",
    "Protocol",
    "Tally",
    "combine_views",
    "confusion_matrix",
    "densify",
    "evaluate",
    "plan_protocol",
    "ten_crops",
    "topk_correct",
]
