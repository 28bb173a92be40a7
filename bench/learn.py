#!/usr/bin/env python
"""Learning benchmark: does SAC learn, and how fast? Trains with the real CLI, evaluates milestones.

For each seed, runs ``Train_Robot6.py`` for the largest step budget (periodic checkpoints land exactly on
every budget, since episodes have a fixed length), then evaluates the deterministic policy of each budget's
checkpoint on ``--eval-episodes`` fresh episodes (50 new goals on Robot6Reach-v0) and prints a markdown table.

    python bench/learn.py                                  # Robot6Reach-v0, 10k/20k/50k steps, seeds 0 1 2
    python bench/learn.py --steps 5000 10000 --seeds 0 --set lr=3e-4 gamma=0.99
    python bench/learn.py --env Pendulum-v1 --steps 10000 20000 --jobs 2
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from functools import reduce
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sac.evaluate import evaluate, load_policy  # noqa: E402
from sac.training import make_env  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Robot6Reach-v0", help="gymnasium env id (fixed-length episodes)")
    p.add_argument("--steps", type=int, nargs="+", default=[10_000, 20_000, 50_000], help="env-step budgets to evaluate")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--eval-episodes", type=int, default=50, help="evaluation episodes per checkpoint")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra Train_Robot6.py flags, e.g. lr=3e-4 gamma=0.99")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel (each with cores/jobs torch threads)")
    p.add_argument("--workdir", type=Path, default=None, help="keep runs here (default: a temporary folder)")
    args = p.parse_args()

    probe = make_env(args.env)
    ep_len = probe.spec.max_episode_steps
    probe.close()
    if not ep_len or any(s % ep_len for s in args.steps):
        sys.exit(f"error: --steps must be multiples of the episode length ({ep_len}) of {args.env}")
    every = reduce(math.gcd, args.steps) // ep_len
    budgets = sorted(args.steps)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="learn_"))
    workdir.mkdir(parents=True, exist_ok=True)
    extra = []
    for kv in args.set:
        key, _, value = kv.partition("=")
        flag = "--" + key.replace("_", "-")
        if value.lower() in ("", "true"):  # a switch such as her=true
            extra.append(flag)
        elif value.lower() != "false":
            extra += [flag, *value.split(",")]

    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env_vars = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    procs, wall = {}, {}
    pending = list(args.seeds)
    while pending or procs:
        while pending and len(procs) < args.jobs:
            seed = pending.pop(0)
            cmd = [sys.executable, str(ROOT / "Train_Robot6.py"), "--env", args.env, "--seed", str(seed),
                   "--episodes", str(budgets[-1] // ep_len), "--ckpt-every", str(every),
                   "--checkpoint-dir", str(workdir / f"ckpt_s{seed}"), "--log-dir", str(workdir / f"runs_s{seed}"), *extra]
            print("$", " ".join(cmd), flush=True)
            log = open(workdir / f"train_s{seed}.log", "w")
            procs[seed] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env_vars), time.perf_counter())
        time.sleep(1.0)
        for seed, (proc, t0) in list(procs.items()):
            if proc.poll() is not None:
                if proc.returncode != 0:
                    sys.exit(f"error: training seed {seed} failed; see {workdir / f'train_s{seed}.log'}")
                wall[seed] = time.perf_counter() - t0
                del procs[seed]

    results = {b: [] for b in budgets}
    for seed in args.seeds:
        run = next((workdir / f"ckpt_s{seed}").glob("sac_*"))
        for b in budgets:
            actor, meta = load_policy(run / f"ckpt_ep_{b // ep_len}.pth")
            env = make_env(args.env)
            r = evaluate(actor, env, args.eval_episodes, seed=10_000 + seed).summary()
            env.close()
            results[b].append(r)
            print(f"seed {seed} @ {b} steps: {r}", flush=True)

    flags = " ".join(extra) or "(defaults)"
    print(f"\n{args.env}, flags {flags}, seeds {args.seeds}, {args.eval_episodes} deterministic eval episodes each")
    print(f"wall time per seed (training, {args.jobs} parallel): " + ", ".join(f"{wall[s]:.0f} s" for s in args.seeds))
    print("\n| env steps | success rate (mean) | per seed | mean final distance (m) | mean return |")
    print("| --- | --- | --- | --- | --- |")
    for b in budgets:
        rs = results[b]
        sr = [r["success_rate"] for r in rs]
        print(f"| {b:,} | {np.mean(sr):.0%} | {' / '.join(f'{x:.0%}' for x in sr)} | "
              f"{np.mean([r['mean_final_distance'] for r in rs]):.3f} | {np.mean([r['mean_return'] for r in rs]):.1f} |")
    print(f"\nruns kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
