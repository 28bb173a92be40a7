#!/usr/bin/env python
"""The SAC update of the working tree against the same update at another git commit, in one process.

Separate processes are too noisy on a shared 2-core machine to see a 5% change in the update (their medians
moved by 15% between runs of the same code); here the older ``sac/`` is extracted from git under another
package name (``sac_ref``) and both agents update in the same process, on the same fixed batches,
alternating blocks of updates, so that machine noise hits both sides of a pair alike. The figure is the
median of the per-block ratios (working tree / commit): below 1 is faster. Obs 18, act 6 (Robot6Reach-v0).

    python bench/update_ab.py HEAD~1                       # 80x80, batch 128, one full update per call
    python bench/update_ab.py 3b97c55 --threads 1 --policy-delay 4 --hidden 128 128
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def import_ref(commit: str, into: Path):
    """``sac.agent`` as it was at ``commit``, imported as ``sac_ref.agent`` from a copy under ``into``."""
    try:
        archive = subprocess.run(["git", "archive", commit, "sac"], cwd=ROOT, capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as e:
        sys.exit(f"error: git archive {commit} failed: {e.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / "sac_ref"
    (into / "sac").rename(package)
    for path in package.glob("*.py"):
        text = re.sub(r"\b(from|import) sac\b", r"\1 sac_ref", path.read_text())
        path.write_text(text)
    sys.path.insert(0, str(into))
    return importlib.import_module("sac_ref.agent")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("commit", help="git commit (or branch, tag) to compare the working tree's sac/ with")
    p.add_argument("--hidden", type=int, nargs="+", default=[80, 80], help="hidden layer sizes (default: 80 80)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--policy-delay", type=int, default=1, help="as --policy-delay (default 1: every update full)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    p.add_argument("--rounds", type=int, default=40, help="blocks per side (default: 40)")
    p.add_argument("--block", type=int, default=100, help="updates per block (default: 100)")
    args = p.parse_args()

    from sac import agent as ours
    from sac.replay import Batch
    from sac.training import flush_denormals, keep_freed_memory

    keep_freed_memory()
    flush_denormals()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ref = import_ref(args.commit, Path(tmp))
        g = torch.Generator().manual_seed(0)
        B = args.batch_size
        batches = [
            Batch(torch.randn(B, 18, generator=g), torch.rand(B, 6, generator=g) * 2 - 1, torch.randn(B, generator=g),
                  torch.randn(B, 18, generator=g), (torch.rand(B, generator=g) < 0.02).float())
            for _ in range(64)
        ]
        agents = {}
        for name, module in (("commit", ref), ("tree", ours)):
            torch.manual_seed(0)
            agents[name] = module.SAC(18, 6, args.hidden, 1e-3, 0.95, 0.005, 0.1, policy_delay=args.policy_delay)
        for agent in agents.values():  # warm up: optimizer state, caches
            for i in range(100):
                agent.update_many([batches[i % 64]])
        times: dict[str, list[float]] = {name: [] for name in agents}
        for r in range(args.rounds):
            order = list(agents.items()) if r % 2 == 0 else list(agents.items())[::-1]
            for name, agent in order:
                t0 = time.perf_counter()
                for i in range(args.block):
                    agent.update_many([batches[i % 64]])
                times[name].append((time.perf_counter() - t0) / args.block * 1e6)
    ratios = [t / c for t, c in zip(times["tree"], times["commit"], strict=True)]
    print(f"update at {'x'.join(map(str, args.hidden))}, batch {B}, policy delay {args.policy_delay}, "
          f"{args.threads} torch threads; {args.rounds} blocks of {args.block} updates per side")
    print("| side | us per update (median of blocks) |\n| --- | --- |")
    print(f"| {args.commit} | {statistics.median(times['commit']):.0f} |")
    print(f"| working tree | {statistics.median(times['tree']):.0f} |")
    print(f"| ratio tree / commit (median of pairs) | {statistics.median(ratios):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
