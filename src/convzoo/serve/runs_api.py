"""The explorer's Runs, Inside and Train routes (issue 12), included by `app.create_app`.

- Runs: `GET /api/runs` (run folders and experiment outputs under `--runs`),
  `GET /api/run?path=P&offset=N` (one run; its metrics.jsonl from byte N, so a page that
  polls with the returned offset sees each record once, while the run trains),
  `GET /api/experiment?path=P` (verdicts, table, and each run's epoch records).
- Inside: `GET /api/inside/sources`, `GET /api/inside/filters?source=S`,
  `GET /api/inside/features?source=S&index=N` (or `&class=NAME`),
  `POST /api/inside/upload?source=S` (the image's bytes as the body),
  `GET /api/inside/confusion?source=S&n=N`; S is `weights:MODEL[.TAG]` (shipped weights,
  safetensors) or `run:PATH` (the run's `checkpoints/last.pt`, read with `weights_only=True`).
- Train: `GET /api/train` (the page's run), `POST /api/train` (start), `POST /api/train/stop`
  (SIGINT, as Ctrl-C), `POST /api/train/resume` (`--resume`). The trainer is `convzoo train`
  in a subprocess started from an argv list (never a shell), one at a time.

State-changing requests (start, stop, resume, upload) need the per-server token
(`GET /api/session`, sent back as the `X-Convzoo-Token` header); the app's guard already
refuses other Hosts and cross-origin API requests. Every path is resolved under the runs
folder by `convzoo.runs.resolve_run` ('..', absolute paths and symlinks out: 400; missing: 404).
"""

from __future__ import annotations

import argparse
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

#: Uploaded images: at most this many bytes (10 MB) and this many pixels.
MAX_UPLOAD = 10_000_000
MAX_PIXELS = 40_000_000
#: Paths whose bodies this module limits itself (the app's 1 MB guard skips them).
OWN_BODY_LIMIT = ("/api/inside/upload",)
TOKEN_HEADER = "x-convzoo-token"
#: The training request's fields, as the CLI's flags (the values go through the CLI's parser).
TRAIN_FIELDS = {
    "model": None, "data": "--data", "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr",
    "amp": "--amp", "subset": "--subset", "max_steps": "--max-steps", "threads": "--threads",
    "log_every": "--log-every", "seed": "--seed", "input_size": "--input-size", "name": None,
}  # fmt: skip
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_CACHED_MODELS = 4


class HTTPError(Exception):
    """A refused request: its status and message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _ArgvParser(argparse.ArgumentParser):
    """The CLI's parser, raising its message instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise HTTPError(message)


def train_parser() -> argparse.ArgumentParser:
    from ..commands import train as train_cmd

    p = _ArgvParser(prog="convzoo train", add_help=False)
    train_cmd.add_arguments(p)
    return p


def _check_config(argv: list[str]) -> Any:
    """Parse and validate `convzoo train ARGV` as the CLI does (the same messages), without training."""
    from ..commands.train import build_config
    from ..errors import ConvzooError

    args = train_parser().parse_args(argv)
    try:
        cfg = build_config(args)
        if not cfg.resume:
            from .. import data as zdata
            from ..train import network

            network.check_model(cfg.model)
            info = zdata.dataset_info(cfg.data, cfg.data_dir)
            zdata.find_dataset(cfg.data, cfg.data_dir)
            if network.is_notation(cfg.model):  # its shapes and classes, as the trainer will build it
                kwargs = network.notation_kwargs(cfg.model, channels=int(info["channels"]), num_classes=int(info["num_classes"]),
                                                 side=cfg.input_size, data_side=info.get("size"))  # fmt: skip
                network.check_notation(cfg.model, **kwargs)
    except ConvzooError as err:
        raise HTTPError(str(err)) from None
    return cfg


class Trainer:
    """The one training the page started: its subprocess, folder and output."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.path: str | None = None
        self.action: str | None = None
        self.argv: list[str] = []
        self.started: float | None = None
        self._tmp: Path | None = None  # the trainer's output, in a temporary folder made on the first start
        self._log: Any = None
        self._mutex = threading.Lock()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any]:
        rc = None if self.proc is None else self.proc.poll()
        tail = ""
        log = None if self._tmp is None else self._tmp / "train.log"
        if self.proc is not None and log is not None and log.is_file():
            with log.open("rb") as fh:
                fh.seek(max(0, log.stat().st_size - 4000))
                tail = fh.read().decode("utf-8", "replace")
        return {
            "running": self.running(), "path": self.path, "action": self.action,
            "pid": None if self.proc is None else self.proc.pid, "returncode": rc,
            "argv": self.argv, "started": self.started, "output": tail,
        }  # fmt: skip

    def start(self, argv: list[str], path: str, action: str) -> dict[str, Any]:
        with self._mutex:
            if self.running():
                raise HTTPError(
                    f"a training started from this page is still running ({self.path}); "
                    "stop it or wait for it to finish (one run at a time)", 409)  # fmt: skip
            if self._log is not None:
                self._log.close()
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="convzoo-serve-"))
            self._log = (self._tmp / "train.log").open("wb")
            full = [sys.executable, "-m", "convzoo", "train", *argv, "--quiet"]
            self.proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=self._log,  # noqa: S603 (argv list, no shell)
                                         stderr=subprocess.STDOUT, shell=False)  # fmt: skip
            self.path, self.action, self.argv, self.started = path, action, full[2:], time.time()
            return self.status()

    def stop(self) -> dict[str, Any]:
        with self._mutex:
            if not self.running():
                raise HTTPError("no training started from this page is running", 409)
            assert self.proc is not None
            self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends: the trainer checkpoints and exits
            return self.status()

    def close(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._log is not None:
            self._log.close()
        if self._tmp is not None:
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)


def _int_param(request: Request, name: str, default: int | None = None, *, minimum: int = 0) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise HTTPError(f"{name} must be >= {minimum}, got {value}")
    return value


def routes(runs_dir: str | Path | None, lock: threading.Lock) -> list[Route]:
    """The routes of this module for a server reading `runs_dir`; `lock` is the app's library lock."""
    from .. import runs as R

    token = secrets.token_urlsafe(32)
    trainer = Trainer()
    models: dict[tuple[str, int], tuple[Any, dict[str, Any]]] = {}
    datasets: dict[tuple[str, str | None], Any] = {}
    confusions: dict[tuple[str, int, int], dict[str, Any]] = {}

    def root() -> Path:
        if runs_dir is None:
            raise HTTPError("this server has no runs folder (start it with --runs DIR)", 404)
        return Path(runs_dir).resolve()

    def folder(rel: str | None, *, run: bool = True) -> Path:
        if rel is None:
            raise HTTPError("path is missing: a run folder relative to the runs folder")
        try:
            f = R.resolve_run(root(), rel)
        except R.RunPathError as err:
            raise HTTPError(str(err), 404 if err.missing else 400) from None
        if run and not (f / "config.json").is_file():
            raise HTTPError(f"{rel!r} is not a run folder (no config.json)", 404)
        return f

    def check_token(request: Request) -> None:
        given = request.headers.get(TOKEN_HEADER, "")
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPError("refused: this request changes state and needs the page's token (X-Convzoo-Token)", 403)

    async def json_body(request: Request) -> dict[str, Any]:
        import json

        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > 1_000_000:
                raise HTTPError("request body over 1,000,000 bytes")
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise HTTPError("request body must be JSON") from None
        if not isinstance(data, dict):
            raise HTTPError("request body must be a JSON object")
        return data

    def endpoint(fn: Callable[..., Any], *, locked: bool = False) -> Callable[[Request], Any]:
        """fn(request) (async) returns a dict; errors become JSON with their status."""

        async def handler(request: Request) -> Response:
            from ..errors import ConvzooError

            try:
                result = await fn(request)
            except HTTPError as err:
                return JSONResponse({"error": str(err)}, status_code=err.status)
            except R.RunPathError as err:
                return JSONResponse({"error": str(err)}, status_code=404 if err.missing else 400)
            except ConvzooError as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            return result if isinstance(result, Response) else JSONResponse(result)

        return handler

    async def threaded(fn: Callable[..., Any], *a: Any, library: bool = True) -> Any:
        from starlette.concurrency import run_in_threadpool

        def call() -> Any:
            if not library:
                return fn(*a)
            with lock:  # the analysis engine's hooks are process-wide: one library call at a time
                return fn(*a)

        return await run_in_threadpool(call)

    # -- runs -------------------------------------------------------------------------------
    async def session(request: Request) -> dict[str, Any]:
        return {"token": token, "runs": None if runs_dir is None else str(root()), "token_header": "X-Convzoo-Token"}

    async def runs_list(request: Request) -> dict[str, Any]:
        listed = await threaded(R.list_runs, root(), library=False)
        return {**listed, "training": trainer.status()}

    async def run_one(request: Request) -> dict[str, Any]:
        f = folder(request.query_params.get("path"))
        offset = _int_param(request, "offset", 0)
        detail = await threaded(R.run_detail, root(), f.relative_to(root()).as_posix(), offset, library=False)
        return detail

    async def experiment(request: Request) -> dict[str, Any]:
        f = folder(request.query_params.get("path"), run=False)
        if not (f / "results.json").is_file():
            raise HTTPError(f"{request.query_params.get('path')!r} is not an experiment output (no results.json)", 404)

        def read() -> dict[str, Any]:
            info = R.experiment_info(root(), f)
            curves = {}
            for r in info["runs"]:
                if r["path"]:
                    recs = R.read_metrics(root() / r["path"])["records"]
                    curves[r["path"]] = [x for x in recs if x.get("kind") == "epoch"]
            report = f / "report.md"
            return {**info, "curves": curves, "report": report.read_text(errors="replace")[:200_000] if report.is_file() else None}

        return await threaded(read, library=False)

    # -- inside -----------------------------------------------------------------------------
    def load(source: str | None) -> tuple[Any, dict[str, Any], str]:
        """(model, checkpoint-like dict, cache key) of `weights:MODEL[.TAG]` or `run:PATH`."""
        if not source:
            raise HTTPError("source is missing: weights:MODEL (shipped weights) or run:PATH (a run's last checkpoint)")
        if source.startswith("weights:"):
            name, _, tag = source[len("weights:"):].partition(".")
            tag = tag or "fashion-mnist"
            key = (f"weights:{name}.{tag}", 0)
            if key not in models:
                import convzoo
                from ..weights import as_checkpoint

                model = convzoo.create_model(name, weights=tag)  # safetensors only
                models[key] = (model, as_checkpoint(model.weights_meta))
        elif source.startswith("run:"):
            rel = source[len("run:"):]
            f = folder(rel)
            try:
                ckpt_path = R.resolve_run(root(), f"{f.relative_to(root()).as_posix()}/checkpoints/last.pt")
            except R.RunPathError as err:
                raise HTTPError(f"run {rel!r} has no checkpoint yet (checkpoints/last.pt)" if err.missing else str(err),
                                404 if err.missing else 400) from None  # fmt: skip
            key = (f"run:{rel}", ckpt_path.stat().st_mtime_ns)
            if key not in models:
                from ..train.checkpoint import load_checkpoint

                model, ckpt = load_checkpoint(ckpt_path)  # torch.load(weights_only=True) after its CRC check
                ckpt = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "scaler", "ema", "rng")}
                models[key] = (model, ckpt)
        else:
            raise HTTPError(f"source must be weights:MODEL or run:PATH, got {source!r}")
        while len(models) > MAX_CACHED_MODELS:
            models.pop(next(iter(models)))
        model, ckpt = models[key]
        return model, ckpt, f"{key[0]}@{key[1]}"

    def test_set(ckpt: dict[str, Any]) -> Any:
        from .. import data as zdata

        name = ckpt.get("data") or (ckpt.get("config") or {}).get("data")
        data_dir = (ckpt.get("config") or {}).get("data_dir")
        if not name or name.startswith("folder:"):
            raise HTTPError("picking a test image works with the array data sets (fashion-mnist, mnist, cifar10, "
                            "cifar100); upload an image instead")  # fmt: skip
        key = (name, data_dir)
        if key not in datasets:
            if len(datasets) >= 2:
                datasets.pop(next(iter(datasets)))
            datasets[key] = zdata.load_dataset(name, "test", data_dir)
        return datasets[key]

    def channels_of(ckpt: dict[str, Any]) -> int:
        from .. import data as zdata

        name = ckpt.get("data") or ""
        if ckpt.get("data_channels"):
            return int(ckpt["data_channels"])
        return 3 if not name or name.startswith("folder:") else int(zdata.dataset_info(name)["channels"])

    async def sources(request: Request) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            from ..weights import list_weights

            shipped = [{"source": f"weights:{w['model']}.{w['tag']}", "model": w["model"], "tag": w["tag"],
                        "data": w.get("dataset"), "test_top1": w.get("test_top1")} for w in list_weights()]  # fmt: skip
            found = []
            if runs_dir is not None:
                for r in R.list_runs(root())["runs"]:
                    if (root() / r["path"] / "checkpoints" / "last.pt").is_file():
                        found.append({"source": f"run:{r['path']}", "model": r["model"], "data": r["data"],
                                      "status": r["status"], "test_top1": r["test_top1"]})  # fmt: skip
            return {"weights": shipped, "runs": found}

        return await threaded(read, library=False)

    async def filters(request: Request) -> dict[str, Any]:
        source = request.query_params.get("source")

        def work() -> dict[str, Any]:
            from ..viz.inside import filters_data

            model, ckpt, _ = load(source)
            return {"source": source, "model": ckpt.get("model_name"), "classes": ckpt.get("classes"), **filters_data(model)}

        return await threaded(work)

    async def features(request: Request) -> dict[str, Any]:
        source = request.query_params.get("source")
        index = _int_param(request, "index")
        wanted = request.query_params.get("class")

        def work() -> dict[str, Any]:
            from ..viz.inside import features_data

            model, ckpt, _ = load(source)
            ds = test_set(ckpt)
            classes = list(ckpt.get("classes") or getattr(ds, "classes", []) or [])
            i = index
            if wanted is not None and wanted != "":
                if wanted not in classes:
                    raise HTTPError(f"class must be one of {', '.join(classes)}, got {wanted!r}")
                hits = (ds.labels == classes.index(wanted)).nonzero().flatten()
                if len(hits) == 0:
                    raise HTTPError(f"the test set has no image of class {wanted!r}")
                nth = _int_param(request, "nth", 0) or 0
                i = int(hits[nth % len(hits)])
            if i is None:
                i = 0
            if i >= len(ds):
                raise HTTPError(f"index must be in [0, {len(ds) - 1}], got {i}")
            label = int(ds.labels[i])
            return {"source": source, "index": i, "label": label,
                    "label_name": classes[label] if label < len(classes) else str(label), "classes": classes,
                    **features_data(model, ckpt, ds.images[i])}  # fmt: skip

        return await threaded(work)

    async def upload(request: Request) -> dict[str, Any]:
        check_token(request)
        source = request.query_params.get("source")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_UPLOAD:
            raise HTTPError(f"upload of {int(length):,} bytes is too large: at most {MAX_UPLOAD:,} bytes (10 MB)")
        # spooled: in memory, or past 1 MB an anonymous file in the temporary folder; never elsewhere
        spool = tempfile.SpooledTemporaryFile(max_size=1 << 20, dir=tempfile.gettempdir())
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise HTTPError(f"upload is too large: at most {MAX_UPLOAD:,} bytes (10 MB)")
                spool.write(chunk)
            if size == 0:
                raise HTTPError("upload is empty: send the image file's bytes as the request body")
            spool.seek(0)

            def work() -> dict[str, Any]:
                from ..viz.inside import features_data

                model, ckpt, _ = load(source)
                image = _decode(spool, channels_of(ckpt))
                return {"source": source, "index": None, "label": None, "label_name": None,
                        "classes": list(ckpt.get("classes") or []), "uploaded": {"bytes": size, "shape": list(image.shape)},
                        **features_data(model, ckpt, image)}  # fmt: skip

            return await threaded(work)
        finally:
            spool.close()

    async def confusion(request: Request) -> dict[str, Any]:
        source = request.query_params.get("source")
        n = _int_param(request, "n", None, minimum=1)
        examples = _int_param(request, "examples", 12, minimum=0) or 0

        def work() -> dict[str, Any]:
            from ..viz.inside import confusion_data

            model, ckpt, key = load(source)
            ds = test_set(ckpt)
            count = len(ds) if n is None else min(n, len(ds))
            ck = (key, count, min(examples, 100))
            if ck not in confusions:
                if len(confusions) >= 8:
                    confusions.pop(next(iter(confusions)))
                confusions[ck] = confusion_data(model, ckpt, ds.subset(count) if count < len(ds) else ds,
                                                examples=min(examples, 100))  # fmt: skip
            return {"source": source, **confusions[ck]}

        return await threaded(work)

    # -- train ------------------------------------------------------------------------------
    async def train_status(request: Request) -> dict[str, Any]:
        return trainer.status()

    async def train_start(request: Request) -> dict[str, Any]:
        check_token(request)
        data = await json_body(request)
        unknown = [k for k in data if k not in TRAIN_FIELDS]
        if unknown:
            raise HTTPError(f"unknown field {unknown[0]!r} in the training request; valid fields: {', '.join(TRAIN_FIELDS)}")
        argv = _train_argv(data)
        name = data.get("name")
        if name in (None, ""):
            from ..train.network import default_run_name

            model = default_run_name(str(data.get("model")).strip())  # a notation's words joined by '_'
            stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{model}-{data.get('data')}").strip("-.") or "run"
            name = f"{stem[:60]}-{time.strftime('%Y%m%d-%H%M%S')}"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise HTTPError("name must be a folder name (letters, digits, '.', '_', '-'; at most 100 characters), "
                            f"got {name!r}")  # fmt: skip
        base = root()
        target = base / name
        argv += ["--out", str(target)]
        await threaded(_check_config, argv, library=False)
        if target.is_symlink():
            raise HTTPError(f"{name!r} is a symlink in the runs folder; choose another name")
        if (target / "config.json").exists() or (target / "checkpoints").is_dir():
            if R.run_status(target, {}, None) == "running":
                raise HTTPError(f"run folder {str(target)!r} is in use by another convzoo process; wait for it to "
                                "finish or stop it, or choose another name", 409)  # fmt: skip
            raise HTTPError(f"run folder {str(target)!r} already holds a run; pass --resume to continue it, "
                            "--overwrite to replace it, or another --name/--out", 409)  # fmt: skip
        base.mkdir(parents=True, exist_ok=True)
        return trainer.start(argv, name, "start")

    async def train_stop(request: Request) -> dict[str, Any]:
        check_token(request)
        return trainer.stop()

    async def train_resume(request: Request) -> dict[str, Any]:
        check_token(request)
        data = await json_body(request)
        rel = data.get("path")
        if not isinstance(rel, str) or not rel:
            raise HTTPError("path must be a run folder relative to the runs folder")
        f = folder(rel)
        if R.run_status(f, {}, None) == "running":
            raise HTTPError(f"run folder {str(f)!r} is in use by another convzoo process (its .lock); "
                            "wait for it to finish or stop it", 409)  # fmt: skip
        argv = ["--resume", "--out", str(f)]
        await threaded(_check_config, argv, library=False)
        return trainer.start(argv, f.relative_to(root()).as_posix(), "resume")

    import atexit

    atexit.register(trainer.close)
    return [
        Route("/api/session", endpoint(session), methods=["GET"]),
        Route("/api/runs", endpoint(runs_list), methods=["GET"]),
        Route("/api/run", endpoint(run_one), methods=["GET"]),
        Route("/api/experiment", endpoint(experiment), methods=["GET"]),
        Route("/api/inside/sources", endpoint(sources), methods=["GET"]),
        Route("/api/inside/filters", endpoint(filters), methods=["GET"]),
        Route("/api/inside/features", endpoint(features), methods=["GET"]),
        Route("/api/inside/upload", endpoint(upload), methods=["POST"]),
        Route("/api/inside/confusion", endpoint(confusion), methods=["GET"]),
        Route("/api/train", endpoint(train_status), methods=["GET"]),
        Route("/api/train", endpoint(train_start), methods=["POST"]),
        Route("/api/train/stop", endpoint(train_stop), methods=["POST"]),
        Route("/api/train/resume", endpoint(train_resume), methods=["POST"]),
    ]


def _train_argv(data: dict[str, Any]) -> list[str]:
    """The training request as `convzoo train` arguments (their values checked by the CLI's parser)."""
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise HTTPError("model must be a zoo model name (`convzoo models` lists them) or a network in the compact notation")
    argv = [model.strip()]
    for field, flag in TRAIN_FIELDS.items():
        if flag is None or field not in data or data[field] is None or data[field] == "":
            continue
        value = data[field]
        if field == "amp":
            if value is True:
                argv.append(flag)
            elif value is not False:
                if not isinstance(value, str):
                    raise HTTPError(f"amp must be true, false, 'bf16', 'fp16' or 'auto', got {value!r}")
                argv += [flag, value]
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise HTTPError(f"{field} must be a number or a string, got {value!r}")
        text = str(value)
        if text.startswith("-") and field in ("data",):
            raise HTTPError(f"{field} must not start with '-', got {text!r}")
        argv += [f"{flag}={text}"]
    if argv[0].startswith("-"):
        raise HTTPError(f"model must be a zoo model name or a network in the compact notation, got {model!r}")
    return argv


def _decode(spool: Any, channels: int) -> Any:
    """uint8 C x H x W tensor of an uploaded image; anything else is a 400."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(spool) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise HTTPError(f"image is {w} x {h} pixels: at most {MAX_PIXELS:,} pixels")
            arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except HTTPError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HTTPError(f"the upload is not an image this server can read: {reason} (expected a PNG or JPEG file)") from None
    t = torch.from_numpy(arr.copy())
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1).contiguous()
