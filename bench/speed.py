"""Training throughput: our SAC against Stable-Baselines3's SAC, same settings, interleaved.

Each measurement is a fresh subprocess with the same torch thread count that trains for
``--learning-starts`` random steps and then ``--steps`` steps with one gradient update per env step
(256x256 networks and batch 256 by default, ``--hidden``/``--batch-size`` for others; the same buffer size,
learning rate, gamma, tau and initial entropy coefficient for both). Throughput is env steps per second over
the learning phase, checkpoints and logs included for ours (the real training loop, a checkpoint every
episode). Repeats alternate ours/SB3 so that machine noise hits both; the table gives medians and the
median of the per-pair ratios.

``--in-process`` measures both in one process instead, for a ratio that a shared machine can repeat
(separate processes seconds apart can differ by 15-30%). Both trainers are built, each trains past
``--learning-starts``, and then they take turns, ``--rounds`` times, the order swapped every round: a block
of ``--block-episodes`` episodes of ours (its checkpoints included: the block waits for the writer
thread's last files), then as many env steps of SB3's (``model.learn(..., reset_num_timesteps=False)``,
timed from its training start to its training end). The figure is the median of the per-round ratios.
Garbage is collected between blocks, untimed; SB3 shares our process settings (denormals flushed, freed
memory kept).

    pip install -e ".[bench]"
    python -m bench.speed                              # Robot6Reach-v0, 3 pairs
    python -m bench.speed --env Pendulum-v1 --repeats 5 --threads 1
    python -m bench.speed --extra updates_every=8      # Config fields for our trainer only
    python -m bench.speed --hidden 80 80 --batch-size 128 --in-process --rounds 20
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

from bench import child_env, parse_settings
from robot6.errors import ConfigError


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def run_ours(args: argparse.Namespace) -> dict:
    from robot6.run.logger import read_csv_rows
    from robot6.run.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        result = train(ours_config(args, tmp, args.learning_starts + args.steps))
        rows = read_csv_rows(result.log_dir / "training.csv")
    # From the end of the first episode that started learning to the last episode end.
    learning = [r for r in rows if int(r["global_step"]) - int(r["episode_length"]) >= args.learning_starts]
    if len(learning) < 2:
        sys.exit(f"error: --steps {args.steps} leaves fewer than two whole episodes of learning to time; give more")
    first, last = learning[0], learning[-1]
    steps = int(last["global_step"]) - int(first["global_step"])
    seconds = float(last["elapsed_s"]) - float(first["elapsed_s"])
    return {"sps": steps / seconds, "rss_mb": peak_rss_mb()}


def run_sb3(args: argparse.Namespace) -> dict:
    from stable_baselines3.common.callbacks import BaseCallback

    from robot6.envs.factory import make_env

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
    model = make_sb3(args, env)
    clock = Clock()
    model.learn(total_timesteps=args.learning_starts + args.steps, callback=clock)
    if clock.t0 is None or clock.t1[1] <= clock.t0[1]:
        sys.exit(f"error: --steps {args.steps} leaves less than one episode of learning to time; give more")
    (t0, s0), (t1, s1) = clock.t0, clock.t1
    return {"sps": (s1 - s0) / (t1 - t0), "rss_mb": peak_rss_mb()}


def shared_config(args: argparse.Namespace, tmp: str, total: int):
    """The settings both trainers get (one update per step), ours writing under ``tmp``."""
    from robot6.run.config import Config

    return Config(
        env_id=args.env, total_steps=total, seed=args.seed, device=args.device, lr=args.lr, gamma=args.gamma, tau=args.tau,
        batch_size=args.batch_size, buffer_size=args.buffer_size, learning_starts=args.learning_starts, hidden=args.hidden,
        init_alpha=args.init_alpha, utd=1, policy_delay=1, checkpoint_dir=f"{tmp}/ckpt", log_dir=f"{tmp}/runs",
    )


def ours_config(args: argparse.Namespace, tmp: str, total: int):
    """Our Config: the shared settings with ``--extra`` (ours only) on top."""
    import dataclasses

    extra = json.loads(args.extra_json) if args.extra_json else {}
    return dataclasses.replace(shared_config(args, tmp, total), **extra)


def make_sb3(args: argparse.Namespace, env):
    """SB3's SAC on ``env`` (flat: no hindsight relabelling) with the shared settings."""
    from bench.peers import make_peer

    return make_peer("sb3", shared_config(args, "", 0), env, device=args.device)


def in_process(args: argparse.Namespace) -> list[tuple[float, float]]:
    """``--in-process``: (ours, SB3) env steps/s of each round, both trainers in this process, taking turns."""
    import gc

    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from robot6.envs.factory import make_env
    from robot6.run.loop import Trainer
    from robot6.run.process import process_settings, resolve_device

    class Clock(BaseCallback):
        """Time from the start of training to its end inside one ``learn`` call (its set-up excluded)."""

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            self.t1 = time.perf_counter()

    torch.set_num_threads(args.threads)
    rounds: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp, process_settings():
        try:
            config = ours_config(args, tmp, 10**9)
            config.validate()
        except ConfigError as e:
            sys.exit(f"error: {e}")
        trainer = Trainer(config, make_env(config.env_id), resolve_device(config.device), None)
        sb3_env = make_env(args.env)
        try:
            model = make_sb3(args, sb3_env)
            # Both past learning_starts and one learning episode, so that every block below learns.
            while True:
                start = trainer.global_step
                trainer.save(trainer.run_episode().reward)
                if start >= args.learning_starts:
                    break
            trainer.flush()
            warm_up = trainer.global_step
            model.learn(total_timesteps=warm_up, progress_bar=False)
            print(f"both trainers warmed up to step {warm_up}; {args.rounds} rounds of {args.block_episodes} "
                  f"episodes each", flush=True)
            for r in range(args.rounds):
                rates = {}
                for side in ("ours", "sb3") if r % 2 == 0 else ("sb3", "ours"):
                    gc.collect()
                    if side == "ours":
                        t0, s0 = time.perf_counter(), trainer.global_step
                        for _ in range(args.block_episodes):
                            trainer.save(trainer.run_episode().reward)
                        trainer.flush()  # its files written: the block pays for all of its checkpoints
                        steps, seconds = trainer.global_step - s0, time.perf_counter() - t0
                    else:
                        clock, s0 = Clock(), model.num_timesteps
                        model.learn(total_timesteps=steps_per_block(args, trainer), callback=clock,
                                    reset_num_timesteps=False, progress_bar=False)
                        steps, seconds = model.num_timesteps - s0, clock.t1 - clock.t0
                    rates[side] = steps / seconds
                rounds.append((rates["ours"], rates["sb3"]))
                print(f"round {r}: ours {rates['ours']:7.1f}, sb3 {rates['sb3']:7.1f} steps/s, "
                      f"ratio {rates['ours'] / rates['sb3']:.2f}", flush=True)
        finally:
            trainer.close()
            trainer.env.close()
            sb3_env.close()
    return rounds


def steps_per_block(args: argparse.Namespace, trainer) -> int:
    """SB3's block: as many env steps as ours takes in ``--block-episodes`` episodes."""
    return args.block_episodes * max(trainer.last_ep_len, 1)


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
    p.add_argument("--in-process", action="store_true",
                   help="both trainers in this process, taking turns in blocks (see above); --rounds, --block-episodes")
    p.add_argument("--rounds", type=int, default=20, help="--in-process: blocks per side (default: 20)")
    p.add_argument("--block-episodes", type=int, default=6,
                   help="--in-process: episodes of ours per block, and as many env steps of SB3's (default: 6)")
    p.add_argument("--worker", choices=("ours", "sb3"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--extra-json", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0

    if args.only != "ours":
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            sys.exit("error: measuring Stable-Baselines3 needs it installed: pip install -e \".[bench]\" "
                     "(or --only ours)")
    try:
        extra = parse_settings(args.extra, "--extra")
    except ConfigError as e:
        sys.exit(f"error: {e}")
    extra_text = " ".join(f"{k}={v}" for k, v in extra.items()) or "utd=1 policy_delay=1, the defaults otherwise"
    if args.in_process:
        if args.only:
            sys.exit("error: --in-process measures both trainers; drop --only")
        if args.rounds < 1 or args.block_episodes < 1:
            sys.exit("error: --rounds and --block-episodes must be at least 1")
        args.extra_json = json.dumps(extra)
        rounds = in_process(args)
        print(f"\n{args.env}, one process, {args.rounds} rounds of {args.block_episodes} episodes per side after "
              f"{args.learning_starts} random steps, {'x'.join(map(str, args.hidden))}, batch {args.batch_size}, "
              f"1 update per step{' (ours: see below)' if 'utd' in extra else ''}, {args.threads} torch threads, "
              f"device {args.device}; ours: {extra_text}; medians of the rounds")
        print("| trainer | env steps/s |\n| --- | --- |")
        print(f"| Robot6 SAC (ours) | {statistics.median(o for o, _ in rounds):.1f} |")
        print(f"| Stable-Baselines3 2.9.2 | {statistics.median(b for _, b in rounds):.1f} |")
        ratios = sorted(o / b for o, b in rounds)
        print(f"| ratio ours / SB3 (median of rounds) | {statistics.median(ratios):.2f}x |")
        print(f"rounds' ratios from {ratios[0]:.2f}x to {ratios[-1]:.2f}x, middle half "
              f"{ratios[len(ratios) // 4]:.2f}x-{ratios[(3 * len(ratios)) // 4 - (len(ratios) % 4 == 0)]:.2f}x; "
              f"peak RSS of the process (both trainers) {peak_rss_mb():.0f} MB")
        return 0
    sides = [args.only] if args.only else ["ours", "sb3"]
    results: dict[str, list[dict]] = {s: [] for s in sides}
    base = [sys.executable, "-m", "bench.speed", "--env", args.env, "--steps", str(args.steps), "--learning-starts", str(args.learning_starts),
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
