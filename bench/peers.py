"""The peers we measure against, built from our ``Config`` in one place: Stable-Baselines3's SAC and sb3-contrib's
TQC (``pip install -e ".[bench]"``), with hindsight relabelling on goal envs as ours.

``make_peer`` gives a model with the same network, batch, buffer, learning rate, gamma, tau, initial entropy
coefficient, learning_starts and update-to-data ratio as a ``Config``, and SB3's ``HerReplayBuffer`` ("future"
strategy, ``her_k`` goals) on a Dict view of a goal env (on unless ``her`` is False, as ours). SB3 has no policy
delay: it updates its actor at every gradient step whatever ``policy_delay`` says.

    python -m bench.peers --algo sb3 --config-json CONFIG --steps 10000 20000 --out DIR   # what bench.learn runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robot6.envs.factory import make_env
from robot6.envs.goals import GoalSpec, goal_spec
from robot6.run.config import Config

# sb3-contrib's TQC at rl-zoo3's settings for panda-gym (hyperparams/tqc.yml, PandaPush/PandaPickAndPlace).
TQC_SETTINGS = {"hidden": [512, 512, 512], "batch_size": 2048, "gamma": 0.95, "lr": 1e-3, "tau": 0.05, "her_k": 4, "utd": 1}
PEERS = {"sb3": "SB3 SAC 2.9.2", "tqc": "sb3-contrib TQC 2.9.2"}
# Our settings a peer does not have.
OURS_ONLY = ("updates_every", "compile", "policy_delay", "demos")


class GoalDictObservation(gym.ObservationWrapper):
    """A flat goal env (Robot6Reach-v0) seen as a gymnasium-robotics Dict env, for SB3's HerReplayBuffer:
    ``observation`` is the flat observation without the desired goal (so relabelling replaces the goal
    everywhere the policy sees it), ``achieved_goal``/``desired_goal`` are the goal slices."""

    def __init__(self, env: gym.Env, spec: GoalSpec):
        super().__init__(env)
        self.goal_spec = spec
        box = env.observation_space
        self._keep = np.ones(box.shape[0], dtype=bool)
        self._keep[spec.desired] = False

        def part(index) -> gym.spaces.Box:
            return gym.spaces.Box(box.low[index], box.high[index], dtype=box.dtype)

        self.observation_space = gym.spaces.Dict(
            {"observation": part(self._keep), "achieved_goal": part(spec.achieved), "desired_goal": part(spec.desired)}
        )

    def observation(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {"observation": obs[self._keep], "achieved_goal": obs[self.goal_spec.achieved], "desired_goal": obs[self.goal_spec.desired]}

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info) -> np.ndarray:
        return self.goal_spec.compute_reward(achieved_goal, desired_goal, info)


def peer_class(algo: str):
    """SB3's ``SAC`` (``"sb3"``) or sb3-contrib's ``TQC`` (``"tqc"``)."""
    if algo == "tqc":
        from sb3_contrib import TQC

        return TQC
    from stable_baselines3 import SAC

    return SAC


def peer_env(config: Config) -> gym.Env:
    """The env a peer trains on: ours as the trainer makes it, seen as a Dict goal env where HER applies."""
    env = make_env(config.env_id, **config.env_kwargs(randomized=True))  # --set randomize=true: the peers' too
    spec = goal_spec(env)
    return GoalDictObservation(env, spec) if spec is not None and config.her is not False else env


def make_peer(algo: str, config: Config, env: gym.Env, device: str = "cpu"):
    """The peer ``algo`` with ``config``'s settings on ``env`` (from ``peer_env``; HER when it is a Dict view)."""
    extra: dict[str, Any] = {}
    her = isinstance(env, GoalDictObservation)
    if her:
        from stable_baselines3 import HerReplayBuffer

        extra = {"replay_buffer_class": HerReplayBuffer,
                 "replay_buffer_kwargs": {"n_sampled_goal": config.her_k, "goal_selection_strategy": "future"}}
    return peer_class(algo)(
        "MultiInputPolicy" if her else "MlpPolicy", env, learning_rate=config.lr, buffer_size=config.buffer_size,
        learning_starts=config.learning_starts, batch_size=config.batch_size, tau=config.tau, gamma=config.gamma,
        ent_coef=f"auto_{config.init_alpha}", train_freq=1, gradient_steps=config.utd,
        policy_kwargs={"net_arch": list(config.hidden)}, seed=config.seed, device=device, verbose=0, **extra,
    )


def load_peer_policy(algo: str, path: Path, config: Config) -> Callable[[np.ndarray], np.ndarray]:
    """The deterministic policy of a saved peer model, taking our env's (flat) observations."""
    view = peer_env(config)
    if isinstance(view, GoalDictObservation):
        model = peer_class(algo).load(path, env=view, device="cpu")
        return lambda obs: model.predict(view.observation(obs), deterministic=True)[0]
    view.close()
    model = peer_class(algo).load(path, device="cpu")
    return lambda obs: model.predict(obs, deterministic=True)[0]


def train_peer(algo: str, config: Config, budgets: list[int], out: Path, time_limit: float | None = None) -> None:
    """Train the peer towards the largest budget, saving the model (``model_N.zip``) and the training time at
    every budget; with ``time_limit`` (s), stop when the training time passes it. ``times.json`` holds the
    budgets' times, how far it got, and when learning started (for its steps/s)."""
    from stable_baselines3.common.callbacks import BaseCallback

    out.mkdir(parents=True, exist_ok=True)
    budgets = sorted(budgets)
    times: dict[int, float] = {}
    progress: dict[str, float] = {"reached": 0, "elapsed_s": 0.0, "learning_from": 0.0, "learning_starts": config.learning_starts}

    class Milestones(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.paused = 0.0

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            elapsed = time.perf_counter() - self.t0 - self.paused
            if self.num_timesteps in budgets:
                times[self.num_timesteps] = elapsed
                t = time.perf_counter()
                self.model.save(out / f"model_{self.num_timesteps}.zip")
                self.paused += time.perf_counter() - t
            progress.update(reached=self.num_timesteps, elapsed_s=elapsed)
            if self.num_timesteps == config.learning_starts:
                progress.update(learning_from=elapsed)
            return time_limit is None or elapsed < time_limit

    env = peer_env(config)
    try:
        make_peer(algo, config, env).learn(total_timesteps=budgets[-1], callback=Milestones())
    finally:
        env.close()
    (out / "times.json").write_text(json.dumps({"budgets": times, **progress}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", choices=tuple(PEERS), required=True)
    p.add_argument("--config-json", required=True, help="the Config to train with (Config.to_dict as JSON)")
    p.add_argument("--steps", type=int, nargs="+", required=True, help="budgets: save the model at each")
    p.add_argument("--out", type=Path, required=True, help="folder of the models and times.json")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS", help="stop once training took this long")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    train_peer(args.algo, Config(**json.loads(args.config_json)), args.steps, args.out, args.time_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
