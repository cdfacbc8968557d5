"""What a run is built from, in the order `loop._run` builds it: the run folder
(`open_run`: its lock, the checkpoint to resume, a folder that already holds a run), the
data (`build_data`), the model (`build_model`, counted by the analysis engine in
`count_params_macs`) and this rank's batches (`build_loaders`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ConvzooError
from . import distributed as D
from .batches import FolderBatches, shard
from .checkpoint import check_same_model, find_resume, remove_stale_temporaries, resume_run_dir
from .config import TrainConfig
from .runlock import RunLock


def open_run(config: TrainConfig, dist: D.DistInfo, held: contextlib.ExitStack, *,
             own_model: bool = False) -> tuple[Path, Path | None, Any]:  # fmt: skip
    """(run folder, checkpoint path, checkpoint) of the run `config` starts or resumes.

    Rank 0 takes the folder's lock (held by `held` until the run ends: two trainers, two
    resumes or an --overwrite of a live run would interleave or delete each other's files)
    and removes what a killed writer left. A checkpoint of another model is refused here,
    before any work (unless the caller gives its own model); a new run in a folder that holds one needs --overwrite.
    """
    run_dir = resume_run_dir(config)
    if dist.is_main:
        if not run_dir.exists():  # a run that fails before writing anything leaves no empty folder behind
            held.callback(_remove_if_empty, run_dir)
        held.enter_context(RunLock(run_dir))
        remove_stale_temporaries(run_dir, run_dir / "checkpoints")
    ckpt_path, ckpt = find_resume(config, run_dir, warn=dist.is_main)
    if ckpt is not None and ckpt["model_name"] != config.model and not own_model:
        check_same_model(ckpt, config.model, {}, ckpt_path)
    prepare_run_dir(config, run_dir, ckpt is not None, dist.is_main)
    return run_dir, ckpt_path, ckpt


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def prepare_run_dir(config: TrainConfig, run_dir: Path, resuming: bool, is_main: bool) -> None:
    """A new run in a folder that holds one: refused, or with --overwrite, cleared."""
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


def build_data(config: TrainConfig) -> dict[str, Any]:
    """The train and test sets, where they came from, their classes and channels."""
    from .. import data as zdata

    info = zdata.dataset_info(config.data, config.data_dir)
    train_ds = zdata.load_dataset(config.data, "train", config.data_dir, download=config.download)
    test_ds = zdata.load_dataset(config.data, "test", config.data_dir, download=config.download)
    if config.subset:
        if not hasattr(train_ds, "subset"):
            raise ConfigError("--subset works with the array data sets, not folder:PATH")
        train_ds, test_ds = train_ds.subset(config.subset), test_ds.subset(config.subset)
    verified = 0
    if config.verify_data and config.data.startswith("folder:"):  # every file decoded once, before the first step
        splits = [train_ds] + ([test_ds] if test_ds.samples != train_ds.samples else [])
        verified = sum(zdata.verify_folder(ds, workers=config.workers) for ds in splits)
    try:  # every run says where its data came from
        source: Any = zdata.find_dataset(config.data, config.data_dir)
    except ConvzooError:  # pragma: no cover - loaded above, so found
        source = config.data_dir or "?"
    classes = list(getattr(train_ds, "classes", None) or info.get("classes") or [])
    return {"train": train_ds, "test": test_ds, "source": source, "info": info, "classes": classes, "verified": verified,
            "num_classes": len(classes) if classes else int(info["num_classes"]), "channels": int(info["channels"])}  # fmt: skip


def build_model(config: TrainConfig, data: dict[str, Any], given: nn.Module | None):
    """(model name, model kwargs, model on the CPU, input side) of the zoo's or the given model."""
    from ..registry import create_model, model_info
    from . import network

    if given is not None:
        return (getattr(given, "zoo_name", config.model), dict(config.model_kwargs), given,
                config.input_size or int(data["info"].get("size") or 224))  # fmt: skip
    if network.is_notation(config.model):  # a network written in the notation, rebuilt from its text
        if config.model_kwargs:
            raise ConfigError("model_kwargs are for zoo models; a network in the notation says everything in its text")
        kwargs = network.notation_kwargs(config.model, channels=data["channels"], num_classes=data["num_classes"],
                                         side=config.input_size, data_side=data["info"].get("size"))  # fmt: skip
        torch.manual_seed(config.seed)
        return config.model, kwargs, network.create(config.model, **kwargs), kwargs["input_size"]
    zinfo = model_info(config.model)
    kwargs = {"num_classes": data["num_classes"], "in_channels": data["channels"], **config.model_kwargs}
    input_size = config.input_size or zinfo.default_input[1]
    if input_size < zinfo.min_input:
        raise ConfigError(f"input_size {input_size} is below {config.model}'s minimum of {zinfo.min_input}")
    torch.manual_seed(config.seed)  # the same initial weights for the same seed
    return config.model, kwargs, create_model(config.model, **kwargs), input_size


def count_params_macs(model: nn.Module, size: tuple[int, int, int], *, zoo: bool) -> tuple[int, int | None]:
    """(parameters, MACs) of the built model, from the analysis engine (which swaps meta
    stand-ins in for the weights, so nothing is copied). The engine handles every zoo
    model; a model of your own that it cannot run on the meta device gets no MAC count."""
    from ..analysis import analyze

    if zoo:
        report = analyze(model, input_size=size)
        return int(report.total_params), int(report.macs)
    try:
        report = analyze(model, input_size=size)
    except (ConvzooError, RuntimeError, NotImplementedError, TypeError, ValueError):
        return sum(p.numel() for p in model.parameters()), None
    return int(report.total_params), int(report.macs)


def build_loaders(config: TrainConfig, data: dict[str, Any], input_size: int, channels: int, dist: D.DistInfo,
                   device: torch.device) -> tuple[Any, Any, Any]:  # fmt: skip
    """(training batches, test data, test-time augmentation) for this rank."""
    from .. import data as zdata

    conv = {"channels": channels} if channels != data["channels"] else {}
    augment = zdata.make_augment(config.data, input_size, recipe=config.augment, train=True, **conv)
    eval_augment = zdata.make_augment(config.data, input_size, recipe=config.augment, train=False, **conv)
    per_rank_batch = config.batch_size // dist.world_size
    if config.data.startswith("folder:"):
        base = zdata.make_folder_loader(
            data["train"], per_rank_batch, train=True, input_size=input_size, workers=config.workers,
            recipe=config.augment, seed=config.seed, rank=dist.rank, world_size=dist.world_size, drop_last=True,
            pin_memory=device.type == "cuda",
        )  # fmt: skip
        test_data = zdata.make_folder_loader(
            data["test"], config.eval_batch_size, train=False, input_size=input_size, workers=config.workers,
            rank=dist.rank, world_size=dist.world_size,
        )  # fmt: skip
        return FolderBatches(base, channels_last=config.channels_last, device=device), test_data, eval_augment
    loader = zdata.DeviceLoader(
        data["train"].to(device), per_rank_batch, shuffle=True, drop_last=True, augment=augment, seed=config.seed,
        rank=dist.rank, world_size=dist.world_size, channels_last=config.channels_last, device=device,
    )  # fmt: skip
    return loader, shard(data["test"].to(device), dist.rank, dist.world_size), eval_augment
