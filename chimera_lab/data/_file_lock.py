"""File locking for the DuckDB store: who holds a lock, and the writers-first gate.

Private to :mod:`chimera_lab.data.duckdb_store`; see its docstring ("What DuckDB allows").
"""

from __future__ import annotations

import os
import random
import re
import sys
import time
from pathlib import Path

from chimera_lab.errors import StoreError

if sys.platform != "win32":
    import fcntl

__all__ = ["WriterGate", "lock_holder"]

# Gate fds held by writers of this process. A process-wide registry on purpose: like the fds
# themselves, it belongs to the process, not to a Store object. A child forked while a writer
# holds the gate inherits the fd, and with it the flock (flock locks belong to the open file
# description, which parent and child share), so the gate would stay locked until the child
# exits, even after the parent released it. The child closes its copies right after the fork.
_HELD: set[int] = set()


def _close_inherited_gates() -> None:
    # Runs in the child after os.fork(): the writer that holds these fds is the parent's.
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:  # pragma: no cover - already closed
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):  # POSIX; a registration, no work, at import
    os.register_at_fork(after_in_child=_close_inherited_gates)

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<prog>.*?) \(PID (?P<pid>\d+)\)")


def lock_holder(exc: BaseException) -> str | None:
    # Who holds the file, if ``exc`` is a lock conflict; None for any other error.
    text = str(exc)
    if "Unique file handle conflict" in text or "already attached" in text:
        return f"another Store object in this process (PID {os.getpid()})"
    if "Could not set lock" in text or "Conflicting lock" in text:
        match = _LOCK_HOLDER.search(text)
        if match:
            return f"PID {match.group('pid')} ({match.group('prog')})"
        return "another process"
    return None


class WriterGate:
    """Writers-first turnstile on a sidecar file ``<store>.lock`` (POSIX ``flock``).

    A writer holds the gate exclusively from before it opens the store until after it closes
    it; a reader passes through (shared, released at once) before opening. Where ``flock`` is
    unavailable (Windows, a read-only directory) the gate is a no-op.
    """

    def __init__(self, store_path: Path, url: str, timeout_s: float) -> None:
        self.path = store_path.with_name(store_path.name + ".lock")
        self.url = url
        self.timeout_s = timeout_s

    def enter(self, *, write: bool, deadline: float) -> int | None:
        """Pass the gate: a writer gets the fd it keeps until it closes; a reader gets None."""
        if sys.platform == "win32":
            return None
        gate = self.path
        try:
            fd = os.open(gate, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            try:
                fd = os.open(gate, os.O_RDONLY)
            except OSError:
                return None  # no gate possible here (read-only directory): DuckDB locks suffice
        mode = fcntl.LOCK_EX if write else fcntl.LOCK_SH
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    writer = self.owner(fd)
                    os.close(fd)
                    raise StoreError(
                        f"store {self.url} is being written by {writer}; waited "
                        f"{self.timeout_s:g} s. Wait for that import to finish, or raise "
                        "CHIMERA_STORE__LOCK_TIMEOUT_S"
                    ) from None
                time.sleep(min(delay * (0.5 + random.random()), remaining))
                delay = min(delay * 2, 0.05)
            except OSError:
                os.close(fd)
                return None  # the file system does not support flock
        if not write:
            os.close(fd)  # closing releases the shared lock: readers only pass through
            return None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"PID {os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # opened read-only: the gate still works, only the owner's name is missing
        _HELD.add(fd)
        return fd

    @staticmethod
    def owner(fd: int) -> str:
        """Return who holds the gate (the PID a writer wrote into it)."""
        try:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        except OSError:
            text = ""
        return text or "another process"

    @staticmethod
    def leave(fd: int | None) -> None:
        """Release a gate returned by :meth:`enter` (``None`` is a no-op)."""
        if fd is not None:
            _HELD.discard(fd)
            os.close(fd)  # releases the flock
