#!/usr/bin/env python
"""Training throughput: our SAC against Stable-Baselines3's SAC, same settings, same run, interleaved.

Each measurement is a fresh subprocess with the same torch thread count that trains for
``--learning-starts`` random steps and then ``--steps`` steps with one gradient update per env step
(256x256 networks and batch 256 by default, the issue's reference sizes, ``--hidden``/``--batch-size`` for
others; the same buffer size, learning rate, gamma, tau and initial entropy coefficient for both). Throughput is env steps per second over the learning phase, checkpoints and logs
included for ours (our real training loop, a checkpoint every episode). Repeats alternate ours/SB3 so that
machine noise hits both; the table gives medians and the median of the per-pair ratios.

    pip install -r requirements-bench.txt
    python bench/speed.py                              # Robot6Reach-v0, 3 pairs
    python bench/speed.py --env Pendulum-v1 --repeats 5 --threads 1
    python bench/speed.py --extra=--updates-every=8    # flags passed to our trainer only
    python bench/speed.py --hidden 80 80 --batch-size 128     # our default sizes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import child_env, parse_fields  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def run_ours(args: argparse.Namespace) -> dict:
    from sac.config import Config
    from sac.logger import read_csv_rows
    from sac.training import train

    with tempfile.TemporaryDirectory() as tmp:
        total = args.learning_starts + args.steps
        extra = json.loads(args.extra_json) if args.extra_json else {}
        config = Config(**{
            "env_id": args.env, "total_steps": total, "seed": args.seed, "device": args.device, "lr": args.lr,
            "gamma": args.gamma, "tau": args.tau, "batch_size": args.batch_size, "buffer_size": args.buffer_size,
            "learning_starts": args.learning_starts, "hidden": args.hidden, "init_alpha": args.init_alpha,
            "utd": 1, "policy_delay": 1, "checkpoint_dir": f"{tmp}/ckpt", "log_dir": f"{tmp}/runs", **extra,
        })
        result = train(config)
        rows = read_csv_rows(result.log_dir / "training.csv")
    # From the end of the first episode that started learning to the last episode end.
    learning = [r for r in rows if int(r["global_step"]) - int(r["episode_length"]) >= args.learning_starts]
    first, last = learning[0], learning[-1]
    steps = int(last["global_step"]) - int(first["global_step"])
    seconds = float(last["elapsed_s"]) - float(first["elapsed_s"])
    return {"sps": steps / seconds, "rss_mb": peak_rss_mb()}


def run_sb3(args: argparse.Namespace) -> dict:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from sac.training import make_env

    class Clock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.t0 = self.t1 = None

        def _on_step(self) -> bool:
            if self.num_timesteps == args.learning_starts + episode_length:
                self.t0 = (time.perf_counter(), self.num_timesteps)
            self.t1 = (time.perf_counter(), self.num_timesteps)
            return True

    env = make_env(args.env)
    episode_length = env.spec.max_episode_steps or 1
    model = SAC(
        "MlpPolicy", env, learning_rate=args.lr, buffer_size=args.buffer_size, learning_starts=args.learning_starts,
        batch_size=args.batch_size, gamma=args.gamma, tau=args.tau, ent_coef=f"auto_{args.init_alpha}", train_freq=1, gradient_steps=1,
        policy_kwargs={"net_arch": args.hidden}, seed=args.seed, device=args.device, verbose=0,
    )
    clock = Clock()
    model.learn(total_timesteps=args.learning_starts + args.steps, callback=clock)
    (t0, s0), (t1, s1) = clock.t0, clock.t1
    return {"sps": (s1 - s0) / (t1 - t0), "rss_mb": peak_rss_mb()}


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out = run_ours(args) if args.worker == "ours" else run_sb3(args)
    print("RESULT " + json.dumps(out), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Robot6Reach-v0")
    p.add_argument("--steps", type=int, default=3000, help="learning steps measured (after the warm-up)")
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="pairs of measurements (ours, SB3)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads of each measurement")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="hidden layer sizes of both trainers")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--buffer-size", type=int, default=1_000_000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--gamma", type=float, default=0.95)
    p.add_argument("--tau", type=float, default=0.005, help="target-critic Polyak rate of both (default: SB3's)")
    p.add_argument("--init-alpha", type=float, default=0.1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extra", action="append", default=[], help="Config field=value for ours only, e.g. --extra updates_every=8")
    p.add_argument("--only", choices=("ours", "sb3"), default=None, help="measure one side only")
    p.add_argument("--worker", choices=("ours", "sb3"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--extra-json", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0

    extra = parse_fields(args.extra)
    sides = [args.only] if args.only else ["ours", "sb3"]
    results: dict[str, list[dict]] = {s: [] for s in sides}
    base = [sys.executable, __file__, "--env", args.env, "--steps", str(args.steps), "--learning-starts", str(args.learning_starts),
            "--threads", str(args.threads), "--hidden", *map(str, args.hidden), "--batch-size", str(args.batch_size),
            "--buffer-size", str(args.buffer_size),
            "--lr", str(args.lr), "--gamma", str(args.gamma), "--tau", str(args.tau), "--init-alpha", str(args.init_alpha), "--device", args.device,
            "--seed", str(args.seed), "--extra-json", json.dumps(extra)]
    env = child_env(OMP_NUM_THREADS=str(args.threads))
    for i in range(args.repeats):
        for side in sides:
            proc = subprocess.run(base + ["--worker", side], env=env, capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                print(proc.stderr[-3000:], file=sys.stderr)
                sys.exit(f"error: the {side} measurement failed")
            r = json.loads(line[-1][7:])
            results[side].append(r)
            print(f"repeat {i}: {side:4s} {r['sps']:7.1f} steps/s, peak RSS {r['rss_mb']:.0f} MB", flush=True)

    extra_text = " ".join(f"{k}={v}" for k, v in extra.items()) or "utd=1 policy_delay=1, the defaults otherwise"
    print(f"\n{args.env}, {args.steps} learning steps after {args.learning_starts} random ones, {'x'.join(map(str, args.hidden))}, batch {args.batch_size}, "
          f"1 update per step{' (ours: see below)' if 'utd' in extra else ''}, {args.threads} torch threads, device {args.device}; ours: {extra_text}; medians of {args.repeats}")
    print("| trainer | env steps/s | peak RSS (MB) |")
    print("| --- | --- | --- |")
    for side in sides:
        name = "Robot6 SAC (ours)" if side == "ours" else "Stable-Baselines3 2.9.2"
        print(f"| {name} | {statistics.median(r['sps'] for r in results[side]):.1f} | "
              f"{statistics.median(r['rss_mb'] for r in results[side]):.0f} |")
    if len(sides) == 2:
        ratios = [a["sps"] / b["sps"] for a, b in zip(results["ours"], results["sb3"], strict=True)]
        print(f"| ratio ours / SB3 (median of pairs) | {statistics.median(ratios):.2f}x | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
