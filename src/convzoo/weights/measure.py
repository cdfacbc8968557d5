"""Measure shipped weights on their test set: what `weights/make.py` records and the tests
reproduce. Apart from the package's `__init__` so that loading weights (which the registry
does) never imports the evaluator, which imports the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def evaluate_weights(model: "nn.Module", meta: dict[str, Any], *, data_dir: str | None = None,
                     batch_size: int = 500) -> dict[str, Any]:  # fmt: skip
    """Test-set top-1/top-5 of `model` as the metadata's data set and test transform define it.

    Deterministic: fp32 on the CPU, fixed batches, no augmentation. `weights/make.py` records
    what this returns; the tests check the shipped files reproduce it.
    """
    import torch

    from .. import data as zdata
    from ..evaluate import evaluate

    test = zdata.load_dataset(meta["dataset"], "test", data_dir)
    size = int(meta["input_size"][-1])
    augment = zdata.make_augment(meta["dataset"], size, recipe=meta["test_transform"].get("recipe", "none"), train=False)
    model = model.float().to("cpu").eval()
    with torch.no_grad():
        return evaluate(model, test, batch_size=batch_size, input_size=size, augment=augment, device="cpu")
