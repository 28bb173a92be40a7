"""Benchmarks, run as modules from the repository root (``python -m bench.speed``); shared helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a measured subprocess: ours, with the repository first on PYTHONPATH (a path the
    caller already had, e.g. packages installed with ``pip --target``, stays after it) and ``extra`` set."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def parse_fields(items: list[str]) -> dict[str, object]:
    """``["updates_every=8", "--her=false"]`` -> ``{"updates_every": 8, "her": False}``: Config fields (or their
    flags) with values; numbers and true/false are decoded (JSON), anything else stays a string."""
    fields: dict[str, object] = {}
    for item in items:
        key, _, value = item.lstrip("-").partition("=")
        key = key.replace("-", "_")
        is_json = value.replace(".", "", 1).lstrip("-").isdigit() or value in ("true", "false")
        fields[key] = json.loads(value) if is_json else value
    return fields
