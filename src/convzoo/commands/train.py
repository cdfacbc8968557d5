"""Train a model with a paper's protocol (or your own), on CPU, one GPU or several (torchrun).

Every option is a field of `convzoo.train.TrainConfig`; `--config FILE.toml` reads the same
fields from a file, and flags given on the command line override it. `--resume` continues
the run folder given by --out/--name (its config is reused; flags given override it), or
`--resume PATH` a checkpoint. The run folder gets config.json, metrics.jsonl, summary.json
and checkpoints/ (docs/training.md). Examples:

  convzoo train lenet5 --data fashion-mnist --epochs 8 --amp --channels-last --out runs/demo
  convzoo train --config recipe.toml --epochs 30
  convzoo train --resume --out runs/demo
  torchrun --nproc_per_node 2 -m convzoo train resnet20 --data cifar10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from ..train.config import AMP_MODES, AUGMENTS, OPTIMIZERS, SCHEDULES, TrainConfig

#: Fields that have no flag (set them in a --config file; `model` is the positional MODEL).
_FILE_ONLY = {"model", "model_kwargs", "recipe"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    defaults = TrainConfig()
    p.add_argument("model", nargs="?", default=argparse.SUPPRESS, metavar="MODEL",
                   help=_field("model").metadata["help"])  # fmt: skip
    p.add_argument("--config", metavar="FILE.toml", help="read TrainConfig fields from a TOML file")
    p.add_argument("--no-recipe", action="store_true",
                   help="start from TrainConfig's defaults even when MODEL has a shipped recipe for the data set "
                   "(by default `convzoo train lenet5 --data fashion-mnist` trains the recipe of the shipped "
                   "weights, `convzoo weights`; flags override it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar; print only the result")
    p.add_argument("--json", action="store_true", help="print summary.json at the end")
    for f in dataclasses.fields(TrainConfig):
        if f.name in _FILE_ONLY:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f.metadata["help"].replace("%", "%%")  # written once, on the field (train/config.py)
        if default not in (None, False, [], ""):
            help_text += f" (default: {_show(default)})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        kind = str(f.type).replace(" ", "")
        if f.name == "amp":
            p.add_argument(flag, nargs="?", const="bf16", choices=AMP_MODES, **kw)
        elif f.name == "resume":
            p.add_argument(flag, nargs="?", const="auto", metavar="PATH", **kw)
        elif f.name == "ema":
            p.add_argument(flag, nargs="?", const=0.999, type=float, metavar="DECAY", **kw)
        elif f.name == "milestones":
            p.add_argument(flag, nargs="+", type=_int_list, metavar="EPOCH", **kw)
        elif f.name == "betas":
            p.add_argument(flag, nargs=2, type=float, metavar=("BETA1", "BETA2"), **kw)
        elif kind == "bool":
            p.add_argument(flag, action="store_true", **kw)
        elif f.name in ("optimizer", "schedule", "augment"):
            choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "augment": AUGMENTS}[f.name]
            p.add_argument(flag, choices=choices, **kw)
        elif kind.startswith("int"):
            p.add_argument(flag, type=int, metavar="N", **kw)
        elif kind.startswith("float"):
            p.add_argument(flag, type=float, metavar="X", **kw)
        else:
            metavar = {"data": "NAME", "data_dir": "DIR", "out": "DIR"}.get(f.name, f.name.upper())
            p.add_argument(flag, metavar=metavar, **kw)


def _field(name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(TrainConfig) if f.name == name)


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"milestones are whole epochs, got {text!r}") from None


def explicit_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (the others keep file/defaults)."""
    given = {}
    for f in dataclasses.fields(TrainConfig):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            if f.name == "milestones":
                value = [m for part in value for m in part]
            if f.name == "betas":
                value = tuple(value)
            given[f.name] = value
    return given


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults < --config file < (on --resume: the run's own config) < explicit flags."""
    from ..errors import ConfigError

    given = explicit_fields(args)
    values: dict[str, Any] = {}
    if args.config:
        values.update(TrainConfig.from_toml(args.config).to_dict())
    elif not given.get("resume") and not getattr(args, "no_recipe", False):
        values.update(_shipped_recipe(given.get("model"), given.get("data")))
        if values.get("recipe") and given.get("momentum") == 0 and "nesterov" not in given:
            values["nesterov"] = False  # the recipe's Nesterov yields to an explicit --momentum 0
    values.update(given)
    if values.get("resume"):
        asked = TrainConfig.from_dict(values, source="the command line")
        folder = asked.run_dir()
        if asked.resume == "auto" and not (folder / "config.json").is_file() and not (folder / "checkpoints").is_dir():
            from ..errors import CheckpointError

            raise CheckpointError(
                f"nothing to resume: there is no run in {str(folder)!r} (give the run's --out/--name, "
                "or --resume PATH)"
            )
        previous = _previous_config(asked)
        if previous is not None:
            merged = {k: v for k, v in previous.items() if k not in ("resume", "overwrite")}
            if args.config:
                merged.update(TrainConfig.from_toml(args.config).to_dict())
            merged.update(given)
            values = merged
    try:
        return TrainConfig.from_dict(values, source="the command line").validate()
    except TypeError as err:  # a wrong type in a file
        raise ConfigError(str(err)) from None


def _shipped_recipe(model: str | None, data: str | None) -> dict[str, Any]:
    """The fields of the shipped weights' recipe for MODEL on DATA, or nothing."""
    if not model or not data:
        return {}
    from ..train.network import is_notation
    from ..weights import recipe_path

    if is_notation(model):  # recipes belong to the zoo's names
        return {}

    path = recipe_path(model, data)
    if path is None:
        return {}
    values = TrainConfig.from_toml(path).to_dict()
    values["recipe"] = f"convzoo/weights/recipes/{path.name}"
    return values


def _previous_config(cfg: TrainConfig) -> dict[str, Any] | None:
    """The config of the run being resumed (its config.json, or the checkpoint's)."""
    from pathlib import Path

    if cfg.resume == "auto":
        path = cfg.run_dir() / "config.json"
        if path.is_file():
            try:
                values = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                return None
            return _known(values)
        return None
    from ..train.checkpoint import read_checkpoint

    ckpt = read_checkpoint(Path(cfg.resume))
    return _known(ckpt.get("config") or {})


def _known(values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in values.items() if k in names}


def run(args: argparse.Namespace) -> int:
    from ..train import train

    config = build_config(args)
    run_dir = train(config, progress=not args.quiet)
    from ..train.distributed import env_info

    if not env_info().is_main:
        return 0
    summary = json.loads((run_dir / "summary.json").read_text())
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    top1, top5 = summary.get("test_top1"), summary.get("test_top5")
    acc = f"test top-1 {top1:.2f}%, top-5 {top5:.2f}%" if top1 is not None else "no evaluation"
    print(
        f"{summary['model']} on {summary['data']}: {acc} after {summary['epochs_done']} epochs "
        f"({summary['steps']} steps) in {summary['wall_seconds']:.1f} s, "
        f"{summary['images_per_second']:,.0f} training images/s; run folder {run_dir}"
        + (f" ({summary['files_verified']:,} files verified)" if summary.get("files_verified") else "")
    )
    return 0
