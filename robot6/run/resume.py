"""Which checkpoint ``--resume`` continues, with which settings, in which run folder (docs/ARCHITECTURE.md,
"Resume rules"), and whether anything is left to train."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot6.errors import CheckpointError, ConfigError
from robot6.run import checkpoint as ckpt
from robot6.run.config import RUN_FIELDS, Config, flag_of, value_text
from robot6.run.presets import apply_preset, resolve_randomization
from robot6.run.process import new_run_name

# Fields a resumed run cannot change: they define the environment or the shape of saved tensors.
FIXED_ON_RESUME = ("env_id", "ee_link", "hidden", "buffer_size", "demos", "action_history")
# Fields always taken from the current command line, never from the checkpoint.
CURRENT_ON_RESUME = ("checkpoint_dir", "log_dir", "resume", "resume_ckpt", "accept_urdf_change")
# What a checkpoint without these settings was trained with: copies stored at episode ends, and the actor
# stepped at every update.
BEFORE_THE_FIELD = {"her_relabel": "store", "policy_delay": 1}


@dataclass
class Resume:
    """The checkpoint a run continues from, and where the continuation goes."""

    path: Path
    state: dict[str, Any]
    run_name: str
    in_place: bool  # continues its run folder (else a new run folder, forked from it)
    parent_run_dir: Path  # the checkpoint folder the file lives in

    @property
    def episode(self) -> int:
        return int(self.state["episode"])

    @property
    def global_step(self) -> int:
        return int(self.state["global_step"])


def given_fields(config: Config, given: Iterable[str] | None) -> set[str]:
    """The fields set on the command line; None: those that differ from ``Config()``'s defaults."""
    if given is not None:
        return set(given)
    defaults = Config()
    return {f.name for f in dataclasses.fields(Config) if getattr(config, f.name) != getattr(defaults, f.name)}


def plan(config: Config, given: set[str]) -> tuple[Config, Resume | None]:
    """The validated config of a run and, with ``--resume``, the checkpoint it continues (None: a fresh start).
    A fresh run takes its env's preset in the fields not given (and prints where each setting came from); a
    resumed one the checkpoint's settings.

    Raises ``Robot6Error`` for a bad flag, a missing ``--resume-ckpt`` or an incompatible checkpoint.
    """
    config.validate()
    if {"episodes", "total_steps"} <= given and config.total_steps is not None:
        raise ConfigError("--episodes and --total-steps both set the length of the run: give only one")
    resume = find_resume(config, given) if config.resume else None
    if resume is not None:
        config = merge_resume_config(config, given, resume.state["meta"].get("config", {}), resume.path)
    else:
        config, line = apply_preset(config, given)
        print(line)
    if "randomization" in given and not config.randomize:
        raise ConfigError("--randomization sets the ranges of --randomize: add --randomize")
    config = resolve_randomization(config)
    config.validate()
    if "episodes" in given:  # --episodes given now replaces a --total-steps of the checkpoint
        config = dataclasses.replace(config, total_steps=None)
    return config, resume


def completion(config: Config, resume: Resume | None) -> str | None:
    """The line that says ``resume``'s run has already trained as long as ``config`` asks, or None."""
    if resume is None:
        return None
    name = resume.parent_run_dir.name
    if config.total_steps is not None:
        if resume.global_step < config.total_steps:
            return None
        return (f"run {name} is complete: {resume.global_step}/{config.total_steps} steps; "
                "pass --total-steps N to train further")
    if resume.episode < config.episodes:
        return None
    return f"run {name} is complete: {resume.episode}/{config.episodes} episodes; pass --episodes N to train further"


def find_resume(config: Config, given: set[str]) -> Resume | None:
    """The checkpoint ``--resume`` continues from, or None (after saying so) when there is none.

    With ``--resume-ckpt`` that file must be valid (else ``CheckpointError``). Otherwise the candidates of
    ``checkpoint.find_resume_candidates`` are tried in order; unreadable ones are reported and skipped.
    """
    checkpoint_dir = Path(config.checkpoint_dir)
    if config.resume_ckpt is not None:
        path = Path(config.resume_ckpt)
        state = ckpt.load_checkpoint(path)
    else:
        for path in ckpt.find_resume_candidates(checkpoint_dir):
            try:
                state = ckpt.load_checkpoint(path)
            except CheckpointError as e:
                print(f"[RESUME] Skipping {e}; trying the next newest checkpoint")
                continue
            break
        else:
            print("[RESUME] Checkpoint not found, starting from scratch")
            return None
    saved_env = state["meta"].get("env_id")
    if "env_id" in given and saved_env != config.env_id:
        raise CheckpointError(
            f"{path}: checkpoint env id is {saved_env!r} but --env is {config.env_id!r}; drop --env to continue "
            "that run, or choose another checkpoint with --resume-ckpt"
        )
    run_dir = path.parent
    in_place = path.resolve().parent.parent == checkpoint_dir.resolve() and is_newest_state(path, state)
    run_name = run_dir.name if in_place else new_run_name(checkpoint_dir, Path(config.log_dir))
    return Resume(path=path, state=state, run_name=run_name, in_place=in_place, parent_run_dir=run_dir)


def is_newest_state(path: Path, state: dict[str, Any]) -> bool:
    """Whether ``state`` is as far as its run went (else resuming it must fork, not overwrite history)."""
    latest = path.parent / "latest.pth"
    if path.name == "latest.pth" or not latest.is_file():
        return True
    try:
        newest = ckpt.load_checkpoint(latest)
    except CheckpointError:
        return True  # the newest state is lost; this is the best there is
    return state["global_step"] >= newest["global_step"]


def merge_resume_config(config: Config, given: set[str], saved: dict[str, Any], path: Path) -> Config:
    """The config a resumed run uses: the checkpoint's, overridden by the flags given now (reported)."""
    old = Config.from_dict({**BEFORE_THE_FIELD, **saved})
    values = {}
    for f in dataclasses.fields(Config):
        now, before = getattr(config, f.name), getattr(old, f.name)
        if f.name in CURRENT_ON_RESUME or (f.name in given and now == before):
            values[f.name] = now
        elif f.name in given:
            if f.name in FIXED_ON_RESUME:
                raise CheckpointError(
                    f"{path}: {flag_of(f.name)} {value_text(now)} differs from the checkpoint's {value_text(before)}, and it "
                    "cannot change on resume; drop the flag or start a new run without --resume"
                )
            if f.name not in RUN_FIELDS:
                print(f"[RESUME] {flag_of(f.name)} {value_text(now)} differs from the checkpoint's {value_text(before)}: using {value_text(now)}")
            values[f.name] = now
        else:
            values[f.name] = before
    return Config(**values)

