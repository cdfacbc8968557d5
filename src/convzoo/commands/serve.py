"""The explorer: a local web page that builds, measures and compares the networks.

Binds 127.0.0.1 unless --host says otherwise, prints its URL, and stops on Ctrl-C. The page
and its JSON API (/api/models, /api/analyze, /api/spec, /api/paper/TABLE, /api/compare)
call the same library functions as the other commands; nothing is fetched from elsewhere."""

from __future__ import annotations

import argparse
import ipaddress
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="folder of training runs the page may read (default runs/)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--no-helper", action="store_true",
                   help="analyse in this process only (by default a helper process runs each analysis's "
                        "training pass beside its inference pass: about half the time of a large network's update, "
                        "for a second process of about 500 MB)")  # fmt: skip


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    import socket

    from ..errors import ConfigError

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    try:
        import uvicorn

        from ..serve import create_app
    except ImportError as err:
        raise ConfigError(f"the explorer needs the serve extra: pip install 'convzoo[serve]' ({err})") from None
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host.strip("[]"), args.port))
    except OSError as err:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {err.strerror}") from None
    sock.listen(128)
    port = sock.getsockname()[1]
    extra = [] if _loopback(args.host) else [args.host]
    if extra:
        print(f"convzoo serve: warning: {args.host} is not a loopback address; anyone who can reach it can use the page",
              file=sys.stderr)  # fmt: skip
    app = create_app(runs_dir=args.runs, allowed_hosts=extra, helper=not args.no_helper)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{port}/"
    print(f"convzoo serve: {url} (Ctrl-C stops)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    try:
        app.state.warm()  # torch and the engine imported before the first request is read
        server.run(sockets=[sock])
    finally:
        app.state.close()
    return 0
