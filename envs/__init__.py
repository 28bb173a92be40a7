"""Gymnasium environments of this project; importing the package registers them."""

import gymnasium as gym

from envs.tasks.push import Robot6PushEnv
from envs.tasks.reach import MAX_EPISODE_STEPS, Robot6ReachEnv

__all__ = ["Robot6PushEnv", "Robot6ReachEnv"]

ENVS = {
    "Robot6Reach-v0": ("envs.tasks.reach:Robot6ReachEnv", {}),
    "Robot6Push-v0": ("envs.tasks.push:Robot6PushEnv", {}),
    "Robot6PushDense-v0": ("envs.tasks.push:Robot6PushEnv", {"dense": True}),
    "Robot6PickAndPlace-v0": ("envs.tasks.pick_and_place:Robot6PickAndPlaceEnv", {}),
    "Robot6PickAndPlaceDense-v0": ("envs.tasks.pick_and_place:Robot6PickAndPlaceEnv", {"dense": True}),
}
for env_id, (entry_point, kwargs) in ENVS.items():
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=MAX_EPISODE_STEPS)
