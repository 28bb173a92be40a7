"""The action history option: the observation ends with the policy's last k actions (clipped, oldest first, zeros
at an episode's start) and is otherwise the plain one, on every task and under randomization; the command line
and the deployment runtime around it."""

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from conftest import FAST, cli_env, run_cli
from test_deploy import evaluated_returns

import robot6.envs  # noqa: F401  (registers the env ids)
from robot6 import robustness
from robot6.deploy import PolicyRuntime, dry_run
from robot6.envs.interface import MAX_ACTION_HISTORY
from robot6.export import export
from robot6.run.config import Config

TASKS = ["Robot6Reach-v0", "Robot6Push-v0", "Robot6PickAndPlace-v0"]


def flat(obs):
    return obs["observation"] if isinstance(obs, dict) else obs


def rollout(env_id, k, actions, **kwargs):
    """Observations (the flat part) of one seeded episode and one reset after it, under ``actions``."""
    env = gym.make(env_id, action_history=k, **kwargs)
    try:
        obs, _ = env.reset(seed=4)
        out = [flat(obs)]
        for a in actions:
            obs = env.step(a)[0]
            assert env.observation_space.contains(obs)
            out.append(flat(obs))
        out.append(flat(env.reset()[0]))
        return out
    finally:
        env.close()


@pytest.mark.parametrize("env_id", TASKS)
def test_the_observation_ends_with_the_last_actions_and_is_otherwise_the_plain_one(env_id):
    n = {"Robot6Reach-v0": 6, "Robot6Push-v0": 3, "Robot6PickAndPlace-v0": 4}[env_id]
    actions = np.random.default_rng(0).uniform(-1.5, 1.5, (6, n)).astype(np.float32)  # some out of bounds
    plain = rollout(env_id, 0, actions)
    k = 3
    with_history = rollout(env_id, k, actions)
    clipped = np.clip(actions, -1, 1)
    for t, (p, h) in enumerate(zip(plain, with_history, strict=True)):
        assert np.array_equal(h[:p.size], p), t  # the plain observation, bit for bit: the history changes nothing else
        past = h[p.size:].reshape(k, n)
        taken = clipped[max(0, t - k):t] if t <= len(actions) else clipped[:0]  # the last reset starts afresh
        expected = np.zeros((k, n), dtype=np.float32)
        if len(taken):
            expected[k - len(taken):] = taken
        assert np.array_equal(past, expected), t


def test_randomized_episodes_are_the_same_with_and_without_a_history():
    ranges = {"latency": [0, 2], "action_noise": [0.0, 0.1], "obs_tcp": [0.0, 0.01], "motor_force": [0.7, 1.0]}
    actions = np.random.default_rng(1).uniform(-1, 1, (8, 3))
    plain = rollout("Robot6Push-v0", 0, actions, randomize=ranges)
    with_history = rollout("Robot6Push-v0", 2, actions, randomize=ranges)
    assert all(np.array_equal(h[:p.size], p) for p, h in zip(plain, with_history, strict=True))


@pytest.mark.parametrize("bad", [-1, MAX_ACTION_HISTORY + 1, 1.5, True])
def test_a_bad_history_length_is_refused(bad):
    with pytest.raises(ValueError, match="action_history must be a whole number"):
        gym.make("Robot6Reach-v0", action_history=bad)


def test_the_run_keeps_the_option_and_its_envs_get_it(tmp_path):
    assert Config(action_history=2).env_kwargs() == {"action_history": 2}
    assert Config(env_id="Robot6Push-v0", randomize=True, randomization={}, action_history=1).env_kwargs(randomized=True) == {
        "action_history": 1, "randomize": {}}
    result = run_cli("--action-history", "2", "--randomize", "--randomization", "latency=0:1", "--episodes", "2",
                     "--eval-every", "0", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[RANDOMIZE] every episode draws:" in result.stdout and "without --action-history" not in result.stdout
    (config_json,) = (tmp_path / "runs").glob("*/config.json")
    assert json.loads(config_json.read_text())["action_history"] == 2
    # Resuming with another history would change what the policy reads: refused in one line.
    again = run_cli("--resume", "--action-history", "1", "--episodes", "3", *FAST, cwd=tmp_path)
    errors = [line for line in again.stderr.splitlines() if "build time" not in line]
    assert again.returncode == 2 and len(errors) == 1 and "--action-history 1 differs from the checkpoint's 2" in errors[0]
    (checkpoint,) = (tmp_path / "checkpoints").glob("*/latest.pth")
    # The deployment runtime keeps its own history: the dry run still plays evaluate's episodes bit for bit.
    out = tmp_path / "policy.pt"
    export(checkpoint, "torchscript", out)
    runtime = PolicyRuntime(out)
    assert runtime.interface.history == 2 and runtime.obs_dim == 18 + 2 * 6
    assert not runtime.interface.past.any()  # the warm-up call at load leaves no past action behind
    assert dry_run(runtime, 3, seed=5, progress=False)["returns"] == evaluated_returns(checkpoint, 3, seed=5)
    # The robustness report plays the policy on what it observes, and says so.
    report = robustness.robustness(checkpoint, 1, seed=0)
    assert report["action_history"] == 2 and "observing its last 2 actions" in robustness.markdown(report)


@pytest.mark.parametrize("flags, message", [
    (("--action-history", "9"), "--action-history must be from 0 to 8"),
    (("--action-history", "2", "--env", "Pendulum-v1"), "--action-history works with --env"),
])
def test_a_bad_history_on_the_command_line_is_one_line_and_exit_2(tmp_path, flags, message):
    result = run_cli(*flags, "--episodes", "1", *FAST, cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if "build time" not in line]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0]


def test_learn_trains_and_evaluates_every_trainer_on_what_its_policy_observes(tmp_path):
    pytest.importorskip("stable_baselines3", reason="a benchmark dependency: pip install -e .[bench]")
    learn = subprocess.run(
        [sys.executable, "-m", "bench.learn", "--trainer", "both", "--steps", "120", "--seeds", "0", "--eval-episodes", "2",
         "--set", "action_history=2", "hidden=16,16", "batch_size=16", "learning_starts=60"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert learn.returncode == 0, learn.stderr[-2000:] + learn.stdout[-2000:]
    assert "ours seed 0 @ 120 steps" in learn.stdout and "sb3 seed 0 @ 120 steps" in learn.stdout
