"""The explorer's JSON API (under /api/) and its guards; bodies are the CLI's `--json` dicts.

Every request must carry a loopback (or the served) Host header (DNS rebinding), API
requests from another origin are refused, bodies are at most 1 MB, and the library calls
run one at a time (the analysis engine installs process-wide hooks). Every response
carries the security headers of `SECURITY_HEADERS` (the page loads nothing from elsewhere
and may not be framed). Analyses and comparisons are kept in a small LRU cache of their
JSON bodies (`ResponseCache`: at most `CACHE_ENTRIES` bodies and `CACHE_BYTES` bytes), so
going back to a network or a setting costs nothing and memory stays bounded.

The routes are listed in one place, `create_app`'s `routes`; another module adds its own
by returning a list of routes (see `runs_api.routes`)."""

from __future__ import annotations

import gc
import json
import threading
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..cli_args import input_size_parts
from ..errors import ConfigError

#: The page: static files shipped as package data; nothing outside this folder is served.
STATIC = Path(__file__).resolve().parent / "static"

MAX_BODY = 1_000_000
MAX_TEXT = 10_000
MAX_LAYERS = 2_000
MAX_SIDE = 4096
MAX_BATCH = 65_536
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
DTYPES = ("float32", "bfloat16")
CACHE_ENTRIES = 64
CACHE_BYTES = 64 * 1024 * 1024
#: what `warm` analyses: the zoo's LeNet-5, the lecture's first network
WARM_SOURCE = "lenet5"
#: On every response. Images may be data: URLs (the Inside view's PNGs come inline in JSON).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class ResponseCache:
    """A least-recently-used map of request keys to JSON bodies, bounded in entries and bytes."""

    def __init__(self, entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES) -> None:
        from collections import OrderedDict

        self.entries, self.max_bytes = entries, max_bytes
        self.items: "OrderedDict[Any, bytes]" = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0
        self.lock = threading.Lock()

    def get(self, key: Any) -> bytes | None:
        with self.lock:
            body = self.items.get(key)
            if body is None:
                self.misses += 1
                return None
            self.items.move_to_end(key)
            self.hits += 1
            return body

    def put(self, key: Any, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.bytes -= len(old)
            self.items[key] = body
            self.bytes += len(body)
            while len(self.items) > self.entries or self.bytes > self.max_bytes:
                _, dropped = self.items.popitem(last=False)
                self.bytes -= len(dropped)


class UserError(Exception):
    """A bad request: answered with HTTP 400 and this message."""


def _json_bytes(result: Any) -> bytes:
    """An answer as JSON, byte for byte what Starlette's `JSONResponse` writes: with orjson
    when it is installed (the serve extra has it: 3.6 against 55 ms for ResNet-1202's 2 MB
    answer, docs/performance.md), else, or for what orjson refuses (an integer over 64
    bits, a key that is not a string), with the standard library."""
    try:
        import orjson
    except ImportError:
        orjson = None
    if orjson is not None:
        try:
            return orjson.dumps(result)
        except TypeError:  # orjson.JSONEncodeError is one
            pass
    return json.dumps(result, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")


def _error(msg: str, status: int = 400, /, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": msg, **extra}, status_code=status)


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _input(value: Any) -> tuple[int, int, int] | None:
    """(C, H, W) of a request's input: [C, H, W] or the CLI's `--input` text (`cli_args`,
    one parser for every command), with all three numbers given."""
    if value is None or value == "":
        return None
    wrong = f"input must be three positive integers C x H x W ([C, H, W] or 'CxHxW'), got {value!r}"
    if isinstance(value, str):
        try:
            c, h, w = input_size_parts(value)
        except ConfigError:
            raise UserError(wrong) from None
        if c is None:
            raise UserError(wrong)
        size = (c, h, w)
    elif isinstance(value, list):
        if len(value) != 3 or not all(type(v) is int and v >= 1 for v in value):
            raise UserError(wrong)
        size = tuple(value)
    else:
        raise UserError(wrong)
    if max(size) > MAX_SIDE:
        raise UserError(f"input {size[0]}x{size[1]}x{size[2]} is too large: at most {MAX_SIDE} x {MAX_SIDE} (and {MAX_SIDE} channels)")
    return size  # type: ignore[return-value]


def _batch(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"batch_size must be a positive integer, got {value!r}")
    if value > MAX_BATCH:
        raise UserError(f"batch_size {value} is too large: at most {MAX_BATCH:,}")
    return value


def _source(value: Any, field: str = "source") -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{field} must be a model name or a network in the compact notation")
    if len(value) > MAX_TEXT:
        raise UserError(f"{field} is {len(value):,} characters long: at most {MAX_TEXT:,}")
    from ..analysis.compare import parse_source

    if parse_source(value) is None:
        from ..notation import parse

        n = len(parse(value).layers)
        if n > MAX_LAYERS:
            raise UserError(f"{field} has {n:,} layers: at most {MAX_LAYERS:,}")
    return value


def _dtype(value: Any) -> Any:
    if value is None:
        value = "float32"
    if value not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {value!r}")
    import torch

    return getattr(torch, value)


def create_app(
    runs_dir: str | Path | None = "runs", *, allowed_hosts: list[str] | None = None, helper: bool = False
) -> Starlette:
    """The explorer's ASGI app. `runs_dir`: the run folders later views read;
    `allowed_hosts`: Host names accepted besides the loopback ones; `helper`: run each
    analysis's training pass in a helper process beside its inference pass (`serve.helper`;
    started by `app.state.warm()`, stopped by `app.state.close()`), as `convzoo serve` does."""
    lock = threading.Lock()
    hosts = {h.lower() for h in (*LOOPBACK, *(allowed_hosts or []))}
    cache = ResponseCache()
    kept: list[Any] = []  # the BuiltSources (made on first use: its module imports torch)
    frozen: list[bool] = []  # non-empty once `warm` froze the heap: networks built later are frozen too
    from .helper import TrainingHelper

    training_helper = TrainingHelper() if helper else None

    def built() -> Any:
        """The networks last analysed (`BuiltSources`), kept for the next update of the same text."""
        if not kept:
            from ..analysis.compare import BuiltSources

            kept.append(BuiltSources())
        return kept[0]

    def warm(freeze: bool = True) -> None:
        """Get the first analysis ready before the first request: import torch and the
        engine and analyse the page's first network (LeNet-5) once; then, with `freeze`,
        move everything alive into the collector's permanent generation (`gc.freeze`).

        `convzoo serve` calls it after it has printed its URL and bound its socket, so a
        browser that connects meanwhile waits in the listen queue. Importing torch is most
        of a cold first analysis (2.3 of 2.4 s on a 2-core machine). The freeze matters
        for every later update: a full collection then scans only what the server made
        since, not torch's and the engine's import-time objects, which live as long as
        the process. A full collection used to add 110-130 ms to the update that met it;
        after the freeze it adds 10-25 ms (docs/performance.md)."""
        with lock:
            from ..analysis.compare import analyze_source

            analyze_source(WARM_SOURCE, build=built()).to_dict()
        if freeze:
            gc.collect()
            gc.freeze()
            frozen.append(True)
        if training_helper is not None:
            # after the warm-up, not during it: two interpreters importing torch at once on
            # a 2-core machine made the server answer its first request after 5.9 s, not 3.2;
            # until the helper is ready (about 3 s more) the server analyses alone
            training_helper.start()

    async def body(request: Request) -> dict[str, Any]:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise UserError(f"request body over {MAX_BODY:,} bytes")
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise UserError("request body must be JSON") from None
        if not isinstance(data, dict):
            raise UserError("request body must be a JSON object")
        return data

    def call(fn: Any, *a: Any, **k: Any) -> Any:
        with lock:
            return fn(*a, **k)

    async def run(fn: Any, *a: Any, cache_key: Any = None, **k: Any) -> Response:
        """`fn(*a, **k)` under the library lock, as JSON; with `cache_key`, a body computed
        before for the same key is answered from the cache (errors are never cached)."""
        from starlette.concurrency import run_in_threadpool

        from ..errors import ConvzooError, NotationError

        if cache_key is not None:
            hit = cache.get(cache_key)
            if hit is not None:
                return Response(hit, media_type="application/json", headers={"X-Convzoo-Cache": "hit"})
        try:
            result = await run_in_threadpool(call, fn, *a, **k)
        except NotationError as err:
            return _error(str(err), message=err.message, text=err.text, position=err.position)
        except (ConvzooError, UserError) as err:
            return _error(str(err))
        response = Response(_json_bytes(result), media_type="application/json")
        if cache_key is not None:
            cache.put(cache_key, bytes(response.body))
            response.headers["X-Convzoo-Cache"] = "miss"
        return response

    async def models(request: Request) -> Response:
        from .._table import rows

        return await run(rows, "*")

    async def analyze(request: Request) -> Response:
        try:
            data = await body(request)
            source = _source(data.get("source"))
            size, batch, dtype = _input(data.get("input")), _batch(data.get("batch_size")), _dtype(data.get("dtype"))
        except UserError as err:
            return _error(str(err))
        except Exception as err:  # notation errors while counting layers
            return await run(_raise, err)
        from ..analysis.compare import analyze_source

        key = ("analyze", source, size, batch, str(dtype))

        def analysed() -> dict[str, Any]:
            networks = built()
            picked = networks.kept(source, size) is None
            result = analyze_source(source, size, batch, dtype, build=networks, helper=training_helper).to_dict(copy=False)
            if picked and frozen:
                # The network just built lives on among the kept ones: move it out of the
                # collector's full scans, as `warm` did with torch (a full collection that met
                # a kept ResNet-1202 added 300 ms to the update it landed in). Reference
                # counting still frees it when it is dropped: analyses leave no cycles (tests).
                # The young generations are collected first: what the request machinery left
                # in cycles (asyncio's and anyio's frames and tracebacks) would never be
                # freed once frozen (the server grew by 5 kB a pick without this collection).
                gc.collect(1)
                gc.freeze()
            return result

        return await run(analysed, cache_key=key)

    async def notation(request: Request) -> Response:
        name = request.path_params["name"]

        def canonical() -> dict[str, Any]:
            from ..meta import meta_build
            from ..registry import create_model, model_info

            model_info(name)  # an unknown name: a 400 naming the known ones
            with meta_build():
                model = create_model(name)
            text = getattr(model, "spec_text", None)
            return {"model": name, "notation": text if isinstance(text, str) else None}

        return await run(canonical, cache_key=("notation", name))

    async def spec(request: Request) -> Response:
        try:
            data = await body(request)
            text = _source(data.get("text"), "text")
            size = _input(data.get("input"))
        except UserError as err:
            return _error(str(err))
        except Exception as err:
            return await run(_raise, err)
        from ..notation.summary import summarize

        return await run(summarize, text, input_size=size)

    async def paper(request: Request) -> Response:
        from ..analysis.papers import paper_table

        return await run(lambda: paper_table(request.path_params["table"]).to_dict())

    async def compare(request: Request) -> Response:
        try:
            data = await body(request)
            a, b = _source(data.get("a"), "a"), _source(data.get("b"), "b")
            ia, ib = _input(data.get("input_a")), _input(data.get("input_b"))
            batch, dtype = _batch(data.get("batch_size")), _dtype(data.get("dtype"))
        except UserError as err:
            return _error(str(err))
        except Exception as err:
            return await run(_raise, err)
        from ..analysis.compare import compare as _compare

        key = ("compare", a, b, ia, ib, batch, str(dtype))
        return await run(lambda: _compare(a, b, input_a=ia, input_b=ib, batch_size=batch, dtype=dtype, build=built()), cache_key=key)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    def _raise(err: Exception) -> None:
        raise err

    routes = [
        Route("/api/models", models, methods=["GET"]),
        Route("/api/analyze", analyze, methods=["POST"]),
        Route("/api/spec", spec, methods=["POST"]),
        Route("/api/paper/{table}", paper, methods=["GET"]),
        Route("/api/compare", compare, methods=["POST"]),
        Route("/api/notation/{name}", notation, methods=["GET"]),
        Route("/", index, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(STATIC), follow_symlink=False), name="static"),
    ]
    from .runs_api import OWN_BODY_LIMIT, routes as runs_routes  # Runs, Inside, Train (issue 12)

    routes[:0] = runs_routes(runs_dir, lock)

    async def guard(request: Request, call_next: Any) -> Response:
        response = await check(request, call_next)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    async def check(request: Request, call_next: Any) -> Response:
        host = _host_name(request.headers.get("host", "")).lower()
        if host not in hosts:
            return _error(f"refused: Host {request.headers.get('host', '')!r} is not an address this server serves", 403)
        origin = request.headers.get("origin")
        if request.url.path.startswith("/api/") and origin is not None:
            from urllib.parse import urlsplit

            if urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
                return _error(f"refused: cross-origin request from {origin}", 403)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY and request.url.path not in OWN_BODY_LIMIT:
            return _error(f"request body over {MAX_BODY:,} bytes")
        return await call_next(request)

    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware

    app = Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])
    app.state.runs_dir = Path(runs_dir) if runs_dir is not None else None
    app.state.cache = cache
    app.state.kept_networks = kept  # the BuiltSources, once made (benchmarks empty it)
    app.state.warm = warm
    app.state.helper = training_helper
    app.state.close = training_helper.close if training_helper is not None else (lambda: None)
    return app
