"""Evaluation with the papers' protocols: top-k, 10-crop, multi-scale, VGG's dense evaluation.

- single crop: the image resized to the test scale Q, centre crop of the input size;
- 10-crop (AlexNet, ResNet): the 4 corner crops and the centre crop of the image at scale Q,
  and their horizontal flips; the softmax outputs are averaged;
- multi-scale (VGG, Sec. 4.2): class posteriors averaged over several test scales Q;
- small images (a data set whose images are no larger than the network input, such as
  Fashion-MNIST): resizing them up to a test scale Q > input shows the network objects
  larger than it ever saw in training, so the default 10-crop views come from what training
  showed instead: the 4 corner crops and the centre of the zero-padded canvas of the
  pad-and-crop augmentation (`train_augment.pad_crop`; the centre crop is the single-crop
  view), mirrored only when training flipped. Explicit `scales` are honoured as given.
- dense (VGG, Sec. 3.2): the fully connected layers become convolutions (`densify`), the
  network runs on the whole image at scale Q, the class score map is averaged spatially, and
  with `flip` the posteriors of the image and its mirror are averaged.
Accuracies and errors are percentages (0-100); the loss is the mean negative log of the
(averaged) posterior of the true class, in nats.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

# -- metrics ---------------------------------------------------------------------------------


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """How many rows have the true label among their k highest scores, for each k.

    A k above the number of classes counts every row as correct.
    """
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices
    hit = top.eq(labels.to(top.device).view(-1, 1))
    return {int(k): int(hit[:, : min(int(k), maxk)].any(dim=1).sum()) for k in ks}


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 num_classes x num_classes counts; row = true class, column = predicted class."""
    k = int(num_classes)
    p = preds.reshape(-1).long()
    t = labels.reshape(-1).long().to(p.device)
    if p.numel() and (int(p.max()) >= k or int(t.max()) >= k or int(p.min()) < 0 or int(t.min()) < 0):
        raise ConfigError(f"class index out of range 0..{k - 1} in the confusion matrix")
    return torch.bincount(t * k + p, minlength=k * k).view(k, k)


# -- dense evaluation ------------------------------------------------------------------------


class _Captured(Exception):
    """Carries the trunk's output out of the model's forward (not a RuntimeError on purpose)."""

    def __init__(self, tensor: torch.Tensor) -> None:
        super().__init__("captured")
        self.tensor = tensor


_HEAD_TYPES = (nn.Linear, nn.ReLU, nn.Dropout, nn.Flatten, nn.Identity)


class DenseModel(nn.Module):
    """A network whose fully connected head runs as convolutions (see `densify`).

    Shares its weights with the original model. `forward(x)` returns class scores averaged
    over the spatial score map (N x classes); `score_map(x)` returns the map itself.
    """

    def __init__(self, model: nn.Module, cut: nn.Module, cut_call: int, take_input: bool,
                 bridge: nn.Module, head: nn.Sequential) -> None:  # fmt: skip
        super().__init__()
        self.model = model
        self.bridge = bridge
        self.head = head
        # the module where the trunk ends, found by tracing; not a submodule twice over
        self.__dict__["_cut"] = cut
        self.cut_call = cut_call
        self.take_input = take_input

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map that the (bypassed) pooling and the flatten received."""
        calls = [0]

        def grab(t: torch.Tensor) -> None:
            calls[0] += 1
            if calls[0] == self.cut_call:
                raise _Captured(t)

        cut: nn.Module = self.__dict__["_cut"]
        if self.take_input:
            handle = cut.register_forward_pre_hook(lambda _m, inp: grab(inp[0]))
        else:
            handle = cut.register_forward_hook(lambda _m, _inp, out: grab(out))
        try:
            self.model(x)
        except _Captured as got:
            return got.tensor
        finally:
            handle.remove()
        raise ConfigError("the traced trunk did not run for this input; densify the model again")

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """Class score map N x classes x h x w (1 x 1 at the training size)."""
        return self.head(self.bridge(self.trunk(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_map(x).mean(dim=(2, 3))


def _default_input(model: nn.Module, input_size: Any, in_channels: int | None) -> tuple[int, int, int]:
    if in_channels is None:
        in_channels = getattr(model, "in_channels", None)
        if in_channels is None:
            conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
            in_channels = conv.in_channels if conv is not None else None
    if input_size is None:
        name = getattr(model, "zoo_name", None)
        if name is not None:
            from .registry import model_info

            c, h, w = model_info(name).default_input
            return (in_channels or c, h, w)
        raise ConfigError("densify needs the input size the model was trained at (input_size=...)")
    if in_channels is None:
        raise ConfigError("densify cannot tell the model's input channels; pass in_channels=...")
    if isinstance(input_size, int):
        return (in_channels, input_size, input_size)
    size = tuple(int(v) for v in input_size)
    return (in_channels, *size[-2:])  # type: ignore[return-value]


def densify(
    model: nn.Module, input_size: int | Sequence[int] | None = None, in_channels: int | None = None
) -> DenseModel:
    """The model with its fully connected layers turned into equivalent convolutions.

    Works on any model whose head is (adaptive pool?) -> flatten -> a chain of
    Linear/ReLU/Dropout (VGG, AlexNet, LeNet). The first Linear becomes a convolution whose
    kernel is the feature map it was trained on (VGG: 7x7), the next ones 1x1 convolutions
    (VGG Sec. 3.2). An adaptive pool that is the identity at the training size is bypassed
    (torchvision-style VGG/AlexNet), one that shrinks by an integer factor becomes an average
    pool, one that repeats pixels an upsampling, so a larger input gives a larger score map.
    At the training size the output equals the model's. `input_size` defaults to the
    registry's default input for zoo models. Raises ConfigError for other heads.
    """
    c, h, w = _default_input(model, input_size, in_channels)
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    records: list[dict[str, Any]] = []
    names = {id(m): n for n, m in model.named_modules()}
    counts: dict[int, int] = {}

    pending: dict[int, list[torch.Tensor | None]] = {}

    def pre_hook(mod: nn.Module, inputs: tuple[Any, ...]) -> None:
        # clone the input before the module runs: an in-place module would change it
        first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        pending.setdefault(id(mod), []).append(first.detach().clone() if first is not None else None)

    def hook(mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        in_value = pending[id(mod)].pop()
        if in_value is None or not isinstance(output, torch.Tensor):
            records.append({"module": mod, "ok": False})
            return
        counts[id(mod)] = counts.get(id(mod), 0) + 1
        records.append({
            "module": mod, "ok": True, "call": counts[id(mod)], "in": inputs[0], "in_shape": tuple(in_value.shape),
            "out": output, "out_value": output.detach().clone(), "in_value": in_value,
        })  # fmt: skip

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_pre_hook(pre_hook) for m in leaves]
    handles += [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            x = torch.randn((1, c, h, w), generator=g).to(device=device, dtype=dtype)
            y = model(x)
    finally:
        for hd in handles:
            hd.remove()
        model.train(was_training)
    if isinstance(y, (tuple, list)):
        y = y[0]
    last4 = max((i for i, r in enumerate(records) if r["ok"] and r["out"].dim() == 4), default=None)
    if last4 is None:
        raise ConfigError(f"{type(model).__name__} has no convolutional feature map to densify")
    cut = records[last4]
    head_recs = records[last4 + 1 :]
    for r in head_recs:
        if not r["ok"] or not isinstance(r["module"], _HEAD_TYPES):
            raise ConfigError(
                f"densify supports heads made of Linear/ReLU/Dropout/Flatten; found "
                f"{type(r['module']).__name__} ('{names.get(id(r['module']), '?')}') after the last feature map"
            )
    if not any(isinstance(r["module"], nn.Linear) for r in head_recs):
        raise ConfigError(f"{type(model).__name__} has no fully connected layer after its last feature map")
    # the head must be a plain chain: each module reads what the previous one returned,
    # starting from the flattened feature map, and the model returns the last output
    flat = cut["out_value"].flatten(1)
    first_in = head_recs[0]["in_value"]
    if not (first_in.shape == flat.shape and torch.equal(first_in, flat)) and head_recs[0]["in"] is not cut["out"]:
        raise ConfigError(
            "the fully connected head does not read the flattened feature map (densify needs a plain chain)"
        )
    for prev, cur in zip(head_recs, head_recs[1:]):
        if cur["in"] is not prev["out"] and not (
            cur["in_value"].shape == prev["out_value"].flatten(1).shape
            and torch.equal(cur["in_value"], prev["out_value"].flatten(1))
        ):
            raise ConfigError(
                f"'{names.get(id(cur['module']), '?')}' does not read the output of "
                f"'{names.get(id(prev['module']), '?')}': the head is not a plain chain (functional ops in forward?)"
            )
    if not torch.equal(y.detach(), head_recs[-1]["out_value"]):
        raise ConfigError("the model's output is not the last fully connected layer's output")

    # the feature map the first Linear was trained on, and how to get it at any size
    cut_mod = cut["module"]
    bridge: nn.Module = nn.Identity()
    take_input = False
    fmap_shape = tuple(cut["out"].shape[1:])
    if isinstance(cut_mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        ih, iw = cut["in_shape"][-2:]
        oh, ow = fmap_shape[-2:]
        take_input = True
        if (ih, iw) == (oh, ow):
            bridge = nn.Identity()  # identity at the training size: bypass it
        elif ih % oh == 0 and iw % ow == 0:
            k = (ih // oh, iw // ow)
            bridge = nn.AvgPool2d(k, k) if isinstance(cut_mod, nn.AdaptiveAvgPool2d) else nn.MaxPool2d(k, k)
        elif oh % ih == 0 and ow % iw == 0:
            bridge = nn.Upsample(scale_factor=(oh // ih, ow // iw), mode="nearest")
        else:
            raise ConfigError(
                f"the adaptive pool maps {ih}x{iw} to {oh}x{ow} at the training size; dense evaluation needs "
                "an integer ratio (train at a size where the pool is the identity)"
            )
    layers: list[nn.Module] = []
    seen_linear = False
    for r in head_recs:
        m = r["module"]
        if isinstance(m, nn.Linear):
            if not seen_linear:
                ch, kh, kw = fmap_shape
                if ch * kh * kw != m.in_features:
                    raise ConfigError(
                        f"feature map {fmap_shape} does not match the first Linear's {m.in_features} inputs"
                    )
                conv = nn.Conv2d(ch, m.out_features, (kh, kw), bias=m.bias is not None)
                # flatten order is (C, H, W), so the Linear's weight rows are the kernel
                conv.weight = nn.Parameter(m.weight.detach().view(m.out_features, ch, kh, kw), requires_grad=False)
                seen_linear = True
            else:
                conv = nn.Conv2d(m.in_features, m.out_features, 1, bias=m.bias is not None)
                conv.weight = nn.Parameter(
                    m.weight.detach().view(m.out_features, m.in_features, 1, 1), requires_grad=False
                )
            if m.bias is not None:
                conv.bias = nn.Parameter(m.bias.detach(), requires_grad=False)
            layers.append(conv)
        elif isinstance(m, nn.ReLU):
            layers.append(nn.ReLU())
        elif isinstance(m, nn.Dropout):
            layers.append(nn.Dropout(m.p))
    dense = DenseModel(model, cut_mod, cut["call"], take_input, bridge, nn.Sequential(*layers))
    return dense.to(device).train(model.training)


# -- evaluation ------------------------------------------------------------------------------


def _ten_crops(x: torch.Tensor, c: int) -> list[torch.Tensor]:
    """4 corners and centre (AlexNet Sec. 4.1), then their horizontal flips."""
    h, w = x.shape[-2:]
    if c > h or c > w:
        raise ConfigError(f"10-crop needs the test scale ({h}x{w}) to be at least the crop ({c})")
    top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
    boxes = [(0, 0), (0, w - c), (h - c, 0), (h - c, w - c), (top, left)]
    crops = [x[..., i : i + c, j : j + c] for i, j in boxes]
    return crops + [cr.flip(-1) for cr in crops]


def _describe(crops: int, qs: Sequence[Any], input_size: int, dense: bool, flip: bool, canvas: Any,
              native: int | None) -> str:  # fmt: skip
    """The views of a protocol, in words (what `convzoo eval` prints)."""
    c = f"{input_size}x{input_size}"
    if canvas is not None:
        pad, mirrored = canvas
        size = input_size + 2 * pad
        src = f"{native}x{native} image" + (f" resized to {c}" if native != input_size else "")
        where = (f"corners and centre of the {size}x{size} training canvas ({src}, zero-padded by {pad})"
                 if pad else f"the {src} as it is (trained without pad-and-crop: corners = centre)")  # fmt: skip
        return f"{c} crops at the {where}" + (", and their mirrors" if mirrored else ", no mirrors (training did not flip)")
    scales = ", ".join(str(q if q is not None else input_size) for q in qs)
    parts = []
    if crops == 10:
        parts.append(f"10 crops {c} (4 corners, centre, their mirrors) of the image at shorter side {scales}")
    elif not dense:
        parts.append(f"centre crop {c} of the image at shorter side {scales}" + (", and its mirror" if flip else ""))
    if dense:
        parts.append(f"dense: the whole image at shorter side {scales}" + (", and its mirror" if flip else ""))
    return "; ".join(parts)


def _known_stats(name: str) -> dict[str, Any]:
    from .data import dataset_info
    from .errors import DataError

    try:
        return dataset_info(name)
    except DataError:  # a data set made in memory: no statistics, images scaled to [0, 1]
        return {}


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _logits(model: nn.Module, x: torch.Tensor, amp: bool) -> torch.Tensor:
    ctx = torch.autocast(x.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    with ctx:
        out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.float()


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 256,
    input_size: int | None = None,
    crops: int = 1,
    scales: Sequence[int] | None = None,
    dense: bool = False,
    flip: bool = False,
    device: Any = None,
    amp: bool = False,
    augment: Any = None,
    confusion: bool = False,
    workers: int = 2,
    train_augment: Any = None,
) -> dict[str, Any]:
    """Top-1/top-5 accuracy and error (percent), loss and optionally a confusion matrix.

    data: an ArrayDataset (uint8, preprocessed here with `augment`'s normalisation, or the
    data set's own statistics), a FolderDataset, or a DataLoader of (images, labels) batches
    (float batches are taken as already normalised). crops: 1 or 10. scales: test scales Q
    (default: `augment`'s test scale, else the input size; for 10 crops input*8/7, 256 for
    224). dense: VGG's dense evaluation (adds the dense view to any crops asked for when
    crops=10). flip: also average the mirrored view (single crop and dense).
    train_augment: the training augmentation; for images no larger than the input it
    defines the 10-crop views (see the module docstring). `result["protocol"]` describes
    the views used.
    """
    from .data import ArrayDataset, Augment, FolderDataset, resize_shorter
    from .data.augment import center_crop

    if crops not in (1, 10):
        raise ConfigError(f"crops must be 1 or 10, got {crops}")
    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    dev = torch.device(device) if device is not None else _model_device(model)
    model_dev = _model_device(model)
    if model_dev != dev:
        model.to(dev)

    # the input size the model was trained at
    if input_size is None and augment is not None:
        input_size = augment.crop or augment.size
    if input_size is None:
        name = getattr(model, "zoo_name", None)
        if name is not None:
            from .registry import model_info

            input_size = model_info(name).default_input[-1]
    is_array = isinstance(data, ArrayDataset)
    is_folder = isinstance(data, FolderDataset)
    if input_size is None:
        if is_array:
            input_size = int(data.images.shape[-1])
        else:
            raise ConfigError("evaluate needs input_size for this data")

    # images no larger than the network input: views from the training canvas
    native = int(data.images.shape[-1]) if is_array else None
    canvas: Any = None
    if is_array and crops == 10 and scales is None and not dense and native is not None and native <= input_size:
        pad = int(getattr(train_augment, "pad_crop", 0) or 0)
        mirrored = bool(getattr(train_augment, "flip", True)) if train_augment is not None else True
        canvas = (pad, mirrored)

    # test scales
    if scales is not None:
        qs = [int(q) for q in scales]
        if not qs or any(q < 1 for q in qs):
            raise ConfigError(f"scales must be positive sizes, got {list(scales)}")
    else:
        q0 = augment.eval_scale() if augment is not None else None
        if is_folder and (q0 is None or q0 <= input_size):
            q0 = round(input_size * 8 / 7)  # the folder loader's test transform: 256 -> 224
        elif is_array and q0 is None:
            q0 = input_size  # the arrays' test transform: resize to the input size
        if crops == 10 and canvas is None and (q0 is None or q0 <= input_size):
            q0 = round(input_size * 8 / 7)
        qs = [q0] if q0 is not None else [None]  # type: ignore[list-item]

    # normalisation of uint8 batches (geometry is done per scale below)
    norm: Augment
    if augment is not None:
        norm = Augment(mean=augment.mean, std=augment.std, channels=augment.channels)
    elif is_array:
        stats = data.info if "mean" in (data.info or {}) else _known_stats(data.name)
        norm = Augment(mean=stats.get("mean", (0.0,)), std=stats.get("std", (1.0,)),
                       channels=getattr(model, "in_channels", None))  # fmt: skip
    else:
        norm = Augment()
    dense_model = densify(model, input_size) if dense else None
    canvas_aug: Any = None
    if canvas is not None:
        canvas_aug = Augment(size=None if native == input_size else input_size, pad_crop=canvas[0], flip=canvas[1],
                             mean=norm.mean, std=norm.std, channels=norm.channels)  # fmt: skip

    def canvas_views(x: torch.Tensor) -> list[torch.Tensor]:
        """The corner and centre crops of the padded canvas (training's extreme and middle
        offsets), then their mirrors when training flipped."""
        n, k = x.shape[0], canvas_aug.pad_crop
        boxes = [(k, k)] if k == 0 else [(0, 0), (0, 2 * k), (2 * k, 0), (2 * k, 2 * k), (k, k)]
        views = []
        for flipped in ((False, True) if canvas_aug.flip else (False,)):
            for oy, ox in boxes:
                params = {"oy": torch.full((n,), oy), "ox": torch.full((n,), ox)}
                if canvas_aug.flip:
                    params["flip"] = torch.full((n,), flipped)
                views.append(canvas_aug.apply(x, params))
        return views

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if is_array:
            for i in range(0, len(data), batch_size):
                yield data.images[i : i + batch_size], data.labels[i : i + batch_size]
        elif is_folder:
            from .data import make_folder_loader

            qmax = max(q for q in qs if q is not None) if any(q is not None for q in qs) else input_size
            mean = augment.mean if augment is not None else None
            std = augment.std if augment is not None else None
            loader = make_folder_loader(data, batch_size, train=False, input_size=qmax, workers=workers,
                                        resize=qmax, mean=mean, std=std)  # fmt: skip
            yield from loader
        else:
            yield from data  # a DataLoader or any iterable of (images, labels)

    def at_scale(x: torch.Tensor, q: int | None) -> torch.Tensor:
        """The batch at test scale q (shorter side), normalised float."""
        if x.is_floating_point():  # already normalised (a DataLoader's batches)
            return x if q is None or min(x.shape[-2:]) == q else resize_shorter(x, q)
        if q is None:
            return norm.normalise(x)
        if x.shape[-1] == x.shape[-2]:  # the same bilinear resampling as the training augmentation
            return dataclasses.replace(norm, size=q).apply_eval(x)
        return norm.normalise(resize_shorter(x, q))

    was_training = model.training
    model.eval()
    if dense_model is not None:
        dense_model.eval()
    n = 0
    correct1 = correct5 = 0
    loss_sum = 0.0
    cm: torch.Tensor | None = None
    views_per_image = 0
    try:
        with torch.no_grad():
            for xb, yb in batches():
                xb = xb.to(dev, non_blocking=True)
                yb = yb.to(dev, non_blocking=True).long()
                if xb.shape[0] == 0:
                    continue
                logit_views: list[torch.Tensor] = []
                if canvas_aug is not None and not xb.is_floating_point():
                    logit_views = [_logits(model, v, amp) for v in canvas_views(xb)]
                for q in qs if not logit_views else ():
                    xq = at_scale(xb, q)
                    if crops == 10:
                        for v in _ten_crops(xq, input_size):
                            logit_views.append(_logits(model, v, amp))
                    elif not dense:
                        h, w = xq.shape[-2:]
                        v = center_crop(xq, input_size) if (h, w) != (input_size, input_size) else xq
                        logit_views.append(_logits(model, v, amp))
                        if flip:
                            logit_views.append(_logits(model, v.flip(-1), amp))
                    if dense_model is not None:
                        logit_views.append(_logits(dense_model, xq, amp))
                        if flip:
                            logit_views.append(_logits(dense_model, xq.flip(-1), amp))
                views_per_image = len(logit_views)
                if len(logit_views) == 1:
                    scores = logit_views[0]
                    loss_sum += float(F.cross_entropy(scores, yb, reduction="sum"))
                else:
                    # average the class posteriors (softmax) over views and scales
                    probs = torch.stack([lv.softmax(dim=1) for lv in logit_views]).mean(dim=0)
                    scores = probs
                    loss_sum += float(-probs.gather(1, yb[:, None]).clamp_min(1e-12).log().sum())
                hits = topk_correct(scores, yb, (1, 5))
                correct1 += hits[1]
                correct5 += hits[5]
                n += int(yb.shape[0])
                if confusion:
                    k = scores.shape[1]
                    part = confusion_matrix(scores.argmax(dim=1), yb, k).cpu()
                    cm = part if cm is None else cm + part
    finally:
        model.train(was_training)
        if model_dev != dev:
            model.to(model_dev)
    if n == 0:
        raise ConfigError("no samples to evaluate")
    top1, top5 = 100.0 * correct1 / n, 100.0 * correct5 / n
    result: dict[str, Any] = {
        "top1": top1,
        "top5": top5,
        "top1_error": 100.0 - top1,
        "top5_error": 100.0 - top5,
        "loss": loss_sum / n,
        "count": n,
        "crops": crops,
        "scales": [q if q is not None else input_size for q in qs],
        "dense": dense,
        "flip": flip,
        "views": views_per_image,
        "input_size": input_size,
        "protocol": _describe(crops, qs, input_size, dense, flip, canvas, native),
    }
    if confusion:
        result["confusion"] = cm.tolist() if cm is not None else []
    return result
