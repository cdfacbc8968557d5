"""Augmentation on whole uint8 batches, on the batch's device.

One `Augment` describes the papers' recipes: resize to the input size a model needs,
random crop with zero padding (the ResNet CIFAR protocol's 4 pixels), horizontal flip,
VGG's scale jittering (smallest side S ~ U[Smin, Smax], then a random crop) and per-channel
normalisation. Everything is vectorised over the batch, with no Python loop per image:
without resizing, crop, padding and flip are one `take` on the uint8 batch; with resizing
(or scale jittering, a different size per image) bilinear resampling is separable, so
resize + crop + padding + flip are two batched matmuls with per-image interpolation
matrices (exactly F.interpolate's bilinear weights, align_corners=False). Images stay
uint8 until a resize or the final normalisation needs floats.

Random numbers are drawn on the CPU (`sample_params`) and moved to the device, so a batch
is augmented identically on any device, and a data-parallel rank can take its slice of the
draws made for the whole global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .catalogue import IMAGENET_MEAN, IMAGENET_STD, RECIPES, named_info

#: ITU-R BT.601 luma weights (what torchvision's rgb_to_grayscale uses).
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class Augment:
    """A batch augmentation; `aug(uint8 N x C x H x W)` returns float32 normalised images.

    size: resize (bilinear) the native images to size x size first.
    pad_crop: zero padding of the random crop (at the output size); 0 = none.
    flip: random horizontal flip (probability 1/2 per image).
    scale_jitter: (Smin, Smax): smallest side S ~ U{Smin..Smax}, then a random `crop`.
    crop: crop size after resize/jitter; None = the whole (resized) image.
    mean, std: per-channel normalisation of images scaled to [0, 1] (one value = all channels).
    channels: output channels (1 -> 3 repeats grey, 3 -> 1 takes luma); None = unchanged.
    """

    size: int | None = None
    pad_crop: int = 0
    flip: bool = False
    scale_jitter: tuple[int, int] | None = None
    crop: int | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    channels: int | None = None

    def __post_init__(self) -> None:
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)
        if len(self.mean) != len(self.std):
            raise ConfigError(f"mean has {len(self.mean)} values but std has {len(self.std)}")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std values must be positive, got {self.std}")
        if self.pad_crop < 0:
            raise ConfigError(f"pad_crop must be >= 0, got {self.pad_crop}")
        if self.size is not None and self.size < 1:
            raise ConfigError(f"size must be positive, got {self.size}")
        if self.crop is not None and self.crop < 1:
            raise ConfigError(f"crop must be positive, got {self.crop}")
        if self.scale_jitter is not None:
            smin, smax = (int(v) for v in self.scale_jitter)
            self.scale_jitter = (smin, smax)
            if self.crop is None:
                raise ConfigError("scale_jitter needs a crop size (VGG: S in [256, 512], crop 224)")
            if not self.crop <= smin <= smax:
                raise ConfigError(
                    f"scale_jitter needs crop <= Smin <= Smax, got crop {self.crop}, S in {self.scale_jitter}"
                )
            if self.pad_crop:
                raise ConfigError("pad_crop and scale_jitter are alternatives; use one of them")
        if self.size is not None and self.crop is not None and self.crop > self.size + 2 * self.pad_crop:
            padded = self.size + 2 * self.pad_crop
            raise ConfigError(f"crop {self.crop} is larger than the (padded) resized image {padded}")
        if self.channels is not None and self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}")

    # -- geometry --------------------------------------------------------------------------
    def _resized_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        return (self.size, self.size) if self.size is not None else hw

    def eval_scale(self) -> int | None:
        """The test scale Q of the deterministic path: VGG's Q = (Smin + Smax) / 2 under jitter."""
        if self.scale_jitter is not None:
            return (self.scale_jitter[0] + self.scale_jitter[1]) // 2
        return self.size

    def sample_params(self, n: int, generator: torch.Generator | None, hw: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Draw the random choices for `n` images of native size `hw` (CPU tensors, length n).

        The draws depend only on (n, generator state, hw), so slicing them gives the choices
        of any sub-batch: data-parallel ranks slice the draws of the global batch.
        """
        dev = generator.device if generator is not None else torch.device("cpu")
        p: dict[str, torch.Tensor] = {}
        if self.scale_jitter is not None:
            smin, smax = self.scale_jitter
            p["s"] = torch.randint(smin, smax + 1, (n,), generator=generator, device=dev)
            # offsets inside each image's own resized size, drawn as uniforms and scaled later
            p["u"] = torch.rand((n, 2), generator=generator, device=dev, dtype=torch.float64)
        else:
            h1, w1 = self._resized_hw(hw)
            ch, cw = self.crop or h1, self.crop or w1
            span_h, span_w = h1 + 2 * self.pad_crop - ch, w1 + 2 * self.pad_crop - cw
            if span_h < 0 or span_w < 0:
                raise ConfigError(f"crop {self.crop} is larger than the resized image {h1}x{w1}")
            p["oy"] = torch.randint(0, span_h + 1, (n,), generator=generator, device=dev)
            p["ox"] = torch.randint(0, span_w + 1, (n,), generator=generator, device=dev)
        if self.flip:
            p["flip"] = torch.rand((n,), generator=generator, device=dev) < 0.5
        return p

    def __call__(
        self, images_uint8: torch.Tensor, generator: torch.Generator | None = None, train: bool = True
    ) -> torch.Tensor:
        """Augment (train=True) or preprocess deterministically (train=False) a batch."""
        if images_uint8.dim() != 4:
            raise ConfigError(f"Augment expects a batch N x C x H x W, got shape {tuple(images_uint8.shape)}")
        if not train:
            return self.apply_eval(images_uint8)
        params = self.sample_params(images_uint8.shape[0], generator, tuple(images_uint8.shape[-2:]))
        return self.apply(images_uint8, params)

    def apply(self, images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Augment with pre-drawn `params` (from `sample_params`, possibly sliced)."""
        _, _, h0, w0 = images.shape
        flip = params.get("flip")
        if self.scale_jitter is not None:
            c = int(self.crop)  # type: ignore[arg-type]
            s = params["s"].to(torch.float64)
            m = float(min(h0, w0))
            # each image resized so that its smaller side is S_i (VGG), then a random crop
            hi, wi = torch.round(s * h0 / m), torch.round(s * w0 / m)
            oy = torch.floor(params["u"][:, 0] * (hi - c + 1))
            ox = torch.floor(params["u"][:, 1] * (wi - c + 1))
            x = _resample(images, oy, ox, hi, wi, c, c, flip)
        else:
            h1, w1 = self._resized_hw((h0, w0))
            ch, cw = self.crop or h1, self.crop or w1
            k = self.pad_crop
            oy, ox = params["oy"] - k, params["ox"] - k  # offsets in the unpadded resized image
            if (h1, w1) == (h0, w0):
                if k == 0 and flip is None and (ch, cw) == (h0, w0):
                    x = images
                else:
                    x = _crop_flip_uint8(images, oy, ox, ch, cw, flip, padded=k > 0)
            else:
                # few distinct offsets: index precomputed interpolation matrices
                dev = images.device
                ty = self._table(h0, h1, ch, dev, False)
                tx = self._table(w0, w1, cw, dev, flip is not None)
                iy = params["oy"].to(dev)
                ix = params["ox"].to(dev)
                if flip is not None:
                    ix = ix + flip.to(dev).long() * (w1 + 2 * k - cw + 1)
                ry, rx = ty.index_select(0, iy), tx.index_select(0, ix)
                xf = images.to(torch.float32)
                x = torch.matmul(torch.matmul(ry[:, None], xf), rx[:, None].transpose(-1, -2))
        return self.normalise(x)

    def apply_eval(self, images: torch.Tensor) -> torch.Tensor:
        """Deterministic preprocessing: resize (shorter side to Q under jitter), centre crop, normalise."""
        n, _, h0, w0 = images.shape
        q = self.eval_scale()
        if q is None:
            h1, w1 = h0, w0
        elif self.scale_jitter is not None:  # shorter side to Q, as VGG tests
            m = min(h0, w0)
            h1, w1 = round(h0 * q / m), round(w0 * q / m)
        else:
            h1, w1 = q, q
        ch, cw = self.crop or h1, self.crop or w1
        if ch > h1 or cw > w1:
            raise ConfigError(f"centre crop {self.crop} is larger than the resized image {h1}x{w1}")
        # centre offsets rounded like torchvision's CenterCrop
        top, left = int(round((h1 - ch) / 2.0)), int(round((w1 - cw) / 2.0))
        if (h1, w1) == (h0, w0):
            x = images[..., top : top + ch, left : left + cw]
        else:
            ones = torch.ones(n, dtype=torch.int64)
            x = _resample(images, ones * top, ones * left, h1, w1, ch, cw, None)
        return self.normalise(x)

    def __getstate__(self) -> dict[str, Any]:
        # the cached interpolation matrices are derived data: never pickle them
        return {k: v for k, v in self.__dict__.items() if k != "_tables"}

    def _table(self, src: int, length: int, out: int, device: torch.device, flips: bool) -> torch.Tensor:
        """Interpolation matrices for every crop offset (then every flipped one), cached per device."""
        key = (src, length, out, str(device), flips)
        cache = self.__dict__.setdefault("_tables", {})
        if key not in cache:
            k = self.pad_crop
            offsets = torch.arange(length + 2 * k - out + 1) - k
            mats = [_axis_matrix(offsets, length, src, out, None)]
            if flips:
                mats.append(_axis_matrix(offsets, length, src, out, torch.ones(len(offsets), dtype=torch.bool)))
            cache[key] = torch.cat(mats).to(device)
        return cache[key]

    # -- channels and normalisation ----------------------------------------------------------
    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Channel conversion and (x / 255 - mean) / std, as float32 (x uint8 or float 0..255)."""
        n, cin, h, w = x.shape
        cout = self.channels or cin
        if cout != cin:
            if cin == 1 and cout == 3:
                x = x.expand(n, 3, h, w)
            elif cin == 3 and cout == 1:
                luma = torch.tensor(_LUMA, device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
                x = (x.to(torch.float32) * luma).sum(dim=1, keepdim=True)
            else:
                raise ConfigError(f"cannot convert {cin} channels to {cout}")
        mean, std = self.mean, self.std
        if len(mean) == 1:
            mean, std = mean * cout, std * cout
        if len(mean) != cout:
            raise ConfigError(f"normalisation has {len(mean)} channels but the images have {cout}")
        std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, cout, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, cout, 1, 1)
        # one multiply-add: x * 1/(255 std) - mean/std; the multiply also converts uint8 to float
        return torch.mul(x, 1.0 / (255.0 * std_t)).sub_(mean_t / std_t)


# -- vectorised geometry -----------------------------------------------------------------------
def _axis_matrix(offset: torch.Tensor, length: Any, src: int, out: int, flip: torch.Tensor | None) -> torch.Tensor:
    """Per-image bilinear interpolation matrices (n, out, src) along one axis (built on the CPU).

    Row j of image i samples position offset_i + j (reversed under flip) of the source
    resized to `length` (an int or one value per image), with F.interpolate's convention
    (align_corners=False): source coordinate (r + 0.5) * src / length - 0.5, clamped at the
    borders. Rows outside [0, length) are zero: the zero padding of a padded crop.
    """
    n = offset.shape[0]
    jj = torch.arange(out, dtype=torch.float64)[None, :].expand(n, out)
    if flip is not None:
        jj = torch.where(flip.cpu()[:, None], (out - 1) - jj, jj)
    lf = torch.as_tensor(length, dtype=torch.float64).cpu()
    lf = lf.reshape(-1, 1) if lf.dim() else lf
    r = offset.cpu().to(torch.float64)[:, None] + jj  # position in the resized image
    valid = (r >= 0) & (r < lf)
    pos = ((r + 0.5) * (src / lf) - 0.5).clamp_min(0.0)
    i0 = pos.floor().clamp_max(src - 1)
    lam = pos - i0
    i1 = (i0 + 1).clamp_max(src - 1)
    zero = torch.zeros_like(lam)
    m = torch.zeros(n, out, src, dtype=torch.float64)
    m.scatter_add_(2, i0.long()[..., None], torch.where(valid, 1.0 - lam, zero)[..., None])
    m.scatter_add_(2, i1.long()[..., None], torch.where(valid, lam, zero)[..., None])
    return m.to(torch.float32)


def _resample(
    x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, h1: Any, w1: Any, ch: int, cw: int, flip: torch.Tensor | None
) -> torch.Tensor:
    """Resize to (h1, w1) (per image when tensors), crop ch x cw at (oy, ox), flip: two matmuls.

    Bilinear resizing is separable, so out_i = Ry_i @ x_i @ Rx_i^T with (ch x H) and
    (cw x W) matrices; the crop, the zero padding and the flip are rows of those matrices.
    Returns float32 in the input's 0..255 scale.
    """
    _, _, h0, w0 = x.shape
    ry = _axis_matrix(oy, h1, h0, ch, None).to(x.device, non_blocking=True)
    rx = _axis_matrix(ox, w1, w0, cw, flip).to(x.device, non_blocking=True)
    xf = x.to(torch.float32)
    return torch.matmul(torch.matmul(ry[:, None], xf), rx[:, None].transpose(-1, -2))


def _crop_flip_uint8(
    x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, ch: int, cw: int, flip: torch.Tensor | None,
    padded: bool = True,
) -> torch.Tensor:
    """Crop ch x cw at (oy, ox) (outside the image = zero padding) and flip, staying uint8.

    One `take` with linear indices builds the whole N x C x ch x cw batch.
    """
    n, c, h, w = x.shape
    dev = x.device
    oy, ox = oy.to(dev), ox.to(dev)
    rows = oy[:, None] + torch.arange(ch, device=dev)  # (n, ch)
    ar_w = torch.arange(cw, device=dev)
    cols = ox[:, None] + ar_w
    if flip is not None:
        cols = torch.where(flip.to(dev)[:, None], ox[:, None] + (cw - 1 - ar_w), cols)
    lin = (
        (torch.arange(n, device=dev) * (c * h * w))[:, None, None, None]
        + (torch.arange(c, device=dev) * (h * w))[None, :, None, None]
        + (rows.clamp(0, h - 1) * w)[:, None, :, None]
        + cols.clamp(0, w - 1)[:, None, None, :]
    )
    out = x.reshape(-1).take(lin)
    if not padded:
        return out
    valid = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
    return out * valid  # zero padding (uint8 * bool stays uint8)


# -- helpers shared with evaluation ------------------------------------------------------------
def resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False; antialiased when shrinking) to float32."""
    xf = x if x.is_floating_point() else x.to(torch.float32)
    if tuple(xf.shape[-2:]) == tuple(hw):
        return xf
    shrink = hw[0] < xf.shape[-2] or hw[1] < xf.shape[-1]
    return F.interpolate(xf, size=tuple(hw), mode="bilinear", align_corners=False, antialias=shrink)


def resize_shorter(x: torch.Tensor, q: int) -> torch.Tensor:
    """Resize so that the shorter side is `q` (isotropic, VGG's test scale Q)."""
    h, w = x.shape[-2:]
    m = min(h, w)
    return resize(x, (round(h * q / m), round(w * q / m)))


def center_crop(x: torch.Tensor, c: int) -> torch.Tensor:
    """The centre c x c window (offsets rounded like torchvision's CenterCrop)."""
    h, w = x.shape[-2:]
    if c > h or c > w:
        raise ConfigError(f"centre crop {c} is larger than the image {h}x{w}")
    top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
    return x[..., top : top + c, left : left + c]


def make_augment(
    dataset_name: str, input_size: int, recipe: str = "standard", train: bool = True, **overrides: Any
) -> Augment:
    """The augmentation of a recipe for a data set and a model input size.

    recipe "none": resize + normalise; "flip": that and a horizontal flip; "standard": pad-crop by input/8 (4 at 32, CIFAR's) and
    horizontal flip (no flip for mnist: digits are not mirror-symmetric); "jitter": VGG's
    scale jittering S ~ U[Smin, 2 Smin], Smin = input*8/7 (256 for 224), random crop, flip.
    train=False gives the matching deterministic transform (resize to Q, centre crop).
    `overrides` set any Augment field, e.g. `channels=3` for a 3-channel model on grey data.
    """
    if recipe not in RECIPES:
        raise ConfigError(f"unknown augmentation recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    if input_size < 1:
        raise ConfigError(f"input size must be positive, got {input_size}")
    if dataset_name.startswith("folder:"):
        native, mean, std, base = None, IMAGENET_MEAN, IMAGENET_STD, "folder"
    else:
        info = named_info(dataset_name)
        native, mean, std, base = info["size"], info["mean"], info["std"], info["name"]
    channels = overrides.get("channels")
    if channels is not None and len(mean) == 1 and channels > 1:
        mean, std = tuple(mean) * channels, tuple(std) * channels  # grey statistics on every copy
    elif channels is not None and len(mean) == 3 and channels == 1:
        mean = (sum(w * m for w, m in zip(_LUMA, mean)),)
        std = (sum(w * s for w, s in zip(_LUMA, std)),)
    kw: dict[str, Any] = {"mean": tuple(mean), "std": tuple(std)}
    size = None if native == input_size else input_size
    if recipe == "jitter":
        smin = round(input_size * 8 / 7)
        if train:
            kw.update(scale_jitter=(smin, 2 * smin), crop=input_size, flip=True)
        else:
            kw.update(size=(smin + 2 * smin) // 2, crop=input_size)
    else:
        kw["size"] = size
        if recipe == "standard" and train:
            kw.update(pad_crop=max(1, input_size // 8), flip=base != "mnist")
        elif recipe == "flip" and train:
            kw.update(flip=base != "mnist")
    kw.update(overrides)
    return Augment(**kw)
