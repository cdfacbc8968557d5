"""The explorer's server: `create_app(runs_dir=...)` returns the ASGI application (Starlette)."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The explorer's ASGI app; see `convzoo.serve.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
