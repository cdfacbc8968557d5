"""One process per run folder: an OS lock held for the run's whole life.

`RunLock(run_dir)` takes an exclusive `flock` on `run_dir/.lock` (released by the OS when
the process dies, however it dies) and writes the owner's PID, host and start time into
it, so a second trainer, resume or `--overwrite` on the same folder is refused with
`RunFolderBusyError` naming the owner instead of interleaving metrics or deleting live
checkpoints. Where `flock` is missing (Windows) or unsupported (some network file systems)
the file itself is the lock, created exclusively, and a lock whose PID no longer runs on
this host is stale and taken over. The lock file is removed on release.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import RunFolderBusyError

__all__ = ["LOCK_NAME", "RunFolderBusyError", "RunLock", "pid_alive"]

LOCK_NAME = ".lock"


def pid_alive(pid: int) -> bool:
    """True when a process with this PID runs on this machine (or cannot be signalled by us)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:  # pragma: no cover - platforms without signal 0
        return True
    return True


def _owner_text(raw: str) -> tuple[str, int | None, str | None]:
    parts = dict(p.split("=", 1) for p in raw.split() if "=" in p)
    try:
        pid = int(parts.get("pid", ""))
    except ValueError:
        pid = None
    host = parts.get("host")
    desc = f"PID {pid}" if pid is not None else "an unknown process"
    if host and host != socket.gethostname():
        desc += f" on {host}"
    if parts.get("since"):
        desc += f", since {parts['since'].replace('T', ' ')}"
    return desc, pid, host


class RunLock:
    """Exclusive ownership of a run folder; a context manager (`with RunLock(d): ...`)."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None
        self._mode = ""

    def _stamp(self) -> bytes:
        since = time.strftime("%Y-%m-%dT%H:%M:%S")
        return f"pid={os.getpid()} host={socket.gethostname()} since={since}\n".encode()

    def _busy(self, raw: str) -> RunFolderBusyError:
        desc, pid, host = _owner_text(raw)
        hint = ""
        if pid is not None and (not host or host == socket.gethostname()) and not pid_alive(pid):
            hint = " (that process has exited; its worker processes still hold the lock: retry in a few seconds)"
        return RunFolderBusyError(
            f"run folder {str(self.run_dir)!r} is in use by another convzoo process ({desc}){hint}; "
            "wait for it to finish or stop it, or choose another --out/--name"
        )

    def acquire(self) -> "RunLock":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            for _ in range(20):  # retried only when the file is replaced under us (see below)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as err:
                    raw = _read(fd)
                    os.close(fd)
                    if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise self._busy(raw) from None
                    if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                        break  # no flock here: fall back to the exclusive file
                    raise
                # the previous owner may have unlinked the file between our open and our lock
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, self._stamp())
                except OSError:  # a full or read-only disk: no descriptor (and no lock) left behind
                    os.close(fd)
                    raise
                self._fd, self._mode = fd, "flock"
                return self
        self._acquire_exclusive_file()
        return self

    def _acquire_exclusive_file(self) -> None:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    raw = self.path.read_text()
                except OSError:
                    raw = ""
                desc, pid, host = _owner_text(raw)
                if pid is not None and (not host or host == socket.gethostname()) and not pid_alive(pid):
                    print(f"note: removing the stale lock of {desc} (no such process) in {self.run_dir}",
                          file=sys.stderr)  # fmt: skip
                    self.path.unlink(missing_ok=True)
                    continue
                raise self._busy(raw) from None
            try:
                os.write(fd, self._stamp())
            except OSError:
                os.close(fd)
                self.path.unlink(missing_ok=True)
                raise
            self._fd, self._mode = fd, "file"
            return
        raise RunFolderBusyError(f"could not take the lock {str(self.path)!r}; another process keeps creating it")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # unlink first: a waiter re-checks the inode it locked
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 512).decode(errors="replace")
    except OSError:
        return ""
