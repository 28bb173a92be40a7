"""Exact resume: a run stopped by SIGTERM or killed by SIGKILL, then resumed, equals an uninterrupted run.

Also: SIGINT finishes the episode and saves; a second signal exits at once; a failing disk keeps the last
good checkpoint while training goes on.
"""

import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FAST, ROOT, TRAIN, cli_env, run_cli, start_cli

from robot6.run import checkpoint as ckpt
from robot6.run.logger import WALL_CLOCK_COLUMNS, read_csv_rows

EPISODES = 30
EXACT_KEYS = ("policy", "q1", "q2", "q1_target", "q2_target", "policy_opt", "q_opt", "alpha_opt", "log_alpha",
              "global_step", "episode", "best_reward", "rng", "replay")


def flatten(x, prefix=""):
    """(path, leaf) pairs of a nested checkpoint value."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from flatten(v, f"{prefix}/{k}")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from flatten(v, f"{prefix}/{i}")
    else:
        yield prefix, x


def assert_same_state(a: dict, b: dict) -> None:
    fa = dict(flatten({k: a[k] for k in EXACT_KEYS}))
    fb = dict(flatten({k: b[k] for k in EXACT_KEYS}))
    assert fa.keys() == fb.keys()
    for key, va in fa.items():
        vb = fb[key]
        same = torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb
        assert same, f"{key} differs"


def csv_without_wall_clock(folder: Path) -> list[dict]:
    (log_dir,) = [p for p in (folder / "runs").iterdir() if p.is_dir()]
    rows = read_csv_rows(log_dir / "training.csv")
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in rows]


def latest(folder: Path) -> dict:
    (run_dir,) = [p for p in (folder / "checkpoints").iterdir() if p.is_dir()]
    return ckpt.load_checkpoint(run_dir / "latest.pth")


def wait_for_checkpoint(folder: Path, min_episode: int, proc: subprocess.Popen, timeout: float = 60,
                        checkpoint_dir: str = "checkpoints") -> int:
    """Poll latest_checkpoint.json until it reports at least ``min_episode``; returns that episode."""
    pointer = folder / checkpoint_dir / ckpt.POINTER_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            episode = json.loads(pointer.read_text())["episode"]
        except (OSError, ValueError, KeyError):
            episode = -1
        if episode >= min_episode:
            return episode
        time.sleep(0.005)
    raise AssertionError("no checkpoint appeared")


# 100 updates per episode, the actor at every third: checkpoints fall at every phase of the policy delay.
SAMPLE_EFFICIENT = ("--her", "--utd", "2", "--updates-every", "4", "--policy-delay", "3")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Uninterrupted runs, one per option set, made on first use."""
    done: dict[tuple, Path] = {}

    def get(options: tuple) -> Path:
        if options not in done:
            folder = tmp_path_factory.mktemp("straight")
            result = run_cli("--episodes", str(EPISODES), *FAST, *options, cwd=folder)
            assert result.returncode == 0, result.stderr
            done[options] = folder
        return done[options]

    return get


ON_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize(
    "sig, options",
    [
        pytest.param(signal.SIGTERM, (), id="sigterm"),
        pytest.param(signal.SIGKILL, (), id="sigkill"),
        pytest.param(signal.SIGKILL, SAMPLE_EFFICIENT, id="sigkill-her-utd-updates-every-policy-delay"),
        pytest.param(signal.SIGKILL, ("--env", "Robot6Push-v0", "--eval-every", "300", "--eval-episodes", "2"),
                     id="sigkill-push-evaluating"),
        pytest.param(signal.SIGTERM, ("--env", "Robot6Push-v0", "--eval-every", "150", "--eval-episodes", "2"),
                     id="sigterm-push-evaluating"),
        pytest.param(signal.SIGKILL, ("--env", "Robot6PickAndPlace-v0", "--demos", "3", "--eval-every", "300",
                                      "--eval-episodes", "2"), id="sigkill-pick-and-place-demos-evaluating"),
        # Domain randomization: physics, latency and noise drawn from the env's generator (evaluated on nominal physics).
        pytest.param(signal.SIGKILL, ("--env", "Robot6Push-v0", "--randomize", "--eval-every", "300", "--eval-episodes", "2"),
                     id="sigkill-push-randomized-evaluating"),
        pytest.param(signal.SIGKILL, ("--urdf", str(ROOT / "tests" / "arms" / "arm5.urdf"), "--eval-every", "300",
                                      "--eval-episodes", "2"), id="sigkill-urdf-arm-evaluating"),
        pytest.param(signal.SIGKILL, ("--env", "Robot6PickAndPlace-v0", "--urdf", str(ROOT / "tests" / "arms" / "gripper5.urdf"),
                                      "--demos", "3", "--eval-every", "300", "--eval-episodes", "2"),
                     id="sigkill-pick-and-place-urdf-gripper-arm-demos-evaluating"),
        # torch.compile'd update: compiled again after the resume, the same code on the same state.
        pytest.param(signal.SIGKILL, ("--compile",), id="sigkill-compile", marks=pytest.mark.slow),
        # The GPU path: CUDA generator state, the replay buffer's device copy rebuilt on resume; the update as
        # one CUDA graph per kind (the default on CUDA), captured again after the resume, and the plain one.
        pytest.param(signal.SIGKILL, ("--device", "cuda", "--no-compile"), id="sigkill-cuda-plain", marks=ON_CUDA),
        pytest.param(signal.SIGKILL, ("--device", "cuda", "--replay-on-device", *SAMPLE_EFFICIENT),
                     id="sigkill-cuda-replay-on-device-her-utd", marks=ON_CUDA),
        pytest.param(signal.SIGKILL, ("--device", "cuda"), id="sigkill-cuda-graph", marks=ON_CUDA),
    ],
)
def test_interrupted_and_resumed_run_equals_uninterrupted_run(straight, tmp_path, sig, options):
    proc = start_cli("--episodes", str(EPISODES), *FAST, *options, cwd=tmp_path)
    wait_for_checkpoint(tmp_path, 3, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err  # 143: stopped before its end, after its save
        assert "resume with: python Train_Robot6.py --resume" in out
    else:
        assert proc.returncode == -signal.SIGKILL
    stopped_at = latest(tmp_path)["episode"]
    assert 3 <= stopped_at < EPISODES, "the signal came too late to test anything"
    result = run_cli("--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # The update the user was told about, the same after the resume (the choice persists in the checkpoint).
    on_cuda = "--device" in options or torch.cuda.is_available()  # --device auto picks CUDA where there is one
    graph = on_cuda and "--no-compile" not in options
    for printed in (out, result.stdout):
        assert ("replays as one CUDA graph" in printed) == graph, printed[:300]
    assert f"episode {stopped_at}," in result.stdout
    reference = straight(options)
    assert_same_state(latest(reference), latest(tmp_path))
    assert csv_without_wall_clock(reference) == csv_without_wall_clock(tmp_path)
    if "--eval-every" in options:  # the evaluations too: the same rows, the same evaluator state
        assert eval_rows(reference) == eval_rows(tmp_path) and len(eval_rows(reference)) >= 3
        assert latest(reference)["evaluation"] == latest(tmp_path)["evaluation"]


def eval_rows(folder: Path) -> list[dict]:
    (log_dir,) = [p for p in (folder / "runs").iterdir() if p.is_dir()]
    return read_csv_rows(log_dir / "eval.csv")


def test_sigint_finishes_the_episode_saves_and_says_how_to_resume(tmp_path):
    proc = start_cli("--episodes", "1000", *FAST, cwd=tmp_path)
    wait_for_checkpoint(tmp_path, 1, proc)
    second = run_cli("--resume", cwd=tmp_path)  # the same run, while the first process trains it
    assert second.returncode == 2 and f"is being trained by another process (pid {proc.pid})" in second.stderr
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # 128 + SIGINT: a wrapper retrying until 0 goes on
    state = latest(tmp_path)
    line = [ln for ln in out.splitlines() if ln.startswith("Saved ")][-1]
    (run_dir,) = [p for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()]
    assert line.endswith(f"at episode {state['episode']}; resume with: python Train_Robot6.py --resume "
                         f"--resume-ckpt {Path('checkpoints') / run_dir.name / 'latest.pth'}")
    assert state["global_step"] == 50 * state["episode"]  # stopped at an episode end, nothing half-done
    assert len(read_csv_rows(next((tmp_path / "runs").iterdir()) / "training.csv")) == state["episode"]


def test_the_printed_resume_command_resumes_this_run_and_exit_codes_tell_the_truth(tmp_path):
    """Custom folders, and a newer run beside it: the printed command carries --checkpoint-dir, --log-dir and
    --resume-ckpt, and pasted as printed it continues this run to its end, exiting 0; rerun, still 0."""
    import shlex

    folders = ("--checkpoint-dir", "data/ck", "--log-dir", "data/logs")
    proc = start_cli("--episodes", "40", *folders, *FAST, cwd=tmp_path)
    wait_for_checkpoint(tmp_path, 1, proc, checkpoint_dir="data/ck")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (run_dir,) = [p for p in (tmp_path / "data" / "ck").iterdir() if p.is_dir()]
    stopped_at = ckpt.load_checkpoint(run_dir / "latest.pth")["episode"]
    assert 1 <= stopped_at < 40
    # Another run saves into the same folders afterwards: a plain --resume would now pick that one.
    assert run_cli("--episodes", "1", *folders, *FAST, cwd=tmp_path).returncode == 0
    command = [ln for ln in out.splitlines() if ln.startswith("Saved ")][-1].split("resume with: ", 1)[1]
    assert command == shlex.join(["python", "Train_Robot6.py", "--resume", *folders, "--resume-ckpt",
                                  str(Path("data/ck") / run_dir.name / "latest.pth")])
    argv = shlex.split(command)
    assert argv[:2] == ["python", "Train_Robot6.py"]
    resumed = run_cli(*argv[2:], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"episode {stopped_at}, global_step {50 * stopped_at}" in resumed.stdout
    assert "continuing in a new run" not in resumed.stdout  # in place: this run's own folders
    assert ckpt.load_checkpoint(run_dir / "latest.pth")["episode"] == 40
    rows = read_csv_rows(tmp_path / "data" / "logs" / run_dir.name / "training.csv")
    assert [int(r["episode"]) for r in rows] == list(range(40))
    again = run_cli(*argv[2:], cwd=tmp_path)  # the retry loop's next turn: complete, nothing to do
    assert again.returncode == 0 and "is complete: 40/40 episodes" in again.stdout


def test_second_signal_exits_at_once_leaving_a_valid_checkpoint(tmp_path):
    # Large networks make each episode slow once updates run (from step 256), so that the second signal
    # lands mid-episode.
    proc = start_cli("--episodes", "1000", "--hidden", "512", "512", "--learning-starts", "0", "--batch-size", "256", cwd=tmp_path)
    wait_for_checkpoint(tmp_path, 6, proc)
    time.sleep(0.1)  # into the next episode (each takes about a second here)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGINT
    assert "Second signal" in err
    assert latest(tmp_path)["episode"] >= 6  # still loadable


def _limit_file_size() -> None:
    # Any file write beyond 64 KiB fails with EFBIG ("File too large"), as on a full disk or quota.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_failed_saves_keep_the_last_checkpoint_and_training_goes_on(tmp_path):
    assert run_cli("--episodes", "2", *FAST, cwd=tmp_path).returncode == 0
    before = latest(tmp_path)
    # Checkpoints of 32x32 networks are > 64 KiB, logs and replay segments stay below.
    proc = subprocess.run(
        [sys.executable, TRAIN, "--resume", "--episodes", "5"], cwd=tmp_path, env=cli_env(),
        capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("WARNING: could not save the checkpoint") == 3
    assert "File too large" in proc.stderr
    assert latest(tmp_path)["episode"] == before["episode"] == 2
    rows = read_csv_rows(next((tmp_path / "runs").iterdir()) / "training.csv")
    assert [int(r["episode"]) for r in rows] == [0, 1, 2, 3, 4]  # training went on
    assert not list((tmp_path / "checkpoints").rglob("*.tmp"))


@pytest.mark.parametrize("field, saved_with, flag, given", [
    ("her_relabel", "store", "--her-relabel", "sample"),
    ("policy_delay", 1, "--policy-delay", 3),
])
def test_a_checkpoint_without_a_field_resumes_as_it_was_trained(tmp_path, capsys, field, saved_with, flag, given):
    """A checkpoint whose config lacks her_relabel stored relabelled copies, one that lacks policy_delay trained
    the actor at every update: each resumes so, not with the current default, unless the flag is given."""
    from robot6.run.config import Config
    from robot6.run.resume import merge_resume_config

    saved = {**Config().to_dict(), "utd": 2}
    del saved[field]
    path = tmp_path / "latest.pth"
    resumed = merge_resume_config(Config(), set(), saved, path)
    assert (getattr(resumed, field), resumed.utd) == (saved_with, 2)
    assert "[RESUME]" not in capsys.readouterr().out
    assert getattr(merge_resume_config(Config(**{field: given}), {field}, saved, path), field) == given
    assert f"{flag} {given} differs from the checkpoint's {saved_with}: using {given}" in capsys.readouterr().out
