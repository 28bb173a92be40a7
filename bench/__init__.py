"""Benchmarks, run as modules from the repository root (``python -m bench.speed``); shared helpers: the environment
of a measured subprocess, and the one parser of ``KEY=VALUE`` settings (``--set``, ``--extra``)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from robot6.errors import ConfigError
from robot6.run.config import Config, flag_of

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "Train_Robot6.py"


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a measured subprocess: ours, with the repository first on PYTHONPATH (a path the
    caller already had, e.g. packages installed with ``pip --target``, stays after it) and ``extra`` set."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def _field_types() -> dict[str, str]:
    """Config field -> its type without ``| None``: ``int``, ``float``, ``bool``, ``str``, ``list[int]``..."""
    return {f.name: str(f.type).split("|")[0].strip() for f in dataclasses.fields(Config)}


def parse_settings(items: list[str], option: str = "--set") -> dict[str, Any]:
    """``["lr=3e-4", "hidden=256,256", "--her=false"]`` -> ``{"lr": 0.0003, "hidden": [256, 256], "her": False}``:
    Config fields (or their flags) with values typed as the fields are (lists comma-separated, booleans
    true/false/1/0, ``randomization=latency=0:2,object_mass=0.5:2`` ranges). ``ConfigError`` naming ``option`` for a key that is no setting or a value of the wrong type."""
    types, values = _field_types(), {}
    for item in items:
        key, equals, text = item.lstrip("-").partition("=")
        key = key.replace("-", "_")
        if not equals:
            raise ConfigError(f"{option} {item}: give it as SETTING=VALUE, e.g. lr=3e-4")
        if key not in types:
            raise ConfigError(f"{option} {item}: {key} is not a setting (robot6-train --help lists them)")
        kind = types[key]
        try:
            if kind == "bool":
                if text.lower() not in ("true", "1", "false", "0"):
                    raise ValueError(text)
                values[key] = text.lower() in ("true", "1")
            elif kind.startswith("dict["):
                from robot6.train import parse_ranges

                values[key] = parse_ranges(text.split(","))
            elif kind.startswith("list["):
                item_type = float if kind == "list[float]" else int
                values[key] = [item_type(x) for x in text.replace(",", " ").split()]
            else:
                values[key] = {"int": int, "float": float}.get(kind, str)(text)
        except ValueError:
            raise ConfigError(f"{option} {item}: {key} needs a value of type {kind}") from None
    return values


def settings_flags(values: dict[str, Any]) -> list[str]:
    """The training command's flags that set ``values`` (as ``parse_settings`` gives them)."""
    types, flags = _field_types(), []
    for key, value in values.items():
        flag = flag_of(key)
        if types[key] == "bool":
            if value:
                flags.append(flag)
            elif any(f.name == key and "None" in str(f.type) for f in dataclasses.fields(Config)):
                flags.append("--no-" + flag[2:])  # decided by the env unless turned off (--no-her)
        elif isinstance(value, list):
            flags += [flag, *map(str, value)]
        elif isinstance(value, dict):  # --randomization NAME=LOW:HIGH ...
            flags += [flag, *(f"{k}={lo}:{hi}" for k, (lo, hi) in value.items())]
        else:
            flags += [flag, str(value)]
    return flags
