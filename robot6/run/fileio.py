"""Crash-safe file writes: a kill at any instant leaves the old file or the complete new one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the complete new one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    """``atomic_write_bytes`` of ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


class BackgroundWriter:
    """Runs file-writing jobs in one background thread, so that the caller does not wait for the disk.

    At most one job is in flight: ``submit`` refuses a second one until ``wait`` has collected the first, so
    jobs run in order and what is on disk lags the caller by at most one job. The thread is not a daemon:
    a job still running when the program ends is finished first (a kill stops it, which atomic writes
    make harmless).
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robot6-writer")
        self._future: Future[None] | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Start ``job()`` in the background; call ``wait`` for the previous job first."""
        if self._future is not None:
            raise RuntimeError("BackgroundWriter.submit: wait() for the previous job first")
        self._future = self._pool.submit(job)

    def wait(self) -> BaseException | None:
        """Block until the job in flight (if any) is done; returns the exception it raised, or None."""
        future, self._future = self._future, None
        return None if future is None else future.exception()

    def close(self) -> BaseException | None:
        """``wait``, then stop the thread."""
        try:
            return self.wait()
        finally:
            self._pool.shutdown()
