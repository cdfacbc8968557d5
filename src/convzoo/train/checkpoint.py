"""Checkpoints: atomic writes, the last K plus the best, safe loading.

A checkpoint is a dict of tensors and plain Python values only (docs/internals.md), so it
loads with `torch.load(weights_only=True)`: loading never runs pickled code.

Writes are atomic: the bytes go to a temporary file in the same folder, which is flushed
and fsync'ed, then renamed over the target with `os.replace` (atomic on POSIX), and the
folder itself is fsync'ed so the rename survives a power cut. A run killed at any instant
therefore leaves every checkpoint file either complete or absent. `last.pt` and `best.pt`
are hard links to a `step-XXXXXXXX.pt` file (copies where links are not supported).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, UnknownModelError

STEP_PATTERN = re.compile(r"^step-(\d{8,})\.pt$")
REQUIRED_KEYS = ("model_name", "model_kwargs", "model")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms without directory fds (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """`torch.save(obj)` to `path` atomically: temporary file, fsync, rename, fsync the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _atomic_link(src: Path, dst: Path) -> None:
    """Make `dst` name the same bytes as `src`, atomically (hard link, else copy)."""
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}"
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, dst)
    _fsync_dir(dst.parent)


def step_path(folder: Path, step: int) -> Path:
    """`folder/step-XXXXXXXX.pt`."""
    return folder / f"step-{step:08d}.pt"


class CheckpointManager:
    """Writes `step-*.pt` (keeping the last `keep`), `last.pt` and `best.pt` in `folder`."""

    def __init__(self, folder: str | os.PathLike[str], keep: int = 3) -> None:
        self.folder = Path(folder)
        self.keep = max(1, int(keep))

    def save(self, state: dict[str, Any], step: int, *, best: bool = False) -> Path:
        """Write the checkpoint of `step`; link it as last (and best); prune old step files."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = atomic_save(state, step_path(self.folder, step))
        _atomic_link(path, self.folder / "last.pt")
        if best:
            _atomic_link(path, self.folder / "best.pt")
        self._prune()
        return path

    def step_files(self) -> list[tuple[int, Path]]:
        """(step, path) of the step checkpoints present, oldest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for p in self.folder.iterdir():
            m = STEP_PATTERN.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def _prune(self) -> None:
        for _, p in self.step_files()[: -self.keep]:
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that loads (a damaged newest one is skipped), or None."""
        candidates = [p for _, p in reversed(self.step_files())]
        if (self.folder / "last.pt").exists():
            candidates.append(self.folder / "last.pt")
        best: tuple[int, Path, dict[str, Any]] | None = None
        for p in candidates:
            try:
                ckpt = read_checkpoint(p)
            except CheckpointError:
                continue
            step = int(ckpt.get("step", -1))
            if best is None or step > best[0]:
                best = (step, p, ckpt)
            if p.name != "last.pt":
                break  # step files are tried newest first: the first that loads wins
        return None if best is None else (best[1], best[2])


def read_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict safely (`weights_only=True`); damage raises `CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        for name in ("last.pt", "checkpoints/last.pt"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise CheckpointError(f"{str(path)!r} is a folder without checkpoints/last.pt or last.pt")
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # zip/pickle/EOF errors all mean a damaged or foreign file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged or not a convzoo checkpoint ({reason[:200]})"
        ) from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(
            f"{str(path)!r} is not a convzoo checkpoint (expected a dict with {', '.join(REQUIRED_KEYS)})"
        )
    return ckpt


def check_same_model(ckpt: dict[str, Any], model_name: str, model_kwargs: dict[str, Any], path: Any = "") -> None:
    """Raise `CheckpointError` when `ckpt` was made for another model or configuration."""
    if ckpt["model_name"] != model_name:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was made for model {ckpt['model_name']!r}, not {model_name!r}; "
            f"resume with the same model or start a new run (--name/--out)"
        )
    theirs = dict(ckpt["model_kwargs"])
    if theirs != dict(model_kwargs):
        raise CheckpointError(
            f"checkpoint {str(path)!r} was made for {model_name} with {theirs}, but this run builds it with "
            f"{dict(model_kwargs)}; use the same data set and model options"
        )


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], path: Any = "") -> None:
    """`model.load_state_dict(state)`, with mismatches reported as `CheckpointError`."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit {type(model).__name__}: {' '.join(first[:3])[:400]}"
        ) from None


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    map_location: Any = "cpu",
    model_name: str | None = None,
    use_ema: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint was made for and load its weights.

    `path` is a checkpoint file or a run folder (its `checkpoints/last.pt`). With
    `model_name`, a checkpoint for another model raises `CheckpointError`. When the run
    kept an EMA of the weights and `use_ema`, the model gets the EMA weights (the ones the
    trainer evaluated). Returns
    `(model in eval mode, checkpoint dict)`.
    """
    from ..registry import create_model

    ckpt = read_checkpoint(path, map_location=map_location)
    if model_name is not None and ckpt["model_name"] != model_name:
        raise CheckpointError(f"checkpoint {str(path)!r} holds model {ckpt['model_name']!r}, not {model_name!r}")
    try:
        model = create_model(ckpt["model_name"], **dict(ckpt["model_kwargs"]))
    except UnknownModelError:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was made for model {ckpt['model_name']!r}, which this convzoo does not have"
        ) from None
    except TypeError as err:
        raise CheckpointError(f"checkpoint {str(path)!r} has model options this convzoo does not accept: {err}") from None
    state = ckpt["ema"] if use_ema and isinstance(ckpt.get("ema"), dict) and ckpt["ema"] else ckpt["model"]
    load_model_state(model, state, path)
    model.eval()
    return model, ckpt
