"""The explorer's helper process: the training pass of an analysis, run beside the inference pass.

An analysis is two passes over the network on the meta device (`convzoo.analysis.engine`):
inference, then training. They are independent, and each is pure Python work, so one
process cannot overlap them (the GIL). `convzoo serve` starts one helper process that
imports torch and the engine and keeps its own copies of the networks it was asked about
(`BuiltSources`, built from the same text, so the same modules in the same order); for each
analysis the server sends the request to the helper, runs the inference pass itself, and
completes its report with the helper's `training_estimate` (`engine.with_training`). On a
2-core machine a DenseNet's update then costs about one pass instead of two.

The helper takes the training pass of the networks the server already keeps (updates) whose
last analysis in the server alone took at least `WORTH_S`; a network the server builds
afresh (a pick) is analysed in the server alone, and the helper is then asked to build it
too (`prefetch`, when it is worth it), ready for the updates that follow. The server
never depends on it: until the helper has said it is ready, after it failed or
died, or when its answer does not fit the report (another row count or other row names),
the server runs the training pass itself. Answers are matched to requests by number, so an
answer left over from a request whose inference pass failed is dropped.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Sequence

__all__ = ["TrainingHelper", "row_digest"]

#: how long the server waits for an answer before it runs the pass itself (and stops using the helper)
ANSWER_TIMEOUT_S = 60.0
#: the helper takes the networks whose whole analysis took at least this long in the server:
#: below it, sending the request and reading the answer cost more than the pass saves
#: (LeNet-5's update took 28 ms with the helper against 14 alone; googlenet, at about this
#: time, gains nothing measurable either way: docs/performance.md)
WORTH_S = 0.040


def row_digest(names: Sequence[str]) -> int:
    """A checksum of the rows' names, in order: both processes' networks must agree."""
    return zlib.crc32("\n".join(names).encode("utf-8"))


def _work() -> None:  # pragma: no cover - the child process (tested through TrainingHelper)
    """The helper's loop: one JSON request per line on stdin, one JSON answer per line on stdout."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server; the helper ends with its stdin
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers on the pipe
    import torch

    from ..analysis.compare import BuiltSources
    from ..analysis.engine import training_estimate

    built = BuiltSources()

    def send(message: Any) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    # what the server's warm-up does: one pass run (the rest of the engine imported), then
    # the heap frozen, so that a full collection does not scan torch's import-time objects
    import gc

    model, size, _ = built("lenet5", None)
    training_estimate(model, size, prepared=built.prepared(model))
    built.items.clear()
    gc.collect()
    gc.freeze()
    send({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        number = request["number"]
        if request.get("forget"):
            built.items.clear()
            send({"number": number, "forgot": True})
            continue
        if request.get("ping"):
            send({"number": number, "pong": True})
            continue
        if request.get("prefetch"):
            try:
                model, _, _ = built(request["source"], request["input"])
                built.prepared(model).repeated()  # the whole set-up now, not in the first update
                # out of the collector's full scans, as the server does with what it keeps
                gc.collect(1)
                gc.freeze()
                send({"number": number, "built": True})
            except Exception as err:  # noqa: BLE001 - the next request for it reports the failure
                send({"number": number, "error": f"{type(err).__name__}: {err}"})
            continue
        try:
            model, size, _ = built(request["source"], request["input"])
            prepared = built.prepared(model)
            per_row, total, note = training_estimate(model, size, request["batch_size"], getattr(torch, request["dtype"]),
                                                     prepared=prepared)  # fmt: skip
            digest = row_digest([entry[0] for entry in prepared.layout[0]])
            send({"number": number, "rows": per_row, "total": total, "note": note, "digest": digest})
        except Exception as err:  # noqa: BLE001 - reported to the server, which runs the pass itself
            send({"number": number, "error": f"{type(err).__name__}: {err}"})


class TrainingHelper:
    """The server's end of the helper process (see the module docstring): a fresh
    interpreter running this module (forking a server that has threads is not safe, and
    `multiprocessing`'s spawn would re-import the caller's main script). Not thread-safe:
    the server calls it under its analysis lock. POSIX only (it waits on the pipe with
    `select`); elsewhere it never becomes ready and the server analyses alone."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.ready = False
        self.broken = ""  # why the helper is no longer used ("" while it is)
        self.number = 0
        self.used = 0  # analyses whose training pass the helper ran
        self.worth_s = WORTH_S
        self._buffer = b""

    def start(self) -> None:
        """Start the process; it imports torch and the engine, then says it is ready."""
        if self.process is not None or self.broken:
            return
        if os.name != "posix":
            self.broken = "the helper needs a POSIX system"
            return
        import convzoo

        env = dict(os.environ)
        root = str(Path(convzoo.__file__).resolve().parent.parent)  # the same convzoo as this process's
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "convzoo.serve.helper"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, env=env, bufsize=0,
            )  # fmt: skip
        except OSError as err:
            self.broken = f"cannot start the helper: {err}"

    def _line(self, timeout: float) -> dict[str, Any] | None:
        """The next line from the helper as JSON, waiting up to `timeout` s (None: nothing yet)."""
        assert self.process is not None and self.process.stdout is not None
        end = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, left))
            if not ready:
                return None
            chunk = os.read(self.process.stdout.fileno(), 1 << 20)
            if not chunk:
                raise EOFError("the helper closed its output")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _alive(self) -> bool:
        if self.broken or self.process is None:
            return False
        if self.process.poll() is not None:
            self._give_up(f"the helper process ended (exit code {self.process.returncode})")
            return False
        if not self.ready:
            try:
                message = self._line(0.0)
            except (EOFError, OSError, ValueError) as err:
                self._give_up(f"the helper's pipe failed: {err}")
                return False
            self.ready = message == {"ready": True}
        return self.ready

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the helper to be ready (tests, benchmarks)."""
        end = time.monotonic() + timeout
        while not self._alive() and not self.broken and self.process is not None and time.monotonic() < end:
            time.sleep(0.05)
        return self.ready and not self.broken

    def _drain(self) -> int:
        """Read and drop the answers waiting in the pipe (those of prefetches nobody waits
        for); how many. Before every request: a server that only ever picks networks would
        otherwise fill the pipe, then the helper would block writing, then the server."""
        dropped = 0
        try:
            while self._line(0.0) is not None:
                dropped += 1
        except (EOFError, OSError, ValueError) as err:
            self._give_up(f"the helper's pipe failed: {err}")
        return dropped

    def ask(self, source: str, input_size: Sequence[int] | None, batch_size: int, dtype: str) -> int | None:
        """Send a request; its number, or None when the helper cannot take it."""
        if not self._alive():
            return None
        self._drain()
        if self.broken:
            return None
        assert self.process is not None and self.process.stdin is not None
        self.number += 1
        request = {"number": self.number, "source": source, "input": None if input_size is None else list(input_size),
                   "batch_size": batch_size, "dtype": dtype}  # fmt: skip
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode("utf-8"))
        except (OSError, ValueError) as err:
            self._give_up(f"the helper's pipe failed: {err}")
            return None
        return self.number

    def answer(self, number: int, names: Sequence[str]) -> Any:
        """The estimate for request `number` if the helper gave one for a network whose rows
        have these `names`, in this order; else None (the caller runs the pass itself)."""
        try:
            while True:
                message = self._line(ANSWER_TIMEOUT_S)
                if message is None:
                    self._give_up(f"no answer from the helper in {ANSWER_TIMEOUT_S:.0f} s")
                    return None
                if message.get("number") == number:
                    break  # earlier numbers: answers to requests whose inference pass failed
        except (EOFError, OSError, ValueError) as err:
            self._give_up(f"the helper's pipe failed: {err}")
            return None
        if "error" in message or message.get("digest") != row_digest(names):
            return None
        self.used += 1
        return message["rows"], message["total"], message["note"]

    def prefetch(self, source: str, input_size: Sequence[int] | None) -> None:
        """Ask the helper to build and keep a network for the requests to come (no answer
        is awaited: `answer` skips it)."""
        if not self._alive():
            return
        self._drain()
        if self.broken:
            return
        assert self.process is not None and self.process.stdin is not None
        self.number += 1
        request = {"number": self.number, "prefetch": True, "source": source,
                   "input": None if input_size is None else list(input_size)}  # fmt: skip
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode("utf-8"))
        except (OSError, ValueError) as err:
            self._give_up(f"the helper's pipe failed: {err}")

    def forget(self) -> bool:
        """Make the helper drop the networks it keeps (a benchmark's "pick": everything built
        afresh); whether it did."""
        return self._roundtrip({"forget": True}) == {"forgot": True}

    def settle(self) -> bool:
        """Wait until the helper has done everything asked of it (a prefetch's build);
        whether it answered."""
        return self._roundtrip({"ping": True}) == {"pong": True}

    def _roundtrip(self, request: dict[str, Any]) -> dict[str, Any] | None:
        if not self._alive():
            return None
        assert self.process is not None and self.process.stdin is not None
        self.number += 1
        try:
            self.process.stdin.write((json.dumps({"number": self.number, **request}) + "\n").encode("utf-8"))
            while True:
                message = self._line(ANSWER_TIMEOUT_S)
                if message is None:
                    self._give_up(f"no answer from the helper in {ANSWER_TIMEOUT_S:.0f} s")
                    return None
                if message.pop("number", None) == self.number:
                    return message
        except (EOFError, OSError, ValueError) as err:
            self._give_up(f"the helper's pipe failed: {err}")
            return None

    def _give_up(self, why: str) -> None:
        self.broken = why
        self.close()

    def close(self) -> None:
        """Stop the process (it ends by itself when its stdin closes)."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(timeout=2)
        finally:
            if process.stdout is not None:
                process.stdout.close()


if __name__ == "__main__":  # pragma: no cover
    _work()
