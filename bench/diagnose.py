"""Why did a run learn or not? Its history in windows of env steps, read from its files (nothing is changed):

- from TensorBoard (``runs/RUN``): the exploring episodes' success, and the means of the updates' alpha, policy
  entropy, Q and critic loss (a Q far outside what the rewards allow, or a critic loss that grows by orders of
  magnitude, is a critic that diverged);
- from the replay segments (``checkpoints/RUN/replay``), for goal envs: the share of episodes in which the
  achieved goal (the cube) moved at all, and the share of steps in which it moved;
- with ``--critic``, for every ``ckpt_step_N.pth`` of the run: the range of the first critic's Q over the
  transitions stored by then, and the observation features that are largest, relative to their mean over all
  transitions, at the 0.5% of transitions with the most extreme Q (where a diverging critic goes wrong first).

    python -m bench.diagnose runs/sac_20261206-001020                   # TensorBoard only
    python -m bench.diagnose runs/RUN --checkpoints checkpoints/RUN --window 10000
    python -m bench.diagnose runs/RUN --checkpoints checkpoints/RUN --critic   # with --save-every-steps N
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robot6.errors import Robot6Error
from robot6.run.checkpoint import load_checkpoint, periodic_number
from robot6.run.config import Config

if TYPE_CHECKING:
    from robot6.learn.replay import ReplayBuffer

TAGS = {"success": "episode/success", "alpha": "train/alpha", "entropy": "train/entropy", "q": "train/q",
        "critic loss": "train/critic_loss"}


def scalars(log_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each of ``TAGS`` that the run logged: (steps, values)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0})
    acc.Reload()
    have = set(acc.Tags()["scalars"])
    if not have:
        raise Robot6Error(f"{log_dir}: no TensorBoard scalars there (give a run's log folder, runs/RUN)")
    return {name: (np.array([e.step for e in acc.Scalars(tag)]), np.array([e.value for e in acc.Scalars(tag)]))
            for name, tag in TAGS.items() if tag in have}


@functools.cache
def latest_replay(run_dir: Path) -> tuple[dict[str, Any], ReplayBuffer]:
    """The ``meta`` of ``run_dir``'s latest.pth and the replay buffer it saved, read once per run folder."""
    from robot6.learn.replay import ReplayBuffer
    from robot6.run.segments import ReplayStore

    state = load_checkpoint(run_dir / "latest.pth")
    meta, manifest = state["meta"], state.get("replay")
    if manifest is None:
        raise Robot6Error(f"{run_dir / 'latest.pth'}: holds no replay buffer")
    buffer = ReplayBuffer(int(manifest["count"]), meta["obs_dim"], meta["act_dim"])
    ReplayStore(run_dir / "replay", generation=int(manifest["generation"])).load(buffer, manifest)
    return meta, buffer


def replay_motion(run_dir: Path, episode_length: int) -> dict[str, np.ndarray]:
    """Per episode of the replay buffer of ``run_dir``'s latest.pth (in the order played): whether the achieved
    goal moved more than 1 cm over the episode, the share of its steps that moved it more than 1 mm, and its last
    step (env steps, counting ``--demos`` episodes before the run's own). Needs a goal env (the goal slices come
    from the env the checkpoint names)."""
    from robot6.envs.factory import make_env
    from robot6.envs.goals import goal_spec

    meta, buffer = latest_replay(run_dir)
    env = make_env(meta["env_id"], **Config.from_dict(meta.get("config", {})).env_kwargs())
    spec = goal_spec(env)
    env.close()
    if spec is None:
        raise Robot6Error(f"{meta['env_id']} is no goal env: the replay has no achieved goal to follow")
    n = len(buffer) // episode_length * episode_length
    achieved = buffer.obs[:n, spec.achieved].reshape(-1, episode_length, spec.achieved.stop - spec.achieved.start)
    after = buffer.next_obs[:n, spec.achieved].reshape(achieved.shape)
    return {
        "moved": np.linalg.norm(after[:, -1] - achieved[:, 0], axis=-1) > 0.01,
        "steps_moving": (np.linalg.norm(after - achieved, axis=-1) > 0.001).mean(axis=1),
        "end": np.arange(1, len(achieved) + 1) * episode_length,
    }


def critic_tails(run_dir: Path, tail: float = 0.005) -> list[str]:
    """One line per ``ckpt_step_N.pth`` of ``run_dir``: Q's minimum, median and maximum over the first N stored
    transitions, and the three observation features whose mean magnitude at the ``tail`` most extreme Q values
    (both ends) is the largest multiple of their mean magnitude over all N."""
    import torch

    from robot6.learn.networks import mlp

    files = sorted(run_dir.glob("ckpt_step_*.pth"), key=periodic_number)
    if not files:
        raise Robot6Error(f"{run_dir}: no ckpt_step_N.pth (train with --save-every-steps N to look at the critic)")
    meta, buffer = latest_replay(run_dir)
    critic = mlp([meta["obs_dim"] + meta["act_dim"], *meta["config"]["hidden"], 1])
    lines = ["| env steps | Q min | Q median | Q max | features largest at the extreme Q (times their mean) |", "| --- | --- | --- | --- | --- |"]
    for f in files:
        state = load_checkpoint(f)
        n = min(int(state["global_step"]), len(buffer))
        critic.load_state_dict(state["q1"])
        obs = torch.from_numpy(buffer.obs[:n])
        with torch.no_grad():
            q = critic(torch.cat([obs, torch.from_numpy(buffer.act[:n])], 1)).squeeze(1).numpy()
        low, high = np.quantile(q, [tail / 2, 1 - tail / 2])
        extreme = (q <= low) | (q >= high)
        size = np.abs(buffer.obs[:n])
        ratio = size[extreme].mean(0) / np.maximum(size.mean(0), 1e-9)
        top = np.argsort(ratio)[::-1][:3]
        lines.append(f"| {int(state['global_step']):,} | {q.min():.3g} | {np.median(q):.3g} | {q.max():.3g} | "
                     + ", ".join(f"[{i}] x{ratio[i]:.0f}" for i in top) + " |")
    return lines


def table(log_dir: Path, run_dir: Path | None, window: int, episode_length: int) -> list[str]:
    """The report's lines: one row per ``window`` env steps."""
    data = scalars(log_dir)
    motion = replay_motion(run_dir, episode_length) if run_dir is not None else None
    last = max(int(steps.max()) for steps, _ in data.values() if len(steps))
    names = list(data) + (["goal moved (episodes)", "goal moved (steps)"] if motion else [])
    lines = ["| env steps | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
    for end in range(window, last + window, window):
        cells = []
        for name, (steps, values) in data.items():
            inside = values[(steps > end - window) & (steps <= end)]
            fmt = "{:.0%}" if name == "success" else "{:.3g}"
            cells.append(fmt.format(float(inside.mean())) if len(inside) else "")
        if motion:
            # The replay counts --demos episodes first: they are the episodes before the run's own.
            extra = len(motion["end"]) * episode_length - last
            inside = (motion["end"] - extra > end - window) & (motion["end"] - extra <= end)
            cells += [f"{motion['moved'][inside].mean():.0%}", f"{motion['steps_moving'][inside].mean():.1%}"] if inside.any() else ["", ""]
        lines.append(f"| {end:,} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log_dir", type=Path, help="the run's log folder (runs/RUN)")
    p.add_argument("--checkpoints", type=Path, default=None, metavar="DIR",
                   help="the run's checkpoint folder (checkpoints/RUN): also how often the achieved goal moved")
    p.add_argument("--critic", action="store_true", help="with --checkpoints: where the critic's extreme values are, "
                   "at every ckpt_step_N.pth")
    p.add_argument("--window", type=int, default=5000, help="env steps per row (default: 5000)")
    p.add_argument("--episode-length", type=int, default=50, help="steps per episode of the env (default: 50)")
    args = p.parse_args(argv)
    try:
        if args.window <= 0 or args.episode_length <= 0:
            raise Robot6Error("--window and --episode-length must be positive")
        if args.critic and args.checkpoints is None:
            raise Robot6Error("--critic needs --checkpoints DIR (the run's checkpoint folder)")
        print("\n".join(table(args.log_dir, args.checkpoints, args.window, args.episode_length)))
        if args.critic:
            print("\n" + "\n".join(critic_tails(args.checkpoints)))
    except Robot6Error as e:
        sys.exit(f"error: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
