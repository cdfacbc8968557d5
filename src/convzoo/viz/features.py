"""Feature maps of chosen layers for one image, and the dataset patches that excite a channel most.

The second is the lecture's "AlexNet Visualization" (Zeiler and Fergus style, without the
deconvnet): for each chosen channel, the images of a dataset sample whose activation at
some position is largest, cropped to that position's receptive field.

The receptive field is found by a probe rather than by per-family arithmetic, so it works
for any network: a copy of the model with all weights made positive, max-pooling replaced
by average pooling of the same geometry and ReLUs passing everything, is differentiated at
one output position; the input pixels with a non-zero gradient are its receptive field.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from matplotlib.figure import Figure
    from torch import nn


def default_layers(model: "nn.Module") -> list[str]:
    """The stages named in `feature_info`, else every second-level module with conv weights."""
    from torch import nn

    info = getattr(model, "feature_info", None)
    if info:
        return [str(s["module"]) for s in info]
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return names[:4]


def _resolve(model: "nn.Module", layers: Sequence[str]) -> dict[str, "nn.Module"]:
    modules = dict(model.named_modules())
    out = {}
    for name in layers:
        if name not in modules or not name:
            close = [n for n in modules if n and (n.startswith(name) or name in n)][:6]
            hint = f"; for example {', '.join(close)}" if close else ""
            raise ConfigError(f"{type(model).__name__} has no layer {name!r}{hint}")
        out[name] = modules[name]
    return out


def feature_maps(model: "nn.Module", image: "torch.Tensor", layers: Sequence[str]) -> dict[str, "torch.Tensor"]:
    """{layer: activation (C, H, W)} of `image` (C, H, W or 1, C, H, W) in eval mode."""
    import torch

    targets = _resolve(model, layers)
    x = image if image.dim() == 4 else image.unsqueeze(0)
    acts: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def fn(_m: Any, _i: Any, out: Any) -> None:
            t = out[0] if isinstance(out, (tuple, list)) else out
            # a copy: an in-place ReLU after this layer would change the tensor it returned
            acts[name] = t.detach()[0].to("cpu", torch.float32, copy=True)

        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in targets.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for n, a in acts.items():
        if a.dim() != 3:
            raise ConfigError(f"layer {n!r} gives shape {tuple(a.shape)}, not a (C, H, W) feature map")
    return {n: acts[n] for n in layers if n in acts}


def plot_feature_maps(
    image: "torch.Tensor", maps: dict[str, "torch.Tensor"], *, max_channels: int = 16, title: str | None = None
) -> "Figure":
    """The input image, then for each layer its first `max_channels` maps (each normalised)."""
    from ._common import new_figure

    cols = min(max_channels, 8)
    rows_per = [math.ceil(min(max_channels, m.shape[0]) / cols) for m in maps.values()]
    total_rows = 1 + sum(rows_per)
    fig = new_figure(1.3 * cols, 1.35 * total_rows + 0.4)
    gs = fig.add_gridspec(total_rows, cols)
    ax = fig.add_subplot(gs[0, 0])
    _show(ax, image)
    ax.set_title("input", fontsize=8)
    row = 1
    for (name, fmap), nrows in zip(maps.items(), rows_per):
        n = min(max_channels, fmap.shape[0])
        for k in range(n):
            r, c = divmod(k, cols)
            a = fig.add_subplot(gs[row + r, c])
            a.imshow(fmap[k].numpy(), cmap="viridis", interpolation="nearest")
            a.set_xticks([])
            a.set_yticks([])
            if k == 0:
                a.set_title(f"{name} ({fmap.shape[0]}×{fmap.shape[1]}×{fmap.shape[2]})", fontsize=8, loc="left")
            a.text(0.02, 0.02, str(k), transform=a.transAxes, fontsize=6, color="white")
        row += nrows
    fig.suptitle(title or "feature maps", fontsize=10)
    return fig


def _show(ax: Any, img: "torch.Tensor") -> None:
    t = img.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    lo, hi = float(t.min()), float(t.max())
    t = (t - lo) / (hi - lo) if hi > lo else t * 0
    if t.shape[0] == 3:
        ax.imshow(t.permute(1, 2, 0).numpy(), interpolation="nearest")
    else:
        ax.imshow(t.mean(0).numpy(), cmap="gray", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


# -- receptive fields -------------------------------------------------------------------
def _probe_model(model: "nn.Module") -> "nn.Module":
    """A copy whose every path passes a positive gradient (see the module docstring)."""
    import torch
    from torch import nn

    probe = copy.deepcopy(model).float().cpu().eval()

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
            elif isinstance(child, (nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.GELU, nn.SiLU)):
                setattr(parent, name, nn.Identity())
            else:
                swap(child)

    swap(probe)
    with torch.no_grad():
        for p in probe.parameters():
            p.copy_(p.abs() + 1e-3)
        for mod in probe.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.running_var is not None:
                mod.running_mean.zero_()
                mod.running_var.fill_(1.0)
    return probe


def receptive_boxes(
    model: "nn.Module", layer: str, input_size: tuple[int, int, int], positions: Sequence[tuple[int, int]]
) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) input boxes (exclusive ends) of output `positions` of `layer`."""
    import torch

    probe = _probe_model(model)
    target = _resolve(probe, [layer])[layer]
    grabbed: list[torch.Tensor] = []
    handle = target.register_forward_hook(lambda _m, _i, out: grabbed.append(out[0] if isinstance(out, (tuple, list)) else out))
    n = len(positions)
    x = torch.ones((n, *input_size), requires_grad=True)
    try:
        probe(x)
    finally:
        handle.remove()
    act = grabbed[0]
    idx = torch.arange(n)
    ys = torch.tensor([p[0] for p in positions])
    xs = torch.tensor([p[1] for p in positions])
    # one backward for all positions: each probe image carries its own position's gradient
    act.sum(dim=1)[idx, ys, xs].sum().backward()
    grad = x.grad.abs().sum(dim=1)  # (n, H, W)
    boxes = []
    for k in range(n):
        nz = torch.nonzero(grad[k] > 0)
        if nz.numel() == 0:
            boxes.append((0, 0, input_size[1], input_size[2]))
            continue
        (t, l), (b, r) = nz.min(dim=0).values.tolist(), nz.max(dim=0).values.tolist()
        boxes.append((t, l, b + 1, r + 1))
    return boxes


@dataclass
class Patch:
    """One top-activating patch: which image, where, how strongly, and its pixels."""

    channel: int
    image_index: int
    activation: float
    box: tuple[int, int, int, int]
    pixels: "torch.Tensor"  # (C, h, w)


def top_patches(
    model: "nn.Module",
    images: "torch.Tensor",
    layer: str,
    channels: Sequence[int],
    *,
    k: int = 6,
    batch_size: int = 256,
) -> dict[int, list[Patch]]:
    """For each channel of `layer`, the `k` images of `images` (N, C, H, W) with the largest
    activation anywhere, cropped to that position's receptive field (one patch per image).
    A dead channel (no activation above 0 on any image) gets an empty list."""
    import torch

    target = _resolve(model, [layer])[layer]
    n = images.shape[0]
    best_val = {c: torch.full((n,), -math.inf) for c in channels}
    best_pos = {c: torch.zeros((n, 2), dtype=torch.long) for c in channels}
    grabbed: list[torch.Tensor] = []
    # a copy: an in-place ReLU after the layer would change the tensor it returned
    handle = target.register_forward_hook(
        lambda _m, _i, out: grabbed.append((out[0] if isinstance(out, (tuple, list)) else out).detach().clone())
    )
    was_training = model.training
    model.eval()
    n_channels = None
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                grabbed.clear()
                model(images[start : start + batch_size])
                act = grabbed[0].float()
                if act.dim() != 4:
                    raise ConfigError(f"layer {layer!r} gives shape {tuple(act.shape)}, not feature maps")
                n_channels = act.shape[1]
                bad = [c for c in channels if c < 0 or c >= n_channels]
                if bad:
                    raise ConfigError(f"layer {layer!r} has {n_channels} channels; channel {bad[0]} does not exist")
                w = act.shape[3]
                values, where = act[:, list(channels)].flatten(2).max(dim=2)  # (batch, channels)
                for j, c in enumerate(channels):
                    v, i = values[:, j], where[:, j]
                    best_val[c][start : start + len(v)] = v.cpu()
                    best_pos[c][start : start + len(v)] = torch.stack([i // w, i % w], dim=1).cpu()
    finally:
        handle.remove()
        model.train(was_training)
    # a dead channel (never above 0 on these images, e.g. after a ReLU) has no top patch
    chosen = {c: torch.topk(best_val[c], min(k, n)).indices.tolist() if float(best_val[c].max()) > 0 else []
              for c in channels}  # fmt: skip
    wanted = [(c, i) for c in channels for i in chosen[c]]
    boxes = receptive_boxes(model, layer, tuple(images.shape[1:]), [tuple(best_pos[c][i].tolist()) for c, i in wanted])
    out: dict[int, list[Patch]] = {c: [] for c in channels}
    for (c, i), (t, l, b, r) in zip(wanted, boxes):
        out[c].append(Patch(channel=c, image_index=i, activation=float(best_val[c][i]), box=(t, l, b, r),
                            pixels=images[i, :, t:b, l:r].detach().float().cpu()))
    return out


def plot_top_patches(patches: dict[int, list[Patch]], *, layer: str = "", title: str | None = None) -> "Figure":
    """One row per channel: its top patches, left to right, strongest first."""
    from ._common import new_figure

    rows = len(patches)
    cols = max((len(v) for v in patches.values()), default=1)
    fig = new_figure(1.1 * cols + 0.8, 1.15 * rows + 0.6)
    for r, (c, plist) in enumerate(patches.items()):
        for q, p in enumerate(plist):
            ax = fig.add_subplot(rows, cols, r * cols + q + 1)
            _show(ax, p.pixels)
            ax.set_title(f"#{p.image_index} {p.activation:.2f}", fontsize=6)
            if q == 0:
                ax.set_ylabel(f"ch {c}", fontsize=8)
    fig.suptitle(title or f"top activating patches of {layer} (receptive fields)", fontsize=10)
    return fig
