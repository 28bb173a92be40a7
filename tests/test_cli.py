"""Train_Robot6.py as a user runs it: real subprocesses, real files, real TensorBoard event files."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST, ROOT, cli_env, run_cli
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

from robot6.run import checkpoint as ckpt
from robot6.run.logger import read_csv_rows


def runs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir())


def episodes_in_csv(run_dir: Path) -> list[int]:
    return [int(r["episode"]) for r in read_csv_rows(run_dir / "training.csv")]


def tb_steps(run_dir: Path, tag: str = "episode/reward") -> list[int]:
    acc = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


@pytest.fixture
def trained(short_run, tmp_path) -> Path:
    shutil.copytree(short_run, tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_first_run_writes_the_documented_files(trained):
    (run_dir,) = runs(trained / "checkpoints")
    assert run_dir.name.startswith("sac_") and len(run_dir.name) == len("sac_YYYYMMDD-HHMMSS")
    assert {"latest.pth", "best.pth", "ckpt_ep_2.pth", "ckpt_ep_4.pth", "replay"} <= {p.name for p in run_dir.iterdir()}
    log_dir = trained / "runs" / run_dir.name
    assert (log_dir / "config.json").is_file() and list(log_dir.glob("events.out.tfevents.*"))
    header = (log_dir / "training.csv").read_text().splitlines()[0]
    assert header.startswith("episode,global_step,episode_reward")
    state = ckpt.load_checkpoint(run_dir / "latest.pth")
    assert (state["episode"], state["global_step"]) == (4, 200)
    assert set(ckpt.REQUIRED_KEYS) <= set(state)
    assert json.loads((trained / "checkpoints" / ckpt.POINTER_FILE).read_text())["episode"] == 4


def test_training_metrics_reach_tensorboard_once_learning_starts(trained):
    """Each episode with updates logs the means of its updates' metrics (train/*), the actor's included."""
    (run_dir,) = runs(trained / "runs")
    acc = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})
    acc.Reload()
    for tag in ("critic_loss", "q", "alpha", "actor_loss", "alpha_loss", "entropy"):
        events = acc.Scalars(f"train/{tag}")
        # 50-step episodes, learning from step 60: the episodes ending at steps 100, 150 and 200 updated.
        assert [e.step for e in events] == [100, 150, 200], tag
        assert all(math.isfinite(e.value) for e in events), tag
    assert all(e.value > 0 for e in acc.Scalars("train/alpha") + acc.Scalars("train/critic_loss"))


def test_resume_continues_in_the_same_run_dir(trained):
    result = run_cli("--resume", "--episodes", "7", cwd=trained)
    assert result.returncode == 0, result.stderr
    (run_dir,) = runs(trained / "checkpoints")
    assert f"[RESUME] Loaded {Path('checkpoints') / run_dir.name / 'latest.pth'}: episode 4, global_step 200" in result.stdout
    assert len(runs(trained / "runs")) == 1
    log_dir = trained / "runs" / run_dir.name
    assert episodes_in_csv(log_dir) == list(range(7))
    assert tb_steps(log_dir) == [50 * (i + 1) for i in range(7)]  # one unbroken curve
    assert ckpt.load_checkpoint(run_dir / "latest.pth")["episode"] == 7


def test_resume_without_checkpoint_starts_from_scratch(tmp_path):
    result = run_cli("--resume", "--episodes", "1", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[RESUME] Checkpoint not found, starting from scratch" in result.stdout
    assert len(runs(tmp_path / "checkpoints")) == 1


def test_resuming_an_older_checkpoint_forks_a_new_run(trained):
    (parent,) = runs(trained / "checkpoints")
    result = run_cli("--resume", "--resume-ckpt", str(parent / "ckpt_ep_2.pth"), "--episodes", "5", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert "continuing in a new run" in result.stdout
    child = next(r for r in runs(trained / "checkpoints") if r != parent)
    info = json.loads((trained / "runs" / child.name / "config.json").read_text())
    assert info["resumed_from"] == str(parent / "ckpt_ep_2.pth")
    assert episodes_in_csv(trained / "runs" / child.name) == [0, 1, 2, 3, 4]
    assert tb_steps(trained / "runs" / child.name) == [50, 100, 150, 200, 250]
    assert episodes_in_csv(trained / "runs" / parent.name) == [0, 1, 2, 3]  # history kept
    assert ckpt.load_checkpoint(child / "latest.pth")["replay"]["count"] == 250  # each step once: HER relabels when sampling


def test_resume_ckpt_best_is_accepted(trained):
    (run_dir,) = runs(trained / "checkpoints")
    best = ckpt.load_checkpoint(run_dir / "best.pth")
    result = run_cli("--resume", "--resume-ckpt", str(run_dir / "best.pth"), "--episodes", "6", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert f"episode {best['episode']}, global_step {best['global_step']}" in result.stdout


def test_corrupt_latest_falls_back_to_the_next_valid_checkpoint(trained):
    (run_dir,) = runs(trained / "checkpoints")
    (run_dir / "latest.pth").write_bytes(b"\0" * 100)
    result = run_cli("--resume", "--episodes", "5", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert "Skipping" in result.stdout and "latest.pth" in result.stdout
    assert "ckpt_ep_4.pth: episode 4, global_step 200" in result.stdout
    assert episodes_in_csv(trained / "runs" / run_dir.name) == [0, 1, 2, 3, 4]


def test_changed_hyperparameter_is_reported_and_used(trained):
    result = run_cli("--resume", "--episodes", "5", "--lr", "0.0005", cwd=trained)
    assert result.returncode == 0, result.stderr
    assert "--lr 0.0005 differs from the checkpoint's 0.001: using 0.0005" in result.stdout
    (run_dir,) = runs(trained / "checkpoints")
    state = ckpt.load_checkpoint(run_dir / "latest.pth")
    assert state["meta"]["config"]["lr"] == 0.0005 and state["meta"]["config"]["hidden"] == [32, 32]


def write_bad(folder: Path) -> str:
    (folder / "bad.pth").write_bytes(b"not a checkpoint at all")
    return "bad.pth"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "NoSuchEnv-v0"], "--env NoSuchEnv-v0: cannot make this environment"),
        (["--env", "CartPole-v1"], "SAC here needs flat Box observation and action spaces"),
        (["--resume", "--resume-ckpt", "missing.pth"], "missing.pth: no such checkpoint file"),
        (["--resume", "--resume-ckpt", "BAD"], "bad.pth: unreadable"),
        (["--resume", "--env", "Pendulum-v1"], "checkpoint env id is 'Robot6Reach-v0' but --env is 'Pendulum-v1'"),
        (["--resume", "--episodes", "9", "--hidden", "64"], "--hidden 64 differs from the checkpoint's 32 32"),
        (["--resume-ckpt", "x.pth"], "--resume-ckpt needs --resume"),
        (["--lr", "-1"], "--lr must be a positive number"),
        (["--episodes", "0"], "--episodes must be a positive integer"),
        (["--episodes", "5", "--total-steps", "100"], "give only one"),
        (["--env", "Pendulum-v1", "--her"], "--her needs a goal env"),
        (["--utd", "0"], "--utd must be a positive integer"),
        (["--policy-delay", "0"], "--policy-delay must be a positive integer"),
        (["--her-relabel", "later"], "--her-relabel must be sample or store"),
        (["--demos", "5"], "--demos needs an env with a scripted controller"),
        (["--demos", "-1"], "--demos must be >= 0"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(trained, args, message):
    args = [write_bad(trained) if a == "BAD" else a for a in args]
    result = run_cli(*args, cwd=trained)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_incompatible_dims_name_both_values(trained):
    (run_dir,) = runs(trained / "checkpoints")
    state = ckpt.load_checkpoint(run_dir / "latest.pth")
    state["meta"]["obs_dim"] = 17
    ckpt.save_checkpoint(state, trained / "odd.pth")
    result = run_cli("--resume", "--resume-ckpt", "odd.pth", "--episodes", "9", cwd=trained)
    assert result.returncode == 2
    assert "obs_dim is 17 but the current run has 18" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device exists")
def test_cuda_without_gpu_is_a_clear_error(tmp_path):
    result = run_cli("--device", "cuda", "--episodes", "1", cwd=tmp_path)
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr


def test_compile_without_a_cxx_compiler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))  # what torch.compile would build with
    result = run_cli("--compile", "--device", "cpu", "--episodes", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "--compile on a CPU needs a C++ compiler" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "checkpoints").exists()  # refused before anything was created


def test_compile_without_python_headers_is_a_clear_error(tmp_path, monkeypatch):
    """--compile on a CPU builds a Python extension (torch.compile's C++ wrapper): without Python.h it is
    refused up front, with what to install."""
    import sysconfig

    from robot6.errors import ConfigError
    from robot6.run.loop import check_compile

    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"include": str(tmp_path)})  # a folder without Python.h
    with pytest.raises(ConfigError, match="needs the Python headers"):
        check_compile(torch.device("cpu"))
    check_compile(torch.device("cuda"))  # a CUDA graph there: nothing to build, nothing to check


def test_replay_on_device_with_sampling_time_her_trains_and_resumes(tmp_path):
    # The device is the CPU here (no GPU); the mirror and the relabelling written into it are the GPU's path.
    result = run_cli("--replay-on-device", "--episodes", "3", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_cli("--resume", "--episodes", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (log_dir,) = runs(tmp_path / "runs")
    assert [int(r["global_step"]) for r in read_csv_rows(log_dir / "training.csv")] == [50, 100, 150, 200]
    config = json.loads((log_dir / "config.json").read_text())
    assert config["replay_on_device"] is True and config["her_relabel"] == "sample"


def test_pendulum_trains_and_resumes(tmp_path):
    result = run_cli("--env", "Pendulum-v1", "--episodes", "2", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_cli("--resume", "--episodes", "3", cwd=tmp_path)  # the env comes from the checkpoint
    assert result.returncode == 0, result.stderr
    (log_dir,) = runs(tmp_path / "runs")
    rows = read_csv_rows(log_dir / "training.csv")
    assert [int(r["global_step"]) for r in rows] == [200, 400, 600]
    assert rows[0]["success"] == ""


def test_step_cadence_total_steps_and_keep_last(tmp_path):
    result = run_cli("--total-steps", "400", "--save-every-steps", "120", "--keep-last", "2", "--ckpt-every", "7", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = runs(tmp_path / "checkpoints")
    state = ckpt.load_checkpoint(run_dir / "latest.pth")
    assert (state["episode"], state["global_step"]) == (8, 400)
    # ckpt_step_150/250/400 (first episode ends past 120/240/360) and ckpt_ep_7 were written; 2 are kept.
    periodic = sorted(p.name for p in run_dir.glob("ckpt_*.pth"))
    assert periodic == ["ckpt_ep_7.pth", "ckpt_step_400.pth"]
    assert {"latest.pth", "best.pth"} <= {p.name for p in run_dir.iterdir()}
    result = run_cli("--resume", "--total-steps", "500", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ckpt.load_checkpoint(run_dir / "latest.pth")["global_step"] == 500


def test_help_explains_every_flag():
    """Every Config field is a flag whose help says what it does (and its default), without benchmark figures."""
    import dataclasses
    import re
    import subprocess
    import sys

    from robot6.run.config import Config, flag_of
    from robot6.run.presets import PRESET_FIELDS

    out = subprocess.run([sys.executable, str(ROOT / "Train_Robot6.py"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())  # argparse wraps the lines
    defaults = Config()
    for f in dataclasses.fields(Config):
        flag = flag_of(f.name)
        assert re.search(rf"(^|[ \[]){re.escape(flag)}\b", out.stdout), f"{flag} missing from --help"
        help_text = f.metadata["help"]
        assert len(help_text) > 20 and help_text.split("(")[0].strip() in text, flag
        assert not re.search(r"\d+(\.\d+)?x\b|steps/s|measured", help_text), f"{flag}: figures in its help"
        default = getattr(defaults, f.name)
        if default is not None and not isinstance(default, bool):
            shown = " ".join(map(str, default)) if isinstance(default, list) else str(default)
            if f.name in PRESET_FIELDS:  # Config's defaults are Robot6Reach-v0's preset
                assert f"(default: the env's preset in robot6/presets.toml; Robot6Reach-v0: {shown})" in text, flag
            else:
                assert f"(default: {shown})" in text, flag


def tree_state(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``folder``: (size, mtime in ns, sha256)."""
    import hashlib

    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("extra", [(), ("--episodes", "4"), ("--episodes", "3")], ids=["as-saved", "same-length", "shorter"])
def test_resuming_a_complete_run_changes_nothing_and_exits_0(trained, extra):
    """A requeued job runs its command again after the run ended: one line, exit 0, not one file touched."""
    before = tree_state(trained)
    result = run_cli("--resume", *extra, cwd=trained)
    assert result.returncode == 0, result.stderr
    (run_dir,) = runs(trained / "checkpoints")
    asked = extra[1] if extra else "4"
    assert result.stdout.strip().splitlines()[-1] == (
        f"run {run_dir.name} is complete: 4/{asked} episodes; pass --episodes N to train further")
    assert tree_state(trained) == before


def test_resume_falls_back_to_the_newest_step_checkpoint(tmp_path):
    """With latest.pth and best.pth unreadable, the ckpt_step_* files are candidates too, the newest first."""
    result = run_cli("--episodes", "5", "--save-every-steps", "100", "--ckpt-every", "1000", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = runs(tmp_path / "checkpoints")
    assert sorted(p.name for p in run_dir.glob("ckpt_*.pth")) == ["ckpt_step_100.pth", "ckpt_step_200.pth"]
    for name in ("latest.pth", "best.pth"):
        (run_dir / name).write_bytes(b"\0" * 64)
    result = run_cli("--resume", "--episodes", "6", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ckpt_step_200.pth: episode 4, global_step 200" in result.stdout, result.stdout
    assert runs(tmp_path / "checkpoints") == [run_dir]  # in place: the newest state there is
    assert episodes_in_csv(tmp_path / "runs" / run_dir.name) == list(range(6))
    assert ckpt.load_checkpoint(run_dir / "latest.pth")["global_step"] == 300


def test_a_finished_run_ends_with_where_its_files_are_and_what_to_run_next(tmp_path):
    """The summary: episodes, steps and wall time, the best evaluation (as best.pth chose it), the two
    checkpoints, and commands that work when pasted (evaluate best.pth; TensorBoard on this run's logs)."""
    import shlex

    result = run_cli("--episodes", "4", "--eval-every", "100", "--eval-episodes", "2", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = runs(tmp_path / "checkpoints")
    lines = result.stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"Run {run_dir.name} finished: 4 episodes, 200 env steps, "))
    summary = dict(ln.strip().split(":", 1) for ln in lines[start + 1:])
    evals = read_csv_rows(tmp_path / "runs" / run_dir.name / "eval.csv")
    best = max(evals, key=lambda r: float(r["return_mean"]))
    assert summary["best evaluation"].strip() == (f"{float(best['success_rate']):.0%} success, mean return "
                                                  f"{float(best['return_mean']):.2f} (2 episodes at step {best['global_step']})")
    assert summary["latest"].strip() == str(Path("checkpoints") / run_dir.name / "latest.pth")
    assert summary["best"].strip() == str(Path("checkpoints") / run_dir.name / "best.pth")
    assert summary["curves"].strip() == f"tensorboard --logdir {Path('runs') / run_dir.name}"
    evaluate = shlex.split(summary["evaluate it"])
    assert evaluate[:3] == ["python", "-m", "robot6.evaluate"]
    evaluated = subprocess.run([sys.executable, *evaluate[1:-1], "2"], cwd=tmp_path, env=cli_env(), capture_output=True,
                               text=True, timeout=120)
    assert evaluated.returncode == 0 and "over 2 episodes" in evaluated.stdout, evaluated.stderr


def test_the_progress_bar_prints_steps_as_integers(tmp_path):
    result = run_cli("--total-steps", "10000", "--learning-starts", "20000", "--buffer-size", "20000", "--eval-every", "0",
                     "--ckpt-every", "1000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "step=10000" in result.stderr and "e+" not in result.stderr.replace("\r", "\n").splitlines()[-1]
