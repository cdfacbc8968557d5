"""Shared plumbing of the plots: an Agg figure, saving by extension, loading models."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure
    from torch import nn

#: file extensions `save_figure` writes, and matplotlib's format name for each.
FORMATS = {".png": "png", ".svg": "svg"}


def new_figure(width: float, height: float) -> "Figure":
    """A matplotlib figure on the Agg canvas; pyplot's global state is never touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def check_out_path(path: str | Path) -> Path:
    """`path` as a Path whose extension is one `save_figure` can write, else `ConfigError`."""
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise ConfigError(f"--out {str(path)!r}: expected a file ending in .png or .svg")
    return p


def save_figure(fig: "Figure", path: str | Path) -> Path:
    """Write `fig` as PNG or SVG, chosen by the extension of `path`; returns the path."""
    p = check_out_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, format=FORMATS[p.suffix.lower()], dpi=120, bbox_inches="tight")
    return p


def figure_bytes(fig: "Figure", fmt: str = "png") -> bytes:
    """`fig` rendered to PNG or SVG bytes (for embedding in HTML)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight")
    return buf.getvalue()


def find_checkpoint(ref: str | Path) -> Path | None:
    """The checkpoint file `ref` names: a `.pt` file, or a run folder's best/last checkpoint."""
    p = Path(ref)
    if p.is_file():
        return p
    if p.is_dir():
        for cand in (p / "checkpoints" / "best.pt", p / "checkpoints" / "last.pt", p / "best.pt", p / "last.pt"):
            if cand.is_file():
                return cand
        raise CheckpointError(f"{str(ref)!r} is a folder without checkpoints/best.pt or checkpoints/last.pt")
    return None


def load_checkpoint(path: str | Path) -> tuple["nn.Module", dict[str, Any]]:
    """(model, checkpoint dict) of a convzoo checkpoint, by the trainer's one loader
    (`convzoo.train.checkpoint.load_checkpoint`: CRC check, `weights_only`, the EMA weights
    when the run kept them, `CheckpointError` for a damaged, unsafe or foreign file)."""
    from ..train.checkpoint import load_checkpoint as load  # imports torch: only when a checkpoint is read

    return load(path)


def load_model_or_checkpoint(ref: str, *, shipped: bool = False) -> tuple["nn.Module", dict[str, Any] | None]:
    """A file or run folder gives its trained model; a registry name a freshly initialised
    one, or, with `shipped`, its shipped trained weights when it has some (`convzoo weights`),
    with their checkpoint-like fields (data set, input size, classes)."""
    ckpt_path = find_checkpoint(ref)
    if ckpt_path is not None:
        model, ckpt = load_checkpoint(ckpt_path)
        return model, ckpt
    if "/" in ref or ref.endswith(".pt"):
        raise CheckpointError(f"no such checkpoint or run folder: {ref!r}")
    from ..registry import create_model, model_info

    model_info(ref)  # an unknown name fails here, with suggestions
    if shipped:
        from ..weights import as_checkpoint, list_weights

        tags = [m["tag"] for m in list_weights(ref) if m["model"] == ref]
        if tags:
            model = create_model(ref, weights=tags[0])
            return model, as_checkpoint(model.weights_meta)
    return create_model(ref), None


def default_input_size(model: "nn.Module", ckpt: dict[str, Any] | None = None) -> tuple[int, int, int]:
    """(C, H, W) the model is meant for: the checkpoint's, else the registry's, else 3x224x224."""
    if ckpt is not None and ckpt.get("input_size"):
        raw = ckpt["input_size"]
        size = (int(raw),) if isinstance(raw, (int, float)) else tuple(int(v) for v in raw)
        if len(size) == 3:
            return size  # type: ignore[return-value]
        if len(size) == 2:
            return (int(getattr(model, "in_channels", 3)), size[0], size[1])
        if len(size) == 1:
            return (int(getattr(model, "in_channels", 3)), size[0], size[0])
    name = getattr(model, "zoo_name", None)
    in_ch = int(getattr(model, "in_channels", 3))
    if name is not None:
        from ..registry import model_info

        c, h, w = model_info(name).default_input
        return (in_ch, h, w)
    return (in_ch, 224, 224)
