"""Top-5 classes of images from a checkpoint, or from the weights that ship with convzoo.

Each IMAGE (PNG or JPEG) is decoded by PIL, converted to the checkpoint's channels
(grey or RGB), brought to the training data's native size and preprocessed exactly as the
test images were during training (resize or padding to the model's input, normalisation).
Examples:

  convzoo predict runs/demo shoe.png shirt.jpg        # a run folder or checkpoint first
  convzoo predict shoe.png --model resnet20           # shipped weights (`convzoo weights`)
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("inputs", nargs="+", metavar="[CHECKPOINT] IMAGE",
                   help="a checkpoint file or run folder, then image files (PNG, JPEG); with --model only images")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="use the shipped trained weights of this model instead of a checkpoint")
    p.add_argument("--weights", default="fashion-mnist", metavar="TAG",
                   help="which shipped weights with --model (default: fashion-mnist)")  # fmt: skip
    p.add_argument("--top", type=int, default=5, metavar="K", help="how many classes to show (default: 5)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even when the run kept an EMA")
    p.add_argument("--json", action="store_true", help="print JSON")


def _read_image(path: str, channels: int):
    """uint8 C x H x W tensor with `channels` channels (PIL decodes; grey <-> RGB converted);
    unreadable files raise DataError."""
    import os

    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    from ..errors import DataError

    if not os.path.isfile(path):
        raise DataError(f"image {path!r} does not exist")
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot read image {path!r}: {reason} (expected a PNG or JPEG file)") from None
    t = torch.from_numpy(arr.copy())
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def preprocess(images: list, ckpt: dict):
    """A normalised float batch of `images` (uint8 C x H x W with the training data's
    channels), as the run's test images were; the augmentation converts grey/RGB to the
    model's channels when they differ."""
    import torch

    from .. import data as zdata
    from ..data.augment import center_crop, resize, resize_shorter

    config = ckpt.get("config") or {}
    name = ckpt.get("data") or config.get("data") or ""
    input_size = int(ckpt.get("input_size") or 224)
    channels = int(ckpt.get("in_channels") or 3)
    if name and not name.startswith("folder:"):
        native = int(zdata.dataset_info(name)["size"])
        # the image becomes a sample of the training data (native size, its channels),
        # then takes the run's own test transform
        batch = torch.stack([resize(img[None].float(), (native, native))[0] for img in images])
        batch = batch.round().clamp(0, 255).to(torch.uint8)
        conv = {"channels": channels} if channels != batch.shape[1] else {}
        aug = zdata.make_augment(name, input_size, recipe=config.get("augment", "none"), train=False, **conv)
        return aug(batch, None, False)
    # image folders: shorter side to input*8/7, centre crop (the folder test transform), ImageNet statistics
    aug = zdata.make_augment(name or "folder:", input_size, recipe="none", train=False)
    q = round(input_size * 8 / 7)
    out = []
    for img in images:
        x = resize_shorter(img[None].float(), q)
        out.append(center_crop(x, input_size)[0])
    batch = torch.stack(out).round().clamp(0, 255).to(torch.uint8)
    return aug.normalise(batch)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import ConfigError
    from ..train.checkpoint import load_checkpoint
    from ..train.runtime import resolve_device

    if args.top < 1:
        raise ConfigError(f"--top must be positive, got {args.top}")
    device = resolve_device(args.device)
    if args.model is not None:
        from ..registry import create_model
        from ..weights import as_checkpoint

        args.images = list(args.inputs)
        model = create_model(args.model, weights=args.weights)
        ckpt = as_checkpoint(model.weights_meta)
    else:
        if len(args.inputs) < 2:
            raise ConfigError("give a checkpoint (or run folder) and at least one image, "
                              "or images with --model NAME for shipped weights")  # fmt: skip
        args.images = list(args.inputs[1:])
        model, ckpt = load_checkpoint(args.inputs[0], use_ema=not args.no_ema)
    channels = int(ckpt.get("in_channels") or getattr(model, "in_channels", 3))
    config = ckpt.get("config") or {}
    name = ckpt.get("data") or config.get("data") or ""
    data_channels = channels
    if name and not name.startswith("folder:"):
        from .. import data as zdata

        data_channels = int(zdata.dataset_info(name)["channels"])
    images = [_read_image(p, data_channels) for p in args.images]
    x = preprocess(images, ckpt).to(device)
    model.to(device)
    with torch.no_grad():
        probs = model(x).float().softmax(dim=1).cpu()
    classes = list(ckpt.get("classes") or [])
    k = min(args.top, probs.shape[1])
    top = probs.topk(k, dim=1)
    results = []
    for path, values, indices in zip(args.images, top.values.tolist(), top.indices.tolist()):
        results.append({
            "image": path,
            "top": [{"class": classes[i] if i < len(classes) else str(i), "index": i, "probability": v}
                    for v, i in zip(values, indices)],
        })  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(r["image"])
        for rank, t in enumerate(r["top"], 1):
            print(f"  {rank}. {t['class']:<20} {100 * t['probability']:6.2f}%")
    return 0
