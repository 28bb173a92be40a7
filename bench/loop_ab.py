#!/usr/bin/env python
"""Two configurations of our real training loop in one process, alternating episodes: which runs faster.

Separate processes are too noisy on a shared 2-core machine to see a 5-10% difference in steps/s (the same
run moved by 15-30% between processes). Here two trainers (``Trainer``, checkpoints and logs included) are
built in one process, both warm up to ``--learning-starts`` + 500 steps, and then take turns: a block of
``--episodes`` episodes each, ``--rounds`` times, the order swapped every round, so that machine noise hits
both sides of a round alike. The figure is the median of the per-round ratios of env steps/s (B / A).

Fields are ``Config`` fields (``--set`` for both sides, ``--a``/``--b`` for one side). Two are not fields:
``threads=N``, the torch thread count a side runs with (``torch.set_num_threads`` before each of its blocks),
and ``saves=false``, a side that skips the per-episode checkpoint (what checkpoints cost the loop).

    python bench/loop_ab.py --a updates_every=1 --b updates_every=8                 # at the defaults
    python bench/loop_ab.py --set her=false utd=1 policy_delay=1 --a threads=2 --b threads=1
    python bench/loop_ab.py --a compile=false --b compile=true --set updates_every=8
    python bench/loop_ab.py --a saves=true --b saves=false                          # the checkpoints' cost
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import parse_fields  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", nargs="+", default=[], metavar="FIELD=VALUE", help="side A's Config fields (and threads=N, saves=false)")
    p.add_argument("--b", nargs="+", default=[], metavar="FIELD=VALUE", help="side B's Config fields (and threads=N, saves=false)")
    p.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE", help="Config fields of both sides, e.g. her=false")
    p.add_argument("--rounds", type=int, default=12, help="blocks per side (default: 12)")
    p.add_argument("--episodes", type=int, default=3, help="episodes per block (default: 3)")
    args = p.parse_args()

    import torch

    from sac.config import Config
    from sac.errors import ConfigError
    from sac.training import Trainer, flush_denormals, keep_freed_memory, make_env, resolve_device

    keep_freed_memory()
    flush_denormals()
    common = parse_fields(args.set)
    sides = {"A": parse_fields(args.a), "B": parse_fields(args.b)}
    threads = {name: int(fields.pop("threads", torch.get_num_threads())) for name, fields in sides.items()}
    saves = {name: fields.pop("saves", True) for name, fields in sides.items()}
    if not all(isinstance(v, bool) for v in saves.values()):
        sys.exit(f"error: saves= takes true or false, got {saves}")
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fields in sides.items():
            try:
                config = Config(**{**common, **fields, "total_steps": 10**9,
                                   "checkpoint_dir": f"{tmp}/{name}/checkpoints", "log_dir": f"{tmp}/{name}/runs"})
                config.validate()
            except (TypeError, ConfigError) as e:
                sys.exit(f"error: side {name}: {e}")
            torch.set_num_threads(threads[name])
            trainer = Trainer(config, make_env(config.env_id), resolve_device(config.device), None)
            t0 = time.perf_counter()
            while trainer.global_step < config.learning_starts + 500:
                trainer._save(trainer._episode()[0])
            print(f"side {name}: {fields or '(common fields only)'}, {threads[name]} threads; warmed up to step "
                  f"{trainer.global_step} in {time.perf_counter() - t0:.1f} s", flush=True)
            trainers[name] = trainer
        rates: dict[str, list[float]] = {name: [] for name in trainers}
        for r in range(args.rounds):
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                trainer = trainers[name]
                torch.set_num_threads(threads[name])
                t0, s0 = time.perf_counter(), trainer.global_step
                for _ in range(args.episodes):
                    reward = trainer._episode()[0]
                    if saves[name]:
                        trainer._save(reward)
                rates[name].append((trainer.global_step - s0) / (time.perf_counter() - t0))
        for trainer in trainers.values():
            trainer.close()
            trainer.env.close()
    ratios = [b / a for a, b in zip(rates["A"], rates["B"], strict=True)]
    print(f"\n{args.rounds} rounds of {args.episodes} episodes per side; common: {common or 'defaults'}")
    print("| side | env steps/s (median of blocks) |\n| --- | --- |")
    for name in ("A", "B"):
        fields = " ".join([*(f"{k}={v}" for k, v in sides[name].items()), f"threads={threads[name]}",
                           *([] if saves[name] else ["saves=false"])])
        print(f"| {name}: {fields} | {statistics.median(rates[name]):.1f} |")
    print(f"| ratio B / A (median of rounds) | {statistics.median(ratios):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
