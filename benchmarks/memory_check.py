"""Check convzoo's training-memory estimate against the real peak of one training step.

For each model and batch size: predict with `convzoo.analyze(...).training_memory(batch,
"sgd_momentum")`, then run one real SGD-with-momentum step (forward, cross-entropy,
backward, optimizer step; after a warm-up step so the momentum buffers exist and with
`zero_grad(set_to_none=True)`, PyTorch's default) and measure its peak:

- CPU: every tensor an ATen op returns passes through a `TorchDispatchMode` that keeps
  the bytes of each live storage (weak references tell when a storage dies); the peak is
  taken over the step and added to what was alive before it (parameters, buffers,
  momentum buffers, input and labels). Scratch buffers that a kernel allocates and frees
  inside itself (never seen as tensors) are not included.
- GPU (`--device cuda`): `torch.cuda.max_memory_allocated()`, which includes everything
  the caching allocator handed out (cuDNN workspaces too).

Run: `.venv/bin/python benchmarks/memory_check.py [--device cpu|cuda] [--batches 2 8]
[--models resnet50 vgg16 densenet121 resnet56]`. CIFAR models run at 32x32 with their
batch sizes multiplied by 16 (the same order of activation memory as the ImageNet ones).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import convzoo
from convzoo.analysis import analyze


class LiveStorage(TorchDispatchMode):
    """Peak bytes of the tensor storages created while the mode is active."""

    def __init__(self, existing: set[int]) -> None:
        super().__init__()
        self.existing = existing  # storages alive before the step (counted apart): in-place updates of
        # parameters, momentum buffers and running statistics allocate nothing
        self.live: dict[int, list[int]] = {}
        self.current = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[key]

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key == 0 or key in self.existing:
                continue
            entry = self.live.get(key)
            if entry is None:
                self.live[key] = [storage.nbytes(), 1]
                self.current += storage.nbytes()
            else:
                entry[1] += 1
            weakref.finalize(t, self._free, key)
        self.peak = max(self.peak, self.current)
        return out


def _bytes(tensors: Any) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.numel():
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def _state_tensors(model: nn.Module, opt: torch.optim.Optimizer, *extra: torch.Tensor) -> list[torch.Tensor]:
    out: list[torch.Tensor] = list(model.parameters()) + list(model.buffers()) + list(extra)
    out += [p.grad for p in model.parameters() if p.grad is not None]
    for state in opt.state.values():
        out += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return out


def _build(name: str, device: str) -> nn.Module:
    try:
        return convzoo.create_model(name).to(device)
    except convzoo.ConvzooError:
        import torchvision

        return getattr(torchvision.models, name)(weights=None).to(device)


def measure(name: str, batch: int, device: str) -> tuple[int, int, float]:
    """(predicted, measured, seconds) for one training step of `name` at `batch`."""
    model = _build(name, device)
    size = tuple(getattr(model, "zoo_name", None) and convzoo.model_info(name).default_input or (3, 224, 224))
    predicted = analyze(model, size, batch_size=batch).training_memory(batch, "sgd_momentum")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, *size, device=device)
    num_classes = getattr(model, "num_classes", 1000)
    y = torch.randint(0, num_classes, (batch,), device=device)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = loss_fn(out[0] if isinstance(out, tuple) else out, y)
        loss.backward()
        opt.step()

    step()  # warm-up: creates the momentum buffers, as in any step after the first
    opt.zero_grad(set_to_none=True)
    gc.collect()
    t0 = time.perf_counter()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        measured = torch.cuda.max_memory_allocated()
    else:
        state = _state_tensors(model, opt, x, y)
        before = _bytes(state)
        mode = LiveStorage({t.untyped_storage().data_ptr() for t in state})
        with mode:
            step()
        measured = before + mode.peak
    return predicted, measured, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--models", nargs="+", default=["resnet50", "vgg16", "densenet121", "resnet56"])
    parser.add_argument("--cifar-factor", type=int, default=16, help="batch multiplier for 32x32 models")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"torch {torch.__version__}, device {device_name}, SGD momentum, float32")
    print(f"{'model':<14}{'batch':>6}{'predicted MiB':>15}{'measured MiB':>14}{'pred/meas':>11}{'step s':>8}")
    worst = 0.0
    for name in args.models:
        small = name in convzoo.list_models() and convzoo.model_info(name).default_input[-1] <= 64
        for b in args.batches:
            batch = b * args.cifar_factor if small else b
            pred, meas, secs = measure(name, batch, args.device)
            ratio = pred / meas
            worst = max(worst, abs(ratio - 1))
            print(f"{name:<14}{batch:>6}{pred / 2**20:>15.1f}{meas / 2**20:>14.1f}{ratio:>11.3f}{secs:>8.2f}", flush=True)
    print(f"largest relative difference: {100 * worst:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
