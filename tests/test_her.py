"""Hindsight relabelling: goals from the episode's future, rewards from the env, Dict goal envs flattened."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot6.envs.factory import make_env
from robot6.envs.goals import FlattenGoalObservation, goal_spec
from robot6.learn.her import HindsightSampler
from robot6.learn.replay import ReplayBuffer


def collect_episode(env, buf, seed):
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buf.add(obs, action, reward, next_obs, terminated)
        obs, done = next_obs, terminated or truncated


def test_relabelled_goals_come_from_the_future_and_rewards_from_the_env():
    env = make_env("Robot6Reach-v0")
    spec = goal_spec(env)
    buf = ReplayBuffer(10_000, 18, 6, seed=0)
    env.action_space.seed(0)
    collect_episode(env, buf, seed=1)
    original = buf.transitions(0, 50)
    HindsightSampler(buf, spec, k=4, mode="store").end_episode(0, 50)
    assert buf.count == 250
    new = buf.transitions(50, 250)
    achieved_after = original["next_obs"][:, spec.achieved]
    for i in range(200):
        t = i // 4  # copies of transition t
        goal = new["obs"][i, spec.desired]
        np.testing.assert_array_equal(new["next_obs"][i, spec.desired], goal)
        future = np.nonzero((achieved_after[t:] == goal).all(axis=1))[0]
        assert len(future) >= 1, "the goal was not achieved at or after this step"
        np.testing.assert_array_equal(new["act"][i], original["act"][t])
        np.testing.assert_array_equal(new["obs"][i, :15], original["obs"][t, :15])
        expected = -np.linalg.norm(original["next_obs"][t, spec.achieved].astype(np.float64) - goal)
        assert new["rew"][i] == pytest.approx(expected, abs=1e-6)
    # The last step can only be relabelled with its own achieved goal: reward 0, the best possible.
    assert np.all(new["rew"][-4:] == 0.0)
    env.close()


class DictReach(gym.ObservationWrapper):
    """Robot6Reach-v0 with a gymnasium-robotics style Dict observation (as panda-gym envs have)."""

    def __init__(self, env):
        super().__init__(env)
        box = env.observation_space
        self.observation_space = gym.spaces.Dict({
            "observation": gym.spaces.Box(box.low[:12], box.high[:12]),
            "achieved_goal": gym.spaces.Box(box.low[12:15], box.high[12:15]),
            "desired_goal": gym.spaces.Box(box.low[15:], box.high[15:]),
        })

    def observation(self, obs):
        return {"observation": obs[:12], "achieved_goal": obs[12:15], "desired_goal": obs[15:]}


def test_dict_goal_env_is_flattened_with_known_goal_slices():
    flat = FlattenGoalObservation(DictReach(gym.make("Robot6Reach-v0")))
    spec = goal_spec(flat)
    obs, _ = flat.reset(seed=0)
    assert obs.shape == (18,) and flat.observation_space.contains(obs)
    assert (spec.achieved, spec.desired) == (slice(12, 15), slice(15, 18))
    obs, reward, *_ = flat.step(np.zeros(6, np.float32))
    assert reward == pytest.approx(float(spec.compute_reward(obs[spec.achieved], obs[spec.desired], {})), abs=1e-6)
    flat.close()


def test_non_goal_env_has_no_goal_spec():
    env = make_env("Pendulum-v1")
    assert goal_spec(env) is None
    env.close()


def test_relabelling_at_sampling_time_draws_goals_from_the_rest_of_the_episode():
    env = make_env("Robot6Reach-v0")
    spec = goal_spec(env)
    capacity = 120  # two 50-step episodes, then the ring wraps into the first one
    buf = ReplayBuffer(capacity, 18, 6, seed=0)
    her = HindsightSampler(buf, spec, k=4)
    env.action_space.seed(0)
    for episode in range(2):
        collect_episode(env, buf, seed=episode)
        her.end_episode(50 * episode, 50 * (episode + 1))
    collect_episode_steps = 30  # a third episode in progress: 20 slots of the first lap's episode 0 reused
    obs, _ = env.reset(seed=2)
    for _ in range(collect_episode_steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, _, _ = env.step(action)
        buf.add(obs, action, reward, next_obs, terminated)
        obs = next_obs
    assert buf.count == 130 and buf.to_end[:10].tolist() == [0] * 10  # reused slots: not a finished episode

    plain = {name: getattr(buf, name).copy() for name in ("obs", "next_obs", "rew")}
    rng_state = buf.rng.bit_generator.state
    relabelled = 0
    for _ in range(40):
        batch = her.sample(256)
        # Recover the sampled slots by replaying the generator's first draw.
        buf_rng = np.random.default_rng()
        buf_rng.bit_generator.state = rng_state
        idx = buf_rng.integers(0, len(buf), size=256)
        rng_state = buf.rng.bit_generator.state
        goals = batch.obs[:, spec.desired].numpy()
        changed = ~(goals == plain["obs"][idx, spec.desired]).all(axis=1)
        assert not changed[buf.to_end[idx] == 0].any(), "a transition of an unfinished episode was relabelled"
        for j in np.nonzero(changed)[0]:
            i = idx[j]
            rest = (i + np.arange(buf.to_end[i])) % capacity  # this step and the later ones of its episode
            assert (plain["next_obs"][rest][:, spec.achieved] == goals[j]).all(axis=1).any()
            np.testing.assert_array_equal(batch.next_obs[j, spec.desired].numpy(), goals[j])
            expected = -np.linalg.norm(plain["next_obs"][i, spec.achieved].astype(np.float64) - goals[j])
            assert batch.rew[j].item() == pytest.approx(expected, abs=1e-6)
        relabelled += int(changed.sum())
        finished = int((buf.to_end[idx] > 0).sum())
        relabelled_share = changed.sum() / max(finished, 1)
        assert 0.6 < relabelled_share < 0.95  # k/(k+1) = 0.8 of the finished episodes' transitions
    assert relabelled > 0
    # The stored transitions themselves are never changed by sampling.
    for name, before in plain.items():
        np.testing.assert_array_equal(getattr(buf, name), before)
    env.close()


def test_relabelling_at_sampling_time_with_a_device_mirror_gives_the_same_batches():
    """--replay-on-device gathers batches from the device copy; the hindsight goals and rewards are drawn and
    computed on the host and written into the gathered batch, so the batches equal the host path's and the
    device copy itself is never changed. (The "device" is the CPU here; the code path is the GPU's.)"""
    env = make_env("Robot6Reach-v0")
    spec = goal_spec(env)
    bufs = ReplayBuffer(120, 18, 6, seed=3), ReplayBuffer(120, 18, 6, seed=3, on_device=True)
    plain, mirrored = (HindsightSampler(buf, spec, k=4) for buf in bufs)
    unrelabelled = ReplayBuffer(120, 18, 6, seed=3)  # draws the same first indices, relabels nothing
    for episode in range(3):  # the third wraps the 120-slot ring into the first episode
        for buf in (plain, mirrored, unrelabelled):
            env.action_space.seed(episode)
            collect_episode(env, getattr(buf, "buffer", buf), seed=episode)
            buf.end_episode(50 * episode, 50 * (episode + 1))
    as_stored = unrelabelled.sample(64)
    for draw in range(5):
        batch, mirrored_batch = plain.sample(64), mirrored.sample(64)
        for a, b in zip(batch, mirrored_batch, strict=True):
            assert torch.equal(a, b)
        if draw == 0:  # the same transitions as stored, most with a new goal and reward
            assert torch.equal(batch.act, as_stored.act)
            relabelled = (batch.obs[:, spec.desired] != as_stored.obs[:, spec.desired]).any(1)
            assert 0.5 < relabelled.float().mean() < 1.0
            assert not torch.equal(batch.rew, as_stored.rew)
    for name in ("obs", "next_obs", "rew"):  # the device copy is the stored data, untouched
        assert torch.equal(mirrored.buffer._mirror[name], torch.from_numpy(getattr(mirrored.buffer, name)))
    env.close()
