"""The `convzoo` command. Thin: parses arguments, calls the library, prints.

Each sub-command lives in `convzoo.commands.<name>` with two functions:
`add_arguments(parser)` (no torch import) and `run(args) -> int | None` (may import torch).
`--help` and argument errors therefore answer without importing torch.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from typing import Sequence

#: command name -> (module, one-line help). Order is the order `--help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("convzoo.commands.models", "list the registered models"),
    "summary": ("convzoo.commands.summary", "parameters, MACs and memory of a model, layer by layer"),
    "spec": ("convzoo.commands.spec", "build and print a network written in the compact notation"),
    "paper": ("convzoo.commands.paper", "the lecture's tables: published numbers against computed ones"),
    "train": ("convzoo.commands.train", "train a model with a paper's protocol"),
    "eval": ("convzoo.commands.eval", "evaluate a checkpoint (top-1/top-5, crops, scales, dense)"),
    "predict": ("convzoo.commands.predict", "top-5 classes of images from a checkpoint or shipped weights"),
    "viz": ("convzoo.commands.viz", "pictures: filters, feature maps, curves, architecture, comparisons"),
    "report": ("convzoo.commands.report", "one self-contained HTML report of a model or run"),
    "experiment": ("convzoo.commands.experiment", "run an experiment that reproduces a lecture claim"),
    "serve": ("convzoo.commands.serve", "the explorer: build, measure and compare networks in a local web page"),
    "weights": ("convzoo.commands.weights", "the trained weights that ship with convzoo, and how each was made"),
    "export": ("convzoo.commands.export", "export a model or run to ONNX or torch.export, checked against PyTorch"),
    "speedrun": ("convzoo.commands.speedrun", "train to a target accuracy as fast as this machine allows, and time it"),
}


#: errno values of an environment that refuses a write: no space, quota, read-only, permission.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class _Parser(argparse.ArgumentParser):
    """argparse with exit status 2 and one line of message (argparse's own convention)."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="convzoo",
        description="The classic deep convolutional networks: build, measure, train, see.",
        epilog="Run `convzoo COMMAND --help` for a command's options.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"convzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, text) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=text, description=(mod.__doc__ or text).strip())
        mod.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from .errors import ConvzooError

    module = importlib.import_module(args._module)
    try:
        code = module.run(args)
    except ConvzooError as err:
        print(f"convzoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # the environment's faults (full disk, read-only or forbidden folder) are messages, not bugs
        if err.errno not in _ENVIRONMENT_ERRNOS:
            raise
        # a failed write() carries no file name: the command's --out names what it was writing
        target = err.filename or getattr(args, "out", None)
        where = f" {target}" if target else ""
        verb = "access" if err.errno in (errno.EACCES, errno.EPERM) else "write"
        print(f"convzoo {args.command}: error: cannot {verb}{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"convzoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `convzoo models | head`
        return 0
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
