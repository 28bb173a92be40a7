"""The installable package: pyproject.toml pins what the requirements files pin, its console scripts are the
documented commands, and a wheel built from the checkout, installed elsewhere, trains, evaluates and makes its
envs from an empty folder."""

import importlib
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT

COMMANDS = ("train", "evaluate", "compare", "show", "export", "sweep", "robustness", "deploy")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(name: str) -> set[str]:
    return {line.strip() for line in (ROOT / name).read_text().splitlines() if line.strip() and not line.startswith("#")}


def test_pyproject_pins_what_the_requirements_files_pin():
    extras = PROJECT["optional-dependencies"]
    assert set(PROJECT["dependencies"]) | set(extras["test"]) == requirements("requirements.txt")
    assert set(extras["bench"]) == requirements("requirements-bench.txt")
    assert set(extras["wandb"]) == requirements("requirements-wandb.txt")
    assert "torch==2.13.0" in PROJECT["dependencies"] and "pybullet==3.2.7" in PROJECT["dependencies"]


def test_the_console_scripts_are_the_commands_and_each_has_a_main():
    assert PROJECT["scripts"] == {f"robot6-{c}": f"robot6.{c}:main" for c in COMMANDS}
    for c in COMMANDS:
        assert callable(importlib.import_module(f"robot6.{c}").main)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package as ``pip install .`` puts it: a wheel built from a copy of the checkout, installed into a
    folder of its own (its console scripts in ``bin/``, run by this interpreter)."""
    tmp = tmp_path_factory.mktemp("package")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "robot6", source / "robot6", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(source)], check=True,
                   capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("robot6-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)], check=True, capture_output=True,
                   timeout=300)
    return tmp / "site"


def run_installed(installed: Path, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``argv`` with the installed package first on the path and no trace of the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "PYTHONPATH")}
    env.update(PYTHONPATH=str(installed), OMP_NUM_THREADS="1")
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_wheel_holds_one_package_with_its_presets_and_the_commands(installed):
    assert (installed / "robot6" / "presets.toml").is_file()
    assert not (installed / "sac").exists() and not (installed / "envs").exists()
    assert {f"robot6-{c}" for c in COMMANDS} <= {p.name for p in (installed / "bin").iterdir()}


def test_the_installed_commands_train_evaluate_and_make_envs_in_an_empty_folder(installed, tmp_path):
    trained = run_installed(installed, [str(installed / "bin" / "robot6-train"), "--episodes", "3"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (tmp_path / "checkpoints").is_dir() and (tmp_path / "runs").is_dir()
    assert "finished: 3 episodes, 150 env steps" in trained.stdout
    evaluate = next(ln for ln in trained.stdout.splitlines() if ln.strip().startswith("evaluate it:")).split(":", 1)[1]
    argv = shlex.split(evaluate)
    assert argv[0] == "robot6-evaluate" and argv[1].endswith("best.pth") and (tmp_path / argv[1]).is_file()
    evaluated = run_installed(installed, [str(installed / "bin" / "robot6-evaluate"), argv[1], "--episodes", "3"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "over 3 episodes" in evaluated.stdout
    code = ("import gymnasium as gym, robot6; env = gym.make('robot6:Robot6PickAndPlace-v0'); env.reset(seed=0); "
            "print(robot6.__file__)")
    made = run_installed(installed, [sys.executable, "-c", code], tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    assert Path(made.stdout.strip().splitlines()[-1]).is_relative_to(installed)
