"""Train SAC on Robot6Reach-v0 (or any Box gymnasium env), resumable at any moment: the command ``robot6-train``
(also ``python -m robot6.train``, and ``python Train_Robot6.py`` in a checkout).

    robot6-train                                # a complete run with the default settings
    robot6-train --resume                       # continue the newest run where it stopped
    robot6-train --resume --resume-ckpt checkpoints/RUN/best.pth

Every flag is a field of ``robot6.run.config.Config``; its help text lives there. This module only parses the
command line, calls ``robot6.run.loop.train`` and turns a user mistake into a one-line message with exit code 2. Exit
codes: 0 when the run is complete (or was already), 2 for a user mistake, 128 + N when signal N (SIGINT 130,
SIGTERM 143) stopped the run before its end, after its save.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from robot6.errors import ConfigError, Robot6Error
from robot6.run.config import Config, flag_of, value_text
from robot6.run.report import command


def build_parser() -> argparse.ArgumentParser:
    """One flag per ``Config`` field. Defaults are suppressed so that ``parse_args`` tells which were given."""
    parser = argparse.ArgumentParser(
        prog=command("train"),
        description="Train Soft Actor-Critic on a 6-DOF robot arm (PyBullet). Checkpoints every episode; "
        "--resume continues exactly where a run stopped. A new run's learning settings come from its env's "
        "preset (robot6/presets.toml: a table per env, [goal_env] for any other goal env, [default] for the rest), flags given here win. On resume, "
        "settings come from the checkpoint unless given again here (flags given now win, and each change is "
        "reported).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    defaults = Config()
    from robot6.run.presets import PRESET_FIELDS, preset_for  # light: tomllib

    _, reach = preset_for(defaults.env_id)
    for f in dataclasses.fields(Config):
        default = getattr(defaults, f.name)
        help_text = f.metadata["help"]
        if f.name in PRESET_FIELDS:  # the default comes from the env's preset
            help_text += f" (default: the env's preset in robot6/presets.toml; {defaults.env_id}: {value_text(reach.get(f.name, default))})"
            default = None
        flag = flag_of(f.name)
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, action="store_true", help=help_text)
        elif f.type == "bool | None":  # None: decided by the env (--her) or the device (--compile)
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, help=help_text)
        elif f.name == "hidden":
            parser.add_argument(flag, dest=f.name, type=int, nargs="+", metavar="N", help=help_text)
        elif f.name == "randomization":
            parser.add_argument(flag, dest=f.name, nargs="+", metavar="NAME=LOW:HIGH", help=help_text)
        elif f.name == "workspace":
            parser.add_argument(flag, dest=f.name, type=float, nargs=6, metavar="X", help=help_text)
        else:
            base = str(f.type).split("|")[0].strip()  # "int | None" -> "int"
            kind = {"int": int, "float": float}.get(base, str)
            metavar = f.metadata.get("metavar") or (
                "PATH" if f.name.endswith(("_dir", "_ckpt")) else {"int": "N", "float": "X"}.get(base, "STR")
            )
            suffix = "" if default is None else f" (default: {default})"
            parser.add_argument(flag, dest=f.name, type=kind, metavar=metavar, help=help_text + suffix)
    return parser


def parse_ranges(texts: list[str]) -> dict[str, list[float]]:
    """``--randomization`` values (``NAME=LOW:HIGH`` or ``NAME=VALUE``) as ranges; ``ConfigError`` if malformed."""
    from robot6.envs.randomize import RandomizationError, parse_range

    try:
        return dict(parse_range(text) for text in texts)
    except RandomizationError as e:
        raise ConfigError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    from robot6.run.loop import train  # heavy imports (torch, pybullet) after --help

    try:
        if "randomization" in args:
            args["randomization"] = parse_ranges(args["randomization"])
        result = train(Config(**args), given=set(args))
    except Robot6Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl+C before training started (once it runs, the trainer handles signals)
        print("interrupted", file=sys.stderr)
        return 130
    return result.exit_code  # 0 once the run is complete; 130/143 when SIGINT/SIGTERM stopped it before


if __name__ == "__main__":
    sys.exit(main())
