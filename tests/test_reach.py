"""Robot6Reach-v0 (robot6/envs/tasks/reach.py): gymnasium API compliance, determinism, reward terms, rendering."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.utils.passive_env_checker import env_render_passive_checker

from robot6.envs import MAX_EPISODE_STEPS
from robot6.envs.tasks.reach import GOAL_HIGH, GOAL_LOW, SUCCESS_DISTANCE


@pytest.fixture
def env():
    e = gym.make("Robot6Reach-v0")
    yield e
    e.close()


def rollout(env, seed, actions):
    obs = [env.reset(seed=seed)[0]]
    for a in actions:
        obs.append(env.step(a)[0])
    return np.array(obs)


def test_passes_gymnasium_env_checker(env):
    # The human render mode needs a display (checked separately below), so the render check is skipped here.
    check_env(env.unwrapped, skip_render_check=True)


def test_spaces_and_episode_length(env):
    assert env.observation_space.shape == (18,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (6,)
    np.testing.assert_array_equal(env.action_space.low, -1)
    np.testing.assert_array_equal(env.action_space.high, 1)
    obs, _ = env.reset(seed=0)
    assert GOAL_LOW.min() <= obs[15:].min() and obs[15:].max() <= GOAL_HIGH.max()
    steps, truncated = 0, False
    while not truncated:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        assert env.observation_space.contains(obs)
        steps += 1
    assert steps == MAX_EPISODE_STEPS


def test_same_seed_same_trajectory_whatever_ran_before(env):
    actions = np.random.default_rng(1).uniform(-1, 1, (60, 6)).astype(np.float32)
    first = rollout(env, 5, actions[:40])
    other = gym.make("Robot6Reach-v0")
    rollout(other, 9, actions[::-1])  # a different history in that client
    second = rollout(other, 5, actions[:40])
    other.close()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, rollout(env, 6, actions[:40]))


def test_reward_is_negative_distance_and_compute_reward_agrees(env):
    env.reset(seed=3)
    goal = env.unwrapped.goal
    u = env.unwrapped
    for _ in range(MAX_EPISODE_STEPS):
        obs, reward, _, _, info = env.step(env.action_space.sample())
        distance = np.linalg.norm(obs[12:15] - goal)
        assert info["distance"] == pytest.approx(distance, abs=1e-6)
        assert reward == pytest.approx(-info["distance"])
        assert info["is_success"] == (info["distance"] < SUCCESS_DISTANCE)
        # Exactly: hindsight relabelling recomputes stored rewards with compute_reward.
        assert type(reward) is float and reward == u.compute_reward(obs[u.achieved_goal_slice], obs[u.desired_goal_slice], info)
    batch = u.compute_reward(np.zeros((4, 3)), np.tile([0.3, 0.4, 0.0], (4, 1)), {})
    np.testing.assert_allclose(batch, [-0.5] * 4)


def test_actions_are_clipped_to_the_action_space(env):
    rng = np.random.default_rng(4)
    actions = rng.uniform(-3, 3, (30, 6))
    np.testing.assert_array_equal(rollout(env, 2, actions), rollout(env, 2, np.clip(actions, -1, 1)))


def test_goal_at_the_flange_is_a_success(env):
    obs, _ = env.reset(seed=0)
    ee = obs[12:15]
    obs, _ = env.reset(options={"goal": ee})
    _, _, _, _, info = env.step(np.zeros(6))
    assert info["is_success"] and info["distance"] < 0.01


def test_rgb_array_render_works_headless():
    e = gym.make("Robot6Reach-v0", render_mode="rgb_array")
    e.reset(seed=0)
    env_render_passive_checker(e)
    frame = e.render()
    e.close()
    assert frame.shape == (360, 480, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # a scene, not a blank image


def test_human_render_without_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(gym.error.Error, match="no display"):
        gym.make("Robot6Reach-v0", render_mode="human")
