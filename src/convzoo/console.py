"""The rich console every command prints tables through.

On a terminal it is rich's own (the terminal's width). Anywhere else (a pipe, a file) rich
would assume 80 columns and cut or fold cells ("132,863,3…"); there the console is given
room enough that every table keeps its natural width, so nothing is ever cut. `COLUMNS`
set in the environment still wins, as rich documents.
"""

from __future__ import annotations

import os
from typing import Any

#: width used when the output is not a terminal: wider than any table the commands print
UNBOUNDED = 10_000


def make_console(*, stderr: bool = False, **kwargs: Any) -> Any:
    """A `rich.console.Console` for stdout (or stderr) that never cuts a table in a pipe or file."""
    from rich.console import Console

    console = Console(stderr=stderr, **kwargs)
    if "width" not in kwargs and not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(stderr=stderr, width=UNBOUNDED, **kwargs)
    return console
