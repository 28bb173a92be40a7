#!/usr/bin/env python
"""What a per-episode checkpoint costs with a big replay buffer, and what a resume costs.

Fills a 1,000,000-capacity buffer with 200,000 transitions (Robot6Reach-v0 sizes: obs 18, act 6) as a
run would have persisted them, one segment per 50-step episode. Then measures, over repeated episode ends:
the incremental save (new segment + latest.pth of a 256x256 agent, as training does), against a naive save
that writes the whole buffer each time; and the resume: checkpoint load + replay rebuild from segments.

    python bench/save_cost.py
    python bench/save_cost.py --transitions 500000 --repeats 20
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sac import checkpoint as ckpt  # noqa: E402
from sac.agent import SAC  # noqa: E402
from sac.fileio import atomic_write_bytes  # noqa: E402
from sac.replay import FIELDS, Batch, ReplayBuffer, ReplayStore  # noqa: E402

OBS, ACT, EP = 18, 6, 50


def add_episode(buf: ReplayBuffer, rng: np.random.Generator) -> None:
    for _ in range(EP):
        buf.add(rng.standard_normal(OBS, dtype=np.float32), rng.uniform(-1, 1, ACT).astype(np.float32),
                float(rng.standard_normal()), rng.standard_normal(OBS, dtype=np.float32), False)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--capacity", type=int, default=1_000_000)
    p.add_argument("--transitions", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=10, help="episode ends timed per method")
    p.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure (default: a temp folder)")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="save_cost_", dir=args.dir))
    rng = np.random.default_rng(0)
    agent = SAC(OBS, ACT, [256, 256], 1e-3, 0.95, 0.005, 0.1)
    batch = Batch(torch.randn(256, OBS), torch.rand(256, ACT) * 2 - 1, torch.randn(256), torch.randn(256, OBS), torch.zeros(256))
    agent.update(batch)  # so that the optimizers hold their moment estimates, as in a real checkpoint
    buf = ReplayBuffer(args.capacity, OBS, ACT, seed=0)
    store = ReplayStore(folder / "replay")
    t0 = time.perf_counter()
    for _ in range(args.transitions // EP):
        add_episode(buf, rng)
        store.save(buf)  # what the run did at each episode end
    print(f"filled {buf.count:,} transitions in {len(list(store.folder.iterdir())):,} segments ({time.perf_counter() - t0:.0f} s)")

    def state(manifest):
        return {**agent.state_dict(), "global_step": buf.count, "episode": buf.count // EP, "best_reward": 0.0,
                "meta": {"format_version": ckpt.FORMAT_VERSION}, "replay": manifest}

    incremental, inc_bytes = [], []
    for _ in range(args.repeats):
        add_episode(buf, rng)
        t = time.perf_counter()
        manifest = store.save(buf)
        size = ckpt.save_checkpoint(state(manifest), folder / "latest.pth")
        incremental.append(time.perf_counter() - t)
        inc_bytes.append(size + (store.folder / sorted(f.name for f in store.folder.iterdir())[-1]).stat().st_size)

    t = time.perf_counter()
    loaded = ckpt.load_checkpoint(folder / "latest.pth")
    restored = ReplayBuffer(args.capacity, OBS, ACT)
    report = ReplayStore(folder / "replay").load(restored, loaded["replay"])
    resume_s = time.perf_counter() - t
    assert report.complete and all(np.array_equal(getattr(buf, k), getattr(restored, k)) for k in FIELDS)

    # Last: the naive saves dirty about 1 GB of page cache, which would slow the fsyncs measured above.
    naive, naive_bytes = [], []
    for _ in range(min(args.repeats, 5)):
        add_episode(buf, rng)
        t = time.perf_counter()
        blob = io.BytesIO()
        torch.save({**state(None), "buffer": {k: torch.from_numpy(getattr(buf, k)) for k in FIELDS}}, blob)
        atomic_write_bytes(folder / "naive.pth", blob.getbuffer())
        naive.append(time.perf_counter() - t)
        naive_bytes.append(blob.getbuffer().nbytes)

    inc_ms, naive_ms = statistics.median(incremental) * 1e3, statistics.median(naive) * 1e3
    print(f"\nbuffer: capacity {args.capacity:,}, {buf.count:,} transitions; agent 256x256; medians of {args.repeats} / {len(naive)} saves")
    print("| per-episode save | ms | bytes written |")
    print("| --- | --- | --- |")
    print(f"| incremental (segment + latest.pth) | {inc_ms:.1f} | {statistics.median(inc_bytes):,.0f} |")
    print(f"| naive (whole buffer in the checkpoint) | {naive_ms:.0f} | {statistics.median(naive_bytes):,.0f} |")
    print(f"| ratio naive / incremental | {naive_ms / inc_ms:.0f}x | {statistics.median(naive_bytes) / statistics.median(inc_bytes):.0f}x |")
    print(f"\nresume (load latest.pth + rebuild {report.loaded:,} transitions from segments, byte-identical): {resume_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
