"""A goal env of the test suite's own, shaped like many third-party goal envs: a Dict observation
(observation / achieved_goal / desired_goal), an episode that ends on success, and a constructor that accepts
only ``render_mode="rgb_array"`` (its default) or ``"human"``, refusing ``None``.

Made as ``robot6_test_envs:EarlyStopReach-v0`` (gymnasium imports the module) with ``tests/`` on the path.
"""

import gymnasium as gym
import numpy as np

from robot6.envs import MAX_EPISODE_STEPS
from robot6.envs.tasks.reach import ACHIEVED_GOAL, DESIRED_GOAL, Robot6ReachEnv

ENV_ID = "robot6_test_envs:EarlyStopReach-v0"


class EarlyStopReachEnv(Robot6ReachEnv):
    """Robot6Reach with a Dict observation that terminates when the flange reaches the goal."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 24}

    def __init__(self, render_mode: str = "rgb_array"):
        if render_mode not in ("rgb_array", "human"):
            raise ValueError(f"render_mode must be 'rgb_array' or 'human', got {render_mode!r}")
        super().__init__(render_mode=render_mode, width=96, height=72)
        box = self.observation_space
        parts = {"observation": slice(0, ACHIEVED_GOAL.start), "achieved_goal": ACHIEVED_GOAL, "desired_goal": DESIRED_GOAL}
        self.observation_space = gym.spaces.Dict(
            {k: gym.spaces.Box(box.low[s], box.high[s], dtype=np.float32) for k, s in parts.items()}
        )
        self._parts = parts

    def _dict(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {k: obs[s] for k, s in self._parts.items()}

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        return self._dict(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return self._dict(obs), reward, terminated or bool(info["is_success"]), truncated, info


if "EarlyStopReach-v0" not in gym.registry:
    gym.register(id="EarlyStopReach-v0", entry_point=EarlyStopReachEnv, max_episode_steps=MAX_EPISODE_STEPS)


class NoFramesReachEnv(EarlyStopReachEnv):
    """The same env, whose ``render()`` gives no frame (as envs that only draw in a window)."""

    def render(self):
        return None


if "NoFramesReach-v0" not in gym.registry:
    gym.register(id="NoFramesReach-v0", entry_point=NoFramesReachEnv, max_episode_steps=MAX_EPISODE_STEPS)
NO_FRAMES_ID = "robot6_test_envs:NoFramesReach-v0"
