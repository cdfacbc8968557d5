"""The training loop: `train(config) -> run folder`, read top to bottom.

`_run` opens the run folder (its lock and the checkpoint to resume), builds the data, the
model and this rank's batches (train/build.py), puts the model, optimizer, schedule,
scaler, EMA and loader in a `TrainState` (train/state.py) and resumes it from the
checkpoint when there is one; then each epoch is `train_epoch`, and `end_epoch`:
`evaluate`, a metrics line, `save_checkpoint`; the run ends with summary.json.

Beside it: a step's loss, update and running sums in step.py; the run's context (`Run`) and
its evaluation, checkpointing and NaN check in run.py; the device, precision, seeding,
signals and --compile in runtime.py; the two kinds of batches in batches.py; checkpoint
files and their schema in checkpoint.py; the run's files, progress bar and running sums in
metrics.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from . import distributed as D
from .build import build_data, build_loaders, build_model, count_params_macs, open_run
from .checkpoint import CheckpointManager, check_same_model
from .config import TrainConfig
from .metrics import Progress, RunningSums, RunWriter, Stopwatch, describe_run, run_summary
from .network import check_model
from .optim import build_optimizer
from .run import Run, check_finite, evaluate, save_checkpoint
from .runtime import (CompiledForward, StopRequest, auto_threads, autocast_context, make_scaler, resolve_amp,
                      resolve_device, seed_everything, torch_settings_restored)
from .schedules import Schedule
from .state import EMA, TrainState
from .step import add_batch, apply_gradients, compute_loss

__all__ = ["train", "train_epoch", "end_epoch", "compute_loss"]


def train(config: TrainConfig, *, progress: bool = True, model: nn.Module | None = None) -> Path:
    """Train `config.model` (or the given `model`) on `config.data`; return the run folder.

    Writes config.json, metrics.jsonl, summary.json and checkpoints/ (docs/internals.md).
    Raises `ConfigError`, `DataError`, `CheckpointError`, `NonFiniteLossError` for user
    errors; Ctrl-C writes a checkpoint of the last finished step, then raises
    KeyboardInterrupt.
    """
    config.validate()
    device = resolve_device(config.device)
    if config.amp == "auto":  # made concrete here, so config.json and the checkpoints say what ran
        config = dataclasses.replace(config, amp=resolve_amp(device, config.amp))
    scaler = make_scaler(device, config.amp)  # refuses fp16 on CPU before any work
    with torch_settings_restored():  # threads and kernel flags this run sets, put back for the caller
        dist = D.setup(device.type)
        if config.threads:
            torch.set_num_threads(config.threads)
        elif device.type == "cpu" and not dist.enabled:
            torch.set_num_threads(auto_threads())
        if dist.enabled and device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
        try:
            with contextlib.ExitStack() as held:  # the run folder's lock, released however the run ends
                return _run(config, device, scaler, dist, progress=progress and dist.is_main, given_model=model,
                            held=held)  # fmt: skip
        finally:
            D.teardown(dist)


def _run(config: TrainConfig, device: torch.device, scaler: Any, dist: D.DistInfo, *, progress: bool,
         given_model: nn.Module | None, held: contextlib.ExitStack) -> Path:  # fmt: skip
    if config.batch_size % dist.world_size:
        raise ConfigError(f"batch_size {config.batch_size} must divide evenly among {dist.world_size} processes")
    if given_model is None:
        check_model(config.model)  # an unknown name or malformed notation, before any folder is made
    run_dir, ckpt_path, ckpt = open_run(config, dist, held, own_model=given_model is not None)
    seed_everything(config.seed, config.deterministic)

    # -- data, model, batches ---------------------------------------------------------------
    data = build_data(config)
    model_name, model_kwargs, raw_model, input_size = build_model(config, data, given_model)
    if ckpt is not None:
        check_same_model(ckpt, model_name, model_kwargs, ckpt_path)
    # a model built for other channels than the data's (in_channels in model_kwargs) gets
    # grey repeated to RGB or RGB turned to luma by the augmentation
    model_channels = int(model_kwargs.get("in_channels", getattr(raw_model, "in_channels", data["channels"])))
    params, macs = count_params_macs(raw_model, (model_channels, input_size, input_size), zoo=given_model is None)
    raw_model.to(device)
    if config.channels_last:
        raw_model.to(memory_format=torch.channels_last)
    loader, test_data, eval_augment = build_loaders(config, data, input_size, model_channels, dist, device)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ConfigError(
            f"batch_size {config.batch_size} is larger than the {len(data['train'])} training images; lower --batch-size"
        )

    # -- the training state ---------------------------------------------------------------
    optimizer = build_optimizer(
        raw_model, config.optimizer, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
        weight_decay=config.weight_decay, no_decay_norm_bias=config.no_decay_norm_bias, betas=config.betas,
    )  # fmt: skip
    schedule = Schedule(
        config.schedule, config.lr, steps_per_epoch=steps_per_epoch, epochs=config.epochs,
        milestones=config.milestones, gamma=config.gamma, patience=config.patience,
        warmup_epochs=config.warmup_epochs,
    )  # fmt: skip
    ema = EMA(raw_model, config.ema) if config.ema else None
    state = TrainState(raw_model, optimizer, schedule, loader, scaler=scaler, ema=ema,
                       channels_last=config.channels_last, dist=dist)  # fmt: skip
    forward = CompiledForward(D.wrap(raw_model, dist, device), compile=config.compile, is_main=dist.is_main)
    if ckpt is not None:
        state.resume(ckpt, ckpt_path)  # last: nothing in the set-up draws from the restored generators

    # -- the run's files --------------------------------------------------------------------
    writer = RunWriter(run_dir, enabled=dist.is_main)
    cfg_dict = config.to_dict()
    writer.write_config(cfg_dict)
    if ckpt is None:
        writer.reset_metrics()
    else:
        writer.truncate_after(state.step)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    header = {"model_name": model_name, "model_kwargs": model_kwargs, "config": cfg_dict, "classes": data["classes"],
              "input_size": input_size, "in_channels": model_channels, "data_channels": data["channels"],
              "num_classes": data["num_classes"], "data": config.data}  # fmt: skip
    run = Run(config, dist, device, forward, nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
               writer, CheckpointManager(run_dir / "checkpoints", keep=config.keep),
               Progress(total_steps, enabled=progress, start=state.step), header, test_data, eval_augment, input_size,
               steps_per_epoch, progress, last_good=ckpt_path)  # fmt: skip
    run.bar.print(describe_run(model_name, params, macs, (model_channels, input_size), data, config, steps_per_epoch,
                               device, dist.world_size if dist.enabled else 1,
                               resumed_at=state.step if ckpt is not None else None))  # fmt: skip
    checked = f" ({data['verified']:,} files verified)" if data["verified"] else ""
    run.bar.print(f"data: {config.data} from {data['source']}{checked}")

    # -- the loop ---------------------------------------------------------------------------
    clock = Stopwatch(state.wall_seconds)
    sums = RunningSums(device)
    resumed = ckpt is not None  # the first epoch continues at the checkpoint's position
    done = bool(config.max_steps) and state.step >= config.max_steps  # a finished --max-steps run
    with StopRequest() as stop:
        try:
            while state.epoch < config.epochs and not done:
                if not resumed:
                    loader.set_epoch(state.epoch)
                resumed = False
                done = train_epoch(run, state, sums, stop, clock)
                end_epoch(run, state, clock)
                # a stop asked during the evaluation: the checkpoint above is the resume point
                if D.any_rank(stop.requested, dist, device) if dist.enabled else stop.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            # a second Ctrl-C inside a step lands here without a new checkpoint: the last
            # one stays the resume point (a half-done step is never saved)
            run.bar.close()
            if dist.is_main:
                where = f" (checkpoint {run.last_good})" if run.last_good else ""
                print(f"stopped at step {state.step}{where}; continue with: convzoo train --resume --out {run_dir}",
                      flush=True)  # fmt: skip
            writer.close()
            raise
        except BaseException:
            run.bar.close()
            writer.close()
            raise
    run.bar.close()

    writer.write_summary(run_summary(state, model_name, params, macs, config, cfg_dict, input_size, dist.world_size,
                                     device, files_verified=data["verified"]))  # fmt: skip
    writer.close()
    D.barrier(dist)
    return run_dir


def train_epoch(run: Run, state: TrainState, sums: RunningSums, stop: StopRequest, clock: Stopwatch) -> bool:
    """The steps of one epoch (from `state.position` on), with metric windows and step
    checkpoints; returns True when `--max-steps` is reached. A stop request checkpoints the
    last finished step and raises KeyboardInterrupt."""
    config, dist, device = run.config, run.dist, run.device
    epoch, steps_per_epoch = state.epoch, run.steps_per_epoch
    model, optimizer, schedule, scaler, ema = state.model, state.optimizer, state.schedule, state.scaler, state.ema
    autocast = autocast_context(device, config.amp)
    immediate_check = device.type == "cpu" and not dist.enabled
    win_start = seg_start = time.perf_counter()
    model.train()
    position = state.position = state.loader.state_dict()["position"]
    for x, y in state.loader:
        step = state.step
        lr = schedule.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast:
            loss, logits = compute_loss(run.forward(x), y, run.criterion, config.aux_weight)
        if immediate_check and not bool(torch.isfinite(loss)):
            sums.first_bad.fill_(step + 1)
            check_finite(run, state, sums)
        elif not immediate_check:
            bad = (~torch.isfinite(loss.detach())) & (sums.first_bad < 0)
            sums.first_bad = torch.where(bad, torch.full_like(sums.first_bad, step + 1), sums.first_bad)
        apply_gradients(loss, model, optimizer, scaler=scaler, clip_grad=config.clip_grad, ema=ema)
        n = add_batch(sums, loss, logits, y)
        state.step = step = step + 1
        state.position = position = position + 1
        state.train_images += n * dist.world_size
        at_window = step % config.log_every == 0
        at_ckpt = bool(config.checkpoint_every) and step % config.checkpoint_every == 0
        at_stop = D.any_rank(stop.requested, dist, device) if dist.enabled else stop.requested
        at_max = bool(config.max_steps) and step >= config.max_steps
        end_of_epoch = position >= steps_per_epoch
        if at_window or at_ckpt or at_stop or (at_max and not end_of_epoch):
            check_finite(run, state, sums)
            sums.sync(state, dist, device)
        if at_window:
            seconds = time.perf_counter() - win_start
            wl, wc, wn = state.window
            rec = {"kind": "step", "epoch": epoch + 1, "step": step, "loss": wl / max(wn, 1),
                   "top1": 100.0 * wc / max(wn, 1), "lr": lr, "images_per_second": wn / max(seconds, 1e-9),
                   "time": clock()}  # fmt: skip
            run.writer.log(rec)
            run.bar.update(step, epoch=epoch, stats=rec)
            state.window = [0.0, 0.0, 0.0]
            win_start = time.perf_counter()
        elif run.progress:
            run.bar.update(step, epoch=epoch)
        if ((at_ckpt or at_max) and not end_of_epoch) or at_stop:
            # at_stop at an epoch's last step: position == steps_per_epoch, and the resumed
            # run goes straight to that epoch's evaluation
            state.train_seconds += time.perf_counter() - seg_start
            state.wall_seconds = clock()
            save_checkpoint(run, state)
            seg_start = time.perf_counter()
        if at_stop:
            raise KeyboardInterrupt
        if at_max:
            break
    check_finite(run, state, sums)
    sums.sync(state, dist, device)
    state.train_seconds += time.perf_counter() - seg_start
    return bool(config.max_steps) and state.step >= config.max_steps


def end_epoch(run: Run, state: TrainState, clock: Stopwatch) -> None:
    """The end of an epoch (or of a --max-steps run inside one): evaluate, log the epoch
    line, keep the best result, step a plateau schedule, checkpoint."""
    epoch = state.epoch
    results = evaluate(run, state.ema.module if state.ema is not None else state.model)
    finished = state.position >= run.steps_per_epoch
    el, ec, en = state.epoch_sums
    state.epoch = epoch + 1 if finished else epoch
    state.wall_seconds = clock()
    rec = {"kind": "epoch", "epoch": epoch + 1, "step": state.step, "train_loss": el / max(en, 1),
           "train_top1": 100.0 * ec / max(en, 1), **results, "lr": state.schedule.lr(max(state.step - 1, 0)),
           "wall_seconds": state.wall_seconds}  # fmt: skip
    if not finished:
        rec["partial"] = True
    run.writer.log(rec)
    is_best = state.best_test_top1 is None or results["test_top1"] > state.best_test_top1
    if is_best:
        state.best_test_top1 = results["test_top1"]
    state.last_eval = results
    if finished:
        state.schedule.observe(results["test_top1"])
        state.epoch_sums = [0.0, 0.0, 0.0]
    run.bar.print(
        f"epoch {epoch + 1}/{run.config.epochs}: train loss {rec['train_loss']:.4f} acc "
        f"{rec['train_top1']:.2f}% | test loss {results['test_loss']:.4f} top-1 {results['test_top1']:.2f}% "
        f"top-5 {results['test_top5']:.2f}% | {state.wall_seconds:.1f} s"
    )
    if finished:  # the checkpoint resumes at the next epoch's start
        state.loader.set_epoch(state.epoch)
        state.position = 0
    save_checkpoint(run, state, best=is_best)
