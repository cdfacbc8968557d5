"""Train to a target test accuracy as fast as this machine allows, and time it (airbench style).

TARGET is lenet5-91 (the lecture's LeNet-5 on Fashion-MNIST to 91.0% test top-1) or
resnet-94 (ResNet-20 to 94.0%). Each seed trains with the real trainer in a fresh process,
from the target's recipe (convzoo/weights/recipes/speedrun/TARGET.toml, TrainConfig fields);
its wall time runs from starting that process to the end of its final test evaluation. The
report gives the mean and standard deviation of the wall time over the seeds, every seed's
test top-1, whether every seed reached the target, the hardware, the versions and the load
average (time a loaded machine's figure as such). Examples:

  convzoo speedrun lenet5-91 --seeds 5
  convzoo speedrun lenet5-91 --seeds 1 --out runs/demo --json
  convzoo speedrun lenet5-91 --seeds 5 --set eval_flip=false     # an ablation
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("target", metavar="TARGET", help="lenet5-91 or resnet-94")
    p.add_argument("--seeds", type=int, default=5, metavar="N", help="train seeds 0..N-1, each in a fresh process (default 5)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (target, runs, mean_wall_seconds, ...)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="keep the run folders here (one seed: DIR itself; several: DIR/seed-N); default: a temporary folder")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for torch (default: the recipe's)")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                   help="replace a recipe field (a TrainConfig field, e.g. epochs=6 or eval_flip=false) for an "
                   "ablation; repeatable; the result records it")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..speedrun import format_report, parse_overrides, speedrun

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be a positive number of seeds, got {args.seeds}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be a positive number, got {args.threads}")
    report = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    result = speedrun(args.target, args.seeds, out=args.out, threads=args.threads, data_dir=args.data_dir,
                      overrides=parse_overrides(args.overrides), report=report)  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_report(result))
    return 0
