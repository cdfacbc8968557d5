"""Test protocols: which views of every batch are scored, worked out once before the loop.

`plan_protocol` reads the evaluation's options, the model and the data and returns a
`Protocol`: the input size, the test scales Q, the normalisation, and which views
(`Protocol.views`) each batch is seen through:

- single crop: the image resized to the test scale Q, centre crop of the input size;
- 10-crop (AlexNet, ResNet): the 4 corner crops and the centre crop of the image at scale Q,
  and their horizontal flips;
- multi-scale (VGG, Sec. 4.2): the views at each of several test scales Q;
- small images (a data set whose images are no larger than the network input, such as
  Fashion-MNIST): resizing them up to a test scale Q > input shows the network objects
  larger than it ever saw in training, so the default 10-crop views come from what training
  showed instead: the 4 corner crops and the centre of the zero-padded canvas of the
  pad-and-crop augmentation (`train_augment.pad_crop`; the centre crop is the single-crop
  view), mirrored only when training flipped. Explicit `scales` are honoured as given.
- dense (VGG, Sec. 3.2): the whole image at scale Q through the densified network
  (`convzoo.evaluate.dense`), and with `flip` its mirror too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ..data import ArrayDataset, Augment, FolderDataset, center_crop, resize_shorter
from ..errors import ConfigError, DataError


@dataclass(frozen=True)
class Protocol:
    """The views of one evaluation.

    scales: the test scales Q (shorter side); None stands for the images as they come (a
    loader's batches, or arrays at the input size without a resize). canvas: for images no
    larger than the input with the default 10 crops, the training augmentation whose padded
    canvas gives the views (its `pad_crop` and `flip`); None otherwise. native: the side of an
    array data set's images.
    """

    input_size: int
    crops: int
    scales: tuple[int | None, ...]
    dense: bool
    flip: bool
    norm: Augment
    canvas: Augment | None = None
    native: int | None = None

    @property
    def test_scales(self) -> list[int]:
        """The test scales as reported: None read as the input size."""
        return [q if q is not None else self.input_size for q in self.scales]

    def views(self, x: torch.Tensor) -> Iterator[tuple[bool, torch.Tensor]]:
        """(dense, view) for every view of batch `x`, in the order their scores are averaged;
        `dense` says the view goes through the densified network."""
        if self.canvas is not None and not x.is_floating_point():
            for v in self.canvas_views(x):
                yield False, v
            return
        size = self.input_size
        for q in self.scales:
            xq = self.at_scale(x, q)
            if self.crops == 10:
                for v in ten_crops(xq, size):
                    yield False, v
            elif not self.dense:
                h, w = xq.shape[-2:]
                v = center_crop(xq, size) if (h, w) != (size, size) else xq
                yield False, v
                if self.flip:
                    yield False, v.flip(-1)
            if self.dense:
                yield True, xq
                if self.flip:
                    yield True, xq.flip(-1)

    def at_scale(self, x: torch.Tensor, q: int | None) -> torch.Tensor:
        """The batch at test scale q (shorter side), normalised float."""
        if x.is_floating_point():  # already normalised (a DataLoader's batches)
            return x if q is None or min(x.shape[-2:]) == q else resize_shorter(x, q)
        if q is None:
            return self.norm.normalise(x)
        if x.shape[-1] == x.shape[-2]:  # the same bilinear resampling as the training augmentation
            return dataclasses.replace(self.norm, size=q).apply_eval(x)
        return self.norm.normalise(resize_shorter(x, q))

    def canvas_views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The corner and centre crops of the padded canvas (training's extreme and middle
        offsets), then their mirrors when training flipped."""
        aug = self.canvas
        assert aug is not None
        n, k = x.shape[0], aug.pad_crop
        boxes = [(k, k)] if k == 0 else [(0, 0), (0, 2 * k), (2 * k, 0), (2 * k, 2 * k), (k, k)]
        views = []
        for flipped in ((False, True) if aug.flip else (False,)):
            for oy, ox in boxes:
                params = {"oy": torch.full((n,), oy), "ox": torch.full((n,), ox)}
                if aug.flip:
                    params["flip"] = torch.full((n,), flipped)
                views.append(aug.apply(x, params))
        return views

    def describe(self) -> str:
        """The views in words (what `convzoo eval` prints as `views:`)."""
        c = f"{self.input_size}x{self.input_size}"
        if self.canvas is not None:
            pad, mirrored, native = self.canvas.pad_crop, self.canvas.flip, self.native
            size = self.input_size + 2 * pad
            src = f"the {native}x{native} image" + (f" resized to {c}" if native != self.input_size else "")
            where = (f"the corners and centre of the {size}x{size} training canvas ({src}, zero-padded by {pad})"
                     if pad else f"{src} as it is (trained without pad-and-crop: corners = centre)")  # fmt: skip
            return f"{c} crops at {where}" + (", and their mirrors" if mirrored else ", no mirrors (training did not flip)")
        scales = ", ".join(str(q) for q in self.test_scales)
        parts = []
        if self.crops == 10:
            parts.append(f"10 crops {c} (4 corners, centre, their mirrors) of the image at shorter side {scales}")
        elif not self.dense:
            parts.append(f"centre crop {c} of the image at shorter side {scales}" + (", and its mirror" if self.flip else ""))
        if self.dense:
            parts.append(f"dense: the whole image at shorter side {scales}" + (", and its mirror" if self.flip else ""))
        return "; ".join(parts)


def ten_crops(x: torch.Tensor, c: int) -> list[torch.Tensor]:
    """4 corners and centre (AlexNet Sec. 4.1), then their horizontal flips."""
    h, w = x.shape[-2:]
    if c > h or c > w:
        raise ConfigError(f"10-crop needs the test scale ({h}x{w}) to be at least the crop ({c})")
    top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
    boxes = [(0, 0), (0, w - c), (h - c, 0), (h - c, w - c), (top, left)]
    crops = [x[..., i : i + c, j : j + c] for i, j in boxes]
    return crops + [cr.flip(-1) for cr in crops]


def plan_protocol(
    model: nn.Module,
    data: Any,
    *,
    input_size: int | None = None,
    crops: int = 1,
    scales: Sequence[int] | None = None,
    dense: bool = False,
    flip: bool = False,
    augment: Augment | None = None,
    train_augment: Augment | None = None,
) -> Protocol:
    """The protocol of an evaluation (`convzoo.evaluate.evaluate`'s options), checked.

    input_size: the size the model was trained at (default: `augment`'s crop or size, the
    registry's default input of a zoo model, else the side of an array data set's images).
    scales default to `augment`'s test scale, else the input size; for 10 crops (and for a
    folder data set) input*8/7, 256 for 224. Raises ConfigError for impossible options.
    """
    if crops not in (1, 10):
        raise ConfigError(f"crops must be 1 or 10, got {crops}")
    is_array = isinstance(data, ArrayDataset)
    is_folder = isinstance(data, FolderDataset)
    size = _input_size(model, data, input_size, augment, is_array)

    # images no larger than the network input: views from the training canvas
    native = int(data.images.shape[-1]) if is_array else None
    norm = _normalisation(model, data, augment, is_array)
    canvas: Augment | None = None
    if is_array and crops == 10 and scales is None and not dense and native is not None and native <= size:
        pad = int(getattr(train_augment, "pad_crop", 0) or 0)
        mirrored = bool(getattr(train_augment, "flip", True)) if train_augment is not None else True
        canvas = Augment(size=None if native == size else size, pad_crop=pad, flip=mirrored,
                         mean=norm.mean, std=norm.std, channels=norm.channels)  # fmt: skip

    if scales is not None:
        qs: list[int | None] = [int(q) for q in scales]
        if not qs or any(q < 1 for q in qs):  # type: ignore[operator]
            raise ConfigError(f"scales must be positive sizes, got {list(scales)}")
    else:
        q0 = augment.eval_scale() if augment is not None else None
        if is_folder and (q0 is None or q0 <= size):
            q0 = round(size * 8 / 7)  # the folder loader's test transform: 256 -> 224
        elif is_array and q0 is None:
            q0 = size  # the arrays' test transform: resize to the input size
        if crops == 10 and canvas is None and (q0 is None or q0 <= size):
            q0 = round(size * 8 / 7)
        qs = [q0]
    return Protocol(input_size=size, crops=crops, scales=tuple(qs), dense=dense, flip=flip, norm=norm,
                    canvas=canvas, native=native)  # fmt: skip


def _input_size(model: nn.Module, data: Any, input_size: int | None, augment: Augment | None, is_array: bool) -> int:
    """The input size the model was trained at."""
    if input_size is None and augment is not None:
        input_size = augment.crop or augment.size
    if input_size is None:
        name = getattr(model, "zoo_name", None)
        if name is not None:
            from ..registry import model_info

            input_size = model_info(name).default_input[-1]
    if input_size is None:
        if is_array:
            input_size = int(data.images.shape[-1])
        else:
            raise ConfigError("evaluate needs input_size for this data")
    return input_size


def _normalisation(model: nn.Module, data: Any, augment: Augment | None, is_array: bool) -> Augment:
    """Normalisation of uint8 batches (the geometry is each view's): `augment`'s statistics,
    else an array data set's own (none for a data set made in memory: images in [0, 1])."""
    if augment is not None:
        return Augment(mean=augment.mean, std=augment.std, channels=augment.channels)
    if is_array:
        stats = data.info if "mean" in (data.info or {}) else _known_stats(data.name)
        return Augment(mean=stats.get("mean", (0.0,)), std=stats.get("std", (1.0,)),
                       channels=getattr(model, "in_channels", None))  # fmt: skip
    return Augment()


def _known_stats(name: str) -> dict[str, Any]:
    from ..data import dataset_info

    try:
        return dataset_info(name)
    except DataError:  # a data set made in memory: no statistics, images scaled to [0, 1]
        return {}
