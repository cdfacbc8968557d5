"""Trained weights that ship with convzoo: the lecture's networks trained by our own recipes.

Each entry is two files in this folder: `MODEL.TAG.safetensors` (the state dict, written
with the `safetensors` library: no pickle) and `MODEL.TAG.json` (its metadata: data set,
classes, input size and normalisation, test accuracy as measured by `weights/make.py`,
size, sha256, the command that reproduces it, versions, hardware, wall time, seed, date).
The recipe each entry was trained with is `recipes/MODEL.toml` (a `convzoo train --config`
file); it is also the default of `convzoo train MODEL --data DATASET` for that pair.

Listing reads only the JSON files (no torch import); loading checks the file's size and
sha256 against the metadata before a byte of it is parsed as tensors.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

#: The folder holding the shipped files.
WEIGHTS_DIR = Path(__file__).resolve().parent
#: The folder holding the recipes (TOML for `convzoo train --config`).
RECIPES_DIR = WEIGHTS_DIR / "recipes"
#: Fields every metadata file carries (checked by the tests).
FIELDS = (
    "model", "tag", "dataset", "classes", "num_classes", "in_channels", "input_size", "mean", "std",
    "test_transform", "test_top1", "test_top5", "params", "file", "file_bytes", "sha256", "command",
    "recipe", "convzoo_version", "torch_version", "hardware", "wall_seconds", "seed", "date",
)  # fmt: skip


def _entries(folder: Path = WEIGHTS_DIR) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            meta = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise WeightsError(f"damaged weights metadata {str(path)!r}: {err}") from None
        meta["_dir"] = str(folder)
        out.append(meta)
    return out


def list_weights(pattern: str = "*") -> list[dict[str, Any]]:
    """The metadata of every shipped entry whose model name (or `MODEL.TAG`) matches `pattern`."""
    found = []
    for meta in _entries():
        key = f"{meta['model']}.{meta['tag']}"
        if fnmatch.fnmatchcase(meta["model"], pattern) or fnmatch.fnmatchcase(key, pattern):
            found.append({k: v for k, v in meta.items() if not k.startswith("_")})
    return found


def weights_info(model: str, tag: str) -> dict[str, Any]:
    """The metadata of `model`'s weights `tag`; unknown pairs raise `WeightsError` naming what exists."""
    entries = _entries()
    for meta in entries:
        if meta["model"] == model and meta["tag"] == tag:
            return meta
    tags = [m["tag"] for m in entries if m["model"] == model]
    if tags:
        raise WeightsError(f"{model} has no weights {tag!r}; it has: {', '.join(tags)}")
    models = sorted({m["model"] for m in entries})
    listed = ", ".join(f"{m}" for m in models) or "none"
    raise WeightsError(f"no shipped weights for {model!r} (tag {tag!r}); models with weights: {listed} "
                       "(`convzoo weights` lists them)")  # fmt: skip


def recipe_path(model: str, dataset: str | None = None) -> Path | None:
    """The shipped recipe of `model` (for `dataset`, when given), or None."""
    path = RECIPES_DIR / f"{model}.toml"
    if not path.is_file():
        return None
    if dataset is not None:
        import tomllib

        with path.open("rb") as fh:
            values = tomllib.load(fh)
        if values.get("data") != dataset:
            return None
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_state_dict(path: str | Path, *, sha256: str | None = None, size: int | None = None) -> dict[str, Any]:
    """The tensors of a safetensors file, after checking its size and sha256 when given.

    Anything else (a pickle, a `torch.save` zip, a truncated file) is refused with a
    `WeightsError`: convzoo never unpickles weights.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        actual_size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(9)
    except OSError as err:
        raise WeightsError(f"cannot read weights file {str(path)!r}: {err.strerror or err}") from None
    if size is not None and actual_size != size:
        raise WeightsError(f"weights file {str(path)!r} has {actual_size:,} bytes, its metadata says {size:,}: "
                           "damaged or replaced; reinstall convzoo")  # fmt: skip
    if sha256 is not None and sha256_of(path) != sha256:
        raise WeightsError(f"weights file {str(path)!r} does not match its sha256 {sha256[:12]}...: "
                           "damaged or replaced; reinstall convzoo")  # fmt: skip
    # a safetensors file starts with the 8-byte length of its JSON header, then '{'
    if len(head) < 9 or head[8:9] != b"{":
        kind = ("a pickle payload, not" if head[:1] == b"\x80" else "a zip (torch.save) file, not"
                if head[:2] == b"PK" else "not")  # fmt: skip
        raise WeightsError(f"{str(path)!r} is {kind} a safetensors file; convzoo loads weights only from "
                           "safetensors (it never unpickles)")  # fmt: skip
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"cannot read weights file {str(path)!r}: {err}") from None


def load_weights(model: "nn.Module", name: str, tag: str) -> dict[str, Any]:
    """Load the shipped weights `name`.`tag` into `model` (strict keys); returns the metadata."""
    meta = weights_info(name, tag)
    path = Path(meta["_dir"]) / meta["file"]
    state = read_state_dict(path, sha256=meta["sha256"], size=meta["file_bytes"])
    missing, unexpected = _diff_keys(model.state_dict(), state)
    if missing or unexpected:
        raise WeightsError(f"weights {name}.{tag} do not fit the model: missing {missing[:4]}, "
                           f"unexpected {unexpected[:4]}")  # fmt: skip
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise WeightsError(f"weights {name}.{tag} do not fit the model: {first[-1].strip() if first else err}") from None
    return {k: v for k, v in meta.items() if not k.startswith("_")}


def _diff_keys(expected: dict[str, Any], got: dict[str, Any]) -> tuple[list[str], list[str]]:
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))


def check_request(meta: dict[str, Any], num_classes: int | None, in_channels: int | None) -> None:
    """Refuse a `num_classes` / `in_channels` the weights cannot serve."""
    name = f"{meta['model']}.{meta['tag']}"
    if num_classes is not None and num_classes != meta["num_classes"]:
        raise WeightsError(f"weights {name} have {meta['num_classes']} classes ({meta['dataset']}), not "
                           f"num_classes={num_classes}; load them as they are, then call "
                           "model.reset_classifier(n) to fine-tune a new head")  # fmt: skip
    if in_channels is not None and in_channels != meta["in_channels"]:
        raise WeightsError(f"weights {name} take {meta['in_channels']} input channel(s), not "
                           f"in_channels={in_channels}")  # fmt: skip


def as_checkpoint(meta: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint-like fields (data, input size, channels, classes, test transform) the
    prediction and feature-map code reads from a run's checkpoint."""
    return {
        "model_name": meta["model"],
        "data": meta["dataset"],
        "input_size": meta["input_size"][-1],
        "in_channels": meta["in_channels"],
        "classes": list(meta["classes"]),
        "config": {"data": meta["dataset"], "augment": meta["test_transform"].get("recipe", "none"),
                   "input_size": meta["input_size"][-1]},
        "weights": f"{meta['model']}.{meta['tag']}",
    }  # fmt: skip
