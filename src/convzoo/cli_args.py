"""Argument values shared by the commands, parsed by one rule each. No torch.

`--input` (summary, spec, report, export, viz) takes an input size in any of three forms:

- `CxHxW`: channels, height, width (`3x224x224`);
- `HxW`: height and width, with the channels the command's model takes (`224x224`);
- `N`: one side, a square (`224`).

`x`, `X`, `×` and `*` all separate the numbers, and spaces around them are ignored. Every
number must be a positive integer. A value that is none of these is a `ConfigError` with
one message, `INPUT_SIZE_ERROR`, whichever command read it.
"""

from __future__ import annotations

import re

from .errors import ConfigError

#: the metavar `--help` shows for an input size
INPUT_METAVAR = "CxHxW"

#: the one message of a value that is not an input size (`{text!r}` is the value given)
INPUT_SIZE_ERROR = (
    "--input {text!r}: expected CxHxW, HxW or one side N, in positive integers (e.g. 3x224x224, 224x224 or 224)"
)

_SEPARATOR = re.compile(r"\s*[xX×*]\s*")


def input_size_parts(text: str) -> tuple[int | None, int, int]:
    """`(C, H, W)` of an `--input` value; C is None where the text gives only HxW or N."""
    parts = _SEPARATOR.split(str(text).strip())
    if not 1 <= len(parts) <= 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ConfigError(INPUT_SIZE_ERROR.format(text=text))
    nums = [int(p) for p in parts]
    if min(nums) < 1:
        raise ConfigError(INPUT_SIZE_ERROR.format(text=text))
    if len(nums) == 1:
        return None, nums[0], nums[0]
    if len(nums) == 2:
        return None, nums[0], nums[1]
    return nums[0], nums[1], nums[2]


def parse_input_size(text: str, channels: int = 3) -> tuple[int, int, int]:
    """`(C, H, W)` of an `--input` value; `channels` fills C where the text gives only HxW or N
    (the model's own input channels where the command knows them, else 3)."""
    c, h, w = input_size_parts(text)
    return (channels if c is None else c), h, w
