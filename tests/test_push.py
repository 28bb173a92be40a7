"""Robot6Push-v0 (robot6/envs/tasks/push.py): gymnasium API compliance, determinism, rewards, a feasible task, rendering."""

import gymnasium as gym
import numpy as np
import pytest
from conftest import FAST, run_cli
from gymnasium.utils.env_checker import check_env

from robot6.envs import MAX_EPISODE_STEPS
from robot6.envs.tasks.push import (
    CUBE_HALF,
    REGION_HIGH,
    REGION_LOW,
    SUCCESS_DISTANCE,
    TIP_LOW,
    scripted_push,
)


@pytest.fixture
def env():
    e = gym.make("Robot6Push-v0")
    yield e
    e.close()


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [np.concatenate(list(obs.values()))]
    for a in actions:
        out.append(np.concatenate(list(env.step(a)[0].values())))
    return np.array(out)


def test_passes_gymnasium_env_checker(env):
    check_env(env.unwrapped, skip_render_check=True)


def test_spaces_goals_and_episode_length(env):
    assert env.action_space.shape == (3,)
    assert {k: s.shape for k, s in env.observation_space.spaces.items()} == {
        "observation": (24,), "achieved_goal": (3,), "desired_goal": (3,)}
    env.action_space.seed(0)
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        cube, goal = obs["achieved_goal"], obs["desired_goal"]
        assert np.all(REGION_LOW <= cube[:2]) and np.all(cube[:2] <= REGION_HIGH) and cube[2] == pytest.approx(CUBE_HALF, abs=1e-4)
        assert np.all(REGION_LOW <= goal[:2]) and np.all(goal[:2] <= REGION_HIGH)
        assert info["distance"] > SUCCESS_DISTANCE and not info["is_success"]  # never solved at the start
    steps, truncated = 0, False
    while not truncated:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated and env.observation_space.contains(obs)
        assert obs["observation"][2] >= TIP_LOW[2] - 0.01  # the fingertips stay above the ground
        steps += 1
    assert steps == MAX_EPISODE_STEPS


def test_same_seed_same_trajectory_whatever_ran_before(env):
    actions = np.random.default_rng(1).uniform(-1, 1, (60, 3)).astype(np.float32)
    first = rollout(env, 5, actions[:40])
    other = gym.make("Robot6Push-v0")
    rollout(other, 9, actions[::-1])
    second = rollout(other, 5, actions[:40])
    other.close()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, rollout(env, 6, actions[:40]))


def test_an_episode_where_the_cube_is_touched_does_not_depend_on_the_one_before():
    """PyBullet's restoreState leaves the broadphase's pair order and the cube's contact manifolds as the last
    episode left them; sorted pairs and dropped contacts make seed 20's episode (the cube pushed about) the
    same after seed 0's as in a fresh env."""
    def episode(e, seed):
        noise = np.random.default_rng(seed)
        obs = [e.reset(seed=seed)[0]["observation"]]
        obs += [e.step(np.clip(noise.normal(0, 1, 3), -1, 1))[0]["observation"] for _ in range(50)]
        return np.array(obs)

    fresh, used = gym.make("Robot6Push-v0"), gym.make("Robot6Push-v0")
    try:
        episode(used, 0)
        np.testing.assert_array_equal(episode(fresh, 20), episode(used, 20))
    finally:
        fresh.close()
        used.close()


@pytest.mark.parametrize("env_id, dense", [("Robot6Push-v0", False), ("Robot6PushDense-v0", True)])
def test_rewards_are_sparse_or_dense_and_compute_reward_agrees(env_id, dense):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=2)
    for a in np.random.default_rng(0).uniform(-1, 1, (20, 3)):
        obs, reward, _, _, info = env.step(a)
        assert reward == env.unwrapped.compute_reward(obs["achieved_goal"], obs["desired_goal"], {})
        assert reward == (-info["distance"] if dense else -float(info["distance"] > SUCCESS_DISTANCE))
    achieved = np.array([[0.4, 0.0, 0.02], [0.4, 0.0, 0.02]])
    desired = np.array([[0.43, 0.0, 0.02], [0.5, 0.0, 0.02]])
    expected = [-0.03, -0.1] if dense else [0.0, -1.0]
    np.testing.assert_allclose(env.unwrapped.compute_reward(achieved, desired, {}), expected)  # vectorised, for HER
    env.close()


def test_the_task_is_feasible_a_scripted_push_solves_most_episodes(env):
    successes = 0
    for seed in range(10):
        obs, _ = env.reset(seed=100 + seed)
        start = obs["achieved_goal"].copy()
        for _ in range(MAX_EPISODE_STEPS):
            obs, _, _, _, info = env.step(scripted_push(obs))
        successes += info["is_success"]
        assert np.linalg.norm(obs["achieved_goal"] - start) > 0.01  # the cube was moved every time
    assert successes >= 7


def test_rgb_array_shows_the_cube_moving():
    env = gym.make("Robot6Push-v0", render_mode="rgb_array", width=160, height=120)
    obs, _ = env.reset(seed=4, options={"cube": [0.45, 0.0], "goal": [0.55, 0.1]})
    before = env.render()
    assert before.shape == (120, 160, 3) and before.dtype == np.uint8
    for _ in range(30):
        obs, *_ = env.step(scripted_push(obs))
    assert np.abs(env.render().astype(int) - before.astype(int)).mean() > 0.5
    env.close()


def test_human_render_without_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(gym.error.Error, match="no display"):
        gym.make("Robot6Push-v0", render_mode="human")


def test_the_observation_stays_small_and_continuous_when_the_cube_is_knocked_over():
    """Every feature is within a few units (m, m/s, rotation-matrix entries, rad per control step) and the
    orientation moves smoothly, even while the cube tumbles: with Euler angles (jumps of 2 pi) and angular
    velocity in rad/s (up to 20 here), rare tumbling states were a hundred times the scale of the rest, and the
    critic's values diverged there (docs/defaults.md)."""
    env = gym.make("Robot6Push-v0")
    env.action_space.seed(0)
    rng = np.random.default_rng(0)
    largest, largest_turn, tumbled = 0.0, 0.0, 0
    for episode in range(40):
        obs, _ = env.reset(seed=episode, options={"cube": [0.45 + rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02)]})
        previous = obs["observation"]
        for t in range(50):  # down onto the cube under the start pose, then anything
            obs, *_ = env.step(np.array([0.0, 0.0, -1.0], dtype=np.float32) if t < 4 else env.action_space.sample())
            o = obs["observation"]
            largest = max(largest, float(np.abs(o).max()))
            largest_turn = max(largest_turn, float(np.abs(o[9:15] - previous[9:15]).max()))
            tumbled += bool(max(abs(o[11]), abs(o[14])) > 0.42)  # its x or y axis more than 25 degrees off the ground
            previous = o
    env.close()
    assert tumbled > 0  # the episodes did knock the cube over
    assert largest <= 1.5 and largest_turn <= 1.0, (largest, largest_turn)


def test_demos_are_the_scripted_push(tmp_path):
    """``demonstration()`` is what ``--demos`` plays: scripted_push in the current state."""
    env = gym.make("Robot6Push-v0")
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        action = env.unwrapped.demonstration()
        np.testing.assert_array_equal(action, scripted_push(obs))
        obs, *_ = env.step(action)
    env.close()
    result = run_cli("--env", "Robot6Push-v0", "--demos", "2", "--episodes", "1", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[DEMOS] 2 episodes of the scripted controller in the replay buffer (100 steps)" in result.stdout
