"""User-facing error types.

Every error a user can cause (a wrong name, bad notation, an input too small, missing or
corrupt data, a bad checkpoint, a bad option) is raised as a subclass of `ConvzooError`.
The CLI turns these into one clear message and exit status 2; anything else is a bug.
"""

from __future__ import annotations

import re


class ConvzooError(Exception):
    """Base class of the errors a user can cause. `str(err)` is the whole message."""


class UnknownModelError(ConvzooError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputSizeError(ConvzooError, ValueError):
    """An input too small (or of the wrong shape) for a network; names the layer."""


#: Characters of notation quoted each side of the caret in a `NotationError`.
_WINDOW = 120


class NotationError(ConvzooError, ValueError):
    """Malformed compact notation; carries the text and the position of the fault."""

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        # a quoted token can be megabytes long ('(Conv' + 5,000 digits): keep each word short
        self.message = re.sub(r"\S{61,}", lambda m: m.group(0)[:40] + f"...({len(m.group(0)):,} characters)", message)
        self.text = text
        self.position = position
        super().__init__(self._render())

    def _render(self) -> str:
        if self.position is None or not self.text:
            return self.message
        # a window of the text around the fault (a megabyte of layers must not become the message)
        lo = max(0, self.position - _WINDOW)
        hi = min(len(self.text), self.position + _WINDOW)
        head, tail = ("..." if lo else ""), ("..." if hi < len(self.text) else "")
        # every whitespace character prints as one column, so the caret stays aligned
        line = "".join(" " if ch.isspace() else ch for ch in self.text[lo:hi])
        return f"{self.message}\n  {head}{line}{tail}\n  {' ' * (len(head) + self.position - lo)}^"


class SpecError(ConvzooError, ValueError):
    """A module that the compact notation cannot express (raised by `to_spec`)."""


class DataError(ConvzooError):
    """Missing, corrupt or truncated data; names the file or the places looked."""


class CheckpointError(ConvzooError):
    """A damaged checkpoint, or one made for another model."""


class ConfigError(ConvzooError, ValueError):
    """An invalid option or configuration value."""


class RunFolderBusyError(ConfigError):
    """The run folder is owned by another live process (`convzoo.train.runlock`)."""


class WeightsError(ConvzooError):
    """Shipped weights that do not exist, do not fit the request, or fail their checks."""


class NonFiniteLossError(ConvzooError):
    """Training stopped because the loss (or the weights) became NaN or infinite; the last
    good checkpoint is kept."""
