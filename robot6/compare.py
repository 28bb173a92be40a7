"""Compare runs: episode reward (and success rate) against steps, seeds grouped into mean and band.

    robot6-compare runs/sac_20261125-093000 runs/sac_20261126-101500 --out compare.png
    robot6-compare runs/lr3e-4_s*/* runs/lr1e-3_s*/* --group-by-prefix --smooth 20 --threshold -3

Each argument is a run's log folder (holding ``training.csv``) or a folder of such run folders.
``--group-by-prefix`` puts runs whose paths differ only in a seed token (``_s0``, ``-seed1``, ``_2``) and
in the run folder's own ``sac_YYYYMMDD-HHMMSS`` name into one curve: the mean over seeds with a band from
the lowest to the highest seed (train seeds into folders with ``--log-dir runs/NAME_s0`` etc.). A summary
table is printed: final and best (smoothed) reward, and steps to reach ``--threshold`` (and
``--success-threshold`` where success is logged).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot6.run.logger import CSV_NAME, read_csv_rows
from robot6.run.report import command

RUN_NAME = re.compile(r"/?sac_\d{8}-\d{6}(-\d+)?$")
SEED_TOKEN = re.compile(r"[_-](s|seed)?\d+$")


@dataclass
class Run:
    label: str
    steps: np.ndarray
    episodes: np.ndarray
    reward: np.ndarray
    success: np.ndarray | None  # None when the env logs no success
    seconds: np.ndarray  # training wall time at each episode's end (elapsed_s)


def load_run(folder: Path) -> Run:
    rows = read_csv_rows(folder / CSV_NAME)
    if not rows:
        raise ValueError(f"{folder / CSV_NAME}: no episodes logged")
    success = [r.get("success", "") for r in rows]
    return Run(
        label=str(folder),
        steps=np.array([int(r["global_step"]) for r in rows]),
        episodes=np.array([int(r["episode"]) for r in rows]) + 1,
        reward=np.array([float(r["episode_reward"]) for r in rows]),
        success=None if any(s == "" for s in success) else np.array([float(s) for s in success]),
        seconds=np.array([float(r.get("elapsed_s") or "nan") for r in rows]),
    )


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders named by ``paths``: each path itself if it holds training.csv, else its sub-folders that do."""
    out = []
    for p in paths:
        if (p / CSV_NAME).is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(d for d in p.iterdir() if (d / CSV_NAME).is_file()))
        else:
            raise FileNotFoundError(f"{p}: no such run folder")
    return out


def group_key(label: str) -> str:
    """The path with its run-name folder and a trailing seed token removed (``runs/lr_s1/sac_...`` -> ``runs/lr``)."""
    key = RUN_NAME.sub("", label.rstrip("/"))
    return SEED_TOKEN.sub("", key) or key


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far)."""
    if window <= 1:
        return y.astype(float)
    c = np.cumsum(np.insert(y.astype(float), 0, 0.0))
    n = np.arange(1, len(y) + 1)
    lo = np.maximum(0, n - window)
    return (c[n] - c[lo]) / (n - lo)


@dataclass
class Curve:
    label: str
    n_runs: int
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def group_curve(label: str, runs: list[Run], metric: str, x_axis: str, window: int) -> Curve | None:
    """Mean and min-max band of ``metric`` over ``runs``, on the x range all of them cover."""
    series = []
    for r in runs:
        y = r.reward if metric == "reward" else r.success
        if y is None:
            return None
        x = {"steps": r.steps, "episodes": r.episodes, "time": r.seconds}[x_axis]
        series.append((x, smooth(y, window)))
    end = min(x[-1] for x, _ in series)
    if len(series) == 1:
        x, y = series[0]
        return Curve(label, 1, x, y, y, y)
    grid = np.unique(np.concatenate([x[x <= end] for x, _ in series]))
    ys = np.stack([np.interp(grid, x, y) for x, y in series])
    return Curve(label, len(runs), grid, ys.mean(0), ys.min(0), ys.max(0))


def first_reach(curve: Curve, threshold: float) -> float | None:
    hit = np.nonzero(curve.mean >= threshold)[0]
    return float(curve.x[hit[0]]) if len(hit) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=command("compare"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run log folders (runs/NAME) or folders holding them")
    p.add_argument("--out", type=Path, default=Path("compare.png"), help="the picture to write (default: compare.png)")
    p.add_argument("--group-by-prefix", action="store_true", help="average runs that differ only in a seed token")
    p.add_argument("--smooth", type=int, default=10, help="moving-average window in episodes (default: 10; 1: raw)")
    p.add_argument("--x", choices=("steps", "episodes", "time"), default="steps",
                   help="x axis: env steps, episodes or training wall time in seconds (default: steps)")
    p.add_argument("--threshold", type=float, default=None, help="report when the smoothed mean reward first reaches this")
    p.add_argument("--success-threshold", type=float, default=0.9, help="report when the smoothed success rate first reaches this (default: 0.9)")
    p.add_argument("--title", default=None, help="title of the figure")
    args = p.parse_args(argv)
    if args.smooth < 1:
        print(f"error: --smooth must be at least 1, got {args.smooth}", file=sys.stderr)
        return 2
    try:
        runs = [load_run(f) for f in find_runs(args.runs)]
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: no training.csv under {', '.join(map(str, args.runs))}", file=sys.stderr)
        return 2
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(group_key(r.label) if args.group_by_prefix else r.label, []).append(r)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_success = all(r.success is not None for r in runs)
    metrics = ["reward", "success"] if has_success else ["reward"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.4 * len(metrics), 4.2), squeeze=False)
    summary = []
    for label, members in groups.items():
        curves = {m: group_curve(label, members, m, args.x, args.smooth) for m in metrics}
        for ax, m in zip(axes[0], metrics, strict=True):
            c = curves[m]
            name = f"{label} ({c.n_runs} runs)" if c.n_runs > 1 else label
            (line,) = ax.plot(c.x, c.mean, label=name, linewidth=1.6)
            if c.n_runs > 1:
                ax.fill_between(c.x, c.low, c.high, color=line.get_color(), alpha=0.2, linewidth=0)
        reward = curves["reward"]
        row = {"run": label, "runs": str(reward.n_runs), "final reward": f"{reward.mean[-1]:.2f}", "best reward": f"{reward.mean.max():.2f}"}
        if args.threshold is not None:
            hit = first_reach(reward, args.threshold)
            row[f"{args.x} to reward {args.threshold:g}"] = "not reached" if hit is None else f"{hit:,.0f}"
        if has_success:
            success = curves["success"]
            row["final success"] = f"{success.mean[-1]:.0%}"
            hit = first_reach(success, args.success_threshold)
            row[f"{args.x} to {args.success_threshold:.0%} success"] = "not reached" if hit is None else f"{hit:,.0f}"
        summary.append(row)
    for ax, m in zip(axes[0], metrics, strict=True):
        ax.set_xlabel({"steps": "env steps", "episodes": "episodes", "time": "training wall time (s)"}[args.x])
        ax.set_ylabel("episode reward" if m == "reward" else "success rate")
        ax.set_title(f"{'episode reward' if m == 'reward' else 'success'} (moving average of {args.smooth} episodes)", fontsize=10)
        ax.grid(alpha=0.3)
        if m == "success":
            ax.set_ylim(-0.02, 1.02)
    axes[0][0].legend(fontsize=8, loc="lower right")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    plt.close(fig)

    cols = list(summary[0])
    widths = {c: max(len(c), *(len(r.get(c, "")) for r in summary)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in summary:
        print("  ".join(r.get(c, "").ljust(widths[c]) for c in cols))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
