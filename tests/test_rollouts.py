"""Evaluation during training (robot6/run/rollouts.py): its own env and seeds, logged, choosing best.pth."""

import math
from pathlib import Path

import torch
from conftest import FAST, run_cli
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

from robot6.run import checkpoint as ckpt
from robot6.run.logger import WALL_CLOCK_COLUMNS, read_csv_rows


def run_folder(folder: Path, kind: str) -> Path:
    (path,) = [p for p in (folder / kind).iterdir() if p.is_dir()]
    return path


def test_training_is_the_same_with_and_without_evaluation_and_best_follows_it(tmp_path, capsys):
    for name, every in (("with", "100"), ("without", "0")):
        (tmp_path / name).mkdir()
        result = run_cli("--episodes", "8", "--eval-every", every, "--eval-episodes", "3", *FAST, cwd=tmp_path / name)
        assert result.returncode == 0, result.stderr[-2000:]
    runs = {name: run_folder(tmp_path / name, "runs") for name in ("with", "without")}
    rows = {n: [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in read_csv_rows(d / "training.csv")]
            for n, d in runs.items()}
    assert rows["with"] == rows["without"]
    states = {n: ckpt.load_checkpoint(run_folder(tmp_path / n, "checkpoints") / "latest.pth") for n in runs}
    for key in ("policy", "q1", "q2"):
        for k, v in states["with"][key].items():
            assert torch.equal(v, states["without"][key][k]), f"{key}.{k}"
    assert states["with"]["rng"]["torch"].equal(states["without"]["rng"]["torch"])

    evals = read_csv_rows(runs["with"] / "eval.csv")
    assert [int(r["global_step"]) for r in evals] == [100, 200, 300, 400]  # the first episode end past each 100
    assert all(int(r["episodes"]) == 3 and 0 <= float(r["success_rate"]) <= 1 for r in evals)
    assert not (runs["without"] / "eval.csv").exists()
    acc = EventAccumulator(str(runs["with"]), size_guidance={SCALARS: 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/return")] == [100, 200, 300, 400]
    assert {"eval/success_rate", "eval/final_distance"} <= set(acc.Tags()["scalars"])

    best = ckpt.load_checkpoint(run_folder(tmp_path / "with", "checkpoints") / "best.pth")
    assert best["meta"]["best_by"] == "evaluation return"
    returns = [float(r["return_mean"]) for r in evals]
    assert best["global_step"] == int(evals[returns.index(max(returns))]["global_step"])  # the best evaluation's
    assert math.isclose(best["evaluation"]["best"], max(returns), abs_tol=1e-5)
    plain = ckpt.load_checkpoint(run_folder(tmp_path / "without", "checkpoints") / "best.pth")
    assert plain["meta"]["best_by"] == "episode return"
    # robot6.show says which rule made a best.pth, and what the last evaluation gave.
    from robot6 import show

    assert show.main([str(run_folder(tmp_path / "with", "checkpoints"))]) == 0
    assert "best.pth (by eval)" in capsys.readouterr().out
    assert show.main([str(run_folder(tmp_path / "with", "checkpoints") / "best.pth")]) == 0
    shown = capsys.readouterr().out
    assert "best.pth chosen by: evaluation return" in shown and "success" in shown
    assert f"last evaluation: step {best['global_step']}," in shown  # the evaluation that made it the best


def test_an_env_without_success_logs_return_only(tmp_path):
    result = run_cli("--env", "Pendulum-v1", "--episodes", "2", "--eval-every", "200", "--eval-episodes", "1", *FAST,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (row, second) = read_csv_rows(run_folder(tmp_path, "runs") / "eval.csv")
    assert row["success_rate"] == "" and row["final_distance"] == "" and float(row["return_mean"]) < 0
