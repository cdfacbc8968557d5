"""Runtime helpers shared by training, evaluation and prediction: the device, mixed precision,
seeding and the RNG states a checkpoint keeps.

`resolve_device` checks a --device value; `autocast_context`/`make_scaler` set up --amp;
`auto_threads` is the default thread count (the cores idle at the start);
`torch_settings_restored` puts back the process-wide settings a run changes;
`seed_everything` seeds Python, NumPy and torch (deterministic kernels when asked);
`rng_state`/`set_rng_state` capture and restore every generator as weights_only-safe values;
`StopRequest` turns SIGINT/SIGTERM into a flag the training loop checks after each step;
`CompiledForward` is the forward pass under --compile, eager again if compilation fails.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; otherwise the named device, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N; got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but this PyTorch sees no CUDA GPU; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N; got {name!r}")
    return dev


def idle_cores(seconds: float = 0.1) -> float | None:
    """How many CPU cores were idle over the next `seconds` (Linux's /proc/stat), or None."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
        return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)


def auto_threads() -> int:
    """The default CPU thread count of a training: the cores idle when it starts. Measured on
    the 2-core machine (docs/performance.md, "Threads"): idle, 2 threads train LeNet-5 1.2 to
    1.8x faster than 1; beside one CPU-bound process, 2 threads are 2x slower than 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    idle = idle_cores()
    if idle is None:
        return torch.get_num_threads()
    return max(1, min(cores, int(idle + 0.5)))


@contextmanager
def torch_settings_restored() -> Iterator[None]:
    """Put back, when the block ends however it ends, the process-wide settings a run may
    change: torch's thread count, deterministic algorithms (and warn-only), cuDNN's
    deterministic and benchmark flags."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)  # fmt: skip
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[3], saved[4]


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 in hardware: a CUDA GPU that supports it, or a CPU with
    AMX or AVX-512 BF16 (without them oneDNN emulates bf16 and a network trains slower than
    in fp32: measured on an AMD EPYC Zen 3, docs/performance.md)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    cpu = getattr(torch._C, "_cpu", None)
    probes = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if any(callable(p) for p in probes):
        return any(bool(p()) for p in probes if callable(p))
    try:  # older torch: the kernel's flags
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_amp(device: torch.device, amp: str) -> str:
    """`amp` with "auto" made concrete for `device`: bf16 where it is native, else none."""
    if amp != "auto":
        return amp
    return "bf16" if native_bf16(device) else "none"


def autocast_context(device: torch.device, amp: str):
    """bf16 (CPU/GPU) or fp16 (GPU) autocast, or a null context."""
    if amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(device: torch.device, amp: str) -> Any:
    """A gradient scaler for fp16 on GPU (None otherwise); fp16 on CPU is refused."""
    if amp != "fp16":
        return None
    if device.type != "cuda":
        raise ConfigError("--amp fp16 needs a CUDA GPU (it needs a gradient scaler); use --amp bf16 on CPU")
    amp_mod = getattr(torch, "amp", None)
    if amp_mod is not None and hasattr(amp_mod, "GradScaler"):
        try:
            return amp_mod.GradScaler("cuda")
        except TypeError:  # older signatures
            pass
    return torch.cuda.amp.GradScaler()


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; in deterministic mode ask for deterministic kernels."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this before its first use for deterministic GEMMs (CUDA docs, "Reproducibility").
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def rng_state() -> dict[str, Any]:
    """Every RNG state this process uses, as tensors and plain values (weights_only-safe)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                          "has_gauss": int(has_gauss), "gauss": float(gauss)}  # fmt: skip
    except ImportError:  # pragma: no cover
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if "numpy" in state:
        import numpy as np

        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["gauss"]))


def _tuplify(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_tuplify(v) for v in value)
    return value


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints after the current step, then stops.
    A second Ctrl-C interrupts at once. Outside the main thread no handler is installed."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
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


class CompiledForward:
    """The (DDP-wrapped) model's forward; with `compile` the first call compiles, and a
    compiler failure is a warning and training continues without it."""

    def __init__(self, model: nn.Module, *, compile: bool, is_main: bool) -> None:
        if compile and not hasattr(torch, "compile"):
            raise ConfigError("--compile needs PyTorch 2.0 or newer")
        self.eager, self.is_main = model, is_main
        self.model = torch.compile(model) if compile else model
        self.pending = compile

    def __call__(self, x: torch.Tensor) -> Any:
        if not self.pending:
            return self.model(x)
        self.pending = False
        try:
            return self.model(x)
        except Exception as err:  # noqa: BLE001 - any backend failure
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            if self.is_main:
                print(f"warning: torch.compile failed ({reason}); training without it", file=sys.stderr)
            self.model = self.eager
            return self.model(x)
