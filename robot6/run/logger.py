"""Run logs: TensorBoard events and ``training.csv`` in ``runs/<run>/`` (and optionally Weights & Biases),
continued seamlessly on resume.

On resume in place, rows of ``training.csv`` past the checkpoint's episode are dropped (they belong to
progress the checkpoint does not hold) and TensorBoard's writer is opened with a ``purge_step`` so that events
logged after the checkpoint vanish from the curve. A forked run starts with a copy of its parent's history up
to the checkpoint, so its curves are complete too. A W&B run's id is part of the logger's checkpoint state,
so a resumed run logs into the same W&B run (``resume="allow"``); its x axis is the logged ``global_step``,
so points logged after the checkpoint by a killed process do not block the continuation.
"""

from __future__ import annotations

import csv
import io
import os
import random
import secrets
import time
from pathlib import Path
from typing import Any

from robot6.errors import ConfigError
from robot6.run.fileio import atomic_write_bytes

CSV_NAME = "training.csv"
CSV_COLUMNS = ("episode", "global_step", "episode_reward", "episode_length", "success", "final_distance", "sps", "elapsed_s")
EVAL_CSV_NAME = "eval.csv"  # one row per evaluation, after the episode it follows
EVAL_CSV_COLUMNS = ("episode", "global_step", "return_mean", "return_std", "success_rate", "final_distance", "length_mean", "episodes")
# Columns that measure the wall clock; they differ between two otherwise identical runs.
WALL_CLOCK_COLUMNS = ("sps", "elapsed_s")


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Complete rows of a ``training.csv`` (a torn last line from a crash is skipped)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # written partially when the process died
    rows = []
    for row in csv.DictReader(lines):
        if None in row or any(v is None for v in row.values()):
            continue
        try:
            int(row["episode"])
        except (KeyError, TypeError, ValueError):
            continue
        rows.append(row)
    return rows


def _csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...] = CSV_COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class RunLogger:
    """TensorBoard + CSV writer of one run folder.

    ``start_episode``/``start_step``: where the run continues (0/0 for a new run). ``history_from``: the
    folder of the run this one forks, whose rows and scalars up to the start are copied. ``state``: the
    logger state of the checkpoint resumed. ``wandb_project``: also log to W&B (``run_name`` and
    ``config`` describe the run there).
    """

    def __init__(
        self,
        run_dir: Path,
        start_episode: int = 0,
        start_step: int = 0,
        history_from: Path | None = None,
        state: dict[str, Any] | None = None,
        wandb_project: str | None = None,
        run_name: str | None = None,
        config: dict[str, Any] | None = None,
    ):
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when a run starts

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / CSV_NAME
        self._csv, self._csv_writer = self._continue_csv(CSV_NAME, CSV_COLUMNS, history_from, start_episode)
        self._eval_csv: Any = None  # eval.csv, opened at the first evaluation logged (or now, if it exists)
        if (Path(history_from) if history_from else self.run_dir).joinpath(EVAL_CSV_NAME).is_file():
            self._eval_csv, self._eval_writer = self._continue_csv(EVAL_CSV_NAME, EVAL_CSV_COLUMNS, history_from, start_episode)
        # Every scalar of the episode ending at start_step was logged at that step and is kept; the
        # purge removes what a killed process logged after its last checkpoint.
        purge = start_step + 1 if start_step > 0 and history_from is None else None
        self.tb = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge)
        if history_from is not None and start_step > 0:
            self._copy_scalars(Path(history_from), start_step)
        self.elapsed_s = float((state or {}).get("elapsed_s", 0.0))
        self._t0 = time.perf_counter()
        self.wandb_run_id: str | None = (state or {}).get("wandb_run_id")
        self._wandb = None
        if wandb_project is not None:
            self._start_wandb(wandb_project, run_name or self.run_dir.name, config or {})

    def _continue_csv(self, name: str, columns: tuple[str, ...], history_from: Path | None, start_episode: int):
        """Open ``name`` in the run folder for appending, holding the rows (of this run, or of the run it forks)
        of the episodes before ``start_episode`` only; returns the file and its writer."""
        path = self.run_dir / name
        source = Path(history_from) / name if history_from else path
        kept = [r for r in read_csv_rows(source) if int(r["episode"]) < start_episode]
        atomic_write_bytes(path, _csv_text(kept, columns).encode())
        f = open(path, "a", newline="")
        return f, csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")

    def _start_wandb(self, project: str, run_name: str, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError("--wandb needs the wandb package: pip install wandb (or the extra: pip install \".[wandb]\" in a checkout)") from None
        self.wandb_run_id = self.wandb_run_id or secrets.token_hex(4)  # not from `random`: the run's RNGs stay untouched
        python_rng = random.getstate()
        self._wandb = wandb.init(
            project=project, id=self.wandb_run_id, name=run_name, resume="allow", config=config,
            dir=str(self.run_dir), settings=wandb.Settings(console="off", silent=True),
        )
        random.setstate(python_rng)
        self._wandb.define_metric("global_step")
        self._wandb.define_metric("*", step_metric="global_step")

    def _copy_scalars(self, parent: Path, up_to_step: int) -> None:
        from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

        acc = EventAccumulator(str(parent), size_guidance={SCALARS: 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            for event in acc.Scalars(tag):
                if event.step <= up_to_step:
                    self.tb.add_scalar(tag, event.value, event.step, walltime=event.wall_time)

    @property
    def total_elapsed_s(self) -> float:
        """Seconds of training in this run, every process that trained it included."""
        return self.elapsed_s + time.perf_counter() - self._t0

    def log_episode(self, row: dict[str, Any], scalars: dict[str, float], step: int) -> None:
        """Append one ``training.csv`` row and write ``scalars`` to TensorBoard (and W&B) at ``step``."""
        self._log(self._csv_writer, dict(row, elapsed_s=round(self.total_elapsed_s, 3)), scalars, step)

    def log_eval(self, row: dict[str, Any], scalars: dict[str, float], step: int) -> None:
        """Append one ``eval.csv`` row and write ``scalars`` to TensorBoard (and W&B) at ``step``."""
        if self._eval_csv is None:
            self._eval_csv, self._eval_writer = self._continue_csv(EVAL_CSV_NAME, EVAL_CSV_COLUMNS, None, 0)
        self._log(self._eval_writer, row, scalars, step)

    def _log(self, writer: csv.DictWriter, row: dict[str, Any], scalars: dict[str, float], step: int) -> None:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        for tag, value in scalars.items():
            self.tb.add_scalar(tag, value, step)
        if self._wandb is not None:
            self._wandb.log({**scalars, "global_step": step})

    def flush(self) -> None:
        """Make everything logged so far durable (called before each checkpoint, so logs never lag it)."""
        self.hand_over()
        self.sync()

    def hand_over(self) -> None:
        """Pass the rows logged so far to the operating system (cheap); ``sync`` then makes them durable."""
        self._csv.flush()
        if self._eval_csv is not None:
            self._eval_csv.flush()

    def sync(self) -> None:
        """Make durable what ``hand_over`` passed on: fsync ``training.csv``, flush TensorBoard's event file.
        Safe to call from another thread (the checkpoint writer) while the training loop goes on logging."""
        os.fsync(self._csv.fileno())
        if self._eval_csv is not None:
            os.fsync(self._eval_csv.fileno())
        self.tb.flush()

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to continue these logs."""
        return {"elapsed_s": self.total_elapsed_s, "wandb_run_id": self.wandb_run_id}

    def close(self) -> None:
        self.flush()
        self._csv.close()
        if self._eval_csv is not None:
            self._eval_csv.close()
        self.tb.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
