"""A run's context and what it does at its boundaries: `Run` (what every part of the loop
reads: the settings, the forward pass, the run's files), `evaluate` (the test evaluation,
summed over ranks), `save_checkpoint` (never of non-finite weights) and `check_finite`
(the loss's NaN check, raising `NonFiniteLossError` with the last good checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import NonFiniteLossError
from . import distributed as D
from .checkpoint import CheckpointManager, build_checkpoint, first_non_finite
from .config import TrainConfig
from .metrics import Progress, RunningSums, RunWriter
from .runtime import CompiledForward
from .state import TrainState


@dataclass
class Run:
    """What every part of a run reads: settings, the forward pass, the run's files."""

    config: TrainConfig
    dist: D.DistInfo
    device: torch.device
    forward: CompiledForward
    criterion: nn.Module
    writer: RunWriter
    manager: CheckpointManager
    bar: Progress
    header: dict[str, Any]  # what the checkpoints say about the run (checkpoint.RUN_KEYS)
    test_data: Any
    eval_augment: Any
    input_size: int
    steps_per_epoch: int
    progress: bool
    last_good: Path | None = None  # the newest checkpoint written (or resumed from)


def evaluate(run: Run, model: nn.Module) -> dict[str, float]:
    """Test loss, top-1 and top-5 (percentages) of `model`, summed over all ranks."""
    from ..evaluate import evaluate as run_evaluation  # looked up at each call (tests replace it)

    r = run_evaluation(model, run.test_data, batch_size=run.config.eval_batch_size, input_size=run.input_size,
                       device=run.device, amp=run.config.amp != "none", augment=run.eval_augment,
                       flip=run.config.eval_flip)  # fmt: skip
    count = float(r["count"])
    sums = D.all_reduce_sum([r["top1"] * count, r["top5"] * count, r["loss"] * count, count], run.dist, run.device)
    n = max(sums[3], 1.0)
    return {"test_top1": sums[0] / n, "test_top5": sums[1] / n, "test_loss": sums[2] / n}


def save_checkpoint(run: Run, state: TrainState, *, best: bool = False) -> None:
    """Write the checkpoint of `state.step` (rank 0; every rank takes part under DDP).
    Weights the loss check let through but that became NaN or infinite are never written,
    and so never named as good: NonFiniteLossError."""
    training = state.state_dict()
    if not run.dist.is_main:
        return
    bad = first_non_finite({k: training[k] for k in ("model", "optimizer", "ema")})
    if bad is not None:
        raise NonFiniteLossError(
            f"the weights or optimizer state became NaN or infinite ({bad}) by step {state.step} "
            f"(epoch {state.epoch + 1}); training stopped without checkpointing them{kept_note(run)}. "
            f"Lower --lr (now {run.config.lr}) or --weight-decay, add --clip-grad or --warmup-epochs"
        )
    run.last_good = run.manager.save(build_checkpoint(run.header, training), state.step, best=best)


def check_finite(run: Run, state: TrainState, sums: RunningSums) -> None:
    bad = int(sums.first_bad.item())
    if D.any_rank(bad >= 0, run.dist, run.device):
        where = f"step {bad}" if bad >= 0 else "a step on another rank"
        raise NonFiniteLossError(
            f"the loss became NaN or infinite at {where} (epoch {state.epoch + 1}); training stopped{kept_note(run)}. "
            f"Lower --lr (now {run.config.lr}), add --clip-grad or --warmup-epochs"
        )


def kept_note(run: Run) -> str:
    return f"; the last good checkpoint is {run.last_good}" if run.last_good else "; no checkpoint had been written yet"
