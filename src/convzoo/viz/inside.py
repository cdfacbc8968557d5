"""Inside a trained network, as data: first-layer filters, feature maps, predictions, confusion.

The pictures in `filters.py` and `features.py` are matplotlib figures for files; these
functions return the same facts as JSON-able dicts (small images as base64 PNG), for the
explorer's "Inside" view and for any script. The model is a trained one (a run's
checkpoint or shipped weights) with its checkpoint-like dict (`data`, `input_size`,
`in_channels`, `classes`, `config`), as `train.load_checkpoint` and
`weights.as_checkpoint` give.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


def png_base64(array: Any) -> str:
    """A (H, W) or (H, W, 3) array of floats in [0, 1] (or uint8) as a base64 PNG."""
    import numpy as np
    from PIL import Image

    a = np.asarray(array)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", optimize=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _normalise(t: "torch.Tensor") -> "torch.Tensor":
    lo, hi = t.min(), t.max()
    return (t - lo) / (hi - lo) if float(hi - lo) > 0 else t * 0


def filters_data(model: "nn.Module") -> dict[str, Any]:
    """The first convolution's filters: each normalised on its own (AlexNet's Fig. 3), as PNG,
    with its norm (a dead filter has norm 0)."""
    from .filters import first_conv

    name, conv = first_conv(model)
    w = conv.weight.detach().float().cpu()
    out_c, in_c, kh, kw = w.shape
    filters = []
    for i in range(out_c):
        f = w[i]
        img = _normalise(f).permute(1, 2, 0).numpy() if in_c == 3 else _normalise(f.mean(0)).numpy()
        filters.append({"index": i, "png": png_base64(img), "norm": float(f.norm())})
    return {"layer": name, "shape": [out_c, in_c, kh, kw], "colour": in_c == 3, "filters": filters}


def _prepare(images_u8: "torch.Tensor", ckpt: dict[str, Any]) -> "torch.Tensor":
    from ..commands.predict import preprocess

    return preprocess(list(images_u8), ckpt)


def predict_data(model: "nn.Module", ckpt: dict[str, Any], images_u8: "torch.Tensor", top: int = 5) -> list[dict[str, Any]]:
    """Top-`top` classes with probabilities for each uint8 image (N, C, H, W) of the data's channels."""
    import torch

    x = _prepare(images_u8, ckpt)
    model.eval()
    with torch.no_grad():
        probs = model(x).float().softmax(dim=1)
    classes = list(ckpt.get("classes") or [])
    k = min(top, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    return [
        [{"class": classes[i] if i < len(classes) else str(i), "index": i, "probability": float(v)}
         for v, i in zip(vs.tolist(), ix.tolist())]
        for vs, ix in zip(values, indices)
    ]  # fmt: skip


def features_data(model: "nn.Module", ckpt: dict[str, Any], image_u8: "torch.Tensor", *,
                  layers: Sequence[str] | None = None, max_channels: int = 16, top: int = 5) -> dict[str, Any]:  # fmt: skip
    """For one uint8 image (C, H, W): the input as the network saw it, the top-`top`
    predictions, for each stage its strongest `max_channels` feature maps (by mean
    activation; channels that are all zero are reported as dead, never as strongest), and
    the first convolution's filters ranked by their mean rectified response (`filters`)."""
    from .features import default_layers, feature_maps
    from .filters import first_conv

    x = _prepare(image_u8[None], ckpt)
    names = list(layers or default_layers(model))
    conv_name = first_conv(model)[0]
    maps = feature_maps(model, x[0], [*names, conv_name] if conv_name not in names else names)
    conv_act = maps[conv_name]
    # which first-layer filters respond most: mean of each filter's (rectified) response
    response = conv_act.clamp(min=0).flatten(1).mean(1)
    ranked = [{"index": int(i), "response": float(response[i])} for i in response.argsort(descending=True)]
    stages = []
    for name, act in maps.items():
        if name not in names:
            continue
        strength = act.flatten(1).mean(1)
        alive = act.flatten(1).abs().amax(1) > 0
        order = [int(i) for i in strength.argsort(descending=True) if bool(alive[int(i)])]
        shown = order[:max_channels]
        stages.append({
            "layer": name,
            "shape": list(act.shape),
            "dead_channels": int((~alive).sum()),
            "maps": [{"channel": c, "mean": float(strength[c]), "png": png_base64(_normalise(act[c]).numpy())}
                     for c in shown],
        })  # fmt: skip
    shown_input = _normalise(x[0].float())
    inp = shown_input.permute(1, 2, 0).numpy() if shown_input.shape[0] == 3 else shown_input[0].numpy()
    return {
        "input": {"shape": list(x.shape[1:]), "png": png_base64(inp)},
        "predictions": predict_data(model, ckpt, image_u8[None], top=top)[0],
        "stages": stages,
        "filters": {"layer": conv_name, "ranked": ranked},
    }


def confusion_data(model: "nn.Module", ckpt: dict[str, Any], dataset: Any, *, examples: int = 12,
                   batch_size: int = 500) -> dict[str, Any]:  # fmt: skip
    """The confusion matrix over `dataset` (an ArrayDataset: rows true, columns predicted),
    top-1, and the first `examples` misclassified images with their true and predicted class."""
    import torch

    classes = list(ckpt.get("classes") or getattr(dataset, "classes", None) or [])
    n_cls = len(classes) or int(ckpt.get("num_classes") or 10)
    cm = torch.zeros(n_cls, n_cls, dtype=torch.long)
    wrong: list[dict[str, Any]] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            imgs = dataset.images[start : start + batch_size]
            labels = dataset.labels[start : start + batch_size].long()
            logits = model(_prepare(imgs, ckpt)).float()
            preds = logits.argmax(1)
            cm += torch.bincount(labels * n_cls + preds, minlength=n_cls * n_cls).view(n_cls, n_cls)
            probs = logits.softmax(1)
            for j in torch.nonzero(preds != labels).flatten().tolist():
                if len(wrong) >= examples:
                    break
                img = imgs[j].float() / 255.0
                wrong.append({
                    "index": start + j, "true": int(labels[j]), "predicted": int(preds[j]),
                    "probability": float(probs[j, preds[j]]),
                    "png": png_base64(img.permute(1, 2, 0).numpy() if img.shape[0] == 3 else img[0].numpy()),
                })  # fmt: skip
    total = int(cm.sum())
    return {
        "classes": classes,
        "matrix": cm.tolist(),
        "top1": 100.0 * float(cm.diag().sum()) / max(total, 1),
        "count": total,
        "misclassified": wrong,
    }
