"""Training measured against the machine's peak, in one run.

1. The sustained multiply-add rate of a large matrix product through torch (the library
   the trainer uses), bf16 and fp32 (`--matmul N`: N x N by N x N, N^3 multiply-adds).
2. Each network's roofline: its own convolutions alone, forward and backward, at the
   training batch, bf16 and channels-last (the trainer's precision and layout). The
   convolution shapes are taken by hooking the model on one batch; every convolution is
   then timed alone (forward, then backward for the input gradient, except the first layer,
   and the weight gradient), and the rate is their multiply-adds over their summed time.
3. The trainer's achieved rate: `convzoo train` run for `--steps` steps (bf16, channels-
   last, batch 128, Fashion-MNIST at 32x32, no augmentation), its images/s times the
   training multiply-adds per image (3 x the forward MACs from `convzoo.analyze`: forward,
   input gradient, weight gradient).

It prints the trainer's rate as a fraction of both, then (`--profile`) a profile by op of
ResNet-20 training steps (torch.profiler, self CPU time), showing where a step goes.

Run: `.venv/bin/python benchmarks/peak.py [--models lenet5,resnet20,resnet56,densenet_bc_100_12]
[--steps 30] [--threads N] [--profile] [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

BATCH = 128
MODELS = ("lenet5", "resnet20", "resnet56", "densenet_bc_100_12")


def matmul_rate(n: int, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Sustained G multiply-adds/s of an n x n matrix product."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        reps += 1
    return reps * n**3 / (time.perf_counter() - t0) / 1e9


def conv_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Conv2d, tuple[int, ...]]]:
    """Every Conv2d call of one forward pass, with its input shape."""
    found: list[tuple[nn.Conv2d, tuple[int, ...]]] = []
    hooks = [m.register_forward_pre_hook(lambda m, a: found.append((m, tuple(a[0].shape))))
             for m in model.modules() if isinstance(m, nn.Conv2d)]  # fmt: skip
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return found


def conv_macs(conv: nn.Conv2d, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    n, c, h, w = shape
    kh, kw = conv.kernel_size
    oh = (h + 2 * conv.padding[0] - conv.dilation[0] * (kh - 1) - 1) // conv.stride[0] + 1
    ow = (w + 2 * conv.padding[1] - conv.dilation[1] * (kw - 1) - 1) // conv.stride[1] + 1
    return n * oh * ow * conv.out_channels * (c // conv.groups) * kh * kw, (n, conv.out_channels, oh, ow)


def convs_alone_rate(name: str, in_channels: int, size: int, reps: int) -> dict:
    """G multiply-adds/s of the network's convolutions alone, forward + backward, bf16 channels-last."""
    import convzoo

    model = convzoo.create_model(name, num_classes=10, in_channels=in_channels)
    shapes = conv_shapes(model, torch.randn(BATCH, in_channels, size, size))
    total_macs, total_s = 0, 0.0
    for i, (conv, shape) in enumerate(shapes):
        layer = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=conv.bias is not None)  # fmt: skip
        layer = layer.to(torch.bfloat16, memory_format=torch.channels_last)
        first = i == 0
        x = torch.randn(shape, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(not first)
        macs, out_shape = conv_macs(conv, shape)
        g = torch.randn(out_shape, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)

        def step() -> None:
            layer.zero_grad(set_to_none=True)
            x.grad = None
            layer(x).backward(g)

        step()
        t0 = time.perf_counter()
        for _ in range(reps):
            step()
        total_s += (time.perf_counter() - t0) / reps
        total_macs += macs * (2 if first else 3)  # no input gradient for the first layer
    return {"convs": len(shapes), "train_conv_macs_per_batch": total_macs, "seconds_per_batch": total_s,
            "gmacs_per_s": total_macs / total_s / 1e9}  # fmt: skip


def trainer_rate(name: str, steps: int, threads: int | None) -> dict:
    """images/s of the real trainer (a subprocess, as a user runs it) and its training MAC rate."""
    import convzoo

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "convzoo", "train", name, "--data", "fashion-mnist", "--no-recipe",
               "--batch-size", str(BATCH), "--max-steps", str(steps), "--epochs", "1", "--amp", "bf16",
               "--channels-last", "--augment", "none", "--input-size", "32", "--subset", str(BATCH * steps),
               "--out", str(Path(tmp) / "run")]  # fmt: skip
        if threads:
            cmd += ["--threads", str(threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr[-1500:]}")
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    macs = convzoo.analyze(name, input_size=(1, 32, 32)).macs  # the trainer's model: 1 channel, 10 classes
    ips = summary["images_per_second"]
    return {"images_per_second": ips, "forward_macs_per_image": macs, "gmacs_per_s": 3 * macs * ips / 1e9,
            "steps": summary["steps"]}  # fmt: skip


def profile_resnet20(steps: int) -> str:
    """A profile by op of ResNet-20 training steps, bf16 autocast + channels-last, batch 128."""
    import convzoo
    from torch.profiler import ProfilerActivity, profile

    model = convzoo.create_model("resnet20", num_classes=10, in_channels=1).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(BATCH, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - t0) / steps
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=44)
    return f"ResNet-20 step (bare loop, under the profiler): {wall * 1000:.1f} ms\n{table}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--steps", type=int, default=30, help="trainer steps per model (default 30)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions of each convolution (default 5)")
    ap.add_argument("--matmul", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    info = {"started": started, "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "load_start": os.getloadavg()[0]}  # fmt: skip
    peak = {"bf16": matmul_rate(args.matmul, torch.bfloat16), "fp32": matmul_rate(args.matmul, torch.float32)}
    print(f"{started}; {info['cpu']}, {info['cpus']} CPUs, {info['torch_threads']} torch threads, torch {torch.__version__}, "
          f"load average {info['load_start']:.1f}")
    print(f"matrix product {args.matmul}^3: bf16 {peak['bf16']:.1f} G multiply-adds/s, fp32 {peak['fp32']:.1f}")
    print(f"{'model':<20} {'convs alone G/s':>15} {'trainer img/s':>13} {'trainer G/s':>11} {'/ convs':>8} {'/ bf16 mm':>9} {'/ fp32 mm':>9}")
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        roof = convs_alone_rate(name, 1, 32, args.reps)
        tr = trainer_rate(name, args.steps, args.threads)
        row = {"model": name, "convs_alone": roof, "trainer": tr, "fraction_of_convs": tr["gmacs_per_s"] / roof["gmacs_per_s"],
               "fraction_of_bf16_matmul": tr["gmacs_per_s"] / peak["bf16"], "fraction_of_fp32_matmul": tr["gmacs_per_s"] / peak["fp32"]}  # fmt: skip
        rows.append(row)
        print(f"{name:<20} {roof['gmacs_per_s']:15.1f} {tr['images_per_second']:13,.0f} {tr['gmacs_per_s']:11.1f} "
              f"{row['fraction_of_convs']:8.1%} {row['fraction_of_bf16_matmul']:9.1%} {row['fraction_of_fp32_matmul']:9.1%}", flush=True)
    text = profile_resnet20(10) if args.profile else ""
    if text:
        print(text)
    info["load_end"] = os.getloadavg()[0]
    print(f"load average at the end {info['load_end']:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "matmul": peak, "rows": rows, "profile": text}, indent=1))


if __name__ == "__main__":
    main()
