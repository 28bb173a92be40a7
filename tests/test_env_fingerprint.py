"""The built-in envs' seeded rollouts, pinned: a sha256 over observations, rewards, flags and success of a few
episodes of random actions (and of the scripted controller where the env has one). A change to the arm, the
simulation or a task that moves any of them by one bit fails here, so refactors of the env code can prove they
changed nothing; the xArm6 given by its URDF (with its built-in card) must roll out as the built-in envs do.
When a change is meant to alter an env, print the new digests with
``python tests/test_env_fingerprint.py`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from robot6.envs import ENVS
from robot6.envs.factory import make_env

ARM5 = str(Path(__file__).parent / "arms" / "arm5.urdf")
SEED = 7
RANDOM_EPISODES = 2
SCRIPTED_EPISODES = 2

# Each registered env, and Reach on the test arm through its URDF (the generic arm's path).
CASES = {env_id: (env_id, {}) for env_id in sorted(ENVS)} | {"Robot6Reach-v0 arm5": ("Robot6Reach-v0", {"urdf": ARM5})}
FINGERPRINTS = {
    "Robot6PickAndPlace-v0": "442f07eab8122da0b81a179a01254210db8b467b3305ea7093ce3166b2710d45",
    "Robot6PickAndPlaceDense-v0": "8f8af8366851b2b51fde385cdd287011b847993be8f035c2dd389fd17f2117b6",
    "Robot6Push-v0": "63e895294ca848568945f188c5b6acdf8c85e5daa88efbf99ca3e9d7164dc911",
    "Robot6PushDense-v0": "aa0a196a4cf69c88d326d29c48670ebe76a55e52f3c29c0f57808968f2baca92",
    "Robot6Reach-v0": "9466e1ba5373b70724f6f841df5ce33a413c299fc101d9d31f408dcb2f6f4f25",
    "Robot6Reach-v0 arm5": "1c03f54f7ba537b79715d6d3aea6070c7241716b4ed7e81a450c86f1841ab9ac",
}


def fingerprint(env_id: str, seed: int = SEED, **env_kwargs) -> str:
    """sha256 over ``RANDOM_EPISODES`` episodes of uniform random actions (drawn from a generator seeded with
    ``seed``), then ``SCRIPTED_EPISODES`` of the env's ``demonstration()`` where it has one; the env is seeded
    once, at the first reset, as the trainer does."""
    env = make_env(env_id, **env_kwargs)
    digest = hashlib.sha256()
    rng = np.random.default_rng(seed)
    scripted = hasattr(env.unwrapped, "demonstration")
    low, high = env.action_space.low, env.action_space.high
    try:
        for episode in range(RANDOM_EPISODES + (SCRIPTED_EPISODES if scripted else 0)):
            obs, info = env.reset(seed=seed if episode == 0 else None)
            digest.update(np.asarray(obs, dtype=np.float32).tobytes())
            done = False
            while not done:
                if episode < RANDOM_EPISODES:
                    action = rng.uniform(low, high).astype(env.action_space.dtype)
                else:
                    action = np.asarray(env.unwrapped.demonstration(), dtype=env.action_space.dtype)
                obs, reward, terminated, truncated, info = env.step(action)
                digest.update(np.asarray(obs, dtype=np.float32).tobytes())
                digest.update(np.array([reward, terminated, truncated, info.get("is_success", False)],
                                       dtype=np.float64).tobytes())
                done = terminated or truncated
    finally:
        env.close()
    return digest.hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_built_in_envs_roll_out_bit_for_bit_as_pinned(case):
    env_id, kwargs = CASES[case]
    assert fingerprint(env_id, **kwargs) == FINGERPRINTS[case]


@pytest.mark.parametrize("env_id", ["Robot6Push-v0", "Robot6PickAndPlace-v0"])
def test_the_xarm6_through_its_urdf_and_card_is_the_built_in_env_bit_for_bit(env_id):
    assert fingerprint(env_id, urdf="xarm/xarm6_with_gripper.urdf") == FINGERPRINTS[env_id]


def test_every_env_is_pinned_and_another_seed_gives_another_fingerprint():
    assert set(FINGERPRINTS) == set(CASES)
    assert fingerprint("Robot6Reach-v0", SEED + 1) != FINGERPRINTS["Robot6Reach-v0"]


if __name__ == "__main__":
    for name, (env_id, kwargs) in sorted(CASES.items()):
        print(f'    "{name}": "{fingerprint(env_id, **kwargs)}",')
