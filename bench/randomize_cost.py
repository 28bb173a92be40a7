"""What domain randomization costs in training speed: two trainers in one process, the same env and settings
(the env's preset), one training on the nominal simulation and one with ``--randomize`` (the env's ranges),
taking turns in blocks of ``--block-episodes`` episodes, the order swapped every round. Both learn in every
block (both warmed up past ``learning_starts`` first) and save a checkpoint every episode, as a run does. The
figure is the median over rounds of randomized / nominal env steps per second: the cost of the per-episode
physics changes, the latency queue and the noisy readings, in the real training loop.

    python -m bench.randomize_cost --env Robot6Push-v0 --rounds 10
    python -m bench.randomize_cost --env Robot6Reach-v0 --rounds 10 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
import sys
import tempfile
import time

from robot6.errors import Robot6Error


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Robot6Push-v0")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--block-episodes", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from robot6.envs.factory import make_env
    from robot6.run.config import Config
    from robot6.run.loop import Trainer
    from robot6.run.presets import apply_preset, resolve_randomization
    from robot6.run.process import process_settings, resolve_device

    torch.set_num_threads(args.threads)
    trainers: dict[str, Trainer] = {}
    rates: dict[str, list[float]] = {"nominal": [], "randomized": []}
    try:
        with tempfile.TemporaryDirectory() as tmp, process_settings():
            base, _ = apply_preset(Config(env_id=args.env, seed=args.seed, device="cpu", eval_every=0, demos=0), {"eval_every", "demos"})
            for side, randomize in (("nominal", False), ("randomized", True)):
                config = resolve_randomization(dataclasses.replace(
                    base, randomize=randomize, checkpoint_dir=f"{tmp}/{side}/checkpoints", log_dir=f"{tmp}/{side}/runs"))
                config.validate()
                trainers[side] = Trainer(config, make_env(config.env_id, **config.env_kwargs(randomized=True)),
                                         resolve_device("cpu"), None)
                while trainers[side].global_step <= config.learning_starts:  # past the warm-up: every block learns
                    trainers[side].save(trainers[side].run_episode().reward)
                trainers[side].flush()
            for r in range(args.rounds):
                for side in ("nominal", "randomized") if r % 2 == 0 else ("randomized", "nominal"):
                    gc.collect()
                    trainer = trainers[side]
                    t0, s0 = time.perf_counter(), trainer.global_step
                    for _ in range(args.block_episodes):
                        trainer.save(trainer.run_episode().reward)
                    trainer.flush()
                    rates[side].append((trainer.global_step - s0) / (time.perf_counter() - t0))
                ratio = rates["randomized"][-1] / rates["nominal"][-1]
                print(f"round {r}: nominal {rates['nominal'][-1]:6.1f}, randomized {rates['randomized'][-1]:6.1f} steps/s, "
                      f"ratio {ratio:.3f}", flush=True)
    except Robot6Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        for trainer in trainers.values():
            trainer.close()
            trainer.env.close()
    ratios = [a / b for a, b in zip(rates["randomized"], rates["nominal"], strict=True)]
    print(f"\n{args.env}, {args.threads} torch thread(s), {args.rounds} rounds of {args.block_episodes} episodes: "
          f"nominal {statistics.median(rates['nominal']):.1f} steps/s, randomized {statistics.median(rates['randomized']):.1f} "
          f"steps/s (medians); randomized / nominal {statistics.median(ratios):.3f} (median of the rounds' ratios, "
          f"range {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
