#!/usr/bin/env python
"""What per-episode checkpoints cost a real training run, as a share of its wall time.

Trains the same run (Robot6Reach-v0 defaults, ``--steps`` env steps) in fresh subprocesses, alternating:
as shipped (a checkpoint every episode, files written by the background writer), with the files written
in the main loop instead (``--sync``: what the trainer did before the background writer), and with
``Trainer._save`` replaced by a no-op (no checkpoints at all). The overhead is the median over repeats of
(wall time with saves / wall time without - 1), each ratio taken within one repeat.

    python bench/save_overhead.py
    python bench/save_overhead.py --steps 10000 --repeats 5 --dir /mnt/laptop_disk
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import child_env  # noqa: E402

MODES = ("background", "sync", "none")


def worker(mode: str, steps: int, folder: str | None) -> float:
    from sac import training
    from sac.config import Config

    if mode == "none":
        training.Trainer._save = lambda self, reward: None
    elif mode == "sync":
        training.BackgroundWriter.submit = _run_inline
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        config = Config(total_steps=steps, checkpoint_dir=f"{tmp}/ckpt", log_dir=f"{tmp}/runs")
        t = time.perf_counter()
        training.train(config)
        return time.perf_counter() - t


def _run_inline(writer, job) -> None:
    """``BackgroundWriter.submit`` that writes the files before returning (the main loop waits for them)."""
    from concurrent.futures import Future

    future: Future[None] = Future()
    try:
        job()
        future.set_result(None)
    except BaseException as e:  # handed to wait(), as the thread would
        future.set_exception(e)
    writer._future = future


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6000, help="env steps per run (the first 1000 are random)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default=None, help="folder on the disk to measure (default: a temp folder)")
    p.add_argument("--worker", choices=MODES, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.steps, args.dir)), flush=True)
        return 0
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    env = child_env()
    for i in range(args.repeats):
        for mode in MODES:
            cmd = [sys.executable, __file__, "--worker", mode, "--steps", str(args.steps)]
            if args.dir:
                cmd += ["--dir", args.dir]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                print(proc.stderr[-3000:], file=sys.stderr)
                sys.exit(f"error: the {mode} run failed")
            walls[mode].append(json.loads(line[-1][7:]))
            print(f"repeat {i}: {mode:10s} {walls[mode][-1]:6.1f} s", flush=True)
    print(f"\nRobot6Reach-v0 defaults, {args.steps} steps, a checkpoint every episode; medians of {args.repeats}")
    print("| checkpoints | wall (s) | overhead vs none |")
    print("| --- | --- | --- |")
    for mode in MODES:
        ratios = [w / n - 1 for w, n in zip(walls[mode], walls["none"], strict=True)]
        print(f"| {mode} | {statistics.median(walls[mode]):.1f} | {statistics.median(ratios):+.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
