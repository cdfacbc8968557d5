"""The evaluator: run a model over a data set under a protocol and count what it got right.

`evaluate` works the protocol out first (`protocols.plan_protocol`), then loops over the
batches: every view of a batch (`Protocol.views`) is scored, the views' posteriors are
averaged (`metrics.combine_views`) and counted (`metrics.Tally`).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ..data import ArrayDataset, FolderDataset
from ..errors import ConfigError
from .dense import densify
from .metrics import Tally, combine_views
from .protocols import Protocol, plan_protocol


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 256,
    input_size: int | None = None,
    crops: int = 1,
    scales: Sequence[int] | None = None,
    dense: bool = False,
    flip: bool = False,
    device: Any = None,
    amp: bool = False,
    augment: Any = None,
    confusion: bool = False,
    workers: int = 2,
    train_augment: Any = None,
) -> dict[str, Any]:
    """Top-1/top-5 accuracy and error (percent), loss and optionally a confusion matrix.

    data: an ArrayDataset (uint8, preprocessed here with `augment`'s normalisation, or the
    data set's own statistics), a FolderDataset, or a DataLoader of (images, labels) batches
    (float batches are taken as already normalised). crops: 1 or 10. scales: test scales Q
    (default: `augment`'s test scale, else the input size; for 10 crops input*8/7, 256 for
    224). dense: VGG's dense evaluation (adds the dense view to any crops asked for when
    crops=10). flip: also average the mirrored view (single crop and dense).
    train_augment: the training augmentation; for images no larger than the input it
    defines the 10-crop views (`convzoo.evaluate.protocols`). `result["protocol"]`
    describes the views used.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    protocol = plan_protocol(model, data, input_size=input_size, crops=crops, scales=scales, dense=dense,
                             flip=flip, augment=augment, train_augment=train_augment)  # fmt: skip
    dev = torch.device(device) if device is not None else _model_device(model)
    model_dev = _model_device(model)
    if model_dev != dev:
        model.to(dev)
    was_training = model.training
    tally = Tally(confusion)
    views_per_image = 0
    try:
        dense_model = densify(model, protocol.input_size).eval() if dense else None
        nets = {False: model, True: dense_model}
        model.eval()
        with torch.no_grad():
            for xb, yb in _batches(data, protocol, batch_size, augment, workers):
                xb = xb.to(dev, non_blocking=True)
                yb = yb.to(dev, non_blocking=True).long()
                if xb.shape[0] == 0:
                    continue
                logit_views = [_logits(nets[d], v, amp) for d, v in protocol.views(xb)]
                views_per_image = len(logit_views)
                scores, loss_sum = combine_views(logit_views, yb)
                tally.add(scores, yb, loss_sum)
    finally:
        model.train(was_training)
        if model_dev != dev:
            model.to(model_dev)
    result = tally.result()
    result.update({
        "crops": crops,
        "scales": protocol.test_scales,
        "dense": dense,
        "flip": flip,
        "views": views_per_image,
        "input_size": protocol.input_size,
        "protocol": protocol.describe(),
    })  # fmt: skip
    if confusion:
        result["confusion"] = tally.matrix.tolist() if tally.matrix is not None else []
    return result


def _batches(data: Any, protocol: Protocol, batch_size: int, augment: Any,
             workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """(images, labels) batches of the data: array slices, a folder loader at the largest
    test scale, or the batches of a DataLoader as they come."""
    if isinstance(data, ArrayDataset):
        for i in range(0, len(data), batch_size):
            yield data.images[i : i + batch_size], data.labels[i : i + batch_size]
    elif isinstance(data, FolderDataset):
        from ..data import make_folder_loader

        qs = [q for q in protocol.scales if q is not None]
        qmax = max(qs) if qs else protocol.input_size
        mean = augment.mean if augment is not None else None
        std = augment.std if augment is not None else None
        loader = make_folder_loader(data, batch_size, train=False, input_size=qmax, workers=workers,
                                    resize=qmax, mean=mean, std=std)  # fmt: skip
        yield from loader
    else:
        yield from data  # a DataLoader or any iterable of (images, labels)


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _logits(model: nn.Module, x: torch.Tensor, amp: bool) -> torch.Tensor:
    ctx = torch.autocast(x.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    with ctx:
        out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.float()
