"""Training-step cost of zoo networks against each other, in one process (fp32, channels-last).

Used to decide which shipped-weights recipes fit the CPU (docs/results.md): prints images/s
of a few SGD steps per network and the ratio to the first one.

  python benchmarks/train_step_cost.py resnet20 densenet_bc_100_12 --size 28 --batch 64
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    import torch

    import convzoo

    torch.set_num_threads(args.threads)
    first = None
    for name in args.models:
        m = convzoo.create_model(name, num_classes=10, in_channels=1).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(args.batch, 1, args.size, args.size).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (args.batch,))
        for i in range(args.steps + 2):  # two warm-up steps
            if i == 2:
                t = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        ips = args.steps * args.batch / (time.perf_counter() - t)
        first = first or ips
        print(f"{name:24s} {ips:8.1f} images/s   x{ips / first:.3f} of {args.models[0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
