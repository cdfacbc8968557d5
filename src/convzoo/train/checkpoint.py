"""Checkpoints: atomic writes, the last K plus the best, safe loading.

A checkpoint is a dict of tensors and plain Python values only (docs/internals.md), so it
loads with `torch.load(weights_only=True)`: loading never runs pickled code.

Writes are atomic: the bytes go to a temporary file in the same folder, which is flushed
and fsync'ed, then renamed over the target with `os.replace` (atomic on POSIX), and the
folder itself is fsync'ed so the rename survives a power cut. A run killed at any instant
therefore leaves every checkpoint file either complete or absent. `last.pt` and `best.pt`
are hard links to a `step-XXXXXXXX.pt` file (copies where links are not supported).

Integrity: `torch.save` writes a zip archive that stores a CRC-32 of every member; loading
checks them all (`torch.load` does not), so a flipped bit on disk is a `CheckpointError`
naming the file, never a silently changed tensor. Older checkpoints carry the same CRCs and
load unchanged. A temporary file left by a kill during a write (`.NAME.tmp-PID`) is removed
when the run folder is next opened (`remove_stale_temporaries`).

The schema (`LAYOUT`, docs/internals.md "Runs"): what the run is (`RUN_KEYS`: the model's
name and options, the config, classes, input size, channels, data set) and the training
state (`STATE_KEYS`, `TrainState.state_dict()` in train/state.py); `build_checkpoint`
assembles them, `read_checkpoint` checks what every reader needs, `check_resumable` what
continuing a run needs, and `find_resume` picks the checkpoint `--resume` continues.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, UnknownModelError

#: The version of the layout below; written as `format`.
FORMAT = 1
#: What a checkpoint says about its run (constant over the run).
RUN_KEYS = ("model_name", "model_kwargs", "config", "classes", "input_size", "in_channels", "data_channels",
            "num_classes", "data")  # fmt: skip
#: The training state, as `TrainState.state_dict()` gives it.
STATE_KEYS = ("model", "optimizer", "scheduler", "scaler", "ema", "rng", "epoch", "step", "position", "loader",
              "run_state")  # fmt: skip
#: Every key of a checkpoint, in the order written.
LAYOUT = ("format", "model_name", "model_kwargs", *STATE_KEYS, *RUN_KEYS[2:])
STEP_PATTERN = re.compile(r"^step-(\d{8,})\.pt$")
REQUIRED_KEYS = ("model_name", "model_kwargs", "model")
#: What a checkpoint needs besides REQUIRED_KEYS to continue training (`check_resumable`).
RESUME_KEYS = ("optimizer", "epoch", "step", "rng")
#: Temporary files of `atomic_save`, `_atomic_link` and `write_json_atomic`.
TMP_PATTERN = re.compile(r"^\..+\.tmp-\d+$")


def build_checkpoint(run: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint dict of `LAYOUT`: `run` holds RUN_KEYS, `state` STATE_KEYS (exactly)."""
    given = {**run, **state, "format": FORMAT}
    if set(given) != set(LAYOUT) or len(run) + len(state) + 1 != len(LAYOUT):
        raise ValueError(f"a checkpoint holds exactly {', '.join(LAYOUT)}; got {', '.join(sorted(run) + sorted(state))}")
    return {key: given[key] for key in LAYOUT}


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
    except Exception as err:
        # torch.save turns a full disk into a RuntimeError; give the caller the OSError, with the file
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if isinstance(cause, OSError) and cause.errno is not None:
            raise OSError(cause.errno, cause.strerror, str(path)) from None
        raise
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


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def step_path(folder: Path, step: int) -> Path:
    """`folder/step-XXXXXXXX.pt`."""
    return folder / f"step-{step:08d}.pt"


class CheckpointManager:
    """Writes `step-*.pt` (keeping the last `keep`), `last.pt` and `best.pt` in `folder`."""

    def __init__(self, folder: str | os.PathLike[str], keep: int = 3) -> None:
        self.folder = Path(folder)
        self.keep = max(1, int(keep))
        self.skipped: list[tuple[Path, str]] = []

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

    def latest(self, *, resumable: bool = False) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that loads, or None. A damaged one (or, with `resumable`, one
        that cannot continue a run or holds NaN/inf weights) is skipped, and recorded with
        the reason in `self.skipped` as (path, message)."""
        self.skipped = []
        candidates = [p for _, p in reversed(self.step_files())]
        if (self.folder / "last.pt").exists():
            candidates.append(self.folder / "last.pt")
        best: tuple[int, Path, dict[str, Any]] | None = None
        for p in candidates:
            try:
                ckpt = read_checkpoint(p)
                if resumable:
                    check_resumable(ckpt, p)
                    bad = first_non_finite({"model": ckpt["model"], "optimizer": ckpt["optimizer"]})
                    if bad is not None:
                        raise CheckpointError(f"checkpoint {str(p)!r} holds NaN or infinite values ({bad})")
            except CheckpointError as err:
                if not any(_same_file(p, q) for q, _ in self.skipped):  # last.pt is a link to a step file
                    self.skipped.append((p, str(err)))
                continue
            step = int(ckpt.get("step", -1))
            if best is None or step > best[0]:
                best = (step, p, ckpt)
            if p.name != "last.pt":
                break  # step files are tried newest first: the first that loads wins
        return None if best is None else (best[1], best[2])


def verify_integrity(path: str | os.PathLike[str]) -> None:
    """Check every CRC-32 of a zip-format checkpoint; damage raises `CheckpointError`.

    Files in torch's legacy (pre-1.6, non-zip) format carry no checksum and pass unchecked.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {err.strerror or err}") from None
    if head != b"PK\x03\x04":
        return
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError, OSError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged ({str(err)[:200] or type(err).__name__})") from None
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged: the bytes of its member {bad!r} do not match the checksum "
            "(CRC-32) written with them"
        )


#: torch's wordings of a refused global ("Unsupported global: GLOBAL x.y", "unsupported GLOBAL x.y whose ...")
_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", re.IGNORECASE)


def _load_error(path: Path, err: Exception) -> CheckpointError:
    text = str(err)
    found = _GLOBAL.search(text)
    if found:
        return CheckpointError(
            f"refusing to load {str(path)!r}: it references the Python object {found.group(1)}; a convzoo "
            "checkpoint holds only tensors and plain values, and loading never runs code from a file"
        )
    # torch's own wording (unpickler internals, "please report an enhancement") is not for users
    why = "it ends early" if isinstance(err, EOFError) else "it is not a complete file written by torch.save"
    return CheckpointError(f"{str(path)!r} is damaged or not a convzoo checkpoint ({why})")


def read_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict safely (`weights_only=True`) after checking its CRCs; damage or
    a file that is not a convzoo checkpoint raises `CheckpointError`."""
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
    verify_integrity(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # zip/pickle/EOF errors all mean a damaged or foreign file
        raise _load_error(path, err) from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(
            f"{str(path)!r} is not a convzoo checkpoint (expected a dict with {', '.join(REQUIRED_KEYS)})"
        )
    if not isinstance(ckpt["model_name"], str) or not ckpt["model_name"]:
        raise CheckpointError(f"{str(path)!r} is not a convzoo checkpoint: its model_name is {ckpt['model_name']!r}")
    if not isinstance(ckpt["model_kwargs"], dict):
        raise CheckpointError(f"{str(path)!r} is not a convzoo checkpoint: its model_kwargs is not a table")
    state = ckpt["model"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{str(path)!r} is not a convzoo checkpoint: its model entry holds no weights")
    if "step" in ckpt and (isinstance(ckpt["step"], bool) or not isinstance(ckpt["step"], int)):
        raise CheckpointError(f"{str(path)!r} is not a convzoo checkpoint: its step is {ckpt['step']!r}")
    return ckpt


def check_resumable(ckpt: dict[str, Any], path: Any = "") -> None:
    """Raise `CheckpointError` when `ckpt` lacks what continuing a run needs (optimizer, step,
    epoch, RNG states): an evaluation-only or hand-edited file."""
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be resumed: it has no {', '.join(missing)} "
            "(evaluate it with `convzoo eval`, or start a new run)"
        )
    for key in ("epoch", "step"):
        if isinstance(ckpt[key], bool) or not isinstance(ckpt[key], int) or ckpt[key] < 0:
            raise CheckpointError(f"checkpoint {str(path)!r} cannot be resumed: its {key} is {ckpt[key]!r}")
    opt = ckpt["optimizer"]
    if not isinstance(opt, dict) or not isinstance(opt.get("param_groups"), list) or not opt["param_groups"] \
            or not isinstance(opt.get("state"), dict):  # fmt: skip
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be resumed: its optimizer state is empty or malformed")
    rng = ckpt["rng"]
    if not isinstance(rng, list) or not rng or not all(isinstance(r, dict) and "torch" in r for r in rng):
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be resumed: its random-generator states are malformed")


def first_non_finite(tree: Any, prefix: str = "") -> str | None:
    """The name of the first floating-point tensor in `tree` (nested dicts and lists) holding a
    NaN or an infinity, or None when all are finite. One device synchronisation per device."""
    named: list[tuple[str, torch.Tensor]] = []

    def walk(obj: Any, name: str) -> None:
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() or obj.is_complex():
                named.append((name, obj))
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{name}.{k}" if name else str(k))
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{name}.{i}" if name else str(i))

    walk(tree, prefix)
    by_device: dict[Any, list[tuple[str, torch.Tensor]]] = {}
    for name, t in named:
        by_device.setdefault(t.device, []).append((name, t))
    for group in by_device.values():
        flags = torch.stack([torch.isfinite(t).all() for _, t in group])
        if not bool(flags.all()):
            return group[int((~flags).nonzero()[0])][0]
    return None


def remove_stale_temporaries(*folders: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files a killed writer left in `folders` (`.NAME.tmp-PID`, and
    metrics' `.jsonl.tmp`). Call it only while holding the run folder's lock. Returns them."""
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if (TMP_PATTERN.match(p.name) or p.name.endswith(".jsonl.tmp")) and p.is_file():
                try:
                    p.unlink()
                    removed.append(p)
                except FileNotFoundError:
                    pass
    return removed


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
    from ..errors import ConfigError, NotationError
    from .network import create

    ckpt = read_checkpoint(path, map_location=map_location)
    if model_name is not None and ckpt["model_name"] != model_name:
        raise CheckpointError(f"checkpoint {str(path)!r} holds model {ckpt['model_name']!r}, not {model_name!r}")
    try:
        model = create(ckpt["model_name"], **dict(ckpt["model_kwargs"]))
    except (NotationError, ConfigError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a network this convzoo cannot build: {err}") from None
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


def resume_run_dir(config: Any) -> Path:
    """The run folder a `TrainConfig` trains in: its `run_dir()`, or RUN for `--resume
    RUN/checkpoints/FILE.pt` without --out/--name. `--resume` (auto) of a folder that holds
    no run raises `CheckpointError`."""
    run_dir = config.run_dir()
    if config.resume and config.resume != "auto":
        given = Path(config.resume)
        if given.is_file() and given.parent.name == "checkpoints" and config.out is None and not config.name:
            run_dir = given.parent.parent
    if config.resume == "auto" and not (run_dir / "checkpoints").is_dir() and not (run_dir / "config.json").is_file():
        raise CheckpointError(
            f"nothing to resume: there is no run in {str(run_dir)!r} (give the run's --out/--name, or --resume PATH)"
        )
    return run_dir


def find_resume(config: Any, run_dir: Path, *, warn: bool = True) -> tuple[Path | None, dict[str, Any] | None]:
    """(path, checkpoint) that `config.resume` continues, or (None, None) for a new run.

    'auto' takes the newest intact, resumable checkpoint of `run_dir` (printing a warning
    for each one skipped when `warn`); a path must be a resumable checkpoint.
    """
    if not config.resume:
        return None, None
    if config.resume != "auto":
        path = Path(config.resume)
        ckpt = read_checkpoint(path)
        check_resumable(ckpt, path)
        return path, ckpt
    manager = CheckpointManager(run_dir / "checkpoints")
    found = manager.latest(resumable=True)
    if warn:
        import sys

        for skipped, why in manager.skipped:
            print(f"warning: skipping {skipped}: {why}", file=sys.stderr, flush=True)
    if found is None:
        if not (run_dir / "checkpoints").is_dir():
            raise CheckpointError(
                f"nothing to resume: {str(run_dir)!r} has no checkpoints/ (give the run's --out/--name, "
                "or --resume PATH)"
            )
        raise CheckpointError(f"nothing to resume: no intact checkpoint in {str(run_dir / 'checkpoints')!r}")
    return found
