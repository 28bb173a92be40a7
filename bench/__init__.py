"""Benchmarks (run as scripts: ``python bench/speed.py``); shared helpers."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a measured subprocess: ours, with the repository first on PYTHONPATH (a path the
    caller already had, e.g. packages installed with ``pip --target``, stays after it) and ``extra`` set."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)
