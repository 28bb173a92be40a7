"""Robot6PickAndPlace-v0 (robot6/envs/tasks/pick_and_place.py): the gripper holds the cube, the env's API, goals and
determinism."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import run_cli
from gymnasium.utils.env_checker import check_env

from robot6.envs.factory import make_env
from robot6.envs.tasks.pick_and_place import GOAL_MAX_HEIGHT, PICK_OBS_DIM, scripted_pick
from robot6.envs.tasks.push import CUBE_HALF, OBS_DIM, SUCCESS_DISTANCE
from robot6.run import checkpoint as ckpt
from robot6.run.config import Config
from robot6.run.loop import Trainer


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
        assert e.action_space.shape == (4,) and e.observation_space["observation"].shape == (PICK_OBS_DIM,)
        obs, _ = e.reset(seed=0)
        assert obs["observation"][OBS_DIM] == 0.0 and obs["observation"][OBS_DIM + 1] == pytest.approx(0.082, abs=0.003)  # open
        for _ in range(5):
            obs, *_ = e.step(np.array([0, 0, 0, 1], dtype=np.float32))
        assert obs["observation"][OBS_DIM] == pytest.approx(0.85) and obs["observation"][OBS_DIM + 1] < 0.01  # closed on nothing
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


def test_a_grasp_does_not_depend_on_the_episode_before():
    """Seed 22's scripted pick (the fingers squeezing the cube) is the same after seed 0's as in a fresh env
    (a grasp amplifies the smallest difference: the broadphase order and stale contacts once made it differ)."""
    def episode(e, seed):
        obs, _ = e.reset(seed=seed)
        seen = [obs["observation"]]
        for _ in range(50):
            obs, *_ = e.step(scripted_pick(obs))
            seen.append(obs["observation"])
        return np.array(seen)

    fresh, used = gym.make("Robot6PickAndPlace-v0"), gym.make("Robot6PickAndPlace-v0")
    try:
        episode(used, 0)
        np.testing.assert_array_equal(episode(fresh, 22), episode(used, 22))
    finally:
        fresh.close()
        used.close()


def test_demos_fill_the_replay_buffer_with_scripted_episodes_before_the_run_counts_a_step(tmp_path):
    """--demos N: N episodes of scripted_pick in the replay buffer, from the run's seeded goals, marked as
    episodes (so HER relabels them), and not steps of the run."""
    config = Config(env_id="Robot6PickAndPlace-v0", demos=3, total_steps=50, learning_starts=10, batch_size=16,
                    hidden=[16, 16], eval_every=0, seed=4, checkpoint_dir=str(tmp_path / "c"), log_dir=str(tmp_path / "r"))
    env, again = make_env(config.env_id), gym.make(config.env_id)
    try:
        trainer = Trainer(config, env, torch.device("cpu"))
        try:
            rate = trainer.play_demos()
            assert trainer.global_step == 0 and trainer.episode == 0 and trainer.replay.count == 150
            assert trainer.replay.to_end[[0, 49, 50, 149]].tolist() == [50, 1, 50, 1]  # three finished episodes
            # The same three episodes, played from the run's seed: the same actions, in order.
            obs, _ = again.reset(seed=4)
            successes = 0
            for i in range(150):
                action = scripted_pick(obs)
                np.testing.assert_allclose(trainer.replay.act[i], action, atol=1e-6)  # stored in [-1, 1] units
                obs, _, _, truncated, info = again.step(action)
                if truncated:
                    successes += info["is_success"]
                    obs, _ = again.reset()
            assert rate == successes / 3
            trainer.run_episode()  # the run's first episode follows them in the buffer and is its step 1..50
            assert trainer.global_step == 50 and trainer.replay.count == 200
        finally:
            trainer.close()
    finally:
        env.close()
        again.close()


def test_the_cli_trains_pick_and_place_with_its_preset_demonstrations_included(tmp_path):
    result = run_cli("--env", "Robot6PickAndPlace-v0", "--episodes", "1", "--hidden", "32", "32", "--eval-every", "0",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("[CONFIG]"))
    assert "preset [Robot6PickAndPlace-v0]" in line and "demos 100" in line, line
    assert "[DEMOS] 100 episodes of the scripted controller in the replay buffer (5000 steps)" in result.stdout
    state = ckpt.load_checkpoint(next((tmp_path / "checkpoints").glob("*/latest.pth")))
    assert state["global_step"] == 50 and state["replay"]["count"] == 5050  # the demonstrations, then the run's episode
