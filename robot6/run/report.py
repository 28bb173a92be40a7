"""What a run tells its user: the commands to type next, written as this process was launched, and the summary
a finished run ends with (where its files are, how it did, how to evaluate it and look at its curves)."""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

from robot6.run.config import Config, flag_of
from robot6.run.logger import CSV_NAME, EVAL_CSV_NAME, read_csv_rows


def command(name: str) -> str:
    """How to run the command ``name`` (``train``, ``evaluate``, ...) the way this process was started: its
    console script ``robot6-NAME`` when this process is one, ``python Train_Robot6.py`` for training started
    through the checkout's script, else ``python -m robot6.NAME`` (which works wherever robot6 imports)."""
    launched = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if launched.startswith("robot6-"):
        return f"robot6-{name}"
    if name == "train" and launched == "Train_Robot6.py":
        return "python Train_Robot6.py"
    return f"python -m robot6.{name}"


def resume_command(config: Config, run_dir: Path) -> str:
    """The command that resumes the run in ``run_dir`` when pasted in the folder it was started from, whatever
    other runs have saved since: the non-default ``--checkpoint-dir``/``--log-dir`` and ``--resume-ckpt`` of
    the run's ``latest.pth`` (its newest state, so it continues in place)."""
    defaults, parts = Config(), [*shlex.split(command("train")), "--resume"]
    for name in ("checkpoint_dir", "log_dir"):
        if getattr(config, name) != getattr(defaults, name):
            parts += [flag_of(name), getattr(config, name)]
    return shlex.join([*parts, "--resume-ckpt", str(Path(run_dir) / "latest.pth")])


def duration(seconds: float) -> str:
    """``0.42 s``, ``42.3 s``, ``3 min 20 s``, ``2 h 05 min``."""
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {int(seconds % 60):02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def run_summary(run_dir: Path, log_dir: Path) -> str:
    """The lines a finished run ends with, read from its files: episodes and env steps, training wall time (all
    sittings of a resumed run), the best evaluation (its success rate where the env reports one, and mean
    return) or, without evaluations, the best exploring episode's return, the paths of latest.pth and
    best.pth, and the commands that evaluate best.pth and open TensorBoard on this run."""
    rows = read_csv_rows(Path(log_dir) / CSV_NAME)
    last = rows[-1] if rows else {"episode": "-1", "global_step": "0", "elapsed_s": "nan"}
    elapsed = float(last.get("elapsed_s") or "nan")
    lines = [f"Run {Path(run_dir).name} finished: {int(last['episode']) + 1:,} episodes, {int(last['global_step']):,} env steps"
             + (f", {duration(elapsed)} of training" if math.isfinite(elapsed) else "")]
    evaluations = read_csv_rows(Path(log_dir) / EVAL_CSV_NAME)
    if evaluations:
        best = max(evaluations, key=lambda r: float(r["return_mean"]))  # the first of equals, as best.pth
        success = f"{float(best['success_rate']):.0%} success, " if best.get("success_rate") else ""
        lines.append(f"  best evaluation:  {success}mean return {float(best['return_mean']):.2f} "
                     f"({best['episodes']} episodes at step {int(best['global_step']):,})")
    elif rows:
        top = max(float(r["episode_reward"]) for r in rows)
        lines.append(f"  best episode:     return {top:.2f} (exploring; no evaluation ran)")
    best_pth = Path(run_dir) / "best.pth"
    lines.append(f"  latest:           {Path(run_dir) / 'latest.pth'}")
    if best_pth.is_file():
        lines.append(f"  best:             {best_pth}")
        lines.append(f"  evaluate it:      {command('evaluate')} {shlex.quote(str(best_pth))} --episodes 20")
    lines.append(f"  curves:           tensorboard --logdir {shlex.quote(str(log_dir))}")
    return "\n".join(lines)
