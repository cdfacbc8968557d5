"""What a checkpoint holds about training: `TrainState`, and the `EMA` of the weights.

`TrainState` gathers every object whose state a resumed run needs — the model, optimizer,
learning-rate schedule, gradient scaler, EMA, the loader's position, every RNG state (one
per rank) — and the counters of the run (epoch, step, position in the epoch, time, images
seen, best and last test results, the running metric sums). `state_dict()` gives them as
tensors and plain values (the training half of a checkpoint; `checkpoint.build_checkpoint`
adds the run's description), `load_state_dict()` puts them back, and `resume(ckpt, path)`
does that for a checkpoint read from a file, naming the file in its errors. A run killed
at any point and resumed from its newest checkpoint follows the same trajectory as an
uninterrupted one (bit for bit in deterministic mode on the same machine).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from . import distributed as D
from .checkpoint import load_model_state
from .runtime import rng_state, set_rng_state
from .schedules import Schedule


class EMA:
    """Exponential moving average of a model's floating-point state (weights and BN statistics).

    `ema = decay * ema + (1 - decay) * current` after every optimizer step; integer buffers
    (BN's step counter) are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] | None = None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if self._pairs is None:
            # built at the first update, after any .to()/memory-format change of the model
            # (those replace the tensors); later updates reuse the lists: one fused kernel
            src = model.state_dict(keep_vars=False)
            mine = self.module.state_dict()
            f_ema = [v for k, v in mine.items() if v.dtype.is_floating_point]
            f_src = [src[k] for k, v in mine.items() if v.dtype.is_floating_point]
            i_ema = [v for k, v in mine.items() if not v.dtype.is_floating_point]
            i_src = [src[k] for k, v in mine.items() if not v.dtype.is_floating_point]
            self._pairs = (f_ema, f_src, i_ema, i_src)
        f_ema, f_src, i_ema, i_src = self._pairs
        if f_ema:
            torch._foreach_mul_(f_ema, self.decay)
            torch._foreach_add_(f_ema, f_src, alpha=1.0 - self.decay)
        for dst, s in zip(i_ema, i_src):
            dst.copy_(s)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)  # in-place copies: cached lists stay valid


#: The counters a checkpoint keeps under `run_state`, with their values at the start of a run.
#: `window` and `epoch_sums` are (loss sum, correct, seen) over all ranks since the start of
#: the metrics window / the epoch.
RUN_STATE = {
    "wall_seconds": 0.0, "train_seconds": 0.0, "train_images": 0, "best_test_top1": None, "last_eval": None,
    "window": [0.0, 0.0, 0.0], "epoch_sums": [0.0, 0.0, 0.0],
}  # fmt: skip


class TrainState:
    """Everything a run changes as it trains; `state_dict()` / `load_state_dict()` round-trip it.

    `model` is the bare module (not the DDP or compiled wrapper), `loader` anything with
    `set_epoch`, `state_dict` and `load_state_dict` (`DeviceLoader`, the folder adapter),
    `scaler` and `ema` may be None. `epoch` counts finished epochs, `step` optimizer steps,
    `position` the batches done in the current epoch.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule, loader: Any, *,
                 scaler: Any = None, ema: EMA | None = None, channels_last: bool = False,
                 dist: D.DistInfo | None = None) -> None:  # fmt: skip
        self.model, self.optimizer, self.schedule, self.loader = model, optimizer, schedule, loader
        self.scaler, self.ema, self.channels_last, self.dist = scaler, ema, channels_last, dist
        self.epoch = self.step = self.position = 0
        for key, value in RUN_STATE.items():
            setattr(self, key, copy.copy(value))

    def state_dict(self) -> dict[str, Any]:
        """The training half of a checkpoint: tensors and plain values, weights_only-safe.

        Under DDP every rank must call it (the RNG states of all ranks are gathered); the
        tensors are the live ones, not copies.
        """
        rngs = [rng_state()]
        if self.dist is not None and self.dist.enabled:
            import torch.distributed as tdist

            gathered: list[Any] = [None] * self.dist.world_size
            tdist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "rng": rngs,
            "epoch": self.epoch,
            "step": self.step,
            "position": self.position,
            "loader": self.loader.state_dict(),
            "run_state": {key: getattr(self, key) for key in RUN_STATE},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what `state_dict` (or a whole checkpoint) holds; the RNG states last."""
        self.resume(state, "")

    def resume(self, ckpt: dict[str, Any], path: Any) -> None:
        """Continue the run a checkpoint read from `path` saved: model, optimizer, schedule,
        scaler, EMA, counters, the loader's epoch and position, and this rank's RNG states
        (restored last, so nothing before the next step draws from them). A model that does
        not fit raises `CheckpointError` naming `path`. Entries that older checkpoints may
        lack (scheduler, scaler, EMA, loader, run_state) keep their start values."""
        load_model_state(self.model, ckpt["model"], path)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt.get("scheduler") or {})
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        for key, value in (ckpt.get("run_state") or {}).items():
            if key in RUN_STATE:
                setattr(self, key, value)
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.loader.set_epoch(self.epoch)
        loader_state = ckpt.get("loader")
        if loader_state and int(loader_state.get("epoch", -1)) == self.epoch:
            self.loader.load_state_dict(loader_state)
        self.position = int(self.loader.state_dict()["position"])
        rank = self.dist.rank if self.dist is not None else 0
        rngs = ckpt["rng"]
        set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
