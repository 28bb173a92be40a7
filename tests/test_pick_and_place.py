"""Robot6PickAndPlace-v0 (envs/tasks/pick_and_place.py): the gripper holds the cube, the env's API, goals and
determinism."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.tasks.pick_and_place import GOAL_MAX_HEIGHT, OBS_DIM, scripted_pick
from envs.tasks.push import CUBE_HALF, SUCCESS_DISTANCE


@pytest.fixture(scope="module")
def env():
    e = gym.make("Robot6PickAndPlace-v0")
    yield e
    e.close()


def test_the_scripted_controller_picks_the_cube_and_carries_it_to_a_goal_in_the_air(env):
    """Above the cube, open, down, close, lift, carry: the cube leaves the ground on every seed and ends at the
    goal 13 cm up on most (a grip that fails drops it on the way)."""
    lifted, placed = 0, 0
    for seed in range(10):
        obs, _ = env.reset(seed=seed, options={"goal": [0.45, 0.0, 0.15]})
        top, done = 0.0, False
        while not done:
            obs, _, terminated, truncated, info = env.step(scripted_pick(obs))
            top, done = max(top, float(obs["achieved_goal"][2])), terminated or truncated
        lifted += top > CUBE_HALF + 0.10
        placed += info["is_success"]
    assert lifted == 10 and placed >= 7, (lifted, placed)


def test_spaces_and_the_env_checker():
    e = gym.make("Robot6PickAndPlace-v0")
    try:
        check_env(e.unwrapped, skip_render_check=True)
        assert e.action_space.shape == (4,) and e.observation_space["observation"].shape == (OBS_DIM,)
        obs, _ = e.reset(seed=0)
        assert obs["observation"][21] == 0.0 and obs["observation"][22] == pytest.approx(0.082, abs=0.003)  # open
        for _ in range(5):
            obs, *_ = e.step(np.array([0, 0, 0, 1], dtype=np.float32))
        assert obs["observation"][21] == pytest.approx(0.85) and obs["observation"][22] < 0.01  # closed on nothing
    finally:
        e.close()


def test_goals_are_on_the_ground_for_about_a_third_and_never_solved_at_the_start(env):
    heights = []
    for seed in range(300):
        obs, info = env.reset(seed=seed)
        heights.append(obs["desired_goal"][2] - CUBE_HALF)
        assert not info["is_success"] and info["distance"] > SUCCESS_DISTANCE
    heights = np.array(heights)
    assert 0.2 < np.mean(heights < 1e-6) < 0.4 and heights.max() <= GOAL_MAX_HEIGHT + 1e-6


def test_same_seed_same_trajectory_whatever_ran_before():
    actions = np.random.default_rng(3).uniform(-1, 1, (40, 4)).astype(np.float32)

    def rollout(e, seed):
        obs = [e.reset(seed=seed)[0]["observation"]]
        obs += [e.step(a)[0]["observation"] for a in actions]
        return np.array(obs)

    a, b = gym.make("Robot6PickAndPlace-v0"), gym.make("Robot6PickAndPlace-v0")
    try:
        first = rollout(a, 5)
        rollout(b, 8)
        np.testing.assert_array_equal(first, rollout(b, 5))
    finally:
        a.close()
        b.close()
