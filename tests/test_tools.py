"""The tools around a run: evaluate (+ video), compare, show, export, and wandb continuity."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST, ROOT, cli_env, run_cli

from robot6 import compare, evaluate, export, show
from robot6.run.logger import read_csv_rows


@pytest.fixture
def run(short_run) -> Path:
    """The shared short Robot6Reach-v0 run (checkpoints in run/checkpoints, logs in run/runs); read only."""
    return short_run


def ckpt_dir(run: Path) -> Path:
    return next(p for p in (run / "checkpoints").iterdir() if p.is_dir())


def python_m(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_evaluate_prints_metrics_and_records_a_video_headless(run, tmp_path, suffix):
    import imageio.v2 as imageio

    video = tmp_path / f"reach{suffix}"
    result = python_m("robot6.evaluate", str(ckpt_dir(run) / "best.pth"), "--episodes", "3", "--video", str(video), "--video-episodes", "1", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "success rate" in result.stdout and "final distance" in result.stdout and "+-" in result.stdout
    frames = imageio.mimread(video) if suffix == ".gif" else [f for f in imageio.get_reader(video)]  # no len(): nframes is inf
    assert len(frames) == 51  # the reset frame and 50 steps of one episode
    assert frames[0].shape[:2] == (360, 480)
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 0.5  # the arm moved


def test_evaluate_without_display_and_bad_input(run, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert evaluate.main([str(ckpt_dir(run) / "latest.pth"), "--gui"]) == 2
    assert "--gui needs a display" in capsys.readouterr().err
    assert evaluate.main([str(ckpt_dir(run) / "latest.pth"), "--video", "x.avi"]) == 2
    assert "must end in .mp4 or .gif" in capsys.readouterr().err
    assert evaluate.main([str(ckpt_dir(run) / "latest.pth"), "--video", "/no/such/folder/x.gif"]) == 2
    assert "the folder /no/such/folder does not exist" in capsys.readouterr().err  # said before the episodes run
    (tmp_path / "taken.gif").mkdir()  # a folder where the video should go
    assert evaluate.main([str(ckpt_dir(run) / "latest.pth"), "--video", str(tmp_path / "taken.gif")]) == 2
    assert "cannot write there (Is a directory)" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed: imageio would pick a TIFF writer
    assert evaluate.main([str(ckpt_dir(run) / "latest.pth"), "--video", "x.mp4"]) == 2
    assert "writing .mp4 needs the imageio-ffmpeg package" in capsys.readouterr().err
    assert evaluate.main(["missing.pth"]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err


def test_evaluate_works_on_other_envs(tmp_path, capsys):
    assert run_cli("--env", "Pendulum-v1", "--episodes", "1", *FAST, cwd=tmp_path).returncode == 0
    pth = next((tmp_path / "checkpoints").glob("*/latest.pth"))
    assert evaluate.main([str(pth), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "Pendulum-v1" in out and "over 2 episodes" in out and "success" not in out


def test_compare_groups_seeds_and_writes_a_png(tmp_path, capsys):
    for seed in (0, 1):
        r = run_cli("--episodes", "3", "--seed", str(seed), "--log-dir", f"runs/fast_s{seed}", *FAST, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    out_png = tmp_path / "compare.png"
    runs = sorted(str(p) for p in (tmp_path / "runs").glob("fast_s*"))
    assert compare.main([*runs, "--group-by-prefix", "--smooth", "2", "--threshold", "-100", "--out", str(out_png)]) == 0
    table = capsys.readouterr().out
    assert f"{tmp_path / 'runs' / 'fast'}  2" in table  # one group of two seeds
    assert "steps to reward -100" in table and "final success" in table
    import matplotlib.image

    picture = matplotlib.image.imread(out_png)
    assert picture.shape[0] > 300 and picture.shape[1] > 600 and picture.std() > 0.05
    # Against training wall time (elapsed_s): the reward is reached after some seconds, not steps.
    assert compare.main([*runs, "--group-by-prefix", "--x", "time", "--threshold", "-100", "--out", str(out_png)]) == 0
    assert "time to reward -100" in capsys.readouterr().out
    (folder,) = compare.find_runs([Path(runs[0])])
    run = compare.load_run(folder)
    assert run.seconds.tolist() == [float(r["elapsed_s"]) for r in read_csv_rows(folder / "training.csv")]
    assert np.all(np.diff(run.seconds) > 0)
    assert compare.main([str(tmp_path / "nothing"), "--out", str(out_png)]) == 2


def test_compare_helpers():
    assert compare.group_key("runs/lr1e-3_s2/sac_20261125-093000") == "runs/lr1e-3"
    assert compare.group_key("bench/runs-seed11") == "bench/runs"
    np.testing.assert_allclose(compare.smooth(np.array([0.0, 2.0, 4.0, 6.0]), 2), [0.0, 1.0, 3.0, 5.0])


def test_show_lists_runs_and_invalid_files_without_changing_anything(run, tmp_path, capsys):
    shutil.copytree(run / "checkpoints", tmp_path / "checkpoints")
    folder = ckpt_dir(tmp_path)
    (folder / "corrupt.pth").write_bytes(b"\x00garbage")
    digest = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.glob("*.pth")}
    assert show.main([str(tmp_path / "checkpoints")]) == 0
    out = capsys.readouterr().out
    assert "latest.pth" in out and "ckpt_ep_2.pth" in out and "valid" in out
    assert "corrupt.pth" in out and "INVALID: unreadable" in out
    assert show.main([str(folder / "latest.pth")]) == 0
    detail = capsys.readouterr().out
    assert "env Robot6Reach-v0: obs_dim 18, act_dim 6" in detail
    assert "replay: 200 transitions (generation" in detail  # 4 episodes x 50 steps, all their segments on disk
    assert "policy.trunk.0.weight: (32, 18) float32" in detail and "q1.4.weight: (1, 32) float32" in detail
    assert "lr = 0.001" in detail
    assert show.main([str(folder / "corrupt.pth")]) == 2
    assert {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.glob("*.pth")} == digest


@pytest.mark.parametrize("fmt, suffix", [("torchscript", ".pt"), ("onnx", ".onnx")])
def test_export_matches_the_pytorch_policy(run, tmp_path, fmt, suffix):
    pth = ckpt_dir(run) / "latest.pth"
    out = tmp_path / f"policy{suffix}"
    assert export.main([str(pth), "--format", fmt, "--out", str(out)]) == 0
    policy, meta = export.deployed_policy(pth)
    obs = torch.randn(64, meta["obs_dim"]) * 2
    with torch.no_grad():
        expected = policy(obs).numpy()
    if fmt == "torchscript":
        with torch.no_grad():
            got = torch.jit.load(str(out))(obs).numpy()
    else:
        import onnxruntime

        got = onnxruntime.InferenceSession(str(out)).run(None, {"obs": obs.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert np.abs(expected).max() <= 1.0
    # What an action means travels with the file: the arm's joints in action order, limits, scaling.
    if fmt == "torchscript":
        info = json.loads(Path(f"{out}.json").read_text())
    else:
        import onnx

        info = {p.key.removeprefix("robot6."): json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert info["env_id"] == "Robot6Reach-v0" and info["act_dim"] == 6
    arm = info["arm"]
    assert arm["urdf"] == "xarm/xarm6_robot.urdf" and arm["ee_link"] == "link6"
    assert arm["joints"] == [f"joint{i}" for i in range(1, 7)] and arm["action_scale"] == [0.05] * 6
    assert arm["lower"][0] == pytest.approx(-np.pi) and arm["control_hz"] == 24


def test_wandb_offline_resume_keeps_one_run_id(tmp_path):
    pytest.importorskip("wandb", reason="wandb is optional: pip install -e .[wandb]")
    import os

    env = dict(cli_env(), WANDB_MODE="offline", WANDB_SILENT="true")
    cmd = [sys.executable, str(ROOT / "Train_Robot6.py")]
    first = subprocess.run([*cmd, "--episodes", "2", "--wandb", "robot6-test", *FAST], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    second = subprocess.run([*cmd, "--resume", "--episodes", "4"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    from robot6.run import checkpoint as ckpt

    state = ckpt.load_checkpoint(next((tmp_path / "checkpoints").glob("*/latest.pth")))
    run_id = state["logger"]["wandb_run_id"]
    offline = sorted(p.name for p in (tmp_path / "runs").glob("*/wandb/offline-run-*"))
    assert len(offline) == 2 and all(name.endswith(run_id) for name in offline), offline
    assert os.environ.get("WANDB_MODE") != "online"


def test_bench_settings_are_parsed_as_the_config_fields_and_become_the_training_flags():
    from bench import parse_settings, settings_flags
    from robot6.errors import ConfigError

    values = parse_settings(["updates_every=8", "--her=false", "tau=0.01", "env-id=Pendulum-v1", "hidden=16,16", "compile=true"])
    assert values == {"updates_every": 8, "her": False, "tau": 0.01, "env_id": "Pendulum-v1", "hidden": [16, 16], "compile": True}
    assert settings_flags(values) == ["--updates-every", "8", "--no-her", "--tau", "0.01", "--env", "Pendulum-v1",
                                      "--hidden", "16", "16", "--compile"]
    ranges = parse_settings(["randomize=true", "randomization=latency=0:2,object_mass=0.5:2"])
    assert ranges == {"randomize": True, "randomization": {"latency": [0.0, 2.0], "object_mass": [0.5, 2.0]}}
    assert settings_flags(ranges) == ["--randomize", "--randomization", "latency=0.0:2.0", "object_mass=0.5:2.0"]
    for bad, message in ((["no_such=1"], "--set no_such=1: no_such is not a setting"), (["lr"], "--set lr: give it as SETTING=VALUE"),
                         (["utd=two"], "--set utd=two: utd needs a value of type int"), (["her=maybe"], "her needs a value of type bool")):
        with pytest.raises(ConfigError, match=message):
            parse_settings(bad)


def test_bench_speed_in_process(tmp_path):
    """python -m bench.speed --in-process (ours and SB3 in one process, taking turns in blocks, through the
    trainer's public API) measures both sides every round; a bad combination is a one-line error."""
    import re

    pytest.importorskip("stable_baselines3", reason="a benchmark dependency: pip install -e .[bench]")
    small = ["--hidden", "16", "16", "--batch-size", "32", "--learning-starts", "60", "--buffer-size", "10000",
             "--threads", "1", "--extra", "her=false"]
    out = subprocess.run([sys.executable, "-m", "bench.speed", *small, "--in-process", "--rounds", "2",
                          "--block-episodes", "1", "--extra", "updates_every=4"],
                         cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rounds = re.findall(r"round \d+: ours +([\d.]+), sb3 +([\d.]+) steps/s", out.stdout)
    assert len(rounds) == 2 and all(float(x) > 0 for pair in rounds for x in pair), out.stdout
    for bad, message in ((["--only", "ours"], "drop --only"), (["--rounds", "0"], "at least 1"),
                         (["--extra", "no_such_field=1"], "error:")):
        result = subprocess.run([sys.executable, "-m", "bench.speed", *small, "--in-process", *bad], cwd=tmp_path,
                                env=cli_env(), capture_output=True, text=True, timeout=300)
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_bench_speed_without_sb3_is_a_clear_error(tmp_path):
    """bench/speed.py measures SB3 only where the bench extra is installed: without it (here an SB3 whose
    import fails, put first on the path), a one-line error that says what to install, not a traceback."""
    shim = tmp_path / "shim" / "stable_baselines3"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'stable_baselines3'\")\n")
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "shim"), env["PYTHONPATH"]])
    for mode in ([], ["--in-process"]):
        result = subprocess.run([sys.executable, "-m", "bench.speed", *mode], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode != 0 and 'pip install -e ".[bench]"' in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    # Ours alone needs no SB3; too few steps to time a whole learning episode is a message too.
    result = subprocess.run([sys.executable, "-m", "bench.speed", "--only", "ours", "--steps", "10",
                             "--learning-starts", "60", "--repeats", "1", "--hidden", "8", "--batch-size", "16",
                             "--buffer-size", "1000"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "leaves fewer than two whole episodes" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def third_party_env() -> dict[str, str]:
    """The CLI's environment with tests/ on the path, where the test suite's own third-party env lives."""
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), env["PYTHONPATH"]])
    return env


def test_a_third_party_goal_env_trains_evaluates_and_runs_through_learn(tmp_path):
    """A goal env that ends episodes on success and refuses render_mode=None (robot6_test_envs): the trainer,
    robot6.evaluate with and without --video, and bench.learn with budgets that are no episode ends all work."""
    from robot6_test_envs import ENV_ID, NO_FRAMES_ID

    env = third_party_env()

    def call(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    trained = call(str(ROOT / "Train_Robot6.py"), "--env", ENV_ID, "--total-steps", "150", *FAST)
    assert trained.returncode == 0, trained.stderr[-2000:]
    pth = next((tmp_path / "checkpoints").glob("*/latest.pth"))
    for extra in ([], ["--video", str(tmp_path / "eval.gif"), "--video-episodes", "1"]):
        result = call("-m", "robot6.evaluate", str(pth), "--episodes", "2", *extra)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert "success rate" in result.stdout and ENV_ID in result.stdout
    assert (tmp_path / "eval.gif").stat().st_size > 0

    # An env that draws no frames: --video is one line that says so.
    assert call(str(ROOT / "Train_Robot6.py"), "--env", NO_FRAMES_ID, "--episodes", "1", "--checkpoint-dir", "nf",
                *FAST).returncode == 0
    result = call("-m", "robot6.evaluate", str(next((tmp_path / "nf").glob("*/latest.pth"))), "--video", "x.gif")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("error:")] == [
        f"error: --video: {NO_FRAMES_ID} gives no RGB frames with render_mode='rgb_array' (render() returned "
        "NoneType); evaluate without --video"]

    # Budgets that fall inside episodes: each is evaluated at the first episode end at or past it.
    learn = call("-m", "bench.learn", "--env", ENV_ID, "--steps", "130", "260", "--seeds", "0", "--eval-episodes", "2",
                 "--workdir", str(tmp_path / "learn"), "--set", "hidden=16,16", "batch_size=16", "learning_starts=60",
                 "buffer_size=2000")
    assert learn.returncode == 0, learn.stderr[-2000:] + learn.stdout[-2000:]
    assert "nan" not in learn.stdout and "checkpoint steps per seed" in learn.stdout and "| lowest seed |" in learn.stdout
    row = next(ln for ln in learn.stdout.splitlines() if ln.startswith("| ours | 130 |"))
    step = int(row.split("|")[3].strip().replace(",", ""))
    assert 130 <= step < 130 + 50 and step in {int(p.stem.rsplit("_", 1)[1]) for p in (tmp_path / "learn").rglob("ckpt_step_*.pth")}

    # --no-train: the same runs evaluated as far as they got; a budget past them is said and left out.
    trained_log = (tmp_path / "learn" / "train_ours_s0.log").stat().st_mtime_ns
    again = call("-m", "bench.learn", "--env", ENV_ID, "--steps", "130", "260", "5000", "--seeds", "0", "--eval-episodes", "2",
                 "--workdir", str(tmp_path / "learn"), "--no-train", "--plot", str(tmp_path / "learn.png"))
    assert again.returncode == 0, again.stderr[-2000:] + again.stdout[-2000:]
    assert "ours seed 0 @ 5000 steps: not reached" in again.stdout and "| ours | 5,000 |" not in again.stdout
    assert next(ln for ln in again.stdout.splitlines() if ln.startswith("| ours | 130 |")) == row
    assert (tmp_path / "learn.png").stat().st_size > 0
    assert (tmp_path / "learn" / "train_ours_s0.log").stat().st_mtime_ns == trained_log  # nothing trained
    missing = call("-m", "bench.learn", "--env", ENV_ID, "--workdir", str(tmp_path / "nothing"), "--no-train")
    assert missing.returncode == 1 and missing.stderr.strip().splitlines()[-1].startswith("error: --no-train evaluates")


def test_learn_names_a_failed_seed_that_a_good_mean_hides():
    from bench.learn import failing_seeds

    def run(seed, success):
        return {"seed": seed, "success_rate": success}

    results = {"ours": {50_000: [run(0, 0.5), run(1, 0.0), run(2, 0.4)],  # the mean has not passed 50%: no line
                        100_000: [run(0, 0.95), run(1, 0.05), run(2, 0.9)]},
               "sb3": {100_000: [run(0, 0.9), run(1, 0.8)]}}
    assert failing_seeds(results) == ["FAILING SEEDS: ours at 100,000 steps: seed 1 at 5%, while the mean is 63%"]


def test_learn_on_an_env_without_success_prints_no_success_column_and_plots_the_return(tmp_path):
    learn = subprocess.run(
        [sys.executable, "-m", "bench.learn", "--env", "Pendulum-v1", "--steps", "300", "400", "--seeds", "0",
         "--eval-episodes", "1", "--set", "hidden=16,16", "batch_size=16", "learning_starts=100", "--plot", "out/learn.png"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert learn.returncode == 0, learn.stderr[-2000:]
    assert "nan" not in learn.stdout and "success" not in learn.stdout
    assert "| ours | 300 | 400 |" in learn.stdout  # Pendulum's 200-step episodes: 300 is checkpointed at 400
    import matplotlib.image

    picture = matplotlib.image.imread(tmp_path / "out" / "learn.png")  # --plot: the table drawn (mean return here)
    assert picture.ndim == 3 and picture.shape[0] > 200 and picture[..., :3].std() > 0.01


def test_learn_runs_sb3_and_tqc_as_peers_and_reports_a_peer_stopped_by_its_time_limit(tmp_path):
    pytest.importorskip("sb3_contrib", reason="a benchmark dependency: pip install -e .[bench]")
    learn = subprocess.run(
        [sys.executable, "-m", "bench.learn", "--trainer", "sb3", "tqc", "--steps", "200", "800", "--seeds", "0",
         "--eval-episodes", "2", "--jobs", "2", "--peer-time-limit", "15", "--set", "hidden=16,16", "batch_size=16",
         "learning_starts=100", "--tqc-set", "hidden=512,512,512", "batch_size=2048"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert learn.returncode == 0, learn.stderr[-2000:] + learn.stdout[-2000:]
    # SB3 reaches the first budget well within the limit (it took 15 s for 350 steps on a loaded 2-core machine)
    assert "| SB3 SAC 2.9.2 | 200 |" in learn.stdout and "nan" not in learn.stdout
    stopped = [ln for ln in learn.stdout.splitlines() if ln.startswith("tqc seed 0: stopped at")]
    assert len(stopped) == 1 and "steps/s learning" in stopped[0] and "would take" in stopped[0], learn.stdout[-2000:]


def test_diagnose_tabulates_a_run_s_history_from_its_files(short_run, capsys):
    """bench.diagnose: per window of env steps, the exploring success, alpha, entropy, Q and critic loss, and how
    often the achieved goal moved (Reach's flange moves every step); a folder with no run is one line."""
    from bench import diagnose

    (log_dir,) = (short_run / "runs").iterdir()
    assert diagnose.main([str(log_dir), "--checkpoints", str(short_run / "checkpoints" / log_dir.name), "--window", "100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("| env steps | success | alpha | entropy | q | critic loss | goal moved (episodes) | "
                        "goal moved (steps) |")
    rows = [ln.split(" | ") for ln in lines[2:]]
    assert [r[0] for r in rows] == ["| 100", "| 200"]
    assert all(r[-2] == "100%" for r in rows) and rows[1][2] != ""  # learning from step 60: alpha logged by 200
    with pytest.raises(SystemExit, match="no TensorBoard scalars"):
        diagnose.main([str(short_run)])


def test_diagnose_critic_finds_where_the_extreme_q_values_are(tmp_path, capsys):
    from bench import diagnose

    assert run_cli("--episodes", "4", "--save-every-steps", "100", "--eval-every", "0", *FAST, cwd=tmp_path).returncode == 0
    (log_dir,) = (tmp_path / "runs").iterdir()
    checkpoints = tmp_path / "checkpoints" / log_dir.name
    assert diagnose.main([str(log_dir), "--checkpoints", str(checkpoints), "--critic", "--window", "100"]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.split("| features largest at the extreme Q (times their mean) |")[1].splitlines() if ln.startswith("| 1") or ln.startswith("| 2")]
    assert [r.split(" | ")[0] for r in rows] == ["| 100", "| 200"]
    assert all(len(re.findall(r"\[\d+\] x\d+", r)) == 3 for r in rows)
    with pytest.raises(SystemExit, match="--critic needs --checkpoints"):
        diagnose.main([str(log_dir), "--critic"])
