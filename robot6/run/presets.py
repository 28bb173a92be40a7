"""Per-env settings (``robot6/presets.toml``, shipped inside the package): a fresh run of ``--env X`` starts from
``[default]``, then X's table (for a goal env with no table of its own, the ``[goal_env]`` table), then the
flags given. A resumed run takes its settings from its checkpoint."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robot6.errors import ConfigError
from robot6.run.config import Config, flag_of, value_text

PRESETS_FILE = Path(__file__).resolve().parent.parent / "presets.toml"
# The table of any goal env (Dict observation/achieved_goal/desired_goal, or goal slices) without one of its own.
GOAL_TABLE = "goal_env"
# What a preset may set: how a run learns and is evaluated, not where it writes or how long it runs.
PRESET_FIELDS = ("hidden", "lr", "gamma", "batch_size", "tau", "utd", "policy_delay", "updates_every", "learning_starts",
                 "init_alpha", "her_k", "buffer_size", "eval_every", "eval_episodes", "demos", "randomize",
                 "action_history")
# The table of an env's domain randomization ranges: [randomization."ENV"].
RANDOMIZATION_TABLE = "randomization"


def read_presets_file(path: Path = PRESETS_FILE) -> dict[str, Any]:
    """The whole presets file (its env tables and its ``search`` table); ``ConfigError`` if unreadable."""
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the presets ({e})") from None


def load_presets(path: Path = PRESETS_FILE) -> dict[str, dict[str, Any]]:
    """The env tables of a presets file, checked: a ``default`` table, and only ``PRESET_FIELDS`` as keys
    (the ``search`` table, the sweeps' search spaces, is ``robot6.sweep``'s; the ``randomization`` table is
    ``randomization_ranges``')."""
    tables = read_presets_file(path)
    tables.pop("search", None)
    tables.pop(RANDOMIZATION_TABLE, None)
    if not isinstance(tables.get("default"), dict):
        raise ConfigError(f"{path}: no [default] table")
    for name, table in tables.items():
        unknown = sorted(set(table) - set(PRESET_FIELDS)) if isinstance(table, dict) else ["(not a table)"]
        if unknown:
            raise ConfigError(f"{path}: [{name}] has settings a preset cannot set: {', '.join(unknown)}")
    return tables


def preset_for(env_id: str, path: Path = PRESETS_FILE, goal_env: Callable[[], bool] | None = None) -> tuple[str, dict[str, Any]]:
    """The preset of ``env_id`` (a table over ``[default]``) and the table's name: ``env_id``'s own; else, when
    the file has a ``[goal_env]`` table and ``goal_env()`` (asked only then) says the env is a goal env, that one;
    else ``default``."""
    tables = load_presets(path)
    if env_id in tables and env_id not in ("default", GOAL_TABLE):
        name = env_id
    elif GOAL_TABLE in tables and goal_env is not None and goal_env():
        name = GOAL_TABLE
    else:
        name = "default"
    return name, {**tables["default"], **(tables[name] if name != "default" else {})}


def is_goal_env(config: Config) -> bool:
    """Whether the env of ``config`` has goals HER can relabel (it is made once to look; ``ConfigError`` if it
    cannot be)."""
    from robot6.envs.factory import make_env
    from robot6.envs.goals import goal_spec

    env = make_env(config.env_id, **config.env_kwargs())
    try:
        return goal_spec(env) is not None
    finally:
        env.close()


def apply_preset(config: Config, given: set[str], path: Path | None = None) -> tuple[Config, str]:
    """``config`` with its env's preset in every field of ``PRESET_FIELDS`` not in ``given``, and one line
    that says where each setting came from (the preset, or the flags given). The presets file is ``path``,
    else ``config.presets``, else ``robot6/presets.toml``."""
    path = Path(path or config.presets or PRESETS_FILE)
    name, values = preset_for(config.env_id, path, lambda: is_goal_env(config))
    taken = {k: v for k, v in values.items() if k not in given}
    try:
        result = dataclasses.replace(config, **taken)
    except TypeError as e:
        raise ConfigError(f"{path}: [{name}]: {e}") from None
    shown = ", ".join(f"{k} {value_text(v)}" for k, v in taken.items())
    flags = ", ".join(f"{flag_of(k)} {value_text(getattr(config, k))}" for k in sorted(given & set(PRESET_FIELDS)))
    where = "" if path == PRESETS_FILE else f" of {path}"
    why = " for a goal env with no table of its own" if name == GOAL_TABLE else ""
    line = f"[CONFIG] {config.env_id}: preset [{name}]{where}{why} ({shown})" + (f"; given: {flags}" if flags else "")
    return result, line



def randomization_ranges(env_id: str, path: Path = PRESETS_FILE) -> dict[str, list[float]]:
    """The domain randomization ranges of ``env_id`` in a presets file (``[randomization."ENV"]``; {} if none)."""
    from robot6.envs.randomize import RandomizationError, check_ranges

    table = read_presets_file(path).get(RANDOMIZATION_TABLE, {}).get(env_id, {})
    try:
        return check_ranges(table, where=f"{path}: [{RANDOMIZATION_TABLE}.\"{env_id}\"]")
    except RandomizationError as e:
        raise ConfigError(str(e)) from None


def resolve_randomization(config: Config) -> Config:
    """``config`` with ``randomization`` complete when ``randomize`` is on: the env's ranges from the presets file
    (``config.presets`` when it has them, else ``robot6/presets.toml``), the given ones over them (prints them);
    ``ConfigError`` when none are known. Off, ``config`` unchanged."""
    if not config.randomize:
        return config
    path = Path(config.presets or PRESETS_FILE)
    own = randomization_ranges(config.env_id, path)
    if not own and path != PRESETS_FILE:  # e.g. a sweep's presets file: the shipped ranges
        path, own = PRESETS_FILE, randomization_ranges(config.env_id, PRESETS_FILE)
    ranges = {**own, **(config.randomization or {})}
    if not ranges:
        raise ConfigError(f"--randomize: {path} has no [{RANDOMIZATION_TABLE}.\"{config.env_id}\"] ranges; "
                          "give them with --randomization NAME=LOW:HIGH ...")
    shown = ", ".join(f"{k} {v[0]:g}..{v[1]:g}" for k, v in sorted(ranges.items()))
    print(f"[RANDOMIZE] every episode draws: {shown}")
    if ranges.get("latency", [0, 0])[1] > 0 and not config.action_history:
        print("[RANDOMIZE] latency without --action-history: the policy cannot see the commands still on their way "
              "(on Reach a 2-step delay needs it: docs/REAL_ROBOT.md)")
    return dataclasses.replace(config, randomization=ranges)
