"""Learning-rate schedules, as a function of the optimizer step.

- step: the papers' schedule, lr divided by 10 at milestone epochs (ResNet's CIFAR runs at
  32k/48k iterations, DenseNet's at 50% and 75% of training).
- plateau: divided by 10 when the test accuracy stops improving (AlexNet section 5, VGG
  section 3.1; "validation" there, the test split here).
- cosine: half a cosine from lr to 0 over the run (Loshchilov and Hutter, SGDR, 2017).
- onecycle: Smith's one-cycle (2018): up from lr/25 to lr over the first 30% of the steps,
  then a cosine down to lr/25e4 (torch's OneCycleLR defaults; the momentum is not cycled).
- constant.
Any of them can start with a linear warm-up from 0 (Goyal et al. 2017, section 2.2).

The schedule's state is small (a plateau's best and counter); `state_dict()` stores it in
checkpoints so a resumed run follows the same curve.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError


class Schedule:
    """Learning rate at each step: `lr(step)`; `observe(test_top1)` at each epoch end."""

    def __init__(
        self,
        kind: str,
        base_lr: float,
        *,
        steps_per_epoch: int,
        epochs: int,
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        patience: int = 2,
        warmup_epochs: float = 0.0,
    ) -> None:
        if kind not in ("step", "plateau", "cosine", "onecycle", "constant"):
            raise ConfigError(f"schedule must be step, plateau, cosine, onecycle or constant; got {kind!r}")
        if steps_per_epoch <= 0:
            raise ConfigError("an epoch must have at least one step (is the data set smaller than one batch?)")
        self.kind = kind
        self.base_lr = float(base_lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.total_steps = self.steps_per_epoch * self.epochs
        # DenseNet's default (section 4.2): divide at 50% and 75% of the epochs.
        self.milestones = list(milestones) if milestones else [max(1, epochs // 2), max(1, (3 * epochs) // 4)]
        self.gamma = float(gamma)
        self.patience = int(patience)
        self.warmup_steps = int(round(warmup_epochs * steps_per_epoch))
        # plateau state
        self.best: float | None = None
        self.bad_epochs = 0
        self.factor = 1.0

    def lr(self, step: int) -> float:
        """The learning rate for the optimizer step numbered `step` (0-based)."""
        lr = self.base_lr * self._shape(step)
        if self.warmup_steps and step < self.warmup_steps:
            lr *= (step + 1) / self.warmup_steps
        return lr

    def _shape(self, step: int) -> float:
        if self.kind == "constant":
            return 1.0
        if self.kind == "plateau":
            return self.factor
        if self.kind == "step":
            epoch = step // self.steps_per_epoch
            return self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        t = min(max(step, 0), self.total_steps) / max(1, self.total_steps)
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        # one-cycle: warm from 1/25 to 1 over 30%, cosine down to 1/(25*1e4)
        start, end, peak = 1.0 / 25.0, 1.0 / 25.0 / 1e4, 0.3
        if t < peak:
            return start + (1.0 - start) * 0.5 * (1.0 - math.cos(math.pi * t / peak))
        u = (t - peak) / (1.0 - peak)
        return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * u))

    def observe(self, test_top1: float) -> bool:
        """Record an epoch's test top-1; for `plateau`, divide the lr after `patience`
        epochs without improvement. Returns True when the lr was lowered."""
        if self.kind != "plateau":
            return False
        if self.best is None or test_top1 > self.best:
            self.best = float(test_top1)
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.factor *= self.gamma
            self.bad_epochs = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint."""
        return {"kind": self.kind, "best": self.best, "bad_epochs": self.bad_epochs, "factor": self.factor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the plateau state saved by `state_dict`."""
        self.best = state.get("best")
        self.bad_epochs = int(state.get("bad_epochs", 0))
        self.factor = float(state.get("factor", 1.0))
