"""Making an env the way the trainer and the tools do: ``gymnasium.make`` with this project's envs
registered, goal Dict observations flattened, and a one-line ``ConfigError`` for an env SAC cannot train."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robot6.envs.goals import FlattenGoalObservation, is_goal_dict_space
from robot6.envs.randomize import RandomizationError
from robot6.envs.urdf import UrdfError
from robot6.errors import ConfigError


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)``, flattened if it is a Dict goal env; ``ConfigError`` for a bad id
    or for spaces SAC cannot handle (not flat Boxes, unbounded actions), and for an arm's URDF that cannot be used."""
    try:
        env = gym.make(env_id, **kwargs)
    except UrdfError as e:
        raise ConfigError(str(e)) from None
    except RandomizationError as e:
        raise ConfigError(f"--env {env_id}: {e}") from None
    except gym.error.Error as e:
        raise ConfigError(f"--env {env_id}: cannot make this environment: {str(e).splitlines()[0]}") from None
    except ModuleNotFoundError as e:
        raise ConfigError(f"--env {env_id}: a package it needs is not installed ({e.name})") from None
    if is_goal_dict_space(env.observation_space):
        env = FlattenGoalObservation(env)  # gymnasium-robotics style goal env: one flat vector, goals known
    for what, space in (("observation", env.observation_space), ("action", env.action_space)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            env.close()
            raise ConfigError(
                f"--env {env_id}: its {what} space is {space}; SAC here needs flat Box observation and action spaces"
            )
    if not (np.all(np.isfinite(env.action_space.low)) and np.all(np.isfinite(env.action_space.high))):
        env.close()
        raise ConfigError(f"--env {env_id}: its action space {env.action_space} is unbounded; SAC needs finite bounds")
    return env


def env_signature(env_id: str, env: gym.Env) -> dict[str, Any]:
    """What a checkpoint must match to be resumed in ``env`` (the checkpoint's meta holds it), with the ``arm``
    (its URDF, hash, joints, limits and action scaling) of an env that drives one."""
    signature = {
        "env_id": env_id,
        "obs_dim": int(env.observation_space.shape[0]),
        "act_dim": int(env.action_space.shape[0]),
        "action_low": env.action_space.low.astype(np.float64).tolist(),
        "action_high": env.action_space.high.astype(np.float64).tolist(),
    }
    arm = getattr(env.unwrapped, "arm", None)
    if isinstance(arm, dict):
        signature["arm"] = arm
    return signature
