"""Shared helpers: the CLI run as a real subprocess, and a small fast configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import ROOT, child_env

TRAIN = str(ROOT / "Train_Robot6.py")
# Tiny networks and batches: the tests check behaviour, not learning.
FAST = ["--hidden", "32", "32", "--batch-size", "32", "--learning-starts", "60", "--buffer-size", "5000"]


def cli_env() -> dict[str, str]:
    env = child_env(OMP_NUM_THREADS="1")  # the repository first on PYTHONPATH, the caller's after it
    env.pop("DISPLAY", None)
    return env


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python Train_Robot6.py ARGS`` in ``cwd``; returns the completed process (text output)."""
    return subprocess.run(
        [sys.executable, TRAIN, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout
    )


def start_cli(*args: str, cwd: Path) -> subprocess.Popen:
    """Start ``Train_Robot6.py`` without waiting (for signal tests)."""
    return subprocess.Popen(
        [sys.executable, TRAIN, *args], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="session")
def short_run(tmp_path_factory) -> Path:
    """A finished 4-episode Robot6Reach-v0 run (checkpoints every 2 episodes) in its own folder, made once
    for the whole test run and shared: copy it before changing anything in it."""
    folder = tmp_path_factory.mktemp("short_run")
    result = run_cli("--episodes", "4", "--ckpt-every", "2", *FAST, cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder


def evaluate_and_export(checkpoint: Path, tmp_path: Path, capsys) -> dict:
    """Run ``robot6.evaluate`` on ``checkpoint`` with a one-episode GIF and ``robot6.export`` to TorchScript,
    checking both worked; returns the exported file's metadata (its ``.json``)."""
    from robot6 import evaluate, export  # torch and PyBullet: only for the tests that use them

    video = tmp_path / "episode.gif"
    assert evaluate.main([str(checkpoint), "--episodes", "1", "--video", str(video), "--video-episodes", "1"]) == 0
    assert "success rate" in capsys.readouterr().out and video.stat().st_size > 0
    out = tmp_path / "policy.pt"
    assert export.main([str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 0
    return json.loads(Path(f"{out}.json").read_text())
