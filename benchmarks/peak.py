"""Training measured against the machine's peak, in one run.

1. The sustained multiply-add rate of a large matrix product through torch (the library
   the trainer uses), fp32 (`--matmul N`: N x N by N x N, N^3 multiply-adds) and bf16
   (`--matmul-bf16 N`, smaller by default: on CPUs without bf16 instructions, such as the
   AMD EPYC Zen 3 here, torch emulates it and a 2048^3 product takes minutes).
2. Each network's roofline: its own convolutions alone, forward and backward, at the
   training batch, in the trainer's precision and layout (`--amp none`, fp32, by default:
   the fast path on CPUs without AVX-512 BF16; `--amp bf16`; channels-last). The
   convolution shapes are taken by hooking the model on one batch; every convolution is
   then timed alone (forward, then backward for the input gradient, except the first layer,
   and the weight gradient), and the rate is their multiply-adds over their summed time.
3. The trainer's achieved rate: `convzoo train` run for `--steps` steps (same precision,
   channels-last, batch `--batch`, Fashion-MNIST at 32x32, no augmentation), its images/s
   times the training multiply-adds per image (3 x the forward MACs from `convzoo.analyze`:
   forward, input gradient, weight gradient).

It prints the trainer's rate as a fraction of all three, then (`--profile`) a profile by op
of each network's training steps (torch.profiler, self CPU time, the same precision and
layout), grouped into convolutions, batch norm, activations, pooling, the optimizer and the
rest, showing where a step goes. `--threads-study` runs the trainer with 1 and 2 threads and
with its default, alone and beside a second CPU-bound process (a busy loop), for the thread default.

`--compile` also runs the trainer with `--compile` and rates it without the first tenth of
its steps (the compilation happens there); it prints the steady rate of the plain run beside it.

Run: `.venv/bin/python benchmarks/peak.py [--models lenet5,resnet20,resnet56,densenet_bc_100_12]
[--steps 30] [--threads N] [--amp none|bf16] [--compile] [--profile] [--threads-study] [--json out.json]`.
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
    torch.mm(a, b)  # warm-up
    reps, t0 = 0, time.perf_counter()
    while reps == 0 or time.perf_counter() - t0 < seconds:
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


def convs_alone_rate(name: str, in_channels: int, size: int, reps: int, dtype: torch.dtype = torch.float32,
                     batch: int = BATCH) -> dict:  # fmt: skip
    """G multiply-adds/s of the network's convolutions alone, forward + backward, channels-last."""
    import convzoo

    model = convzoo.create_model(name, num_classes=10, in_channels=in_channels)
    shapes = conv_shapes(model, torch.randn(batch, in_channels, size, size))
    total_macs, total_s = 0, 0.0
    for i, (conv, shape) in enumerate(shapes):
        layer = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=conv.bias is not None)  # fmt: skip
        layer = layer.to(dtype, memory_format=torch.channels_last)
        first = i == 0
        x = torch.randn(shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(not first)
        macs, out_shape = conv_macs(conv, shape)
        g = torch.randn(out_shape, dtype=dtype).contiguous(memory_format=torch.channels_last)

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


def trainer_rate(name: str, steps: int, threads: int | None, amp: str = "none", batch: int = BATCH,
                 compile: bool = False) -> dict:  # fmt: skip
    """images/s of the real trainer (a subprocess, as a user runs it) and its training MAC rate.

    `images_per_second` is the run's own (every step, the first included); `steady_images_per_second`
    leaves out the first tenth of the steps (with `compile`, the compilation) and is what the
    fractions use when `compile` is on."""
    with tempfile.TemporaryDirectory() as tmp:
        window = max(1, steps // 10)
        cmd = [sys.executable, "-m", "convzoo", "train", name, "--data", "fashion-mnist", "--no-recipe",
               "--batch-size", str(batch), "--max-steps", str(steps), "--epochs", "1", "--amp", amp,
               "--channels-last", "--augment", "none", "--input-size", "32", "--subset", str(batch * steps),
               "--log-every", str(window), "--out", str(Path(tmp) / "run"), "--quiet"]  # fmt: skip
        if threads:
            cmd += ["--threads", str(threads)]
        if compile:
            cmd += ["--compile"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr[-1500:]}")
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
        records = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines() if line]
    rates = [r["images_per_second"] for r in records if r.get("kind") == "step"][1:]  # windows after the first
    steady = len(rates) / sum(1 / r for r in rates) if rates else summary["images_per_second"]  # equal windows
    macs = summary["macs"]  # the trainer's own model (1 channel, 10 classes), counted by convzoo.analyze
    ips = steady if compile else summary["images_per_second"]
    return {"images_per_second": ips, "run_images_per_second": summary["images_per_second"],
            "steady_images_per_second": steady, "compile": compile, "forward_macs_per_image": macs,
            "gmacs_per_s": 3 * macs * ips / 1e9, "steps": summary["steps"],
            "threads_used": summary.get("hardware", {}).get("torch_threads")}  # fmt: skip


#: op name -> group, for the profile's summary (first match wins).
_GROUPS = (
    ("convolution", ("conv", "mkldnn_convolution", "thnn_conv", "slow_conv", "_convolution")),
    ("batch norm", ("batch_norm", "native_batch_norm")),
    ("activation", ("relu", "threshold", "gelu", "sigmoid", "tanh")),
    ("pooling", ("pool",)),
    ("linear", ("addmm", "aten::mm", "aten::linear", "aten::matmul", "aten::bmm")),
    ("optimizer", ("_foreach", "sgd", "adam")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
    ("concatenation", ("aten::cat",)),
    ("memory and copies", ("copy_", "contiguous", "empty", "zero_", "fill_", "clone", "to_copy", "aten::to", "as_strided")),
    ("elementwise", ("aten::add", "aten::mul", "aten::div", "aten::sub")),
)


def _group(op: str) -> str:
    low = op.lower()
    for group, keys in _GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def profile_model(name: str, steps: int, amp: str = "none", batch: int = BATCH) -> dict:
    """A profile by op of `name`'s training steps (SGD, channels-last, batch `batch`)."""
    import convzoo
    from torch.profiler import ProfilerActivity, profile

    model = convzoo.create_model(name, num_classes=10, in_channels=1).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16")

    def step() -> None:
        with autocast:
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    bare = (time.perf_counter() - t0) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    # self time of the ATen ops only (the autograd wrappers' self time is their bookkeeping)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    groups: dict[str, float] = {}
    for e in events:
        groups[_group(e.key)] = groups.get(_group(e.key), 0.0) + e.self_cpu_time_total
    shares = {g: t / total for g, t in sorted(groups.items(), key=lambda kv: -kv[1])}
    table = events.table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=44)
    return {"model": name, "step_ms_bare": bare * 1000, "group_shares": shares, "table": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--steps", type=int, default=30, help="trainer steps per model (default 30)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions of each convolution (default 5)")
    ap.add_argument("--matmul", type=int, default=2048, help="fp32 matrix side (default 2048)")
    ap.add_argument("--matmul-bf16", type=int, default=512, help="bf16 matrix side (default 512)")
    ap.add_argument("--batch", type=int, default=BATCH, help=f"training batch (default {BATCH})")
    ap.add_argument("--amp", choices=("none", "bf16"), default="none", help="the trainer's precision (default none: fp32)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", action="store_true",
                    help="the trainer with --compile too (its rate without the first tenth of the steps, the compilation)")
    ap.add_argument("--profile", action="store_true", help="a profile by op of each network's training steps")
    ap.add_argument("--profile-steps", type=int, default=5)
    ap.add_argument("--threads-study", action="store_true",
                    help="the trainer with 1 and 2 threads, alone and beside a CPU-bound process (LeNet-5, ResNet-20)")
    ap.add_argument("--skip-roofline", action="store_true", help="only the profile and/or the threads study")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    info = {"started": started, "cpu": _cpu_name(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "amp": args.amp, "batch": args.batch, "load_start": os.getloadavg()[0]}  # fmt: skip
    print(f"{started}; {info['cpu']}, {info['cpus']} CPUs, {info['torch_threads']} torch threads, torch {torch.__version__}, "
          f"trainer precision {'bf16 autocast' if args.amp == 'bf16' else 'fp32'}, channels-last, batch {args.batch}; "
          f"load average {info['load_start']:.1f}", flush=True)  # fmt: skip
    peak: dict = {}
    rows = []
    names = [m for m in args.models.split(",") if m]
    if not args.skip_roofline:
        peak = {"fp32": matmul_rate(args.matmul, torch.float32), "bf16": matmul_rate(args.matmul_bf16, torch.bfloat16)}
        print(f"matrix product: fp32 {args.matmul}^3 {peak['fp32']:.1f} G multiply-adds/s, "
              f"bf16 {args.matmul_bf16}^3 {peak['bf16']:.2f}", flush=True)  # fmt: skip
        print(f"{'model':<20} {'convs alone G/s':>15} {'trainer img/s':>13} {'trainer G/s':>11} {'/ convs':>8} "
              f"{'/ fp32 mm':>9} {'/ bf16 mm':>9}")  # fmt: skip
        dtype = torch.bfloat16 if args.amp == "bf16" else torch.float32
        for name in names:
            roof = convs_alone_rate(name, 1, 32, args.reps, dtype, args.batch)
            tr = trainer_rate(name, args.steps, args.threads, args.amp, args.batch)
            row = {"model": name, "convs_alone": roof, "trainer": tr,
                   "fraction_of_convs": tr["gmacs_per_s"] / roof["gmacs_per_s"],
                   "fraction_of_fp32_matmul": tr["gmacs_per_s"] / peak["fp32"],
                   "fraction_of_bf16_matmul": tr["gmacs_per_s"] / peak["bf16"]}  # fmt: skip
            rows.append(row)
            print(f"{name:<20} {roof['gmacs_per_s']:15.2f} {tr['images_per_second']:13,.0f} {tr['gmacs_per_s']:11.2f} "
                  f"{row['fraction_of_convs']:8.1%} {row['fraction_of_fp32_matmul']:9.1%} "
                  f"{row['fraction_of_bf16_matmul']:9.1%}", flush=True)  # fmt: skip
            if args.compile:
                tc = trainer_rate(name, args.steps, args.threads, args.amp, args.batch, compile=True)
                row["trainer_compiled"] = tc
                row["fraction_of_convs_compiled"] = tc["gmacs_per_s"] / roof["gmacs_per_s"]
                print(f"{name + ' --compile':<20} {'':15} {tc['images_per_second']:13,.0f} {tc['gmacs_per_s']:11.2f} "
                      f"{row['fraction_of_convs_compiled']:8.1%} {tc['gmacs_per_s'] / peak['fp32']:9.1%} "
                      f"{tc['gmacs_per_s'] / peak['bf16']:9.1%}   (steady; without: {tr['steady_images_per_second']:,.0f} "
                      f"img/s steady)", flush=True)  # fmt: skip
    profiles = []
    if args.profile:
        for name in names:
            prof = profile_model(name, args.profile_steps, args.amp, args.batch)
            profiles.append(prof)
            shares = ", ".join(f"{g} {v:.0%}" for g, v in prof["group_shares"].items() if v >= 0.005)
            print(f"\n{name}: one training step {prof['step_ms_bare']:.1f} ms (bare loop, batch {args.batch}); "
                  f"self CPU time by kind: {shares}\n{prof['table']}", flush=True)  # fmt: skip
    study = threads_study(args.steps, args.amp, args.batch) if args.threads_study else []
    info["load_end"] = os.getloadavg()[0]
    print(f"load average at the end {info['load_end']:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "matmul": peak, "rows": rows, "profiles": profiles,
                                               "threads_study": study}, indent=1))  # fmt: skip


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def threads_study(steps: int, amp: str, batch: int) -> list[dict]:
    """The trainer's images/s with 1 and 2 threads and with its default (`auto_threads`: the
    cores idle when it starts), alone and beside a CPU-bound busy loop."""
    out = []
    print(f"\nthreads study (trainer, {steps} steps, batch {batch}): images/s")
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for name in ("lenet5", "resnet20"):
                for threads in (1, 2, None):
                    r = trainer_rate(name, steps, threads, amp, batch)
                    out.append({"model": name, "threads": threads or "default", "threads_used": r["threads_used"],
                                "second_process": busy, "images_per_second": r["images_per_second"],
                                "load": os.getloadavg()[0]})  # fmt: skip
                    what = (f"{threads} thread(s)" if threads else f"the default ({r['threads_used']})")
                    what += ", beside a busy loop" if busy else ", alone"
                    print(f"  {name:<10} {what:<33} {r['images_per_second']:9,.0f}   (load average {os.getloadavg()[0]:.1f})",
                          flush=True)  # fmt: skip
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    return out

if __name__ == "__main__":
    main()
