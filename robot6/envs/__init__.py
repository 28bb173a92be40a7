"""The Gymnasium environments of Robot6 SAC; importing the package registers their ids.

The entry points are strings, so that registering imports no simulator: ``gymnasium.make`` imports a task's
module when the env is made.
"""

import gymnasium as gym

MAX_EPISODE_STEPS = 50  # every task's time limit (gymnasium's TimeLimit truncates the episode)

ENVS = {
    "Robot6Reach-v0": ("robot6.envs.tasks.reach:Robot6ReachEnv", {}),
    "Robot6Push-v0": ("robot6.envs.tasks.push:Robot6PushEnv", {}),
    "Robot6PushDense-v0": ("robot6.envs.tasks.push:Robot6PushEnv", {"dense": True}),
    "Robot6PickAndPlace-v0": ("robot6.envs.tasks.pick_and_place:Robot6PickAndPlaceEnv", {}),
    "Robot6PickAndPlaceDense-v0": ("robot6.envs.tasks.pick_and_place:Robot6PickAndPlaceEnv", {"dense": True}),
}
for env_id, (entry_point, kwargs) in ENVS.items():
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=MAX_EPISODE_STEPS)
