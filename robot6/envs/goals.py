"""Goal-conditioned envs as flat vectors: where the goals sit in an observation, and the env's reward for any goal.

A goal env is either one with a flat Box observation that says where its goals are
(``achieved_goal_slice``/``desired_goal_slice`` and ``compute_reward``, like Robot6Reach-v0), or a
gymnasium-robotics style env with a Dict observation ``observation/achieved_goal/desired_goal`` and a
``compute_reward`` (e.g. panda-gym), which ``FlattenGoalObservation`` turns into the first kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


@dataclass
class GoalSpec:
    """Where the goals sit in a flat observation, and the env's reward for any goal (vectorised:
    ``compute_reward(achieved (N, g), desired (N, g), info) -> (N,)``)."""

    achieved: slice
    desired: slice
    compute_reward: Callable[[np.ndarray, np.ndarray, dict], np.ndarray]


def is_goal_dict_space(space: gym.Space) -> bool:
    """Whether ``space`` is a Dict of Box ``observation``, ``achieved_goal`` and ``desired_goal``."""
    return isinstance(space, gym.spaces.Dict) and set(GOAL_KEYS) <= set(space.spaces) and all(
        isinstance(space.spaces[k], gym.spaces.Box) for k in GOAL_KEYS
    )


class FlattenGoalObservation(gym.ObservationWrapper):
    """Dict(observation, achieved_goal, desired_goal) -> one float32 vector in that order, with the slices
    and ``compute_reward`` of a flat goal env."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        sizes = [int(np.prod(env.observation_space.spaces[k].shape)) for k in GOAL_KEYS]
        o, a, d = np.cumsum([0, *sizes])[:3]
        self.achieved_goal_slice = slice(int(a), int(a) + sizes[1])
        self.desired_goal_slice = slice(int(d), int(d) + sizes[2])
        low = np.concatenate([env.observation_space.spaces[k].low.ravel() for k in GOAL_KEYS])
        high = np.concatenate([env.observation_space.spaces[k].high.ravel() for k in GOAL_KEYS])
        self.observation_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

    def observation(self, observation: dict) -> np.ndarray:
        return np.concatenate([np.asarray(observation[k], dtype=np.float32).ravel() for k in GOAL_KEYS])

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: dict) -> np.ndarray:
        return self.env.unwrapped.compute_reward(achieved_goal, desired_goal, info)


def goal_spec(env: gym.Env) -> GoalSpec | None:
    """The ``GoalSpec`` of a (possibly wrapped) env, or None when it is not a goal env."""
    layer = env
    while layer is not None:
        if hasattr(layer, "achieved_goal_slice") and hasattr(layer, "desired_goal_slice") and hasattr(layer, "compute_reward"):
            return GoalSpec(layer.achieved_goal_slice, layer.desired_goal_slice, layer.compute_reward)
        layer = getattr(layer, "env", None)
    return None
