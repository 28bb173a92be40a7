"""The process a run trains in: device, process-wide settings (restored when the run ends), the run-dir
lock, signals, run names and the versions a checkpoint records."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import signal
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock
import gymnasium as gym
import numpy as np
import torch

from robot6.errors import ConfigError

# glibc's documented defaults of the two malloc settings keep_freed_memory changes.
_GLIBC_TRIM_THRESHOLD = _GLIBC_MMAP_THRESHOLD = 128 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU. Raises ``ConfigError`` for CUDA without a GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is available to PyTorch here; use --device cpu or auto")
    return torch.device(name)


def check_compile(device: torch.device) -> None:
    """``--compile`` on a CPU builds a Python extension (torch.compile's C++ wrapper) at the first update:
    ``ConfigError`` now, before any training, when this machine has no C++ compiler it can use (``$CXX``,
    else g++) or no Python headers (``Python.h``) to build against. Nothing to check on CUDA."""
    if device.type != "cpu":
        return
    include = sysconfig.get_paths().get("include") or ""
    if not os.path.isfile(os.path.join(include, "Python.h")):
        raise ConfigError(
            f"--compile on a CPU builds a Python extension and needs the Python headers, which are not in "
            f"{include or 'this Python'} (Python.h); install them (e.g. apt install python3-dev), or train "
            "without --compile"
        )
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # another torch layout: torch.compile will say it itself
        return
    try:
        get_cpp_compiler()
    except Exception as e:  # torch._inductor.exc.InvalidCxxCompiler
        raise ConfigError(
            f"--compile on a CPU needs a C++ compiler for torch.compile and found none ({e}); "
            "install g++ (or set CXX), or train without --compile"
        ) from None


def versions() -> dict[str, str]:
    """The versions a checkpoint's meta records."""
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "gymnasium": str(gym.__version__),
    }


def new_run_name(*parents: Path) -> str:
    """``sac_YYYYMMDD-HHMMSS``, with ``-2``, ``-3``... when a folder of that name already exists."""
    base = time.strftime("sac_%Y%m%d-%H%M%S")
    name, n = base, 1
    while any((Path(p) / name).exists() for p in parents):
        n += 1
        name = f"{base}-{n}"
    return name


def keep_freed_memory(keep: bool = True) -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS at once
    (``keep=False``: glibc's default settings again). False off glibc, where nothing changes.

    Each update allocates and frees tensors of a few hundred KB, which glibc serves with fresh ``mmap``s or
    trims the heap after: ~250 page faults (zeroed pages) per update on a CPU, ~1 with these settings.
    Blocks over 32 MB (the replay arrays) are still mmapped. Setting glibc's defaults back turns off its
    dynamic mmap threshold, which ``mallopt`` cannot turn on again.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    trim, mmap = (512 << 20, 32 << 20) if keep else (_GLIBC_TRIM_THRESHOLD, _GLIBC_MMAP_THRESHOLD)
    return bool(mallopt(_M_TRIM_THRESHOLD, trim)) and bool(mallopt(_M_MMAP_THRESHOLD, mmap))


def denormals_flushed() -> bool:
    """Whether this thread's torch ops treat denormal floats as zero (``torch.set_flush_denormal``)."""
    return bool((torch.full((1,), 1e-39) * 1.0).item() == 0.0)


def flush_denormals(flush: bool = True) -> bool:
    """Have the CPU treat denormal floats (below ~1.2e-38) as zero in torch ops; True where the CPU supports it.

    Adam's moments of weights whose gradient stays zero (ReLU units that never fire) decay geometrically into
    the denormal range within a few thousand updates, and arithmetic on denormals is tens of times slower on
    x86. Flushed, the network weights come out bit for bit the same: only those moments differ, 0 instead of
    ~1e-40, and an Adam step of lr * 1e-40 / 1e-8 changes no float32 weight (tests/test_process.py).
    """
    return torch.set_flush_denormal(flush)


@contextlib.contextmanager
def process_settings() -> Iterator[None]:
    """Within the block, denormals flushed and freed memory kept (see above); on exit, as they were before
    (glibc's malloc: its default settings)."""
    flushed_before = denormals_flushed()
    kept = keep_freed_memory(True)
    flush_denormals(True)
    try:
        yield
    finally:
        flush_denormals(flushed_before)
        if kept:
            keep_freed_memory(False)


class RunDirLock:
    """An exclusive lock on a run folder (``.lock``, through ``filelock``) held while a process trains it.

    Two processes training the same run would interleave their checkpoints and logs; the second gets a
    ``ConfigError`` naming the first one's pid. The OS releases the lock when its holder dies (kill -9
    included); ``release`` lets it go at once.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._lock = filelock.FileLock(self.path, timeout=0)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            try:
                owner = self.path.read_text().strip() or "?"
            except OSError:
                owner = "?"
            raise ConfigError(f"{run_dir} is being trained by another process (pid {owner}); stop it or wait for it to finish") from None
        self.path.write_text(str(os.getpid()))  # the holder's: filelock leaves a lock file's content alone

    def release(self) -> None:
        self._lock.release()


class StopRequest:
    """SIGINT/SIGTERM while the block runs: the first asks the loop to stop at the next episode end
    (``requested``), the second exits at once. The previous handlers come back on exit.

    Handlers can only be installed on the main thread; elsewhere (a run started from a worker thread) the
    block installs none, and the caller stops the run by setting ``requested``.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None  # the first signal received, if any
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            # The last checkpoint on disk is complete: saves are atomic, so leaving mid-save is safe.
            sys.stderr.write("\nSecond signal: exiting now; the last saved checkpoint is intact.\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.requested, self.signum = True, signum
        sys.stderr.write(
            f"\n{signal.Signals(signum).name} received: finishing this episode and saving (signal again to quit now)\n"
        )
        sys.stderr.flush()
