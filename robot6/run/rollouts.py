"""Rollouts of a deterministic policy: ``evaluate`` plays episodes of a policy (the ``evaluate`` command's, the
benchmarks' and the trainer's), ``load_policy`` reads the actor of a checkpoint, and ``Evaluator`` evaluates
periodically during training, on its own env instance and seed stream.

Training draws nothing from either, so a run is the same bit for bit with and without evaluation, and after
a resume (the evaluator's state is part of every checkpoint). Its results go to ``eval.csv`` and TensorBoard
(``eval/*``), and they choose ``best.pth``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot6.envs.factory import make_env
from robot6.learn.networks import Actor, DeterministicPolicy, action_bounds, to_env_bounds
from robot6.run import checkpoint as ckpt

EVAL_STREAM = 0x5EED  # mixed into the run's seed: the evaluator's generator is not the training's


@dataclass
class EvalResult:
    """Per-episode returns, final distances (NaN where the env reports none), successes and lengths."""

    returns: np.ndarray
    final_distances: np.ndarray
    successes: np.ndarray
    lengths: np.ndarray

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if len(self.successes) else float("nan")

    def summary(self) -> dict[str, float]:
        return {
            "mean_return": float(np.mean(self.returns)),
            "std_return": float(np.std(self.returns)),
            "success_rate": self.success_rate,
            "mean_final_distance": float(np.nanmean(self.final_distances)) if np.any(np.isfinite(self.final_distances)) else float("nan"),
            "mean_length": float(np.mean(self.lengths)),
        }


def load_policy(path: Path, device: str | torch.device = "cpu") -> tuple[Actor, dict]:
    """The actor of a checkpoint (eval mode) and its meta (plus episode and global_step); ``CheckpointError``
    if the file is unreadable."""
    state = ckpt.load_checkpoint(path, map_location=device)
    meta = {**state["meta"], "episode": state["episode"], "global_step": state["global_step"]}
    actor = Actor(meta["obs_dim"], meta["act_dim"], list(meta["config"]["hidden"])).to(device)
    actor.load_state_dict(state["policy"])
    actor.eval()
    return actor, meta


def actor_policy(actor: Actor, action_space) -> Callable[[np.ndarray], np.ndarray]:
    """obs -> the deterministic action of ``actor``, rescaled to ``action_space``'s bounds (``DeterministicPolicy``)."""
    policy = DeterministicPolicy(actor, action_space.low, action_space.high).to(next(actor.parameters()).device)

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=policy.low.device).unsqueeze(0)
        return policy(obs_t)[0].cpu().numpy().astype(action_space.dtype)

    return act


def evaluate(policy: Actor | Callable[[np.ndarray], np.ndarray], env, episodes: int, seed: int, frames: list | None = None,
             record_episodes: int | None = None, on_episode: Callable[[], None] | None = None) -> EvalResult:
    """Run ``episodes`` episodes of ``policy`` (an ``Actor``, run deterministically, or any function from an
    observation to an env action); the env is seeded once with ``seed`` (fresh goals after).

    ``frames``: when a list is given, ``env.render()`` frames of the first ``record_episodes`` episodes
    (all when None) are appended to it (``rgb_array`` envs). ``on_episode`` is called after every episode (a
    progress bar).
    """
    act = actor_policy(policy, env.action_space) if isinstance(policy, Actor) else policy
    rets, dists, succ, lens = [], [], [], []
    for i in range(episodes):
        obs, info = env.reset(seed=seed if i == 0 else None)
        record = frames is not None and (record_episodes is None or i < record_episodes)
        if record:
            frames.append(env.render())
        ret, n, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs))
            if record:
                frames.append(env.render())
            ret += float(reward)
            n += 1
            done = terminated or truncated
        rets.append(ret)
        lens.append(n)
        dists.append(float(info.get("distance", np.nan)))
        succ.append(float(info.get("is_success", np.nan)))
        if on_episode is not None:
            on_episode()
    return EvalResult(np.array(rets), np.array(dists), np.array(succ), np.array(lens))


class Evaluator:
    """Evaluates every ``every`` env steps (at the first episode end at or past each multiple), ``episodes``
    episodes each, the env seeded from the evaluator's own generator at every evaluation. ``env_kwargs`` are the
    run's (``Config.env_kwargs``: the arm of a URDF run)."""

    def __init__(self, env_id: str, every: int, episodes: int, seed: int, env_kwargs: dict[str, Any] | None = None):
        self.env = make_env(env_id, **(env_kwargs or {}))
        self.every, self.episodes = int(every), int(episodes)
        self.rng = np.random.default_rng([int(seed), EVAL_STREAM])
        self.next_at = self.every
        self.best = -math.inf  # the best mean return so far
        self.best_at = -1  # the env step of the evaluation that scored it
        self.count = 0  # evaluations so far
        self.last: dict[str, float] | None = None  # the latest evaluation's summary, and its step
        self._scale = action_bounds(self.env.action_space)

    def due(self, global_step: int) -> bool:
        return global_step >= self.next_at

    def _next_after(self, global_step: int) -> int:
        """The first multiple of ``every`` past ``global_step``."""
        return (global_step // self.every + 1) * self.every

    def run(self, agent: Any, global_step: int) -> EvalResult:
        """Evaluate ``agent``'s deterministic policy now (a new best mean return sets ``best_at`` to
        ``global_step``). The next evaluation is due at the next multiple of ``every`` past ``global_step``."""
        low, half_range = self._scale
        dtype = self.env.action_space.dtype

        def act(obs: np.ndarray) -> np.ndarray:
            return to_env_bounds(agent.act(obs, deterministic=True), low, half_range).astype(dtype)

        result = evaluate(act, self.env, self.episodes, seed=int(self.rng.integers(2**31 - 1)))
        self.next_at = self._next_after(global_step)
        summary = result.summary()
        if summary["mean_return"] > self.best:
            self.best, self.best_at = summary["mean_return"], global_step
        self.count += 1
        self.last = {**summary, "global_step": global_step}
        return result

    @staticmethod
    def log_entry(result: EvalResult, episode: int, global_step: int) -> tuple[dict[str, Any], dict[str, float]]:
        """The ``eval.csv`` row and the TensorBoard scalars of an evaluation after episode ``episode`` (its
        index in training.csv); success and final distance only where the env reports them."""
        s = result.summary()
        finite = {k: v for k, v in (("success_rate", s["success_rate"]), ("final_distance", s["mean_final_distance"]))
                  if np.isfinite(v)}
        row = {"episode": episode, "global_step": global_step, "return_mean": round(s["mean_return"], 6),
               "return_std": round(s["std_return"], 6), "success_rate": finite.get("success_rate"),
               "final_distance": round(finite["final_distance"], 6) if "final_distance" in finite else None,
               "length_mean": s["mean_length"], "episodes": len(result.returns)}
        return row, {"eval/return": s["mean_return"], **{f"eval/{k}": v for k, v in finite.items()}}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to continue the evaluations as they would have gone on."""
        return {"rng": self.rng.bit_generator.state, "every": self.every, "next_at": self.next_at, "best": self.best,
                "best_at": self.best_at, "count": self.count, "last": self.last}

    def load_state_dict(self, state: dict[str, Any] | None, global_step: int) -> None:
        """Continue from a checkpoint's evaluator state; None (or another ``every``): the next multiple of
        ``every`` past ``global_step`` is the next evaluation."""
        if state is not None:
            self.rng.bit_generator.state = state["rng"]
            self.best, self.best_at = float(state["best"]), int(state["best_at"])
            self.count, self.last = int(state["count"]), state["last"]
        if state is not None and int(state["every"]) == self.every:
            self.next_at = int(state["next_at"])
        else:
            self.next_at = self._next_after(global_step)

    def close(self) -> None:
        self.env.close()
