"""Hindsight experience replay (Andrychowicz et al. 2017), "future" strategy, on top of a ``ReplayBuffer``.

A transition of a finished episode is given, in place of its goal, the goal achieved at a uniformly drawn
step from it to the end of its episode, with the reward the env's ``compute_reward`` gives for that goal.
``HindsightSampler`` does it at sampling time (as Stable-Baselines3's ``HerReplayBuffer``: each drawn
transition is relabelled with probability k/(k+1)) or at each episode end (``k`` relabelled copies stored
as ordinary transitions). Both draw from the buffer's generator, which every checkpoint holds, so a resumed
run is still exact; both relabel with ``_future_goals``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from robot6.learn.replay import Batch, ReplayBuffer, split_batch

RELABEL_MODES = ("sample", "store")


class GoalSpec(Protocol):
    """What relabelling needs to know of a goal env (``robot6.envs.goals.GoalSpec`` is one): where the goals sit
    in a flat observation, and the env's reward for any goal, vectorised:
    ``compute_reward(achieved (N, g), desired (N, g), info) -> (N,)``."""

    achieved: slice
    desired: slice

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: dict) -> np.ndarray: ...


class HindsightSampler:
    """Samples ``buffer`` with hindsight goals (``spec``: where the goals sit, and the env's reward).

    ``mode="sample"``: ``sample`` relabels each drawn transition of a finished episode with probability
    ``k / (k + 1)``. ``mode="store"``: ``end_episode`` appends ``k`` relabelled copies of each transition of
    the episode, and ``sample`` draws uniformly. The trainer calls ``end_episode`` and ``sample_many`` as it
    would on the buffer itself.
    """

    def __init__(self, buffer: ReplayBuffer, spec: GoalSpec, k: int, mode: str = "sample"):
        if mode not in RELABEL_MODES:
            raise ValueError(f"mode must be one of {RELABEL_MODES}, got {mode!r}")
        self.buffer, self.spec, self.k, self.mode = buffer, spec, int(k), mode

    def end_episode(self, start: int, stop: int) -> None:
        """Mark transitions ``start..stop-1`` as one finished episode; with ``mode="store"``, append ``k``
        relabelled copies of each of them."""
        self.buffer.end_episode(start, stop)
        if self.mode == "store" and stop > start and self.k > 0:
            self.store_copies(start, stop)

    def store_copies(self, start: int, stop: int) -> int:
        """Append ``k`` relabelled copies of transitions ``start..stop-1`` (a finished episode); returns how many."""
        buf = self.buffer
        idx = np.repeat(np.arange(start, stop), self.k) % buf.capacity
        goals, rewards = self._future_goals(idx)
        obs, act, _, next_obs, terminated = (np.take(f, idx, axis=0) for f in (buf.obs, buf.act, buf.rew, buf.next_obs, buf.terminated))
        obs[:, self.spec.desired] = goals
        next_obs[:, self.spec.desired] = goals
        buf.add_batch(obs, act, rewards, next_obs, terminated)
        return len(idx)

    def sample(self, batch_size: int) -> Batch:
        """``batch_size`` transitions drawn uniformly, relabelled as ``mode`` says, as tensors on the device."""
        buf = self.buffer
        idx = buf.draw(batch_size)
        if self.mode == "store":
            return buf.to_batch(buf.gather(idx))
        to_end = buf.to_end[idx]
        chosen = (buf.rng.random(len(idx)) < self.k / (self.k + 1)) & (to_end > 0)
        goals, rewards = self._future_goals(idx[chosen])
        rows = np.flatnonzero(chosen)
        fields = buf.gather(idx)
        if buf.on_device:  # drawn and rewarded on the host (the env's compute_reward is numpy), written there
            rows, goals, rewards = (torch.from_numpy(a).to(buf.device) for a in (rows, goals, rewards))
        obs, _, rew, next_obs, _ = fields
        obs[rows, self.spec.desired] = goals
        next_obs[rows, self.spec.desired] = goals
        rew[rows] = rewards
        return buf.to_batch(fields)

    def sample_many(self, batch_size: int, n: int) -> list[Batch]:
        """``n`` batches of ``batch_size`` from one ``sample(batch_size * n)`` (see ``ReplayBuffer.sample_many``)."""
        return split_batch(self.sample(batch_size * n), n)

    def _future_goals(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the transitions at ring indices ``idx`` (of finished episodes): the goal achieved at a uniformly
        drawn step from each to the end of its episode, (n, goal_dim), and the reward for it, (n,) float32."""
        buf, spec = self.buffer, self.spec
        future = (idx + (buf.rng.random(len(idx)) * buf.to_end[idx]).astype(np.int64)) % buf.capacity
        goals = buf.next_obs[future, spec.achieved]
        rewards = np.asarray(spec.compute_reward(buf.next_obs[idx, spec.achieved], goals, {}), dtype=np.float32)
        return goals, rewards
