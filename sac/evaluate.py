"""Evaluate a checkpoint's deterministic policy on fresh episodes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sac import checkpoint as ckpt
from sac.networks import Actor


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
    """The actor of a checkpoint (eval mode) and the checkpoint's meta; ``CheckpointError`` if unreadable."""
    state = ckpt.load_checkpoint(path, map_location=device)
    meta = state["meta"]
    actor = Actor(meta["obs_dim"], meta["act_dim"], list(meta["config"]["hidden"])).to(device)
    actor.load_state_dict(state["policy"])
    actor.eval()
    return actor, meta


@torch.no_grad()
def evaluate(actor: Actor, env, episodes: int, seed: int, frames: list | None = None) -> EvalResult:
    """Run ``episodes`` deterministic episodes; the env is seeded once with ``seed`` (fresh goals after).

    ``frames``: when a list is given, ``env.render()`` frames are appended to it (``rgb_array`` envs).
    """
    low = env.action_space.low.astype(np.float32)
    high = env.action_space.high.astype(np.float32)
    rets, dists, succ, lens = [], [], [], []
    for i in range(episodes):
        obs, info = env.reset(seed=seed if i == 0 else None)
        if frames is not None:
            frames.append(env.render())
        ret, n, done = 0.0, 0, False
        while not done:
            action, _ = actor(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0), deterministic=True, with_logprob=False)
            a = action[0].numpy()
            obs, reward, terminated, truncated, info = env.step((low + (a + 1.0) * (high - low) / 2).astype(env.action_space.dtype))
            if frames is not None:
                frames.append(env.render())
            ret += float(reward)
            n += 1
            done = terminated or truncated
        rets.append(ret)
        lens.append(n)
        dists.append(float(info.get("distance", np.nan)))
        succ.append(float(info.get("is_success", np.nan)))
    return EvalResult(np.array(rets), np.array(dists), np.array(succ), np.array(lens))
