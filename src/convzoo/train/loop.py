"""The training loop: one function, `train(config) -> run folder`, readable top to bottom.

Data sets small enough to live on the device (Fashion-MNIST, MNIST, CIFAR) go through
`convzoo.data.DeviceLoader`: one uint8 tensor on the device, batches from a permutation,
augmentation on whole batches (the airbench approach: no worker processes, no per-image
Python). Image folders go through a DataLoader with workers.

Exact resume: a checkpoint holds the model, optimizer, schedule, gradient scaler, EMA,
every RNG state (per rank), the epoch, the position in the epoch and the loader's state,
plus the running metric sums; a run killed at any point and resumed from its newest
checkpoint follows the same trajectory as an uninterrupted one (bit for bit in
deterministic mode on the same machine).
"""

from __future__ import annotations

import contextlib
import copy
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, ConvzooError
from . import distributed as D
from .checkpoint import (
    CheckpointManager,
    check_resumable,
    check_same_model,
    first_non_finite,
    load_model_state,
    read_checkpoint,
    remove_stale_temporaries,
)
from .config import TrainConfig
from .metrics import Progress, RunWriter, Stopwatch, hardware_info, versions
from .optim import build_optimizer
from .runlock import RunLock
from .runtime import (  # re-exported here until every importer uses convzoo.train.runtime
    autocast_context,
    make_scaler,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from .schedules import Schedule


class NonFiniteLossError(ConvzooError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


# -- model outputs and losses ----------------------------------------------------------------


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


class _StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints after the current step, then stops.
    A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._old[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):  # pragma: no cover - unusual embedding
                    pass
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# -- data ---------------------------------------------------------------------------------


class _FolderBatches:
    """Adapter giving `make_folder_loader`'s DataLoader the DeviceLoader protocol
    (`set_epoch`, `state_dict`/`load_state_dict` with the position in the epoch), and moving
    batches to the device. The loader's `ShardSampler` skips the batches already done."""

    def __init__(self, loader: Any, *, channels_last: bool, device: torch.device) -> None:
        self.loader = loader
        self.sampler = loader.batch_sampler
        self.channels_last = channels_last
        self.device = device
        self.position = 0

    def __len__(self) -> int:
        return len(self.sampler.batches())

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.sampler.start = 0
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "position": self.position, "seed": int(self.sampler.seed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(int(state["epoch"]))
        self.sampler.start = self.position = int(state["position"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            self.position += 1
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)


def _shard(dataset: Any, rank: int, world: int) -> Any:
    """Rank `rank`'s strided share of an ArrayDataset (for evaluation under DDP)."""
    if world == 1:
        return dataset
    out = copy.copy(dataset)
    out.images = dataset.images[rank::world]
    out.labels = dataset.labels[rank::world]
    return out


# -- the run ----------------------------------------------------------------------------


def _count_params_macs(model_name: str, model_kwargs: dict[str, Any], model: nn.Module, size: tuple[int, int, int]):
    """(params, MACs) from convzoo.analyze when available (MACs None otherwise)."""
    params = sum(p.numel() for p in model.parameters())
    try:
        from ..analysis import analyze
        from ..meta import meta_build
        from ..registry import create_model, list_models

        if getattr(model, "zoo_name", None) == model_name and model_name in list_models():
            with meta_build():  # shapes only: no copy of real weights
                meta = create_model(model_name, **model_kwargs)
        else:  # any nn.Module (a spec model, your own)
            meta = copy.deepcopy(model).to("meta")
        report = analyze(meta, input_size=size)
        return int(report.total_params), int(report.macs)
    except Exception:  # the analysis engine is optional here: never stop training for it
        return params, None


def _prepare_run_dir(config: TrainConfig, run_dir: Path, resuming: bool, is_main: bool) -> None:
    if resuming or not is_main:
        return
    if (run_dir / "config.json").exists() or (run_dir / "checkpoints").is_dir():
        if not config.overwrite:
            raise ConfigError(
                f"run folder {str(run_dir)!r} already holds a run; pass --resume to continue it, "
                "--overwrite to replace it, or another --name/--out"
            )
        import shutil

        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        for f in ("metrics.jsonl", "summary.json", "config.json"):
            (run_dir / f).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)


def train(config: TrainConfig, *, progress: bool = True, model: nn.Module | None = None) -> Path:
    """Train `config.model` (or the given `model`) on `config.data`; return the run folder.

    Writes config.json, metrics.jsonl, summary.json and checkpoints/ (docs/internals.md).
    Raises `ConfigError`, `DataError`, `CheckpointError`, `NonFiniteLossError` for user
    errors; Ctrl-C writes a checkpoint of the last finished step, then raises
    KeyboardInterrupt.
    """
    config.validate()
    device = resolve_device(config.device)
    scaler = make_scaler(device, config.amp)  # refuses fp16 on CPU before any work
    # process-wide settings this run changes, put back afterwards for the caller's sake
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)  # fmt: skip
    if config.threads:
        torch.set_num_threads(config.threads)
    dist = D.setup(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    try:
        with contextlib.ExitStack() as held:  # the run folder's lock, released however the run ends
            return _train(config, device, scaler, dist, progress=progress and dist.is_main, given_model=model,
                          held=held)  # fmt: skip
    finally:
        D.teardown(dist)
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[3], saved[4]


def _train(config: TrainConfig, device: torch.device, scaler: Any, dist: D.DistInfo, *, progress: bool,
           given_model: nn.Module | None, held: contextlib.ExitStack) -> Path:  # fmt: skip
    from .. import data as zdata
    from ..registry import create_model, model_info

    if config.batch_size % dist.world_size:
        raise ConfigError(f"batch_size {config.batch_size} must divide evenly among {dist.world_size} processes")
    per_rank_batch = config.batch_size // dist.world_size

    # -- resume: which checkpoint ---------------------------------------------------------
    run_dir = config.run_dir()
    ckpt: dict[str, Any] | None = None
    ckpt_path: Path | None = None
    if config.resume and config.resume != "auto":
        given_path = Path(config.resume)
        if given_path.is_file() and given_path.parent.name == "checkpoints" and config.out is None and not config.name:
            run_dir = given_path.parent.parent
    if config.resume == "auto" and not (run_dir / "checkpoints").is_dir() and not (run_dir / "config.json").is_file():
        raise CheckpointError(
            f"nothing to resume: there is no run in {str(run_dir)!r} (give the run's --out/--name, or --resume PATH)"
        )
    if dist.is_main:
        # one process per run folder, from here to the end (two trainers, two resumes or an
        # --overwrite of a live run would interleave or delete each other's files)
        held.enter_context(RunLock(run_dir))
        remove_stale_temporaries(run_dir, run_dir / "checkpoints")
    if config.resume:
        if config.resume == "auto":
            manager = CheckpointManager(run_dir / "checkpoints")
            found = manager.latest(resumable=True)
            for skipped, why in manager.skipped:
                if dist.is_main:
                    print(f"warning: skipping {skipped}: {why}", file=sys.stderr, flush=True)
            if found is None:
                if not (run_dir / "checkpoints").is_dir():
                    raise CheckpointError(
                        f"nothing to resume: {str(run_dir)!r} has no checkpoints/ (give the run's --out/--name, "
                        "or --resume PATH)"
                    )
                raise CheckpointError(f"nothing to resume: no intact checkpoint in {str(run_dir / 'checkpoints')!r}")
            ckpt_path, ckpt = found
        else:
            ckpt_path = Path(config.resume)
            ckpt = read_checkpoint(ckpt_path)
            check_resumable(ckpt, ckpt_path)
    if ckpt is not None and given_model is None and ckpt["model_name"] != config.model:
        check_same_model(ckpt, config.model, {}, ckpt_path)  # a clear error before any work
    _prepare_run_dir(config, run_dir, ckpt is not None, dist.is_main)
    seed_everything(config.seed, config.deterministic)

    # -- data ---------------------------------------------------------------------------
    is_folder = config.data.startswith("folder:")
    info = zdata.dataset_info(config.data, config.data_dir)
    train_ds = zdata.load_dataset(config.data, "train", config.data_dir, download=config.download)
    test_ds = zdata.load_dataset(config.data, "test", config.data_dir, download=config.download)
    if config.subset:
        if not hasattr(train_ds, "subset"):
            raise ConfigError("--subset works with the array data sets, not folder:PATH")
        train_ds, test_ds = train_ds.subset(config.subset), test_ds.subset(config.subset)
    try:  # every run says where its data came from
        data_source: Any = zdata.find_dataset(config.data, config.data_dir)
    except ConvzooError:  # pragma: no cover - loaded above, so found
        data_source = config.data_dir or "?"
    classes = list(getattr(train_ds, "classes", None) or info.get("classes") or [])
    num_classes = len(classes) if classes else int(info["num_classes"])
    channels = int(info["channels"])

    # -- model ----------------------------------------------------------------------------
    model_name = config.model
    if given_model is None:
        zinfo = model_info(config.model)
        model_kwargs = {"num_classes": num_classes, "in_channels": channels, **config.model_kwargs}
        input_size = config.input_size or zinfo.default_input[1]
        if input_size < zinfo.min_input:
            raise ConfigError(f"input_size {input_size} is below {config.model}'s minimum of {zinfo.min_input}")
        torch.manual_seed(config.seed)  # the same initial weights for the same seed
        raw_model = create_model(config.model, **model_kwargs)
    else:
        raw_model = given_model
        model_name = getattr(given_model, "zoo_name", config.model)
        model_kwargs = dict(config.model_kwargs)
        input_size = config.input_size or int(info.get("size") or 224)
    if ckpt is not None:
        check_same_model(ckpt, model_name, model_kwargs, ckpt_path)
    raw_model.to(device)
    if config.channels_last:
        raw_model.to(memory_format=torch.channels_last)

    # -- loaders --------------------------------------------------------------------------
    # a model built for other channels than the data's (in_channels in model_kwargs) gets
    # grey repeated to RGB or RGB turned to luma by the augmentation
    model_channels = int(model_kwargs.get("in_channels", getattr(raw_model, "in_channels", channels)))
    conv = {"channels": model_channels} if model_channels != channels else {}
    augment = zdata.make_augment(config.data, input_size, recipe=config.augment, train=True, **conv)
    eval_augment = zdata.make_augment(config.data, input_size, recipe=config.augment, train=False, **conv)
    if is_folder:
        base = zdata.make_folder_loader(
            train_ds, per_rank_batch, train=True, input_size=input_size, workers=config.workers,
            recipe=config.augment, seed=config.seed, rank=dist.rank, world_size=dist.world_size, drop_last=True,
            pin_memory=device.type == "cuda",
        )  # fmt: skip
        loader: Any = _FolderBatches(base, channels_last=config.channels_last, device=device)
        test_data: Any = zdata.make_folder_loader(
            test_ds, config.eval_batch_size, train=False, input_size=input_size, workers=config.workers,
            rank=dist.rank, world_size=dist.world_size,
        )  # fmt: skip
    else:
        train_dev = train_ds.to(device)
        loader = zdata.DeviceLoader(
            train_dev, per_rank_batch, shuffle=True, drop_last=True, augment=augment, seed=config.seed,
            rank=dist.rank, world_size=dist.world_size, channels_last=config.channels_last, device=device,
        )  # fmt: skip
        test_data = _shard(test_ds.to(device), dist.rank, dist.world_size)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ConfigError(
            f"batch_size {config.batch_size} is larger than the {len(train_ds)} training images; lower --batch-size"
        )

    # -- optimisation -------------------------------------------------------------------
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
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    # -- run state (restored on resume) ----------------------------------------------------
    state: dict[str, Any] = {
        "epoch": 0, "step": 0, "wall_seconds": 0.0, "train_seconds": 0.0, "train_images": 0,
        "best_test_top1": None, "last_eval": None,
        "window": [0.0, 0.0, 0.0],  # loss sum, correct, seen (global), since the window's start
        "epoch_sums": [0.0, 0.0, 0.0],
    }  # fmt: skip
    if ckpt is not None:
        load_model_state(raw_model, ckpt["model"], ckpt_path)
        if config.channels_last:
            raw_model.to(memory_format=torch.channels_last)
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt.get("scheduler") or {})
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        state.update(ckpt.get("run_state") or {})
        state["epoch"], state["step"] = int(ckpt["epoch"]), int(ckpt["step"])
        loader.set_epoch(state["epoch"])
        if ckpt.get("loader") and int(ckpt["loader"].get("epoch", -1)) == state["epoch"]:
            loader.load_state_dict(ckpt["loader"])

    model: nn.Module = D.wrap(raw_model, dist, device)
    eager_model = model
    if config.compile:
        if not hasattr(torch, "compile"):
            raise ConfigError("--compile needs PyTorch 2.0 or newer")
        model = torch.compile(model)
    compile_pending = config.compile

    # -- files ------------------------------------------------------------------------
    writer = RunWriter(run_dir, enabled=dist.is_main)
    manager = CheckpointManager(run_dir / "checkpoints", keep=config.keep)
    cfg_dict = config.to_dict()
    writer.write_config(cfg_dict)
    if ckpt is None:
        writer.reset_metrics()
    else:
        writer.truncate_after(state["step"])
    params, macs = _count_params_macs(model_name, model_kwargs, raw_model, (model_channels, input_size, input_size))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    bar = Progress(total_steps, enabled=progress, start=state["step"])
    macs_text = f", {macs / 1e6:,.2f} M MACs" if macs is not None else ""
    bar.print(
        f"{model_name}: {params:,} parameters{macs_text} at {model_channels}x{input_size}x{input_size}; "
        f"{config.data}: {len(train_ds):,} train / {len(test_ds):,} test images; {steps_per_epoch} steps/epoch "
        f"x {config.epochs} epochs on {device}{f' x {dist.world_size} ranks' if dist.enabled else ''}"
        f"{'; resumed at step ' + str(state['step']) if ckpt is not None else ''}"
    )
    bar.print(f"data: {config.data} from {data_source}")

    def checkpoint(position: int, *, best: bool = False) -> Path | None:
        rngs = [rng_state()]
        if dist.enabled:
            import torch.distributed as tdist

            gathered: list[Any] = [None] * dist.world_size
            tdist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not dist.is_main:
            return None
        # never write, and so never name as good, weights the loss check let through
        bad = first_non_finite({"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                                "ema": ema.state_dict() if ema is not None else {}})  # fmt: skip
        if bad is not None:
            kept = f"; the last good checkpoint is {last_good}" if last_good else "; no checkpoint had been written yet"
            raise NonFiniteLossError(
                f"the weights or optimizer state became NaN or infinite ({bad}) by step {state['step']} "
                f"(epoch {state['epoch'] + 1}); training stopped without checkpointing them{kept}. "
                f"Lower --lr (now {config.lr}) or --weight-decay, add --clip-grad or --warmup-epochs"
            )
        payload = {
            "format": 1,
            "model_name": model_name,
            "model_kwargs": model_kwargs,
            "model": raw_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else {},
            "ema": ema.state_dict() if ema is not None else {},
            "rng": rngs,
            "epoch": state["epoch"],
            "step": state["step"],
            "position": position,
            "loader": loader.state_dict(),
            "run_state": {k: v for k, v in state.items() if k not in ("epoch", "step")},
            "config": cfg_dict,
            "classes": classes,
            "input_size": input_size,
            "in_channels": model_channels,
            "data_channels": channels,
            "num_classes": num_classes,
            "data": config.data,
        }
        return manager.save(payload, state["step"], best=best)

    def evaluate_now() -> dict[str, float]:
        from ..evaluate import evaluate

        eval_model = ema.module if ema is not None else raw_model
        r = evaluate(eval_model, test_data, batch_size=config.eval_batch_size, input_size=input_size,
                     device=device, amp=config.amp != "none", augment=eval_augment)  # fmt: skip
        count = float(r["count"])
        sums = D.all_reduce_sum(
            [r["top1"] * count, r["top5"] * count, r["loss"] * count, count], dist, device
        )
        n = max(sums[3], 1.0)
        return {"test_top1": sums[0] / n, "test_top5": sums[1] / n, "test_loss": sums[2] / n}

    if ckpt is not None:
        # last, so that nothing in the set-up above can draw from the restored generators
        rngs = ckpt["rng"]
        set_rng_state(rngs[dist.rank] if dist.rank < len(rngs) else rngs[0])

    # -- the loop ---------------------------------------------------------------------------
    clock = Stopwatch(state["wall_seconds"])
    immediate_check = device.type == "cpu" and not dist.enabled
    first_bad = torch.full((), -1, dtype=torch.int64, device=device)
    # this rank's running loss sum and correct count stay on the device (no per-step sync);
    # the sample counts are known on the host
    win = torch.zeros(2, dtype=torch.float64, device=device)
    ep = torch.zeros(2, dtype=torch.float64, device=device)
    counts = [0, 0]  # samples in the window, in the epoch (this rank)
    win_start = seg_start = time.perf_counter()
    last_good: Path | None = ckpt_path
    autocast = autocast_context(device, config.amp)
    # a run that ended by --max-steps and is resumed again has nothing left to do
    done = bool(config.max_steps) and state["step"] >= config.max_steps

    def sync_sums() -> None:
        """Fold this rank's running sums into the global ones (all ranks)."""
        w, e = win.tolist(), ep.tolist()
        both = D.all_reduce_sum([w[0], w[1], counts[0], e[0], e[1], counts[1]], dist, device)
        for i in range(3):
            state["window"][i] += both[i]
            state["epoch_sums"][i] += both[3 + i]
        win.zero_()
        ep.zero_()
        counts[0] = counts[1] = 0

    def check_finite() -> None:
        bad = int(first_bad.item())
        if D.any_rank(bad >= 0, dist, device):
            where = f"step {bad}" if bad >= 0 else "a step on another rank"
            kept = f"; the last good checkpoint is {last_good}" if last_good else "; no checkpoint had been written yet"
            raise NonFiniteLossError(
                f"the loss became NaN or infinite at {where} (epoch {state['epoch'] + 1}); training stopped{kept}. "
                f"Lower --lr (now {config.lr}), add --clip-grad or --warmup-epochs"
            )

    with _StopRequest() as stop:
        try:
            while state["epoch"] < config.epochs and not done:
                epoch = state["epoch"]
                if ckpt is None or epoch != int(ckpt["epoch"]):
                    loader.set_epoch(epoch)
                raw_model.train()
                position = loader.state_dict()["position"]
                for x, y in loader:
                    step = state["step"]
                    lr = schedule.lr(step)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    with autocast:
                        if compile_pending:  # compilation happens here; a failure falls back to eager
                            try:
                                out = model(x)
                            except Exception as err:  # noqa: BLE001 - any backend failure
                                reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                                if dist.is_main:
                                    print(f"warning: torch.compile failed ({reason}); training without it",
                                          file=sys.stderr)  # fmt: skip
                                model = eager_model
                                out = model(x)
                            compile_pending = False
                        else:
                            out = model(x)
                        loss, logits = compute_loss(out, y, criterion, config.aux_weight)
                    if immediate_check and not bool(torch.isfinite(loss)):
                        first_bad.fill_(step + 1)
                        check_finite()
                    elif not immediate_check:
                        bad = (~torch.isfinite(loss.detach())) & (first_bad < 0)
                        first_bad = torch.where(bad, torch.full_like(first_bad, step + 1), first_bad)
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        if config.clip_grad:
                            scaler.unscale_(optimizer)
                            nn.utils.clip_grad_norm_(raw_model.parameters(), config.clip_grad)
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        if config.clip_grad:
                            nn.utils.clip_grad_norm_(raw_model.parameters(), config.clip_grad)
                        optimizer.step()
                    if ema is not None:
                        ema.update(raw_model)
                    with torch.no_grad():
                        n = y.shape[0]
                        batch_stats = torch.stack([loss.detach().double() * n, (logits.argmax(1) == y).sum().double()])
                        win += batch_stats
                        ep += batch_stats
                        counts[0] += n
                        counts[1] += n
                    state["step"] = step = step + 1
                    position += 1
                    state["train_images"] += n * dist.world_size
                    at_window = step % config.log_every == 0
                    at_ckpt = bool(config.checkpoint_every) and step % config.checkpoint_every == 0
                    at_stop = D.any_rank(stop.requested, dist, device) if dist.enabled else stop.requested
                    at_max = bool(config.max_steps) and step >= config.max_steps
                    end_of_epoch = position >= steps_per_epoch
                    if at_window or at_ckpt or at_stop or (at_max and not end_of_epoch):
                        check_finite()
                        sync_sums()
                    if at_window:
                        seconds = time.perf_counter() - win_start
                        wl, wc, wn = state["window"]
                        rec = {"kind": "step", "epoch": epoch + 1, "step": step, "loss": wl / max(wn, 1),
                               "top1": 100.0 * wc / max(wn, 1), "lr": lr,
                               "images_per_second": wn / max(seconds, 1e-9), "time": clock()}  # fmt: skip
                        writer.log(rec)
                        bar.update(step, epoch=epoch, stats=rec)
                        state["window"] = [0.0, 0.0, 0.0]
                        win_start = time.perf_counter()
                    elif progress:
                        bar.update(step, epoch=epoch)
                    if ((at_ckpt or at_max) and not end_of_epoch) or at_stop:
                        # at_stop at an epoch's last step: position == steps_per_epoch, and the
                        # resumed run goes straight to that epoch's evaluation
                        state["train_seconds"] += time.perf_counter() - seg_start
                        state["wall_seconds"] = clock()
                        saved = checkpoint(position)
                        last_good = saved or last_good
                        seg_start = time.perf_counter()
                    if at_stop:
                        raise KeyboardInterrupt
                    if at_max:
                        done = True
                        break
                # -- epoch end (or max_steps): evaluate, log, checkpoint ---------------------
                check_finite()
                sync_sums()
                state["train_seconds"] += time.perf_counter() - seg_start
                results = evaluate_now()
                el, ec, en = state["epoch_sums"]
                finished_epoch = position >= steps_per_epoch
                state["epoch"] = epoch + 1 if finished_epoch else epoch
                state["wall_seconds"] = clock()
                rec = {"kind": "epoch", "epoch": epoch + 1, "step": state["step"], "train_loss": el / max(en, 1),
                       "train_top1": 100.0 * ec / max(en, 1), **results, "lr": schedule.lr(max(state["step"] - 1, 0)),
                       "wall_seconds": state["wall_seconds"]}  # fmt: skip
                if not finished_epoch:
                    rec["partial"] = True
                writer.log(rec)
                is_best = state["best_test_top1"] is None or results["test_top1"] > state["best_test_top1"]
                if is_best:
                    state["best_test_top1"] = results["test_top1"]
                state["last_eval"] = results
                if finished_epoch:
                    schedule.observe(results["test_top1"])
                    state["epoch_sums"] = [0.0, 0.0, 0.0]
                bar.print(
                    f"epoch {epoch + 1}/{config.epochs}: train loss {rec['train_loss']:.4f} acc {rec['train_top1']:.2f}% | "
                    f"test loss {results['test_loss']:.4f} top-1 {results['test_top1']:.2f}% "
                    f"top-5 {results['test_top5']:.2f}% | {state['wall_seconds']:.1f} s"
                )
                if finished_epoch:
                    loader.set_epoch(state["epoch"])  # the checkpoint resumes at the next epoch's start
                saved = checkpoint(0 if finished_epoch else position, best=is_best)
                last_good = saved or last_good
                ckpt = None
                win_start = seg_start = time.perf_counter()
                # a stop asked during the evaluation: the checkpoint above is the resume point
                if D.any_rank(stop.requested, dist, device) if dist.enabled else stop.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            # a second Ctrl-C inside a step lands here without a new checkpoint: the last
            # one stays the resume point (a half-done step is never saved)
            bar.close()
            if dist.is_main:
                where = f" (checkpoint {last_good})" if last_good else ""
                print(f"stopped at step {state['step']}{where}; continue with: convzoo train --resume --out {run_dir}",
                      flush=True)  # fmt: skip
            writer.close()
            raise
        except BaseException:
            bar.close()
            writer.close()
            raise
    bar.close()

    # -- summary -------------------------------------------------------------------------
    last = state["last_eval"] or {}
    summary = {
        "model": model_name,
        "data": config.data,
        "params": params,
        "macs": macs,
        "epochs": config.epochs,
        "epochs_done": state["epoch"],
        "steps": state["step"],
        "test_top1": last.get("test_top1"),
        "test_top5": last.get("test_top5"),
        "test_loss": last.get("test_loss"),
        "best_test_top1": state["best_test_top1"],
        "images_per_second": state["train_images"] / max(state["train_seconds"], 1e-9),
        "train_seconds": state["train_seconds"],
        "wall_seconds": state["wall_seconds"],
        "input_size": input_size,
        "world_size": dist.world_size,
        "hardware": hardware_info(device),
        "versions": versions(),
        "config": cfg_dict,
    }
    writer.write_summary(summary)
    writer.close()
    D.barrier(dist)
    return run_dir
