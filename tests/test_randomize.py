"""Domain randomization: draws in range and reproducible from the seed, the physics set from them, latency,
action and sensor noise as documented, the nominal env untouched, and the command line around it.
(Exact resume with randomization on: tests/test_resume.py.)"""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import FAST, run_cli

import robot6.envs  # noqa: F401  (registers the env ids)
from robot6.envs.randomize import FACTORS, Latency, RandomizationError, check_ranges, parse_range
from robot6.run.config import Config
from robot6.run.presets import randomization_ranges

PUSH_ALL = {"object_mass": [0.5, 2.0], "object_friction": [0.5, 1.5], "finger_friction": [0.5, 1.5],
            "ground_friction": [0.5, 1.5], "joint_damping": [0.5, 2.0], "motor_force": [0.7, 1.0], "latency": [0, 2],
            "action_noise": [0.0, 0.1], "obs_tcp": [0.0, 0.01], "obs_object_position": [0.0, 0.01],
            "obs_object_orientation": [0.0, 0.1], "obs_object_velocity": [0.0, 0.01], "obs_tcp_velocity": [0.0, 0.01]}


def draws(env_id, ranges, seed, episodes=6):
    env = gym.make(env_id, randomize=ranges)
    try:
        out = [env.reset(seed=seed)[1]["randomization"]]
        out += [env.reset()[1]["randomization"] for _ in range(episodes - 1)]
        return out
    finally:
        env.close()


def test_draws_are_in_range_and_reproducible_from_the_seed():
    first = draws("Robot6Push-v0", PUSH_ALL, seed=7)
    assert first == draws("Robot6Push-v0", PUSH_ALL, seed=7)
    assert first != draws("Robot6Push-v0", PUSH_ALL, seed=8)
    for values in first:
        assert set(values) == set(PUSH_ALL)
        for name, (low, high) in PUSH_ALL.items():
            assert low <= values[name] <= high
        assert isinstance(values["latency"], int)
    assert len({v["object_mass"] for v in first}) == len(first)  # a fresh draw every episode
    assert {v["latency"] for v in draws("Robot6Push-v0", PUSH_ALL, seed=7, episodes=30)} == {0, 1, 2}


def test_the_physics_of_an_episode_are_the_nominal_ones_scaled_by_its_draw():
    nominal = gym.make("Robot6PickAndPlace-v0")
    env = gym.make("Robot6PickAndPlace-v0", randomize={k: v for k, v in PUSH_ALL.items()})
    try:
        nominal.reset(seed=0)
        values = env.reset(seed=0)[1]["randomization"]
        a, b = nominal.unwrapped, env.unwrapped
        for u in (a, b):
            u.info = lambda body, link, u=u: u._sim.getDynamicsInfo(body, link)
        assert b.info(b._cube, -1)[0] == pytest.approx(a.info(a._cube, -1)[0] * values["object_mass"])
        assert b.info(b._cube, -1)[1] == pytest.approx(a.info(a._cube, -1)[1] * values["object_friction"])
        assert b.info(b._plane, -1)[1] == pytest.approx(a.info(a._plane, -1)[1] * values["ground_friction"])
        finger = a.robot.finger_joints[0]
        assert b.info(b.robot.id, finger)[1] == pytest.approx(a.info(a.robot.id, finger)[1] * values["finger_friction"])
        assert b.robot.forces == pytest.approx([f * values["motor_force"] for f in a.robot.forces])
        # The next episode's draw replaces this one's (scales of the nominal values, not of the last episode's).
        values = env.reset()[1]["randomization"]
        assert b.info(b._cube, -1)[0] == pytest.approx(a.info(a._cube, -1)[0] * values["object_mass"])
    finally:
        nominal.close()
        env.close()


def test_joint_damping_changes_the_motion():
    """PyBullet does not report a changed joint damping (getJointInfo keeps the URDF's): its effect shows."""
    ends = []
    for scale in (0.5, 2.0):
        env = gym.make("Robot6Reach-v0", randomize={"joint_damping": [scale, scale]})
        ends.append(rollout(env, np.ones((5, 6), np.float32), [0.4, 0.1, 0.3])[-1])
        env.close()
    assert not np.array_equal(ends[0], ends[1])


def test_without_randomization_nothing_is_drawn_and_info_has_no_values():
    env = gym.make("Robot6Push-v0")
    try:
        _, info = env.reset(seed=0)
        state = env.unwrapped.np_random.bit_generator.state
        _, _, _, _, info2 = env.step(env.action_space.sample())
        assert "randomization" not in info and "randomization" not in info2
        assert env.unwrapped.np_random.bit_generator.state == state  # steps draw nothing from the env's generator
    finally:
        env.close()


def rollout(env, actions, goal):
    env.reset(seed=0, options={"goal": goal})
    return [env.step(a)[0] for a in actions]


def test_latency_delivers_each_command_k_control_steps_late():
    """Reach with latency 2 and actions a0, a1, ... moves as the nominal arm does with 0, 0, a0, a1, ... (a zero
    action keeps the targets, as no command does)."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (12, 6)).astype(np.float32)
    goal = [0.4, 0.1, 0.3]
    late = gym.make("Robot6Reach-v0", randomize={"latency": [2, 2]})
    nominal = gym.make("Robot6Reach-v0")
    try:
        got = rollout(late, actions, goal)
        want = rollout(nominal, np.concatenate([np.zeros((2, 6), np.float32), actions[:-2]]), goal)
        for g, w in zip(got, want, strict=True):
            assert np.array_equal(g, w)
        assert not np.array_equal(got[-1], rollout(nominal, actions, goal)[-1])
    finally:
        late.close()
        nominal.close()


def test_latency_queue():
    queue = Latency(2)
    assert [queue.push(c) for c in "abcde"] == [None, None, "a", "b", "c"]
    assert [Latency(0).push(c) for c in "ab"] == ["a", "b"]


def test_action_noise_changes_the_motion_and_its_absence_does_not():
    actions = np.random.default_rng(1).uniform(-1, 1, (10, 6)).astype(np.float32)
    goal = [0.4, 0.1, 0.3]
    envs = {std: gym.make("Robot6Reach-v0", randomize={"action_noise": [std, std]}) for std in (0.0, 0.2)}
    nominal = gym.make("Robot6Reach-v0")
    try:
        clean = rollout(nominal, actions, goal)
        assert all(np.array_equal(a, b) for a, b in zip(rollout(envs[0.0], actions, goal), clean, strict=True))
        assert not np.array_equal(rollout(envs[0.2], actions, goal)[-1], clean[-1])
    finally:
        for env in (*envs.values(), nominal):
            env.close()


def test_sensor_noise_hits_its_fields_and_what_is_derived_from_them():
    env = gym.make("Robot6Push-v0", randomize={"obs_object_position": [0.01, 0.01]})
    try:
        obs, _ = env.reset(seed=0)
        errors = []
        for _ in range(40):
            true = env.unwrapped.read_fields()
            o = obs["observation"]
            errors.append(o[6:9] - true["object_position"])
            assert np.allclose(o[:3], true["tcp"], atol=1e-6)  # the TCP reading is clean
            assert np.array_equal(obs["achieved_goal"], o[6:9])  # the achieved goal is the (noisy) reading
            assert np.allclose(o[21:24], o[6:9] - o[:3], atol=1e-6)  # and so is the cube relative to the TCP
            obs, *_ = env.step(env.action_space.sample())
        errors = np.array(errors)
        assert 0.005 < errors.std() < 0.02
    finally:
        env.close()


def test_ranges_are_checked():
    with pytest.raises(RandomizationError, match="no factor 'mass'"):
        check_ranges({"mass": [1, 2]})
    with pytest.raises(RandomizationError, match="low <= high"):
        check_ranges({"object_mass": [2, 1]})
    with pytest.raises(RandomizationError, match="must be > 0"):
        check_ranges({"motor_force": [0, 1]})
    with pytest.raises(RandomizationError, match="whole control steps"):
        check_ranges({"latency": [0, 1.5]})
    with pytest.raises(RandomizationError, match="does not apply"):
        gym.make("Robot6Reach-v0", randomize={"object_mass": [1, 2]})
    assert parse_range("object_mass=0.5:2") == ("object_mass", [0.5, 2.0])
    assert parse_range("latency=1") == ("latency", [1.0, 1.0])
    with pytest.raises(RandomizationError, match="NAME=LOW:HIGH"):
        parse_range("object_mass")


def test_every_shipped_range_is_valid_for_its_env():
    for env_id in ("Robot6Reach-v0", "Robot6Push-v0", "Robot6PushDense-v0", "Robot6PickAndPlace-v0", "Robot6PickAndPlaceDense-v0"):
        ranges = randomization_ranges(env_id)
        assert ranges and set(ranges) <= set(FACTORS)
        gym.make(env_id, randomize=ranges).close()


@pytest.mark.parametrize("env_id, urdf", [("Robot6Reach-v0", "arm5.urdf"), ("Robot6PickAndPlace-v0", "gripper5.urdf")])
def test_an_arm_from_a_urdf_is_randomized_too(env_id, urdf):
    arm = str(Path(__file__).parent / "arms" / urdf)
    env = gym.make(env_id, urdf=arm, randomize=randomization_ranges(env_id))
    try:
        values = env.reset(seed=0)[1]["randomization"]
        assert set(values) == set(randomization_ranges(env_id))
        assert env.unwrapped.robot.forces == pytest.approx([f * values["motor_force"] for f in env.unwrapped._nominal["forces"]])
        for _ in range(60):
            _, _, _, truncated, info = env.step(env.action_space.sample())
            if truncated:
                env.reset()
    finally:
        env.close()


def test_training_randomizes_and_evaluation_stays_nominal_unless_asked():
    config = Config(env_id="Robot6Push-v0", randomize=True, randomization={"latency": [0, 1]})
    assert config.env_kwargs(randomized=True) == {"randomize": {"latency": [0, 1]}}
    assert config.env_kwargs() == {}
    assert Config(env_id="Robot6Push-v0", randomization={"latency": [0, 1]}).env_kwargs(randomized=True) == {}


def test_the_command_line_resolves_ranges_into_config_json(tmp_path):
    result = run_cli("--randomize", "--randomization", "latency=0:2", "action_noise=0.05", "--episodes", "2",
                     "--eval-every", "0", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[RANDOMIZE] every episode draws:" in result.stdout
    assert "latency without --action-history" in result.stdout
    (config_json,) = (tmp_path / "runs").glob("*/config.json")
    ranges = json.loads(config_json.read_text())["randomization"]
    assert ranges["latency"] == [0, 2] and ranges["action_noise"] == [0.05, 0.05]
    assert ranges["obs_tcp"] == randomization_ranges("Robot6Reach-v0")["obs_tcp"]  # the env's own for the rest


@pytest.mark.parametrize("flags, message", [
    (("--randomization", "latency=1"), "--randomization sets the ranges of --randomize"),
    (("--randomize", "--randomization", "latency=0:20"), "whole control steps in 0..10"),
    (("--randomize", "--randomization", "object_mass=1:2"), "object_mass does not apply"),
    (("--randomize", "--env", "Pendulum-v1"), "--randomize works with --env"),
])
def test_bad_randomization_is_one_line_and_exit_2_before_anything_is_written(tmp_path, flags, message):
    result = run_cli(*flags, "--episodes", "1", *FAST, cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if "build time" not in line]  # PyBullet's banner
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "runs").exists()
