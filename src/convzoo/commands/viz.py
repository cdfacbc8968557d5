"""Pictures: first-layer filters, feature maps and top patches, curves, architecture, comparisons.

Every sub-command writes one PNG or SVG file chosen by the extension of --out
(`viz features` also writes the top-patch figure beside it, `NAME.patches.EXT`).
MODEL is a registry name (fresh weights); CHECKPOINT is a .pt file or a run folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="viz_command", metavar="WHAT", required=True)

    f = sub.add_parser("filters", help="the first layer's filters as a grid (colour for RGB)",
                       description="The first convolution's filters, each normalised on its own (AlexNet Fig. 3).")
    f.add_argument("ref", metavar="MODEL|CHECKPOINT", help="registry name, checkpoint file or run folder")
    f.add_argument("--columns", type=int, default=None, help="filters per row (default: about sqrt(1.6 n))")
    f.add_argument("--random", action="store_true",
                   help="with a model name: freshly initialised weights even when trained ones ship")  # fmt: skip
    _out(f)

    ft = sub.add_parser("features", help="feature maps for an image and the top activating dataset patches",
                        description="Feature maps of chosen layers for IMAGE, and for chosen channels the dataset "
                        "patches (receptive fields) that excite them most.")
    ft.add_argument("checkpoint", metavar="CHECKPOINT|MODEL",
                    help="checkpoint file, run folder, or a model name with shipped weights (`convzoo weights`)")
    ft.add_argument("image", metavar="IMAGE", help="an image file (PNG/JPEG), or test:N / train:N for the N-th image "
                    "of the checkpoint's data set")
    ft.add_argument("--layers", nargs="+", default=None, metavar="LAYER",
                    help="qualified module names (default: the model's stages, feature_info)")
    ft.add_argument("--channels", nargs="+", type=int, default=None, metavar="C",
                    help="channels of the last chosen layer for the top patches (default: the 4 most strongly "
                    "activated live channels; dead ones are never offered)")
    ft.add_argument("--max-channels", type=int, default=16, help="feature maps drawn per layer (default 16)")
    ft.add_argument("--data", default=None, help="data set to search for top patches (default: the run's)")
    ft.add_argument("--data-dir", default=None, help="where the data set's files are")
    ft.add_argument("--samples", type=int, default=2000, help="test images searched for top patches (default 2000)")
    ft.add_argument("--top", type=int, default=6, help="patches per channel (default 6)")
    ft.add_argument("--no-patches", action="store_true", help="only the feature maps")
    _out(ft)

    c = sub.add_parser("curves", help="training (thin) and test (bold) error against epochs",
                       description="Training and test error of one or more runs against epochs, overlaid.")
    c.add_argument("runs", nargs="+", metavar="RUN_DIR")
    c.add_argument("--labels", nargs="+", default=None, help="one legend label per run (default: folder names)")
    c.add_argument("--log-y", action="store_true", help="logarithmic error axis")
    c.add_argument("--title", default=None)
    _out(c)

    a = sub.add_parser("arch", help="architecture diagram with output shapes and parameter counts",
                       description="Blocks with output shapes and parameters; inception branches, residual and "
                       "dense connections drawn.")
    a.add_argument("model", metavar="MODEL", help="registry name, checkpoint file or run folder")
    a.add_argument("--input", default=None, metavar="CxHxW", help="input size (default: the model's)")
    a.add_argument("--depth", type=int, default=4, help="how deep to expand nested modules (default 4)")
    _out(a)

    cm = sub.add_parser("compare", help="accuracy against parameters and against MACs for trained runs",
                        description="Test top-1 accuracy of finished runs against parameters and MACs.")
    cm.add_argument("runs", nargs="+", metavar="RUN_DIR")
    cm.add_argument("--labels", nargs="+", default=None,
                    help="one label per run; runs sharing one are averaged (they must differ by seed alone); "
                    "by default runs of one model are averaged when only their seeds differ")
    cm.add_argument("--title", default=None)
    _out(cm)


def _out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="PATH", help="output file; .png or .svg")


def run(args: argparse.Namespace) -> int:
    from ..viz._common import check_out_path

    check_out_path(args.out)  # fail before any work
    handler = {"filters": _filters, "features": _features, "curves": _curves, "arch": _arch, "compare": _compare}
    return handler[args.viz_command](args)


def _done(*paths: Path) -> int:
    for p in paths:
        print(f"wrote {p}")
    return 0


def _filters(args: argparse.Namespace) -> int:
    from ..viz._common import load_model_or_checkpoint, save_figure
    from ..viz.filters import plot_filters

    model, ckpt = load_model_or_checkpoint(args.ref, shipped=not args.random)
    if ckpt is not None and ckpt.get("weights"):
        print(f"shipped weights {ckpt['weights']} (`convzoo weights`)")
    elif ckpt is None:
        print(f"{args.ref}: freshly initialised weights (no shipped weights for it; give a run folder for trained ones)")
    return _done(save_figure(plot_filters(model, columns=args.columns), args.out))


def _arch(args: argparse.Namespace) -> int:
    from ..cli_args import parse_input_size
    from ..viz._common import default_input_size, load_model_or_checkpoint, save_figure
    from ..viz.arch import plot_arch

    model, ckpt = load_model_or_checkpoint(args.model)
    default = default_input_size(model, ckpt)
    size = parse_input_size(args.input, channels=default[0]) if args.input else default
    return _done(save_figure(plot_arch(model, size, max_depth=args.depth), args.out))


def _curves(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..viz._common import save_figure
    from ..viz.curves import plot_curves, read_run

    if args.labels and len(args.labels) != len(args.runs):
        raise ConfigError(f"--labels: {len(args.labels)} labels for {len(args.runs)} runs")
    runs = [read_run(r, label=args.labels[i] if args.labels else None) for i, r in enumerate(args.runs)]
    return _done(save_figure(plot_curves(runs, title=args.title, log_y=args.log_y), args.out))


def _compare(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..viz._common import save_figure
    from ..viz.compare import compare_points, plot_compare

    if args.labels and len(args.labels) != len(args.runs):
        raise ConfigError(f"--labels: {len(args.labels)} labels for {len(args.runs)} runs")
    points, notes = compare_points(args.runs, labels=args.labels)
    for note in notes:  # what was averaged and what was kept apart
        print(note)
    return _done(save_figure(plot_compare(points=points, title=args.title), args.out))


def load_image(ref: str, ckpt: dict[str, Any], data: str | None, data_dir: str | None) -> "Any":
    """IMAGE as a uint8 tensor (C, H, W): a file, or test:N / train:N of the run's data set."""
    import torch

    from ..errors import ConfigError, DataError

    if ":" in ref and ref.split(":", 1)[0] in ("test", "train") and not Path(ref).exists():
        split, idx = ref.split(":", 1)
        try:
            i = int(idx)
        except ValueError:
            raise ConfigError(f"IMAGE {ref!r}: expected test:N or train:N with an integer N") from None
        ds = _dataset(ckpt, data, data_dir, split)
        if not 0 <= i < len(ds):
            raise ConfigError(f"IMAGE {ref!r}: the {split} split has {len(ds)} images")
        return ds.images[i]
    p = Path(ref)
    if not p.is_file():
        raise DataError(f"image {ref!r} does not exist (give a PNG/JPEG file, or test:N for a data set image)")
    try:
        from PIL import Image

        with Image.open(p) as im:
            im = im.convert("RGB")
            import numpy as np

            arr = torch.from_numpy(np.array(im, dtype=np.uint8))  # H x W x 3
    except Exception as err:  # noqa: BLE001 - any decoding failure is the user's file
        raise DataError(f"cannot read image {ref!r}: {err}") from None
    return arr.permute(2, 0, 1).contiguous()


def _dataset(ckpt: dict[str, Any], data: str | None, data_dir: str | None, split: str) -> Any:
    from ..errors import ConfigError

    cfg = ckpt.get("config") or {}
    name = data or cfg.get("data")
    if not name:
        raise ConfigError("the checkpoint does not say which data set it was trained on; give --data NAME")
    from ..data import load_dataset

    return load_dataset(name, split, data_dir or cfg.get("data_dir"))


def prepare(images_u8: Any, model: Any, ckpt: dict[str, Any], data: str | None) -> Any:
    """uint8 (N, C, H, W) images as the model saw them in evaluation: channels, size, normalisation."""
    import torch
    import torch.nn.functional as F

    from ..viz._common import default_input_size

    x = images_u8 if images_u8.dim() == 4 else images_u8.unsqueeze(0)
    c, h, w = default_input_size(model, ckpt)
    if x.shape[1] != c:  # an RGB file for a grey model, or the reverse
        x = x.float().mean(1, keepdim=True).to(torch.uint8) if c == 1 else x.expand(-1, c, -1, -1)
    cfg = ckpt.get("config") or {}
    name = data or cfg.get("data")
    try:  # the trainer's own evaluation transform, so the picture matches what was trained
        from ..data import make_augment

        aug = make_augment(name, h, recipe="none", train=False, channels=c)
        out = aug(x, train=False)
        if isinstance(out, torch.Tensor) and tuple(out.shape[1:]) == (c, h, w):
            return out.float()
    except Exception:  # noqa: BLE001 - fall back to a plain resize and normalisation
        pass
    out = x.float() / 255.0
    if tuple(out.shape[-2:]) != (h, w):
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
    try:
        from ..data import dataset_info

        info = dataset_info(name) if name else {}
        mean = torch.tensor(info.get("mean") or (0.5,) * c).view(1, -1, 1, 1)
        std = torch.tensor(info.get("std") or (0.5,) * c).view(1, -1, 1, 1)
        if mean.shape[1] == c:
            out = (out - mean) / std
    except Exception:  # noqa: BLE001
        pass
    return out


def _features(args: argparse.Namespace) -> int:
    from ..errors import CheckpointError, ConfigError
    from ..viz._common import find_checkpoint, load_checkpoint, load_model_or_checkpoint, save_figure
    from ..viz.features import default_layers, feature_maps, plot_feature_maps, plot_top_patches, top_patches

    path = find_checkpoint(args.checkpoint)
    if path is not None:
        model, ckpt = load_checkpoint(path)
    elif "/" in args.checkpoint or args.checkpoint.endswith(".pt"):
        raise CheckpointError(f"no such checkpoint or run folder: {args.checkpoint!r}")
    else:
        model, shipped = load_model_or_checkpoint(args.checkpoint, shipped=True)
        if shipped is None:
            raise CheckpointError(f"{args.checkpoint} has no shipped weights (`convzoo weights` lists those that do); "
                                  "give a checkpoint file or run folder")  # fmt: skip
        ckpt = shipped
    model.eval()
    layers = args.layers or default_layers(model)
    if not layers:
        raise ConfigError("the model has no convolution layers to show; name some with --layers")
    img = prepare(load_image(args.image, ckpt, args.data, args.data_dir), model, ckpt, args.data)
    maps = feature_maps(model, img[0], layers)
    name = ckpt.get("model_name", type(model).__name__)
    out = Path(args.out)
    written = [save_figure(plot_feature_maps(img[0], maps, max_channels=args.max_channels,
                                             title=f"{name}: feature maps of {args.image}"), out)]
    if not args.no_patches:
        if args.samples <= 0 or args.top <= 0:
            raise ConfigError("--samples and --top must be positive")
        ds = _dataset(ckpt, args.data, args.data_dir, "test")
        images = prepare(ds.images[: args.samples], model, ckpt, args.data)
        layer = layers[-1]
        if args.channels:
            patches = top_patches(model, images, layer, args.channels, k=args.top)
        else:  # the 4 most strongly activated live channels, never a dead one
            every = top_patches(model, images, layer, list(range(maps[layer].shape[0])), k=args.top)
            live = sorted((c for c, ps in every.items() if ps), key=lambda c: -every[c][0].activation)
            patches = {c: every[c] for c in live[:4]}
        dead = [c for c, ps in patches.items() if not ps]
        if dead:
            print(f"channel{'s' if len(dead) > 1 else ''} {', '.join(map(str, dead))} of {layer} never fire on "
                  f"{len(images)} images (dead): no patches")  # fmt: skip
            patches = {c: ps for c, ps in patches.items() if ps}
        if not patches:
            raise ConfigError(f"every chosen channel of {layer} is dead on these images; choose others with --channels")
        pout = out.with_name(f"{out.stem}.patches{out.suffix}")
        written.append(save_figure(plot_top_patches(patches, layer=layer), pout))
    return _done(*written)
