"""Gymnasium environments of this project; importing the package registers them."""

import gymnasium as gym

from envs.robot6 import MAX_EPISODE_STEPS, Robot6ReachEnv

__all__ = ["Robot6ReachEnv"]

if "Robot6Reach-v0" not in gym.registry:
    gym.register(id="Robot6Reach-v0", entry_point="envs.robot6:Robot6ReachEnv", max_episode_steps=MAX_EPISODE_STEPS)
