"""Kill -9 torture: SIGKILL training at random moments, resume, repeat; then check that nothing broke.

Each cycle starts ``Train_Robot6.py`` (``--resume`` after the first), waits a random time, and kills it with
SIGKILL; the kill often lands in the middle of a save (big networks make saves long). After the last cycle
the run is resumed to its end. Then every ``.pth`` on disk must load, ``training.csv`` must hold each episode
exactly once with increasing ``global_step``, the run must reach its target, and each resume must start
from at least the last checkpoint the killed process announced (so a kill loses at most the episode in
progress).

    python -m bench.torture                     # 40 cycles
    python -m bench.torture --cycles 200 --hidden 1024 1024
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import TRAIN, child_env
from robot6.errors import CheckpointError
from robot6.run import checkpoint as ckpt
from robot6.run.logger import read_csv_rows

ANNOUNCED = ckpt.POINTER_FILE


@dataclass
class TortureReport:
    cycles: int = 0
    kills: int = 0
    kills_during_save: int = 0  # a temp file was left behind: the kill hit a write
    resumes: int = 0
    lost_episodes: list[int] = field(default_factory=list)  # per kill: episodes finished but not saved
    pth_files: int = 0
    corrupt_files: list[str] = field(default_factory=list)
    final_episode: int = 0
    csv_ok: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.corrupt_files and self.csv_ok


def _pointer_episode(checkpoint_dir: Path) -> int:
    data = ckpt.read_pointer(checkpoint_dir)
    return int(data["episode"]) if data else 0


def _csv_episodes(log_dir: Path) -> int:
    runs = [p for p in log_dir.iterdir() if p.is_dir()] if log_dir.is_dir() else []
    return len(read_csv_rows(runs[0] / "training.csv")) if runs else 0


def _wait_for_a_save_in_progress(checkpoint_dir: Path, proc: subprocess.Popen, timeout: float) -> float:
    """Poll until a save's temp file appears (then return at once, mid-save); returns the seconds waited."""
    pointer = ckpt.read_pointer(checkpoint_dir)
    run_dir = checkpoint_dir / pointer["run"] if pointer else checkpoint_dir
    t0, now = time.perf_counter(), time.time()
    while proc.poll() is None and time.perf_counter() - t0 < timeout:
        for folder in (run_dir, run_dir / "replay"):
            try:
                if any(e.name.endswith(".tmp") and e.stat().st_mtime >= now for e in os.scandir(folder)):
                    return time.perf_counter() - t0
            except FileNotFoundError:
                pass
        time.sleep(0.0005)
    return time.perf_counter() - t0


def torture(
    workdir: Path,
    cycles: int,
    episodes: int,
    train_args: list[str],
    kill_after: tuple[float, float] = (0.0, 2.0),
    seed: int = 0,
    save_fraction: float = 0.5,
    log=print,
) -> TortureReport:
    """Run the torture in ``workdir`` and return what it found (``report.ok`` when all checks pass).

    In a ``save_fraction`` of the cycles the kill is aimed at a save: it comes the moment a temporary file
    of a save appears; the other kills come ``kill_after`` seconds (uniform) after the process first saved.
    """
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir, log_dir = workdir / "checkpoints", workdir / "runs"
    env = child_env(PYTHONUNBUFFERED="1")
    report = TortureReport()
    base = [sys.executable, str(TRAIN), "--episodes", str(episodes), *train_args]
    for cycle in range(cycles):
        cmd = base + (["--resume"] if cycle > 0 else [])
        before = _pointer_episode(checkpoint_dir)
        started = time.time()
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # Wait until this process has saved once (imports and restore take seconds), then kill at a random
        # moment: in an episode, in an update, or in the middle of a save.
        while proc.poll() is None and _pointer_episode(checkpoint_dir) <= before:
            time.sleep(0.01)
        target_save = rng.random() < save_fraction
        if target_save and proc.poll() is None:
            delay = _wait_for_a_save_in_progress(checkpoint_dir, proc, timeout=10.0)
        else:
            delay = rng.uniform(*kill_after)
            time.sleep(delay)
        report.cycles += 1
        if proc.poll() is not None:
            out = proc.stdout.read()
            if proc.returncode != 0:
                report.problems.append(f"cycle {cycle}: exited with {proc.returncode} before the kill")
            if "[RESUME] Loaded" in out:
                report.resumes += 1
            log(f"cycle {cycle}: finished on its own (episode {_pointer_episode(checkpoint_dir)})")
            break
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        finished = _csv_episodes(log_dir)  # episodes logged before the kill, saved or not
        report.kills += 1
        if cycle > 0 and "[RESUME] Loaded" in out:
            report.resumes += 1
            resumed_at = int(out.split("[RESUME] Loaded", 1)[1].split("episode ", 1)[1].split(",", 1)[0])
            if resumed_at < before:
                report.problems.append(f"cycle {cycle}: resumed at episode {resumed_at}, behind the announced {before}")
        temps = [t for t in checkpoint_dir.rglob("*.tmp") if t.stat().st_mtime >= started]
        if temps:
            report.kills_during_save += 1
        saved = _pointer_episode(checkpoint_dir)
        # A row may be logged just before its checkpoint lands: at most one episode is lost.
        report.lost_episodes.append(max(0, finished - saved))
        log(f"cycle {cycle}: killed {delay:.2f} s after its first save, with {finished} episodes logged, "
            f"last checkpoint {saved}{', during a save' if temps else ''}")
        if saved >= episodes:
            break
    final = subprocess.run(base + ["--resume"], cwd=workdir, env=env, capture_output=True, text=True)
    if final.returncode not in (0, 2):  # 2: nothing left to train (the run had already finished)
        report.problems.append(f"final resume exited with {final.returncode}: {final.stderr[-500:]}")

    for f in sorted(checkpoint_dir.rglob("*.pth")):
        report.pth_files += 1
        try:
            ckpt.load_checkpoint(f)
        except CheckpointError as e:
            report.corrupt_files.append(str(e))
    try:
        report.final_episode = int(json.loads((checkpoint_dir / ANNOUNCED).read_text())["episode"])
    except (OSError, ValueError, KeyError):
        report.problems.append("no latest_checkpoint.json")
    runs = [p for p in log_dir.iterdir() if p.is_dir()]
    if len(runs) != 1:
        report.problems.append(f"expected one run folder, found {len(runs)}")
    else:
        rows = read_csv_rows(runs[0] / "training.csv")
        eps = [int(r["episode"]) for r in rows]
        steps = [int(r["global_step"]) for r in rows]
        report.csv_ok = eps == list(range(episodes)) and all(a < b for a, b in zip(steps, steps[1:]))
        if not report.csv_ok:
            report.problems.append(f"training.csv episodes are not 0..{episodes - 1} once each with increasing steps")
    if report.final_episode != episodes:
        report.problems.append(f"the run ended at episode {report.final_episode}, not {episodes}")
    if any(n > 1 for n in report.lost_episodes):
        report.problems.append(f"a kill lost more than one episode: {report.lost_episodes}")
    return report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=40, help="kill/resume cycles")
    p.add_argument("--episodes", type=int, default=400, help="target episodes of the run")
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 512], help="network size (bigger: longer saves)")
    p.add_argument("--kill-after", type=float, nargs=2, default=[0.0, 2.0], metavar=("MIN", "MAX"), help="seconds between a process's first save and its kill")
    p.add_argument("--workdir", type=Path, default=None, help="folder of the run (default: a temporary one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    p.add_argument("--save-fraction", type=float, default=0.5, help="share of kills aimed at the middle of a save")
    args = p.parse_args()
    import tempfile

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="torture_"))
    train_args = ["--hidden", *map(str, args.hidden), "--learning-starts", "100", "--batch-size", "64", "--ckpt-every", "5"]
    t0 = time.perf_counter()
    r = torture(workdir, args.cycles, args.episodes, train_args, tuple(args.kill_after), args.seed, args.save_fraction)
    print(f"\n{r.cycles} cycles in {time.perf_counter() - t0:.0f} s: {r.kills} SIGKILLs, {r.kills_during_save} during a save, "
          f"{r.resumes} resumes")
    print(f"{r.pth_files} .pth files on disk, {len(r.corrupt_files)} corrupt; final episode {r.final_episode}/{args.episodes}; "
          f"csv each episode once: {r.csv_ok}")
    if r.lost_episodes:
        print(f"episodes lost per kill: max {max(r.lost_episodes)}, mean {sum(r.lost_episodes) / len(r.lost_episodes):.2f}")
    for problem in r.problems + r.corrupt_files:
        print("PROBLEM:", problem)
    print(f"run kept in {workdir}")
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
